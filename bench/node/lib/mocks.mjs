// The shared upstream: N `rcc-mock` binaries, each its own OS process on 127.0.0.1.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { reasonOf, runBounded } from './setup.mjs'

/**
 * `target/<profile>/rcc-mock`, built first with `cargo build [--release] -p rcc-mock` (bounded by
 * `timeoutSec`) unless `build` is false and the binary is already there. Resolves the binary's
 * path; rejects with the reason when the build fails.
 */
export async function buildMock(root, { profile = 'release', build = true, timeoutSec = 1200 } = {}) {
  const bin = join(root, 'target', profile, 'rcc-mock')
  if (!build && existsSync(bin)) return bin
  const args = ['build', ...(profile === 'release' ? ['--release'] : []), '-p', 'rcc-mock']
  const r = await runBounded('cargo', args, { cwd: root, timeoutSec })
  r.limit = timeoutSec
  if (!r.ok || !existsSync(bin)) throw new Error(reasonOf(r, `cargo ${args.join(' ')}`))
  return bin
}

/** Starts one mock and resolves with the JSON line it prints: `{port, url, openaiBase, …}`. */
function startOne(bin, timeoutMs = 10_000) {
  // --watch-stdin: the mock exits when our end of its stdin closes, even if we are killed.
  const child = spawn(bin, ['--port', '0', '--watch-stdin'], { stdio: ['pipe', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`rcc-mock printed no address within ${timeoutMs} ms`)), timeoutMs)
    const lines = createInterface({ input: child.stdout })
    const fail = (err) => {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(err)
    }
    child.once('error', fail)
    child.once('exit', (code) => fail(new Error(`rcc-mock exited early (code ${code})`)))
    lines.once('line', (line) => {
      clearTimeout(timer)
      child.removeAllListeners('exit')
      lines.close()
      try {
        resolve({ child, ...JSON.parse(line) })
      } catch (err) {
        fail(err)
      }
    })
  })
}

/** Starts `count` mocks; `stop()` ends them (SIGTERM, then SIGKILL after 2 s). */
export async function startMocks(bin, count) {
  const mocks = await Promise.all(Array.from({ length: count }, () => startOne(bin)))
  return {
    urls: mocks.map((m) => m.openaiBase),
    pids: mocks.map((m) => m.child.pid),
    stop: () =>
      Promise.all(
        mocks.map(
          ({ child }) =>
            new Promise((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve()
              const kill = setTimeout(() => child.kill('SIGKILL'), 2000)
              child.once('exit', () => (clearTimeout(kill), resolve()))
              child.kill('SIGTERM')
            }),
        ),
      ),
  }
}

/** The mock's own counters (`GET /__mock/stats`): what the upstream actually served. */
export async function mockStats(openaiBase) {
  const res = await fetch(openaiBase.replace(/\/v1$/, '/__mock/stats'), { signal: AbortSignal.timeout(10_000) })
  return res.json()
}
