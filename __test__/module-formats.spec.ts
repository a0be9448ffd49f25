import { execFile } from 'node:child_process'
import path from 'node:path'

const root = path.resolve(__dirname, '..')

/** Runs a fixture in a fresh Node process; it must exit by itself, with code 0, in time. */
function runNode(fixture: string): Promise<{ out: Record<string, unknown>; ms: number }> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(__dirname, 'fixtures', fixture)], { cwd: root, timeout: 15000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${fixture} did not exit cleanly (${err.message}): ${stderr}`))
      resolve({ out: JSON.parse(stdout.trim().split('\n').pop()!), ms: Date.now() - started })
    })
  })
}

describe('the package in plain Node', () => {
  it('works with require(), keeps error classes, and lets the process exit by itself', async () => {
    const { out } = await runNode('usage.cjs')
    expect(out).toEqual({ text: 'Hello from the mock upstream! You said: cjs', rateLimit: true, aborted: 'CANCELLED', streamError: true })
  })

  it('runs 2,000 queued requests by priority, stays alive for a pending one, then exits by itself', async () => {
    const { out, ms } = await runNode('queued.cjs')
    expect(out).toEqual({ ok: 2000, lowAmongFirstThousand: expect.any(Number), queueLength: 0, last: 'Hello from the mock upstream! You said: last' })
    // The 4 slots are first taken in submission order (2 low); after that every high request runs
    // before any low one, so only those and the last window of 4 can finish among the first 1,000.
    expect(out.lowAmongFirstThousand).toBeLessThanOrEqual(6)
    expect(ms).toBeGreaterThanOrEqual(300)
  })

  it('works with ESM import (named and default exports are the same objects)', async () => {
    const { out } = await runNode('usage.mjs')
    expect(out).toEqual({ version: require('../package.json').version, sameClass: true, auth: true, text: 'Hello from the mock upstream! You said: esm' })
  })
})
