'use strict'
// EnhancedPipelineScheduler (the README's API) and PipelineScheduler (the original framework's
// API over Pipelines). Both are thin: the Rust engine queues, balances, breaks circuits and
// retries; these classes shape arguments and results.

const { SchedulerHost, mergeConfig, plainObject, contextRequestId } = require('./scheduler-host')
const { ValidationError } = require('./errors')
const { Pipeline } = require('./pipeline')

const ENHANCED_DEFAULTS = {
  maxConcurrentRequests: 10,
  requestTimeout: 30000,
  loadBalancingStrategy: 'round-robin',
  circuitBreaker: { enabled: true, failureThreshold: 5, recoveryTimeout: 60000, halfOpenMaxCalls: 1 },
  retry: { maxRetries: 2, baseDelay: 500, maxDelay: 8000, backoffMultiplier: 2, jitter: true },
  maxQueueSize: 10000,
}

function requireConfigObject(config, what) {
  if (config === undefined) return {}
  if (!plainObject(config)) throw new ValidationError(`${what} must be an object`, { field: 'config' })
  return config
}

/** The per-call options the engine reads, from any of the accepted spellings. */
function callOptions(o, requestId) {
  return { requestId: requestId || contextRequestId(o), priority: o.priority, timeout: o.timeout, retries: o.retries, protocol: o.protocol }
}

class EnhancedPipelineScheduler extends SchedulerHost {
  /** `pipelineTracker`: a PipelineTracker that records every request's stages. */
  constructor(config, pipelineTracker) {
    super(mergeConfig(ENHANCED_DEFAULTS, requireConfigObject(config, 'scheduler config')))
    this._setTracker(pipelineTracker, 'scheduler')
    /** id → {provider, options} */
    this.providers = new Map()
  }

  /** Adds a provider to balance over. `options`: `{id?, weight?, maxConcurrentRequests?, enabled?, models?}`. */
  async registerProvider(provider, options = {}) {
    if (!plainObject(options)) throw new ValidationError('registerProvider options must be an object', { field: 'options' })
    const id = options.id || (provider && provider.name)
    if (typeof id !== 'string' || id === '') {
      throw new ValidationError('provider must have a name (or pass options.id)', { field: 'options.id' })
    }
    const { weight, maxConcurrentRequests, enabled, model } = options
    this._addProvider(id, provider, { weight, maxConcurrentRequests, enabled, model })
    this.providers.set(id, { provider, options: { ...options, id } })
  }

  /** Removes a provider by id or provider name; its calls in flight finish. */
  async unregisterProvider(idOrName) {
    let id = this.providers.has(idOrName) ? idOrName : undefined
    if (id === undefined) {
      for (const [k, v] of this.providers) if (v.provider.name === idOrName) id = k
    }
    if (id === undefined) return false
    this.providers.delete(id)
    return this._removeMember(id)
  }

  /** Enables or disables a registered provider without removing it. */
  setProviderEnabled(id, enabled) {
    return this._updateMember(id, { enabled: enabled !== false })
  }

  /** Resolves with the model's response once the request has run (after queueing if busy). */
  scheduleRequest(requestId, request, priority, timeout, options = {}) {
    // Not an async function: a queued request keeps no suspended frame, only its promise chain.
    try {
      return this._chatResponse(request, callOptions({ ...options, priority, timeout }, requestId), options.signal)
    } catch (e) {
      return Promise.reject(e)
    }
  }

  /** Streams the answer; retried/failed over until the first chunk has been yielded. */
  scheduleStreamRequest(requestId, request, priority, timeout, options = {}) {
    return this._stream(request, callOptions({ ...options, priority, timeout }, requestId), options.signal).chunks
  }

  async execute(request, operation = 'chat', options = {}) {
    switch (operation) {
      case 'chat':
        return this._chatResponse(request, callOptions(options), options.signal)
      case 'streamChat':
        return this.executeStreaming(request, operation, options)
      case 'healthCheck':
        return this.checkHealth()
      default:
        throw new ValidationError(`operation must be 'chat', 'streamChat' or 'healthCheck', got ${JSON.stringify(operation)}`, { field: 'operation' })
    }
  }

