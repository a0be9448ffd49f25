import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { AuthenticationError, IFlowProvider, RateLimitError, StreamError, type AuthorizationUrlEvent } from 'rcc-pipeline'
import { MockUpstream } from 'rcc-pipeline/mock'
import { collect, textOf } from './helpers'

let mock: MockUpstream
let dir: string

beforeAll(async () => {
  mock = await MockUpstream.start()
})
beforeEach(() => {
  mock.reset()
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcc-iflow-'))
})
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }))
afterAll(async () => {
  await mock.close()
})

const ask = (content: string) => ({ model: 'qwen3-coder-plus', messages: [{ role: 'user' as const, content }] })
const credsPath = () => path.join(dir, 'oauth_creds.json')

function oauthProvider(): IFlowProvider {
  return new IFlowProvider({
    authMode: 'oauth',
    endpoint: mock.iflow.baseUrl,
    credentialsPath: credsPath(),
    oauth: { authorizeUrl: mock.iflow.authorizeUrl, tokenUrl: mock.iflow.tokenUrl, userInfoUrl: mock.iflow.userInfoUrl, callbackHost: '127.0.0.1' },
  })
}

/** Plays the user's browser: opens the authorize URL, which redirects to the loopback callback. */
function actAsBrowser(provider: IFlowProvider): Promise<number> {
  return new Promise((resolve) => {
    provider.once('authorizationUrl', (e: AuthorizationUrlEvent) => {
      fetch(e.authorizeUrl).then((r) => resolve(r.status), () => resolve(0))
    })
  })
}

describe('IFlowProvider', () => {
  it('signs every request with the API key (API-key mode) and streams data: lines without a space', async () => {
    const iflow = new IFlowProvider({ apiKey: mock.iflow.getApiKey(), endpoint: mock.iflow.baseUrl })
    expect(iflow.authMode).toBe('apikey')
    const r = await iflow.chat(ask('hello iflow'))
    expect(r.choices[0].message.content).toBe('Hello from the mock upstream! You said: hello iflow')
    const sent = mock.requests().at(-1)!
    expect(sent.headers['user-agent']).toBe('iFlow-Cli')
    expect(sent.headers['x-iflow-signature']).toMatch(/^[0-9a-f]{64}$/)
    expect(sent.headers['session-id']).toMatch(/^session-/)
    expect(mock.iflow.stats().signatureFailures).toBe(0)
    const chunks = await collect(iflow.streamChat({ ...ask('streamed'), stream: true }))
    expect(textOf(chunks)).toBe('Hello from the mock upstream! You said: streamed')
    expect(await iflow.listModels()).toEqual(['qwen3-coder-plus', 'qwen-turbo', 'qwen-max']) // /v1/models is a 404 on iFlow
  })

  it('reads the API key from the iFlow CLI credentials file', async () => {
    fs.writeFileSync(credsPath(), JSON.stringify({ access_token: 'at', refresh_token: 'rt', expiry_date: Date.now() + 3600e3, token_type: 'Bearer', scope: 'read', apiKey: mock.iflow.getApiKey() }))
    const iflow = new IFlowProvider({ authMode: 'apikey', endpoint: mock.iflow.baseUrl, credentialsPath: credsPath() })
    expect(iflow.getTokenStatus()).toMatchObject({ authMode: 'apikey', hasApiKey: true, isValid: true })
    expect((await iflow.chat(ask('from file'))).choices[0].message.content).toContain('from file')
  })

  it('signs in with OAuth through the loopback callback, keeps the CLI file fields, and uses the API key', async () => {
    fs.writeFileSync(credsPath(), JSON.stringify({ access_token: 'old', refresh_token: 'old-rt', expiry_date: 1, token_type: 'Bearer', scope: 'read', userName: 'kept-field' }))
    const iflow = oauthProvider()
    expect(iflow.getTokenStatus()).toMatchObject({ authMode: 'oauth', isValid: false })
    const browser = actAsBrowser(iflow)
    await iflow.authenticate({ autoOpen: false, timeoutMs: 10000 })
    expect(await browser).toBeLessThan(400)
    expect(iflow.getTokenStatus()).toMatchObject({ hasAccessToken: true, hasRefreshToken: true, isValid: true })
    const stored = JSON.parse(fs.readFileSync(credsPath(), 'utf8'))
    expect(stored.apiKey).toBe(mock.iflow.getApiKey())
    expect(stored.userName).toBe('kept-field')
    expect(stored.access_token).toBe(mock.iflow.stats().accessToken)
    const r = await iflow.chat(ask('after sign-in'))
    expect(r.choices[0].message.content).toContain('after sign-in')
    expect(mock.requests().at(-1)!.headers.authorization).toBe(`Bearer ${mock.iflow.getApiKey()}`)
    const refreshed = await iflow.refreshAccessToken()
    expect(refreshed.accessToken).toBe(mock.iflow.stats().accessToken)
    expect(mock.iflow.stats().refreshes).toBe(1)
  })

  it('turns a denied sign-in into an AuthenticationError', async () => {
    mock.iflow.denyAuthorization(true)
    const iflow = oauthProvider()
    const browser = actAsBrowser(iflow)
    await expect(iflow.authenticate({ autoOpen: false, timeoutMs: 10000 })).rejects.toBeInstanceOf(AuthenticationError)
    await browser
  })

  it('maps HTTP-200 business envelopes and network_error finishes to typed errors', async () => {
    const key = mock.iflow.getApiKey()
    const scenario = (s: string) => new IFlowProvider({ apiKey: key, endpoint: mock.iflow.baseUrl, headers: { 'x-mock-scenario': s } })
    const wrongKey = await new IFlowProvider({ apiKey: 'not-the-key-0000', endpoint: mock.iflow.baseUrl }).chat(ask('x')).catch((e: unknown) => e)
    expect(wrongKey).toBeInstanceOf(AuthenticationError)
    expect((wrongKey as AuthenticationError).message).not.toContain('not-the-key-0000')
    const limited = await scenario('biz=449').chat(ask('x')).catch((e: unknown) => e)
    expect(limited).toBeInstanceOf(RateLimitError)
    const streamedEnvelope = await collect(scenario('biz=434').streamChat({ ...ask('x'), stream: true })).catch((e: unknown) => e)
    expect(streamedEnvelope).toBeInstanceOf(AuthenticationError)
    const broken = await collect(scenario('network-error=2').streamChat({ ...ask('one two three four'), stream: true })).catch((e: unknown) => e)
    expect(broken).toBeInstanceOf(StreamError)
    expect((broken as StreamError).partial).toBeDefined()
  })
})
