'use strict'
// PipelineBaseModule: the EventEmitter every component of the package extends: identity,
// validated config with `configUpdated` events, operation tracking with I/O entries (kept and
// redacted by the native tracker, optionally written to JSON-lines files), stage records and
// error handling that never throws.

const { EventEmitter } = require('node:events')
const native = require('../native.js')
const { ValidationError, fromNative } = require('./errors')
const { toJsonSafe } = require('./json-safe')

const MODULE_TYPES = ['provider', 'scheduler', 'tracker', 'pipeline']
const STAGE_STATUSES = ['started', 'completed', 'failed']
/** Module-level stage records and handled errors kept in memory. */
const RECENT_LIMIT = 100

const NATIVE_IO = Symbol('rcc.io')

function validateModuleConfig(config) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ValidationError('config must be an object', { field: 'config' })
  }
  for (const k of ['id', 'name']) {
    if (typeof config[k] !== 'string' || config[k].trim() === '') {
      throw new ValidationError(`${k} must be a non-empty string, got ${JSON.stringify(config[k])}`, { field: k })
    }
  }
  if (config.type !== undefined && !MODULE_TYPES.includes(config.type)) {
    throw new ValidationError(`type must be one of ${MODULE_TYPES.join(', ')}, got ${JSON.stringify(config.type)}`, { field: 'type' })
  }
  for (const k of ['enableTwoPhaseDebug', 'enableIOTracking']) {
    if (config[k] !== undefined && typeof config[k] !== 'boolean') {
      throw new ValidationError(`${k} must be a boolean, got ${JSON.stringify(config[k])}`, { field: k })
    }
  }
  if (config.debugBaseDirectory !== undefined && (typeof config.debugBaseDirectory !== 'string' || config.debugBaseDirectory === '')) {
    throw new ValidationError(`debugBaseDirectory must be a non-empty string, got ${JSON.stringify(config.debugBaseDirectory)}`, { field: 'debugBaseDirectory' })
  }
}

/** The native tracker options a module config implies. */
function nativeTrackerOptions(config, extra) {
  return {
    id: config.id,
    enableIOTracking: config.enableIOTracking === true,
    debugBaseDirectory: config.debugBaseDirectory,
    ioTrackingConfig: config.ioTrackingConfig,
    maxIOEntries: config.maxIOEntries,
    ...extra,
  }
}

function pushBounded(list, item) {
  list.push(item)
  if (list.length > RECENT_LIMIT) list.shift()
}

class PipelineBaseModule extends EventEmitter {
  constructor(config) {
    super()
    validateModuleConfig(config)
    this.pipelineConfig = { version: '1.0.0', description: '', ...config }
    this.info = {
      id: this.pipelineConfig.id,
      name: this.pipelineConfig.name,
      version: this.pipelineConfig.version,
      description: this.pipelineConfig.description,
      type: this.pipelineConfig.type || 'pipeline',
    }
    this.destroyed = false
    this.createdAt = Date.now()
    this.stageRecords = []
    this.handledErrors = []
    this._attachNativeIo()
  }

