// Scenario 5: the criterion engine micro benchmarks of bench/rust/benches/engine.rs, built and
// run by `cargo bench` in bench/rust (its own lock and target), read back from criterion's
// `target/criterion/**/new/{benchmark,estimates}.json` (only files written by this run).
// Benchmark ids are matched by name and missing ones are shown as "–": engine.rs may change.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { reasonOf, runBounded } from './setup.mjs'

const rustDir = (root) => join(root, 'bench/rust')
export const criterionDir = (root) => join(root, 'bench/rust/target/criterion')

/** bench/rust has its own target directory: never follow a CARGO_TARGET_DIR set for something else. */
function cargoEnv(root) {
  const env = { ...process.env, CRITERION_HOME: criterionDir(root), CARGO_TERM_COLOR: 'never' }
  delete env.CARGO_TARGET_DIR
  return env
}

/**
 * Compiles the benchmark (`cargo bench --bench engine --no-run`) and finds its executable (from
 * cargo's JSON messages). `{ok, seconds, exe?, reason?}`
 */
export async function buildEngine(root, timeoutSec) {
  const args = ['bench', '--bench', 'engine', '--no-run', '--message-format', 'json-render-diagnostics']
  if (process.env.CI) args.push('--locked')
  const r = await runBounded('cargo', args, { cwd: rustDir(root), env: cargoEnv(root), timeoutSec, captureStdout: true, show: (l) => !l.startsWith('{') })
  r.limit = timeoutSec
  if (!r.ok) return { ok: false, seconds: r.seconds, reason: reasonOf(r, `cd bench/rust && cargo ${args.join(' ')}`) }
  let exe = null
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      const m = JSON.parse(line)
      if (m.reason === 'compiler-artifact' && m.executable && m.target?.name === 'engine' && m.target.kind?.includes('bench')) exe = m.executable
    } catch {}
  }
  if (!exe || !existsSync(exe)) return { ok: false, seconds: r.seconds, reason: 'cargo bench --no-run named no engine executable' }
  return { ok: true, seconds: r.seconds, exe }
}

/** The criterion arguments for one run. */
export function criterionArgs({ warmUp, measurement, nresamples, filter }) {
  const args = ['--warm-up-time', String(warmUp), '--measurement-time', String(measurement), '--nresamples', String(nresamples), '--noplot']
  if (filter) args.push(filter)
  return args
}

/**
 * Runs the benchmark executable that buildEngine just built, as `cargo bench` would (`EXE --bench
 * …`, in bench/rust) — not `cargo bench` again, which would first rebuild whatever changed in
 * crates/core meanwhile. Its time limit: 120 s + 100 benchmarks × (warm-up + measurement + 1 s
 * of analysis), at least 300 s. `{ok, seconds, limit, reason?}`
 */
export async function runEngine(root, exe, params) {
  const limit = Math.max(300, Math.round(120 + 100 * (params.warmUp + params.measurement + 1)))
  const args = ['--bench', ...criterionArgs(params)]
  const show = (l) => /^\s*time:\s*\[/.test(l) || /^\S+\/\S+\s+time:/.test(l) || /^\S+\/\S+\s*$|panicked|^error|Warning: Unable/i.test(l)
  const r = await runBounded(exe, args, { cwd: rustDir(root), env: cargoEnv(root), timeoutSec: limit, show })
  r.limit = limit
  return r.ok ? { ok: true, seconds: r.seconds, limit } : { ok: false, seconds: r.seconds, limit, reason: reasonOf(r, `bench/rust: ${exe} ${args.join(' ')}`) }
}

/** Every criterion result written at or after `sinceMs` (all of them when 0): `{id: {median_ns, low_ns, high_ns, mean_ns}}`. */
export function readCriterion(root, sinceMs = 0) {
  const base = criterionDir(root)
  const out = {}
  if (!existsSync(base)) return out
  const walk = (dir, depth) => {
    if (depth > 6) return
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue
      const sub = join(dir, e.name)
      if (e.name === 'new') {
        const est = join(sub, 'estimates.json')
        const meta = join(sub, 'benchmark.json')
        if (!existsSync(est) || !existsSync(meta) || statSync(est).mtimeMs < sinceMs) continue
        try {
          const b = JSON.parse(readFileSync(meta, 'utf8'))
          const x = JSON.parse(readFileSync(est, 'utf8'))
          const id = b.full_id || b.directory_name
          out[id] = {
            median_ns: round(x.median.point_estimate),
            low_ns: round(x.median.confidence_interval.lower_bound),
            high_ns: round(x.median.confidence_interval.upper_bound),
            mean_ns: round(x.mean.point_estimate),
          }
        } catch {}
      } else if (e.name !== 'report' && e.name !== 'base' && e.name !== 'change') walk(sub, depth + 1)
    }
  }
  walk(base, 0)
  return out
}

const round = (x) => (Number.isFinite(x) ? Number(x.toPrecision(4)) : null)

