//! `loadgen` — the machine's floor: a plain reqwest load client (no napi, no scheduling) that
//! sends OpenAI chat requests round-robin over one or more upstreams.
//!
//! ```text
//! loadgen --url URL1[,URL2,...] --requests N --concurrency C
//!         [--stream --chunks K] [--scenario S] [--warmup W] [--max-seconds T]
//!         [--threads T] [--json]
//! ```
//!
//! Each URL is an OpenAI base (`http://127.0.0.1:PORT/v1`); requests go to
//! `POST {url}/chat/completions`. With `--stream` the body has `"stream":true`, the header
//! `x-mock-scenario: chunks=K[,S]` asks an rcc-mock upstream for K content chunks, and the SSE
//! stream is read to `data: [DONE]`, every event parsed as JSON. Without it the whole JSON
//! body is parsed. `--warmup W` requests run first and are not counted. The run stops after N
//! requests or `--max-seconds` (default 300), whichever comes first.
//!
//! Output (one line with `--json`):
//! `{"requests","ok","errors","seconds","rps","p50_ms","p99_ms","ttfb_p50_ms","chunks",
//!   "chunks_per_s","cpu_s","max_rss_mb", ...}` — `cpu_s` is this process's user+system CPU
//! during the measured phase (getrusage), `max_rss_mb` its peak resident set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

struct Args {
    urls: Vec<String>,
    requests: u64,
    concurrency: usize,
    stream: bool,
    chunks: u64,
    scenario: Option<String>,
    warmup: u64,
    max_seconds: f64,
    threads: usize,
    json: bool,
}

const USAGE: &str = "usage: loadgen --url URL1[,URL2,...] --requests N --concurrency C [--stream --chunks K] [--scenario S] [--warmup W] [--max-seconds T] [--threads T] [--json]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        urls: Vec::new(),
        requests: 1000,
        concurrency: 16,
        stream: false,
        chunks: 100,
        scenario: None,
        warmup: 0,
        max_seconds: 300.0,
        threads: 1,
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |n: &str| inline.clone().or_else(|| it.next()).ok_or_else(|| format!("{n} needs a value"));
        fn num<T: std::str::FromStr>(n: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{n} needs a number, got {v:?}"))
        }
        match name.as_str() {
            "--url" | "--urls" => a.urls.extend(value(&name)?.split(',').map(|s| s.trim().trim_end_matches('/').to_string()).filter(|s| !s.is_empty())),
            "--requests" | "-n" => a.requests = num(&name, value(&name)?)?,
            "--concurrency" | "-c" => a.concurrency = num(&name, value(&name)?)?,
            "--stream" => a.stream = true,
            "--chunks" => a.chunks = num(&name, value(&name)?)?,
            "--scenario" => a.scenario = Some(value(&name)?),
            "--warmup" => a.warmup = num(&name, value(&name)?)?,
            "--max-seconds" => a.max_seconds = num(&name, value(&name)?)?,
            "--threads" => a.threads = num(&name, value(&name)?)?,
            "--json" => a.json = true,
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.urls.is_empty() {
        return Err(format!("--url is required\n{USAGE}"));
    }
    if a.concurrency == 0 || a.requests == 0 {
        return Err("--requests and --concurrency must be positive".into());
    }
    if !(a.max_seconds > 0.0) {
        return Err("--max-seconds must be positive".into());
    }
    if a.threads == 0 {
        a.threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    }
    Ok(a)
}

/// What one finished request measured.
#[derive(Default)]
struct Sample {
    ok: bool,
    total_us: u64,
    ttfb_us: u64,
    chunks: u64,
}

/// Per-worker results, merged at the end.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    ttfb_us: Vec<u64>,
    ok: u64,
    errors: u64,
    chunks: u64,
    first_error: Option<String>,
}

struct Target {
    url: String,
    /// The request body, serialized once (a cheap reference-counted clone per request).
    body: bytes::Bytes,
}

async fn one_request(client: &reqwest::Client, t: &Target, scenario: Option<&str>, stream: bool) -> Result<Sample, String> {
    let started = Instant::now();
    let mut rb = client
        .post(&t.url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-bench")
        .body(t.body.clone());
    if let Some(s) = scenario {
        rb = rb.header("x-mock-scenario", s);
    }
    let resp = rb.send().await.map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()));
    }
    if !stream {
        let ttfb = started.elapsed();
        let body = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| format!("json: {e}"))?;
        if v.get("choices").and_then(Value::as_array).is_none() {
            return Err(format!("no choices in {}", String::from_utf8_lossy(&body).chars().take(200).collect::<String>()));
        }
        return Ok(Sample { ok: true, total_us: started.elapsed().as_micros() as u64, ttfb_us: ttfb.as_micros() as u64, chunks: 0 });
    }
    // SSE: split on newlines, parse each `data:` event until `[DONE]`.
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunks = 0u64;
    let mut ttfb: Option<Duration> = None;
    let mut done = false;
    'read: while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| format!("stream: {e}"))?;
        buf.extend_from_slice(&piece);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + pos];
            start += pos + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(data) = line.strip_prefix(b"data:") else { continue };
            let data = data.strip_prefix(b" ").unwrap_or(data);
            if data == b"[DONE]" {
                done = true;
                break 'read;
            }
            let v: Value = serde_json::from_slice(data).map_err(|e| format!("chunk json: {e}"))?;
            if v.get("error").is_some() {
                return Err(format!("error event: {v}"));
            }
            if ttfb.is_none() {
                ttfb = Some(started.elapsed());
            }
            chunks += 1;
        }
        buf.drain(..start);
    }
    if !done {
        return Err("stream ended without [DONE]".into());
    }
    Ok(Sample { ok: true, total_us: started.elapsed().as_micros() as u64, ttfb_us: ttfb.unwrap_or_else(|| started.elapsed()).as_micros() as u64, chunks })
}

