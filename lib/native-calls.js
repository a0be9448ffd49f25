'use strict'
// Runs native calls and streams with AbortSignal support, converting rejections into the
// exported error classes.

const addon = require('../native.js')
const { fromNative, cancelledBy } = require('./errors')

// Promises the addon settles itself (`NativeScheduler.submit`) are rejected with the exported
// error classes built here. Registered on every JS thread that loads the package.
addon.setErrorFactory((message) => fromNative(new Error(message)))

/**
 * Starts a native call or stream (`start()` returns an object with `cancel()`) and ties it to
 * `signal`; `detach()` removes the listener.
 */
function startAbortable(start, signal) {
  if (signal && signal.aborted) throw cancelledBy(signal)
  let handle
  try {
    handle = start()
  } catch (e) {
    throw fromNative(e)
  }
  const onAbort = () => handle.cancel()
  if (signal) signal.addEventListener('abort', onAbort, { once: true })
  const detach = () => {
    if (signal) signal.removeEventListener('abort', onAbort)
  }
  return { handle, detach }
}

/** A native rejection as the exported class; a cancelled one names the signal's reason. */
function rejection(e, signal) {
  return signal && signal.aborted ? cancelledBy(signal) : fromNative(e)
}

/** Starts `start()` (which returns a NativeCall), wires `signal`, resolves with parsed JSON. */
async function runNativeCall(start, signal) {
  const { handle: call, detach } = startAbortable(start, signal)
  try {
    return JSON.parse(await call.result())
  } catch (e) {
    throw rejection(e, signal)
  } finally {
    detach()
  }
}

/**
 * Starts `start()`, which returns a promise the addon settles with the parsed result or an
 * exported error class (e.g. `NativeScheduler.submit`), and returns that promise as is: no
 * per-call wrapper object, async frame or `.then` is kept while the call waits, which is what
 * a queued request costs. A synchronous throw becomes a rejection.
 */
function runNativeSubmit(start) {
  try {
    return start()
  } catch (e) {
    return Promise.reject(fromNative(e))
  }
}

/**
 * Iterates a NativeChunkStream (batches of chunks as JSON arrays) chunk by chunk. The native
 * stream starts on the first `next()`. Leaving the loop early (`break`, `return()`, a throw) or
 * aborting `signal` cancels the upstream call.
 *
 * A plain async iterator rather than an async generator: each batch is parsed with one
 * `JSON.parse` and its chunks are handed out from the array, one settled promise per chunk and
 * no generator resumption. Calls made while a batch is being fetched wait for it, in order.
 */
function iterateNativeStream(start, signal) {
  let stream = null
  let native = null
  let detach = null
  let batch = null // parsed chunks, handed out from `pos`
  let pos = 0
  let state = 0 // 0: not started, 1: running, 2: finished
  let inflight = null // the batch fetch in progress

  /** Ends the iteration; true when the native stream was still running (then cancel it). */
  const finish = () => {
    const running = state === 1
    state = 2
    batch = null
    if (detach) detach()
    return running
  }

  const fetchBatch = async () => {
    try {
      for (;;) {
        let step
        try {
          step = await native.next()
        } catch (e) {
          finish()
          throw rejection(e, signal)
        }
        if (state !== 1) return { value: undefined, done: true }
        if (step.done) {
          finish()
          return { value: undefined, done: true }
        }
        let chunks
        try {
          chunks = JSON.parse(step.value)
        } catch (e) {
          if (finish()) stream.cancel()
          throw e
        }
        // An encoder may hold events back (a buffered tool call): then the batch is empty.
        if (chunks.length > 0) {
          batch = chunks
          pos = 1
          return { value: chunks[0], done: false }
        }
      }
    } finally {
      inflight = null
    }
  }

  const it = {
    next() {
      if (inflight !== null) return inflight.then(again, again)
      if (batch !== null && pos < batch.length) return Promise.resolve({ value: batch[pos++], done: false })
      if (state === 2) return Promise.resolve({ value: undefined, done: true })
      if (state === 0) {
        try {
          const started = startAbortable(start, signal)
          stream = started.handle
          detach = started.detach
          native = stream[Symbol.asyncIterator]()
          state = 1
        } catch (e) {
          state = 2
          return Promise.reject(e)
        }
      }
      inflight = fetchBatch()
      return inflight
    },
    return(value) {
      const close = () => {
        if (finish()) stream.cancel()
        return { value, done: true }
      }
      return inflight !== null ? inflight.then(close, close) : Promise.resolve(close())
    },
    throw(err) {
      const close = () => {
        if (finish()) stream.cancel()
        return Promise.reject(err)
      }
      return inflight !== null ? inflight.then(close, close) : close()
    },
    [Symbol.asyncIterator]() {
      return this
    },
  }
  const again = () => it.next()
  return it
}

module.exports = { runNativeCall, runNativeSubmit, iterateNativeStream }
