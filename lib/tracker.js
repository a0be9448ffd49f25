'use strict'
// PipelineTracker and the request-context / stage classes of the original's interfaces. The
// contexts live in the native tracker (so schedulers record into them without crossing into
// JS); a RequestContext here is a view of one of them by request id.

const { PipelineBaseModule, NATIVE_IO } = require('./base-module')
const { ValidationError, callNative } = require('./errors')
const { toJsonSafe } = require('./json-safe')

const OPERATIONS = ['chat', 'streamChat', 'healthCheck']
const STAGE_STATUSES = ['pending', 'running', 'completed', 'failed']

/** One stage (IPipelineStage): a plain record with the original's accessors. */
class PipelineStage {
  constructor(name, init = {}) {
    if (typeof name !== 'string' || name === '') throw new ValidationError(`stage name must be a non-empty string, got ${JSON.stringify(name)}`, { field: 'stage' })
    this.stage = name
    this.startTime = init.startTime ?? Date.now()
    this.endTime = init.endTime
    this.duration = init.duration
    this.status = init.status ?? 'pending'
    this.error = init.error
    this.data = init.data
  }
  getStageName() { return this.stage }
  getStartTime() { return this.startTime }
  getEndTime() { return this.endTime }
  getDuration() { return this.duration ?? (this.endTime !== undefined ? this.endTime - this.startTime : undefined) }
  getStatus() { return this.status }
  getError() { return this.error }
  getData() { return this.data }
  setStartTime(t) { this.startTime = t }
  setEndTime(t) { this.endTime = t; this.duration = t - this.startTime }
  setStatus(s) {
    if (!STAGE_STATUSES.includes(s)) throw new ValidationError(`status must be one of ${STAGE_STATUSES.join(', ')}, got ${JSON.stringify(s)}`, { field: 'status' })
    this.status = s
  }
  setError(e) { this.error = e }
  setData(d) { this.data = d }
  markAsStarted() { this.status = 'running'; this.startTime = Date.now() }
  markAsCompleted(data) { this.status = 'completed'; this.setEndTime(Date.now()); if (data !== undefined) this.data = data }
  markAsFailed(error) { this.status = 'failed'; this.error = error; this.setEndTime(Date.now()) }
  isCompleted() { return this.status === 'completed' }
  isFailed() { return this.status === 'failed' }
  isRunning() { return this.status === 'running' }
  toObject() {
    const o = { stage: this.stage, startTime: this.startTime, status: this.status }
    for (const k of ['endTime', 'duration', 'error', 'data']) if (this[k] !== undefined) o[k] = this[k]
    return o
  }
  clone() { return PipelineStage.fromObject(JSON.parse(JSON.stringify(this.toObject()))) }
  static fromObject(o) { return new PipelineStage(o.stage, o) }
}

class PipelineStageFactory {
  createStage(name) { return new PipelineStage(name) }
  createStageWithData(name, data) { return new PipelineStage(name, { data }) }
  createStageFromObject(o) { return PipelineStage.fromObject(o) }
}

/** A collection of stages by name (IPipelineStageManager), for callers that manage their own. */
class PipelineStageManager {
  constructor() { this.stages = new Map() }
  addStage(stage) { this.stages.set(stage.getStageName(), stage) }
  getStage(name) { return this.stages.get(name) }
  removeStage(name) { return this.stages.delete(name) }
  updateStage(name, updates) {
    const s = this.stages.get(name)
    if (!s) return false
    Object.assign(s, updates)
    return true
  }
  getAllStages() { return [...this.stages.values()] }
  getStagesByStatus(status) { return this.getAllStages().filter((s) => s.getStatus() === status) }
  getCompletedStages() { return this.getStagesByStatus('completed') }
  getFailedStages() { return this.getStagesByStatus('failed') }
  getRunningStages() { return this.getStagesByStatus('running') }
  getStageStatistics() {
    const all = this.getAllStages()
    const count = (s) => all.filter((x) => x.getStatus() === s).length
    return { total: all.length, completed: count('completed'), failed: count('failed'), running: count('running'), pending: count('pending') }
  }
  clearAllStages() { this.stages.clear() }
}

/**
 * One request (IRequestContext). Live: reads the native tracker each time, so stages recorded
 * by a scheduler show up. `clone()` and `completeRequest()` give detached snapshots.
 */
class RequestContext {
  constructor(tracker, requestId, snapshot) {
    Object.defineProperty(this, 'tracker', { value: tracker, enumerable: false })
    this.requestId = requestId
    Object.defineProperty(this, 'snapshot', { value: snapshot, enumerable: false, writable: true })
  }

