'use strict'
// The RCC v4 routing table: `buildRoutingTable` expands a config into one pipeline per
// provider × target model × API key (in Rust, crates/core/src/route); `PipelineManager` builds
// every pipeline up front as four layers (llmswitch → workflow → compatibility → provider) and
// handshakes them; `PipelineRouter` names a virtual model's pipelines; `LoadBalancer` picks one;
// `PipelineDebugSystem` lists what is live and checks it against the table.
//
// Requests through `PipelineManager.execute` run on one native scheduler per virtual model whose
// members are that route's pipelines, so each API key has its own breaker: a key that starts
// failing (401, 429, 5xx) is cooled down while the others keep serving. Zero fallback by default
// (a failed request throws, naming the pipeline); `fallback: 'next-pipeline'` retries the next.

const fs = require('node:fs')
const native = require('../native.js')
const { OpenAICompatibleProvider, nativeHandleOf } = require('./providers')
const { EnhancedPipelineScheduler } = require('./schedulers')
const { PipelineError, ValidationError, NoAvailablePipelineError, fromNative } = require('./errors')
const { plainObject } = require('./scheduler-host')

const SOURCE_CONFIG = Symbol('rcc.routingConfig')
const LAYERS = ['llmswitch', 'workflow', 'compatibility', 'provider']
/** Provider types served by the built-in OpenAI-compatible provider. */
const OPENAI_TYPES = ['openai', 'openai-compatible', 'lmstudio', 'vllm', 'ollama', 'deepseek', 'dashscope', 'openrouter']
const STRATEGIES = ['round-robin', 'random', 'weighted', 'least-connections']

function callNative(f) {
  try {
    return f()
  } catch (e) {
    throw fromNative(e)
  }
}

/** Keeps the config (which holds the API keys) with the table without making it enumerable. */
function withSource(table, config) {
  Object.defineProperty(table, SOURCE_CONFIG, { value: config, enumerable: false })
  return table
}

/** Expands a routing config (see crates/core/src/route/mod.rs) into a RoutingTable. */
function buildRoutingTable(config) {
  if (!plainObject(config)) throw new ValidationError('routing config must be an object', { field: 'config' })
  const text = JSON.stringify(config)
  return withSource(JSON.parse(callNative(() => native.buildRoutingTable(text))), JSON.parse(text))
}

/** Reads a JSON routing config file; errors name the file, line/column or the bad field's path. */
function loadRoutingTable(path) {
  if (typeof path !== 'string' || path === '') throw new ValidationError('path must be a non-empty string', { field: 'path' })
  const table = JSON.parse(callNative(() => native.buildRoutingTableFromFile(path)))
  // The file parsed and validated above; read it again for the keys the table leaves out.
  return withSource(table, JSON.parse(fs.readFileSync(path, 'utf8').replace(/^\uFEFF/, '')))
}

// ---- the four layers -------------------------------------------------------------------

/** Layer 1: protocol conversion. Requests and answers are OpenAI Chat here, so it passes through. */
class LLMSwitchLayer {
  constructor(protocol = 'openai-chat') {
    if (protocol !== 'openai-chat') {
      throw new ValidationError(`llmswitch protocol '${protocol}' is not supported; use 'openai-chat'`, { field: 'protocol' })
    }
    this.protocol = protocol
    this.passThrough = true
  }
  convertRequest(request) { return request }
  convertResponse(response) { return response }
  convertChunk(chunk) { return chunk }
}

/** Layer 2: streaming control. Streams stay streams and non-streams stay non-streams. */
class WorkflowLayer {
  constructor() {
    this.passThrough = true
  }
  processRequest(request) { return request }
  processResponse(response) { return response }
}

/** Layer 3: provider quirks; for OpenAI-compatible servers, only the target model is set. */
class CompatibilityLayer {
  constructor(type, targetModel) {
    this.type = type
    this.targetModel = targetModel
    // The model rewrite is done natively (member `model`) when the pipeline is scheduled.
    this.passThrough = true
  }
  mapRequest(request) { return { ...request, model: this.targetModel } }
  mapResponse(response) { return response }
}

