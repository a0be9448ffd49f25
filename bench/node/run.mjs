#!/usr/bin/env node
// The benchmark suite: sets up what is missing (the Rust floor, the LiteLLM venv), runs every
// contestant against the same three `rcc-mock` processes, each contestant in its own child
// process, then the criterion engine micro benchmarks; prints one table per scenario, the goals
// of issue 7 and the time of every phase; writes bench/results/latest.json and one SVG chart per
// scenario. Options: bench/README.md (`--quick` divides every count by 10).
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { buildMock, startMocks, mockStats } from './lib/mocks.mjs'
import { machine } from './lib/machine.mjs'
import { killActive, LITELLM_PY, LOADGEN, runBounded, reasonOf, setupLiteLLM, setupRust } from './lib/setup.mjs'
import { buildEngine, engineTables, engineText, readCriterion, runEngine } from './lib/engine.mjs'
import { computeGoals, goalsText } from './lib/goals.mjs'
import { writeCharts } from './lib/charts.mjs'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const CHILD = join(ROOT, 'bench/node/lib/child.mjs')

// ---- options: defaults < BENCH_* environment < --command-line ------------------------------
const DEFAULTS = {
  scenarios: 'throughput,latency,stream,queue,engine',
  contestants: 'fetch,rcc,node-stack,rust,litellm',
  throughputRequests: 20_000,
  throughputConcurrency: '64,256', // --quick: the first one only
  throughputRounds: 3, // each throughput scenario runs this many times, contestants interleaved; the median round counts (1 with --quick)
  latencyRequests: 2_000,
  streams: 200,
  streamChunks: 500,
  streamWarmup: 20,
  streamRounds: 3, // the streaming scenario runs this many times, contestants interleaved; the median round counts (1 with --quick)
  queueRequests: 100_000,
  queueConcurrency: 64,
  queueLatencyMs: 1,
  warmup: 500,
  // LiteLLM runs ~150 req/s and ~2,000 chunks/s, 100x slower than the rest: 20,000 requests
  // would take 2+ minutes per throughput round and every streaming round a minute. Its rate is
  // steady long before that, so it runs this many requests per throughput round (after the
  // same warm-up) and this many rounds of the throughput and streaming scenarios; its table
  // row shows the count it ran.
  litellmRequests: 4_000,
  litellmRounds: 1,
  mocks: 3,
  maxSeconds: 300, // per contestant run (the child is killed 30 s later); 60 with --quick
  engineWarmUp: 0.5, // criterion --warm-up-time, s per benchmark; 0.1 with --quick
  engineMeasurement: 1, // criterion --measurement-time, s per benchmark (millions of iterations of a ~100 ns one); 0.3 with --quick
  engineResamples: 20_000, // criterion --nresamples (bootstrap, for the confidence interval; the tables show medians); 1000 with --quick
  engineFilter: '', // criterion filter (a regex over the ids), all when empty
  quick: false,
  build: true, // the release build of the addon before running
  addon: '', // benchmark this .node file instead (NAPI_RS_NATIVE_LIBRARY_PATH); implies --no-build
  setup: 'rust,litellm', // build / install these external contestants when absent (--no-setup: none)
  setupTimeout: 1200, // s, limit of every build / setup step (each is killed after it)
  mockProfile: 'release', // target/<profile>/rcc-mock: release or debug
  mockBuild: true, // cargo build the mock first (--no-mock-build: use the binary as is when present)
  chartsDir: 'auto', // also write the SVG charts here: bench/charts for a full run, none with --quick
  out: 'bench/results/latest.json',
}
const SHRUNK_BY_QUICK = ['throughputRequests', 'latencyRequests', 'streams', 'streamWarmup', 'queueRequests', 'warmup', 'litellmRequests']
const SET_BY_QUICK = { throughputRounds: 1, streamRounds: 1, maxSeconds: 60, engineWarmUp: 0.1, engineMeasurement: 0.3, engineResamples: 1000 }
const SCENARIOS = ['throughput', 'latency', 'stream', 'queue', 'engine']
const kebab = (k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
const snake = (k) => kebab(k).replace(/-/g, '_').toUpperCase()

function parseOptions(argv, env) {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(`usage: node bench/node/run.mjs [options] (npm run bench -- [options]); every option is also BENCH_<NAME>; see bench/README.md\n${Object.entries(DEFAULTS)
      .map(([k, v]) => `  --${kebab(k)}${typeof v === 'boolean' ? ` / --no-${kebab(k)}` : ' VALUE'}  (default ${JSON.stringify(v)})`)
      .join('\n')}`)
    process.exit(0)
  }
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
    else if (m[1] && typeof DEFAULTS[key] === 'string') assign(key, '') // --no-setup, --no-charts-dir, …
    else if (i + 1 < argv.length) assign(key, argv[++i])
    else throw new Error(`${argv[i]} needs a value`)
  }
  if (opts.quick) {
    for (const k of SHRUNK_BY_QUICK) if (!set.has(k)) opts[k] = Math.max(1, Math.round(opts[k] / 10))
    for (const [k, v] of Object.entries(SET_BY_QUICK)) if (!set.has(k)) opts[k] = v
    if (!set.has('throughputConcurrency')) opts.throughputConcurrency = opts.throughputConcurrency.split(',')[0]
  }
  if (opts.chartsDir === 'auto') opts.chartsDir = opts.quick ? '' : 'bench/charts'
  if (opts.addon) opts.build = false
  const unknown = opts.scenarios.split(',').filter((x) => x && !SCENARIOS.includes(x))
  if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')} (known: ${SCENARIOS.join(', ')})`)
  const badSetup = opts.setup.split(',').filter((x) => x && !['rust', 'litellm'].includes(x))
  if (badSetup.length) throw new Error(`--setup takes rust,litellm (or --no-setup), got ${badSetup.join(', ')}`)
  if (!['release', 'debug'].includes(opts.mockProfile)) throw new Error(`--mock-profile is release or debug, got ${opts.mockProfile}`)
  return opts
}

