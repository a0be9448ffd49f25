'use strict'
// What EnhancedPipelineScheduler, PipelineScheduler and Pipeline share: one NativeScheduler,
// its events forwarded to this EventEmitter (only those with listeners cross into JS), member
// registration for native and JS providers, and calls/streams with AbortSignal support.

const { EventEmitter } = require('node:events')
const native = require('../native.js')
const { fromNative, ValidationError } = require('./errors')
const { runNativeCall, runNativeSubmit, iterateNativeStream } = require('./native-calls')
const { providerBridge, strategyBridge } = require('./bridge')
const { checkProtocol } = require('./llmswitch')
const { nativeHandleOf } = require('./providers')

/** Same order as `EventKind` in crates/core/src/schedule/events.rs. */
const EVENT_KINDS = ['requestQueued', 'requestStarted', 'requestCompleted', 'requestFailed', 'retry', 'circuitOpen', 'circuitHalfOpen', 'circuitClose']

const HOST = Symbol('rcc.scheduler')

function responseOf(envelope) {
  return envelope.response
}

function plainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map)
}

/** Nested merge of config objects (arrays and non-plain values replace). */
function mergeConfig(base, patch) {
  const out = { ...base }
  for (const [k, v] of Object.entries(patch || {})) {
    out[k] = plainObject(v) && plainObject(base[k]) ? mergeConfig(base[k], v) : v
  }
  return out
}

function checkCallable(obj, method, what) {
  if (!obj || typeof obj[method] !== 'function') {
    throw new ValidationError(`${what} must have a ${method}() method`, { field: what })
  }
}

/** The request id of `options.requestContext` (a RequestContext or its object shape), if any. */
function contextRequestId(options) {
  const c = options && options.requestContext
  if (!c) return options && options.requestId
  return typeof c.getRequestId === 'function' ? c.getRequestId() : c.requestId
}

/** The API keys a provider was configured with (kept off its public config). */
function secretsOf(provider) {
  const c = provider && provider.providerConfig
  if (!c) return []
  return [c.apiKey, ...(Array.isArray(c.apiKeys) ? c.apiKeys : [])].filter((k) => typeof k === 'string')
}

function copy(v) {
  return JSON.parse(JSON.stringify(v))
}

class SchedulerHost extends EventEmitter {
  /** `config` is the user-facing config; `nativeConfigOf(config)` (overridable) is what Rust reads. */
  constructor(config) {
    super()
    if (config && config.protocol !== undefined) checkProtocol(config.protocol, 'protocol')
    const nativeConfig = this.nativeConfigOf(config)
    const self = new WeakRef(this) // the native side must not keep this object alive
    const onEvent = (name, payload) => {
      const host = self.deref()
      if (host) host.emit(name, JSON.parse(payload))
    }
    let handle
    try {
      handle = new native.NativeScheduler(JSON.stringify(nativeConfig), onEvent)
    } catch (e) {
      throw fromNative(e)
    }
    Object.defineProperty(this, HOST, { value: handle, enumerable: false })
    this.config = config
    this.on('newListener', (event) => {
      if (EVENT_KINDS.includes(event)) this._syncEventMask(event)
    })
    this.on('removeListener', (event) => {
      if (EVENT_KINDS.includes(event)) this._syncEventMask()
    })
  }

  _syncEventMask(adding) {
    let mask = 0
    EVENT_KINDS.forEach((k, i) => {
      if (k === adding || this.listenerCount(k) > 0) mask |= 1 << i
    })
    this[HOST].setEventMask(mask)
  }

  /** The engine's view of a config; subclasses whose config has another shape map it here. */
  nativeConfigOf(config) {
    return config
  }

  /** Validates and applies `partial` (limits, strategy, breaker, retry) to new work; emits `configUpdated`. */
  updateConfig(partial) {
    if (!plainObject(partial)) throw new ValidationError('config update must be an object', { field: 'config' })
    const next = mergeConfig(this.config, partial)
    try {
      this[HOST].updateConfig(JSON.stringify(this.nativeConfigOf(next)))
    } catch (e) {
      throw fromNative(e)
    }
    const oldConfig = this.config
    this.config = next
    this.emit('configUpdated', { oldConfig: copy(oldConfig), newConfig: copy(next) })
  }

  getConfig() {
    return copy(this.config)
  }

  getMetrics() {
    return this._nativeMetrics()
  }

  getHealth() {
    return this._nativeHealth()
  }

  /** Records every later request's stages into `tracker` (a PipelineTracker) under `label`. */
  _setTracker(tracker, label) {
    if (tracker === undefined || tracker === null) return
    const handle = tracker.nativeTracker
    if (!handle) throw new ValidationError('pipelineTracker must be a PipelineTracker', { field: 'pipelineTracker' })
    Object.defineProperty(this, 'pipelineTracker', { value: tracker, enumerable: false, writable: true })
    this[HOST].setTracker(handle, label)
  }

