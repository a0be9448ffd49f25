import {
  BaseProvider,
  OpenAICompatibleProvider,
  Pipeline,
  PipelineFactory,
  PipelineTracker,
  ValidationError,
  type OpenAIChatResponseData,
  type PipelineConfig,
  type PipelineTarget,
  type VirtualModelConfig,
  type VirtualModelPipelineConfig,
} from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { API_KEY, request } from './helpers'

let mock: MockUpstream
let providerA: OpenAICompatibleProvider
let providerB: OpenAICompatibleProvider
const created: Pipeline[] = []

/** Remembers a pipeline so that afterAll destroys it. */
function keep<T extends Pipeline | null>(p: T): T {
  if (p) created.push(p)
  return p
}

beforeAll(async () => {
  mock = await MockUpstream.start()
  providerA = upstream('a')
  providerB = upstream('b')
})
afterAll(async () => {
  for (const p of created) p.destroy()
  await mock.close()
})

function upstream(name: string): OpenAICompatibleProvider {
  return new OpenAICompatibleProvider({ name, endpoint: mock.openaiBase, apiKey: API_KEY, headers: { 'x-mock-scenario': `reply=from_${name}` } })
}

const DEFAULTS = {
  defaultTimeout: 30000,
  defaultHealthCheckInterval: 60000,
  defaultMaxRetries: 3,
  defaultLoadBalancingStrategy: 'round-robin',
  enableHealthChecks: true,
  metricsEnabled: true,
}

const SINGLE_TARGET = 'Single target configuration - load balancing will have no effect'
const NO_CAPABILITIES = 'No capabilities specified for virtual model'

function virtualModel(overrides: Partial<VirtualModelConfig> = {}): VirtualModelConfig {
  return {
    id: 'gpt-vm',
    name: 'GPT VM',
    provider: 'openai',
    modelId: 'gpt-4o',
    enabled: true,
    capabilities: ['chat'],
    targets: [
      { providerId: 'a', modelId: 'model-a' },
      { providerId: 'b', modelId: 'model-b', weight: 2, keyIndex: 1 },
    ],
    ...overrides,
  }
}

function vmConfig(overrides: Partial<VirtualModelConfig> = {}, providers?: VirtualModelPipelineConfig['providers']): VirtualModelPipelineConfig {
  return { virtualModel: virtualModel(overrides), providers: providers ?? new Map([['a', providerA], ['b', providerB]]) }
}

function pipelineConfig(overrides: Record<string, unknown> = {}): PipelineConfig {
  return {
    id: 'p1',
    name: 'P1',
    virtualModelId: 'vm',
    targets: [
      { id: 't1', provider: providerA, weight: 1, enabled: true, healthStatus: 'unknown' },
      { id: 't2', provider: providerB, weight: 1, enabled: true, healthStatus: 'healthy' },
    ],
    loadBalancingStrategy: 'round-robin',
    healthCheckInterval: 60000,
    maxRetries: 3,
    timeout: 30000,
    ...overrides,
  } as PipelineConfig
}

function collectingLogger(): { warn(message: string): void; messages: string[] } {
  const messages: string[] = []
  return { messages, warn: (m: string) => messages.push(m) }
}

