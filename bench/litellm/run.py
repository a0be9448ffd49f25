#!/usr/bin/env python3
"""LiteLLM Router as a benchmark contestant, with the same CLI and JSON line as bench/rust's loadgen.

    .venv/bin/python run.py --url URL1,URL2,URL3 --requests N --concurrency C
                            [--stream --chunks K] [--scenario S] [--warmup W] [--max-seconds T] [--json]

Each URL is an OpenAI base (http://127.0.0.1:PORT/v1). A `litellm.Router` gets one deployment per
URL, all under model_name "bench" (litellm_params: model "openai/gpt-4o-mini", api_base URL,
api_key "sk-bench"), routing_strategy "simple-shuffle", num_retries 2. C asyncio tasks share a
semaphore of C and call `router.acompletion(...)`; with --stream the async iterator is read to its
end, counting chunks. The rcc-mock scenario (`chunks=K[,S]`) goes in the `x-mock-scenario` header
via `extra_headers`.

Why simple-shuffle: it is LiteLLM's default and its cheapest strategy (weighted random, no
per-request usage bookkeeping; with equal weights it is uniform random). LiteLLM has no plain
round-robin; every other strategy (least-busy, usage-, latency-, cost-based) adds per-request
bookkeeping and would measure a slower Router than the one most users run.

No network besides loopback: the cost map, Anthropic beta-header config, blog posts, autorouter
presets and policy templates are read from the bundled copies (LITELLM_LOCAL_* = True), telemetry
and callbacks are off, and a socket guard installed before LiteLLM is imported refuses (and
counts, in "non_loopback_attempts") any connection or DNS lookup that is not loopback.
"""

import argparse
import asyncio
import ipaddress
import json
import os
import resource
import socket
import sys
import time

# --- Offline before importing LiteLLM --------------------------------------------------------------
for _flag in (
    "LITELLM_LOCAL_MODEL_COST_MAP",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS",
    "LITELLM_LOCAL_BLOG_POSTS",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS",
    "LITELLM_LOCAL_POLICY_TEMPLATES",
):
    os.environ[_flag] = "True"
os.environ.setdefault("LITELLM_LOG", "ERROR")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
for _proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_proxy, None)

NON_LOOPBACK = []


def _loopback_host(host):
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", "localhost.localdomain", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(address, what):
    if isinstance(address, tuple) and address and not _loopback_host(address[0]):
        NON_LOOPBACK.append(f"{what} {address[0]}")
        raise ConnectionRefusedError(f"bench/litellm: non-loopback {what} to {address[0]!r} refused")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_connect(self, address):
    _check(address, "connect")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _check(address, "connect")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    if not _loopback_host(host):
        NON_LOOPBACK.append(f"getaddrinfo {host}")
        raise socket.gaierror(socket.EAI_NONAME, f"bench/litellm: non-loopback lookup of {host!r} refused")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo

import litellm  # noqa: E402  (after the guard and the environment)
from litellm import Router  # noqa: E402

litellm.telemetry = False
litellm.success_callback = []
litellm.failure_callback = []
litellm.callbacks = []
litellm.turn_off_message_logging = True
litellm.suppress_debug_info = True
litellm.set_verbose = False

