import {
  BaseProvider,
  CancelledError,
  CircuitBreakerError,
  EnhancedPipelineScheduler,
  OpenAICompatibleProvider,
  ProviderError,
  QueueFullError,
  RateLimitError,
  StreamError,
  TimeoutError,
  ValidationError,
  type ChatCompletionChunk,
  type OpenAIChatRequestData,
  type OpenAIChatResponseData,
} from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { API_KEY, collect, request, textOf } from './helpers'

let mock: MockUpstream
const schedulers: EnhancedPipelineScheduler[] = []

beforeAll(async () => {
  mock = await MockUpstream.start()
})
afterAll(async () => {
  await mock.close()
})
afterEach(async () => {
  await Promise.all(schedulers.splice(0).map((s) => s.destroy()))
})

function scheduler(config: ConstructorParameters<typeof EnhancedPipelineScheduler>[0] = {}): EnhancedPipelineScheduler {
  const s = new EnhancedPipelineScheduler(config)
  schedulers.push(s)
  return s
}

/** A provider on the mock whose every answer follows `scenario` (sent as a header). */
function upstream(name: string, scenario = ''): OpenAICompatibleProvider {
  return new OpenAICompatibleProvider({
    name,
    endpoint: mock.openaiBase,
    apiKey: API_KEY,
    headers: { 'x-mock-scenario': scenario || `reply=from_${name}` },
  })
}

const contentOf = (r: OpenAIChatResponseData) => r.choices[0].message.content

describe('EnhancedPipelineScheduler: the README quick start', () => {
  it('registers providers and schedules a request over real HTTP', async () => {
    const s = scheduler({
      maxConcurrentRequests: 10,
      requestTimeout: 30000,
      loadBalancingStrategy: 'round-robin',
      circuitBreaker: { enabled: true, failureThreshold: 5, recoveryTimeout: 60000 },
    })
    await s.registerProvider(new OpenAICompatibleProvider({ name: 'qwen', endpoint: mock.openaiBase, apiKey: API_KEY }))
    const response = await s.scheduleRequest('request-123', { model: 'qwen-turbo', messages: [{ role: 'user', content: 'Hello!' }] }, 'high', 30000)
    expect(response.object).toBe('chat.completion')
    expect(contentOf(response)).toContain('You said: Hello!')
    const m = s.getMetrics()
    expect(m).toMatchObject({ totalRequests: 1, successfulRequests: 1, failedRequests: 0, queueLength: 0, errorRate: 0 })
    expect(m.pipelines.qwen.successfulRequests).toBe(1)
    expect(s.getHealth().status).toBe('healthy')
  })

  it('rejects bad config with a ValidationError naming the field', () => {
    expect(() => new EnhancedPipelineScheduler({ circuitBreaker: { failureThreshold: -1 } })).toThrow(
      new ValidationError('circuitBreaker.failureThreshold must be a positive integer, got -1'),
    )
    try {
      new EnhancedPipelineScheduler({ maxConcurrentRequests: 0 })
      throw new Error('no error')
    } catch (e) {
      expect(e).toBeInstanceOf(ValidationError)
      expect((e as ValidationError).field).toBe('maxConcurrentRequests')
    }
  })
})

