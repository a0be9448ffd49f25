// Percentiles and the one JSON line every contestant prints (the external CLI contract).

/** Nearest-rank percentile of an ascending array (ms); null when empty. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]
}

const round = (x, digits = 3) => (x == null || !Number.isFinite(x) ? null : Number(x.toFixed(digits)))

/**
 * The result line: `{requests, ok, errors, seconds, rps, p50_ms, p99_ms, cpu_s, max_rss_mb}`
 * (`requests` = ok + errors, what was done), plus for streams `{chunks, chunks_per_s,
 * ttfb_p50_ms, ttfb_p99_ms}` (ttfb: the call to the first parsed chunk in the caller's hands).
 */
export function summarize({ ok, errors, seconds, latencies, ttfb, chunks, cpu, extra }) {
  const lat = Float64Array.from(latencies).sort()
  const out = {
    requests: ok + errors,
    ok,
    errors,
    seconds: round(seconds, 4),
    rps: round(ok / seconds, 1),
    p50_ms: round(percentile(lat, 50)),
    p99_ms: round(percentile(lat, 99)),
    cpu_s: round((cpu.user + cpu.system) / 1e6, 3),
    max_rss_mb: round(process.resourceUsage().maxRSS / 1024, 1),
  }
  if (ttfb) {
    const t = Float64Array.from(ttfb).sort()
    Object.assign(out, { chunks, chunks_per_s: round(chunks / seconds, 0), ttfb_p50_ms: round(percentile(t, 50)), ttfb_p99_ms: round(percentile(t, 99)) })
  }
  return Object.assign(out, extra)
}
