// What the numbers were measured on: machine, runtime, package versions, addon build profile.
import os from 'node:os'
import { execFileSync } from 'node:child_process'
import { openSync, readSync, closeSync, readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'

/** 'debug' when the ELF file has a `.debug_info` section (the release profile has none), else 'release'. */
export function addonProfile(file) {
  const fd = openSync(file, 'r')
  try {
    const read = (pos, len) => {
      const b = Buffer.alloc(len)
      readSync(fd, b, 0, len, pos)
      return b
    }
    const h = read(0, 64)
    if (h.readUInt32BE(0) !== 0x7f454c46 || h[4] !== 2) return 'unknown'
    const shoff = Number(h.readBigUInt64LE(0x28))
    const [shentsize, shnum, shstrndx] = [h.readUInt16LE(0x3a), h.readUInt16LE(0x3c), h.readUInt16LE(0x3e)]
    const strtab = read(shoff + shstrndx * shentsize, shentsize)
    const names = read(Number(strtab.readBigUInt64LE(0x18)), Number(strtab.readBigUInt64LE(0x20))).toString('latin1')
    return names.includes('.debug_info') ? 'debug' : 'release'
  } catch {
    return 'unknown'
  } finally {
    closeSync(fd)
  }
}

const version = (root, pkg) => {
  try {
    return JSON.parse(readFileSync(join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version
  } catch {
    return null
  }
}

const run = (cmd, args) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim()
  } catch {
    return null
  }
}

/** `name = "x"\nversion = "1.2.3"` in a Cargo.lock. */
const locked = (lock, name) => new RegExp(`name = "${name}"\\nversion = "([^"]+)"`).exec(lock)?.[1] ?? null

/** The versions of every contestant and tool: rcc-pipeline, the Node packages, the Rust floor's crates, LiteLLM. */
export function versions(root) {
  let lock = ''
  try {
    lock = readFileSync(join(root, 'bench/rust/Cargo.lock'), 'utf8')
  } catch {}
  let litellm = null
  let python = null
  try {
    const lib = join(root, 'bench/litellm/.venv/lib')
    const py = readdirSync(lib).find((d) => d.startsWith('python'))
    python = py?.slice(6) ?? null
    litellm = readdirSync(join(lib, py, 'site-packages')).map((d) => /^litellm-([\d.]+)\.dist-info$/.exec(d)?.[1]).find(Boolean) ?? null
  } catch {}
  let self = null
  try {
    self = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version
  } catch {}
  return {
    'rcc-pipeline': self,
    ...Object.fromEntries(['openai', 'p-queue', 'cockatiel'].map((p) => [p, version(root, p)])),
    rustc: run('rustc', ['--version'])?.split(' ')[1] ?? null,
    'loadgen reqwest': locked(lock, 'reqwest'),
    'loadgen tokio': locked(lock, 'tokio'),
    criterion: locked(lock, 'criterion'),
    litellm,
    'litellm python': python,
  }
}

export function machine(root, addonFile) {
  let commit = null
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {}
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memory_gb: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    load_avg_1m: Number(os.loadavg()[0].toFixed(2)),
    addon: { file: addonFile, profile: addonProfile(addonFile) },
    packages: Object.fromEntries(['openai', 'p-queue', 'cockatiel'].map((p) => [p, version(root, p)])),
    versions: versions(root),
    commit,
  }
}