// ---- contestants ------------------------------------------------------------------------------
const LITELLM_RUN = join(ROOT, 'bench/litellm/run.py')
const node = (name) => ({ cmd: process.execPath, args: [CHILD, name] })
const CONTESTANTS = {
  fetch: { label: 'direct fetch', ...node('fetch') },
  rcc: { label: 'rcc-pipeline', ...node('rcc') },
  'node-stack': { label: 'openai+p-queue+cockatiel', ...node('node-stack') },
  rust: {
    label: 'Rust floor (loadgen)',
    cmd: LOADGEN(ROOT),
    // One tokio worker per core: the most this machine can push (a single-threaded client
    // reaches ~75% of it on 2 cores), so the "≥ 0.7× the floor" goal is judged against that.
    args: ['--threads', '0'],
    missing: () => !existsSync(LOADGEN(ROOT)) && 'enable: --setup rust, or cd bench/rust && cargo build --release --bin loadgen',
  },
  litellm: {
    label: 'LiteLLM Router',
    cmd: LITELLM_PY(ROOT),
    args: [LITELLM_RUN],
    missing: () => (!existsSync(LITELLM_PY(ROOT)) || !existsSync(LITELLM_RUN)) && 'enable: --setup litellm, or bench/litellm/setup.sh',
  },
}
/** Setup failures by contestant: shown as `failed (setup: …)` in every scenario. */
const setupFailed = {}

/** Runs one contestant on one scenario: its JSON line, plus what the mocks served meanwhile. */
async function runContestant(name, sc, mocks, opts) {
  const c = CONTESTANTS[name]
  if (setupFailed[name]) return { status: 'failed', reason: `setup: ${setupFailed[name]}` }
  const missing = c.missing?.()
  if (missing) return { status: 'skipped', reason: missing }
  const requests = requestsOf(sc, name)
  const args = [...c.args, '--url', mocks.urls.join(','), '--requests', String(requests), '--concurrency', String(sc.concurrency)]
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
  let status = killed || result.timed_out || result.requests < requests ? 'timeout' : code === 0 ? 'ok' : 'failed'
  // Nothing succeeded: the numbers mean nothing (the mock never fails on its own).
  if (status === 'ok' && !(result.ok > 0)) return { status: 'failed', reason: `no request succeeded`, ...result, ...served }
  return { status, ...result, ...served }
}