BODY_MESSAGES = [{"role": "user", "content": "ping"}]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", "--urls", required=True, help="comma-separated OpenAI bases (http://127.0.0.1:PORT/v1)")
    p.add_argument("--requests", "-n", type=int, default=1000)
    p.add_argument("--concurrency", "-c", type=int, default=16)
    p.add_argument("--stream", action="store_true")
    p.add_argument("--chunks", type=int, default=100)
    p.add_argument("--scenario", default=None)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=300.0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    a.urls = [u.strip().rstrip("/") for u in a.url.split(",") if u.strip()]
    if not a.urls or a.requests <= 0 or a.concurrency <= 0 or a.max_seconds <= 0:
        p.error("--url, --requests, --concurrency and --max-seconds must be given and positive")
    for u in a.urls:
        host = u.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if not _loopback_host(host):
            p.error(f"only loopback upstreams are allowed, got {u}")
    return a


def make_router(urls):
    model_list = [
        {
            "model_name": "bench",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": u, "api_key": "sk-bench"},
        }
        for u in urls
    ]
    return Router(model_list=model_list, routing_strategy="simple-shuffle", num_retries=2)


async def one_request(router, stream, headers):
    started = time.perf_counter()
    if not stream:
        resp = await router.acompletion(model="bench", messages=BODY_MESSAGES, extra_headers=headers)
        elapsed = time.perf_counter() - started
        if not resp.choices:
            raise RuntimeError("no choices")
        # LiteLLM returns the whole parsed body: time to first byte is not observable here.
        return elapsed, elapsed, 0
    resp = await router.acompletion(model="bench", messages=BODY_MESSAGES, stream=True, extra_headers=headers)
    chunks = 0
    ttfb = None
    async for _chunk in resp:
        if ttfb is None:
            ttfb = time.perf_counter() - started
        chunks += 1
    elapsed = time.perf_counter() - started
    return elapsed, (ttfb if ttfb is not None else elapsed), chunks


async def phase(router, args, count, headers, deadline):
    sem = asyncio.Semaphore(args.concurrency)
    latencies, ttfbs = [], []
    tally = {"ok": 0, "errors": 0, "chunks": 0, "first_error": None}
    next_index = 0

    async def worker():
        nonlocal next_index
        while True:
            if next_index >= count or time.perf_counter() >= deadline:
                return
            next_index += 1
            async with sem:
                try:
                    total, ttfb, chunks = await one_request(router, args.stream, headers)
                except Exception as e:  # noqa: BLE001 — every failure is counted, the first is shown
                    tally["errors"] += 1
                    if tally["first_error"] is None:
                        tally["first_error"] = f"{type(e).__name__}: {e}"[:300]
                    continue
            tally["ok"] += 1
            tally["chunks"] += chunks
            latencies.append(total)
            ttfbs.append(ttfb)

    await asyncio.gather(*(worker() for _ in range(min(args.concurrency, count))))
    return tally, latencies, ttfbs


def percentile_ms(sorted_s, p):
    if not sorted_s:
        return 0.0
    rank = max(1, -(-len(sorted_s) * p // 100))  # nearest rank, as loadgen
    return sorted_s[int(min(rank, len(sorted_s))) - 1] * 1000.0


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def main_async(args):
    router = make_router(args.urls)
    items = []
    if args.stream:
        items.append(f"chunks={args.chunks}")
    if args.scenario:
        items.append(args.scenario)
    headers = {"x-mock-scenario": ",".join(items)} if items else None
    hard_stop = time.perf_counter() + args.max_seconds
    if args.warmup > 0:
        w, _, _ = await phase(router, args, args.warmup, headers, hard_stop)
        if w["ok"] == 0:
            print(f"run.py: every warm-up request failed; first error: {w['first_error']}", file=sys.stderr)
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    tally, latencies, ttfbs = await phase(router, args, args.requests, headers, hard_stop)
    seconds = time.perf_counter() - t0
    cpu1 = cpu_seconds()
    latencies.sort()
    ttfbs.sort()
    if tally["first_error"]:
        print(f"run.py: {tally['errors']} errors; first: {tally['first_error']}", file=sys.stderr)
    return {
        "requests": tally["ok"] + tally["errors"],
        "ok": tally["ok"],
        "errors": tally["errors"],
        "seconds": round(seconds, 3),
        "rps": round(tally["ok"] / seconds, 1) if seconds > 0 else 0.0,
        "p50_ms": round(percentile_ms(latencies, 50), 3),
        "p99_ms": round(percentile_ms(latencies, 99), 3),
        "ttfb_p50_ms": round(percentile_ms(ttfbs, 50), 3),
        "chunks": tally["chunks"],
        "chunks_per_s": round(tally["chunks"] / seconds, 1) if seconds > 0 else 0.0,
        "cpu_s": round(cpu1 - cpu0, 3),
        # Linux reports ru_maxrss in KiB.
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "tool": f"litellm-{litellm_version()}",
        "concurrency": args.concurrency,
        "stream": args.stream,
        "threads": 1,
        "upstreams": len(args.urls),
        "routing_strategy": "simple-shuffle",
        "non_loopback_attempts": len(NON_LOOPBACK),
    }


def litellm_version():
    try:
        from importlib.metadata import version

        return version("litellm")
    except Exception:  # noqa: BLE001
        return "unknown"


def main(argv):
    args = parse_args(argv)
    report = asyncio.run(main_async(args))
    if NON_LOOPBACK:
        print(f"run.py: refused non-loopback network use: {sorted(set(NON_LOOPBACK))}", file=sys.stderr)
    if args.json:
        print(json.dumps(report))
    else:
        r = report
        print(
            f"{r['requests']} requests ({r['ok']} ok, {r['errors']} errors) in {r['seconds']} s: {r['rps']} req/s, "
            f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, ttfb p50 {r['ttfb_p50_ms']} ms, {r['chunks']} chunks "
            f"({r['chunks_per_s']} /s), cpu {r['cpu_s']} s, max rss {r['max_rss_mb']} MiB"
        )
    return 0 if report["ok"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
