#!/usr/bin/env node
// The Node side of the benchmark suite: every contestant against the same three `rcc-mock`
// processes, each contestant in its own child process. Prints a table and writes
// bench/results/latest.json. Options: bench/README.md (`--quick` divides every count by 10).
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildMock, startMocks, mockStats } from './lib/mocks.mjs'
import { machine } from './lib/machine.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const CHILD = join(ROOT, 'bench/node/lib/child.mjs')

// ---- options: defaults < BENCH_* environment < --command-line ------------------------------
const DEFAULTS = {
  scenarios: 'throughput,latency,stream,queue',
  contestants: 'fetch,rcc,node-stack,rust,litellm',
  throughputRequests: 20_000,
  throughputConcurrency: '64,256',
  latencyRequests: 2_000,
  streams: 200,
  streamChunks: 500,
  streamWarmup: 20,
  queueRequests: 100_000,
  queueConcurrency: 64,
  queueLatencyMs: 1,
  warmup: 500,
  mocks: 3,
  maxSeconds: 300, // per contestant run (the child is killed 30 s later)
  quick: false,
  build: true, // the release build of the addon before running
  addon: '', // benchmark this .node file instead (NAPI_RS_NATIVE_LIBRARY_PATH); implies --no-build
  out: 'bench/results/latest.json',
}
const SHRUNK_BY_QUICK = ['throughputRequests', 'latencyRequests', 'streams', 'streamWarmup', 'queueRequests', 'warmup']
const kebab = (k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
const snake = (k) => kebab(k).replace(/-/g, '_').toUpperCase()

function parseOptions(argv, env) {
  const opts = { ...DEFAULTS }
  const set = new Set()
  const assign = (key, raw) => {
    const def = DEFAULTS[key]
    opts[key] = typeof def === 'number' ? Number(raw) : typeof def === 'boolean' ? raw !== 'false' && raw !== '0' && raw !== false : String(raw)
    if (typeof def === 'number' && !(opts[key] > 0)) throw new Error(`--${kebab(key)} needs a positive number, got ${raw}`)
    set.add(key)
  }
  for (const key of Object.keys(DEFAULTS)) if (env[`BENCH_${snake(key)}`] !== undefined) assign(key, env[`BENCH_${snake(key)}`])
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(no-)?([a-z-]+)$/.exec(argv[i])
    const key = m && Object.keys(DEFAULTS).find((k) => kebab(k) === m[2])
    if (!key) throw new Error(`unknown option ${argv[i]} (options: ${Object.keys(DEFAULTS).map((k) => `--${kebab(k)}`).join(' ')})`)
    if (typeof DEFAULTS[key] === 'boolean') assign(key, !m[1])
    else if (i + 1 < argv.length) assign(key, argv[++i])
    else throw new Error(`${argv[i]} needs a value`)
  }
  if (opts.quick) for (const k of SHRUNK_BY_QUICK) if (!set.has(k)) opts[k] = Math.max(1, Math.round(opts[k] / 10))
  if (opts.addon) opts.build = false
  return opts
}

// ---- contestants ------------------------------------------------------------------------------
const LOADGEN = join(ROOT, 'bench/rust/target/release/loadgen')
const LITELLM_PY = join(ROOT, 'bench/litellm/.venv/bin/python')
const LITELLM_RUN = join(ROOT, 'bench/litellm/run.py')
const node = (name) => ({ cmd: process.execPath, args: [CHILD, name] })
const CONTESTANTS = {
  fetch: { label: 'direct fetch', ...node('fetch') },
  rcc: { label: 'rcc-pipeline', ...node('rcc') },
  'node-stack': { label: 'openai+p-queue+cockatiel', ...node('node-stack') },
  rust: {
    label: 'Rust floor (loadgen)',
    cmd: LOADGEN,
    args: [],
    missing: () => !existsSync(LOADGEN) && 'enable: cd bench/rust && cargo build --release',
  },
  litellm: {
    label: 'LiteLLM Router',
    cmd: LITELLM_PY,
    args: [LITELLM_RUN],
    missing: () =>
      (!existsSync(LITELLM_PY) || !existsSync(LITELLM_RUN)) && 'enable: bench/litellm/setup.sh',
  },
}

