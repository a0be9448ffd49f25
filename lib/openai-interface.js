'use strict'
// The original package's OpenAI interface classes (src/framework/OpenAIInterface.ts): thin data
// classes whose fields use the OpenAI JSON spelling (`finish_reason`, `tool_calls`, ...), so that
// `JSON.stringify(x)` is OpenAI JSON. Unlike the original they log nothing, keep unknown request
// and response fields, and default `created` to Unix seconds (the original used milliseconds).

const { validateChatRequest } = require('./chat-shapes')

const REQUEST_FIELDS = [
  'model',
  'messages',
  'temperature',
  'max_tokens',
  'top_p',
  'n',
  'stream',
  'stop',
  'presence_penalty',
  'frequency_penalty',
  'logit_bias',
  'user',
  'tools',
  'tool_choice',
]

const RESPONSE_FIELDS = ['id', 'object', 'created', 'model', 'choices', 'usage', 'system_fingerprint']

/** Optional message fields the original initialises to null; left out of the JSON while null. */
const NULLABLE_MESSAGE_FIELDS = ['name', 'function_call', 'tool_calls', 'tool_call_id']

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** `v` as plain JSON data: class instances through their `toJSON()`, arrays and objects item by item. */
function plain(v) {
  if (Array.isArray(v)) return v.map(plain)
  if (!isObject(v)) return v
  if (typeof v.toJSON === 'function') return v.toJSON()
  const out = {}
  for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = plain(x)
  return out
}

/** Own enumerable fields of `obj` that are set, `first` in that order, then the others. */
function orderedFields(obj, first) {
  const out = {}
  for (const k of first) if (obj[k] !== undefined) out[k] = plain(obj[k])
  for (const [k, v] of Object.entries(obj)) {
    if (!(k in out) && v !== undefined) out[k] = plain(v)
  }
  return out
}

class OpenAIChatRequest {
  /** Copies the request; unknown fields (vendor extensions) are kept as they are. */
  constructor(data = {}) {
    const d = isObject(data) ? data : {}
    for (const k of REQUEST_FIELDS) this[k] = d[k]
    for (const [k, v] of Object.entries(d)) if (!REQUEST_FIELDS.includes(k)) this[k] = v
    this.messages = d.messages ?? []
    this.stream = d.stream ?? false
  }

  /**
   * Throws `ValidationError('Model is required')` (unless the provider has a preconfigured model)
   * or `ValidationError('Messages are required')`; returns true.
   */
  validate(providerHasPreconfiguredModel = false) {
    validateChatRequest(this, providerHasPreconfiguredModel === true)
    return true
  }

  /** The request as OpenAI JSON (unset fields left out). */
  toJSON() {
    return orderedFields(this, REQUEST_FIELDS)
  }
}

class OpenAIChatResponse {
  constructor(data = {}) {
    const d = isObject(data) ? data : {}
    for (const k of RESPONSE_FIELDS) this[k] = d[k]
    for (const [k, v] of Object.entries(d)) if (!RESPONSE_FIELDS.includes(k)) this[k] = v
    this.object = d.object || 'chat.completion'
    this.created = typeof d.created === 'number' && Number.isFinite(d.created) ? d.created : Math.floor(Date.now() / 1000)
    this.choices = Array.isArray(d.choices) ? d.choices : []
  }

  /** `{id, object, created, model, choices, usage, system_fingerprint}` (unset ones left out) plus unknown fields. */
  toStandardFormat() {
    return orderedFields(this, RESPONSE_FIELDS)
  }

  toJSON() {
    return this.toStandardFormat()
  }
}

class ChatMessage {
  constructor(role, content) {
    this.role = role
    this.content = content
    this.name = null
    this.function_call = null
    this.tool_calls = null
    this.tool_call_id = null
  }

  static user(content) {
    return new ChatMessage('user', content)
  }

  static assistant(content, toolCalls) {
    const msg = new ChatMessage('assistant', content)
    if (toolCalls) msg.tool_calls = toolCalls
    return msg
  }

  static system(content) {
    return new ChatMessage('system', content)
  }

  static tool(toolCallId, content) {
    const msg = new ChatMessage('tool', content)
    msg.tool_call_id = toolCallId
    return msg
  }

  /** The message as OpenAI JSON: `role`, `content` (null kept), and the optional fields that are set. */
  toJSON() {
    const out = { role: this.role, content: plain(this.content ?? null) }
    for (const [k, v] of Object.entries(this)) {
      if (k === 'role' || k === 'content' || v === undefined) continue
      if (v === null && NULLABLE_MESSAGE_FIELDS.includes(k)) continue
      out[k] = plain(v)
    }
    return out
  }
}

class ChatChoice {
  constructor(index, message, finishReason = 'stop') {
    this.index = index
    this.message = message
    this.finish_reason = finishReason
    this.logprobs = null
  }

  toJSON() {
    return { index: this.index, message: plain(this.message), finish_reason: this.finish_reason, logprobs: plain(this.logprobs ?? null) }
  }
}

class FunctionCall {
  /** `arguments_` is the JSON text of the arguments (an object is serialised). */
  constructor(name, arguments_) {
    this.name = name
    this.arguments = typeof arguments_ === 'string' ? arguments_ : JSON.stringify(arguments_ ?? {})
  }

  toJSON() {
    return { name: this.name, arguments: this.arguments }
  }
}

class ToolCall {
  constructor(id, type = 'function', function_) {
    this.id = id
    this.type = type
    this.function = function_
  }

  toJSON() {
    return { id: this.id, type: this.type, function: plain(this.function) }
  }
}

class ChatTool {
  constructor(type = 'function', function_) {
    this.type = type
    this.function = function_
  }

  toJSON() {
    return { type: this.type, function: plain(this.function) }
  }
}

class UsageStats {
  constructor(promptTokens = 0, completionTokens = 0, totalTokens = 0) {
    this.prompt_tokens = promptTokens
    this.completion_tokens = completionTokens
    this.total_tokens = totalTokens
  }

  toJSON() {
    return { prompt_tokens: this.prompt_tokens, completion_tokens: this.completion_tokens, total_tokens: this.total_tokens }
  }
}

module.exports = {
  OpenAIChatRequest,
  OpenAIChatResponse,
  ChatMessage,
  ChatChoice,
  ToolCall,
  FunctionCall,
  ChatTool,
  UsageStats,
}
