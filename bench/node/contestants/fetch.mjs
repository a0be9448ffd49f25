// The baseline: global fetch (undici), no queue, no retries, no breakers; a rotating index over
// the endpoints, JSON.parse of the body, and a minimal SSE parser for streams.
export async function create({ urls, model }) {
  const targets = urls.map((u) => `${u}/chat/completions`)
  const headers = { 'content-type': 'application/json', authorization: 'Bearer sk-bench' }
  const messages = [{ role: 'user', content: 'ping' }]
  let next = 0
  const post = async (body) => {
    const res = await fetch(targets[next++ % targets.length], { method: 'POST', headers, body: JSON.stringify(body) })
    if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`)
    return res
  }
  return {
    chat: async () => JSON.parse(await (await post({ model, messages })).text()),
    async stream(id, onChunk) {
      const res = await post({ model, messages, stream: true })
      const decoder = new TextDecoder()
      let buf = ''
      let done = false
      // Read to the end of the body even after [DONE], so the connection goes back to the pool.
      for await (const bytes of res.body) {
        if (done) continue
        buf += decoder.decode(bytes, { stream: true })
        let end
        while (!done && (end = buf.indexOf('\n\n')) !== -1) {
          const event = buf.slice(0, end)
          buf = buf.slice(end + 2)
          for (const line of event.split('\n')) {
            if (!line.startsWith('data:')) continue
            const data = line.slice(5).trim()
            if (data === '[DONE]') done = true
            else onChunk(JSON.parse(data))
          }
        }
      }
      if (!done) throw new Error('stream ended without [DONE]')
    },
    close: async () => {},
  }
}