/// Runs `count` requests with `concurrency` workers, stopping early at `deadline`.
async fn phase(client: reqwest::Client, targets: Arc<Vec<Target>>, scenario: Option<Arc<str>>, stream: bool, count: u64, concurrency: usize, deadline: Instant) -> Tally {
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.min(count as usize) {
        let (client, targets, scenario, next) = (client.clone(), targets.clone(), scenario.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let mut t = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count || Instant::now() >= deadline {
                    break;
                }
                let target = &targets[(i % targets.len() as u64) as usize];
                match one_request(&client, target, scenario.as_deref(), stream).await {
                    Ok(s) if s.ok => {
                        t.ok += 1;
                        t.chunks += s.chunks;
                        t.latencies_us.push(s.total_us);
                        t.ttfb_us.push(s.ttfb_us);
                    }
                    Ok(_) => t.errors += 1,
                    Err(e) => {
                        t.errors += 1;
                        t.first_error.get_or_insert(e);
                    }
                }
            }
            t
        }));
    }
    let mut all = Tally::default();
    for h in handles {
        let t = h.await.expect("worker panicked");
        all.ok += t.ok;
        all.errors += t.errors;
        all.chunks += t.chunks;
        all.latencies_us.extend(t.latencies_us);
        all.ttfb_us.extend(t.ttfb_us);
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    all
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil().max(1.0) as usize;
    sorted_us[rank.min(sorted_us.len()) - 1] as f64 / 1000.0
}

/// (user+system CPU seconds, peak RSS in MiB) of this process.
fn rusage() -> (f64, f64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports ru_maxrss in KiB.
    (tv(ru.ru_utime) + tv(ru.ru_stime), ru.ru_maxrss as f64 / 1024.0)
}

fn round(x: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (x * m).round() / m
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build()
    }
    .expect("tokio runtime");

    let mut body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ping"}]});
    if args.stream {
        body["stream"] = true.into();
    }
    let body = bytes::Bytes::from(serde_json::to_vec(&body).expect("body"));
    let targets: Arc<Vec<Target>> = Arc::new(args.urls.iter().map(|u| Target { url: format!("{u}/chat/completions"), body: body.clone() }).collect());
    let scenario: Option<Arc<str>> = {
        let mut items: Vec<String> = Vec::new();
        if args.stream {
            items.push(format!("chunks={}", args.chunks));
        }
        if let Some(s) = &args.scenario {
            items.push(s.clone());
        }
        (!items.is_empty()).then(|| items.join(",").into())
    };

    let report = rt.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client");
        let hard_stop = Instant::now() + Duration::from_secs_f64(args.max_seconds);
        if args.warmup > 0 {
            let w = phase(client.clone(), targets.clone(), scenario.clone(), args.stream, args.warmup, args.concurrency, hard_stop).await;
            if w.ok == 0 {
                eprintln!("loadgen: every warm-up request failed; first error: {}", w.first_error.unwrap_or_default());
            }
        }
        let (cpu0, _) = rusage();
        let t0 = Instant::now();
        let mut tally = phase(client, targets, scenario, args.stream, args.requests, args.concurrency, hard_stop).await;
        let seconds = t0.elapsed().as_secs_f64();
        let (cpu1, max_rss_mb) = rusage();
        tally.latencies_us.sort_unstable();
        tally.ttfb_us.sort_unstable();
        let done = tally.ok + tally.errors;
        if let Some(e) = &tally.first_error {
            eprintln!("loadgen: {} errors; first: {e}", tally.errors);
        }
        json!({
            "requests": done,
            "ok": tally.ok,
            "errors": tally.errors,
            "seconds": round(seconds, 3),
            "rps": round(tally.ok as f64 / seconds, 1),
            "p50_ms": round(percentile_ms(&tally.latencies_us, 50.0), 3),
            "p99_ms": round(percentile_ms(&tally.latencies_us, 99.0), 3),
            "ttfb_p50_ms": round(percentile_ms(&tally.ttfb_us, 50.0), 3),
            "chunks": tally.chunks,
            "chunks_per_s": round(tally.chunks as f64 / seconds, 1),
            "cpu_s": round(cpu1 - cpu0, 3),
            "max_rss_mb": round(max_rss_mb, 1),
            "tool": "loadgen",
            "concurrency": args.concurrency,
            "stream": args.stream,
            "threads": args.threads,
            "upstreams": args.urls.len(),
        })
    });
    if args.json {
        println!("{report}");
    } else {
        let g = |k: &str| report[k].clone();
        println!(
            "{} requests ({} ok, {} errors) in {} s: {} req/s, p50 {} ms, p99 {} ms, ttfb p50 {} ms, {} chunks ({} /s), cpu {} s, max rss {} MiB",
            g("requests"), g("ok"), g("errors"), g("seconds"), g("rps"), g("p50_ms"), g("p99_ms"), g("ttfb_p50_ms"), g("chunks"), g("chunks_per_s"), g("cpu_s"), g("max_rss_mb")
        );
    }
    if report["ok"].as_u64() == Some(0) {
        std::process::exit(1);
    }
}
