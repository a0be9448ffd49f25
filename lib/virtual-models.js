'use strict'
// VirtualModelSchedulerManager: one PipelineScheduler per virtual model (its targets in one
// Pipeline built by the factory), lookup by virtual model id, per-model metrics, the original's
// health scoring with correct arithmetic, and real scale-out: a model whose queue stays long
// gets more concurrency, up to a ceiling, and gives it back when idle.

const { EventEmitter } = require('node:events')
const { PipelineFactory } = require('./factory')
const { PipelineScheduler } = require('./schedulers')
const { ValidationError, NoAvailablePipelineError } = require('./errors')
const { plainObject } = require('./scheduler-host')

const MANAGER_DEFAULTS = {
  maxSchedulers: 100,
  defaultSchedulerConfig: {},
  enableAutoScaling: false,
  scalingThresholds: { minRequestsPerMinute: 0, maxRequestsPerMinute: Infinity, scaleUpCooldown: 5000, scaleDownCooldown: 30000 },
  autoScaling: { checkInterval: 1000, queueThreshold: 1, sustainedChecks: 3, ceilingMultiplier: 4 },
  healthCheckInterval: undefined,
  metricsRetentionPeriod: 3600000,
}

function positive(v) {
  return typeof v === 'number' && Number.isFinite(v) && v > 0
}

function validateManagerConfig(c) {
  const fail = (field, what, got) => {
    throw new ValidationError(`${field} must be ${what}, got ${JSON.stringify(got)}`, { field })
  }
  if (!Number.isInteger(c.maxSchedulers) || c.maxSchedulers < 1) fail('maxSchedulers', 'a positive integer', c.maxSchedulers)
  if (!plainObject(c.defaultSchedulerConfig)) fail('defaultSchedulerConfig', 'an object', c.defaultSchedulerConfig)
  if (typeof c.enableAutoScaling !== 'boolean') fail('enableAutoScaling', 'a boolean', c.enableAutoScaling)
  const t = c.scalingThresholds
  if (!plainObject(t)) fail('scalingThresholds', 'an object', t)
  for (const k of ['scaleUpCooldown', 'scaleDownCooldown']) {
    if (typeof t[k] !== 'number' || !(t[k] >= 0)) fail(`scalingThresholds.${k}`, 'a non-negative number', t[k])
  }
  const a = c.autoScaling
  if (!plainObject(a)) fail('autoScaling', 'an object', a)
  if (!positive(a.checkInterval)) fail('autoScaling.checkInterval', 'a positive number', a.checkInterval)
  if (typeof a.queueThreshold !== 'number' || !(a.queueThreshold >= 0)) fail('autoScaling.queueThreshold', 'a non-negative number', a.queueThreshold)
  if (!Number.isInteger(a.sustainedChecks) || a.sustainedChecks < 1) fail('autoScaling.sustainedChecks', 'a positive integer', a.sustainedChecks)
  if (a.maxConcurrentRequests !== undefined && (!Number.isInteger(a.maxConcurrentRequests) || a.maxConcurrentRequests < 1)) {
    fail('autoScaling.maxConcurrentRequests', 'a positive integer', a.maxConcurrentRequests)
  }
  if (!positive(a.ceilingMultiplier)) fail('autoScaling.ceilingMultiplier', 'a positive number', a.ceilingMultiplier)
  if (c.healthCheckInterval !== undefined && !positive(c.healthCheckInterval)) fail('healthCheckInterval', 'a positive number', c.healthCheckInterval)
}

/** `errors/requests`: < 0.1 healthy, < 0.3 degraded, else unhealthy (no requests: healthy). */
function modelStatus(m) {
  if (m.requests === 0) return 'healthy'
  const rate = m.errors / m.requests
  return rate < 0.1 ? 'healthy' : rate < 0.3 ? 'degraded' : 'unhealthy'
}

