'use strict'
// The exported error classes, and the conversion of native rejections into them.
// They are defined here, in JS, so that they belong to the realm that loads the package:
// `err instanceof RateLimitError` then holds in plain Node and inside jest's sandbox alike.

/** Must match `MARKER` in src/error.rs. */
const NATIVE_ERROR_MARKER = 'RCC_NATIVE_ERROR:'

const CONTEXT_FIELDS = ['requestId', 'pipelineId', 'providerName', 'attempts']

class PipelineError extends Error {
  constructor(message, options = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined)
    this.name = new.target.name
    this.code = options.code || 'PIPELINE_ERROR'
    this.retryable = options.retryable === true
    for (const k of CONTEXT_FIELDS) {
      if (options[k] !== undefined) this[k] = options[k]
    }
  }
}

/** Copies the listed fields of `options` that are set onto the error. */
function assignFields(err, options, fields) {
  for (const k of fields) {
    if (options[k] !== undefined) err[k] = options[k]
  }
}

class ValidationError extends PipelineError {
  constructor(message, options = {}) {
    super(message, { code: 'VALIDATION_ERROR', ...options })
    assignFields(this, options, ['field'])
  }
}

class AuthenticationError extends PipelineError {
  constructor(message, options = {}) {
    super(message, { code: 'AUTHENTICATION_ERROR', ...options })
    assignFields(this, options, ['status', 'body', 'providerCode'])
  }
}

class RateLimitError extends PipelineError {
  constructor(message, options = {}) {
    super(message, { code: 'RATE_LIMIT_ERROR', retryable: true, ...options })
    assignFields(this, options, ['status', 'retryAfterMs', 'body', 'providerCode'])
  }
}

class CircuitBreakerError extends PipelineError {
  constructor(message, options = {}) {
    super(message, { code: 'CIRCUIT_BREAKER_OPEN', ...options })
    assignFields(this, options, ['retryAfterMs'])
  }
}

class TimeoutError extends PipelineError {
  constructor(message, options = {}) {
    super(message, { code: 'TIMEOUT', ...options })
    assignFields(this, options, ['phase', 'timeoutMs'])
  }
}

class QueueFullError extends PipelineError {
  constructor(message, options = {}) {
    super(message, { code: 'QUEUE_FULL', ...options })
    assignFields(this, options, ['maxQueueSize'])
  }
}

class CancelledError extends PipelineError {
  constructor(message = 'Request was cancelled', options = {}) {
    super(message, { code: 'CANCELLED', ...options })
  }
}

/** An upstream HTTP error or error envelope; also connection failures (code CONNECTION_ERROR). */
class ProviderError extends PipelineError {
  constructor(message, options = {}) {
    super(message, { code: 'PROVIDER_ERROR', ...options })
    assignFields(this, options, ['status', 'body', 'providerCode', 'retryAfterMs'])
  }
}

class StreamError extends PipelineError {
  constructor(message, options = {}) {
    super(message, { code: 'STREAM_ERROR', ...options })
    assignFields(this, options, ['partial'])
  }
}

class NoAvailablePipelineError extends PipelineError {
  constructor(message, options = {}) {
    super(message, { code: 'NO_AVAILABLE_PIPELINE', ...options })
  }
}

const CLASS_BY_CODE = {
  VALIDATION_ERROR: ValidationError,
  AUTHENTICATION_ERROR: AuthenticationError,
  RATE_LIMIT_ERROR: RateLimitError,
  CIRCUIT_BREAKER_OPEN: CircuitBreakerError,
  TIMEOUT: TimeoutError,
  QUEUE_FULL: QueueFullError,
  CANCELLED: CancelledError,
  PROVIDER_ERROR: ProviderError,
  CONNECTION_ERROR: ProviderError,
  STREAM_ERROR: StreamError,
  NO_AVAILABLE_PIPELINE: NoAvailablePipelineError,
  INTERNAL_ERROR: PipelineError,
}

/**
 * Turns a rejection from the addon into the matching exported class. Anything else (an error
 * thrown by user code, already typed) is returned unchanged.
 */
/** Runs a synchronous native call, turning its rejection into the exported error class. */
function callNative(f) {
  try {
    return f()
  } catch (e) {
    throw fromNative(e)
  }
}

function fromNative(err) {
  if (!err || typeof err.message !== 'string' || !err.message.startsWith(NATIVE_ERROR_MARKER)) return err
  let payload
  try {
    payload = JSON.parse(err.message.slice(NATIVE_ERROR_MARKER.length))
  } catch {
    return new PipelineError(err.message, { code: 'INTERNAL_ERROR' })
  }
  const Class = CLASS_BY_CODE[payload.code] || PipelineError
  return new Class(payload.message, payload)
}

function cancelledBy(signal) {
  const reason = signal && signal.reason
  const detail = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : undefined
  return new CancelledError(detail ? `Request was cancelled: ${detail}` : 'Request was cancelled', { cause: reason })
}

const PAYLOAD_FIELDS = ['status', 'body', 'providerCode', 'retryAfterMs', 'field', 'phase', 'timeoutMs', 'partial', 'maxQueueSize']

/**
 * A JS error (thrown by a user's provider or strategy) as the payload Rust understands. A typed
 * error keeps its class; an HTTP-ish error (`status`, `retryAfterMs`) is classified by status.
 */
function toPayload(err) {
  if (!(err instanceof Error)) return { message: `JS code threw a non-Error value: ${String(err)}` }
  const p = { message: err.message, name: err.name }
  if (err instanceof PipelineError || Object.prototype.hasOwnProperty.call(CLASS_BY_CODE, err.code)) p.code = err.code
  for (const k of PAYLOAD_FIELDS) {
    const v = err[k]
    if (v !== undefined && v !== null && typeof v !== 'function') p[k] = v
  }
  if (p.status === undefined && err.response && typeof err.response.status === 'number') p.status = err.response.status
  return p
}

module.exports = {
  toPayload,
  callNative,
  PipelineError,
  PipelineExecutionError: PipelineError,
  ValidationError,
  AuthenticationError,
  RateLimitError,
  CircuitBreakerError,
  TimeoutError,
  QueueFullError,
  CancelledError,
  ProviderError,
  StreamError,
  NoAvailablePipelineError,
  fromNative,
  cancelledBy,
}