describe('PipelineFactory.validateVirtualModelConfig', () => {
  const factory = new PipelineFactory()

  it('accepts a complete virtual model and returns the pipeline config it would build', () => {
    const r = factory.validateVirtualModelConfig(vmConfig())
    expect(r.isValid).toBe(true)
    expect(r.errors).toEqual([])
    expect(r.warnings).toEqual([])
    expect(r.pipelineConfig!.targets.map((t) => [t.id, t.modelId, t.weight])).toEqual([
      ['gpt-vm_a_model-a', 'model-a', 1],
      ['gpt-vm_b_model-b', 'model-b', 2],
    ])
  })

  it.each<[string, Partial<VirtualModelConfig>, string]>([
    ['a missing id', { id: '' }, 'Virtual model ID is required'],
    ['a missing name', { name: '' }, 'Virtual model name is required'],
    ['no targets', { targets: [] }, 'Virtual model must have at least one target'],
    ['a target without providerId', { targets: [{ providerId: '', modelId: 'gpt-4' }, { providerId: 'b', modelId: 'model-b' }] }, "Target 'gpt-4' must have a providerId"],
    ['a target without modelId', { targets: [{ providerId: 'a', modelId: '' }, { providerId: 'b', modelId: 'model-b' }] }, 'Target must have a modelId'],
    ['a negative target weight', { targets: [{ providerId: 'a', modelId: 'model-a', weight: -1 }, { providerId: 'b', modelId: 'model-b' }] }, 'Target weight must be non-negative'],
  ])('reports %s', (_what, overrides, message) => {
    const r = factory.validateVirtualModelConfig(vmConfig(overrides))
    expect(r).toEqual({ isValid: false, errors: [message], warnings: [], pipelineConfig: undefined })
  })

  it('warns about a single target', () => {
    const r = factory.validateVirtualModelConfig(vmConfig({ targets: [{ providerId: 'a', modelId: 'model-a' }] }))
    expect(r.isValid).toBe(true)
    expect(r.warnings).toEqual([SINGLE_TARGET])
  })

  it('warns when no capabilities are given', () => {
    const r = factory.validateVirtualModelConfig(vmConfig({ capabilities: undefined }))
    expect(r.isValid).toBe(true)
    expect(r.warnings).toEqual([NO_CAPABILITIES])
    expect(r.pipelineConfig!.metadata!.capabilities).toEqual([])
  })

  it('skips a target whose provider is missing, with a warning', () => {
    const r = factory.validateVirtualModelConfig(vmConfig({ targets: [{ providerId: 'a', modelId: 'model-a' }, { providerId: 'ghost', modelId: 'x' }] }))
    expect(r.isValid).toBe(true)
    expect(r.warnings).toEqual(["Provider 'ghost' not found, skipping target"])
    expect(r.pipelineConfig!.targets.map((t) => t.id)).toEqual(['gpt-vm_a_model-a'])
  })

  it('is invalid when no target has a provider', () => {
    const r = factory.validateVirtualModelConfig(vmConfig({}, new Map()))
    expect(r).toEqual({
      isValid: false,
      errors: ['No target has an available provider'],
      warnings: ["Provider 'a' not found, skipping target", "Provider 'b' not found, skipping target"],
      pipelineConfig: undefined,
    })
  })
})

describe('PipelineFactory.validatePipelineConfig', () => {
  const factory = new PipelineFactory()

  it('accepts a complete config with no warnings', () => {
    expect(factory.validatePipelineConfig(pipelineConfig())).toEqual({ isValid: true, errors: [], warnings: [] })
  })

  const t2 = (): PipelineTarget => ({ id: 't2', provider: providerB })
  it.each<[string, () => Record<string, unknown>, string]>([
    ['a missing id', () => ({ id: '' }), 'Pipeline ID is required'],
    ['a missing name', () => ({ name: undefined }), 'Pipeline name is required'],
    ['a missing virtual model id', () => ({ virtualModelId: '' }), 'Virtual model ID is required'],
    ['no targets', () => ({ targets: [] }), 'Pipeline must have at least one target'],
    ['a target without id', () => ({ targets: [{ id: '', provider: providerA }, t2()] }), 'Target ID is required'],
    ['a target without provider', () => ({ targets: [{ id: 't1' }, t2()] }), 'Target provider is required'],
    ['a provider without chat()', () => ({ targets: [{ id: 't1', provider: { name: 'x' } }, t2()] }), 'Target provider must have a chat() method'],
    ['two targets with one id', () => ({ targets: [{ id: 't2', provider: providerA }, t2()] }), "Duplicate target ID 't2'"],
    ['a negative weight', () => ({ targets: [{ id: 't1', provider: providerA, weight: -1 }, t2()] }), 'Target weight must be non-negative'],
    ['an unknown health status', () => ({ targets: [{ id: 't1', provider: providerA, healthStatus: 'sick' }, t2()] }), 'Invalid target health status'],
    ['a zero timeout', () => ({ timeout: 0 }), 'Pipeline timeout must be positive'],
    ['a negative health-check interval', () => ({ healthCheckInterval: -1 }), 'Health check interval must be positive'],
    ['negative retries', () => ({ maxRetries: -1 }), 'Max retries must be non-negative'],
    ['an unknown strategy', () => ({ loadBalancingStrategy: 'fastest' }), 'Invalid load balancing strategy'],
  ])('reports %s', (_what, overrides, message) => {
    expect(factory.validatePipelineConfig(pipelineConfig(overrides()))).toEqual({ isValid: false, errors: [message], warnings: [] })
  })

  // Thunks: the providers exist only once beforeAll has run.
  it.each<[string, () => Record<string, unknown>, string]>([
    ['a single target', () => ({ targets: [{ id: 't1', provider: providerA }] }), SINGLE_TARGET],
    ['a timeout under 5 s', () => ({ timeout: 4999 }), 'Pipeline timeout is very short (< 5s)'],
    ['a health-check interval under 30 s', () => ({ healthCheckInterval: 29999 }), 'Health check interval is very frequent (< 30s)'],
  ])('warns about %s', (_what, overrides, message) => {
    expect(factory.validatePipelineConfig(pipelineConfig(overrides()))).toEqual({ isValid: true, errors: [], warnings: [message] })
  })

  it('accepts 0 retries and leaves optional numbers unchecked when absent', () => {
    expect(factory.validatePipelineConfig(pipelineConfig({ maxRetries: 0, timeout: undefined, healthCheckInterval: undefined, loadBalancingStrategy: undefined })).isValid).toBe(true)
  })
})

