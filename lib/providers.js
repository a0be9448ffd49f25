'use strict'
// BaseProvider (the class users extend) and the native OpenAI-compatible provider.

const native = require('../native.js')
const { PipelineBaseModule } = require('./base-module')
const { PipelineError, ValidationError, fromNative } = require('./errors')
const { runNativeCall, runNativeSubmit, iterateNativeStream } = require('./native-calls')
const { validateChatRequest, standardizeResponse, standardizeChunk, generatedId } = require('./chat-shapes')
const { responseToStream } = require('./llmswitch')

/** The second argument of chat()/streamChat(): call options, or the original CompatibilityModule. */
function splitCallArgs(arg) {
  if (!arg) return { options: {}, compatibility: undefined }
  if (typeof arg.mapRequest === 'function' || typeof arg.mapResponse === 'function') {
    return { options: {}, compatibility: arg }
  }
  return { options: arg, compatibility: arg.compatibility }
}

function validateProviderConfig(config) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new ValidationError('provider config must be an object', { field: 'config' })
  }
  if (typeof config.name !== 'string' || config.name.trim() === '') {
    throw new ValidationError(`name must be a non-empty string, got ${JSON.stringify(config.name)}`, { field: 'name' })
  }
}

class BaseProvider extends PipelineBaseModule {
  constructor(config) {
    validateProviderConfig(config)
    const { apiKey, apiKeys, headers, ...visible } = config
    super({
      ...visible,
      id: `provider-${config.name}`,
      name: `${config.name} Provider`,
      version: '1.0.0',
      type: 'provider',
      description: `Provider for ${config.name}`,
      providerName: config.name,
      supportedModels: config.supportedModels || [],
    })
    // Kept off the public config object so that secrets never show up in getConfig() or logs.
    Object.defineProperty(this, 'providerConfig', { value: { ...config }, enumerable: false })
    this.endpoint = config.endpoint
    this.supportedModels = (config.supportedModels || []).map((m) => (typeof m === 'string' ? m : m && (m.id || m.name)))
    this.defaultModel = config.defaultModel
  }

  /** The provider's configured name (`'Qwen'`, `'openai'`, ...). */
  get name() {
    return this.providerConfig.name
  }

  /** A standard `chat.completion` for `request`. */
  async chat(request, optionsOrCompatibility) {
    const { options, compatibility } = splitCallArgs(optionsOrCompatibility)
    validateChatRequest(request, this.defaultModel)
    const mapped = compatibility && compatibility.mapRequest ? compatibility.mapRequest(request) : request
    const response = await this.executeChat(mapped, options)
    if (compatibility && compatibility.mapResponse) return compatibility.mapResponse(response)
    return standardizeResponse(response, mapped.model || this.defaultModel)
  }

  /** Standard `chat.completion.chunk` objects for `request`, as an async iterable. */
  async *streamChat(request, optionsOrCompatibility) {
    const { options, compatibility } = splitCallArgs(optionsOrCompatibility)
    validateChatRequest(request, this.defaultModel)
    const mapped = compatibility && compatibility.mapRequest ? compatibility.mapRequest(request) : request
    const model = mapped.model || this.defaultModel
    const streamId = generatedId()
    for await (const chunk of this.executeStreamChat(mapped, options)) {
      yield compatibility && compatibility.mapResponse ? compatibility.mapResponse(chunk) : standardizeChunk(chunk, model, streamId)
    }
  }

  /** Override point: send `request` upstream and return the completion. */
  async executeChat(_request, _options) {
    throw new PipelineError(`${this.constructor.name} does not implement executeChat()`, { code: 'NOT_IMPLEMENTED', providerName: this.name })
  }

  /**
   * Override point for streaming. The default runs executeChat() and replays the whole answer
   * as chunks, so a provider that only implements executeChat() can still be streamed.
   */
  async *executeStreamChat(request, options) {
    const response = standardizeResponse(await this.executeChat(request, options), request.model || this.defaultModel)
    yield* responseToStream(response)
  }

  async healthCheck() {
    return { status: 'healthy', provider: this.name, latencyMs: 0, timestamp: new Date().toISOString() }
  }

  async listModels() {
    return [...this.supportedModels]
  }

