/** `rcc-pipeline/mock`: the mock upstream embedded in the addon (loopback only). */
export interface MockUpstreamOptions {
  /** 0 or absent: a free port. */
  port?: number
  /** Accepted bearer keys; absent or empty accepts any. */
  apiKeys?: string[]
  /** Models listed by `GET /v1/models` and `GET /compatible-mode/v1/models`. */
  models?: string[]
}

export interface MockStats {
  requests: number
  chatRequests: number
  streamRequests: number
  streamsCompleted: number
  /** Streams whose client went away before the end. */
  streamsCancelled: number
  connectionsOpened: number
  connectionsClosed: number
  openConnections: number
}

export interface MockRecordedRequest {
  method: string
  path: string
  httpVersion: string
  headers: Record<string, string>
  /** The JSON body, or the raw text when it was not JSON (form bodies stay raw text). */
  body: any
}

/** A token pair as the OAuth token endpoint returns it (snake_case, as on the wire). */
export interface MockTokenPair {
  access_token: string
  refresh_token: string
  expires_in: number
  /** Qwen only. */
  resource_url?: string
}

/** One scripted answer to a Qwen device-grant poll. */
export type QwenPollStep =
  | 'pending' // 400 authorization_pending
  | 'authorization_pending'
  | 'pending_200' // 200 {"status":"pending"}
  | 'slow_down' // 429 slow_down (qwen-code)
  | 'slow_down_400' // 400 slow_down (RFC 8628 / CPA)
  | 'expired' // 400 expired_token
  | 'expired_token'
  | 'denied' // 400 access_denied
  | 'access_denied'
  | 'approve' // 200 with tokens
  | 'success'
  | 'server_error' // 500, HTML body

/** How a scripted refresh fails. */
export type MockRefreshFailure =
  | 'invalid_grant' // 400 {"error":"invalid_grant",…}
  | 'invalid_client' // 401
  | 'server_error' // 500, HTML body
  | 'invalid_json' // 200, body not JSON
  | 'error_200' // 200 with an `error` body

export interface QwenMockStats {
  /** Device codes handed out. */
  deviceCodes: number
  /** Device-grant polls received (valid or not). */
  polls: number
  /** When each poll arrived, Unix milliseconds. */
  pollTimes: number[]
  /** Refresh-grant requests received (successful or not). */
  refreshes: number
  /** Access tokens issued (device grant, refresh, issueTokens). */
  issuedTokens: number
  /** Chat requests answered 401 because their issued token had expired or was rotated. */
  rejectedTokens: number
  /** The latest access / refresh token issued. */
  accessToken: string | null
  refreshToken: string | null
}

/** The Qwen OAuth mock (`/api/v1/oauth2/device/code`, `/api/v1/oauth2/token`) and Qwen chat mock. */
export interface QwenMock {
  /** The OAuth base: use as `oauth.baseUrl` (= `mock.url`). */
  readonly baseUrl: string
  readonly deviceCodeUrl: string
  readonly tokenUrl: string
  /** portal.qwen.ai stand-in: `resource_url` + `/v1`. */
  readonly portalBase: string
  /** DashScope API-key base: `…/compatible-mode/v1`. */
  readonly dashscopeBase: string
  /** Replaces the poll script; each device-grant poll takes the next step, then the approval rules apply. */
  script(steps: QwenPollStep[]): void
  /** Without a script: `authorization_pending` for `polls` polls, then success (default 0). null: only approve()/the verification page approves. */
  approveAfter(polls: number | null): void
  /** The user approves one device code (by user code) or all outstanding ones; returns how many. Fetching `verification_uri_complete` approves too. */
  approve(userCode?: string): number
  /** The user denies: later polls get 400 `access_denied`. Returns how many. */
  deny(userCode?: string): number
  /** Lifetime (s, fractions allowed) of tokens issued from now on; the chat endpoints enforce it. Default 21600. */
  setTokenLifetime(seconds: number): void
  /** `expires_in` of new device codes; later polls get `expired_token`. Default 1800. */
  setDeviceCodeLifetime(seconds: number): void
  /** `interval` in the device-code answer; null (default) leaves it out. */
  setPollInterval(seconds: number | null): void
  /** `resource_url` in token answers, e.g. without a scheme; null (default) = `http://127.0.0.1:<port>`. */
  setResourceUrl(url: string | null): void
  /** The required `client_id` (default qwen-code's); null accepts any. */
  setClientId(clientId: string | null): void
  /** Every issued access token expires now: chat answers 401 `invalid_api_key` until a refresh. */
  expireAccessTokens(): void
  /** While set, every refresh fails; null clears. */
  failRefresh(error: MockRefreshFailure | null): void
  /** Delay before a refresh is answered (it is counted on arrival), so concurrent refreshers overlap. */
  setRefreshDelay(ms: number): void
  /** How long a replaced access token keeps working (default 0: it stops at once). */
  setOldTokenGrace(ms: number): void
  /** Issues a token pair as a successful device flow would. */
  issueTokens(): MockTokenPair
  stats(): QwenMockStats
  /** Back to the defaults (tokens, codes, script, switches, counters). */
  reset(): void
}

