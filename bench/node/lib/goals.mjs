// The goals of issue 7, computed from one run's report: `[{id, goal, measured, met, note?}]`,
// `met` true / false, or null when the run did not measure it (scenario or contestant absent).
import { fmtNs, STRATEGIES } from './engine.mjs'
import { kindOf } from './charts.mjs'

const fmtX = (x) => (x == null ? '–' : `${x}x`)
const fmtUs = (x) => (x == null ? '–' : `${x > 0 ? '+' : x < 0 ? '−' : ''}${Math.abs(x) >= 10_000 ? `${(Math.abs(x) / 1000).toLocaleString('en-US', { maximumFractionDigits: 1 })} ms` : `${Math.abs(x).toLocaleString('en-US')} µs`}`)
const allMet = (checks) => (checks.length === 0 || checks.some((c) => c == null) ? (checks.some((c) => c === false) ? false : null) : checks.every(Boolean))

export function computeGoals(report) {
  const sc = report.scenarios
  const goals = []
  const add = (id, goal, measured, met, note) => goals.push({ id, goal, measured, met, ...(note ? { note } : {}) })

  // 1. Throughput: every concurrency measured.
  const tp = Object.entries(sc).filter(([id, s]) => kindOf(id, s) === 'throughput')
  const tpGoal = (id, goal, key, min) => {
    const vals = tp.map(([, s]) => [s.params.concurrency, s.ratios?.[key] ?? null])
    const measured = vals.length ? vals.map(([c, v]) => `${fmtX(v)} (c${c})`).join(' · ') : 'not run'
    add(id, goal, measured, vals.length ? allMet(vals.map(([, v]) => (v == null ? null : v >= min))) : null)
  }
  tpGoal('throughput_vs_node_stack', 'throughput ≥ 3× the Node stack (openai + p-queue + cockatiel)', 'rcc_vs_node_stack', 3)
  tpGoal('throughput_vs_floor', 'throughput ≥ 0.7× the Rust floor', 'rcc_vs_rust_floor', 0.7)
  tpGoal('throughput_vs_litellm', 'throughput ≥ 10× LiteLLM Router', 'rcc_vs_litellm', 10)

  // 2. Added latency.
  const lat = sc.latency?.ratios
  const latGoal = (id, goal, p50, p99, note) => {
    if (!lat) return add(id, goal, 'not run', null)
    const a = lat[p50]
    const b = lat[p99]
    add(id, goal, `p50 ${fmtUs(a)}, p99 ${fmtUs(b)}`, allMet([a == null ? null : a <= 30, b == null ? null : b <= 200]), note)
  }
  latGoal('latency_vs_fetch', 'added latency p50 ≤ 30 µs and p99 ≤ 200 µs over direct fetch', 'rcc_added_p50_us', 'rcc_added_p99_us', 'negative = faster than Node fetch (rcc-pipeline does its HTTP in Rust)')
  latGoal('latency_vs_floor', 'added latency p50 ≤ 30 µs and p99 ≤ 200 µs over the Rust floor (stricter reading)', 'rcc_added_p50_us_vs_floor', 'rcc_added_p99_us_vs_floor')

  // 3. Streaming.
  const st = sc.stream?.ratios
  const cps = st?.rcc_chunks_per_s_vs_openai_node ?? null
  add('stream_vs_openai_node', 'streaming chunks/s ≥ 3× openai-node', st ? fmtX(cps) : 'not run', st ? (cps == null ? null : cps >= 3) : null)
  const ttfc = st?.rcc_added_ttfb_p50_us ?? null
  add(
    'ttfc_vs_fetch',
    'added time to first chunk ≤ 0.5 ms over direct fetch (p50)',
    st ? `${fmtUs(ttfc)} vs fetch (${fmtUs(st.rcc_added_ttfb_p50_us_vs_floor ?? null)} vs the Rust floor)` : 'not run',
    st ? (ttfc == null ? null : ttfc <= 500) : null,
    'all streams start at once, so time to first chunk includes queueing on the cores',
  )

  // 5. Engine: selection and the queue.
  const eng = sc.engine?.tables
  if (eng) {
    const at1000 = STRATEGIES.map((s) => [s, eng.select[s]?.['1000'] ?? null])
    add('selection_1000', 'selection ≤ 100 ns at 1,000 pipelines, every strategy', at1000.map(([s, v]) => `${s} ${fmtNs(v)}`).join(', '), allMet(at1000.map(([, v]) => (v == null ? null : v <= 100))), 'least-connections measured with every candidate busy (its worst case)')
    const ops = Object.entries(eng.queue).filter(([op]) => ['push', 'pop', 'remove-middle'].includes(op))
    add(
      'queue_log_n',
      'queue operations O(log n): time at 100k queued ≤ 3× the time at 1k',
      ops.length ? ops.map(([op, r]) => `${op} ${fmtNs(r['100000'])} (${fmtX(r.ratio_100k_vs_1k)})`).join(', ') : '–',
      ops.length ? allMet(ops.map(([, r]) => (r.ratio_100k_vs_1k == null ? null : r.ratio_100k_vs_1k <= 3))) : null,
      'log2(100k) / log2(1k) = 1.67; a linear scan would be ~100x',
    )
  } else {
    add('selection_1000', 'selection ≤ 100 ns at 1,000 pipelines, every strategy', 'not run', null)
    add('queue_log_n', 'queue operations O(log n): time at 100k queued ≤ 3× the time at 1k', 'not run', null)
  }

  // 4. Queue scale.
  const q = sc.queue
  const rcc = q?.results?.rcc
  if (rcc && rcc.ok > 0) {
    const n = q.params.requests
    const met = rcc.max_rss_mb <= 200 && rcc.lost === 0 && n >= 100_000
    add('queue_100k', '100,000 queued in ≤ 200 MB peak RSS, zero lost', `${n.toLocaleString('en-US')} queued: ${rcc.max_rss_mb} MB peak RSS, ${rcc.lost} lost`, n >= 100_000 ? met : rcc.max_rss_mb > 200 || rcc.lost > 0 ? false : null, n < 100_000 ? `only ${n.toLocaleString('en-US')} queued in this run (--queue-requests)` : undefined)
  } else add('queue_100k', '100,000 queued in ≤ 200 MB peak RSS, zero lost', q ? `rcc ${rcc?.status ?? 'absent'}` : 'not run', q ? false : null)
  return goals
}

export const metText = (m) => (m === true ? 'met' : m === false ? 'NOT MET' : 'not measured')

export function goalsText(goals) {
  const rows = goals.map((g) => [g.goal, g.measured, metText(g.met)])
  const w = [0, 1].map((i) => Math.max(...rows.map((r) => r[i].length), i ? 8 : 4))
  return [['goal', 'measured', 'result'], ...rows].map(([a, b, c]) => `  ${a.padEnd(w[0])}  ${b.padEnd(w[1])}  ${c}`).join('\n')
}
