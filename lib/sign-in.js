'use strict'
// What a provider does when a person has to sign in: tell them where (an event, or a line on
// stderr when nobody listens), and open the browser when asked and when there is one. Nothing
// here waits on the browser: opening is a detached process whose failure is ignored.

const { spawn } = require('node:child_process')

/** A browser can be opened: a desktop session, not CI, not a test run. */
function canOpenBrowser() {
  if (process.env.CI || process.env.JEST_WORKER_ID !== undefined || process.env.RCC_NO_BROWSER) return false
  if (process.platform === 'darwin' || process.platform === 'win32') return true
  return Boolean(process.env.DISPLAY || process.env.WAYLAND_DISPLAY)
}

function openBrowser(url) {
  const [cmd, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]]
  try {
    const child = spawn(cmd, args, { detached: true, stdio: 'ignore' })
    child.on('error', () => {})
    child.unref()
    return true
  } catch {
    return false
  }
}

/**
 * Announces a sign-in step: emits `event` with `payload`, opens `url` when `autoOpen` and a
 * browser is available, and prints `line` to stderr when nobody listens to the event.
 */
function announceSignIn(emitter, event, payload, { url, autoOpen, line }) {
  const opened = autoOpen && url && canOpenBrowser() ? openBrowser(url) : false
  const listened = emitter.emit(event, { ...payload, browserOpened: opened })
  if (!listened) process.stderr.write(`${line}\n`)
  return opened
}

module.exports = { announceSignIn, canOpenBrowser }
