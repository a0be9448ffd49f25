// The fast streaming path: chunks handed to JS as the upstream's own JSON text, several events
// per upstream read, one channel hop (the reader takes the upstream over), batches handed over
// as NUL-separated text through the shared settle queue, each chunk parsed when a plain async
// iterator hands it out.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { EnhancedPipelineScheduler, OpenAICompatibleProvider, StreamError, type ChatCompletionChunk } from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { API_KEY, collect, provider, request, textOf, waitFor } from './helpers'

let mock: MockUpstream
const schedulers: EnhancedPipelineScheduler[] = []
beforeAll(async () => {
  mock = await MockUpstream.start({ apiKeys: [API_KEY] })
})
afterAll(() => mock.close())
beforeEach(() => mock.reset())
afterEach(async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.destroy()))
})

async function scheduler(): Promise<EnhancedPipelineScheduler> {
  const s = new EnhancedPipelineScheduler({ maxConcurrentRequests: 4 })
  schedulers.push(s)
  await s.registerProvider(provider(mock))
  return s
}

/** Serves `events` as one event stream on a loopback port: in one write, or one write per event `gapMs` apart. */
async function cannedUpstream(events: string[], gapMs?: number): Promise<{ endpoint: string; close(): Promise<void> }> {
  const framed = events.map((e) => `data: ${e}\n\n`)
  const server: Server = createServer((req, res) => {
    req.resume()
    req.on('end', async () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      if (gapMs === undefined) return res.end(framed.join(''))
      for (const e of framed) {
        res.write(e)
        await new Promise((r) => setTimeout(r, gapMs))
      }
      res.end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  return { endpoint: `http://127.0.0.1:${port}/v1`, close: () => new Promise<void>((r) => server.close(() => r())) }
}

/** Every field a caller of the OpenAI chunk shape reads, present as the standard says. */
function expectStandardChunk(c: ChatCompletionChunk, id: string) {
  expect(c).toMatchObject({ id, object: 'chat.completion.chunk', model: expect.any(String), created: expect.any(Number) })
  expect(c.created).toBeLessThan(1e11) // seconds
  expect(Array.isArray(c.choices)).toBe(true)
  for (const choice of c.choices) {
    expect(choice.index).toBe(0)
    expect(typeof choice.delta).toBe('object')
    expect('finish_reason' in choice).toBe(true)
  }
}

describe('the streaming fast path', () => {
  it('chunks handed over as upstream text keep every field the caller reads (provider and scheduler)', async () => {
    const s = await scheduler()
    const runs = [
      await collect(provider(mock).streamChat(request('chunks=300', { stream_options: { include_usage: true } }))),
      await collect(s.scheduleStreamRequest('fp1', request('chunks=300', { stream_options: { include_usage: true } }))),
    ]
    for (const chunks of runs) {
      expect(chunks).toHaveLength(1 + 300 + 2)
      for (const c of chunks) expectStandardChunk(c, chunks[0].id)
      expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' })
      expect(chunks[1].choices[0].finish_reason).toBeNull()
      expect(chunks[301].choices[0].finish_reason).toBe('stop')
      expect(chunks[302].choices).toEqual([])
      expect(chunks[302].usage).toMatchObject({ completion_tokens: 300, total_tokens: expect.any(Number) })
    }
    expect(textOf(runs[0])).toBe(textOf(runs[1]))
  })

  it('text with NUL, line breaks, quotes, backslashes and non-ASCII arrives intact, however the chunks are batched', async () => {
    // Batches separate chunks with NUL: a NUL in the text travels escaped, never as a separator.
    const words = ['nul\u0000inside', 'line\nbreak', '"quoted"', 'back\\slash', '你好', 'emoji\u{1F600}', 'tab\tend']
    const want = words.join(' ')
    const ask = (extra = '') => request(`reply=${words.join('_')}${extra}`, { stream: true })
    const s = await scheduler()
    const runs = [
      await collect(provider(mock).streamChat(ask())),
      await collect(s.scheduleStreamRequest('nul1', ask())),
      // One chunk per read: batches of one.
      await collect(s.scheduleStreamRequest('nul2', ask(',chunk-delay=2'))),
    ]
    for (const chunks of runs) {
      expect(textOf(chunks)).toBe(want)
      expect(chunks.map((c) => c.choices[0]?.delta?.content).filter((t) => t)).toEqual(words.map((w, i) => (i === 0 ? w : ` ${w}`)))
    }
  })

  it('usage and the finish reason reach the events and the metrics; the slot is free when the loop ends', async () => {
    const s = await scheduler()
    const completed: Array<{ requestId: string; chunks?: number }> = []
    s.on('requestCompleted', (e) => completed.push(e))
    const chunks = await collect(s.scheduleStreamRequest('fp2', request('chunks=40', { stream_options: { include_usage: true } })))
    expect(s.getMetrics()).toMatchObject({ successfulRequests: 1, failedRequests: 0, currentConcurrentRequests: 0 })
    await waitFor(() => completed.length === 1)
    expect(completed[0]).toMatchObject({ requestId: 'fp2', chunks: chunks.length })
    expect(chunks[chunks.length - 1].usage!.completion_tokens).toBe(40)
  })

  it('a malformed event in the middle of one upstream write is a typed StreamError after the chunks before it', async () => {
    const chunk = (delta: object, finish: string | null) =>
      JSON.stringify({ id: 'chatcmpl-w', object: 'chat.completion.chunk', created: 1700000000, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] })
    const events = [
      chunk({ role: 'assistant', content: '' }, null),
      chunk({ content: 'Hel' }, null),
      chunk({ content: 'lo' }, null),
      '{"id":"chatcmpl-w","choices":[{"delta":{"content":"bro',
      chunk({ content: ' never' }, null),
      chunk({}, 'stop'),
      '[DONE]',
    ]
    const upstream = await cannedUpstream(events) // one write
    try {
      const p = new OpenAICompatibleProvider({ name: 'canned', endpoint: upstream.endpoint, apiKey: API_KEY, maxRetries: 0 })
      const got: string[] = []
      let error: unknown
      try {
        for await (const c of p.streamChat(request())) got.push(c.choices[0]?.delta?.content ?? '')
      } catch (e) {
        error = e
      }
      expect(got).toEqual(['', 'Hel', 'lo'])
      expect(error).toBeInstanceOf(StreamError)
      const e = error as StreamError
      expect(e.message).toMatch(/malformed chunk in event 4/)
      expect(e.partial!.choices[0].message.content).toBe('Hello')
      expect(e.providerName).toBe('canned')
    } finally {
      await upstream.close()
    }
  })

  it('chunks that repeat the one before but for their content are exactly what their text says, each a fresh object', async () => {
    // Such chunks reach JS as their content only and are built from the template they repeat
    // (src/stream.rs): key order, escapes, `__proto__` and nesting must come out as JSON.parse
    // would make them, and a caller changing one chunk must not change the next.
    const head = { id: 'chatcmpl-t', object: 'chat.completion.chunk', created: 1700000000, model: 'm', system_fingerprint: 'fp_1', usage: null }
    const chunk = (content: string, top: object = {}) =>
      JSON.stringify({ ...head, ...top, choices: [{ index: 0, delta: { content }, logprobs: null, finish_reason: null }] })
    const proto = (content: string) =>
      `{"__proto__":{"polluted":true},"id":"chatcmpl-t","nested":[1,[2,{"a":null}],-0.5e3,true,"s"],"object":"chat.completion.chunk",` +
      `"created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":${JSON.stringify(content)}},"finish_reason":null}]}`
    const texts = [
      JSON.stringify({ ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }),
      chunk('Hel'),
      chunk('lo'),
      chunk(' "quoted" \\ line\nbreak 你好 nul\u0000 😀'),
      chunk(''),
      chunk(' new', { system_fingerprint: 'fp_2' }), // differs elsewhere: a new template
      chunk(' shape', { system_fingerprint: 'fp_2' }),
      proto(' p'),
      proto('roto'),
      chunk(' back'), // the first shape again
      chunk(' again'),
      JSON.stringify({ ...head, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] }),
    ]
    const want = texts.map((t) => JSON.stringify(JSON.parse(t)))
    for (const gapMs of [undefined, 2]) {
      const upstream = await cannedUpstream([...texts, '[DONE]'], gapMs)
      try {
        const p = new OpenAICompatibleProvider({ name: 'canned', endpoint: upstream.endpoint, apiKey: API_KEY, maxRetries: 0 })
        const got: string[] = []
        for await (const c of p.streamChat(request())) {
          got.push(JSON.stringify(c))
          expect(Object.getPrototypeOf(c)).toBe(Object.prototype)
          // The caller changes what it got: later chunks stay what their text says.
          c.choices[0].delta.content = 'changed'
          c.choices.push(c.choices[0])
          ;(c as unknown as { nested?: unknown[] }).nested?.push('changed')
        }
        expect(got).toEqual(want)
        expect(({} as { polluted?: boolean }).polluted).toBeUndefined()
      } finally {
        await upstream.close()
      }
    }
  })

  it('the iterator starts the call on the first next(), answers concurrent next() calls in order, and throw() cancels', async () => {
    const it = provider(mock).streamChat(request('chunks=20'))[Symbol.asyncIterator]()
    await new Promise((r) => setTimeout(r, 20))
    expect(mock.stats().streamRequests).toBe(0)
    const steps = await Promise.all([it.next(), it.next(), it.next()])
    expect(steps.map((s) => s.value!.choices[0].delta.content)).toEqual(['', 'Hello', ' from'])
    expect(mock.stats().streamRequests).toBe(1)

    const slow = provider(mock).streamChat(request('chunk-delay=20,chunks=200'))[Symbol.asyncIterator]()
    await slow.next()
    const boom = new Error('consumer failed')
    await expect(slow.throw!(boom)).rejects.toBe(boom)
    await waitFor(() => mock.stats().streamsCancelled === 1)
    expect(await slow.next()).toEqual({ value: undefined, done: true })

    const never = provider(mock).streamChat(request('chunks=5'))[Symbol.asyncIterator]()
    expect(await never.return!(undefined)).toEqual({ value: undefined, done: true })
    expect(await never.next()).toEqual({ value: undefined, done: true })
    expect(mock.stats().streamRequests).toBe(2) // `it` and `slow`: `never` made no request
  })
})
