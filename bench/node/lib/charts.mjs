// One SVG chart per scenario from a benchmark report (bench/results/latest.json), no dependencies:
// horizontal bars with their values as text, contestant names, the scenario title and the goal
// lines, on a white background (readable on GitHub in light and dark mode).
//
//   node bench/node/lib/charts.mjs [report.json] [out-dir]     (defaults: bench/results/latest.json, bench/results)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { STRATEGIES } from './engine.mjs'

const W = 1000
const ROW = 20
const BAR = 14
const FONT = 'Helvetica, Arial, sans-serif'
const COLORS = { rcc: '#d9480f', 'node-stack': '#1c7ed6', fetch: '#868e96', rust: '#2b8a3e', litellm: '#7048e8' }
const GOAL = '#c92a2a'
const NAMES = { rcc: 'rcc-pipeline', 'node-stack': 'openai + p-queue + cockatiel', fetch: 'direct fetch', rust: 'Rust floor (reqwest)', litellm: 'LiteLLM Router' }

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
const num = (x, d = 0) => Number(x).toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: 0 })
// Text has a white halo (paint-order: stroke first) so that it stays readable over goal lines.
const text = (x, y, s, { size = 12, weight = 'normal', fill = '#212529', anchor = 'start' } = {}) =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-family="${FONT}" font-size="${size}" font-weight="${weight}" fill="${fill}" text-anchor="${anchor}" stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke">${esc(s)}</text>`

/** Round axis ticks: 0 … ≥ max in 1/2/5 × 10^k steps (linear) or decades (log). */
function ticks(lo, hi, log) {
  if (log) {
    const out = []
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e)
    return out
  }
  const raw = hi / 5
  const p = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)
  const out = []
  for (let v = 0; v <= hi + step * 0.999; v += step) out.push(Number(v.toPrecision(12)))
  return out
}

const tickLabel = (v) => (v >= 1e6 ? `${num(v / 1e6, 1)}M` : v >= 1e3 ? `${num(v / 1e3, 1)}k` : v >= 1 ? num(v, 1) : String(Number(v.toPrecision(2))))

/**
 * A chart: `{title, subtitle[], panels: [{title, log?, groups: [{label?, bars: [{label, value, text, color}], goals?}], goals?}], notes[]}`;
 * a goal is `{value, label}`, drawn as a dashed red line over its group (or every group of its panel).
 */
