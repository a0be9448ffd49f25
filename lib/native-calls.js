'use strict'
// Runs native calls and streams with AbortSignal support, converting rejections into the
// exported error classes.

const addon = require('../native.js')
const { fromNative, cancelledBy } = require('./errors')
const { chunkBuilder } = require('./chunk-template')

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
 * Iterates a NativeChunkStream chunk by chunk. The native stream starts on the first `next()`.
 * Leaving the loop early (`break`, `return()`, a throw) or aborting `signal` cancels the
 * upstream call.
 *
 * Each `nextBatch()` of the native stream gives a batch: entries separated by NUL (which JSON
 * text never contains), each a chunk's JSON text, a template (marked 1) or a chunk that
 * continues the last template with another content (marked 2, its content as a JSON string;
 * see `src/stream.rs`). A chunk is built when it is handed out, so the objects the caller gets
 * die young instead of a whole parsed batch surviving garbage collections while it is
 * consumed. A plain async iterator rather than an async generator: one settled promise per
 * chunk and no generator resumption. Calls made while a batch is being fetched wait for it,
 * in order.
 */
function iterateNativeStream(start, signal) {
  let stream = null
  let detach = null
  let batch = null // the current batch's text; its next chunk starts at `pos`
  let pos = 0
  let state = 0 // 0: not started, 1: running, 2: finished
  let inflight = null // the batch fetch in progress
  let continueTemplate = null // builds the chunks that continue the last template

  /** Ends the iteration; true when the native stream was still running (then cancel it). */
  const finish = () => {
    const running = state === 1
    state = 2
    batch = null
    if (detach) detach()
    return running
  }

  /** The next chunk of the current batch; `batch` is dropped after its last entry. */
  const take = () => {
    try {
      for (;;) {
        if (batch === null) throw new Error('rcc-pipeline internal error: a stream batch ends with a template')
        const end = batch.indexOf('\0', pos)
        let text
        if (end === -1) {
          text = pos === 0 ? batch : batch.slice(pos)
          batch = null
        } else {
          text = batch.slice(pos, end)
          pos = end + 1
        }
        switch (text.charCodeAt(0)) {
          case 1:
            continueTemplate = chunkBuilder(JSON.parse(text.slice(1)))
            break // the chunks that continue it follow
          case 2:
            if (continueTemplate === null) throw new Error('rcc-pipeline internal error: a continued chunk without its template')
            return { value: continueTemplate(JSON.parse(text.slice(1))), done: false }
          default:
            return { value: JSON.parse(text), done: false }
        }
      }
    } catch (e) {
      if (finish()) stream.cancel()
      throw e
    }
  }

  const fetchBatch = async () => {
    try {
      for (;;) {
        let text
        try {
          text = await stream.nextBatch()
        } catch (e) {
          finish()
          throw rejection(e, signal)
        }
        if (state !== 1) return { value: undefined, done: true }
        if (text === null) {
          finish()
          return { value: undefined, done: true }
        }
        // An encoder may hold events back (a buffered tool call): then the batch is empty.
        if (text.length > 0) {
          batch = text
          pos = 0
          return take()
        }
      }
    } finally {
      inflight = null
    }
  }

  const it = {
    next() {
      if (inflight !== null) return inflight.then(again, again)
      if (batch !== null) {
        try {
          return Promise.resolve(take())
        } catch (e) {
          return Promise.reject(e)
        }
      }
      if (state === 2) return Promise.resolve({ value: undefined, done: true })
      if (state === 0) {
        try {
          const started = startAbortable(start, signal)
          stream = started.handle
          detach = started.detach
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