/** One pipeline of the table: a provider × model × API key with its four layers. */
class RoutePipeline {
  constructor(spec, layers) {
    this.pipelineId = spec.pipelineId
    this.spec = spec
    this.layers = layers
    this.status = 'created'
    this.layerStatus = Object.fromEntries(LAYERS.map((l) => [l, 'created']))
  }

  /** Checks that every layer is present and exposes what the next one calls; then `runtime`. */
  handshake() {
    const need = {
      llmswitch: ['convertRequest', 'convertResponse', 'convertChunk'],
      workflow: ['processRequest', 'processResponse'],
      compatibility: ['mapRequest', 'mapResponse'],
      provider: ['chat', 'streamChat'],
    }
    for (const layer of LAYERS) {
      const obj = this.layers[layer]
      const missing = obj ? need[layer].filter((m) => typeof obj[m] !== 'function') : need[layer]
      if (missing.length) {
        this.status = 'failed'
        this.layerStatus[layer] = 'failed'
        throw new PipelineError(`Pipeline ${this.pipelineId}: layer '${layer}' is not wired (missing ${missing.join(', ')})`, {
          code: 'PIPELINE_NOT_WIRED',
          pipelineId: this.pipelineId,
        })
      }
      this.layerStatus[layer] = 'ready'
    }
    this.status = 'runtime'
    return true
  }

  /** True when every layer but the provider passes through, so the provider can be scheduled natively. */
  get passThrough() {
    return ['llmswitch', 'workflow', 'compatibility'].every((l) => this.layers[l].passThrough === true)
  }

  _ready() {
    if (this.status !== 'runtime') throw new PipelineError(`Pipeline ${this.pipelineId} not ready (${this.status})`, { code: 'PIPELINE_NOT_READY', pipelineId: this.pipelineId })
  }

  _inbound(request) {
    const { llmswitch, workflow, compatibility } = this.layers
    return compatibility.mapRequest(workflow.processRequest(llmswitch.convertRequest(request)))
  }

  /** Runs the request down the four layers and the answer back up (this pipeline only). */
  async execute(request, options) {
    this._ready()
    const { llmswitch, workflow, compatibility, provider } = this.layers
    const response = await provider.chat(this._inbound(request), options)
    return llmswitch.convertResponse(workflow.processResponse(compatibility.mapResponse(response)))
  }

  async *executeStreaming(request, options) {
    this._ready()
    const { llmswitch, compatibility, provider } = this.layers
    for await (const chunk of provider.streamChat(this._inbound(request), options)) {
      yield llmswitch.convertChunk(compatibility.mapResponse(chunk))
    }
  }

  /** The scheduler's view of this pipeline: a provider-like object for the JS bridge. */
  asProvider() {
    return {
      name: this.pipelineId,
      chat: (request, options) => this.execute(request, options),
      streamChat: (request, options) => this.executeStreaming(request, options),
      healthCheck: () => this.layers.provider.healthCheck(),
    }
  }

  getDebugInfo() {
    return {
      pipelineId: this.pipelineId,
      status: this.status,
      routeInfo: { virtualModel: this.spec.virtualModels.join(', '), virtualModels: [...this.spec.virtualModels], provider: this.spec.provider, targetModel: this.spec.targetModel, apiKeyIndex: this.spec.apiKeyIndex },
      endpoint: this.spec.endpoint,
      type: this.spec.type,
      layerStatus: { ...this.layerStatus },
    }
  }

  destroy() {
    this.status = 'destroyed'
  }
}

// ---- the manager ---------------------------------------------------------------------------

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
}

