#!/usr/bin/env node
// The benchmark harness's smoke check (the last step of `npm test`, so the harness cannot rot):
// a reduced `bench/node/run.mjs --quick` run into a temporary directory, then checks of what it
// wrote. It does not judge the numbers (the addon is usually a debug build), only that every
// scenario ran: a row for every contestant that ran, ok == requests, zero lost in the queue
// scenario, engine results, the goals, the phases, and well-formed SVG charts.
//
//   node scripts/bench-smoke.mjs [runner options…]     e.g. --addon /path/to/release.node
//
// Extra options go to the runner after the smoke's own (later ones win). BENCH_SMOKE_KEEP=1
// keeps the temporary directory. Exit 0 when every check passed; otherwise the failed checks
// are printed.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const LIMIT_S = Number(process.env.BENCH_SMOKE_LIMIT ?? 300) // the whole run is killed after this

// What runs. The Node contestants always; the Rust floor and LiteLLM only when already there
// (--no-setup: no network, no release build of bench/rust in the test run).
const CONTESTANTS = ['fetch', 'rcc', 'node-stack', 'rust', 'litellm']
const EXTERNAL = new Set(['rust', 'litellm'])
// The engine scenario needs a release build of bench/rust (criterion, reqwest, rcc-core): minutes
// from scratch, so the smoke runs it only when that build is already there (an earlier
// `npm run bench`), incrementally; BENCH_SMOKE_ENGINE=1 forces it, =0 leaves it out.
const engineBuilt = () => {
  try {
    return readdirSync(join(ROOT, 'bench/rust/target/release/deps')).some((f) => /^engine-[0-9a-f]+$/.test(f))
  } catch {
    return false
  }
}
const withEngine = process.env.BENCH_SMOKE_ENGINE ? process.env.BENCH_SMOKE_ENGINE === '1' : engineBuilt()
const SCENARIOS = ['throughput', 'latency', 'stream', 'queue', ...(withEngine ? ['engine'] : [])]
const SMOKE_ARGS = [
  '--quick',
  '--no-build', // the addon npm test's pretest built (debug), or --addon
  '--no-setup',
  '--mock-profile', 'debug', // target/debug/rcc-mock, built by `cargo test --workspace`
  '--no-mock-build', // … used as is (built only when absent)
  '--no-charts-dir',
  '--scenarios', SCENARIOS.join(','),
  '--contestants', CONTESTANTS.join(','),
  '--throughput-requests', '400',
  '--throughput-concurrency', '16',
  '--throughput-rounds', '2', // interleaved rounds, the median reported
  '--latency-requests', '100',
  '--streams', '8',
  '--stream-chunks', '50',
  '--stream-warmup', '2',
  '--queue-requests', '2000',
  '--warmup', '20',
  '--litellm-requests', '200', // LiteLLM's share of the throughput requests
  '--max-seconds', '60',
  '--engine-warm-up', '0.05',
  '--engine-measurement', '0.1',
  '--engine-resamples', '100',
]

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'rcc-bench-smoke-'))
  const out = join(dir, 'smoke.json')
  const args = [join(ROOT, 'bench/node/run.mjs'), ...SMOKE_ARGS, '--out', out, ...process.argv.slice(2)]
  const optionAfter = (name, fallback) => {
    const i = args.lastIndexOf(name)
    return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback
  }
  const t0 = performance.now()
  if (!withEngine && !args.includes('--scenarios', SMOKE_ARGS.length)) console.log('engine scenario left out: bench/rust has no release build yet (run `npm run bench` once, or BENCH_SMOKE_ENGINE=1)')
  console.log(`$ node ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}`)

  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], detached: true })
  let killed = false
  const killer = setTimeout(() => {
    killed = true
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {}
  }, LIMIT_S * 1000)
  const code = await new Promise((res) => {
    child.once('error', () => res(-1))
    child.once('close', (c) => res(c))
  })
  clearTimeout(killer)
  const seconds = ((performance.now() - t0) / 1000).toFixed(1)

  const problems = []
  const check = (cond, what) => {
    if (!cond) problems.push(what)
    return !!cond
  }
  check(!killed, `the run did not finish within ${LIMIT_S} s (killed)`)
  check(code === 0, `the runner exited ${code}`)

  let report = null
  if (check(existsSync(out), `no report at ${out}`)) {
    try {
      report = JSON.parse(readFileSync(out, 'utf8'))
    } catch (err) {
      check(false, `the report is not JSON: ${err.message}`)
    }
  }

  if (report) {
    const requested = optionAfter('--scenarios', '').split(',').filter(Boolean)
    const contestants = optionAfter('--contestants', '').split(',').filter(Boolean)
    const sc = report.scenarios ?? {}
    const ids = []
    for (const kind of requested) {
      if (kind === 'throughput') for (const c of optionAfter('--throughput-concurrency', '').split(',')) ids.push([`throughput_c${c}`, kind])
      else ids.push([kind, kind])
    }
    for (const [id, kind] of ids) {
      const s = sc[id]
      if (!check(s, `scenario ${id}: missing from the report`)) continue
      if (kind === 'engine') {
        check(s.status === 'ok', `engine: ${s.status}${s.reason ? ` (${s.reason})` : ''}`)
        const n = Object.keys(s.results ?? {}).length
        check(n > 0, 'engine: no criterion results')
        const sel = Object.values(s.tables?.select ?? {}).flatMap((r) => Object.values(r)).filter((v) => v != null)
        check(sel.length > 0, 'engine: no select/* results')
        continue
      }
      const expected = kind === 'queue' ? contestants.filter((c) => c === 'rcc' || c === 'node-stack') : contestants
      for (const name of expected) {
        const r = s.results?.[name]
        if (!check(r, `${id}: no row for ${name}`)) continue
        if (r.status === 'skipped' && EXTERNAL.has(name)) continue // not set up on this machine: fine
        if (!check(r.status === 'ok', `${id}: ${name} ${r.status}${r.reason ? ` (${r.reason})` : ''}${r.first_error ? `: ${r.first_error}` : ''}`)) continue
        const requests = s.params.requests_of?.[name] ?? s.params.requests
        check(r.ok === requests && r.errors === 0, `${id}: ${name} ok ${r.ok} / errors ${r.errors} of ${requests} requests`)
        if (kind === 'queue') check(r.lost === 0, `${id}: ${name} lost ${r.lost}`)
        if (kind === 'stream') check(r.chunks === r.ok * (s.params.chunks + 2), `${id}: ${name} received ${r.chunks} chunks, expected ${r.ok * (s.params.chunks + 2)}`)
      }
    }
    check(Array.isArray(report.goals) && report.goals.length >= 10 && report.goals.every((g) => g.goal && 'met' in g && 'measured' in g), 'goals: missing or malformed')
    check(Array.isArray(report.phases) && report.phases.length > 0, 'phases: missing')
    check(report.representative === false || report.options?.quick === false, 'a --quick run must be marked not representative')
    // One well-formed SVG per scenario kind, next to the report.
    for (const kind of new Set(ids.map(([, k]) => k))) {
      const f = join(dirname(out), `${kind}.svg`)
      if (!check(existsSync(f), `chart ${kind}.svg: missing`)) continue
      const svg = readFileSync(f, 'utf8')
      const x = checkXml(svg)
      check(x.ok, `chart ${kind}.svg: not well-formed XML: ${x.error}`)
      check(!x.ok || x.root === 'svg', `chart ${kind}.svg: root element is <${x.root}>, not <svg>`)
    }
  }

  if (problems.length) {
    console.log(`\nbench smoke FAILED after ${seconds} s (report and charts kept in ${dir}):\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    process.exit(1)
  }
  if (!process.env.BENCH_SMOKE_KEEP) rmSync(dir, { recursive: true, force: true })
  console.log(`\nbench smoke passed in ${seconds} s${process.env.BENCH_SMOKE_KEEP ? ` (kept in ${dir})` : ''}`)
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) await main()

/**
 * A strict well-formedness check of an XML document (no DTD): one root element, matched tags,
 * quoted and unique attributes, known entities, no stray `<` or `&`. `{ok, error?, root?}`
 */
export function checkXml(doc) {
  const NAME = /[A-Za-z_:][\w.:-]*/y
  const ENTITY = /&(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);/y
  let i = 0
  let root = null
  const stack = []
  const fail = (msg) => ({ ok: false, error: `${msg} at offset ${i}: ${JSON.stringify(doc.slice(i, i + 40))}` })
  const name = () => {
    NAME.lastIndex = i
    const m = NAME.exec(doc)
    if (!m) return null
    i += m[0].length
    return m[0]
  }
  const ws = () => {
    while (i < doc.length && /\s/.test(doc[i])) i++
  }
  const chars = (end) => {
    // text or an attribute value up to `end`: `&` only as an entity, never `<`
    while (i < doc.length && !end(doc[i])) {
      if (doc[i] === '<') return false
      if (doc[i] === '&') {
        ENTITY.lastIndex = i
        const m = ENTITY.exec(doc)
        if (!m) return false
        i += m[0].length
      } else i++
    }
    return true
  }
  if (doc.charCodeAt(0) === 0xfeff) i = 1
  if (doc.startsWith('<?xml', i)) {
    const e = doc.indexOf('?>', i)
    if (e < 0) return fail('unterminated XML declaration')
    i = e + 2
  }
  while (i < doc.length) {
    if (doc.startsWith('<!--', i)) {
      const e = doc.indexOf('-->', i + 4)
      if (e < 0) return fail('unterminated comment')
      i = e + 3
    } else if (doc.startsWith('<![CDATA[', i)) {
      if (!stack.length) return fail('CDATA outside the root element')
      const e = doc.indexOf(']]>', i)
      if (e < 0) return fail('unterminated CDATA')
      i = e + 3
    } else if (doc.startsWith('<?', i)) {
      const e = doc.indexOf('?>', i)
      if (e < 0) return fail('unterminated processing instruction')
      i = e + 2
    } else if (doc.startsWith('<!', i)) {
      return fail('DOCTYPE / declarations are not expected')
    } else if (doc.startsWith('</', i)) {
      i += 2
      const n = name()
      if (!n) return fail('bad end tag')
      ws()
      if (doc[i] !== '>') return fail('bad end tag')
      i++
      const open = stack.pop()
      if (open !== n) return fail(`</${n}> closes <${open ?? 'nothing'}>`)
    } else if (doc[i] === '<') {
      i++
      const n = name()
      if (!n) return fail('bad start tag')
      if (!stack.length) {
        if (root) return fail('a second root element')
        root = n
      }
      const seen = new Set()
      for (;;) {
        const before = i
        ws()
        if (doc.startsWith('/>', i)) {
          i += 2
          break
        }
        if (doc[i] === '>') {
          i++
          stack.push(n)
          break
        }
        if (i === before) return fail(`no space before an attribute in <${n}>`)
        const a = name()
        if (!a) return fail(`bad attribute in <${n}>`)
        if (seen.has(a)) return fail(`duplicate attribute ${a} in <${n}>`)
        seen.add(a)
        ws()
        if (doc[i] !== '=') return fail(`attribute ${a} without a value`)
        i++
        ws()
        const q = doc[i]
        if (q !== '"' && q !== "'") return fail(`unquoted attribute ${a}`)
        i++
        if (!chars((c) => c === q) || doc[i] !== q) return fail(`bad value of attribute ${a}`)
        i++
      }
    } else {
      const start = i
      if (!chars((c) => c === '<')) return fail('stray & or < in text')
      if (!stack.length && doc.slice(start, i).trim()) return fail('text outside the root element')
    }
  }
  if (stack.length) return fail(`unclosed <${stack[stack.length - 1]}>`)
  if (!root) return fail('no root element')
  return { ok: true, root }
}