const SCORE = { healthy: 100, degraded: 50, unhealthy: 0 }

class VirtualModelSchedulerManager extends EventEmitter {
  constructor(config = {}, pipelineTracker) {
    super()
    if (!plainObject(config)) throw new ValidationError('manager config must be an object', { field: 'config' })
    this.config = {
      ...MANAGER_DEFAULTS,
      ...config,
      scalingThresholds: { ...MANAGER_DEFAULTS.scalingThresholds, ...(config.scalingThresholds || {}) },
      autoScaling: { ...MANAGER_DEFAULTS.autoScaling, ...(config.autoScaling || {}) },
    }
    validateManagerConfig(this.config)
    this.pipelineTracker = pipelineTracker
    this.factory = new PipelineFactory(config.pipelineFactoryConfig, pipelineTracker)
    /** virtualModelId → {mapping, scheduler, metrics, scaling} */
    this.models = new Map()
    this.startedAt = Date.now()
    this.lastHealthCheck = 0
    this.nextSchedulerSeq = 0
    this.scalingTimer = null
    this.healthTimer = null
    if (this.config.enableAutoScaling) {
      this.scalingTimer = setInterval(() => this._autoScale(), this.config.autoScaling.checkInterval)
      this.scalingTimer.unref()
    }
    if (this.config.healthCheckInterval) {
      this.healthTimer = setInterval(() => this._checkHealth(), this.config.healthCheckInterval)
      this.healthTimer.unref()
    }
  }

  /**
   * Builds the virtual model's pipeline (all its targets) and scheduler; resolves with the
   * scheduler id. `options.schedulerConfig` overrides `defaultSchedulerConfig` for this model.
   */
  async registerVirtualModel(virtualModelConfig, providers, options = {}) {
    if (!plainObject(virtualModelConfig)) throw new ValidationError('virtual model config must be an object', { field: 'virtualModel' })
    const id = virtualModelConfig.id
    if (this.models.has(id)) throw new ValidationError(`Virtual model ${id} is already registered`, { field: 'id' })
    if (this.models.size >= this.config.maxSchedulers) {
      throw new ValidationError(`Maximum number of schedulers (${this.config.maxSchedulers}) reached`, { field: 'maxSchedulers' })
    }
    const providerMap = providers instanceof Map ? new Map(providers) : new Map(Object.entries(providers || {}))
    const validation = this.factory.validateVirtualModelConfig({ virtualModel: virtualModelConfig, providers: providerMap })
    if (!validation.isValid) {
      throw new ValidationError(`Virtual model ${id} configuration validation failed: ${validation.errors.join(', ')}`, { field: 'virtualModel' })
    }
    const pipeline = this.factory.createPipelineFromVirtualModel({ virtualModel: virtualModelConfig, providers: providerMap }, options.creationOptions)
    if (!pipeline) throw new NoAvailablePipelineError(`Failed to create pipeline for virtual model ${id}`)
    let scheduler
    try {
      scheduler = new PipelineScheduler(id, { ...this.config.defaultSchedulerConfig, ...(options.schedulerConfig || {}) }, this.pipelineTracker)
      scheduler.addPipeline(pipeline)
    } catch (e) {
      pipeline.destroy()
      if (scheduler) scheduler.destroy()
      throw e
    }
    const schedulerId = `scheduler_${id}_${Date.now()}_${this.nextSchedulerSeq++}`
    const base = scheduler.getConfig().maxConcurrentRequests
    const ceiling = this.config.autoScaling.maxConcurrentRequests ?? Math.max(base, Math.ceil(base * this.config.autoScaling.ceilingMultiplier))
    const now = Date.now()
    this.models.set(id, {
      mapping: { virtualModelId: id, schedulerId, config: { ...virtualModelConfig }, providers: providerMap, createdAt: now, lastUsed: 0, enabled: virtualModelConfig.enabled !== false },
      scheduler,
      metrics: { requests: 0, errors: 0, totalResponseTime: 0, lastUsed: 0 },
      scaling: { base, ceiling, longChecks: 0, lastScaleAt: 0 },
    })
    this.emit('virtualModelRegistered', { virtualModelId: id, schedulerId })
    return schedulerId
  }