  getProviderInfo() {
    return {
      name: this.name,
      endpoint: this.endpoint,
      supportedModels: [...this.supportedModels],
      defaultModel: this.defaultModel,
      capabilities: this.getCapabilities(),
      type: 'provider',
    }
  }

  getCapabilities() {
    return { streaming: true, tools: false, vision: false, jsonMode: false }
  }

  /** Key-less providers have nothing to do. */
  async authenticate() {}
}

const NATIVE = Symbol('rcc.native')
const NATIVE_CONFIG_KEYS = ['name', 'endpoint', 'apiKey', 'apiKeys', 'supportedModels', 'defaultModel', 'headers', 'maxRetries', 'timeouts', 'httpVersion']

function pick(obj, keys) {
  const out = {}
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k]
  return out
}

/** Per-call options for the addon: only what Rust reads. */
function nativeCallOptions(options) {
  return options && options.timeouts ? JSON.stringify({ timeouts: options.timeouts }) : undefined
}

/** Any OpenAI-compatible endpoint (OpenAI, DashScope compatible-mode, vLLM, LM Studio, ...), in Rust. */
class OpenAICompatibleProvider extends BaseProvider {
  constructor(config) {
    super(config)
    let handle
    try {
      handle = this._createNative(config)
    } catch (e) {
      throw fromNative(e)
    }
    Object.defineProperty(this, NATIVE, { value: handle, enumerable: false })
  }

  /** The native request path; vendor subclasses (Qwen, iFlow) return their transport here. */
  _createNative(config) {
    return new native.NativeOpenAIProvider(JSON.stringify(pick(config, NATIVE_CONFIG_KEYS)))
  }

  executeChat(request, options = {}) {
    if (options.signal) return runNativeCall(() => this[NATIVE].chat(JSON.stringify(request), nativeCallOptions(options)), options.signal)
    // Without a signal: a promise the addon settles itself (no per-call wrapper or threadsafe function).
    return runNativeSubmit(() => this[NATIVE].submit(JSON.stringify(request), nativeCallOptions(options)))
  }

  executeStreamChat(request, options = {}) {
    return iterateNativeStream(() => this[NATIVE].streamChat(JSON.stringify(request), nativeCallOptions(options)), options.signal)
  }

  /** Responses come standardized from Rust: skip the JS re-shaping unless a compatibility module is given. */
  async chat(request, optionsOrCompatibility) {
    const { options, compatibility } = splitCallArgs(optionsOrCompatibility)
    if (compatibility || this.executeChat !== OpenAICompatibleProvider.prototype.executeChat) {
      return super.chat(request, optionsOrCompatibility)
    }
    return this.executeChat(request, options)
  }

  async *streamChat(request, optionsOrCompatibility) {
    const { options, compatibility } = splitCallArgs(optionsOrCompatibility)
    if (compatibility || this.executeStreamChat !== OpenAICompatibleProvider.prototype.executeStreamChat) {
      yield* super.streamChat(request, optionsOrCompatibility)
      return
    }
    yield* this.executeStreamChat(request, options)
  }

  /** Probes `GET {endpoint}/models`: healthy, degraded (reachable, no model list) or unhealthy. */
  async healthCheck() {
    const r = JSON.parse(await this[NATIVE].healthCheck())
    return { ...r, provider: this.name, timestamp: new Date().toISOString() }
  }

  /** Model ids from `GET {endpoint}/models`. */
  listModels(options = {}) {
    return runNativeCall(() => this[NATIVE].listModels(nativeCallOptions(options)), options.signal)
  }

  getCapabilities() {
    return { streaming: true, tools: true, vision: true, jsonMode: true }
  }
}

/**
 * The native handle of a provider that can be scheduled without calling into JS: an
 * OpenAICompatibleProvider whose request path no subclass has overridden.
 */
function nativeHandleOf(provider) {
  const handle = provider && provider[NATIVE]
  if (!handle) return undefined
  const p = OpenAICompatibleProvider.prototype
  const untouched = ['chat', 'streamChat', 'executeChat', 'executeStreamChat'].every((m) => provider[m] === p[m])
  return untouched ? handle : undefined
}

module.exports = { BaseProvider, OpenAICompatibleProvider, nativeHandleOf, pick, NATIVE_CONFIG_KEYS, NATIVE }