  _data() {
    if (this.snapshot) return this.snapshot
    const text = this.tracker ? this.tracker.getContext(this.requestId) : null
    if (!text) throw new ValidationError(`request '${this.requestId}' is no longer tracked`, { field: 'requestId' })
    return JSON.parse(text)
  }

  _update(patch) {
    if (this.snapshot) Object.assign(this.snapshot, patch)
    else callNative(() => this.tracker.updateContext(this.requestId, toJsonSafe(patch)))
  }

  get pipelineId() { return this._data().pipelineId }
  getRequestId() { return this.requestId }
  getPipelineId() { return this._data().pipelineId }
  getSessionId() { return this._data().sessionId ?? undefined }
  getStartTime() { return this._data().startTime }
  getEndTime() { return this._data().endTime ?? undefined }
  getDuration() { return this._data().duration ?? undefined }
  getProvider() { return this._data().provider }
  getModel() { return this._data().model ?? undefined }
  getOperation() { return this._data().operation }
  getStages() { return this._data().stages }
  getMetadata() { return this._data().metadata }
  getStage(name) { return [...this.getStages()].reverse().find((s) => s.stage === name) }
  getStageStatus(name) { const s = this.getStage(name); return s && s.status }
  getStatus() { return this._data().status }

  /** Adds a stage record (a PipelineStage or its object shape). */
  addStage(stage) {
    const o = stage instanceof PipelineStage ? stage.toObject() : stage
    if (!o || typeof o.stage !== 'string') throw new ValidationError('stage must have a name', { field: 'stage' })
    if (this.snapshot) {
      this.snapshot.stages.push({ ...o })
      return
    }
    const data = o.data === undefined ? undefined : toJsonSafe(o.data)
    callNative(() => {
      if (o.status === 'completed') this.tracker.completeStage(this.requestId, o.stage, data)
      else if (o.status === 'failed') this.tracker.failStage(this.requestId, o.stage, String(o.error || 'failed'), data)
      else this.tracker.addStage(this.requestId, o.stage, data)
    })
  }

  /** Completes or fails the named stage (`updates.status`), or attaches data to it. */
  updateStage(name, updates = {}) {
    if (this.snapshot) {
      const s = this.getStage(name)
      if (s) Object.assign(s, updates)
      return
    }
    const data = updates.data === undefined ? undefined : toJsonSafe(updates.data)
    callNative(() => {
      if (updates.status === 'failed') this.tracker.failStage(this.requestId, name, String(updates.error || 'failed'), data)
      else if (updates.status === 'completed') this.tracker.completeStage(this.requestId, name, data)
      else if (updates.status === 'running' || updates.status === 'pending') this.tracker.addStage(this.requestId, name, data)
    })
  }

  isCompleted() { const s = this.getStatus(); return s === 'completed' || s === 'failed' }
  isFailed() { return this.getStatus() === 'failed' }
  getFailedStages() { return this.getStages().filter((s) => s.status === 'failed') }
  getCompletedStages() { return this.getStages().filter((s) => s.status === 'completed') }
  getRunningStages() { return this.getStages().filter((s) => s.status === 'running') }
  getStageDuration(name) { const s = this.getStage(name); return s ? s.duration : undefined }
  getTotalStageDuration() { return this.getStages().reduce((t, s) => t + (s.duration || 0), 0) }
  getSummary() {
    const d = this._data()
    return {
      requestId: d.requestId,
      pipelineId: d.pipelineId,
      provider: d.provider,
      operation: d.operation,
      duration: d.duration ?? undefined,
      totalStages: d.stages.length,
      completedStages: d.stages.filter((s) => s.status === 'completed').length,
      failedStages: d.stages.filter((s) => s.status === 'failed').length,
      status: d.status,
    }
  }
  toObject() { return JSON.parse(JSON.stringify(this._data())) }
  toJSON() { return this.toObject() }
  clone() { return new RequestContext(null, this.requestId, this.toObject()) }
  setSessionId(sessionId) { this._update({ sessionId }) }
  setModel(model) { this._update({ model }) }
  setMetadata(metadata) { this._update({ metadata }) }
  setEndTime(endTime) {
    // The native tracker ends a request when it is completed; a detached copy can be edited.
    if (this.snapshot) this.snapshot.endTime = endTime
  }
}

