import { NoAvailablePipelineError, OpenAICompatibleProvider, ValidationError, VirtualModelSchedulerManager, type VirtualModelConfig } from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { API_KEY, waitFor } from './helpers'

let mock: MockUpstream

beforeAll(async () => {
  mock = await MockUpstream.start()
})
afterEach(() => mock.reset())
afterAll(async () => {
  await mock.close()
})

function upstream(name: string, scenario = ''): OpenAICompatibleProvider {
  return new OpenAICompatibleProvider({ name, endpoint: mock.openaiBase, apiKey: API_KEY, headers: scenario ? { 'x-mock-scenario': scenario } : {} })
}

function vm(id: string, targets: Array<{ providerId: string; modelId: string }>, extra: Partial<VirtualModelConfig> = {}): VirtualModelConfig {
  return { id, name: `${id} model`, modelId: id, provider: targets[0].providerId, enabled: true, targets, capabilities: ['chat'], ...extra }
}

const ask = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] })

describe('VirtualModelSchedulerManager', () => {
  it('serves two virtual models over the mock, one of them disabled', async () => {
    const manager = new VirtualModelSchedulerManager({ defaultSchedulerConfig: { maxConcurrentRequests: 4 } as never })
    const providers = new Map([
      ['alpha', upstream('alpha')],
      ['beta', upstream('beta')],
    ])
    const fastId = await manager.registerVirtualModel(vm('fast', [{ providerId: 'alpha', modelId: 'alpha-small' }, { providerId: 'beta', modelId: 'beta-small' }]), providers)
    expect(fastId).toMatch(/^scheduler_fast_/)
    await manager.registerVirtualModel(vm('smart', [{ providerId: 'beta', modelId: 'beta-large' }], { enabled: false }), { beta: upstream('beta') })

    const results = [await manager.execute('fast', ask('fast'), 'chat'), await manager.execute('fast', ask('fast'), 'chat')]
    expect(results.map((r) => r.success)).toEqual([true, true])
    // Each target sends its own model upstream, round-robin across the two.
    expect(mock.requests().map((r) => r.body.model)).toEqual(['alpha-small', 'beta-small'])

    await expect(manager.execute('smart', ask('smart'), 'chat')).rejects.toThrow(new NoAvailablePipelineError('No scheduler found for virtual model smart'))
    await expect(manager.execute('unknown', ask('x'), 'chat')).rejects.toBeInstanceOf(NoAvailablePipelineError)
    expect(manager.enableVirtualModel('smart')).toBe(true)
    expect((await manager.execute('smart', ask('smart'), 'chat')).success).toBe(true)
    expect(mock.requests().at(-1)!.body.model).toBe('beta-large')
    expect(manager.disableVirtualModel('smart')).toBe(true)
    expect(manager.enableVirtualModel('nope')).toBe(false)

    const chunks = []
    for await (const item of manager.executeStreaming('fast', { ...ask('fast'), stream: true }, 'streamChat')) chunks.push(item)
    expect(chunks.length).toBeGreaterThan(1)
    expect(chunks.every((c) => c.success)).toBe(true)

    const metrics = manager.getManagerMetrics()
    expect(metrics).toMatchObject({ totalSchedulers: 2, activeSchedulers: 1, totalRequests: 4, successfulRequests: 4, failedRequests: 2 - 2, overallErrorRate: 0 })
    expect(metrics.virtualModelMetrics.get('fast')).toMatchObject({ requests: 3, errors: 0, healthStatus: 'healthy', enabled: true })
    expect(metrics.virtualModelMetrics.get('smart')).toMatchObject({ requests: 1, enabled: false })
    expect(Number.isFinite(metrics.averageResponseTime)).toBe(true)
    const health = manager.getManagerHealth()
    expect(health.status).toBe('healthy')
    expect(health.overallHealth).toBe(100)
    expect(health.systemHealth.checks).toEqual({ schedulerAvailability: true, errorRates: true, responseTimes: true, systemResources: true })

    const mappings = manager.getVirtualModelMappings()
    expect(mappings.map((m) => [m.virtualModelId, m.enabled])).toEqual([
      ['fast', true],
      ['smart', false],
    ])
    expect(manager.getScheduler(fastId)).toBe(manager.getVirtualModelScheduler('fast'))
    expect(mappings[0].providers.get('alpha')).toBe(providers.get('alpha'))
    expect(await manager.unregisterVirtualModel('smart')).toBe(true)
    expect(await manager.unregisterVirtualModel('smart')).toBe(false)
    expect(manager.getVirtualModelScheduler('smart')).toBeNull()
    manager.destroy()
  })

  it('counts failures with correct arithmetic and scores health the original way', async () => {
    const manager = new VirtualModelSchedulerManager({ defaultSchedulerConfig: { retryStrategy: { maxRetries: 0, baseDelay: 1, maxDelay: 1, backoffMultiplier: 2 }, enableCircuitBreaker: false } as never })
    await manager.registerVirtualModel(vm('flaky', [{ providerId: 'bad', modelId: 'm' }]), { bad: upstream('bad', 'status=500') })
    for (let i = 0; i < 3; i++) await expect(manager.execute('flaky', ask('flaky'), 'chat')).rejects.toThrow()
    const m = manager.getManagerMetrics()
    expect(m).toMatchObject({ totalRequests: 3, failedRequests: 3, successfulRequests: 0, overallErrorRate: 1 })
    expect(m.virtualModelMetrics.get('flaky')!.healthStatus).toBe('unhealthy')
    const h = manager.getManagerHealth()
    expect(h.systemHealth.status).toBe('unhealthy')
    expect(h.systemHealth.checks.errorRates).toBe(false)
    expect(Number.isNaN(h.overallHealth)).toBe(false)
    manager.destroy()
  })

  it('rejects duplicates, too many schedulers and invalid models with the original texts', async () => {
    const manager = new VirtualModelSchedulerManager({ maxSchedulers: 1 })
    await manager.registerVirtualModel(vm('one', [{ providerId: 'a', modelId: 'm' }]), { a: upstream('a') })
    await expect(manager.registerVirtualModel(vm('one', [{ providerId: 'a', modelId: 'm' }]), { a: upstream('a') })).rejects.toThrow('Virtual model one is already registered')
    await expect(manager.registerVirtualModel(vm('two', [{ providerId: 'a', modelId: 'm' }]), { a: upstream('a') })).rejects.toThrow('Maximum number of schedulers (1) reached')
    const roomy = new VirtualModelSchedulerManager()
    await expect(roomy.registerVirtualModel({ id: 'x', name: '', modelId: 'x', provider: 'a', enabled: true, targets: [] }, {})).rejects.toThrow(
      /Virtual model x configuration validation failed: Virtual model name is required, Virtual model must have at least one target/,
    )
    await expect(roomy.registerVirtualModel(vm('ghost', [{ providerId: 'missing', modelId: 'm' }]), { a: upstream('a') })).rejects.toThrow(/ghost/)
    expect(() => new VirtualModelSchedulerManager({ maxSchedulers: 0 })).toThrow(ValidationError)
    expect(() => new VirtualModelSchedulerManager({ autoScaling: { checkInterval: -5 } })).toThrow(/autoScaling\.checkInterval/)
    manager.destroy()
    roomy.destroy()
  })

  it('scales a model with a long queue up to its ceiling and back down when idle', async () => {
    const manager = new VirtualModelSchedulerManager({
      enableAutoScaling: true,
      autoScaling: { checkInterval: 25, queueThreshold: 1, sustainedChecks: 2, maxConcurrentRequests: 4 },
      scalingThresholds: { scaleUpCooldown: 0, scaleDownCooldown: 0 },
      defaultSchedulerConfig: { maxConcurrentRequests: 1, requestTimeout: 30000 } as never,
    })
    const events: Array<{ from: number; to: number; virtualModelId: string }> = []
    manager.on('scaledUp', (e) => events.push(e))
    manager.on('scaledDown', (e) => events.push(e))
    await manager.registerVirtualModel(vm('busy', [{ providerId: 'slow', modelId: 'm' }]), { slow: upstream('slow', 'latency=120') })
    const all = Array.from({ length: 16 }, () => manager.execute('busy', ask('busy'), 'chat'))
    await waitFor(() => events.some((e) => e.to === 4), 10000)
    expect(manager.getVirtualModelScheduler('busy')!.getConfig().maxConcurrentRequests).toBe(4)
    expect(events.filter((e) => e.to > e.from).map((e) => [e.from, e.to])).toEqual([
      [1, 2],
      [2, 4],
    ])
    const results = await Promise.all(all)
    expect(results.every((r) => r.success)).toBe(true)
    await waitFor(() => manager.getVirtualModelScheduler('busy')!.getConfig().maxConcurrentRequests === 1, 10000)
    expect(events.filter((e) => e.to < e.from).map((e) => [e.from, e.to])).toEqual([
      [4, 2],
      [2, 1],
    ])
    expect(manager.getManagerMetrics().virtualModelMetrics.get('busy')!.maxConcurrentRequests).toBe(1)
    manager.destroy()
  })
})
