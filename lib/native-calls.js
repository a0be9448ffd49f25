'use strict'
// Runs native calls and streams with AbortSignal support, converting rejections into the
// exported error classes.

const { fromNative, cancelledBy } = require('./errors')

/** Starts `start()` (which returns a NativeCall), wires `signal`, resolves with parsed JSON. */
async function runNativeCall(start, signal) {
  if (signal && signal.aborted) throw cancelledBy(signal)
  let call
  try {
    call = start()
  } catch (e) {
    throw fromNative(e)
  }
  const onAbort = () => call.cancel()
  if (signal) signal.addEventListener('abort', onAbort, { once: true })
  try {
    return JSON.parse(await call.result())
  } catch (e) {
    if (signal && signal.aborted) throw cancelledBy(signal)
    throw fromNative(e)
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort)
  }
}

/**
 * Iterates a NativeChunkStream (batches of chunks as JSON arrays) chunk by chunk. Leaving the
 * loop early (`break`, `return()`, a throw) or aborting `signal` cancels the upstream call.
 */
async function* iterateNativeStream(start, signal) {
  if (signal && signal.aborted) throw cancelledBy(signal)
  let stream
  try {
    stream = start()
  } catch (e) {
    throw fromNative(e)
  }
  const onAbort = () => stream.cancel()
  if (signal) signal.addEventListener('abort', onAbort, { once: true })
  const it = stream[Symbol.asyncIterator]()
  let finished = false
  try {
    for (;;) {
      let step
      try {
        step = await it.next()
      } catch (e) {
        finished = true
        if (signal && signal.aborted) throw cancelledBy(signal)
        throw fromNative(e)
      }
      if (step.done) {
        finished = true
        return
      }
      const batch = JSON.parse(step.value)
      for (const chunk of batch) yield chunk
    }
  } finally {
    if (signal) signal.removeEventListener('abort', onAbort)
    if (!finished) stream.cancel()
  }
}

module.exports = { runNativeCall, iterateNativeStream }
