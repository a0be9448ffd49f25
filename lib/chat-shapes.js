'use strict'
// Request checks and response shaping for providers written in JS. Native providers do the
// same in Rust (crates/core/src/model).

const { ValidationError } = require('./errors')

/** The original package's validation, with the field named. */
function validateChatRequest(request, defaultModel) {
  if (request === null || typeof request !== 'object' || Array.isArray(request)) {
    throw new ValidationError('request must be an object', { field: 'request' })
  }
  if ((typeof request.model !== 'string' || request.model.trim() === '') && !defaultModel) {
    throw new ValidationError('Model is required', { field: 'model' })
  }
  if (!Array.isArray(request.messages) || request.messages.length === 0) {
    throw new ValidationError('Messages are required', { field: 'messages' })
  }
}

function nowSeconds() {
  return Math.floor(Date.now() / 1000)
}

/** `created` in seconds even when a provider reports milliseconds. */
function seconds(created) {
  if (typeof created !== 'number' || !Number.isFinite(created) || created <= 0) return nowSeconds()
  return created > 95617584000 ? Math.floor(created / 1000) : created
}

let idCounter = 0
function generatedId() {
  idCounter = (idCounter + 1) % 1e9
  return `chatcmpl-${Date.now().toString(36)}${idCounter.toString(36)}`
}

/** A JS provider's answer in the standard `chat.completion` shape. */
function standardizeResponse(r, model) {
  const out = { ...r }
  out.id = r.id || generatedId()
  out.object = 'chat.completion'
  out.created = seconds(r.created)
  out.model = r.model || model
  out.choices = Array.isArray(r.choices) ? r.choices : []
  return out
}

/** A standard chunk from whatever a JS provider yielded. */
function standardizeChunk(c, model, streamId) {
  const out = { ...c }
  out.id = c.id || streamId
  out.object = 'chat.completion.chunk'
  out.created = seconds(c.created)
  out.model = c.model || model
  out.choices = Array.isArray(c.choices)
    ? c.choices.map((ch, i) => (ch.delta || !ch.message ? ch : { index: ch.index ?? i, delta: ch.message, finish_reason: ch.finish_reason ?? null }))
    : []
  return out
}

module.exports = { validateChatRequest, standardizeResponse, standardizeChunk, generatedId }