describe('PipelineFactory.createPipelineFromConfig', () => {
  it("throws ValidationError 'Pipeline configuration validation failed: …' listing every error", () => {
    const factory = new PipelineFactory()
    let err: unknown
    try {
      factory.createPipelineFromConfig(pipelineConfig({ id: '', name: '', timeout: -5 }))
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ValidationError)
    expect((err as ValidationError).message).toBe(
      'Pipeline configuration validation failed: Pipeline ID is required, Pipeline name is required, Pipeline timeout must be positive',
    )
  })

  it('builds a Pipeline over any object with a chat() function, passing the tracker', async () => {
    const tracker = new PipelineTracker()
    const factory = new PipelineFactory({}, tracker)
    const answer: OpenAIChatResponseData = {
      id: 'chatcmpl-js',
      object: 'chat.completion',
      created: 1700000000,
      model: 'js',
      choices: [{ index: 0, message: { role: 'assistant', content: 'from a plain object' }, finish_reason: 'stop' }],
    }
    const plainProvider = { chat: async () => answer } as unknown as BaseProvider
    const p = keep(factory.createPipelineFromConfig(pipelineConfig({ targets: [{ id: 'js', provider: plainProvider }] })))
    expect(p).toBeInstanceOf(Pipeline)
    expect((p as unknown as { pipelineTracker: unknown }).pipelineTracker).toBe(tracker)
    const r = await p.execute(request(), 'chat')
    expect(r).toMatchObject({ pipelineId: 'p1', targetId: 'js', success: true })
    expect(r.response!.choices[0].message.content).toBe('from a plain object')
    // The pipeline recorded the request into the factory's tracker.
    expect(tracker.getRequestContext(r.requestId!)!.getStageStatus('api-execution')).toBe('completed')
  })
})

