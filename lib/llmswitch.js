'use strict'
// LLMSwitch: requests, responses and streams converted between OpenAI Chat, OpenAI Responses,
// Anthropic Messages and Gemini generateContent — in Rust (crates/core/src/llmswitch), through
// OpenAI Chat. Streams are converted event by event as they arrive.

const native = require('../native.js')
const { ValidationError, callNative } = require('./errors')

const PROTOCOLS = ['openai-chat', 'openai-responses', 'anthropic', 'gemini']

function checkProtocol(p, field) {
  if (!PROTOCOLS.includes(p)) throw new ValidationError(`${field} must be one of ${PROTOCOLS.join(', ')}, got ${JSON.stringify(p)}`, { field })
}

function checkBody(body, what) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ValidationError(`${what} must be an object`, { field: what })
}

/** A request of protocol `from` as protocol `to`. */
function convertRequest(body, from, to) {
  checkBody(body, 'request')
  checkProtocol(from, 'from')
  checkProtocol(to, 'to')
  return JSON.parse(callNative(() => native.convertRequest(JSON.stringify(body), from, to)))
}

/** A response of protocol `from` as protocol `to`. */
function convertResponse(body, from, to) {
  checkBody(body, 'response')
  checkProtocol(from, 'from')
  checkProtocol(to, 'to')
  return JSON.parse(callNative(() => native.convertResponse(JSON.stringify(body), from, to)))
}

/**
 * Converts a stream of `from` events (chat chunks, Responses events, Anthropic events, Gemini
 * fragments) into `to` events, one event at a time.
 */
async function* convertStream(events, from, to) {
  checkProtocol(from, 'from')
  checkProtocol(to, 'to')
  const converter = callNative(() => new native.NativeStreamConverter(from, to))
  for await (const event of events) {
    for (const out of JSON.parse(callNative(() => converter.push(JSON.stringify(event))))) yield out
  }
  for (const out of JSON.parse(callNative(() => converter.finish()))) yield out
}

/** The error body a client of `protocol` expects for `error` (a PipelineError or any Error). */
function errorBody(error, protocol) {
  checkProtocol(protocol, 'protocol')
  const payload = { code: error && error.code, message: String(error && error.message), status: error && error.status, retryAfterMs: error && error.retryAfterMs }
  return JSON.parse(callNative(() => native.protocolErrorBody(JSON.stringify(payload), protocol)))
}

/** A chat.completion as the chunk stream that carries it (`{includeUsage}` adds the usage chunk). */
function responseToStream(response, options = {}) {
  checkBody(response, 'response')
  return JSON.parse(callNative(() => native.responseToStream(JSON.stringify(response), JSON.stringify(options))))
}

/** A chunk stream (an array) rebuilt into one chat.completion: content, reasoning, tool calls, usage. */
function streamToResponse(chunks) {
  if (!Array.isArray(chunks)) throw new ValidationError('chunks must be an array of chat.completion.chunk objects', { field: 'chunks' })
  return JSON.parse(callNative(() => native.streamToResponse(JSON.stringify(chunks))))
}

module.exports = { PROTOCOLS, convertRequest, convertResponse, convertStream, errorBody, responseToStream, streamToResponse, checkProtocol }