describe('admission', () => {
  it('runs queued requests by priority, FIFO within a priority, and resolves them with the response', async () => {
    const s = scheduler({ maxConcurrentRequests: 1 })
    await s.registerProvider(upstream('a', 'latency=100'))
    const order: string[] = []
    s.on('requestStarted', (e) => order.push(e.requestId))
    const queued: string[] = []
    s.on('requestQueued', (e) => queued.push(e.requestId))
    const plan: [string, 'low' | 'medium' | 'high' | 'critical' | number][] = [
      ['first', 'medium'],
      ['low', 'low'],
      ['high-1', 'high'],
      ['medium', 'medium'],
      ['high-2', 'high'],
      ['critical', 'critical'],
      ['numeric-90', 90],
    ]
    const results = await Promise.all(plan.map(([id, p]) => s.scheduleRequest(id, request(), p)))
    for (const r of results) expect(r.object).toBe('chat.completion')
    expect(order).toEqual(['first', 'critical', 'numeric-90', 'high-1', 'high-2', 'medium', 'low'])
    expect(queued).toHaveLength(6)
  })

  it('bounds the queue and times out waiting requests with phase "queue"', async () => {
    const s = scheduler({ maxConcurrentRequests: 1, maxQueueSize: 1 })
    await s.registerProvider(upstream('a', 'latency=400'))
    const running = s.scheduleRequest('running', request())
    const waiting = s.scheduleRequest('waiting', request(), 'medium', 100)
    await expect(s.scheduleRequest('overflow', request())).rejects.toBeInstanceOf(QueueFullError)
    const err = await waiting.catch((e) => e)
    expect(err).toBeInstanceOf(TimeoutError)
    expect(err).toMatchObject({ phase: 'queue', requestId: 'waiting' })
    await expect(running).resolves.toMatchObject({ object: 'chat.completion' })
  })

  it('an AbortSignal removes a queued request at once and aborts a running one', async () => {
    const s = scheduler({ maxConcurrentRequests: 1 })
    await s.registerProvider(upstream('a', 'latency=2000'))
    mock.reset()
    const runCtl = new AbortController()
    const running = s.scheduleRequest('running', request(), 'medium', 10000, { signal: runCtl.signal })
    const queueCtl = new AbortController()
    const queued = s.scheduleRequest('queued', request(), 'medium', 10000, { signal: queueCtl.signal })
    await new Promise((r) => setTimeout(r, 50))
    expect(s.getMetrics().queueLength).toBe(1)
    const t0 = Date.now()
    queueCtl.abort()
    await expect(queued).rejects.toBeInstanceOf(CancelledError)
    expect(s.getMetrics().queueLength).toBe(0)
    runCtl.abort()
    await expect(running).rejects.toBeInstanceOf(CancelledError)
    expect(Date.now() - t0).toBeLessThan(500)
    expect(mock.stats().chatRequests).toBe(1)
  })
})

describe('events and answers', () => {
  it('an event reaches its listeners before the answer it concerns, for every request', async () => {
    // Several schedulers, so the shared settle queue is older than this one's events would be
    // on a threadsafe function of their own.
    await scheduler().registerProvider(upstream('warm')).then(() => schedulers[0].scheduleRequest('warm', request()))
    const s = scheduler({ retry: { maxRetries: 0 } })
    await s.registerProvider(upstream('bad', 'status=400'))
    const seen: string[] = []
    s.on('requestCompleted', (e: { requestId: string }) => seen.push(`completed:${e.requestId}`))
    s.on('requestFailed', (e: { requestId: string }) => seen.push(`failed:${e.requestId}`))
    for (let i = 0; i < 20; i++) {
      const err = await s.scheduleRequest(`r${i}`, request()).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ProviderError)
      expect(seen[seen.length - 1]).toBe(`failed:r${i}`)
    }
    const ok = scheduler()
    await ok.registerProvider(upstream('good'))
    ok.on('requestCompleted', (e: { requestId: string }) => seen.push(`completed:${e.requestId}`))
    for (let i = 0; i < 20; i++) {
      await ok.scheduleRequest(`g${i}`, request())
      expect(seen[seen.length - 1]).toBe(`completed:g${i}`)
    }
  })
})

describe('answers when promises wait long (the settle queue coalesces wake-ups)', () => {
  it('every answer reaches its caller, and every event comes before the answer it concerns', async () => {
    // Answers that take 25 ms: once the typical promise has waited 10 ms or more, the JS thread
    // is woken a timer tick after the first outcome instead of at once (src/settle.rs).
    const slow = scheduler({ maxConcurrentRequests: 16, retry: { maxRetries: 0 } })
    await slow.registerProvider(upstream('slow', 'latency=25,reply=slow'))
    await Promise.all(Array.from({ length: 16 }, (_, i) => slow.scheduleRequest(`warm${i}`, request())))

    const bad = scheduler({ maxConcurrentRequests: 16, retry: { maxRetries: 0 } })
    await bad.registerProvider(upstream('bad', 'latency=25,status=400'))
    const seen = new Set<string>()
    slow.on('requestCompleted', (e: { requestId: string }) => seen.add(`completed:${e.requestId}`))
    bad.on('requestFailed', (e: { requestId: string }) => seen.add(`failed:${e.requestId}`))
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        i % 2 === 0
          ? slow.scheduleRequest(`ok${i}`, request()).then((r) => {
              expect(seen.has(`completed:ok${i}`)).toBe(true)
              return contentOf(r)
            })
          : bad.scheduleRequest(`bad${i}`, request()).catch((e: unknown) => {
              expect(e).toBeInstanceOf(ProviderError)
              expect(seen.has(`failed:bad${i}`)).toBe(true)
              return 'rejected'
            }),
      ),
    )
    expect(answers).toEqual(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? 'slow' : 'rejected')))
  })
})