class PipelineManager {
  /**
   * `options`: `{fallback?: 'none'|'next-pipeline', providerFactory?: (spec, apiKey) => provider,
   * maxConcurrentRequests?, requestTimeout?, loadBalancingStrategy?, circuitBreaker?, tracker?}`.
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
    let provider
    if (this.options.providerFactory) {
      provider = this.options.providerFactory({ ...spec }, apiKey)
    } else if (OPENAI_TYPES.includes(spec.type)) {
      const pc = spec.providerConfig || {}
      provider = new OpenAICompatibleProvider({
        name: spec.pipelineId,
        endpoint: spec.endpoint,
        apiKey,
        defaultModel: spec.targetModel,
        supportedModels: [spec.targetModel],
        ...(pc.headers ? { headers: pc.headers } : {}),
        ...(pc.timeouts ? { timeouts: pc.timeouts } : {}),
      })
    } else {
      throw new ValidationError(
        `providers.${spec.provider}.type '${spec.type}' has no built-in provider (built in: ${OPENAI_TYPES.join(', ')}); pass options.providerFactory`,
        { field: `providers.${spec.provider}.type` },
      )
    }
    const protocol = spec.providerConfig && spec.providerConfig.protocol
    return new RoutePipeline(spec, {
      llmswitch: new LLMSwitchLayer(protocol),
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
        // Zero fallback: one attempt. Fallback: each other pipeline of the route once, at once.
        retry: fallback ? { maxRetries: Math.max(0, entries.length - 1), baseDelay: 1, maxDelay: 1, jitter: false, failoverOnMemberErrors: true } : { maxRetries: 0 },
      },
      o.tracker,
    )
    for (const e of entries) {
      const pipeline = this.pipelines.get(e.pipelineId)
      // Pass-through layers: schedule the provider itself (natively when it is built in), with
      // the target model set by the engine. Otherwise the whole pipeline runs through JS.
      const member = pipeline.passThrough ? pipeline.layers.provider : pipeline.asProvider()
      scheduler._addProvider(e.pipelineId, member, { weight: e.weight, model: pipeline.passThrough ? e.targetModel : undefined })
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

class PipelineRouter {
  constructor(table) {
    if (!plainObject(table) || !plainObject(table.routes)) throw new ValidationError('PipelineRouter needs a routing table', { field: 'table' })
    this.table = table
  }

  /** `{virtualModel, availablePipelines}` for a virtual model (the default route when undefined). */
  route(virtualModel) {
    const vm = virtualModel ?? this.table.defaultRoute
    const entries = this.table.routes[vm]
    if (!entries) {
      throw new NoAvailablePipelineError(`No route for virtual model '${vm}' (routes: ${Object.keys(this.table.routes).join(', ')})`)
    }
    const availablePipelines = [...new Set(entries.filter((e) => e.isActive !== false).map((e) => e.pipelineId))]
    return { virtualModel: vm, availablePipelines }
  }
}

class LoadBalancer {
  /** `strategy`: round-robin (per route key, the seed's rule), random, weighted or least-connections. */
  constructor(manager, strategy = 'round-robin') {
    if (!STRATEGIES.includes(strategy)) {
      throw new ValidationError(`strategy must be one of ${STRATEGIES.join(', ')}, got ${JSON.stringify(strategy)}`, { field: 'strategy' })
    }
    this.manager = manager
    this.strategy = strategy
    this.counters = new Map()
    this.credits = new Map()
  }

  /** Picks one id; pipelines whose breaker is open are skipped while another is available. */
  selectPipeline(availablePipelines) {
    if (!Array.isArray(availablePipelines) || availablePipelines.length === 0) throw new NoAvailablePipelineError('No available pipelines')
    const open = (id) => this.manager && typeof this.manager.circuitState === 'function' && this.manager.circuitState(id) === 'open'
    const usable = availablePipelines.filter((id) => !open(id))
    const ids = usable.length ? usable : availablePipelines
    if (ids.length === 1) return ids[0]
    switch (this.strategy) {
      case 'random':
        return ids[Math.floor(Math.random() * ids.length)]
      case 'weighted':
        return this._weighted(ids)
      case 'least-connections':
        return this._leastConnections(ids)
      default: {
        const key = [...availablePipelines].sort().join(',')
        const n = this.counters.get(key) || 0
        this.counters.set(key, n + 1)
        return ids[n % ids.length]
      }
    }
  }

