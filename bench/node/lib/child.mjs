// One contestant in its own process, with the CLI every contestant (Node or not) implements:
//
//   <contestant> --url U1,U2,U3 --requests N --concurrency C [--stream --chunks K]
//                [--scenario S] [--warmup W] [--max-seconds T] --json
//
// and one JSON line on stdout (see stats.mjs). Here: `node child.mjs <rcc|node-stack|fetch> …`,
// which also takes `--burst` (submit all N at once instead of C workers; the queue scenario).
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { summarize } from './stats.mjs'

const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    requests: { type: 'string' },
    concurrency: { type: 'string' },
    stream: { type: 'boolean', default: false },
    chunks: { type: 'string', default: '0' },
    warmup: { type: 'string', default: '0' },
    scenario: { type: 'string', default: '' },
    burst: { type: 'boolean', default: false },
    'max-seconds': { type: 'string', default: '300' },
    json: { type: 'boolean', default: false },
  },
})
const name = positionals[0]
const requests = Number(o.requests)
const concurrency = Number(o.concurrency)
const warmup = Number(o.warmup)
const timeLimitMs = Number(o['max-seconds']) * 1000
if (!name || !o.url || !(requests > 0) || !(concurrency > 0)) {
  console.error('usage: child.mjs <contestant> --url U1,U2 --requests N --concurrency C [--stream --chunks K] [--scenario S] [--warmup W] [--max-seconds T] [--burst] --json')
  process.exit(2)
}
const scenario = [o.scenario, o.stream && Number(o.chunks) > 0 ? `chunks=${o.chunks}` : ''].filter(Boolean).join(',')
const { create } = await import(`../contestants/${name}.mjs`)
const client = await create({
  urls: o.url.split(','),
  concurrency,
  model: scenario ? `mock:${scenario}` : 'gpt-4o-mini',
  timeoutMs: timeLimitMs,
})

const deadline = performance.now() + timeLimitMs
let run // the measured run's counters

function counters() {
  return { ok: 0, errors: 0, latencies: [], ttfb: o.stream ? [] : null, chunks: 0, firstError: null }
}

/** One request (or stream), timed from the call to the answer (to the end of the stream). */
async function one(c, i) {
  const t0 = performance.now()
  try {
    if (o.stream) {
      let n = 0
      await client.stream(i, () => {
        if (n++ === 0) c.ttfb.push(performance.now() - t0)
      })
      c.chunks += n
    } else {
      await client.chat(i)
    }
    c.latencies.push(performance.now() - t0)
    c.ok++
  } catch (err) {
    c.errors++
    c.firstError ??= String(err?.message ?? err).slice(0, 300)
  }
}

/**
 * All `count` requests submitted at once (the queue scenario). Plain `.then` callbacks over a
 * preallocated start-time array rather than an async function per request: the harness's own
 * memory per pending request (~150 bytes instead of ~750) must not dominate the peak RSS that
 * the scenario measures for the contestant. Non-streaming only.
 */
function burst(c, count, offset) {
  const started = new Float64Array(count)
  return new Promise((resolve) => {
    let left = count
    const settled = () => {
      if (--left === 0) resolve()
    }
    const ok = (i) => () => {
      c.latencies.push(performance.now() - started[i])
      c.ok++
      settled()
    }
    const failed = (err) => {
      c.errors++
      c.firstError ??= String(err?.message ?? err).slice(0, 300)
      settled()
    }
    for (let i = 0; i < count; i++) {
      started[i] = performance.now()
      let pending
      try {
        pending = client.chat(offset + i)
      } catch (err) {
        failed(err)
        continue
      }
      pending.then(ok(i), failed)
    }
  })
}

/** `count` operations, `concurrency` at a time (closed loop), or all at once with --burst. */
async function drive(c, count, offset) {
  if (o.burst) return burst(c, count, offset)
  let issued = 0
  const worker = async () => {
    while (issued < count && performance.now() < deadline) await one(c, offset + issued++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
}

function report(c, seconds, cpu, extra = {}) {
  const line = summarize({ ok: c.ok, errors: c.errors, seconds, latencies: c.latencies, ttfb: c.ttfb, chunks: c.chunks, cpu, extra })
  if (c.firstError) line.first_error = c.firstError
  process.stdout.write(`${JSON.stringify(line)}\n`)
}

let t0, cpu0
// A run that outlives its time limit still reports what it did, marked timed_out.
const watchdog = setTimeout(() => {
  report(run ?? counters(), (performance.now() - (t0 ?? performance.now())) / 1000 || 1e-9, process.cpuUsage(cpu0), { timed_out: true })
  process.exit(1)
}, timeLimitMs + 5000)

if (warmup > 0) await drive(counters(), warmup, requests)
run = counters()
cpu0 = process.cpuUsage()
t0 = performance.now()
await drive(run, requests, 0)
const seconds = (performance.now() - t0) / 1000
const cpu = process.cpuUsage(cpu0)
clearTimeout(watchdog)
report(run, seconds, cpu, performance.now() > deadline ? { timed_out: true } : {})
await Promise.race([client.close(), new Promise((r) => setTimeout(r, 2000))])
process.exit(0)