describe('load balancing', () => {
  it('weighted: exact shares by configured weight', async () => {
    const s = scheduler({ loadBalancingStrategy: 'weighted', maxConcurrentRequests: 4 })
    await s.registerProvider(upstream('heavy'), { weight: 3 })
    await s.registerProvider(upstream('light'), { weight: 1 })
    const replies = []
    for (let i = 0; i < 40; i++) replies.push(contentOf(await s.scheduleRequest(`w${i}`, request())))
    expect(replies.filter((r) => r === 'from heavy')).toHaveLength(30)
    expect(replies.filter((r) => r === 'from light')).toHaveLength(10)
  })

  it('a custom strategy registered from JS chooses the pipeline', async () => {
    const s = scheduler()
    await s.registerProvider(upstream('a'))
    await s.registerProvider(upstream('b'))
    const seen: string[][] = []
    s.registerLoadBalancingStrategy('always-b', {
      selectPipeline(pipelines) {
        seen.push(pipelines.map((p) => p.id))
        return pipelines.find((p) => p.id === 'b') ?? null
      },
    })
    s.updateConfig({ loadBalancingStrategy: 'always-b' })
    for (let i = 0; i < 3; i++) expect(contentOf(await s.scheduleRequest(`c${i}`, request()))).toBe('from b')
    expect(seen[0]).toEqual(['a', 'b'])
    s.registerLoadBalancingStrategy('broken', {
      selectPipeline() {
        throw new TypeError('strategy bug')
      },
    })
    s.updateConfig({ loadBalancingStrategy: 'broken' })
    await expect(s.scheduleRequest('x', request())).rejects.toThrow('strategy bug')
    expect(() => s.updateConfig({ loadBalancingStrategy: 'not-registered' })).toThrow(ValidationError)
  })
})

describe('faults', () => {
  it('retries a failed request on another provider and opens, then recovers, the failing one’s breaker', async () => {
    const s = scheduler({ circuitBreaker: { failureThreshold: 2, recoveryTimeout: 300 }, retry: { baseDelay: 10 } })
    let failing = true
    class Flaky extends BaseProvider {
      async executeChat(r: OpenAIChatRequestData): Promise<OpenAIChatResponseData> {
        if (failing) throw Object.assign(new Error('upstream 503'), { status: 503 })
        return { id: 'x', object: 'chat.completion', created: 1, model: r.model!, choices: [{ index: 0, message: { role: 'assistant', content: 'flaky ok' }, finish_reason: 'stop' }] }
      }
    }
    await s.registerProvider(new Flaky({ name: 'flaky' }))
    await s.registerProvider(upstream('good'))
    const events: string[] = []
    for (const e of ['retry', 'circuitOpen', 'circuitHalfOpen', 'circuitClose'] as const) s.on(e, (p: any) => events.push(`${e}:${p.pipelineId}`))
    for (let i = 0; i < 4; i++) expect(contentOf(await s.scheduleRequest(`f${i}`, request()))).toBe('from good')
    expect(events).toContain('circuitOpen:flaky')
    expect(s.getMetrics().pipelines.flaky.circuitState).toBe('open')
    expect(s.getMetrics().circuitBreakerTripCount).toBe(1)
    failing = false
    await new Promise((r) => setTimeout(r, 350))
    const replies = []
    for (let i = 0; i < 4; i++) replies.push(contentOf(await s.scheduleRequest(`g${i}`, request())))
    expect(replies).toContain('flaky ok')
    expect(events).toEqual(expect.arrayContaining(['retry:flaky', 'circuitHalfOpen:flaky', 'circuitClose:flaky']))
  })

  it('all circuits open: CircuitBreakerError with retryAfterMs', async () => {
    const s = scheduler({ circuitBreaker: { failureThreshold: 1, recoveryTimeout: 5000 }, retry: { maxRetries: 0 } })
    await s.registerProvider(upstream('down', 'status=503'))
    await expect(s.scheduleRequest('a', request())).rejects.toBeInstanceOf(ProviderError)
    const err = await s.scheduleRequest('b', request()).catch((e) => e)
    expect(err).toBeInstanceOf(CircuitBreakerError)
    expect(err.retryAfterMs).toBeGreaterThan(4000)
    expect(err.retryAfterMs).toBeLessThanOrEqual(5000)
  })

  it('a JS provider that throws synchronously or rejects gives a typed rejection, never a crash', async () => {
    const s = scheduler({ retry: { maxRetries: 1, baseDelay: 5 } })
    let calls = 0
    class Broken extends BaseProvider {
      executeChat(): Promise<OpenAIChatResponseData> {
        calls++
        if (calls === 1) throw new RateLimitError('slow down', { retryAfterMs: 20 })
        throw Object.assign(new Error('bad request'), { status: 400 })
      }
    }
    await s.registerProvider(new Broken({ name: 'broken' }))
    const err = await s.scheduleRequest('x', request()).catch((e) => e)
    expect(calls).toBe(2) // the rate limit was retried, the 400 was not
    expect(err).toBeInstanceOf(ProviderError)
    expect(err).toMatchObject({ status: 400, message: 'bad request', pipelineId: 'broken', attempts: 2 })
  })

  it('schedules a JS provider’s executeStreamChat generator, and aborting stops it', async () => {
    const s = scheduler()
    let closed = false
    class Generator extends BaseProvider {
      async *executeStreamChat(r: OpenAIChatRequestData): AsyncGenerator<ChatCompletionChunk> {
        try {
          for (let i = 0; i < 1000; i++) {
            yield { id: 'g', object: 'chat.completion.chunk' as const, created: 1, model: r.model!, choices: [{ index: 0, delta: { content: `t${i} ` }, finish_reason: null }] }
            await new Promise((res) => setTimeout(res, 1))
          }
        } finally {
          closed = true
        }
      }
    }
    await s.registerProvider(new Generator({ name: 'gen' }))
    const got: string[] = []
    for await (const c of s.scheduleStreamRequest('g1', request())) {
      got.push(c.choices[0].delta.content ?? '')
      if (got.length === 3) break
    }
    expect(got).toEqual(['t0 ', 't1 ', 't2 '])
    await new Promise((r) => setTimeout(r, 50))
    expect(closed).toBe(true)
    expect(s.getMetrics().currentConcurrentRequests).toBe(0)
  })

  it('streams fail over before the first chunk and report mid-stream failures as StreamError', async () => {
    const s = scheduler({ retry: { baseDelay: 5 } })
    await s.registerProvider(upstream('bad', 'status=502'))
    await s.registerProvider(upstream('good', 'reply=streamed_answer'))
    const chunks = await collect(s.scheduleStreamRequest('s1', request()))
    expect(textOf(chunks)).toBe('streamed answer')

    const t = scheduler()
    await t.registerProvider(upstream('cut', 'truncate-after=3'))
    const got: string[] = []
    const err = await (async () => {
      for await (const c of t.scheduleStreamRequest('s2', request('', { model: 'gpt-4o-mini' }))) got.push(c.choices[0]?.delta?.content ?? '')
    })().catch((e) => e)
    expect(err).toBeInstanceOf(StreamError)
    expect(err.pipelineId).toBe('cut')
    expect(err.partial.choices[0].message.content).toBe(got.join(''))
    expect(t.getMetrics().failedRequests).toBe(1)
  })
})

