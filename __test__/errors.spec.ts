import {
  AuthenticationError, PipelineError, ProviderError, RateLimitError, TimeoutError, ValidationError,
  OpenAICompatibleProvider, CancelledError, StreamError, QueueFullError, CircuitBreakerError, NoAvailablePipelineError, PipelineExecutionError,
} from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { API_KEY, collect, provider, request } from './helpers'

let mock: MockUpstream
beforeAll(async () => {
  mock = await MockUpstream.start({ apiKeys: [API_KEY] })
})
afterAll(() => mock.close())

async function failure(p: Promise<unknown>): Promise<PipelineError> {
  try {
    await p
  } catch (e) {
    return e as PipelineError
  }
  throw new Error('expected a rejection')
}

describe('typed errors', () => {
  it('429 → RateLimitError with retryAfterMs, instanceof its whole chain inside jest', async () => {
    const e = await failure(provider(mock).chat(request('status=429,retry-after=2')))
    expect(e).toBeInstanceOf(RateLimitError)
    expect(e).toBeInstanceOf(PipelineError)
    expect(e).toBeInstanceOf(Error)
    expect(e).toMatchObject({ name: 'RateLimitError', code: 'RATE_LIMIT_ERROR', status: 429, retryAfterMs: 2000, retryable: true, providerName: 'mock', providerCode: 'rate_limit_exceeded' })
    expect(e.message).toBe('429 Requests rate limit exceeded, please try again later.')
    const ms = await failure(provider(mock).chat(request('status=429,retry-after-ms=1500')))
    expect((ms as RateLimitError).retryAfterMs).toBe(1500)
  })

  it('401 and 403 → AuthenticationError, and the key never appears in the error', async () => {
    const e = await failure(provider(mock, { apiKey: 'sk-wrong-secret-key' }).chat(request()))
    expect(e).toBeInstanceOf(AuthenticationError)
    expect(e).toMatchObject({ status: 401, providerCode: 'invalid_api_key', retryable: false })
    expect(JSON.stringify({ ...e, message: e.message, stack: e.stack })).not.toContain('sk-wrong-secret-key')
    expect(await failure(provider(mock).chat(request('status=403')))).toBeInstanceOf(AuthenticationError)
  })

  it('5xx → ProviderError with status and body; 400 is not retryable', async () => {
    const e = (await failure(provider(mock).chat(request('status=503')))) as ProviderError
    expect(e).toBeInstanceOf(ProviderError)
    expect(e).toMatchObject({ code: 'PROVIDER_ERROR', status: 503, retryable: true, providerCode: 'server_error' })
    expect(JSON.parse(e.body!).error.message).toBe('Service temporarily unavailable')
    const bad = await failure(provider(mock).chat(request('status=400')))
    expect(bad).toMatchObject({ status: 400, retryable: false })
  })

  it('a reset connection → ProviderError with code CONNECTION_ERROR (retryable)', async () => {
    const e = await failure(provider(mock).chat(request('reset')))
    expect(e).toBeInstanceOf(ProviderError)
    expect(e).toMatchObject({ code: 'CONNECTION_ERROR', retryable: true })
  })

  it('a non-JSON body → ProviderError naming the problem', async () => {
    const e = await failure(provider(mock).chat(request('malformed')))
    expect(e).toBeInstanceOf(ProviderError)
    expect(e.message).toMatch(/not JSON/)
  })

  it('bad config → ValidationError naming the field, thrown by the constructor', () => {
    const make = (cfg: object) => () => new OpenAICompatibleProvider(cfg as never)
    expect(make({ name: 'x', timeouts: { connect: -1 } })).toThrow(ValidationError)
    expect(make({ name: 'x', timeouts: { connect: -1 } })).toThrow('timeouts.connect must be a positive integer (milliseconds), got -1')
    expect(make({ name: 'x', endpoint: 'not a url' })).toThrow(expect.objectContaining({ field: 'endpoint' }))
    expect(make({ endpoint: 'http://x' })).toThrow(expect.objectContaining({ field: 'name' }))
    expect(make({ name: 'x', apiKeys: ['sk-leak', 7] })).toThrow(expect.objectContaining({ field: 'apiKeys[1]', message: expect.not.stringContaining('sk-leak') }))
    // A pasted newline would otherwise send every request without credentials.
    expect(make({ name: 'x', apiKey: 'sk-pasted\n' })).toThrow(expect.objectContaining({ field: 'apiKey', message: expect.stringMatching(/control character(?!.*sk-pasted)/) }))
  })

  it('a provider also retries by itself when maxRetries is set', async () => {
    mock.reset()
    const e = await failure(provider(mock, { maxRetries: 2 }).chat(request('status=500,retry-after-ms=5')))
    expect(e).toMatchObject({ status: 500 })
    expect(mock.stats().chatRequests).toBe(3)
  })

  it('every class is exported with its code and extends PipelineError', () => {
    const classes = [ValidationError, AuthenticationError, RateLimitError, CircuitBreakerError, TimeoutError, QueueFullError, CancelledError, ProviderError, StreamError, NoAvailablePipelineError]
    const codes = classes.map((C) => new C('m').code)
    expect(new Set(codes).size).toBe(classes.length)
    for (const C of classes) {
      const e = new C('m', { requestId: 'r1', cause: 'c' })
      expect(e).toBeInstanceOf(PipelineError)
      expect(e).toMatchObject({ name: C.name, requestId: 'r1', cause: 'c' })
    }
    expect(PipelineExecutionError).toBe(PipelineError)
  })
})

describe('timeouts, each with its phase', () => {
  async function phaseOf(p: Promise<unknown>): Promise<string> {
    const e = await failure(p)
    expect(e).toBeInstanceOf(TimeoutError)
    return (e as TimeoutError).phase
  }

  it('connect', async () => {
    const p = new OpenAICompatibleProvider({ name: 'hole', endpoint: `http://127.0.0.1:${mock.blackholePort}/v1`, timeouts: { connect: 200 } })
    expect(await phaseOf(p.chat(request()))).toBe('connect')
  })

  it('firstToken, for a call and for a stream', async () => {
    const p = provider(mock, { timeouts: { firstToken: 200 } })
    expect(await phaseOf(p.chat(request('latency=3000')))).toBe('firstToken')
    expect(await phaseOf(collect(p.streamChat(request('first-token-delay=3000'))))).toBe('firstToken')
  })

  it('idle between chunks', async () => {
    const got: string[] = []
    const run = (async () => {
      for await (const c of provider(mock).streamChat(request('stall-after=3'), { timeouts: { idle: 200 } })) got.push(c.id)
    })()
    const e = (await failure(run)) as TimeoutError
    expect(e).toMatchObject({ phase: 'idle', timeoutMs: 200, retryable: true })
    expect(got).toHaveLength(3)
  })

  it('total', async () => {
    const e = (await failure(collect(provider(mock, { timeouts: { total: 300 } }).streamChat(request('chunk-delay=50,chunks=100'))))) as TimeoutError
    expect(e).toMatchObject({ phase: 'total', timeoutMs: 300, retryable: false })
  })
})