describe('PipelineFactory.createPipelineFromVirtualModel', () => {
  it('turns a virtual model with two providers into a Pipeline that executes', async () => {
    const tracker = new PipelineTracker()
    const factory = new PipelineFactory(undefined, tracker)
    const before = Date.now()
    const p = keep(factory.createPipelineFromVirtualModel({ ...vmConfig(), metadata: { team: 'core' } }, { customMetadata: { owner: 'me' } }))!
    expect(p).toBeInstanceOf(Pipeline)
    expect((p as unknown as { pipelineTracker: unknown }).pipelineTracker).toBe(tracker)

    const config = p.getConfig()
    expect(config.id).toMatch(/^pipeline_gpt-vm_\d+_\d+$/)
    expect(config).toMatchObject({
      name: 'GPT VM Pipeline',
      virtualModelId: 'gpt-vm',
      description: 'GPT VM',
      loadBalancingStrategy: 'round-robin',
      healthCheckInterval: 60000,
      maxRetries: 3,
      timeout: 30000,
      metadata: { virtualModelName: 'GPT VM', virtualModelProvider: 'openai', capabilities: ['chat'], team: 'core', owner: 'me' },
    })
    const [ta, tb] = p.getTargets()
    expect(ta).toMatchObject({
      id: 'gpt-vm_a_model-a',
      provider: providerA,
      modelId: 'model-a',
      weight: 1,
      enabled: true,
      metadata: { keyIndex: undefined, virtualModelId: 'gpt-vm', providerId: 'a', modelId: 'model-a' },
    })
    expect(ta.lastHealthCheck).toBeGreaterThanOrEqual(before)
    expect(tb).toMatchObject({
      id: 'gpt-vm_b_model-b',
      provider: providerB,
      modelId: 'model-b',
      weight: 2,
      metadata: { keyIndex: 1, virtualModelId: 'gpt-vm', providerId: 'b', modelId: 'model-b', weight: 2 },
    })

    const first = await p.execute(request(), 'chat')
    const second = await p.execute(request(), 'chat')
    expect(first).toMatchObject({ pipelineId: config.id, targetId: 'gpt-vm_a_model-a', success: true })
    expect(first.response!.choices[0].message.content).toBe('from a')
    expect(second).toMatchObject({ targetId: 'gpt-vm_b_model-b', success: true })
    expect(second.response!.choices[0].message.content).toBe('from b')
  })

  it('accepts providers as a plain object', async () => {
    const p = keep(new PipelineFactory().createPipelineFromVirtualModel(vmConfig({}, { a: providerA, b: providerB })))!
    expect(p.getTargets().map((t) => [t.id, t.provider])).toEqual([
      ['gpt-vm_a_model-a', providerA],
      ['gpt-vm_b_model-b', providerB],
    ])
    const r = await p.execute(request(), 'chat')
    expect(r.success).toBe(true)
    expect(r.response!.choices[0].message.content).toBe('from a')
  })

  it('skips a target whose provider is missing and tells the logger', () => {
    const logger = collectingLogger()
    const factory = new PipelineFactory({ logger })
    const p = keep(factory.createPipelineFromVirtualModel(vmConfig({ targets: [{ providerId: 'ghost', modelId: 'x' }, { providerId: 'b', modelId: 'model-b' }] })))!
    expect(p.getTargets().map((t) => t.id)).toEqual(['gpt-vm_b_model-b'])
    expect(logger.messages).toEqual(["Provider 'ghost' not found, skipping target"])
  })

  it('returns null when no provider is found, and when the virtual model is invalid', () => {
    const logger = collectingLogger()
    const factory = new PipelineFactory({ logger })
    expect(factory.createPipelineFromVirtualModel(vmConfig({}, {}))).toBeNull()
    expect(logger.messages).toEqual([
      "Provider 'a' not found, skipping target",
      "Provider 'b' not found, skipping target",
      'Virtual model configuration validation failed: No target has an available provider',
    ])
    expect(factory.createPipelineFromVirtualModel(vmConfig({ id: '', name: '' }))).toBeNull()
    expect(logger.messages[3]).toBe('Virtual model configuration validation failed: Virtual model ID is required, Virtual model name is required')
  })

  it('writes nothing to the console without a logger', () => {
    const spies = (['log', 'warn', 'error', 'info', 'debug'] as const).map((m) => jest.spyOn(console, m).mockImplementation(() => {}))
    try {
      const factory = new PipelineFactory()
      expect(factory.createPipelineFromVirtualModel(vmConfig({ targets: [] }))).toBeNull()
      expect(factory.createPipelineFromVirtualModel(vmConfig({}, new Map()))).toBeNull()
      keep(factory.createPipelineFromVirtualModel(vmConfig({ targets: [{ providerId: 'ghost', modelId: 'x' }, { providerId: 'a', modelId: 'model-a' }] })))
      for (const spy of spies) expect(spy).not.toHaveBeenCalled()
    } finally {
      for (const spy of spies) spy.mockRestore()
    }
  })

  it('gives distinct pipeline ids within one millisecond', () => {
    const now = jest.spyOn(Date, 'now').mockReturnValue(1700000000000)
    try {
      const factory = new PipelineFactory()
      const ids = [1, 2, 3].map(() => factory.validateVirtualModelConfig(vmConfig()).pipelineConfig!.id)
      expect(ids.every((id) => id.startsWith('pipeline_gpt-vm_1700000000000_'))).toBe(true)
      expect(new Set(ids).size).toBe(3)
    } finally {
      now.mockRestore()
    }
  })

  it('gives targets of one provider and model (two keys) distinct ids', () => {
    const r = new PipelineFactory().validateVirtualModelConfig(
      vmConfig({ targets: [{ providerId: 'a', modelId: 'm', keyIndex: 0 }, { providerId: 'a', modelId: 'm', keyIndex: 1 }] }),
    )
    const ids = r.pipelineConfig!.targets.map((t) => t.id)
    expect(ids[0]).toBe('gpt-vm_a_m')
    expect(new Set(ids).size).toBe(2)
  })
})

