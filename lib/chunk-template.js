'use strict'

/**
 * Builds the chunks that continue a template (see `src/stream.rs`): most chunks of a stream
 * repeat the one before but for `choices[0].delta.content`. The template is parsed once and
 * compiled into a copier; each chunk is a fresh copy with its own content: the same keys in
 * the same order, new objects and arrays, exactly what `JSON.parse` of the chunk's text gives,
 * for a fraction of the cost.
 */
function chunkBuilder(template) {
  const choice = Array.isArray(template?.choices) ? template.choices[0] : undefined
  if (typeof choice?.delta?.content !== 'string') {
    throw new Error('rcc-pipeline internal error: a stream template without choices[0].delta.content')
  }
  return copier(template, ['choices', 0, 'delta', 'content'])
}

/** The path below `hole` when going into `key`, or null when the hole is not there. */
function below(hole, key) {
  return hole !== null && hole[0] === key ? hole.slice(1) : null
}

/**
 * A function returning a fresh copy of the JSON value `v`, with its argument in place of the
 * value at path `hole` (null: no hole inside `v`).
 */
function copier(v, hole) {
  if (hole !== null && hole.length === 0) return (content) => content
  if (Array.isArray(v)) {
    const items = v.map((x, i) => copier(x, below(hole, i)))
    return (content) => {
      const out = []
      for (let i = 0; i < items.length; i++) out.push(items[i](content))
      return out
    }
  }
  if (v !== null && typeof v === 'object') {
    const keys = Object.keys(v)
    const values = keys.map((k) => copier(v[k], below(hole, k)))
    if (keys.includes('__proto__')) {
      // JSON.parse makes `__proto__` an own property; an assignment would set the prototype.
      return (content) => {
        const out = {}
        for (let i = 0; i < keys.length; i++) {
          Object.defineProperty(out, keys[i], { value: values[i](content), writable: true, enumerable: true, configurable: true })
        }
        return out
      }
    }
    return (content) => {
      const out = {}
      for (let i = 0; i < keys.length; i++) out[keys[i]] = values[i](content)
      return out
    }
  }
  return () => v
}

module.exports = { chunkBuilder }
