'use strict'
// The JS end of the scheduler's bridge to user code (src/js_bridge.rs). Rust calls
// `(kind, callId, payloadJson)` and always gets JSON text back: a throw or rejection in user
// code is caught here and sent as `{error}`, so it becomes a typed rejection, never a crash.

const { toPayload } = require('./errors')

const answer = (value) => JSON.stringify(value)
const failure = (e) => JSON.stringify({ error: toPayload(e) })

/** Lets a provider (a BaseProvider subclass or any object with chat/streamChat) be scheduled. */
function providerBridge(provider) {
  const calls = new Map() // callId -> {controller, iterator?}
  const start = (id) => {
    const entry = { controller: new AbortController() }
    calls.set(id, entry)
    return entry
  }
  return function bridge(kind, id, payload) {
    try {
      switch (kind) {
        case 'chat': {
          const { controller } = start(id)
          return Promise.resolve()
            .then(() => provider.chat(JSON.parse(payload), { signal: controller.signal }))
            .then((r) => answer({ ok: r }), failure)
            .finally(() => calls.delete(id))
        }
        case 'open': {
          const entry = start(id)
          const iterable = provider.streamChat(JSON.parse(payload), { signal: entry.controller.signal })
          entry.iterator = iterable[Symbol.asyncIterator]()
          return Promise.resolve('{}')
        }
        case 'next': {
          const entry = calls.get(id)
          if (!entry) return Promise.resolve(answer({ done: true }))
          return entry.iterator.next().then(
            (step) => {
              if (step.done) {
                calls.delete(id)
                return answer({ done: true })
              }
              return answer({ chunks: [step.value] })
            },
            (e) => {
              calls.delete(id)
              return failure(e)
            },
          )
        }
        case 'cancel': {
          const entry = calls.get(id)
          calls.delete(id)
          if (entry) {
            entry.controller.abort()
            if (entry.iterator && typeof entry.iterator.return === 'function') {
              Promise.resolve(entry.iterator.return()).catch(() => {})
            }
          }
          return Promise.resolve('{}')
        }
        case 'health':
          return Promise.resolve()
            .then(() => provider.healthCheck())
            .then((r) => answer(r || { status: 'unhealthy', error: 'healthCheck() returned nothing' }), failure)
        default:
          return Promise.resolve(failure(new Error(`unknown bridge call '${kind}'`)))
      }
    } catch (e) {
      calls.delete(id)
      return Promise.resolve(failure(e))
    }
  }
}

/** A custom load-balancing strategy: `selectPipeline(infos)` returns an info, an id or null. */
function strategyBridge(strategy) {
  return function bridge(kind, _id, payload) {
    try {
      if (kind !== 'select') return Promise.resolve(failure(new Error(`unknown bridge call '${kind}'`)))
      return Promise.resolve()
        .then(() => strategy.selectPipeline(JSON.parse(payload)))
        .then((choice) => {
          const id = choice == null ? null : typeof choice === 'string' ? choice : choice.id
          if (id !== null && typeof id !== 'string') {
            throw new TypeError(`selectPipeline must return a PipelineInfo, an id or null, got ${typeof choice}`)
          }
          return answer({ id })
        })
        .catch(failure)
    } catch (e) {
      return Promise.resolve(failure(e))
    }
  }
}

module.exports = { providerBridge, strategyBridge }
