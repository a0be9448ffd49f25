'use strict'
// `rcc-pipeline/mock`: the mock upstream (crates/mock) embedded in the addon. For tests, the
// demo and local experiments; it listens on 127.0.0.1 only. Besides the OpenAI-compatible
// surface it serves the Qwen OAuth device flow and chat (DashScope / portal.qwen.ai) and the
// iFlow OAuth, user-info and chat APIs; `mock.qwen` and `mock.iflow` script them.

const native = require('./native.js')

/** Runs one control action (`qwen/…` or `iflow/…`) and returns its parsed JSON answer. */
function control(handle, action, body) {
  return JSON.parse(handle.control(action, JSON.stringify(body || {})))
}

/** The Qwen OAuth mock (`/api/v1/oauth2/...`) and Qwen chat mock (`/v1`, `/compatible-mode/v1`). */
class QwenMock {
  constructor(handle, url) {
    Object.defineProperty(this, 'handle', { value: handle, enumerable: false })
    /** Use as `oauth.baseUrl`. */
    this.baseUrl = url
    this.deviceCodeUrl = `${url}/api/v1/oauth2/device/code`
    this.tokenUrl = `${url}/api/v1/oauth2/token`
    /** The portal (OAuth mode) chat base: `resource_url` + `/v1`. */
    this.portalBase = `${url}/v1`
    /** The DashScope API-key base. */
    this.dashscopeBase = `${url}/compatible-mode/v1`
  }

  /** Replaces the poll script: 'pending' | 'pending_200' | 'slow_down' | 'slow_down_400' | 'expired' | 'denied' | 'approve' | 'server_error'. */
  script(steps) {
    control(this.handle, 'qwen/script', { steps })
  }

  /** Without a script, answer `authorization_pending` to `polls` polls, then succeed; null: only explicit approval. */
  approveAfter(polls) {
    control(this.handle, 'qwen/approve-after', { polls: polls ?? null })
  }

  /** The user approves one device code (by user code) or all outstanding ones; returns how many. */
  approve(userCode) {
    return control(this.handle, 'qwen/approve', { userCode: userCode ?? null }).approved
  }

  /** The user denies; later polls get `access_denied`. Returns how many. */
  deny(userCode) {
    return control(this.handle, 'qwen/deny', { userCode: userCode ?? null }).denied
  }

  setTokenLifetime(seconds) {
    control(this.handle, 'qwen/token-lifetime', { seconds })
  }

  setDeviceCodeLifetime(seconds) {
    control(this.handle, 'qwen/device-code-lifetime', { seconds })
  }

  /** `interval` (seconds) in the device-code answer; null leaves it out (the default). */
  setPollInterval(seconds) {
    control(this.handle, 'qwen/poll-interval', { seconds: seconds ?? null })
  }

  /** `resource_url` in token answers; null: `http://127.0.0.1:<port>` (the default). */
  setResourceUrl(url) {
    control(this.handle, 'qwen/resource-url', { url: url ?? null })
  }

  /** The required `client_id`; null accepts any. */
  setClientId(clientId) {
    control(this.handle, 'qwen/client-id', { clientId: clientId ?? null })
  }

  /** Every issued access token expires now (chat answers 401 until a refresh). */
  expireAccessTokens() {
    control(this.handle, 'qwen/expire-access-tokens')
  }

  /** While set, refreshes fail: 'invalid_grant' | 'invalid_client' | 'server_error' | 'invalid_json' | 'error_200'; null clears. */
  failRefresh(error) {
    control(this.handle, 'qwen/fail-refresh', { error: error ?? null })
  }

  setRefreshDelay(ms) {
    control(this.handle, 'qwen/refresh-delay', { ms })
  }

  /** How long a replaced access token keeps working (default 0). */
  setOldTokenGrace(ms) {
    control(this.handle, 'qwen/old-token-grace', { ms })
  }

  /** Issues a token pair without running the device flow. */
  issueTokens() {
    return control(this.handle, 'qwen/issue-tokens')
  }

  stats() {
    return control(this.handle, 'qwen/stats')
  }

  reset() {
    control(this.handle, 'qwen/reset')
  }
}

