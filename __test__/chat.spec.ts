import { OpenAICompatibleProvider, ValidationError, CancelledError } from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { API_KEY, provider, request } from './helpers'

let mock: MockUpstream
beforeAll(async () => {
  mock = await MockUpstream.start({ apiKeys: [API_KEY] })
})
afterAll(() => mock.close())
beforeEach(() => mock.reset())

describe('OpenAICompatibleProvider.chat', () => {
  it('returns a standard chat.completion', async () => {
    const res = await provider(mock).chat(request())
    expect(res.object).toBe('chat.completion')
    expect(res.id).toMatch(/^chatcmpl-/)
    expect(res.created).toBeLessThan(Date.now() / 1000 + 5)
    expect(res.created).toBeGreaterThan(Date.now() / 1000 - 60)
    expect(res.choices[0].message).toEqual({ role: 'assistant', content: 'Hello from the mock upstream! You said: ping' })
    expect(res.choices[0].finish_reason).toBe('stop')
    expect(res.usage!.total_tokens).toBe(res.usage!.prompt_tokens + res.usage!.completion_tokens)
  })

  it('sends the key, stream:false and unknown request fields untouched', async () => {
    await provider(mock).chat(request('', { metadata: { sessionId: 's-1' }, vl_high_resolution_images: true, maxTokens: 100 }))
    const [sent] = mock.requests()
    expect(sent.path).toBe('/v1/chat/completions')
    expect(sent.headers.authorization).toBe(`Bearer ${API_KEY}`)
    expect(sent.body.stream).toBe(false)
    expect(sent.body.metadata).toEqual({ sessionId: 's-1' })
    expect(sent.body.vl_high_resolution_images).toBe(true)
    expect(sent.body.max_tokens).toBe(100)
    expect(sent.body.maxTokens).toBeUndefined()
  })

  it('keeps vendor fields of the answer (reasoning_content, tool calls)', async () => {
    const res = await provider(mock).chat(request('reasoning,tools'))
    const msg = res.choices[0].message
    expect(msg.reasoning_content).toBe('Let me think about that.')
    expect(msg.tool_calls![0]).toMatchObject({ type: 'function', function: { name: 'get_weather', arguments: '{"location": "Hangzhou"}' } })
    expect(msg.tool_calls![0].id).toMatch(/^call_[0-9a-f]{24}$/)
    expect(res.choices[0].finish_reason).toBe('tool_calls')
  })

  it('uses the default model and rejects requests without model or messages', async () => {
    const withDefault = provider(mock, { defaultModel: 'qwen-turbo' })
    const res = await withDefault.chat({ messages: [{ role: 'user', content: 'hi' }] })
    expect(res.model).toBe('qwen-turbo')
    const p = provider(mock)
    await expect(p.chat({ messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ name: 'ValidationError', message: 'Model is required', field: 'model' })
    await expect(p.chat({ model: 'm', messages: [] })).rejects.toBeInstanceOf(ValidationError)
    await expect(p.chat({ model: 'm', messages: [{ role: 'user', content: 5 as unknown as string }] })).rejects.toMatchObject({ field: 'messages[0].content' })
    expect(mock.stats().chatRequests).toBe(1)
  })

  it('aborts an in-flight call with an AbortSignal', async () => {
    const controller = new AbortController()
    const pending = provider(mock).chat(request('latency=5000'), { signal: controller.signal })
    setTimeout(() => controller.abort(), 50)
    const started = Date.now()
    await expect(pending).rejects.toBeInstanceOf(CancelledError)
    expect(Date.now() - started).toBeLessThan(2000)
    await expect(provider(mock).chat(request(), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'CANCELLED' })
  })

  it('accepts the original CompatibilityModule as second argument', async () => {
    const res = await provider(mock).chat(request(), {
      mapRequest: (r) => ({ ...r, temperature: 0.1 }),
      mapResponse: (r) => ({ ...r, mapped: true }),
    })
    expect(res.mapped).toBe(true)
    expect(mock.requests()[0].body.temperature).toBe(0.1)
  })

  it('rotates several API keys round-robin', async () => {
    const second = 'sk-mock-secret-second'
    const multi = await MockUpstream.start({ apiKeys: [API_KEY, second] })
    try {
      const p = new OpenAICompatibleProvider({ name: 'multi', endpoint: multi.openaiBase, apiKeys: [API_KEY, second] })
      for (let i = 0; i < 4; i++) await p.chat(request())
      expect(multi.requests().map((r) => r.headers.authorization)).toEqual([API_KEY, second, API_KEY, second].map((k) => `Bearer ${k}`))
    } finally {
      await multi.close()
    }
  })

  it('speaks HTTP/2 when asked', async () => {
    await provider(mock, { httpVersion: '2' }).chat(request())
    expect(mock.requests()[0].httpVersion).toBe('HTTP/2.0')
  })
})

describe('listModels and healthCheck', () => {
  it('lists the upstream models', async () => {
    expect(await provider(mock).listModels()).toEqual(expect.arrayContaining(['gpt-4o-mini', 'qwen-turbo']))
  })

  it('reports healthy, and unhealthy with the reason when the upstream is down or refuses the key', async () => {
    const ok = await provider(mock).healthCheck()
    expect(ok).toMatchObject({ status: 'healthy', provider: 'mock' })
    expect(ok.latencyMs).toBeGreaterThanOrEqual(0)
    expect(new Date(ok.timestamp).toString()).not.toBe('Invalid Date')
    const badKey = await provider(mock, { apiKey: 'sk-wrong' }).healthCheck()
    expect(badKey.status).toBe('unhealthy')
    expect(badKey.error).toMatch(/^401/)
    const down = await new OpenAICompatibleProvider({ name: 'down', endpoint: `http://127.0.0.1:${mock.blackholePort}/v1`, timeouts: { connect: 200 } }).healthCheck()
    expect(down.status).toBe('unhealthy')
  })

  it('describes itself', () => {
    const p = provider(mock, { supportedModels: ['a', 'b'], defaultModel: 'a' })
    expect(p.getProviderInfo()).toEqual({
      name: 'mock',
      endpoint: mock.openaiBase,
      supportedModels: ['a', 'b'],
      defaultModel: 'a',
      capabilities: { streaming: true, tools: true, vision: true, jsonMode: true },
      type: 'provider',
    })
    expect(JSON.stringify(p.getConfig())).not.toContain(API_KEY)
  })
})
