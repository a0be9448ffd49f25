'use strict'
// PipelineManager: every pipeline of a routing table built and handshaken up front, and one
// native scheduler per virtual model whose members are that route's pipelines, so each API key
// has its own breaker: a key that starts failing (401, 429, 5xx) is cooled down while the others
// keep serving. Zero fallback by default (a failed request throws, naming the pipeline);
// `fallback: 'next-pipeline'` fails over to the next pipeline of the route.

const native = require('../../native.js')
const { OpenAICompatibleProvider } = require('../providers')
const { QwenProvider } = require('../qwen')
const { IFlowProvider } = require('../iflow')
const { EnhancedPipelineScheduler } = require('../schedulers')
const { PipelineError, ValidationError, NoAvailablePipelineError, callNative } = require('../errors')
const { plainObject } = require('../scheduler-host')
const { loadRoutingTable, SOURCE_CONFIG } = require('./table')
const { LLMSwitchLayer, WorkflowLayer, CompatibilityLayer, RoutePipeline } = require('./layers')
const { STRATEGIES } = require('./balancer')
const { checkProtocol } = require('../llmswitch')

/** Provider types served by the built-in OpenAI-compatible provider. */
const OPENAI_TYPES = ['openai', 'openai-compatible', 'lmstudio', 'vllm', 'ollama', 'deepseek', 'dashscope', 'openrouter']

/** The provider config a pipeline spec implies (one key, one model, the provider's own options). */
function providerConfigOf(spec, apiKey) {
  const pc = spec.providerConfig || {}
  return {
    name: spec.pipelineId,
    endpoint: spec.endpoint,
    ...(apiKey ? { apiKey } : {}),
    defaultModel: spec.targetModel,
    supportedModels: [spec.targetModel],
    ...(pc.headers ? { headers: pc.headers } : {}),
    ...(pc.timeouts ? { timeouts: pc.timeouts } : {}),
  }
}

/** Built-in providers by `type`: OpenAI-compatible ones, Qwen (DashScope key or OAuth) and iFlow. */
function builtInProvider(spec, apiKey) {
  const config = providerConfigOf(spec, apiKey)
  const pc = spec.providerConfig || {}
  if (OPENAI_TYPES.includes(spec.type)) return new OpenAICompatibleProvider(config)
  if (spec.type === 'qwen') return new QwenProvider({ ...config, ...(pc.oauth ? { oauth: pc.oauth } : {}), ...(pc.tokenStoragePath ? { tokenStoragePath: pc.tokenStoragePath } : {}) })
  if (spec.type === 'iflow') return new IFlowProvider({ ...config, ...(pc.credentialsPath ? { credentialsPath: pc.credentialsPath } : {}), ...(pc.oauth ? { oauth: pc.oauth } : {}), ...(apiKey ? {} : { authMode: pc.authMode }) })
  throw new ValidationError(
    `providers.${spec.provider}.type '${spec.type}' has no built-in provider (built in: ${[...OPENAI_TYPES, 'qwen', 'iflow'].join(', ')}); pass options.providerFactory`,
    { field: `providers.${spec.provider}.type` },
  )
}

const MANAGER_DEFAULTS = {
  fallback: undefined,
  maxConcurrentRequests: 64,
  requestTimeout: 60000,
  loadBalancingStrategy: 'round-robin',
  circuitBreaker: { enabled: true, failureThreshold: 3, recoveryTimeout: 30000 },
}