/** The iFlow mocks under `/iflow`: OAuth, user info, cookie API key and the signed chat API. */
class IflowMock {
  constructor(handle, url) {
    Object.defineProperty(this, 'handle', { value: handle, enumerable: false })
    this.authorizeUrl = `${url}/iflow/oauth`
    this.tokenUrl = `${url}/iflow/oauth/token`
    this.userInfoUrl = `${url}/iflow/api/oauth/getUserInfo`
    this.apiKeyUrl = `${url}/iflow/api/openapi/apikey`
    /** The chat base (`endpoint`). */
    this.baseUrl = `${url}/iflow/v1`
  }

  setApiKey(apiKey) {
    control(this.handle, 'iflow/api-key', { apiKey })
  }

  getApiKey() {
    return this.stats().apiKey
  }

  /** Require `User-Agent: iFlow-Cli`, `session-id`, `x-iflow-timestamp` and a good `x-iflow-signature` (default true). */
  setStrictSignature(strict) {
    control(this.handle, 'iflow/strict-signature', { strict: !!strict })
  }

  /** The authorize page redirects with `error=access_denied` while on. */
  denyAuthorization(deny = true) {
    control(this.handle, 'iflow/deny-authorization', { deny: !!deny })
  }

  setClientId(clientId) {
    control(this.handle, 'iflow/client-id', { clientId: clientId ?? null })
  }

  /** The required client secret; null (the default) accepts any. */
  setClientSecret(clientSecret) {
    control(this.handle, 'iflow/client-secret', { clientSecret: clientSecret ?? null })
  }

  setTokenLifetime(seconds) {
    control(this.handle, 'iflow/token-lifetime', { seconds })
  }

  failRefresh(error) {
    control(this.handle, 'iflow/fail-refresh', { error: error ?? null })
  }

  expireAccessTokens() {
    control(this.handle, 'iflow/expire-access-tokens')
  }

  setUserInfo(info = {}) {
    control(this.handle, 'iflow/user-info', { email: info.email ?? null, phone: info.phone ?? null })
  }

  /** One step per user-info call: 'ok' | 'failure' | 'empty_key' | an HTTP status such as '500'. */
  scriptUserInfo(steps) {
    control(this.handle, 'iflow/script-user-info', { steps: steps.map(String) })
  }

  issueTokens() {
    return control(this.handle, 'iflow/issue-tokens')
  }

  stats() {
    return control(this.handle, 'iflow/stats')
  }

  reset() {
    control(this.handle, 'iflow/reset')
  }
}

class MockUpstream {
  /** Starts a mock upstream on a free loopback port (or `options.port`). */
  static async start(options = {}) {
    return new MockUpstream(await native.startMockUpstream(JSON.stringify(options)))
  }

  constructor(handle) {
    Object.defineProperty(this, 'handle', { value: handle, enumerable: false })
    this.port = handle.port
    this.url = `http://127.0.0.1:${handle.port}`
    /** The OpenAI-compatible base URL to use as a provider's `endpoint`. */
    this.openaiBase = `${this.url}/v1`
    /** The DashScope API-key base (`…/compatible-mode/v1`). */
    this.dashscopeBase = `${this.url}/compatible-mode/v1`
    /** The iFlow chat base (`…/iflow/v1`). */
    this.iflowBase = `${this.url}/iflow/v1`
    /** A loopback port where connecting never completes (for connect timeouts). */
    this.blackholePort = handle.blackholePort
    this.qwen = new QwenMock(handle, this.url)
    this.iflow = new IflowMock(handle, this.url)
  }

  stats() {
    return JSON.parse(this.handle.stats())
  }

  requests() {
    return JSON.parse(this.handle.requests())
  }

  /** Resets counters, recorded requests, and every Qwen / iFlow script, switch and token. */
  reset() {
    this.handle.reset()
  }

  /** Replaces the accepted bearer keys (empty accepts any): a dropped key starts getting 401. */
  setApiKeys(keys) {
    this.handle.setApiKeys(keys)
  }

  close() {
    return this.handle.close()
  }
}

module.exports = { MockUpstream, startMockUpstream: MockUpstream.start }