  _weight(id) {
    const spec = this.manager && this.manager.table && this.manager.table.pipelines[id]
    if (!spec) return 1
    let w = 0
    for (const entries of Object.values(this.manager.table.routes)) for (const e of entries) if (e.pipelineId === id) w = Math.max(w, e.weight)
    return w || 0
  }

  /** Smooth weighted round-robin (the nginx rule), exact over a cycle. */
  _weighted(ids) {
    let total = 0
    let best
    for (const id of ids) {
      const w = this._weight(id)
      total += w
      const c = (this.credits.get(id) || 0) + w
      this.credits.set(id, c)
      if (best === undefined || c > this.credits.get(best)) best = id
    }
    this.credits.set(best, this.credits.get(best) - total)
    return best
  }

  _leastConnections(ids) {
    const active = (id) => {
      let n = 0
      if (this.manager && this.manager.routeSchedulers) {
        for (const s of this.manager.routeSchedulers.values()) {
          const m = s.getMetrics().pipelines[id]
          if (m) n += m.activeRequests
        }
      }
      return n
    }
    let best = ids[0]
    let bestN = active(best)
    for (const id of ids.slice(1)) {
      const n = active(id)
      if (n < bestN) [best, bestN] = [id, n]
    }
    return best
  }
}

class PipelineDebugSystem {
  /** `logger`: `{log(line)}`, console by default. */
  constructor(manager, logger = console) {
    this.manager = manager
    this.logger = logger
  }

  /** Writes and returns a readable listing of every live pipeline. */
  recordLivePipelines() {
    const info = this.manager.getPipelinesDebugInfo()
    const lines = [`Live pipelines (${info.length}):`]
    for (const p of info) {
      lines.push(`  ${p.status === 'runtime' ? 'OK ' : '!! '} ${p.pipelineId}`)
      lines.push(`      route: ${p.routeInfo.virtualModel} -> ${p.routeInfo.provider} / ${p.routeInfo.targetModel} (key #${p.routeInfo.apiKeyIndex})`)
      lines.push(`      status: ${p.status}, circuit: ${p.circuitState}, endpoint: ${p.endpoint}`)
      lines.push(`      layers: ${LAYERS.map((l) => `${l}=${p.layerStatus[l]}`).join(' ')}`)
    }
    const text = lines.join('\n')
    if (this.logger && typeof this.logger.log === 'function') this.logger.log(text)
    return text
  }

  /** Throws (naming them) when a pipeline the table expects is not live; returns the counts. */
  validateAgainstConfig(table) {
    if (!plainObject(table) || !plainObject(table.pipelines)) throw new ValidationError('validateAgainstConfig needs a routing table', { field: 'table' })
    const live = this.manager.getAllPipelines()
    const expected = Object.keys(table.pipelines)
    const missing = expected.filter((id) => !live.has(id) || live.get(id).status !== 'runtime')
    if (missing.length) {
      throw new PipelineError(`Pipeline initialization validation failed: ${missing.length} of ${expected.length} expected pipelines are not live: ${missing.join(', ')}`, {
        code: 'PIPELINE_VALIDATION_FAILED',
      })
    }
    return { expected: expected.length, actual: live.size }
  }
}

module.exports = {
  buildRoutingTable,
  loadRoutingTable,
  PipelineManager,
  PipelineRouter,
  LoadBalancer,
  PipelineDebugSystem,
  RoutePipeline,
  LLMSwitchLayer,
  WorkflowLayer,
  CompatibilityLayer,
}