/** 6.2 ns · 244 ns · 2.39 µs · 1.20 ms */
export function fmtNs(ns) {
  if (ns == null || !Number.isFinite(ns)) return '–'
  if (ns < 10) return `${ns.toFixed(2)} ns`
  if (ns < 100) return `${ns.toFixed(1)} ns`
  if (ns < 1e3) return `${ns.toFixed(0)} ns`
  if (ns < 1e4) return `${(ns / 1e3).toFixed(2)} µs`
  if (ns < 1e6) return `${(ns / 1e3).toFixed(1)} µs`
  return `${(ns / 1e6).toFixed(2)} ms`
}

// The layout of engine.rs (bench/rust/README.md); anything else found is shown after these.
export const STRATEGIES = ['round-robin', 'random', 'weighted', 'least-connections']
const SELECT_ORDER = [...STRATEGIES, 'least-connections-idle', 'round-robin-10pct-eligible', 'random-10pct-eligible']
const SELECT_NOTES = { 'least-connections': 'every candidate busy: indexed minimum', 'least-connections-idle': 'next candidate idle', weighted: 'WF2Q+ on a tree index' }
const SELECT_SIZES = ['10', '100', '1000']
const QUEUE_OPS = ['push', 'pop', 'remove-middle']
const QUEUE_SIZES = ['1000', '10000', '100000']
const BREAKER = ['closed-call-success', 'closed-call-failure', 'refresh-closed', 'refresh-open', 'trip-cycle']
const DECISION = ['round-robin/1', 'round-robin/10', 'round-robin/1000', 'random/1000', 'weighted/1000', 'least-connections/1000']

const ordered = (found, preferred) => [...preferred, ...[...found].filter((x) => !preferred.includes(x)).sort()]

/** Groups the flat results into the scenario-5 tables, plus the derived numbers the goals use. */
export function engineTables(results) {
  const ids = Object.keys(results)
  const get = (id) => results[id]?.median_ns ?? null
  const two = (group) => new Set(ids.filter((id) => id.startsWith(`${group}/`) && id.split('/').length === 3).map((id) => id.split('/')[1]))
  const select = {}
  for (const s of ordered(two('select'), SELECT_ORDER)) select[s] = Object.fromEntries(SELECT_SIZES.map((n) => [n, get(`select/${s}/${n}`)]))
  const queue = {}
  for (const op of ordered(two('queue'), QUEUE_OPS)) {
    const row = Object.fromEntries(QUEUE_SIZES.map((n) => [n, get(`queue/${op}/${n}`)]))
    row.ratio_100k_vs_1k = row['100000'] != null && row['1000'] ? Number((row['100000'] / row['1000']).toFixed(2)) : null
    queue[op] = row
  }
  const breakerFound = new Set(ids.filter((id) => id.startsWith('breaker/')).map((id) => id.slice(8)))
  const breaker = Object.fromEntries(ordered(breakerFound, BREAKER).map((k) => [k, get(`breaker/${k}`)]))
  const direct = get('decision/backend-direct')
  const decisionFound = new Set(ids.filter((id) => id.startsWith('decision/') && id !== 'decision/backend-direct').map((id) => id.slice(9)))
  const decision = { 'backend-direct': { ns: direct, overhead_ns: null } }
  for (const k of ordered(decisionFound, DECISION)) {
    const ns = get(`decision/${k}`)
    decision[k] = { ns, overhead_ns: ns != null && direct != null ? round(ns - direct) : null }
  }
  const other = ids.filter((id) => !/^(select|queue|breaker|decision)\//.test(id)).sort()
  return { select, queue, breaker, decision, other: Object.fromEntries(other.map((id) => [id, get(id)])) }
}

const memberLabel = (k) => k.replace(/\/(\d+)$/, (_, n) => `, ${Number(n).toLocaleString('en-US')} member${n === '1' ? '' : 's'}`)

/** The scenario-5 tables as text. */
export function engineText(t) {
  const block = (header, rows) => {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
    return [header, ...rows].map((cells) => `  ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')}`).join('\n')
  }
  const parts = []
  parts.push(block(['select (one pick over n eligible)', 'n=10', 'n=100', 'n=1,000'], Object.entries(t.select).map(([s, r]) => [`${s}${SELECT_NOTES[s] ? ` (${SELECT_NOTES[s]})` : ''}`, ...SELECT_SIZES.map((n) => fmtNs(r[n]))])))
  parts.push(block(['queue (one WaitQueue op, n queued)', '1k', '10k', '100k', '100k / 1k'], Object.entries(t.queue).map(([op, r]) => [op, ...QUEUE_SIZES.map((n) => fmtNs(r[n])), r.ratio_100k_vs_1k == null ? '–' : `${r.ratio_100k_vs_1k}x`])))
  parts.push(block(['breaker (bookkeeping per call)', 'median'], Object.entries(t.breaker).map(([k, v]) => [k, fmtNs(v)])))
  parts.push(block(['decision (whole Scheduler::chat, in-memory backend)', 'median', 'minus backend-direct'], Object.entries(t.decision).map(([k, v]) => [k === 'backend-direct' ? 'backend-direct (the backend alone)' : memberLabel(k), fmtNs(v.ns), k === 'backend-direct' ? '' : fmtNs(v.overhead_ns)])))
  if (Object.keys(t.other).length) parts.push(block(['other', 'median'], Object.entries(t.other).map(([k, v]) => [k, fmtNs(v)])))
  return parts.join('\n\n')
}
