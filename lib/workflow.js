'use strict'
// The workflow layer: stream ⇄ non-stream control, the Responses event rebuild and qwen-code's
// streaming tool-call parser — all in Rust (crates/core/src/workflow); these classes keep the
// seed's API (`initialize`, `processIncoming`, `getStatus`).

const native = require('../native.js')
const { ValidationError, callNative } = require('./errors')

/** The seed's modules take `{type, config}`; a bare config object is accepted too. */
function configOf(definition) {
  if (definition === undefined || definition === null) return {}
  if (typeof definition !== 'object' || Array.isArray(definition)) throw new ValidationError('workflow config must be an object', { field: 'config' })
  return definition.config && typeof definition.config === 'object' ? definition.config : definition.type ? {} : definition
}

/** qwen-code's parser: tool-call argument fragments assembled by index. */
class StreamingToolCallParser {
  constructor() {
    Object.defineProperty(this, 'native', { value: new native.NativeToolCallParser(), enumerable: false })
  }

  /** `{complete, value?, error?, repaired}` for the call at `index` after this fragment. */
  addChunk(index, chunk, id, name) {
    if (!Number.isInteger(index) || index < 0) throw new ValidationError(`index must be a non-negative integer, got ${JSON.stringify(index)}`, { field: 'index' })
    return JSON.parse(this.native.addChunk(index, String(chunk ?? ''), id ?? undefined, name ?? undefined))
  }

  /** Every call seen, arguments parsed (incomplete JSON repaired): `[{id, name, args, index}]`. */
  getCompletedToolCalls() {
    return JSON.parse(this.native.getCompletedToolCalls())
  }

  reset() {
    this.native.reset()
  }
}

/**
 * Stream ⇄ non-stream control. `processIncoming` turns a `stream: true` request into a
 * non-streaming one (keeping `_originalStream` / `_originalStreamOptions`), and — when
 * `nonStreamingToStreaming` is on — the reverse; `processOutgoing` gives the caller the shape
 * it asked for (a chunk array for a caller that streamed, one response otherwise).
 */
class StreamingControlWorkflow {
  constructor(definition, _dependencies) {
    this.type = 'streaming-control'
    this.workflowType = 'streaming-converter'
    const config = configOf(definition)
    Object.defineProperty(this, 'native', { value: callNative(() => new native.NativeStreamingControl(JSON.stringify(config))), enumerable: false })
    Object.defineProperty(this, 'originals', { value: new WeakMap(), enumerable: false })
    this.initialized = false
  }

  async initialize() {
    this.initialized = true
  }

  async processIncoming(request) {
    if (request === null || typeof request !== 'object') throw new ValidationError('request must be an object', { field: 'request' })
    const { request: out, original } = JSON.parse(callNative(() => this.native.processIncoming(JSON.stringify(request))))
    // What the caller asked for (stream_options included) stays with the converted request.
    this.originals.set(out, original)
    return out
  }

  /**
   * The upstream's answer in the caller's shape: `response` (a chat.completion, or an array of
   * chunks) for the request that `processIncoming` returned.
   */
  async processOutgoing(response, processedRequest) {
    const original = (processedRequest && this.originals.get(processedRequest)) || JSON.parse(callNative(() => native.originalFromRequest(JSON.stringify(processedRequest ?? {}))))
    return JSON.parse(callNative(() => this.native.processOutgoing(JSON.stringify(response), JSON.stringify(original))))
  }

  getStatus() {
    return { type: this.type, workflowType: this.workflowType, initialized: this.initialized, ...JSON.parse(this.native.status()) }
  }
}

/**
 * Responses API streaming: a request carrying `_protocol: 'responses'`, `_hasStreamingEvents`
 * and `streamingEvents` is rebuilt into the complete Responses object; anything else passes.
 */
class ResponsesStreamingWorkflow {
  constructor(definition, _dependencies) {
    this.type = 'responses-streaming-workflow'
    this.workflowType = 'responses-event-processor'
    this.config = { enableEventProcessing: true, rebuildCompleteResponse: true, maxEventBufferSize: 1000, ...configOf(definition) }
    // Validated now: a bad config fails at construction, not at the first stream.
    callNative(() => new native.NativeResponsesRebuilder(JSON.stringify(this.config)))
    this.initialized = false
    this.stats = { processedStreams: 0, processedEvents: 0, errors: 0 }
  }

  async initialize() {
    this.initialized = true
  }

  async processIncoming(request) {
    if (!request || request._protocol !== 'responses' || !request._hasStreamingEvents || this.config.enableEventProcessing === false) return request
    const events = request.streamingEvents
    if (!Array.isArray(events)) throw new ValidationError('streamingEvents must be an array of Responses events', { field: 'streamingEvents' })
    return this.rebuild(events)
  }

  /** The complete Responses object from its stream events (SSE text or event objects). */
  rebuild(events) {
    const list = typeof events === 'string' ? JSON.parse(callNative(() => native.parseResponsesSse(events))) : events
    const rebuilder = callNative(() => new native.NativeResponsesRebuilder(JSON.stringify(this.config)))
    try {
      for (const e of list) callNative(() => rebuilder.push(JSON.stringify(e)))
      const response = JSON.parse(callNative(() => rebuilder.finish()))
      this.stats.processedStreams += 1
      this.stats.processedEvents += list.length
      return response
    } catch (e) {
      this.stats.errors += 1
      throw e
    }
  }

  getStatus() {
    return { type: this.type, workflowType: this.workflowType, initialized: this.initialized, config: { ...this.config }, ...this.stats }
  }
}

module.exports = { StreamingToolCallParser, StreamingControlWorkflow, ResponsesStreamingWorkflow }