describe('PipelineFactory.createPipelinesFromVirtualModels', () => {
  it('keys pipelines by virtual model id and leaves out invalid ones', () => {
    const factory = new PipelineFactory()
    const configs = [
      vmConfig({ id: 'vm-one', name: 'One' }),
      vmConfig({ id: 'vm-bad', name: '' }),
      vmConfig({ id: 'vm-none', name: 'None' }, new Map()),
      vmConfig({ id: 'vm-two', name: 'Two' }, { a: providerA }),
    ]
    const map = factory.createPipelinesFromVirtualModels(configs)
    for (const p of map.values()) keep(p)
    expect([...map.keys()]).toEqual(['vm-one', 'vm-two'])
    expect(map.get('vm-one')!.getConfig().virtualModelId).toBe('vm-one')
    expect(map.get('vm-two')!.getTargets().map((t) => t.id)).toEqual(['vm-two_a_model-a'])
  })
})

describe('PipelineFactory.createTestPipeline', () => {
  it('builds healthy test targets with the fixed defaults', async () => {
    const factory = new PipelineFactory({ defaultTimeout: 1234, defaultMaxRetries: 7 })
    const p = keep(factory.createTestPipeline('vm-test', [providerA, providerB], { customMetadata: { suite: 'factory' } }))
    const config = p.getConfig()
    expect(config.id).toMatch(/^test_pipeline_vm-test_\d+_\d+$/)
    expect(config).toMatchObject({
      name: 'Test Pipeline for vm-test',
      virtualModelId: 'vm-test',
      loadBalancingStrategy: 'round-robin',
      healthCheckInterval: 60000,
      maxRetries: 3,
      timeout: 30000,
      metadata: { test: true, suite: 'factory' },
    })
    expect(p.getTargets().map((t) => ({ id: t.id, provider: t.provider, weight: t.weight, enabled: t.enabled, healthStatus: t.healthStatus, metadata: t.metadata }))).toEqual([
      { id: 'test_target_0', provider: providerA, weight: 1, enabled: true, healthStatus: 'healthy', metadata: { test: true } },
      { id: 'test_target_1', provider: providerB, weight: 1, enabled: true, healthStatus: 'healthy', metadata: { test: true } },
    ])
    const r = await p.execute(request(), 'chat')
    expect(r).toMatchObject({ targetId: 'test_target_0', success: true })
  })

  it('respects overrides, 0 retries included', () => {
    const p = keep(
      new PipelineFactory().createTestPipeline('vm-o', [providerA], {
        overrideMaxRetries: 0,
        overrideTimeout: 9000,
        overrideHealthCheckInterval: 45000,
        overrideLoadBalancingStrategy: 'weighted',
      }),
    )
    expect(p.getConfig()).toMatchObject({ maxRetries: 0, timeout: 9000, healthCheckInterval: 45000, loadBalancingStrategy: 'weighted' })
  })

  it('throws the validation error when there is no provider', () => {
    expect(() => new PipelineFactory().createTestPipeline('vm-empty', [])).toThrow(
      new ValidationError('Pipeline configuration validation failed: Pipeline must have at least one target'),
    )
  })
})