/** Runs one contestant on one scenario: its JSON line, plus what the mocks served meanwhile. */
async function runContestant(name, sc, mocks, opts) {
  const c = CONTESTANTS[name]
  const missing = c.missing?.()
  if (missing) return { status: 'skipped', reason: missing }
  const args = [...c.args, '--url', mocks.urls.join(','), '--requests', String(sc.requests), '--concurrency', String(sc.concurrency)]
  if (sc.stream) args.push('--stream', '--chunks', String(sc.chunks))
  args.push('--warmup', String(sc.warmup))
  if (sc.scenario) args.push('--scenario', sc.scenario)
  args.push('--max-seconds', String(opts.maxSeconds))
  if (sc.burst) args.push('--burst') // beyond the external contract: the queue scenario runs Node contestants only
  args.push('--json')
  const env = { ...process.env }
  if (opts.addon) env.NAPI_RS_NATIVE_LIBRARY_PATH = resolve(opts.addon)
  const before = await upstream(mocks)
  const child = spawn(c.cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-2000)))
  let killed = false
  const killer = setTimeout(() => ((killed = true), child.kill('SIGKILL')), (opts.maxSeconds + 30) * 1000)
  const code = await new Promise((res) => {
    child.once('error', (err) => ((stderr += String(err)), res(-1)))
    child.once('close', res)
  })
  clearTimeout(killer)
  const after = await upstream(mocks)
  const served = { upstream_calls: after.chatRequests - before.chatRequests, connections_opened: after.connectionsOpened - before.connectionsOpened }
  const line = stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'))
  let result = null
  try {
    result = line && JSON.parse(line)
  } catch {}
  if (!result) return { status: killed ? 'timeout' : 'failed', reason: `exit ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`, ...served }
  // Fewer requests done than asked: the contestant stopped at --max-seconds.
  const status = killed || result.timed_out || result.requests < sc.requests ? 'timeout' : code === 0 ? 'ok' : 'failed'
  return { status, ...result, ...served }
}

async function upstream(mocks) {
  const all = await Promise.all(mocks.urls.map(mockStats))
  return { chatRequests: all.reduce((s, x) => s + x.chatRequests, 0), connectionsOpened: all.reduce((s, x) => s + x.connectionsOpened, 0) }
}

// ---- scenarios --------------------------------------------------------------------------------
function scenarios(opts) {
  const all = opts.contestants.split(',')
  const wanted = new Set(opts.scenarios.split(','))
  const list = []
  if (wanted.has('throughput')) {
    for (const c of opts.throughputConcurrency.split(',').map(Number)) {
      list.push({ id: `throughput_c${c}`, kind: 'throughput', title: `Non-streaming throughput: ${opts.throughputRequests} requests, concurrency ${c}, warm-up ${opts.warmup}`, requests: opts.throughputRequests, concurrency: c, warmup: opts.warmup, contestants: all })
    }
  }
  if (wanted.has('latency')) {
    list.push({ id: 'latency', kind: 'latency', title: `Added latency: ${opts.latencyRequests} sequential requests, warm-up ${opts.warmup}`, requests: opts.latencyRequests, concurrency: 1, warmup: opts.warmup, contestants: all })
  }
  if (wanted.has('stream')) {
    list.push({ id: 'stream', kind: 'stream', title: `Streaming: ${opts.streams} concurrent streams x ${opts.streamChunks} chunks (chunks=${opts.streamChunks}, no delay), warm-up ${opts.streamWarmup}`, requests: opts.streams, concurrency: opts.streams, stream: true, chunks: opts.streamChunks, warmup: opts.streamWarmup, contestants: all })
  }
  if (wanted.has('queue')) {
    list.push({ id: 'queue', kind: 'queue', title: `Queue scale: ${opts.queueRequests} requests submitted at once, concurrency ${opts.queueConcurrency}, upstream latency ${opts.queueLatencyMs} ms`, requests: opts.queueRequests, concurrency: opts.queueConcurrency, burst: true, scenario: `latency=${opts.queueLatencyMs}`, warmup: opts.warmup, contestants: all.filter((c) => c === 'rcc' || c === 'node-stack') })
  }
  return list
}