  /**
   * The native tracker holding this module's I/O entries: created when `enableIOTracking` is
   * on (a PipelineTracker always has one, it also holds the request contexts).
   */
  _attachNativeIo(extra) {
    const c = this.pipelineConfig
    const wanted = c.enableIOTracking === true || (c.ioTrackingConfig && c.ioTrackingConfig.enabled === true) || this._alwaysNative()
    const options = JSON.stringify(nativeTrackerOptions(c, extra))
    try {
      // An existing tracker keeps its request contexts (schedulers record into it); only its
      // I/O log is replaced.
      if (this[NATIVE_IO]) this[NATIVE_IO].configureIo(options)
      else this[NATIVE_IO] = wanted ? new native.NativeTracker(options) : null
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Subclasses that need the native tracker whatever the config says return true. */
  _alwaysNative() {
    return false
  }

  get _io() {
    return this[NATIVE_IO]
  }

  getInfo() {
    return { ...this.info }
  }

  getConfig() {
    return { ...this.pipelineConfig }
  }

  getPipelineConfig() {
    return { ...this.pipelineConfig }
  }

  /** Merges `partial` into the config after validating the result; emits `configUpdated`. */
  updatePipelineConfig(partial) {
    if (partial === null || typeof partial !== 'object' || Array.isArray(partial)) {
      throw new ValidationError('config update must be an object', { field: 'config' })
    }
    const oldConfig = this.getPipelineConfig()
    const next = { ...oldConfig, ...partial }
    validateModuleConfig(next)
    this.pipelineConfig = next
    const ioChanged = ['enableIOTracking', 'debugBaseDirectory', 'ioTrackingConfig', 'maxIOEntries'].some((k) => k in partial && partial[k] !== oldConfig[k])
    if (ioChanged) this._attachNativeIo()
    this.emit('configUpdated', { oldConfig, newConfig: this.getPipelineConfig() })
  }

  updateConfig(partial) {
    this.updatePipelineConfig(partial)
  }

  getProviderInfo() {
    const c = this.pipelineConfig
    return {
      name: c.providerName || c.name,
      endpoint: c.endpoint,
      supportedModels: c.supportedModels || [],
      defaultModel: c.defaultModel,
      type: c.type || 'pipeline',
    }
  }

  _recordIo(entry) {
    if (!this[NATIVE_IO] || !this[NATIVE_IO].ioEnabled()) return
    this[NATIVE_IO].recordIo(toJsonSafe({ moduleId: this.info.id, pipelineId: this.info.id, ...entry }))
  }

  /**
   * Runs `operation`, recording its input, output, duration and any error as an I/O entry;
   * resolves with its result or rejects with its error, unchanged.
   */
  async trackPipelineOperation(operationId, operation, inputData, operationType = 'pipeline-operation') {
    if (typeof operation !== 'function') {
      throw new ValidationError(`operation must be a function, got ${typeof operation}`, { field: 'operation' })
    }
    const timestamp = Date.now()
    const started = performance.now()
    try {
      const output = await operation()
      this._recordIo({ timestamp, operationId, operationType, input: inputData, output, duration: performance.now() - started, success: true })
      return output
    } catch (error) {
      this._recordIo({
        timestamp,
        operationId,
        operationType,
        input: inputData,
        duration: performance.now() - started,
        success: false,
        error: error && error.message !== undefined ? String(error.message) : String(error),
      })
      throw error
    }
  }

  /** Records a module-level stage (`started`, `completed` or `failed`) and emits `stage`. */
  recordPipelineStage(stageName, stageData, status = 'started') {
    if (typeof stageName !== 'string' || stageName === '') {
      throw new ValidationError(`stageName must be a non-empty string, got ${JSON.stringify(stageName)}`, { field: 'stageName' })
    }
    if (!STAGE_STATUSES.includes(status)) {
      throw new ValidationError(`status must be one of ${STAGE_STATUSES.join(', ')}, got ${JSON.stringify(status)}`, { field: 'status' })
    }
    const record = { stage: stageName, status, timestamp: Date.now() }
    pushBounded(this.stageRecords, record)
    this._recordIo({ timestamp: record.timestamp, operationId: stageName, operationType: 'module_operation', input: stageData, success: status !== 'failed', context: { phase: status } })
    this.emit('stage', { ...record, data: stageData })
  }

  /**
   * Records an error with its context; never throws. Emits `pipelineError` (not `error`, which
   * would throw when nobody listens).
   */
  handlePipelineError(error, context = {}) {
    try {
      const entry = {
        message: error && error.message !== undefined ? String(error.message) : String(error),
        code: error && error.code,
        operation: context && context.operation,
        stage: context && context.stage,
        requestId: context && context.requestId,
        timestamp: Date.now(),
      }
      pushBounded(this.handledErrors, entry)
      this._recordIo({ timestamp: entry.timestamp, operationId: entry.operation || 'error', operationType: 'error', input: context && context.additionalData, success: false, error: entry.message })
      this.emit('pipelineError', { error, context, source: this.info.id, severity: 'high', timestamp: entry.timestamp })
    } catch {
      // Error handling must not become a second failure.
    }
  }

  /** I/O entries (oldest first); `filter`: `{operationId?, operationType?, requestId?, success?, since?, limit?}`. */
  getIOEntries(filter) {
    if (!this[NATIVE_IO] || !this[NATIVE_IO].ioEnabled()) return []
    try {
      return JSON.parse(this[NATIVE_IO].ioEntries(filter === undefined ? undefined : JSON.stringify(filter)))
    } catch (e) {
      throw fromNative(e)
    }
  }

  getPipelineMetrics() {
    const io = this[NATIVE_IO]
    const ioOn = Boolean(io && io.ioEnabled())
    const c = this.pipelineConfig
    return {
      debugEnabled: c.enableTwoPhaseDebug === true,
      ioTrackingEnabled: ioOn,
      debugConfig: { baseDirectory: c.debugBaseDirectory, ioTrackingConfig: c.ioTrackingConfig },
      ioEntries: ioOn ? this.getIOEntries({ limit: 100 }) : [],
      ioFiles: ioOn ? io.ioFiles() : [],
      ioError: ioOn ? io.ioError() || undefined : undefined,
      stages: this.stageRecords.length,
      errors: this.handledErrors.length,
    }
  }

  getStatus() {
    return {
      id: this.info.id,
      name: this.info.name,
      type: this.info.type,
      version: this.info.version,
      destroyed: this.destroyed,
      uptime: Date.now() - this.createdAt,
      ioTrackingEnabled: Boolean(this[NATIVE_IO] && this[NATIVE_IO].ioEnabled()),
      stageRecords: this.stageRecords.length,
      errorCount: this.handledErrors.length,
      lastError: this.handledErrors.length ? { ...this.handledErrors[this.handledErrors.length - 1] } : undefined,
    }
  }

  async destroy() {
    this.destroyed = true
    this.removeAllListeners()
  }
}

module.exports = { PipelineBaseModule, NATIVE_IO }
