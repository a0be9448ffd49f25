'use strict'
// JSON text of arbitrary user values for the native tracker: circular references, BigInts,
// functions and errors must not make tracking throw (tracking never breaks the tracked call).

function toJsonSafe(value) {
  if (value === undefined) return 'null'
  const seen = new WeakSet()
  try {
    return JSON.stringify(value, (_key, v) => {
      if (typeof v === 'bigint') return v.toString()
      if (typeof v === 'function' || typeof v === 'symbol') return undefined
      if (v instanceof Error) return { name: v.name, message: v.message, code: v.code }
      if (v instanceof Map) return Object.fromEntries(v)
      if (v instanceof Set) return [...v]
      if (v !== null && typeof v === 'object') {
        if (seen.has(v)) return '[Circular]'
        seen.add(v)
      }
      return v
    }) ?? 'null'
  } catch (e) {
    return JSON.stringify(`[unserializable: ${e.message}]`)
  }
}

module.exports = { toJsonSafe }