/** One scripted user-info answer: `ok`, `failure` (success:false), `empty_key` (apiKey ""), or an HTTP status such as `'500'`. */
export type IflowUserInfoStep = 'ok' | 'failure' | 'empty_key' | `${number}` | number

export interface IflowMockStats {
  /** The current API key. */
  apiKey: string
  /** Authorize-page redirects (approved or denied). */
  authorizations: number
  /** Token-endpoint requests, any grant, any outcome. */
  tokenCalls: number
  /** Successful authorization-code exchanges. */
  codeExchanges: number
  /** Refresh-grant requests (successful or not). */
  refreshes: number
  userInfoCalls: number
  chatRequests: number
  /** Chat requests answered 406 for a missing or wrong signature. */
  signatureFailures: number
  /** Chat requests answered with a 200 `{"status":…,"msg":…,"body":null}` envelope. */
  businessErrors: number
  accessToken: string | null
  refreshToken: string | null
}

/** The iFlow mocks under `/iflow`. */
export interface IflowMock {
  /** `oauth.authorizeUrl` (GET, 302 to the callback with `code` and `state`). */
  readonly authorizeUrl: string
  /** `oauth.tokenUrl` (Basic auth and form client credentials). */
  readonly tokenUrl: string
  /** `oauth.userInfoUrl` (`?accessToken=`). */
  readonly userInfoUrl: string
  /** Cookie-mode API key endpoint (GET reads, POST {name} rotates). */
  readonly apiKeyUrl: string
  /** The chat base (`endpoint`): `…/iflow/v1`. */
  readonly baseUrl: string
  /** The API key user info hands out and chat requires (default `sk-0123456789abcdef0123456789abcdef`). */
  setApiKey(apiKey: string): void
  getApiKey(): string
  /** Require `User-Agent: iFlow-Cli`, `session-id`, `x-iflow-timestamp` and a good `x-iflow-signature`, else 406 (default true). */
  setStrictSignature(strict: boolean): void
  /** The authorize page redirects with `error=access_denied` while on (default: on when called without an argument). */
  denyAuthorization(deny?: boolean): void
  /** The required client id (default `10009311001`); null accepts any. */
  setClientId(clientId: string | null): void
  /** The required client secret; null (default) accepts any, as long as Basic and form agree. */
  setClientSecret(clientSecret: string | null): void
  /** Lifetime (s) of access tokens issued from now on (default 172800). */
  setTokenLifetime(seconds: number): void
  /** While set, every refresh fails; null clears. */
  failRefresh(error: MockRefreshFailure | null): void
  /** Every issued access token expires now: user info answers `success:false`. */
  expireAccessTokens(): void
  /** What user info returns besides the key (null fields are sent as null). */
  setUserInfo(info: { email?: string | null; phone?: string | null }): void
  /** Replaces the user-info script, one step per call, then normal answers. */
  scriptUserInfo(steps: IflowUserInfoStep[]): void
  /** Issues a token pair as a successful code exchange would. */
  issueTokens(): MockTokenPair
  stats(): IflowMockStats
  /** Back to the defaults (API key, switches, tokens, codes, scripts, counters). */
  reset(): void
}

export class MockUpstream {
  static start(options?: MockUpstreamOptions): Promise<MockUpstream>
  readonly port: number
  /** `http://127.0.0.1:<port>`; also the Qwen OAuth base. */
  readonly url: string
  /** Use as a provider's `endpoint`. */
  readonly openaiBase: string
  /** DashScope API-key base: `…/compatible-mode/v1`. */
  readonly dashscopeBase: string
  /** iFlow chat base: `…/iflow/v1`. */
  readonly iflowBase: string
  /** A loopback port where connecting never completes. */
  readonly blackholePort: number
  /** Scripts the Qwen OAuth and chat mocks. */
  readonly qwen: QwenMock
  /** Scripts the iFlow OAuth, user-info and chat mocks. */
  readonly iflow: IflowMock
  stats(): MockStats
  requests(): MockRecordedRequest[]
  /** Resets counters, recorded requests, and every Qwen / iFlow script, switch and token. */
  reset(): void
  /** Replaces the accepted bearer keys (empty accepts any): a dropped key starts getting 401. */
  setApiKeys(keys: string[]): void
  close(): Promise<void>
}

export function startMockUpstream(options?: MockUpstreamOptions): Promise<MockUpstream>
