import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import {
  AuthenticationError,
  EnhancedPipelineScheduler,
  PipelineTracker,
  ProviderError,
  QwenProvider,
  RateLimitError,
  type AuthenticationRequiredEvent,
  type DeviceFlowEvent,
  type TokenRefreshedEvent,
} from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { collect, textOf } from './helpers'

let mock: MockUpstream
let dir: string

beforeAll(async () => {
  mock = await MockUpstream.start()
})
beforeEach(() => {
  mock.reset()
  mock.qwen.setPollInterval(1) // the server's interval wins over qwen-code's 2 s default
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcc-qwen-'))
})
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))
afterAll(async () => {
  await mock.close()
})

const credsPath = () => path.join(dir, 'oauth_creds.json')
const ask = (content: string) => ({ model: 'qwen3-coder-plus', messages: [{ role: 'user' as const, content }] })

/** An OAuth-mode provider on the mock, signed in through the device flow. */
async function signedIn(extra: Record<string, unknown> = {}): Promise<QwenProvider> {
  const qwen = new QwenProvider({ name: 'Qwen', oauth: { baseUrl: mock.qwen.baseUrl }, tokenStoragePath: credsPath(), ...extra })
  const flow = await qwen.initiateDeviceFlow(false)
  await qwen.waitForDeviceAuthorization(flow.deviceCode, flow.pkceVerifier)
  return qwen
}