/** The requests `name` runs in scenario `sc` (its share when the scenario gives it one). */
const requestsOf = (sc, name) => sc.requestsOf?.[name] ?? sc.requests
/** The rounds `name` runs in scenario `sc`. */
const roundsOf = (sc, name) => Math.min(sc.roundsOf?.[name] ?? sc.rounds ?? 1, sc.rounds ?? 1)

/**
 * The round that counts: a failed one if any failed (a contestant must pass every round),
 * else the median by the scenario's measure; every round's figure is kept in `rounds`.
 */
function medianRound(rounds, sc) {
  if (rounds.length === 1) return rounds[0]
  const bad = rounds.find((r) => r.status !== 'ok')
  if (bad) return bad
  const measure = sc.kind === 'stream' ? 'chunks_per_s' : 'rps'
  const sorted = [...rounds].sort((a, b) => a[measure] - b[measure])
  return { ...sorted[(sorted.length - 1) >> 1], rounds: rounds.map((r) => r[measure]) }
}

async function upstream(mocks) {
  const all = await Promise.all(mocks.urls.map(mockStats))
  return { chatRequests: all.reduce((s, x) => s + x.chatRequests, 0), connectionsOpened: all.reduce((s, x) => s + x.connectionsOpened, 0) }
}

// ---- scenarios --------------------------------------------------------------------------------
/** The title's ", median of N rounds (LiteLLM M)" part. */
function roundsTitle(rounds, litellmRounds, all) {
  if (rounds <= 1) return ''
  return `, median of ${rounds} rounds${all.includes('litellm') && litellmRounds < rounds ? ` (LiteLLM ${litellmRounds})` : ''}`
}