describe('PipelineFactory.clonePipelineConfig', () => {
  it('deep-copies config, targets and metadata but shares the providers', () => {
    const factory = new PipelineFactory()
    const original = pipelineConfig({ metadata: { nested: { tags: ['x'] } } })
    original.targets[0].metadata = { region: 'eu' }
    const snapshot = { ...original, targets: original.targets.map((t) => ({ ...t, metadata: t.metadata && { ...t.metadata } })), metadata: { nested: { tags: ['x'] } } }

    const clone = factory.clonePipelineConfig(original)
    expect(clone).not.toBe(original)
    expect(clone).toEqual(original)
    expect(clone.targets[0].provider).toBe(providerA)
    expect(clone.targets[1].provider).toBe(providerB)

    clone.name = 'changed'
    clone.targets[0].weight = 99
    clone.targets[0].metadata!.region = 'us'
    clone.targets.push({ id: 't3', provider: providerA })
    ;(clone.metadata!.nested as { tags: string[] }).tags.push('y')
    expect(original).toEqual(snapshot)
  })
})

describe('PipelineFactory config', () => {
  it('has the documented defaults and returns copies', () => {
    const factory = new PipelineFactory()
    expect(factory.getFactoryConfig()).toEqual(DEFAULTS)
    const copy = factory.getFactoryConfig()
    copy.defaultTimeout = 1
    expect(factory.getFactoryConfig().defaultTimeout).toBe(30000)
  })

  it('updateFactoryConfig affects pipelines created afterwards only', () => {
    const factory = new PipelineFactory()
    const before = keep(factory.createPipelineFromVirtualModel(vmConfig()))!
    factory.updateFactoryConfig({ defaultTimeout: 12345, defaultLoadBalancingStrategy: 'weighted', defaultHealthCheckInterval: 90000 })
    expect(factory.getFactoryConfig()).toEqual({ ...DEFAULTS, defaultTimeout: 12345, defaultLoadBalancingStrategy: 'weighted', defaultHealthCheckInterval: 90000 })
    const after = keep(factory.createPipelineFromVirtualModel(vmConfig()))!
    expect(after.getConfig()).toMatchObject({ timeout: 12345, loadBalancingStrategy: 'weighted', healthCheckInterval: 90000, maxRetries: 3 })
    expect(before.getConfig()).toMatchObject({ timeout: 30000, loadBalancingStrategy: 'round-robin', healthCheckInterval: 60000 })
  })

  it('rejects invalid values with ValidationError naming the field', () => {
    expect(() => new PipelineFactory({ defaultTimeout: 0 })).toThrow(new ValidationError('defaultTimeout must be a positive number, got 0'))
    const factory = new PipelineFactory()
    let err: unknown
    try {
      factory.updateFactoryConfig({ defaultMaxRetries: -1 })
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(ValidationError)
    expect(err).toMatchObject({ message: 'defaultMaxRetries must be a non-negative integer, got -1', field: 'defaultMaxRetries' })
    expect(factory.getFactoryConfig().defaultMaxRetries).toBe(3)
  })
})

describe('0 is respected where it is valid', () => {
  it('a factory default of 0 retries is used', () => {
    const p = keep(new PipelineFactory({ defaultMaxRetries: 0 }).createPipelineFromVirtualModel(vmConfig()))!
    expect(p.getConfig().maxRetries).toBe(0)
  })

  it('an override of 0 retries beats the factory default', () => {
    const p = keep(new PipelineFactory().createPipelineFromVirtualModel(vmConfig(), { overrideMaxRetries: 0 }))!
    expect(p.getConfig().maxRetries).toBe(0)
  })

  it('a target weight of 0 stays 0', () => {
    const r = new PipelineFactory().validateVirtualModelConfig(vmConfig({ targets: [{ providerId: 'a', modelId: 'm', weight: 0 }, { providerId: 'b', modelId: 'm' }] }))
    expect(r.pipelineConfig!.targets.map((t) => t.weight)).toEqual([0, 1])
  })

  it('an override of 0 where 0 is invalid is rejected, not replaced by the default', () => {
    const factory = new PipelineFactory()
    expect(() => factory.createPipelineFromVirtualModel(vmConfig(), { overrideTimeout: 0 })).toThrow(
      new ValidationError('options.overrideTimeout must be a positive number, got 0'),
    )
    expect(() => factory.createTestPipeline('vm', [providerA], { overrideHealthCheckInterval: 0 })).toThrow(ValidationError)
  })
})