// ---- derived numbers --------------------------------------------------------------------------
const ok = (r) => r && (r.status === 'ok' || r.status === 'timeout') && r.ok > 0
const ratio = (a, b) => (ok(a) && ok(b) ? Number((a.rps / b.rps).toFixed(2)) : null)
const us = (aMs, bMs) => (aMs == null || bMs == null ? null : Math.round((aMs - bMs) * 1000))

function derive(sc, runs) {
  const direct = runs.fetch
  const floor = runs.rust
  for (const r of Object.values(runs)) {
    if (!ok(r)) continue
    r.cpu_us_per_request = Math.round((r.cpu_s * 1e6) / r.ok)
    if (sc.kind === 'latency' && ok(direct)) Object.assign(r, { added_p50_us: us(r.p50_ms, direct.p50_ms), added_p99_us: us(r.p99_ms, direct.p99_ms) })
    if (sc.kind === 'latency' && ok(floor)) Object.assign(r, { added_p50_us_vs_floor: us(r.p50_ms, floor.p50_ms), added_p99_us_vs_floor: us(r.p99_ms, floor.p99_ms) })
    if (sc.kind === 'stream') {
      r.cpu_us_per_chunk = r.chunks ? Number(((r.cpu_s * 1e6) / r.chunks).toFixed(2)) : null
      if (ok(direct)) r.added_ttfb_p50_us = us(r.ttfb_p50_ms, direct.ttfb_p50_ms)
      if (ok(floor)) r.added_ttfb_p50_us_vs_floor = us(r.ttfb_p50_ms, floor.ttfb_p50_ms)
    }
    if (sc.kind === 'queue') r.lost = sc.requests - r.ok - r.errors
  }
  const rcc = runs.rcc
  if (sc.kind === 'throughput') {
    return { rcc_vs_node_stack: ratio(rcc, runs['node-stack']), rcc_vs_fetch: ratio(rcc, direct), rcc_vs_rust_floor: ratio(rcc, runs.rust), rcc_vs_litellm: ratio(rcc, runs.litellm) }
  }
  if (sc.kind === 'latency') {
    const pick = (r, k) => r?.[k] ?? null
    const ns = runs['node-stack']
    return {
      rcc_added_p50_us: pick(rcc, 'added_p50_us'), rcc_added_p99_us: pick(rcc, 'added_p99_us'),
      node_stack_added_p50_us: pick(ns, 'added_p50_us'), node_stack_added_p99_us: pick(ns, 'added_p99_us'),
      rcc_added_p50_us_vs_floor: pick(rcc, 'added_p50_us_vs_floor'), rcc_added_p99_us_vs_floor: pick(rcc, 'added_p99_us_vs_floor'),
    }
  }
  if (sc.kind === 'stream') {
    const cps = (a, b) => (ok(a) && ok(b) && b.chunks_per_s ? Number((a.chunks_per_s / b.chunks_per_s).toFixed(2)) : null)
    return { rcc_chunks_per_s_vs_openai_node: cps(rcc, runs['node-stack']), rcc_chunks_per_s_vs_fetch: cps(rcc, direct), rcc_chunks_per_s_vs_rust_floor: cps(rcc, runs.rust), rcc_added_ttfb_p50_us: rcc?.added_ttfb_p50_us ?? null, rcc_added_ttfb_p50_us_vs_floor: rcc?.added_ttfb_p50_us_vs_floor ?? null }
  }
  return { rcc_vs_node_stack: ratio(rcc, runs['node-stack']), rcc_peak_rss_mb: rcc?.max_rss_mb ?? null, node_stack_peak_rss_mb: runs['node-stack']?.max_rss_mb ?? null }
}