function scenarios(opts) {
  const all = opts.contestants.split(',')
  const wanted = new Set(opts.scenarios.split(','))
  const list = []
  if (wanted.has('throughput')) {
    for (const c of opts.throughputConcurrency.split(',').map(Number)) {
      const litellm = Math.min(opts.litellmRequests, opts.throughputRequests)
      const litellmRounds = Math.min(opts.litellmRounds, opts.throughputRounds)
      const share = all.includes('litellm') && litellm < opts.throughputRequests ? ` (LiteLLM ${litellm})` : ''
      const rounds = roundsTitle(opts.throughputRounds, litellmRounds, all)
      list.push({ id: `throughput_c${c}`, kind: 'throughput', title: `Non-streaming throughput: ${opts.throughputRequests} requests${share}, concurrency ${c}, warm-up ${opts.warmup}${rounds}`, requests: opts.throughputRequests, requestsOf: { litellm }, concurrency: c, warmup: opts.warmup, rounds: opts.throughputRounds, roundsOf: { litellm: litellmRounds }, contestants: all })
    }
  }
  if (wanted.has('latency')) {
    list.push({ id: 'latency', kind: 'latency', title: `Added latency: ${opts.latencyRequests} sequential requests, warm-up ${opts.warmup}`, requests: opts.latencyRequests, concurrency: 1, warmup: opts.warmup, contestants: all })
  }
  if (wanted.has('stream')) {
    const litellmRounds = Math.min(opts.litellmRounds, opts.streamRounds)
    const rounds = roundsTitle(opts.streamRounds, litellmRounds, all)
    list.push({ id: 'stream', kind: 'stream', title: `Streaming: ${opts.streams} concurrent streams x ${opts.streamChunks} chunks (chunks=${opts.streamChunks}, no delay), warm-up ${opts.streamWarmup}${rounds}`, requests: opts.streams, concurrency: opts.streams, stream: true, chunks: opts.streamChunks, warmup: opts.streamWarmup, rounds: opts.streamRounds, roundsOf: { litellm: litellmRounds }, contestants: all })
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
  throughput: [['ok/err', (r) => `${r.ok}/${r.errors}`], ['req/s', 'rps'], ['p50 ms', 'p50_ms'], ['p99 ms', 'p99_ms'], ['CPU s', 'cpu_s'], ['CPU µs/req', 'cpu_us_per_request'], ['peak RSS MB', 'max_rss_mb'], ['upstream calls', 'upstream_calls'], ['conns', 'connections_opened'], ['rounds (k req/s)', (r) => r.rounds?.map((x) => (x / 1000).toFixed(1)).join(' ')]],
  latency: [['ok/err', (r) => `${r.ok}/${r.errors}`], ['p50 ms', 'p50_ms'], ['p99 ms', 'p99_ms'], ['+p50 µs', 'added_p50_us'], ['+p99 µs', 'added_p99_us'], ['+p50 µs vs floor', 'added_p50_us_vs_floor'], ['+p99 µs vs floor', 'added_p99_us_vs_floor'], ['CPU µs/req', 'cpu_us_per_request'], ['peak RSS MB', 'max_rss_mb']],
  stream: [['ok/err', (r) => `${r.ok}/${r.errors}`], ['chunks', 'chunks'], ['chunks/s', 'chunks_per_s'], ['TTFC p50 ms', 'ttfb_p50_ms'], ['+TTFC p50 µs', 'added_ttfb_p50_us'], ['+TTFC µs vs floor', 'added_ttfb_p50_us_vs_floor'], ['TTFC p99 ms', 'ttfb_p99_ms'], ['CPU µs/chunk', 'cpu_us_per_chunk'], ['peak RSS MB', 'max_rss_mb'], ['rounds (k chunks/s)', (r) => r.rounds?.map((x) => Math.round(x / 1000)).join(' ')]],
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

// ---- phases -----------------------------------------------------------------------------------
const phases = []
/** Times `fn` as one phase of the run (printed at the end and kept in latest.json). */
async function phase(name, fn) {
  const t0 = performance.now()
  const entry = { phase: name, seconds: null, status: 'ok' }
  phases.push(entry)
  try {
    const r = await fn()
    if (r && typeof r === 'object' && r.status) entry.status = r.status
    return r
  } catch (err) {
    entry.status = 'failed'
    throw err
  } finally {
    entry.seconds = Number(((performance.now() - t0) / 1000).toFixed(1))
  }
}

function phasesText(total) {
  const w = Math.max(...phases.map((p) => p.phase.length), 5)
  return [...phases.map((p) => `  ${p.phase.padEnd(w)}  ${(p.seconds ?? 0).toFixed(1).padStart(7)} s  ${p.status}`), `  ${'total'.padEnd(w)}  ${total.toFixed(1).padStart(7)} s`].join('\n')
}

// ---- the engine scenario (5) ------------------------------------------------------------------
async function engineScenario(opts) {
  const params = { warm_up_s: opts.engineWarmUp, measurement_s: opts.engineMeasurement, nresamples: opts.engineResamples, filter: opts.engineFilter || null }
  const title = `Engine micro-benchmarks (criterion medians, bench/rust/benches/engine.rs): warm-up ${opts.engineWarmUp} s, measurement ${opts.engineMeasurement} s per benchmark${opts.engineFilter ? `, filter ${opts.engineFilter}` : ''}`
  const sc = { kind: 'engine', title, params, status: 'ok' }
  console.error('… engine: cargo bench --bench engine (build)')
  const built = await phase('engine: build (cargo bench --no-run)', () => buildEngine(ROOT, opts.setupTimeout).then((r) => ({ ...r, status: r.ok ? 'ok' : 'failed' })))
  sc.build_seconds = built.seconds
  if (!built.ok) return { ...sc, status: 'failed', reason: `build: ${built.reason}`, results: {}, tables: engineTables({}) }
  const since = Date.now() - 1000
  console.error(`… engine: ${built.exe} --bench (run)`)
  const ran = await phase('engine: run', () => runEngine(ROOT, built.exe, { warmUp: opts.engineWarmUp, measurement: opts.engineMeasurement, nresamples: opts.engineResamples, filter: opts.engineFilter }).then((r) => ({ ...r, status: r.ok ? 'ok' : 'failed' })))
  sc.run_seconds = ran.seconds
  // What this run wrote (older results of ids it did not run are left out).
  sc.results = readCriterion(ROOT, since)
  sc.tables = engineTables(sc.results)
  if (!ran.ok) Object.assign(sc, { status: 'failed', reason: ran.reason })
  else if (!Object.keys(sc.results).length) Object.assign(sc, { status: 'failed', reason: `no criterion results were written under bench/rust/target/criterion${opts.engineFilter ? ` (does --engine-filter ${opts.engineFilter} match anything?)` : ''}` })
  return sc
}

// ---- main -------------------------------------------------------------------------------------
async function main() {
  const t0 = performance.now()
  const opts = parseOptions(process.argv.slice(2), process.env)
  const wanted = new Set(opts.scenarios.split(',').filter(Boolean))
  const nodeScenarios = scenarios(opts)
  for (const name of opts.contestants.split(',')) if (!CONTESTANTS[name]) throw new Error(`unknown contestant ${name} (known: ${Object.keys(CONTESTANTS).join(', ')})`)
  process.once('SIGINT', () => (killActive(), process.exit(130)))
  process.once('SIGTERM', () => (killActive(), process.exit(143)))

  // The release build rewrites native.js / native.d.ts with identical content.
  if (opts.build) {
    const args = ['napi', 'build', '--platform', '--release', '--js', 'native.js', '--dts', 'native.d.ts', '--no-const-enum']
    const r = await phase('build: addon (napi build --release)', () => runBounded('npx', args, { cwd: ROOT, timeoutSec: opts.setupTimeout }).then((x) => ({ ...x, limit: opts.setupTimeout, status: x.ok ? 'ok' : 'failed' })))
    if (!r.ok) throw new Error(reasonOf(r, `npx ${args.join(' ')}`))
  }

  // External contestants: build / install what is absent (bounded; a failure marks the contestant).
  const used = new Set(nodeScenarios.flatMap((sc) => sc.contestants))
  const setups = {}
  for (const [name, fn] of [['rust', setupRust], ['litellm', setupLiteLLM]]) {
    if (!used.has(name) || !opts.setup.split(',').includes(name)) continue
    const r = await phase(`setup: ${name === 'rust' ? 'Rust floor (cargo build --release --bin loadgen)' : 'LiteLLM (bench/litellm/setup.sh)'}`, () => fn(ROOT, opts.setupTimeout))
    setups[name] = r
    if (r.status === 'failed') {
      setupFailed[name] = r.reason
      console.error(`setup of ${name} failed: ${r.reason}`)
    }
  }

  const addonFile = opts.addon ? resolve(opts.addon) : join(ROOT, 'rcc-pipeline.linux-x64-gnu.node')
  const report = { timestamp: new Date().toISOString(), machine: machine(ROOT, addonFile), options: opts, setup: setups, scenarios: {} }
  const m = report.machine
  m.mock_profile = opts.mockProfile
  const notRepresentative = []
  if (opts.quick) notRepresentative.push('--quick (counts ÷10, short engine runs)')
  if (nodeScenarios.length && m.addon.profile !== 'release') notRepresentative.push(`${m.addon.profile} build of the addon`)
  if (nodeScenarios.length && opts.mockProfile !== 'release') notRepresentative.push(`${opts.mockProfile} build of rcc-mock`)
  report.representative = notRepresentative.length === 0
  report.not_representative = notRepresentative
  const head = [
    `rcc-pipeline benchmark — ${report.timestamp}${opts.quick ? ' — QUICK (counts ÷10)' : ''}`,
    `machine: ${m.cpu}, ${m.cores} cores, ${m.memory_gb} GB · ${m.os} · node ${m.node} · commit ${m.commit}`,
    `addon: ${m.addon.profile} build (${m.addon.file}) · openai ${m.packages.openai}, p-queue ${m.packages['p-queue']}, cockatiel ${m.packages.cockatiel}`,
    `versions: ${Object.entries(m.versions).map(([k, v]) => `${k} ${v ?? '–'}`).join(', ')}`,
    `upstream: ${opts.mocks} × rcc-mock (${opts.mockProfile}) on 127.0.0.1, round-robin`,
  ]
  if (m.load_avg_1m > 0.5) head.push(`WARNING: load average ${m.load_avg_1m} before the run: other processes are using the CPU, expect noise`)
  if (notRepresentative.length) head.push(`WARNING: numbers not representative: ${notRepresentative.join('; ')}${m.addon.profile !== 'release' ? ' (run without --no-build for a release addon)' : ''}`)
  report.warnings = head.filter((l) => l.startsWith('WARNING'))
  console.log(head.join('\n'))

  if (nodeScenarios.length) {
    const mockBin = await phase(`build: rcc-mock (${opts.mockProfile})`, () => buildMock(ROOT, { profile: opts.mockProfile, build: opts.mockBuild, timeoutSec: opts.setupTimeout }))
    const mocks = await startMocks(mockBin, opts.mocks)
    const stop = () => (killActive(), mocks.stop().then(() => process.exit(130)))
    process.removeAllListeners('SIGINT').removeAllListeners('SIGTERM')
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    try {
      for (const sc of nodeScenarios) {
        const runs = {}
        await phase(`scenario: ${sc.id}`, async () => {
          const all = Object.fromEntries(sc.contestants.map((name) => [name, []]))
          // Rounds interleave the contestants, so that a slow spell of the machine does not
          // fall on one of them only.
          for (let round = 1; round <= (sc.rounds ?? 1); round++) {
            for (const name of sc.contestants) {
              if (round > roundsOf(sc, name)) continue
              console.error(`… ${sc.id}: ${name}${sc.rounds > 1 ? ` (round ${round})` : ''}`)
              all[name].push(await runContestant(name, sc, mocks, opts))
              await new Promise((r) => setTimeout(r, 300)) // let the previous contestant's sockets close
            }
          }
          for (const name of sc.contestants) runs[name] = medianRound(all[name], sc)
        })
        const ratios = derive(sc, runs)
        report.scenarios[sc.id] = { kind: sc.kind, title: sc.title, params: { requests: sc.requests, requests_of: sc.requestsOf ?? null, rounds: sc.rounds ?? 1, rounds_of: sc.roundsOf ?? null, concurrency: sc.concurrency, warmup: sc.warmup, stream: !!sc.stream, chunks: sc.chunks ?? null, scenario: sc.scenario ?? null, burst: !!sc.burst }, results: runs, ratios }
        console.log(`\n${sc.title}\n${table(sc, runs)}\n${ratioLine(sc, ratios)}`)
      }
    } finally {
      await mocks.stop()
    }
  }

  if (wanted.has('engine')) {
    const sc = await engineScenario(opts)
    report.scenarios.engine = sc
    console.log(`\n${sc.title}`)
    if (sc.status !== 'ok') console.log(`  engine: failed (${sc.reason})`)
    if (Object.keys(sc.results).length) console.log(engineText(sc.tables))
  }

  report.goals = computeGoals(report)
  console.log(`\nGoals (issue 7), from this run${report.representative ? '' : ' — NOT REPRESENTATIVE'}\n${goalsText(report.goals)}`)

  const out = resolve(ROOT, opts.out)
  const dirs = [dirname(out), ...(opts.chartsDir ? [resolve(ROOT, opts.chartsDir)] : [])]
  const charts = await phase('charts', () => writeCharts(report, dirs))
  report.charts = charts
  report.phases = phases
  report.total_seconds = Number(((performance.now() - t0) / 1000).toFixed(1))
  console.log(`\nPhases (wall time)\n${phasesText(report.total_seconds)}`)
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`\nwrote ${out}\ncharts: ${charts.join(', ') || 'none'}`)
  // Skipped contestants are fine; one that failed (setup included), timed out or lost requests,
  // or an engine scenario that failed, fails the run.
  const bad = Object.entries(report.scenarios).flatMap(([id, s]) =>
    s.kind === 'engine'
      ? s.status === 'ok' ? [] : [`${id}: ${s.status}`]
      : Object.entries(s.results)
          .filter(([, r]) => r.status === 'failed' || r.status === 'timeout' || r.errors > 0 || r.lost > 0)
          .map(([name, r]) => `${id}: ${name} ${r.status}${r.errors ? `, ${r.errors} errors` : ''}${r.lost ? `, ${r.lost} lost` : ''}`),
  )
  if (bad.length) {
    console.log(`\nFAILED (exit 1): ${bad.join(' · ')}`)
    process.exitCode = 1
  }
}

main().catch((err) => {
  killActive()
  console.error(err.stack || String(err))
  process.exit(1)
})