describe('QwenProvider', () => {
  it("runs the README quick start and streaming examples against the mock (hosts and paths changed only)", async () => {
    // README: a QwenProvider with OAuth, a scheduler, scheduleRequest; then executeStreamChat.
    const qwenProvider = new QwenProvider({
      name: 'Qwen',
      endpoint: mock.qwen.portalBase,
      supportedModels: ['qwen-turbo', 'qwen-plus', 'qwen-max'],
      oauth: { clientId: 'f0304373b74a44d2b584a3fb70ca9e56', scopes: ['openid', 'profile', 'email', 'model.completion'], baseUrl: mock.qwen.baseUrl },
      tokenStoragePath: credsPath(),
    })
    await qwenProvider.authenticate({ autoOpen: false })
    const scheduler = new EnhancedPipelineScheduler({ maxConcurrentRequests: 10, requestTimeout: 30000, loadBalancingStrategy: 'weighted', circuitBreaker: { enabled: true, failureThreshold: 5, recoveryTimeout: 60000 } })
    await scheduler.registerProvider(qwenProvider)
    const response = await scheduler.scheduleRequest('request-1', { model: 'qwen-turbo', messages: [{ role: 'user', content: 'Hello, how are you?' }] }, 'high', 30000)
    expect(response.choices[0].message.content).toBe('Hello from the mock upstream! You said: Hello, how are you?')
    expect(mock.requests().at(-1)!.body.model).toBe('qwen-turbo') // the request's model is honoured

    const chunks = await collect(qwenProvider.executeStreamChat({ model: 'qwen-turbo', messages: [{ role: 'user', content: 'Tell me a story' }], stream: true }))
    expect(textOf(chunks)).toBe('Hello from the mock upstream! You said: Tell me a story')
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.choices.every((ch) => 'delta' in ch))).toBe(true)
    const sent = mock.requests().at(-1)!
    expect(sent.headers['x-dashscope-authtype']).toBe('qwen-oauth')
    expect(sent.headers['user-agent']).toMatch(/^QwenCode\//)
    expect(sent.body.stream_options).toEqual({ include_usage: true })
    await scheduler.destroy()
  })

  it('completes the device flow after N polls, honouring slow_down, and stores qwen-code credentials (0600)', async () => {
    mock.qwen.script(['pending', 'slow_down', 'approve'])
    const qwen = new QwenProvider({ name: 'Qwen', oauth: { baseUrl: mock.qwen.baseUrl }, tokenStoragePath: credsPath() })
    const events: DeviceFlowEvent[] = []
    qwen.on('deviceFlow', (e) => events.push(e))
    expect(qwen.getTokenStatus()).toMatchObject({ authMode: 'oauth', hasAccessToken: false, isValid: false })
    const flow = await qwen.initiateDeviceFlow(false)
    expect(flow.verificationUriComplete).toContain(`user_code=${flow.userCode}`)
    expect(flow.pkceVerifier).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(events).toEqual([expect.objectContaining({ userCode: flow.userCode, browserOpened: false })])
    const tokens = await qwen.waitForDeviceAuthorization(flow.deviceCode, flow.pkceVerifier)
    expect(tokens.accessToken).toBe(mock.qwen.stats().accessToken)
    const times = mock.qwen.stats().pollTimes
    expect(times).toHaveLength(3)
    // slow_down lengthens the interval: the third poll waited longer than the second.
    expect(times[2] - times[1]).toBeGreaterThan(times[1] - times[0])
    const stored = JSON.parse(fs.readFileSync(credsPath(), 'utf8'))
    expect(Object.keys(stored)).toEqual(expect.arrayContaining(['access_token', 'refresh_token', 'token_type', 'resource_url', 'expiry_date']))
    expect(fs.statSync(credsPath()).mode & 0o777).toBe(0o600)
    expect(qwen.getTokenStatus()).toMatchObject({ hasAccessToken: true, hasRefreshToken: true, isValid: true })
  })

  it('stops the device flow on denial with an AuthenticationError', async () => {
    mock.qwen.script(['denied'])
    const qwen = new QwenProvider({ name: 'Qwen', oauth: { baseUrl: mock.qwen.baseUrl }, tokenStoragePath: credsPath() })
    const flow = await qwen.initiateDeviceFlow(false)
    await expect(qwen.waitForDeviceAuthorization(flow.deviceCode, flow.pkceVerifier)).rejects.toBeInstanceOf(AuthenticationError)
    expect(fs.existsSync(credsPath())).toBe(false)
  })

  it('refreshes an expired token transparently mid-session, once for many concurrent requests', async () => {
    const qwen = await signedIn()
    const refreshed: TokenRefreshedEvent[] = []
    qwen.on('tokenRefreshed', (e) => refreshed.push(e))
    const before = mock.qwen.stats().accessToken
    mock.qwen.setRefreshDelay(100)
    mock.qwen.expireAccessTokens() // the upstream now answers 401 to the old token
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => qwen.chat(ask(`q${i}`))))
    expect(answers.map((a) => a.choices[0].message.content)).toEqual(Array.from({ length: 20 }, (_, i) => `Hello from the mock upstream! You said: q${i}`))
    expect(mock.qwen.stats().refreshes).toBe(1)
    expect(mock.qwen.stats().accessToken).not.toBe(before)
    expect(refreshed).toHaveLength(1)
    expect(JSON.parse(fs.readFileSync(credsPath(), 'utf8')).access_token).toBe(mock.qwen.stats().accessToken)
  })

  it('refreshes ahead of expiry, and asks for a new sign-in when the refresh token is rejected', async () => {
    mock.qwen.setTokenLifetime(20) // inside the 30 s refresh margin: every use refreshes first
    const qwen = await signedIn()
    await qwen.chat(ask('one'))
    expect(mock.qwen.stats().refreshes).toBe(1)
    const required: AuthenticationRequiredEvent[] = []
    qwen.on('authenticationRequired', (e) => required.push(e))
    mock.qwen.failRefresh('invalid_grant')
    const err = await qwen.chat(ask('two')).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AuthenticationError)
    expect(required).toEqual([expect.objectContaining({ reason: 'refreshRejected' })])
    expect(fs.existsSync(credsPath())).toBe(false)
    expect(qwen.getTokenStatus()).toMatchObject({ hasAccessToken: false, isValid: false })
    expect((await qwen.healthCheck()).status).toBe('unhealthy')
  })

  it('uses DashScope with an API key on compatible-mode, with the real client headers', async () => {
    const qwen = new QwenProvider({ name: 'dashscope', apiKey: 'sk-dashscope-test-1234', endpoint: mock.dashscopeBase })
    expect(qwen.authMode).toBe('apikey')
    const r = await qwen.chat({ model: 'qwen-plus', messages: [{ role: 'user', content: 'via dashscope' }] })
    expect(r.choices[0].message.content).toContain('via dashscope')
    const sent = mock.requests().at(-1)!
    expect(sent.path).toBe('/compatible-mode/v1/chat/completions')
    expect(sent.headers.authorization).toBe('Bearer sk-dashscope-test-1234')
    expect(sent.headers['x-dashscope-authtype']).toBe('openai')
    expect(await qwen.listModels()).toEqual(expect.arrayContaining(['qwen3-coder-plus']))
  })

  it('streams tool calls by index (continuations with id ""), reasoning_content and the usage chunk', async () => {
    const qwen = new QwenProvider({ name: 'dashscope', apiKey: 'sk-dashscope-test-1234', endpoint: mock.dashscopeBase, headers: { 'x-mock-scenario': 'tools,reasoning' } })
    const chunks = await collect(qwen.streamChat({ model: 'qwen-plus', messages: [{ role: 'user', content: 'weather?' }], tools: [{ type: 'function', function: { name: 'get_weather', parameters: {} } }] }))
    const reasoning = chunks.map((c) => c.choices[0]?.delta?.reasoning_content ?? '').join('')
    expect(reasoning).toBe('Let me think about that.')
    const calls = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? [])
    expect(calls[0]).toMatchObject({ index: 0, function: { name: 'get_weather' } })
    expect(calls[0].id).toMatch(/^call_/)
    expect(calls.slice(1).every((t) => t.id === '' && t.index === 0)).toBe(true)
    expect(calls.map((t) => t.function?.arguments ?? '').join('')).toBe('{"location": "Hangzhou"}')
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'tool_calls')).toBe(true)
    expect(chunks.at(-1)!.usage).toBeDefined()
  })

  it('maps quota and throttling answers to RateLimitError and bad parameters to ProviderError', async () => {
    const qwen = new QwenProvider({ name: 'dashscope', apiKey: 'sk-dashscope-test-1234', endpoint: mock.dashscopeBase })
    const withScenario = (s: string) => new QwenProvider({ name: 'dashscope', apiKey: 'sk-dashscope-test-1234', endpoint: mock.dashscopeBase, headers: { 'x-mock-scenario': s } })
    for (const s of ['quota', 'quota-403', 'throttling']) {
      const e = await withScenario(s).chat(ask('x')).catch((x: unknown) => x)
      expect(e).toBeInstanceOf(RateLimitError)
    }
    const limited = (await withScenario('rate-limit').chat(ask('x')).catch((x: unknown) => x)) as RateLimitError
    expect(limited).toBeInstanceOf(RateLimitError)
    expect(limited.retryAfterMs).toBeGreaterThan(0)
    const badHistory = {
      model: 'qwen-plus',
      messages: [
        { role: 'assistant' as const, content: '', tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'f', arguments: '{not json' } }] },
        { role: 'tool' as const, content: 'r', tool_call_id: 'call_1' },
      ],
    }
    const bad = (await qwen.chat(badHistory).catch((x: unknown) => x)) as ProviderError
    expect(bad).toBeInstanceOf(ProviderError)
    expect(bad.status).toBe(400)
    expect(bad.retryable).toBe(false)
  })

  it('never lets tokens or keys reach errors or tracker entries', async () => {
    const qwen = await signedIn()
    const tokens = [mock.qwen.stats().accessToken!, mock.qwen.stats().refreshToken!]
    const tracker = new PipelineTracker({ enableIOTracking: true })
    const scheduler = new EnhancedPipelineScheduler({ retry: { maxRetries: 0 } }, tracker)
    await scheduler.registerProvider(qwen)
    await scheduler.scheduleRequest('ok-1', ask('fine'))
    mock.qwen.failRefresh('invalid_grant')
    mock.qwen.expireAccessTokens()
    const err = (await scheduler.scheduleRequest('bad-1', ask('fails')).catch((e: unknown) => e)) as Error
    expect(err).toBeInstanceOf(AuthenticationError)
    const seen = [JSON.stringify(tracker.getIOEntries()), JSON.stringify(tracker.getRequestContext('bad-1')!.toObject()), err.message, JSON.stringify(err), String(err.stack)].join('\n')
    for (const t of tokens) expect(seen).not.toContain(t)
    await scheduler.destroy()
  })
})
