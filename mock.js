'use strict'
// `rcc-pipeline/mock`: the mock upstream (crates/mock) embedded in the addon. For tests, the
// demo and local experiments; it listens on 127.0.0.1 only.

const native = require('./native.js')

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
    /** A loopback port where connecting never completes (for connect timeouts). */
    this.blackholePort = handle.blackholePort
  }

  stats() {
    return JSON.parse(this.handle.stats())
  }

  requests() {
    return JSON.parse(this.handle.requests())
  }

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