function validateManagerOptions(o) {
  if (!plainObject(o)) throw new ValidationError('PipelineManager options must be an object', { field: 'options' })
  if (o.fallback !== undefined && o.fallback !== 'none' && o.fallback !== 'next-pipeline') {
    throw new ValidationError(`fallback must be 'none' or 'next-pipeline', got ${JSON.stringify(o.fallback)}`, { field: 'fallback' })
  }
  if (o.providerFactory !== undefined && typeof o.providerFactory !== 'function') {
    throw new ValidationError('providerFactory must be a function (spec, apiKey) => provider', { field: 'providerFactory' })
  }
  const fail = (field, what) => {
    throw new ValidationError(`${field} must be ${what}, got ${JSON.stringify(o[field])}`, { field })
  }
  if (o.maxConcurrentRequests !== undefined && !(Number.isInteger(o.maxConcurrentRequests) && o.maxConcurrentRequests > 0)) fail('maxConcurrentRequests', 'a positive integer')
  if (o.requestTimeout !== undefined && !(typeof o.requestTimeout === 'number' && o.requestTimeout > 0)) fail('requestTimeout', 'a positive number of ms')
  if (o.loadBalancingStrategy !== undefined && !STRATEGIES.includes(o.loadBalancingStrategy)) fail('loadBalancingStrategy', `one of ${STRATEGIES.join(', ')}`)
  if (o.circuitBreaker !== undefined && !plainObject(o.circuitBreaker)) fail('circuitBreaker', 'an object')
  if (o.tracker !== undefined && !(o.tracker && o.tracker.nativeTracker)) fail('tracker', 'a PipelineTracker')
  if (o.protocol !== undefined) checkProtocol(o.protocol, 'protocol')
}

class PipelineManager {
  /**
   * `options`: `{fallback?: 'none'|'next-pipeline', providerFactory?: (spec, apiKey) => provider,
   * maxConcurrentRequests?, requestTimeout?, loadBalancingStrategy?, circuitBreaker?, tracker?,
   * protocol?: the protocol callers speak (requests converted to OpenAI Chat and answers back)}`.
   */
  constructor(options = {}) {
    validateManagerOptions(options)
    this.options = { ...MANAGER_DEFAULTS, ...options, circuitBreaker: { ...MANAGER_DEFAULTS.circuitBreaker, ...(options.circuitBreaker || {}) } }
    this.pipelines = new Map()
    /** virtual model → the scheduler over its route's pipelines */
    this.routeSchedulers = new Map()
    this.table = null
  }

  /** Reads a routing config file, builds the table and every pipeline. */
  static async fromFile(path, options) {
    const manager = new PipelineManager(options)
    await manager.initializeFromRoutingTable(loadRoutingTable(path))
    return manager
  }

  /**
   * Builds and handshakes every pipeline of the table, then one scheduler per virtual model.
   * `config` (with the API keys) is taken from a table made by buildRoutingTable when omitted.
   */
  async initializeFromRoutingTable(table, config) {
    if (!plainObject(table) || !plainObject(table.routes) || !plainObject(table.pipelines)) {
      throw new ValidationError('routing table must be the result of buildRoutingTable()', { field: 'table' })
    }
    const source = config || table[SOURCE_CONFIG]
    const built = new Map()
    try {
      for (const spec of Object.values(table.pipelines)) {
        const pipeline = this._createPipeline(spec, source)
        pipeline.handshake()
        built.set(spec.pipelineId, pipeline)
      }
    } catch (e) {
      for (const p of built.values()) p.destroy()
      throw e
    }
    this.destroyRoutes()
    this.pipelines = built
    this.table = table
    for (const [virtualModel, entries] of Object.entries(table.routes)) {
      this.routeSchedulers.set(virtualModel, this._routeScheduler(virtualModel, entries))
    }
  }

  _createPipeline(spec, source) {
    let apiKey
    if (spec.hasApiKey) {
      if (!source) throw new ValidationError(`pipeline ${spec.pipelineId} needs its API key: pass the routing config to initializeFromRoutingTable(table, config)`, { field: 'config' })
      apiKey = callNative(() => native.routingApiKey(JSON.stringify(source), spec.provider, spec.apiKeyIndex)) ?? undefined
    }
    const provider = this.options.providerFactory ? this.options.providerFactory({ ...spec }, apiKey) : builtInProvider(spec, apiKey)
    return new RoutePipeline(spec, {
      llmswitch: new LLMSwitchLayer(this.options.protocol),
      workflow: new WorkflowLayer(),
      compatibility: new CompatibilityLayer(spec.type, spec.targetModel),
      provider,
    })
  }

