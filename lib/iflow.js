'use strict'
// IFlowProvider: iFlow's OpenAI-compatible API. Requests are signed with the API key (HMAC
// headers), business errors that arrive as HTTP 200 envelopes become typed errors — all in
// Rust (crates/core/src/provider/iflow.rs). The key is configured (`authMode: 'apikey'`),
// taken from the iFlow CLI's credentials file, or obtained by signing in (`authMode: 'oauth'`:
// authorization code through a loopback callback, then getUserInfo), kept in that file.

const native = require('../native.js')
const { OpenAICompatibleProvider, pick, NATIVE_CONFIG_KEYS } = require('./providers')
const { callNative, ProviderError } = require('./errors')
const { runNativeCall } = require('./native-calls')
const { announceSignIn } = require('./sign-in')
const { eventForwarder } = require('./qwen')

const IFLOW_CONFIG_KEYS = [...NATIVE_CONFIG_KEYS, 'authMode', 'credentialsPath', 'oauth']
const AUTH = Symbol('rcc.iflowAuth')
const DEFAULT_SIGN_IN_TIMEOUT = 5 * 60 * 1000
/** The original's default list (iFlow has no model list endpoint). */
const DEFAULT_MODELS = ['qwen3-coder-plus', 'qwen-turbo', 'qwen-max']

class IFlowProvider extends OpenAICompatibleProvider {
  constructor(config = {}) {
    super({ name: 'iflow', defaultModel: 'qwen3-coder-plus', supportedModels: DEFAULT_MODELS, ...config })
  }

  _createNative(config) {
    const auth = new native.NativeIFlowProvider(JSON.stringify(pick(config, IFLOW_CONFIG_KEYS)), eventForwarder(this))
    Object.defineProperty(this, AUTH, { value: auth, enumerable: false })
    return auth.transport()
  }

  /** `'apikey'` or `'oauth'`. */
  get authMode() {
    return this[AUTH].authMode()
  }

  /** `{authMode, hasAccessToken, hasRefreshToken, isValid, timeUntilExpiry, credentialsPath, ...}`. */
  getTokenStatus() {
    return JSON.parse(callNative(() => this[AUTH].tokenStatus()))
  }

  /**
   * OAuth mode: signs in unless the stored credentials are valid. Emits `authorizationUrl`
   * ({authorizeUrl, redirectUri}), opens the browser when `autoOpen` and a display exists,
   * then waits (up to `timeoutMs`, 5 min) for the browser to come back to the loopback callback.
   */
  async authenticate(options = {}) {
    if (this.authMode === 'apikey') return
    const status = this.getTokenStatus()
    if (status.isValid && !options.force) return
    const { authorizeUrl, redirectUri } = await runNativeCall(() => this[AUTH].startAuthorization(), options.signal)
    announceSignIn(this, 'authorizationUrl', { authorizeUrl, redirectUri }, { url: authorizeUrl, autoOpen: options.autoOpen !== false, line: `To sign in to iFlow, open ${authorizeUrl}` })
    const timeout = Math.max(1, Math.min(options.timeoutMs ?? DEFAULT_SIGN_IN_TIMEOUT, 2 ** 31 - 1))
    await runNativeCall(() => this[AUTH].waitForAuthorization(timeout), options.signal)
  }

  /** OAuth mode: refreshes the tokens now and fetches the API key again. */
  refreshAccessToken(options = {}) {
    return runNativeCall(() => this[AUTH].refreshAccessToken(), options.signal)
  }

  /** iFlow has no model list endpoint (it answers 404): the configured models then. */
  async listModels(options = {}) {
    try {
      return await super.listModels(options)
    } catch (e) {
      if (e instanceof ProviderError && e.status === 404) return [...this.supportedModels]
      throw e
    }
  }

  /** Upstream reachability plus the credential state. */
  async healthCheck() {
    const tokenStatus = this.getTokenStatus()
    if (!tokenStatus.isValid && !tokenStatus.hasRefreshToken) {
      return { status: 'unhealthy', provider: this.name, latencyMs: 0, error: 'no usable API key: configure apiKey or call authenticate()', tokenStatus, timestamp: new Date().toISOString() }
    }
    const probe = await super.healthCheck()
    // A reachable iFlow answers /models with 404: that is the API working, not degraded.
    return { ...probe, status: probe.status === 'degraded' ? 'healthy' : probe.status, tokenStatus }
  }

  getCapabilities() {
    return { streaming: true, tools: true, vision: false, jsonMode: true }
  }
}

module.exports = { IFlowProvider }
