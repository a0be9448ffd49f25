'use strict'
// Runs native calls and streams with AbortSignal support, converting rejections into the
// exported error classes.

const native = require('../native.js')
const { fromNative, cancelledBy } = require('./errors')

// Promises the addon settles itself (`NativeScheduler.submit`) are rejected with the exported
// error classes built here. Registered on every JS thread that loads the package.
native.setErrorFactory((message) => fromNative(new Error(message)))

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
 * Iterates a NativeChunkStream (batches of chunks as JSON arrays) chunk by chunk. Leaving the
 * loop early (`break`, `return()`, a throw) or aborting `signal` cancels the upstream call.
 */
async function* iterateNativeStream(start, signal) {
  const { handle: stream, detach } = startAbortable(start, signal)
  const it = stream[Symbol.asyncIterator]()
  let finished = false
  try {
    for (;;) {
      let step
      try {
        step = await it.next()
      } catch (e) {
        finished = true
        throw rejection(e, signal)
      }
      if (step.done) {
        finished = true
        return
      }
      const batch = JSON.parse(step.value)
      for (const chunk of batch) yield chunk
    }
  } finally {
    detach()
    if (!finished) stream.cancel()
  }
}

module.exports = { runNativeCall, runNativeSubmit, iterateNativeStream }
