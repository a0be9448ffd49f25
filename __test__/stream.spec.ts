import { CancelledError, StreamError } from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { API_KEY, collect, provider, request, textOf, waitFor } from './helpers'

let mock: MockUpstream
beforeAll(async () => {
  mock = await MockUpstream.start({ apiKeys: [API_KEY] })
})
afterAll(() => mock.close())
beforeEach(() => mock.reset())

describe('OpenAICompatibleProvider.streamChat', () => {
  it('yields standard chunks with delta, then the usage chunk', async () => {
    const chunks = await collect(provider(mock).streamChat(request('', { stream_options: { include_usage: true } })))
    expect(textOf(chunks)).toBe('Hello from the mock upstream! You said: ping')
    for (const c of chunks) {
      expect(c.object).toBe('chat.completion.chunk')
      expect(c.id).toBe(chunks[0].id)
    }
    expect(chunks[0].choices[0].delta.role).toBe('assistant')
    const finish = chunks[chunks.length - 2]
    expect(finish.choices[0].finish_reason).toBe('stop')
    const usage = chunks[chunks.length - 1]
    expect(usage.choices).toEqual([])
    expect(usage.usage!.completion_tokens).toBe(8)
    expect(mock.requests()[0].body).toMatchObject({ stream: true, stream_options: { include_usage: true } })
  })

  it('streams tool-call fragments (empty-id continuations) and reasoning_content', async () => {
    const chunks = await collect(provider(mock).streamChat(request('tools,reasoning')))
    const reasoning = chunks.map((c) => c.choices[0]?.delta.reasoning_content ?? '').join('')
    expect(reasoning).toBe('Let me think about that.')
    const fragments = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])
    expect(fragments).toHaveLength(2)
    expect(fragments[1].id).toBe('')
    expect(fragments.map((f) => f.function?.arguments).join('')).toBe('{"location": "Hangzhou"}')
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'tool_calls')).toBe(true)
  })

  it('closes the upstream connection when the loop breaks early', async () => {
    const seen: string[] = []
    for await (const chunk of provider(mock).streamChat(request('chunk-delay=20,chunks=200'))) {
      seen.push(chunk.choices[0]?.delta.content ?? '')
      if (seen.length === 3) break
    }
    expect(seen).toHaveLength(3)
    await waitFor(() => mock.stats().streamsCancelled === 1)
    expect(mock.stats().streamsCompleted).toBe(0)
  })

  it('return() on the iterator also cancels the upstream', async () => {
    const it = provider(mock).streamChat(request('chunk-delay=20,chunks=200'))[Symbol.asyncIterator]()
    await it.next()
    await it.return!(undefined)
    await waitFor(() => mock.stats().streamsCancelled === 1)
  })

  it('aborts a stream with an AbortSignal', async () => {
    const controller = new AbortController()
    const got: string[] = []
    const run = (async () => {
      for await (const c of provider(mock).streamChat(request('chunk-delay=30,chunks=100'), { signal: controller.signal })) {
        got.push(c.choices[0]?.delta.content ?? '')
        if (got.length === 2) controller.abort()
      }
    })()
    await expect(run).rejects.toBeInstanceOf(CancelledError)
    await waitFor(() => mock.stats().streamsCancelled === 1)
  })

  it.each([
    ['truncate-after=3', /broke mid-stream/],
    ['malformed-after=3', /malformed chunk/],
    ['error-after=3', /The upstream model crashed/],
  ])('ends a broken stream (%s) with StreamError carrying what was received', async (scenario, message) => {
    const got: string[] = []
    let error: unknown
    try {
      for await (const c of provider(mock).streamChat(request(scenario))) got.push(c.choices[0]?.delta.content ?? '')
    } catch (e) {
      error = e
    }
    expect(got.join('')).toBe('Hello from')
    expect(error).toBeInstanceOf(StreamError)
    const e = error as StreamError
    expect(e.message).toMatch(message)
    expect(e.partial!.choices[0].message.content).toBe('Hello from')
    expect(e.providerName).toBe('mock')
  })

  it('turns a JSON answer to a stream request into chunks', async () => {
    const chunks = await collect(provider(mock).streamChat(request('json-for-stream')))
    expect(textOf(chunks)).toBe('Hello from the mock upstream! You said: ping')
    expect(chunks[chunks.length - 1].usage).toBeDefined()
  })

  it('rejects an HTML answer to a stream request', async () => {
    await expect(collect(provider(mock).streamChat(request('html')))).rejects.toMatchObject({ name: 'ProviderError', message: expect.stringMatching(/text\/html/) })
  })
})
