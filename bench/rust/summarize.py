#!/usr/bin/env python3
"""Prints one line per criterion benchmark: its id and the median time per iteration, read from
target/criterion/**/new/estimates.json (written by `cargo bench`). Usage: python3 summarize.py [FILTER]"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent / "target" / "criterion"
flt = sys.argv[1] if len(sys.argv) > 1 else ""


def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3f} {unit}"
    return f"{ns:.2f} ns"


rows = []
for est in sorted(root.glob("**/new/estimates.json")):
    bench = json.loads((est.parent / "benchmark.json").read_text())
    full_id = bench.get("full_id") or "/".join(est.parent.parent.relative_to(root).parts)
    if flt in full_id:
        rows.append((full_id, json.loads(est.read_text())["median"]["point_estimate"]))
if not rows:
    sys.exit(f"no criterion results under {root} (run `cargo bench` first)")
width = max(len(r[0]) for r in rows)
for full_id, median in rows:
    print(f"{full_id:<{width}}  {fmt(median):>12}")