const TRACKER_DEFAULTS = {
  id: 'pipeline-tracker',
  name: 'Pipeline Tracker',
  version: '1.0.0',
  description: 'Pipeline request tracking and stage management system',
  type: 'tracker',
  enableTwoPhaseDebug: false,
  enableIOTracking: false,
}

const TRACKER_OPTIONS = ['maxRetainedRequests', 'retentionMs', 'maxActiveRequests']

class PipelineTracker extends PipelineBaseModule {
  /** `options`: module config fields plus `{maxRetainedRequests?, retentionMs?, maxActiveRequests?}`. */
  constructor(options = {}) {
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new ValidationError('tracker options must be an object', { field: 'options' })
    }
    super({ ...TRACKER_DEFAULTS, ...options })
    this.stageFactory = new PipelineStageFactory()
    this.stageManager = new PipelineStageManager()
  }

  _alwaysNative() {
    return true
  }

  _attachNativeIo() {
    // Called before this constructor's body runs (from the base constructor), and on updates.
    const extra = {}
    for (const k of TRACKER_OPTIONS) if (this.pipelineConfig[k] !== undefined) extra[k] = this.pipelineConfig[k]
    super._attachNativeIo(extra)
  }

  /** The native handle schedulers record into. */
  get nativeTracker() {
    return this[NATIVE_IO]
  }

  generateRequestId() {
    return this[NATIVE_IO].generateRequestId()
  }

  /** Opens a context. `metadata.requestId`, when a string, becomes its id. */
  createRequestContext(provider, operation = 'chat', metadata = {}) {
    if (typeof provider !== 'string') throw new ValidationError(`provider must be a string, got ${JSON.stringify(provider)}`, { field: 'provider' })
    if (!OPERATIONS.includes(operation)) {
      throw new ValidationError(`operation must be one of ${OPERATIONS.join(', ')}, got ${JSON.stringify(operation)}`, { field: 'operation' })
    }
    const meta = metadata && typeof metadata === 'object' ? metadata : {}
    const requestId = typeof meta.requestId === 'string' ? meta.requestId : undefined
    const pipelineId = typeof meta.pipelineId === 'string' ? meta.pipelineId : ''
    const id = callNative(() => this[NATIVE_IO].createContext(requestId, pipelineId, provider, operation, toJsonSafe(meta)))
    return new RequestContext(this[NATIVE_IO], id)
  }

  /** An active request, or a finished one still retained. */
  getRequestContext(requestId) {
    return this[NATIVE_IO].getContext(requestId) ? new RequestContext(this[NATIVE_IO], requestId) : undefined
  }

  addStage(requestId, stageName, data) {
    return callNative(() => this[NATIVE_IO].addStage(requestId, stageName, data === undefined ? undefined : toJsonSafe(data)))
  }

  completeStage(requestId, stageName, data) {
    return callNative(() => this[NATIVE_IO].completeStage(requestId, stageName, data === undefined ? undefined : toJsonSafe(data)))
  }

  failStage(requestId, stageName, error, data) {
    const message = error && error.message !== undefined ? error.message : String(error)
    return callNative(() => this[NATIVE_IO].failStage(requestId, stageName, message, data === undefined ? undefined : toJsonSafe(data)))
  }

  /** Ends the request; a detached snapshot of it (undefined when it was not active). */
  completeRequest(requestId) {
    const text = this[NATIVE_IO].completeRequest(requestId)
    return text ? new RequestContext(null, requestId, JSON.parse(text)) : undefined
  }

  getActiveRequests() {
    return JSON.parse(this[NATIVE_IO].activeContexts()).map((c) => new RequestContext(this[NATIVE_IO], c.requestId))
  }

  /** Finished requests still retained (`maxRetainedRequests`, `retentionMs`), oldest first. */
  getCompletedRequests() {
    return JSON.parse(this[NATIVE_IO].finishedContexts()).map((c) => new RequestContext(null, c.requestId, c))
  }

  getRequestStatistics() {
    return JSON.parse(this[NATIVE_IO].statistics())
  }

  clearAllRequests() {
    this[NATIVE_IO].clear()
  }

  getStageFactory() {
    return this.stageFactory
  }

  getStageManager() {
    return this.stageManager
  }

  /** Scrubs `value` wherever it appears in later stages and I/O entries (an API key). */
  addSecret(value) {
    if (typeof value === 'string') this[NATIVE_IO].addSecret(value)
  }
}

module.exports = { PipelineTracker, RequestContext, PipelineStage, PipelineStageFactory, PipelineStageManager }
