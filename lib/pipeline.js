'use strict'
// Pipeline (the original framework's class): targets (providers with weights) and a balancing
// strategy, run by a native scheduler with no queue, no retries and no breaker. `execute`
// never rejects: a failure is a `success: false` result naming the target that failed.

const { SchedulerHost, plainObject, contextRequestId } = require('./scheduler-host')
const { ValidationError } = require('./errors')

function validatePipelineConfig(config) {
  if (!plainObject(config)) throw new ValidationError('pipeline config must be an object', { field: 'config' })
  if (typeof config.id !== 'string' || config.id === '') throw new ValidationError('Pipeline ID is required', { field: 'id' })
  if (typeof config.virtualModelId !== 'string' || config.virtualModelId === '') {
    throw new ValidationError('Virtual model ID is required', { field: 'virtualModelId' })
  }
  if (!Array.isArray(config.targets)) throw new ValidationError('targets must be an array', { field: 'targets' })
  const positive = (v) => v === undefined || (typeof v === 'number' && v > 0)
  if (!positive(config.timeout)) throw new ValidationError('Pipeline timeout must be positive', { field: 'timeout' })
  if (!positive(config.healthCheckInterval)) throw new ValidationError('Health check interval must be positive', { field: 'healthCheckInterval' })
}

/** The model a target serves (a virtual model's target model), sent upstream instead of the caller's. */
function targetModel(target) {
  const m = target.modelId ?? (target.metadata && target.metadata.modelId)
  return typeof m === 'string' && m !== '' ? m : undefined
}

function failedResult(pipelineId, targetId, error, timestamp, targetMetrics) {
  return {
    pipelineId,
    targetId,
    success: false,
    error: error.message,
    errorCode: error.code,
    errorDetails: error,
    duration: Date.now() - timestamp,
    timestamp,
    targetMetrics,
  }
}

class Pipeline extends SchedulerHost {
  constructor(config, pipelineTracker) {
    validatePipelineConfig(config)
    const { targets, ...rest } = config
    super({ ...rest, targets: [] })
    this._setTracker(pipelineTracker, config.id)
    this.targets = new Map()
    this.createdAt = Date.now()
    for (const t of targets) this.addTarget(t)
  }

  /** A pipeline runs its targets with no queue, no retries and no breaker. */
  nativeConfigOf(config) {
    return {
      maxConcurrentRequests: 1000000,
      maxQueueSize: 1,
      requestTimeout: config.timeout ?? 60000,
      loadBalancingStrategy: config.loadBalancingStrategy ?? 'round-robin',
      circuitBreaker: { enabled: false },
      retry: { maxRetries: 0 },
      healthCheckInterval: config.healthCheckInterval,
    }
  }

  get id() {
    return this.config.id
  }

  addTarget(target) {
    if (!plainObject(target) || typeof target.id !== 'string' || target.id === '') throw new ValidationError('Target ID is required', { field: 'target.id' })
    if (!target.provider) throw new ValidationError('Target provider is required', { field: 'target.provider' })
    const weight = target.weight === undefined ? 1 : target.weight
    if (typeof weight !== 'number' || !(weight >= 0)) throw new ValidationError('Target weight must be non-negative', { field: 'target.weight' })
    const enabled = target.enabled !== false
    const model = targetModel(target)
    this._addProvider(target.id, target.provider, { weight, enabled, model })
    this.targets.set(target.id, {
      healthStatus: 'unknown',
      lastHealthCheck: Date.now(),
      metadata: {},
      ...target,
      weight,
      enabled,
    })
  }

  removeTarget(targetId) {
    if (!this.targets.delete(targetId)) return false
    return this._removeMember(targetId)
  }

  updateTarget(targetId, updates) {
    const t = this.targets.get(targetId)
    if (!t || !plainObject(updates)) return false
    if (updates.provider && updates.provider !== t.provider) {
      this._removeMember(targetId)
      const merged = { ...t, ...updates }
      this.targets.delete(targetId)
      this.addTarget(merged)
      return true
    }
    const patch = {}
    if (updates.weight !== undefined) patch.weight = updates.weight
    if (updates.enabled !== undefined) patch.enabled = updates.enabled !== false
    if (updates.modelId !== undefined) patch.model = targetModel(updates)
    if (Object.keys(patch).length) this._updateMember(targetId, patch)
    Object.assign(t, updates)
    return true
  }