  async unregisterVirtualModel(virtualModelId) {
    const m = this.models.get(virtualModelId)
    if (!m) return false
    this.models.delete(virtualModelId)
    m.scheduler.destroy()
    this.emit('virtualModelUnregistered', { virtualModelId, schedulerId: m.mapping.schedulerId })
    return true
  }

  _setEnabled(virtualModelId, enabled) {
    const m = this.models.get(virtualModelId)
    if (!m) return false
    m.mapping.enabled = enabled
    this.emit(enabled ? 'virtualModelEnabled' : 'virtualModelDisabled', { virtualModelId })
    return true
  }

  enableVirtualModel(virtualModelId) {
    return this._setEnabled(virtualModelId, true)
  }

  disableVirtualModel(virtualModelId) {
    return this._setEnabled(virtualModelId, false)
  }

  _lookup(virtualModelId) {
    const m = this.models.get(virtualModelId)
    if (!m || !m.mapping.enabled) {
      throw new NoAvailablePipelineError(`No scheduler found for virtual model ${virtualModelId}`)
    }
    return m
  }

  _count(m, ok, started) {
    const now = Date.now()
    m.metrics.requests += 1
    if (!ok) m.metrics.errors += 1
    m.metrics.totalResponseTime += now - started
    m.metrics.lastUsed = now
    m.mapping.lastUsed = now
  }

  /** Runs the request on the virtual model's scheduler; resolves with its PipelineExecutionResult. */
  async execute(virtualModelId, request, operation = 'chat', options = {}) {
    const m = this._lookup(virtualModelId)
    const started = Date.now()
    try {
      const result = await m.scheduler.execute(request, operation, options)
      this._count(m, true, started)
      return result
    } catch (e) {
      this._count(m, false, started)
      throw e
    }
  }

  /** One PipelineExecutionResult per chunk. */
  async *executeStreaming(virtualModelId, request, operation = 'streamChat', options = {}) {
    const m = this._lookup(virtualModelId)
    const started = Date.now()
    let ok = false
    try {
      yield* m.scheduler.executeStreaming(request, operation, options)
      ok = true
    } finally {
      this._count(m, ok, started)
    }
  }

  /** Raises a model's concurrency while its queue stays long; lowers it back when idle. */
  _autoScale() {
    const { queueThreshold, sustainedChecks } = this.config.autoScaling
    const { scaleUpCooldown, scaleDownCooldown } = this.config.scalingThresholds
    const now = Date.now()
    for (const [virtualModelId, m] of this.models) {
      const metrics = m.scheduler.getMetrics()
      const current = m.scheduler.getConfig().maxConcurrentRequests
      const s = m.scaling
      s.longChecks = metrics.queueLength > queueThreshold ? s.longChecks + 1 : 0
      let next = current
      if (s.longChecks >= sustainedChecks && current < s.ceiling && now - s.lastScaleAt >= scaleUpCooldown) {
        next = Math.min(s.ceiling, current * 2)
      } else if (metrics.queueLength === 0 && metrics.activeRequests === 0 && current > s.base && now - s.lastScaleAt >= scaleDownCooldown) {
        next = Math.max(s.base, Math.floor(current / 2))
      }
      if (next === current) continue
      m.scheduler.updateConfig({ maxConcurrentRequests: next })
      s.lastScaleAt = now
      s.longChecks = 0
      this.emit(next > current ? 'scaledUp' : 'scaledDown', { virtualModelId, from: current, to: next, queueLength: metrics.queueLength })
    }
  }

