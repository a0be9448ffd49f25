#!/usr/bin/env node
'use strict'
// `npm test`: every test of the project, then one summary line.
//   1. cargo tests of the engine and the mock (crates/*)
//   2. the strict TypeScript check of index.d.ts and the specs
//   3. the jest suite (TypeScript specs against the built addon and the mock over HTTP)
//   4. the benchmark harness smoke check (scripts/bench-smoke.mjs: a reduced `npm run bench --
//      --quick` on the debug addon and mock just built, its report and charts validated; no jest)
// It ends with `N passed, N failed` counting the cargo and jest tests together, plus the smoke
// check as one test.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.resolve(__dirname, '..')
let passed = 0
let failed = 0
let broken = false

function step(title) {
  process.stdout.write(`\n=== ${title}\n`)
}

step('cargo test --workspace')
const cargoArgs = ['test', '--workspace']
if (process.env.CI) cargoArgs.push('--locked')
const cargo = spawnSync('cargo', cargoArgs, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 256 << 20 })
process.stdout.write(cargo.stdout || '')
for (const m of (cargo.stdout || '').matchAll(/^test result: \w+\. (\d+) passed; (\d+) failed/gm)) {
  passed += Number(m[1])
  failed += Number(m[2])
}
if (cargo.status !== 0) broken = true

step('tsc --noEmit (strict) over index.d.ts, mock.d.ts and the specs')
const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '--noEmit', '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' })
if (tsc.status !== 0) {
  broken = true
  failed += 1
}

step('jest')
const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rcc-jest-')), 'report.json')
const jest = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '--ci', '--json', `--outputFile=${report}`], { cwd: root, stdio: 'inherit' })
if (fs.existsSync(report)) {
  const r = JSON.parse(fs.readFileSync(report, 'utf8'))
  passed += r.numPassedTests
  failed += r.numFailedTests
  // A suite that failed to load counts no tests: count it as a failure.
  failed += r.numRuntimeErrorTestSuites || 0
} else {
  failed += 1
}
if (jest.status !== 0) broken = true

step('bench smoke (scripts/bench-smoke.mjs)')
// It limits itself to 300 s (BENCH_SMOKE_LIMIT) and kills the run; this is the backstop.
const smoke = spawnSync(process.execPath, [path.join(root, 'scripts', 'bench-smoke.mjs')], { cwd: root, stdio: 'inherit', timeout: 360_000, killSignal: 'SIGKILL' })
if (smoke.status === 0) {
  passed += 1
} else {
  failed += 1
  broken = true
  console.log(`bench smoke failed (${smoke.error ? smoke.error.message : smoke.signal ? `killed by ${smoke.signal}` : `exit ${smoke.status}`}); see above`)
}

console.log(`\n${passed} passed, ${failed} failed`)
process.exit(broken || failed > 0 ? 1 : 0)