  setTargetEnabled(targetId, enabled) {
    return this.updateTarget(targetId, { enabled })
  }

  getTarget(targetId) {
    const t = this.targets.get(targetId)
    return t ? { ...t, ...this._targetMetrics(targetId) } : undefined
  }

  getTargets() {
    return [...this.targets.keys()].map((id) => this.getTarget(id))
  }

  /** `{requestCount, errorCount, healthStatus}` of a target, from the engine's counters. */
  _targetMetrics(targetId, metrics = this._nativeMetrics()) {
    const m = metrics.pipelines[targetId]
    const t = this.targets.get(targetId)
    if (!m) return { requestCount: 0, errorCount: 0, healthStatus: t ? t.healthStatus : 'unknown' }
    let healthStatus = t ? t.healthStatus : 'unknown'
    if (m.lastOutcome === 'failure') healthStatus = 'unhealthy'
    else if (m.lastOutcome === 'success') healthStatus = 'healthy'
    else if (m.healthStatus !== 'unknown') healthStatus = m.healthStatus === 'unhealthy' ? 'unhealthy' : 'healthy'
    return { requestCount: m.totalRequests, errorCount: m.failedRequests, healthStatus }
  }

  /** Never rejects: failures are `success: false` results naming the target that failed. */
  async execute(request, operation = 'chat', options = {}) {
    const timestamp = Date.now()
    if (operation === 'healthCheck') {
      await this.checkHealth()
      return { pipelineId: this.id, targetId: 'all', success: this.isHealthy(), response: this.getHealth(), duration: Date.now() - timestamp, timestamp }
    }
    try {
      const env = await this._chat(request, { timeout: options.timeout, requestId: contextRequestId(options) }, options.signal)
      return {
        requestId: env.requestId,
        pipelineId: this.id,
        targetId: env.pipelineId,
        success: true,
        response: env.response,
        duration: env.duration,
        timestamp,
        targetMetrics: this._targetMetrics(env.pipelineId),
        stages: this._stagesOf(env.requestId),
      }
    } catch (e) {
      const targetId = e.pipelineId || 'unknown'
      return { ...failedResult(this.id, targetId, e, timestamp, this._targetMetrics(targetId)), requestId: e.requestId, stages: this._stagesOf(e.requestId) }
    }
  }

  /** One result per chunk; a failure is a final `success: false` item (with `partial` for mid-stream ones). */
  async *executeStreaming(request, _operation = 'streamChat', options = {}) {
    const timestamp = Date.now()
    const { chunks, route } = this._stream(request, { timeout: options.timeout, requestId: contextRequestId(options) }, options.signal)
    try {
      for await (const chunk of chunks) {
        const r = route() || {}
        yield { pipelineId: this.id, targetId: r.pipelineId, success: true, response: chunk, duration: Date.now() - timestamp, timestamp }
      }
    } catch (e) {
      const r = route() || {}
      const targetId = e.pipelineId || r.pipelineId || 'unknown'
      yield { ...failedResult(this.id, targetId, e, timestamp, this._targetMetrics(targetId)), partial: e.partial }
    }
  }

  getMetrics() {
    const m = this._nativeMetrics()
    const targets = [...this.targets.keys()].map((id) => this._targetMetrics(id, m))
    const lastUsed = Math.max(0, ...Object.values(m.pipelines).map((p) => p.lastUsed || 0))
    return {
      totalRequests: m.totalRequests,
      successfulRequests: m.successfulRequests,
      failedRequests: m.failedRequests,
      averageResponseTime: m.averageResponseTime,
      currentTargets: this.targets.size,
      healthyTargets: targets.filter((t) => t.healthStatus !== 'unhealthy').length,
      unhealthyTargets: targets.filter((t) => t.healthStatus === 'unhealthy').length,
      errorRate: m.errorRate,
      uptime: this.createdAt,
      lastUsed,
    }
  }

  getConfig() {
    return { ...this.config, targets: this.getTargets() }
  }

  /** At least one enabled target that has not just failed. */
  isHealthy() {
    return this.getTargets().some((t) => t.enabled && t.healthStatus !== 'unhealthy')
  }

  destroy() {
    this._destroyNative()
    this.targets.clear()
  }
}

module.exports = { Pipeline }