  /** Tells the tracker a provider's API keys, so they are scrubbed wherever they show up. */
  _registerSecrets(provider) {
    if (!this.pipelineTracker) return
    for (const key of secretsOf(provider)) this.pipelineTracker.addSecret(key)
  }

  /** Registers a provider: natively when it is a built-in one, else through the JS bridge. */
  _addProvider(id, provider, options) {
    checkCallable(provider, 'chat', 'provider')
    this._registerSecrets(provider)
    const opts = JSON.stringify(options || {})
    const handle = nativeHandleOf(provider)
    try {
      if (handle) this[HOST].addNativeProvider(id, handle, opts)
      else this[HOST].addJsProvider(id, providerBridge(provider), opts)
    } catch (e) {
      throw fromNative(e)
    }
  }

  _addScheduler(id, other, options) {
    try {
      this[HOST].addScheduler(id, other[HOST], JSON.stringify(options || {}))
    } catch (e) {
      throw fromNative(e)
    }
  }

  _updateMember(id, patch) {
    try {
      return this[HOST].updateMember(id, JSON.stringify(patch))
    } catch (e) {
      throw fromNative(e)
    }
  }

  _removeMember(id) {
    return this[HOST].removeMember(id)
  }

  /** Resolves with the envelope `{requestId, pipelineId, targetId, attempts, queueTime, duration, response}`. */
  _chat(request, callOptions, signal) {
    return this._call(request, callOptions, signal, false)
  }

  /** Resolves with the response alone (what `scheduleRequest` and `execute` return). */
  _chatResponse(request, callOptions, signal) {
    return this._call(request, callOptions, signal, true)
  }

  /**
   * Without a signal the request is submitted as a plain promise the addon settles (parked as
   * data while queued, the response alone when `responseOnly`); with one it runs as a
   * cancellable NativeCall.
   */
  _call(request, callOptions, signal, responseOnly) {
    let opts
    try {
      opts = this._withProtocol(callOptions)
    } catch (e) {
      return Promise.reject(e)
    }
    if (!signal) return runNativeSubmit(() => this[HOST].submit(JSON.stringify(request), JSON.stringify(opts), responseOnly))
    const envelope = runNativeCall(() => this[HOST].chat(JSON.stringify(request), JSON.stringify(opts)), signal)
    return responseOnly ? envelope.then(responseOf) : envelope
  }

  /**
   * The protocol the caller speaks (`options.protocol`, else the config's `protocol`, else
   * OpenAI Chat): requests are converted to chat on the way in, answers and stream events back.
   */
  _withProtocol(callOptions) {
    const protocol = callOptions.protocol || this.config.protocol
    if (protocol === undefined || protocol === 'openai-chat') return callOptions
    checkProtocol(protocol, 'protocol')
    return { ...callOptions, protocol }
  }

  /** Chunks of a scheduled stream; `onRoute` is told which pipeline/target serves it. */
  _stream(request, callOptions, signal) {
    let stream
    const start = () => {
      stream = this[HOST].streamChat(JSON.stringify(request), JSON.stringify(this._withProtocol(callOptions)))
      return stream
    }
    const chunks = iterateNativeStream(start, signal)
    const route = () => {
      const r = stream && stream.route()
      return r ? JSON.parse(r) : null
    }
    return { chunks, route }
  }

  registerLoadBalancingStrategy(name, strategy) {
    if (typeof name !== 'string' || name.trim() === '') {
      throw new ValidationError(`strategy name must be a non-empty string, got ${JSON.stringify(name)}`, { field: 'name' })
    }
    checkCallable(strategy, 'selectPipeline', 'strategy')
    try {
      this[HOST].registerStrategy(name, strategyBridge(strategy))
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** The stages the tracker holds for a request (undefined without a tracker). */
  _stagesOf(requestId) {
    if (!this.pipelineTracker || !requestId) return undefined
    const ctx = this.pipelineTracker.getRequestContext(requestId)
    return ctx ? ctx.getStages() : undefined
  }

  _nativeMetrics() {
    return JSON.parse(this[HOST].metrics())
  }

  _nativeHealth() {
    return JSON.parse(this[HOST].health())
  }

  /** Runs every provider's healthCheck() now; unhealthy answers count against its breaker. */
  async checkHealth() {
    await this[HOST].checkHealth()
    return this.getHealth()
  }

  _destroyNative() {
    this[HOST].destroy()
  }
}

module.exports = { SchedulerHost, mergeConfig, plainObject, copy, secretsOf, contextRequestId, HOST }