// ---- printing ---------------------------------------------------------------------------------
const COLUMNS = {
  throughput: [['ok/err', (r) => `${r.ok}/${r.errors}`], ['req/s', 'rps'], ['p50 ms', 'p50_ms'], ['p99 ms', 'p99_ms'], ['CPU s', 'cpu_s'], ['CPU µs/req', 'cpu_us_per_request'], ['peak RSS MB', 'max_rss_mb'], ['upstream calls', 'upstream_calls'], ['conns', 'connections_opened']],
  latency: [['ok/err', (r) => `${r.ok}/${r.errors}`], ['p50 ms', 'p50_ms'], ['p99 ms', 'p99_ms'], ['+p50 µs', 'added_p50_us'], ['+p99 µs', 'added_p99_us'], ['+p50 µs vs floor', 'added_p50_us_vs_floor'], ['+p99 µs vs floor', 'added_p99_us_vs_floor'], ['CPU µs/req', 'cpu_us_per_request'], ['peak RSS MB', 'max_rss_mb']],
  stream: [['ok/err', (r) => `${r.ok}/${r.errors}`], ['chunks', 'chunks'], ['chunks/s', 'chunks_per_s'], ['TTFC p50 ms', 'ttfb_p50_ms'], ['+TTFC p50 µs', 'added_ttfb_p50_us'], ['+TTFC µs vs floor', 'added_ttfb_p50_us_vs_floor'], ['TTFC p99 ms', 'ttfb_p99_ms'], ['CPU µs/chunk', 'cpu_us_per_chunk'], ['peak RSS MB', 'max_rss_mb']],
  queue: [['submitted', 'requests'], ['ok', 'ok'], ['errors', 'errors'], ['lost', 'lost'], ['wall s', 'seconds'], ['req/s', 'rps'], ['p99 ms', 'p99_ms'], ['CPU s', 'cpu_s'], ['peak RSS MB', 'max_rss_mb'], ['upstream calls', 'upstream_calls']],
}

function table(sc, runs) {
  const cols = COLUMNS[sc.kind]
  const rows = Object.entries(runs).map(([name, r]) => {
    const label = CONTESTANTS[name].label + (/\d/.test(r.tool ?? '') ? ` (${r.tool})` : '')
    if (!ok(r)) return [label, `${r.status}${r.reason ? ` (${r.reason})` : ''}${r.first_error ? `: ${r.first_error}` : ''}`]
    const cells = cols.map(([, get]) => {
      const v = typeof get === 'function' ? get(r) : r[get]
      return v == null ? '–' : typeof get === 'string' && get.startsWith('added_') ? signed(v) : String(v)
    })
    return [`${label}${r.status === 'timeout' ? ' (TIMED OUT)' : ''}`, ...cells]
  })
  const header = ['contestant', ...cols.map(([h]) => h)]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.filter((r) => r.length > 2).map((r) => (r[i] ?? '').length)))
  const fmt = (cells) => (cells.length === 2 && cells.length < header.length ? `  ${cells[0].padEnd(widths[0])}  ${cells[1]}` : `  ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')}`)
  return [fmt(header), ...rows.map(fmt)].join('\n')
}

const show = (x) => (x == null ? '–' : x)
const signed = (x) => (x == null ? '–' : x > 0 ? `+${x}` : String(x))
function ratioLine(sc, r) {
  if (sc.kind === 'throughput') return `  ratios (req/s): rcc/node-stack ${show(r.rcc_vs_node_stack)}x · rcc/fetch ${show(r.rcc_vs_fetch)}x · rcc/Rust floor ${show(r.rcc_vs_rust_floor)}x · rcc/LiteLLM ${show(r.rcc_vs_litellm)}x`
  if (sc.kind === 'latency') return `  added vs direct fetch: rcc ${signed(r.rcc_added_p50_us)} µs p50 / ${signed(r.rcc_added_p99_us)} µs p99 · node-stack ${signed(r.node_stack_added_p50_us)} µs p50 / ${signed(r.node_stack_added_p99_us)} µs p99 · rcc vs Rust floor ${signed(r.rcc_added_p50_us_vs_floor)} µs p50 / ${signed(r.rcc_added_p99_us_vs_floor)} µs p99`
  if (sc.kind === 'stream') return `  ratios (chunks/s): rcc/openai-node ${show(r.rcc_chunks_per_s_vs_openai_node)}x · rcc/fetch ${show(r.rcc_chunks_per_s_vs_fetch)}x · rcc/Rust floor ${show(r.rcc_chunks_per_s_vs_rust_floor)}x · rcc TTFC p50 vs fetch ${signed(r.rcc_added_ttfb_p50_us)} µs, vs Rust floor ${signed(r.rcc_added_ttfb_p50_us_vs_floor)} µs`
  return `  ratios: rcc/node-stack throughput ${show(r.rcc_vs_node_stack)}x · peak RSS rcc ${show(r.rcc_peak_rss_mb)} MB vs node-stack ${show(r.node_stack_peak_rss_mb)} MB`
}

