'use strict'
// QwenProvider: DashScope compatible-mode with an API key, or portal.qwen.ai with qwen-code's
// OAuth device flow (RFC 8628 + PKCE). Requests, token refresh, the 401 → refresh → replay
// rule and the quota errors all run in Rust (crates/core/src/provider/qwen.rs); this class adds
// the sign-in calls and forwards the token events.

const native = require('../native.js')
const { OpenAICompatibleProvider, pick, NATIVE_CONFIG_KEYS } = require('./providers')
const { callNative } = require('./errors')
const { runNativeCall } = require('./native-calls')
const { announceSignIn } = require('./sign-in')

const QWEN_CONFIG_KEYS = [...NATIVE_CONFIG_KEYS, 'oauth', 'tokenStoragePath', 'refreshMarginMs']
const AUTH = Symbol('rcc.qwenAuth')

/** Token events from Rust, forwarded without keeping the provider alive. */
function eventForwarder(self) {
  const ref = new WeakRef(self)
  return (name, payload) => {
    const p = ref.deref()
    if (p) p.emit(name, JSON.parse(payload))
  }
}

class QwenProvider extends OpenAICompatibleProvider {
  constructor(config) {
    super({ defaultModel: 'qwen3-coder-plus', ...config })
  }

  _createNative(config) {
    const auth = new native.NativeQwenProvider(JSON.stringify(pick(config, QWEN_CONFIG_KEYS)), eventForwarder(this))
    Object.defineProperty(this, AUTH, { value: auth, enumerable: false })
    return auth.transport()
  }

  /** `'oauth'` or `'apikey'` (an `apiKey` in the config selects DashScope API-key mode). */
  get authMode() {
    return this[AUTH].authMode()
  }

  /**
   * Requests a device code. Emits `deviceFlow` ({userCode, verificationUri,
   * verificationUriComplete, expiresIn}); opens the browser when `autoOpen` and a display
   * exists; prints the URL and code to stderr when nobody listens.
   */
  async initiateDeviceFlow(autoOpen = true, options = {}) {
    const data = await runNativeCall(() => this[AUTH].startDeviceFlow(), options.signal)
    const url = data.verificationUriComplete || data.verificationUri
    announceSignIn(
      this,
      'deviceFlow',
      { userCode: data.userCode, verificationUri: data.verificationUri, verificationUriComplete: data.verificationUriComplete, expiresIn: data.expiresIn },
      { url, autoOpen, line: `To sign in to Qwen, open ${url} (code ${data.userCode}).` },
    )
    return data
  }

  /** Polls until the user approves; stores the tokens and resolves with them. */
  waitForDeviceAuthorization(deviceCode, pkceVerifier, options = {}) {
    return runNativeCall(() => this[AUTH].waitForDeviceAuthorization(String(deviceCode), String(pkceVerifier)), options.signal)
  }

  /** Refreshes the access token now; resolves with the new tokens. */
  refreshAccessToken(options = {}) {
    return runNativeCall(() => this[AUTH].refreshAccessToken(), options.signal)
  }

  /** `{authMode, hasAccessToken, hasRefreshToken, isValid, expiresAt, timeUntilExpiry, credentialsPath}`. */
  getTokenStatus() {
    return JSON.parse(callNative(() => this[AUTH].tokenStatus()))
  }

  /**
   * Makes sure requests can be authorized: nothing with an API key or a valid token; a refresh
   * when the token expired; otherwise the device flow (initiate, then wait for approval).
   */
  async authenticate(options = {}) {
    if (this.authMode === 'apikey') return
    const status = this.getTokenStatus()
    if (status.isValid) return
    if (status.hasRefreshToken) {
      try {
        await this.refreshAccessToken(options)
        return
      } catch (e) {
        if (!(e && e.code === 'AUTHENTICATION_ERROR')) throw e
      }
    }
    const flow = await this.initiateDeviceFlow(options.autoOpen !== false, options)
    await this.waitForDeviceAuthorization(flow.deviceCode, flow.pkceVerifier, options)
  }

  /** Forgets the stored tokens (memory and file). */
  clearTokens(options = {}) {
    return runNativeCall(() => this[AUTH].clearTokens(), options.signal)
  }

  /** Upstream reachability (`GET /models`) plus the token state. */
  async healthCheck() {
    const tokenStatus = this.getTokenStatus()
    if (this.authMode === 'oauth' && !tokenStatus.isValid && !tokenStatus.hasRefreshToken) {
      return { status: 'unhealthy', provider: this.name, latencyMs: 0, error: 'not signed in: call authenticate()', tokenStatus, timestamp: new Date().toISOString() }
    }
    return { ...(await super.healthCheck()), tokenStatus }
  }

  getCapabilities() {
    return { streaming: true, tools: true, vision: true, jsonMode: true, oauth: this.authMode === 'oauth' }
  }
}

module.exports = { QwenProvider, eventForwarder }
