// Bounded build / setup steps: the Rust floor (bench/rust loadgen) and the LiteLLM venv.
// Every step is a child process in its own process group, killed (the whole group: cargo and its
// rustc children, pip) when it outlives its time limit, so the runner never hangs on a build.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'

const active = new Set()

/** Kills every step still running (SIGINT / SIGTERM of the runner). */
export function killActive() {
  for (const child of active) {
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {}
  }
}

/**
 * Runs `cmd args` in `cwd`, at most `timeoutSec` seconds. Its output goes to our stderr (prefixed
 * lines filtered by `show`, all of it when `show` is absent); the last 4 KB are kept for the reason.
 * Resolves `{ok, code, seconds, timedOut, tail, stdout}` and never rejects.
 */
export function runBounded(cmd, args, { cwd, env = process.env, timeoutSec, show, quiet = false, captureStdout = false }) {
  const t0 = performance.now()
  if (!quiet) console.error(`$ ${[cmd, ...args].join(' ')}${cwd ? `   (in ${cwd})` : ''}   [limit ${timeoutSec} s]`)
  return new Promise((resolve) => {
    let tail = ''
    let stdout = ''
    let timedOut = false
    let child
    try {
      child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    } catch (err) {
      return resolve({ ok: false, code: -1, seconds: 0, timedOut: false, tail: String(err), stdout: '' })
    }
    active.add(child)
    let partial = ''
    const onData = (d, isStdout) => {
      const s = String(d)
      tail = (tail + s).slice(-4096)
      if (isStdout && captureStdout) stdout += s
      if (quiet) return
      if (!show) return void process.stderr.write(s)
      const lines = (partial + s).split('\n')
      partial = lines.pop()
      for (const l of lines) if (show(l)) process.stderr.write(`${l}\n`)
    }
    child.stdout.on('data', (d) => onData(d, true))
    child.stderr.on('data', (d) => onData(d, false))
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {}
    }, timeoutSec * 1000)
    const done = (code) => {
      if (!quiet && show && partial && show(partial)) process.stderr.write(`${partial}\n`)
      clearTimeout(timer)
      active.delete(child)
      const seconds = Number(((performance.now() - t0) / 1000).toFixed(1))
      resolve({ ok: code === 0 && !timedOut, code, seconds, timedOut, tail, stdout })
    }
    child.once('error', (err) => ((tail += String(err)), done(-1)))
    child.once('close', done)
  })
}

/** A one-line reason from a failed step: timeout, or the last meaningful lines of its output. */
export function reasonOf(r, what) {
  if (r.timedOut) return `${what} did not finish within its limit of ${r.limit ?? '?'} s (killed)`
  const lines = r.tail
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
  const errs = lines.filter((l) => /^error|error:|ERROR|not found|No such file|failed/i.test(l))
  const pick = (errs.length ? errs : lines).slice(-2).join(' | ')
  return `${what} exited ${r.code}${pick ? `: ${pick.slice(0, 300)}` : ''}`
}

export const LOADGEN = (root) => join(root, 'bench/rust/target/release/loadgen')
export const LITELLM_PY = (root) => join(root, 'bench/litellm/.venv/bin/python')

/**
 * The Rust floor: `cargo build --release --bin loadgen` in bench/rust (its own lock and target)
 * when the binary is absent. Resolves `{status: 'present'|'built'|'failed', seconds, reason?}`.
 */
export async function setupRust(root, timeoutSec) {
  if (existsSync(LOADGEN(root))) return { status: 'present', seconds: 0 }
  const args = ['build', '--release', '--bin', 'loadgen']
  if (process.env.CI) args.push('--locked')
  const r = await runBounded('cargo', args, { cwd: join(root, 'bench/rust'), timeoutSec })
  r.limit = timeoutSec
  if (r.ok && existsSync(LOADGEN(root))) return { status: 'built', seconds: r.seconds }
  return { status: 'failed', seconds: r.seconds, reason: reasonOf(r, `cd bench/rust && cargo ${args.join(' ')}`) }
}

/**
 * LiteLLM: bench/litellm/setup.sh (idempotent: it returns at once when the pinned version is
 * installed, otherwise makes the venv and pip-installs it from PyPI). Run only when the venv's
 * python is absent or has no litellm. Resolves like setupRust.
 */
export async function setupLiteLLM(root, timeoutSec) {
  const py = LITELLM_PY(root)
  if (existsSync(py)) {
    const check = await runBounded(py, ['-c', 'import importlib.metadata as m; print(m.version("litellm"))'], { cwd: root, timeoutSec: 30, quiet: true })
    if (check.ok) return { status: 'present', seconds: check.seconds }
  }
  const r = await runBounded('bash', [join(root, 'bench/litellm/setup.sh')], { cwd: root, timeoutSec })
  r.limit = timeoutSec
  if (r.ok && existsSync(py)) return { status: 'built', seconds: r.seconds }
  return { status: 'failed', seconds: r.seconds, reason: reasonOf(r, 'bench/litellm/setup.sh') }
}