  async _checkHealth() {
    this.lastHealthCheck = Date.now()
    await Promise.all([...this.models.values()].map((m) => m.scheduler.checkHealth().catch(() => undefined)))
  }

  getManagerMetrics() {
    let requests = 0
    let errors = 0
    let totalTime = 0
    let activeConnections = 0
    let queueLength = 0
    const virtualModelMetrics = new Map()
    for (const [id, m] of this.models) {
      const sm = m.scheduler.getMetrics()
      requests += m.metrics.requests
      errors += m.metrics.errors
      totalTime += m.metrics.totalResponseTime
      activeConnections += sm.activeRequests
      queueLength += sm.queueLength
      virtualModelMetrics.set(id, {
        requests: m.metrics.requests,
        errors: m.metrics.errors,
        averageResponseTime: m.metrics.requests ? m.metrics.totalResponseTime / m.metrics.requests : 0,
        lastUsed: m.metrics.lastUsed,
        healthStatus: modelStatus(m.metrics),
        maxConcurrentRequests: m.scheduler.getConfig().maxConcurrentRequests,
        queueLength: sm.queueLength,
        enabled: m.mapping.enabled,
      })
    }
    return {
      totalSchedulers: this.models.size,
      activeSchedulers: [...this.models.values()].filter((m) => m.mapping.enabled).length,
      totalRequests: requests,
      successfulRequests: requests - errors,
      failedRequests: errors,
      averageResponseTime: requests ? totalTime / requests : 0,
      overallErrorRate: requests ? errors / requests : 0,
      uptime: this.startedAt,
      lastHealthCheck: this.lastHealthCheck,
      virtualModelMetrics,
      systemLoad: { memoryUsage: process.memoryUsage().rss, activeConnections, queueLength },
    }
  }

  getManagerHealth() {
    const metrics = this.getManagerMetrics()
    const schedulerHealth = new Map()
    for (const [id, m] of this.models) {
      const h = m.scheduler.getHealth()
      schedulerHealth.set(id, { status: h.status, health: SCORE[h.status] ?? 0, details: h.details })
    }
    const scores = [...schedulerHealth.values()].map((h) => h.health)
    const overallHealth = scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : 0
    const status = overallHealth >= 80 ? 'healthy' : overallHealth >= 50 ? 'degraded' : 'unhealthy'
    const rate = metrics.overallErrorRate
    return {
      status,
      overallHealth,
      schedulerHealth,
      systemHealth: {
        status: rate < 0.05 ? 'healthy' : rate < 0.15 ? 'degraded' : 'unhealthy',
        checks: {
          schedulerAvailability: [...schedulerHealth.values()].some((h) => h.status === 'healthy'),
          errorRates: rate < 0.1,
          responseTimes: metrics.averageResponseTime < 10000,
          systemResources: metrics.systemLoad.activeConnections < 1000,
        },
        details: {
          errorRate: rate,
          averageResponseTime: metrics.averageResponseTime,
          activeConnections: metrics.systemLoad.activeConnections,
          healthySchedulers: [...schedulerHealth.values()].filter((h) => h.status === 'healthy').length,
        },
      },
    }
  }

  getVirtualModelMappings() {
    return [...this.models.values()].map((m) => ({ ...m.mapping, providers: new Map(m.mapping.providers) }))
  }

  getScheduler(schedulerId) {
    for (const m of this.models.values()) if (m.mapping.schedulerId === schedulerId) return m.scheduler
    return undefined
  }

  getVirtualModelScheduler(virtualModelId) {
    const m = this.models.get(virtualModelId)
    return m ? m.scheduler : null
  }

  destroy() {
    if (this.scalingTimer) clearInterval(this.scalingTimer)
    if (this.healthTimer) clearInterval(this.healthTimer)
    this.scalingTimer = this.healthTimer = null
    for (const m of this.models.values()) m.scheduler.destroy()
    this.models.clear()
  }
}

module.exports = { VirtualModelSchedulerManager }
