import { OpenAICompatibleProvider, Pipeline, PipelineScheduler, ProviderError, ValidationError } from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { API_KEY, request } from './helpers'

let mock: MockUpstream

beforeAll(async () => {
  mock = await MockUpstream.start()
})
afterAll(async () => {
  await mock.close()
})

function upstream(name: string, scenario = ''): OpenAICompatibleProvider {
  return new OpenAICompatibleProvider({ name, endpoint: mock.openaiBase, apiKey: API_KEY, headers: { 'x-mock-scenario': scenario || `reply=from_${name}` } })
}

function pipeline(id: string, vm: string, targets: [string, OpenAICompatibleProvider, number?][]): Pipeline {
  return new Pipeline({
    id,
    name: `${id} pipeline`,
    virtualModelId: vm,
    loadBalancingStrategy: 'round-robin',
    timeout: 10000,
    healthCheckInterval: 60000,
    maxRetries: 0,
    targets: targets.map(([tid, provider, weight]) => ({ id: tid, provider, weight: weight ?? 1, enabled: true, healthStatus: 'unknown' as const })),
  })
}

describe('Pipeline (original API)', () => {
  it('selects targets at once (no health gate) and never rejects, blaming the target that failed', async () => {
    const p = pipeline('p1', 'vm', [
      ['ok', upstream('ok')],
      ['bad', upstream('bad', 'status=500')],
    ])
    const first = await p.execute(request(), 'chat')
    expect(first).toMatchObject({ pipelineId: 'p1', targetId: 'ok', success: true })
    expect(first.response!.choices[0].message.content).toBe('from ok')
    const second = await p.execute(request(), 'chat')
    expect(second).toMatchObject({ pipelineId: 'p1', targetId: 'bad', success: false, errorCode: 'PROVIDER_ERROR' })
    expect(second.error).toContain('500')
    expect(second.targetMetrics).toEqual({ requestCount: 1, errorCount: 1, healthStatus: 'unhealthy' })
    expect(p.getTarget('ok')).toMatchObject({ requestCount: 1, errorCount: 0, healthStatus: 'healthy' })
    expect(p.getMetrics()).toMatchObject({ totalRequests: 2, successfulRequests: 1, failedRequests: 1, currentTargets: 2, errorRate: 0.5 })
    expect(p.setTargetEnabled('bad', false)).toBe(true)
    for (let i = 0; i < 3; i++) expect((await p.execute(request(), 'chat')).targetId).toBe('ok')
    p.destroy()
  })

  it('honours its timeout by aborting the provider call', async () => {
    const p = new Pipeline({ id: 'slow', name: 'slow', virtualModelId: 'vm', timeout: 150, targets: [{ id: 't', provider: upstream('slow', 'latency=3000') }] })
    const t0 = Date.now()
    const r = await p.execute(request(), 'chat')
    expect(Date.now() - t0).toBeLessThan(1500)
    expect(r).toMatchObject({ success: false, targetId: 't', errorCode: 'TIMEOUT' })
    p.destroy()
  })

  it('streams one result per chunk', async () => {
    const p = pipeline('ps', 'vm', [['t', upstream('t', 'reply=a_b_c')]])
    const items = []
    for await (const r of p.executeStreaming(request(), 'streamChat')) items.push(r)
    expect(items.every((r) => r.success && r.pipelineId === 'ps' && r.targetId === 't')).toBe(true)
    expect(items.map((r) => r.response!.choices[0]?.delta?.content ?? '').join('')).toBe('a b c')
    p.destroy()
  })
})

describe('PipelineScheduler (original API)', () => {
  it('schedules over pipelines, retries on another pipeline, and reports the serving target', async () => {
    const s = new PipelineScheduler('gpt-vm', {
      maxConcurrentRequests: 3,
      requestTimeout: 30000,
      healthCheckInterval: 60000,
      retryStrategy: { maxRetries: 3, baseDelay: 10, maxDelay: 100, backoffMultiplier: 2 },
      loadBalancingStrategy: 'round-robin',
      enableCircuitBreaker: true,
      circuitBreakerThreshold: 3,
      circuitBreakerTimeout: 30000,
    })
    expect(() => s.addPipeline(pipeline('other', 'another-vm', [['t', upstream('t')]]))).toThrow(
      new ValidationError('Pipeline virtual model ID mismatch. Expected: gpt-vm, Got: another-vm'),
    )
    s.addPipeline(pipeline('broken', 'gpt-vm', [['down', upstream('down', 'status=503')]]))
    s.addPipeline(pipeline('healthy', 'gpt-vm', [['up', upstream('up')]]))
    expect(s.getPipelines().map((p) => p.getConfig().id)).toEqual(['broken', 'healthy'])
    const retries: unknown[] = []
    s.on('retry', (e) => retries.push(e))
    const r = await s.execute(request(), 'chat')
    expect(r).toMatchObject({ pipelineId: 'healthy', targetId: 'up', success: true, attempts: 2 })
    expect(r.response!.choices[0].message.content).toBe('from up')
    expect(retries).toHaveLength(1)
    const m = s.getMetrics()
    expect(m.pipelines.broken.failedRequests).toBe(1)
    expect(m.successfulRequests).toBe(1)
    expect(s.getVirtualModelId()).toBe('gpt-vm')

    const chunks = []
    for await (const item of s.executeStreaming(request(), 'streamChat')) chunks.push(item)
    expect(chunks.length).toBeGreaterThan(1)
    expect(chunks[0]).toMatchObject({ pipelineId: 'healthy', targetId: 'up', success: true })

    expect(s.removePipeline('healthy')).toBe(true)
    const err = await s.execute(request(), 'chat', { retries: 0 }).catch((e) => e)
    expect(err).toBeInstanceOf(ProviderError)
    expect(err).toMatchObject({ pipelineId: 'broken', status: 503 })
    s.destroy()
  })
})