describe('run-time changes', () => {
  it('updateConfig under load neither drops nor double-runs work', async () => {
    const s = scheduler({ maxConcurrentRequests: 1 })
    await s.registerProvider(upstream('a', 'latency=50'))
    const updates: unknown[] = []
    s.on('configUpdated', (e) => updates.push(e))
    mock.reset()
    const all = Array.from({ length: 20 }, (_, i) => s.scheduleRequest(`u${i}`, request()))
    await new Promise((r) => setTimeout(r, 20))
    expect(s.getMetrics().queueLength).toBeGreaterThan(10)
    s.updateConfig({ maxConcurrentRequests: 20, retry: { maxRetries: 0 } })
    const t0 = Date.now()
    const results = await Promise.all(all)
    expect(results).toHaveLength(20)
    expect(Date.now() - t0).toBeLessThan(1000)
    expect(mock.stats().chatRequests).toBe(20)
    expect(updates).toHaveLength(1)
    expect(s.getConfig()).toMatchObject({ maxConcurrentRequests: 20, retry: { maxRetries: 0, baseDelay: 500 } })
  })

  it('destroy() rejects pending work with CancelledError', async () => {
    const s = new EnhancedPipelineScheduler({ maxConcurrentRequests: 1 })
    await s.registerProvider(upstream('a', 'latency=1000'))
    const pending = [s.scheduleRequest('a', request()), s.scheduleRequest('b', request()), s.scheduleRequest('c', request())]
    await new Promise((r) => setTimeout(r, 20))
    await s.destroy()
    for (const p of pending) await expect(p).rejects.toBeInstanceOf(CancelledError)
    await expect(s.scheduleRequest('late', request())).rejects.toBeInstanceOf(CancelledError)
  })
})