// ---- main -------------------------------------------------------------------------------------
function run(cmd, args) {
  console.error(`$ ${cmd} ${args.join(' ')}`)
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (status ${r.status})`)
}

async function main() {
  const opts = parseOptions(process.argv.slice(2), process.env)
  // The release build rewrites native.js / native.d.ts with identical content.
  if (opts.build) run('npx', ['napi', 'build', '--platform', '--release', '--js', 'native.js', '--dts', 'native.d.ts', '--no-const-enum'])
  const mockBin = buildMock(ROOT)
  const addonFile = opts.addon ? resolve(opts.addon) : join(ROOT, 'rcc-pipeline.linux-x64-gnu.node')
  const report = { timestamp: new Date().toISOString(), machine: machine(ROOT, addonFile), options: opts, scenarios: {} }
  const m = report.machine
  const head = [
    `rcc-pipeline benchmark (Node side) — ${report.timestamp}${opts.quick ? ' — QUICK (counts ÷10)' : ''}`,
    `machine: ${m.cpu}, ${m.cores} cores, ${m.memory_gb} GB · ${m.os} · node ${m.node} · commit ${m.commit}`,
    `addon: ${m.addon.profile} build (${m.addon.file}) · openai ${m.packages.openai}, p-queue ${m.packages['p-queue']}, cockatiel ${m.packages.cockatiel}`,
    `upstream: ${opts.mocks} × rcc-mock (release) on 127.0.0.1, round-robin`,
  ]
  if (m.load_avg_1m > 0.5) head.push(`WARNING: load average ${m.load_avg_1m} before the run: other processes are using the CPU, expect noise`)
  if (m.addon.profile !== 'release') head.push(`WARNING: the addon is a ${m.addon.profile} build; rcc-pipeline numbers are not representative (run without --no-build)`)
  console.log(head.join('\n'))

  const mocks = await startMocks(mockBin, opts.mocks)
  const stop = () => mocks.stop().then(() => process.exit(130))
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  try {
    for (const sc of scenarios(opts)) {
      const runs = {}
      for (const name of sc.contestants) {
        if (!CONTESTANTS[name]) throw new Error(`unknown contestant ${name} (known: ${Object.keys(CONTESTANTS).join(', ')})`)
        console.error(`… ${sc.id}: ${name}`)
        runs[name] = await runContestant(name, sc, mocks, opts)
        await new Promise((r) => setTimeout(r, 300)) // let the previous contestant's sockets close
      }
      const ratios = derive(sc, runs)
      report.scenarios[sc.id] = { title: sc.title, params: { requests: sc.requests, concurrency: sc.concurrency, warmup: sc.warmup, stream: !!sc.stream, chunks: sc.chunks ?? null, scenario: sc.scenario ?? null, burst: !!sc.burst }, results: runs, ratios }
      console.log(`\n${sc.title}\n${table(sc, runs)}\n${ratioLine(sc, ratios)}`)
    }
  } finally {
    await mocks.stop()
  }
  const out = resolve(ROOT, opts.out)
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`\nwrote ${out}`)
  // Skipped contestants are fine; one that failed, timed out or lost requests fails the run.
  const bad = Object.values(report.scenarios).flatMap((s) => Object.values(s.results)).filter((r) => r.status === 'failed' || r.status === 'timeout' || r.lost > 0)
  if (bad.length) process.exitCode = 1
}

main().catch((err) => {
  console.error(err.stack || String(err))
  process.exit(1)
})