  _fallback() {
    return this.options.fallback || (this.table && this.table.fallback) || 'none'
  }

  _routeScheduler(virtualModel, entries) {
    const fallback = this._fallback() === 'next-pipeline'
    const o = this.options
    const scheduler = new EnhancedPipelineScheduler(
      {
        maxConcurrentRequests: o.maxConcurrentRequests,
        requestTimeout: o.requestTimeout,
        loadBalancingStrategy: o.loadBalancingStrategy,
        circuitBreaker: o.circuitBreaker,
        protocol: o.protocol,
        // Zero fallback: one attempt. Fallback: each other pipeline of the route once, at once.
        retry: fallback ? { maxRetries: Math.max(0, entries.length - 1), baseDelay: 1, maxDelay: 1, jitter: false, failoverOnMemberErrors: true } : { maxRetries: 0 },
      },
      o.tracker,
    )
    for (const e of entries) {
      // The llmswitch, workflow and compatibility layers pass OpenAI Chat through (protocol
      // conversion arrives with the workflow/llmswitch work), so the engine schedules the
      // provider itself — natively when it is built in — and sets the target model.
      const pipeline = this.pipelines.get(e.pipelineId)
      scheduler._addProvider(e.pipelineId, pipeline.layers.provider, { weight: e.weight, model: e.targetModel })
    }
    return scheduler
  }

  getPipeline(pipelineId) {
    return this.pipelines.get(pipelineId)
  }

  /** Every live pipeline by id. */
  getAllPipelines() {
    return new Map(this.pipelines)
  }

  getPipelinesDebugInfo() {
    return [...this.pipelines.values()].map((p) => ({ ...p.getDebugInfo(), circuitState: this.circuitState(p.pipelineId) }))
  }

  /** The pipeline's breaker state in the route schedulers (`open` if open in any). */
  circuitState(pipelineId) {
    let state = 'closed'
    for (const s of this.routeSchedulers.values()) {
      const m = s.getMetrics().pipelines[pipelineId]
      if (m && m.circuitState === 'open') return 'open'
      if (m && m.circuitState === 'half-open') state = 'half-open'
    }
    return state
  }

  _routeSchedulerFor(virtualModel) {
    const vm = virtualModel ?? (this.table && this.table.defaultRoute)
    const s = this.routeSchedulers.get(vm)
    if (!s) {
      const known = [...this.routeSchedulers.keys()].join(', ') || 'none'
      throw new NoAvailablePipelineError(`No route for virtual model '${vm}' (routes: ${known})`)
    }
    return s
  }

  /** Names the pipeline in a failure's message (zero fallback: the error is thrown as is). */
  _named(e) {
    if (e instanceof PipelineError && e.pipelineId && !String(e.message).startsWith(`Pipeline ${e.pipelineId} failed`)) {
      e.message = `Pipeline ${e.pipelineId} failed: ${e.message}`
    }
    return e
  }

  /** Routes `request` by virtual model (the default route when undefined) and runs it. */
  async execute(virtualModel, request, options = {}) {
    const s = this._routeSchedulerFor(virtualModel)
    try {
      return await s.execute(request, 'chat', options)
    } catch (e) {
      throw this._named(e)
    }
  }

  async *executeStreaming(virtualModel, request, options = {}) {
    const s = this._routeSchedulerFor(virtualModel)
    try {
      yield* s.executeStreaming(request, 'streamChat', options)
    } catch (e) {
      throw this._named(e)
    }
  }

  /** The route scheduler's metrics for a virtual model (per pipeline in `pipelines`). */
  getRouteMetrics(virtualModel) {
    return this._routeSchedulerFor(virtualModel).getMetrics()
  }

  destroyRoutes() {
    for (const s of this.routeSchedulers.values()) s.destroy()
    this.routeSchedulers.clear()
  }

  destroy() {
    this.destroyRoutes()
    for (const p of this.pipelines.values()) p.destroy()
    this.pipelines.clear()
  }
}

module.exports = { PipelineManager }
