/** `rcc-pipeline/mock`: the mock upstream embedded in the addon (loopback only). */
export interface MockUpstreamOptions {
  /** 0 or absent: a free port. */
  port?: number
  /** Accepted bearer keys; absent or empty accepts any. */
  apiKeys?: string[]
  /** Models listed by `GET /v1/models`. */
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
  body: any
}

export class MockUpstream {
  static start(options?: MockUpstreamOptions): Promise<MockUpstream>
  readonly port: number
  readonly url: string
  /** Use as a provider's `endpoint`. */
  readonly openaiBase: string
  /** A loopback port where connecting never completes. */
  readonly blackholePort: number
  stats(): MockStats
  requests(): MockRecordedRequest[]
  reset(): void
  /** Replaces the accepted bearer keys (empty accepts any): a dropped key starts getting 401. */
  setApiKeys(keys: string[]): void
  close(): Promise<void>
}

export function startMockUpstream(options?: MockUpstreamOptions): Promise<MockUpstream>