  executeStreaming(request, _operation = 'streamChat', options = {}) {
    return this._stream(request, callOptions(options), options.signal).chunks
  }

  /** Rejects queued work with CancelledError, cancels running calls, stops health checks. */
  async destroy() {
    this._destroyNative()
  }
}

const ORIGINAL_DEFAULTS = {
  maxConcurrentRequests: 10,
  requestTimeout: 30000,
  retryStrategy: { maxRetries: 2, baseDelay: 500, maxDelay: 8000, backoffMultiplier: 2 },
  loadBalancingStrategy: 'round-robin',
  enableCircuitBreaker: true,
  circuitBreakerThreshold: 5,
  circuitBreakerTimeout: 60000,
}

class PipelineScheduler extends SchedulerHost {
  constructor(virtualModelId, config, pipelineTracker) {
    if (typeof virtualModelId !== 'string' || virtualModelId === '') {
      throw new ValidationError(`virtualModelId must be a non-empty string, got ${JSON.stringify(virtualModelId)}`, { field: 'virtualModelId' })
    }
    super(mergeConfig(ORIGINAL_DEFAULTS, requireConfigObject(config, 'scheduler config')))
    this.virtualModelId = virtualModelId
    this._setTracker(pipelineTracker, virtualModelId)
    this.pipelines = new Map()
  }

  addPipeline(pipeline) {
    if (!(pipeline instanceof Pipeline)) throw new ValidationError('addPipeline expects a Pipeline', { field: 'pipeline' })
    const cfg = pipeline.getConfig()
    if (cfg.virtualModelId !== this.virtualModelId) {
      throw new ValidationError(`Pipeline virtual model ID mismatch. Expected: ${this.virtualModelId}, Got: ${cfg.virtualModelId}`, { field: 'virtualModelId' })
    }
    this._addScheduler(cfg.id, pipeline, { weight: cfg.weight })
    for (const t of pipeline.targets.values()) this._registerSecrets(t.provider)
    this.pipelines.set(cfg.id, pipeline)
  }

  removePipeline(pipelineId) {
    if (!this.pipelines.delete(pipelineId)) return false
    return this._removeMember(pipelineId)
  }

  getPipelines() {
    return [...this.pipelines.values()]
  }

  /**
   * Runs the request on a pipeline (retrying elsewhere on retryable failures) and resolves with a
   * PipelineExecutionResult (`success: true`); a final failure rejects with the typed error,
   * which names `pipelineId` and `attempts`.
   */
  async execute(request, operation = 'chat', options = {}) {
    if (operation === 'healthCheck') return this.checkHealth()
    const timestamp = Date.now()
    const env = await this._chat(request, callOptions(options), options.signal)
    const pipeline = this.pipelines.get(env.pipelineId)
    return {
      requestId: env.requestId,
      pipelineId: env.pipelineId,
      targetId: env.targetId,
      success: true,
      response: env.response,
      duration: env.duration,
      timestamp,
      attempts: env.attempts,
      targetMetrics: pipeline ? pipeline._targetMetrics(env.targetId) : undefined,
      stages: this._stagesOf(env.requestId),
    }
  }

  /** One PipelineExecutionResult per chunk (`response` = the chunk); failures throw typed errors. */
  async *executeStreaming(request, _operation = 'streamChat', options = {}) {
    const timestamp = Date.now()
    const { chunks, route } = this._stream(request, callOptions(options), options.signal)
    for await (const chunk of chunks) {
      const r = route() || {}
      yield { pipelineId: r.pipelineId, targetId: r.targetId, success: true, response: chunk, duration: Date.now() - timestamp, timestamp }
    }
  }

  getVirtualModelId() {
    return this.virtualModelId
  }

  /** Cancels pending work and destroys the pipelines. */
  destroy() {
    this._destroyNative()
    for (const p of this.pipelines.values()) p.destroy()
    this.pipelines.clear()
  }
}

module.exports = { EnhancedPipelineScheduler, PipelineScheduler }