export function barChart({ title, subtitle = [], panels, notes = [] }) {
  const labels = panels.flatMap((p) => p.groups.flatMap((g) => g.bars.map((b) => b.label)))
  const LW = Math.min(320, Math.max(150, ...labels.map((l) => l.length * 6.8 + 16)))
  const x0 = 16 + LW
  const x1 = W - 250
  const out = []
  let y = 30
  out.push(text(16, y, title, { size: 16, weight: 'bold' }))
  for (const s of subtitle) out.push(text(16, (y += 18), s, { size: 12, fill: '#495057' }))
  y += 14
  for (const p of panels) {
    y += 18
    out.push(text(16, y, p.title, { size: 13, weight: 'bold' }))
    y += 8
    const values = p.groups.flatMap((g) => [...g.bars.map((b) => b.value), ...(g.goals ?? []).map((x) => x.value), ...(p.goals ?? []).map((x) => x.value)]).filter((v) => v != null && Number.isFinite(v) && v > 0)
    if (!values.length) {
      out.push(text(x0, (y += 16), 'no data in this run', { fill: '#868e96' }))
      y += 8
      continue
    }
    const log = p.log === 'auto' ? Math.max(...values) / Math.min(...values) > 50 : !!p.log
    const lo = log ? 10 ** Math.floor(Math.log10(Math.min(...values))) : 0
    const tk = ticks(log ? lo : 0, Math.max(...values) * (log ? 1 : 1.02), log)
    const hi = tk[tk.length - 1]
    const sx = (v) => (log ? x0 + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (x1 - x0) : x0 + (v / hi) * (x1 - x0))
    const top = y
    for (const g of p.groups) {
      const goals = [...(g.goals ?? []), ...(p.goals ?? [])].filter((x) => x.value != null && Number.isFinite(x.value) && x.value > 0)
      if (g.label) {
        y += 18
        out.push(text(16, y - 4, g.label, { size: 12, weight: 'bold', fill: '#343a40' }))
      }
      const gTop = y
      for (const b of g.bars) {
        out.push(text(x0 - 8, y + BAR - 2, b.label, { anchor: 'end' }))
        if (b.value != null && Number.isFinite(b.value) && b.value > 0) {
          const w = Math.max(1, sx(b.value) - x0)
          out.push(`<rect x="${x0}" y="${y + 1}" width="${w.toFixed(1)}" height="${BAR}" fill="${b.color ?? '#495057'}" rx="2"/>`)
          out.push(text(x0 + w + 6, y + BAR - 2, b.text ?? num(b.value, 1), { weight: b.bold ? 'bold' : 'normal' }))
        } else out.push(text(x0 + 6, y + BAR - 2, b.text ?? '–', { fill: '#868e96' }))
        y += ROW
      }
      goals.forEach((goal, i) => {
        const gx = sx(goal.value)
        out.push(`<line x1="${gx.toFixed(1)}" y1="${gTop - 2}" x2="${gx.toFixed(1)}" y2="${y + 2}" stroke="${GOAL}" stroke-width="1.5" stroke-dasharray="5,3"/>`)
        out.push(text(gx + 4, y + 12 + i * 13, goal.label, { size: 11, fill: GOAL }))
      })
      y += goals.length * 13 + (goals.length ? 4 : 0)
    }
    // axis and gridlines
    const axisY = y + 4
    for (const t of tk) {
      const tx = sx(t)
      out.push(`<line x1="${tx.toFixed(1)}" y1="${top}" x2="${tx.toFixed(1)}" y2="${axisY}" stroke="#dee2e6" stroke-width="1"/>`)
      out.push(text(tx, axisY + 14, tickLabel(t), { size: 10, fill: '#868e96', anchor: 'middle' }))
    }
    out.push(`<line x1="${x0}" y1="${axisY}" x2="${x1}" y2="${axisY}" stroke="#adb5bd" stroke-width="1"/>`)
    out.push(text(x1, axisY + 28, `${p.unit ?? ''}${log ? ' (log scale)' : ''}`, { size: 10, fill: '#868e96', anchor: 'end' }))
    y = axisY + 34
  }
  for (const n of notes) out.push(text(16, (y += 16), n, { size: 11, fill: '#495057' }))
  const H = Math.ceil(y + 16)
  // Gridlines go under the bars: move them first.
  const grid = out.filter((s) => s.includes('stroke="#dee2e6"'))
  const rest = out.filter((s) => !s.includes('stroke="#dee2e6"'))
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
    `<title>${esc(title)}</title>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    ...grid,
    ...rest,
    '</svg>',
    '',
  ].join('\n')
}

// ---- the scenarios ------------------------------------------------------------------------------

const KINDS = { throughput: /^throughput/, latency: /^latency$/, stream: /^stream$/, queue: /^queue$/, engine: /^engine$/ }
export const kindOf = (id, s) => s?.kind ?? Object.keys(KINDS).find((k) => KINDS[k].test(id))
const usable = (r) => r && (r.status === 'ok' || r.status === 'timeout') && r.ok > 0

function contestantBars(results, value, fmt) {
  return Object.entries(results).map(([name, r]) => {
    const v = usable(r) ? value(r) : null
    return {
      label: NAMES[name] ?? name,
      value: v,
      text: v == null ? (r.status === 'ok' ? '–' : `${r.status}${r.reason ? `: ${r.reason}` : ''}`.slice(0, 60)) : fmt(v, r),
      color: COLORS[name],
      bold: name === 'rcc',
    }
  })
}

function subtitle(report) {
  const m = report.machine ?? {}
  const lines = [`${(report.timestamp ?? '').slice(0, 10)} · commit ${m.commit ?? '?'} · ${m.cpu ?? '?'}, ${m.cores ?? '?'} cores · node ${m.node ?? '?'} · ${m.addon?.profile ?? '?'} addon`]
  if (report.representative === false) lines.push(`NOT REPRESENTATIVE: ${(report.not_representative ?? []).join('; ') || 'see the run'}`)
  return lines
}

const pct = (x, k) => (x == null ? null : x * k)

/** `{name: svg}` for every scenario of the report: throughput, latency, stream, queue, engine. */
export function renderCharts(report) {
  const sc = report.scenarios ?? {}
  const by = (kind) => Object.entries(sc).filter(([id, s]) => kindOf(id, s) === kind)
  const out = {}
  const sub = subtitle(report)

  const tp = by('throughput')
  if (tp.length) {
    out.throughput = barChart({
      title: `1. Non-streaming throughput (${num(tp[0][1].params.requests)} requests per contestant)`,
      subtitle: sub,
      panels: [
        {
          title: 'requests per second (higher is better)',
          unit: 'req/s',
          groups: tp.map(([, s]) => {
            const r = s.results
            const goals = []
            if (usable(r['node-stack'])) goals.push({ value: 3 * r['node-stack'].rps, label: `goal: 3× node-stack (${num(3 * r['node-stack'].rps)})` })
            if (usable(r.rust)) goals.push({ value: 0.7 * r.rust.rps, label: `goal: 0.7× Rust floor (${num(0.7 * r.rust.rps)})` })
            if (usable(r.litellm)) goals.push({ value: 10 * r.litellm.rps, label: `goal: 10× LiteLLM (${num(10 * r.litellm.rps)})` })
            return { label: `concurrency ${s.params.concurrency}`, bars: contestantBars(r, (x) => x.rps, (v, x) => `${num(v)} req/s · p99 ${num(x.p99_ms, 1)} ms`), goals }
          }),
        },
      ],
      notes: ratioNotes(tp.map(([, s]) => [`c${s.params.concurrency}`, s.ratios]), [['rcc / node-stack', 'rcc_vs_node_stack'], ['rcc / Rust floor', 'rcc_vs_rust_floor'], ['rcc / LiteLLM', 'rcc_vs_litellm']]),
    })
  }

  const lat = sc.latency
  if (lat) {
    const f = lat.results.fetch
    const fl = lat.results.rust
    const g = (k, add) => (usable(f) ? [{ value: f[k] * 1000 + add, label: `goal: direct fetch + ${add} µs` }] : []).concat(usable(fl) ? [{ value: fl[k] * 1000 + add, label: `Rust floor + ${add} µs (stricter)` }] : [])
    out.latency = barChart({
      title: `2. Added latency (${num(lat.params.requests)} sequential requests)`,
      subtitle: sub,
      panels: [
        { title: 'p50 latency per request, µs (lower is better)', unit: 'µs', log: 'auto', groups: [{ bars: contestantBars(lat.results, (x) => pct(x.p50_ms, 1000), (v, x) => `${num(v)} µs${x.added_p50_us != null ? ` (${x.added_p50_us > 0 ? '+' : ''}${num(x.added_p50_us)} vs fetch)` : ''}`), goals: g('p50_ms', 30) }] },
        { title: 'p99 latency per request, µs (lower is better)', unit: 'µs', log: 'auto', groups: [{ bars: contestantBars(lat.results, (x) => pct(x.p99_ms, 1000), (v, x) => `${num(v)} µs${x.added_p99_us != null ? ` (${x.added_p99_us > 0 ? '+' : ''}${num(x.added_p99_us)} vs fetch)` : ''}`), goals: g('p99_ms', 200) }] },
      ],
      notes: ['Goal: rcc-pipeline adds ≤ 30 µs p50 and ≤ 200 µs p99 over direct fetch (negative = faster than Node fetch).'],
    })
  }

  const st = sc.stream
  if (st) {
    const r = st.results
    out.stream = barChart({
      title: `3. Streaming (${num(st.params.requests)} concurrent streams × ${num(st.params.chunks)} chunks)`,
      subtitle: sub,
      panels: [
        { title: 'chunks per second delivered to the caller (higher is better)', unit: 'chunks/s', groups: [{ bars: contestantBars(r, (x) => x.chunks_per_s, (v, x) => `${num(v)} chunks/s · ${x.cpu_us_per_chunk ?? '–'} CPU µs/chunk`), goals: usable(r['node-stack']) ? [{ value: 3 * r['node-stack'].chunks_per_s, label: `goal: 3× openai-node (${num(3 * r['node-stack'].chunks_per_s)})` }] : [] }] },
        { title: 'time to first chunk p50, ms (lower is better)', unit: 'ms', log: 'auto', groups: [{ bars: contestantBars(r, (x) => x.ttfb_p50_ms, (v) => `${num(v, 1)} ms`), goals: usable(r.fetch) ? [{ value: r.fetch.ttfb_p50_ms + 0.5, label: 'goal: direct fetch + 0.5 ms' }] : [] }] },
      ],
      notes: st.ratios ? [`rcc / openai-node ${st.ratios.rcc_chunks_per_s_vs_openai_node ?? '–'}x chunks/s · rcc / fetch ${st.ratios.rcc_chunks_per_s_vs_fetch ?? '–'}x · rcc / Rust floor ${st.ratios.rcc_chunks_per_s_vs_rust_floor ?? '–'}x`] : [],
    })
  }

  const q = sc.queue
  if (q) {
    const r = q.results
    out.queue = barChart({
      title: `4. Queue scale (${num(q.params.requests)} requests submitted at once, concurrency ${q.params.concurrency})`,
      subtitle: sub,
      panels: [
        { title: 'peak RSS, MB (lower is better)', unit: 'MB', groups: [{ bars: contestantBars(r, (x) => x.max_rss_mb, (v, x) => `${num(v)} MB · ${num(x.ok)} ok, ${x.lost ?? '?'} lost`) }], goals: [{ value: 200, label: 'goal: 200 MB for 100,000 queued' }] },
        { title: 'wall time for all of them, s (lower is better)', unit: 's', groups: [{ bars: contestantBars(r, (x) => x.seconds, (v, x) => `${num(v, 2)} s · ${num(x.rps)} req/s`) }] },
      ],
    })
  }

  const e = sc.engine
  if (e?.tables) {
    const t = e.tables
    const sel = Object.entries(t.select).map(([s, row]) => ({ label: s, value: row['1000'], text: row['1000'] == null ? '–' : fmtNsShort(row['1000']), color: STRATEGIES.includes(s) ? COLORS.rcc : '#f08c00', bold: STRATEGIES.includes(s) }))
    const queue = ['1000', '10000', '100000'].map((n) => ({ label: `${num(Number(n))} queued`, bars: Object.entries(t.queue).map(([op, row]) => ({ label: op, value: row[n], text: row[n] == null ? '–' : fmtNsShort(row[n]), color: '#1c7ed6' })) }))
    out.engine = barChart({
      title: '5. Engine micro-benchmarks (criterion medians, bench/rust/benches/engine.rs)',
      subtitle: [...sub, `warm-up ${e.params?.warm_up_s ?? '?'} s, measurement ${e.params?.measurement_s ?? '?'} s per benchmark`],
      panels: [
        { title: 'selection: one pick over 1,000 eligible candidates, ns (lower is better)', unit: 'ns', log: true, groups: [{ bars: sel }], goals: [{ value: 100, label: 'goal: 100 ns' }] },
        { title: 'wait queue: one operation with n queued, ns (O(log n): flat across n)', unit: 'ns', groups: queue },
      ],
      notes: ['least-connections: every candidate busy (the old worst case, a full scan before the index); -idle: the next candidate is idle; -10pct-eligible: 9 of 10 candidates skipped.'],
    })
  }
  return out
}

function ratioNotes(entries, keys) {
  return keys.map(([label, k]) => `${label}: ${entries.map(([c, r]) => `${r?.[k] ?? '–'}x (${c})`).join(' · ')}`)
}

function fmtNsShort(ns) {
  if (ns < 10) return `${ns.toFixed(2)} ns`
  if (ns < 1000) return `${ns.toFixed(ns < 100 ? 1 : 0)} ns`
  return `${(ns / 1000).toFixed(2)} µs`
}

/** Writes `<name>.svg` for every chart into each directory; returns the files written. */
export function writeCharts(report, dirs) {
  const charts = renderCharts(report)
  const files = []
  for (const dir of dirs) {
    mkdirSync(dir, { recursive: true })
    for (const [name, svg] of Object.entries(charts)) {
      const f = join(dir, `${name}.svg`)
      writeFileSync(f, svg)
      files.push(f)
    }
  }
  return files
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(fileURLToPath(import.meta.url), '../../../..')
  const src = resolve(process.argv[2] ?? join(root, 'bench/results/latest.json'))
  const dir = resolve(process.argv[3] ?? join(root, 'bench/results'))
  for (const f of writeCharts(JSON.parse(readFileSync(src, 'utf8')), [dir])) console.log(`wrote ${f}`)
}
