#!/usr/bin/env python3
"""Tables of tools/bench/bench_backends.sh's JSON lines (target/bench/backends.jsonl): per pass and
dtype the median over rounds of the built-in backend, the tch plugin and PyTorch eager (best and
worst in brackets), the built-in backend's speed-up over tch and over its own f32; int8 decoding
against the dtype's own weights, per round; the GEMMs in GFLOP/s; the whole pipeline.

  python3 tools/bench/summarize_backends.py target/bench/backends.jsonl
"""
import json
import statistics
import sys
from collections import defaultdict

PASSES = ["prefill", "decode", "dsr", "itersr", "vq160 encode", "vq160 decode", "vq480 encode",
          "vq480 decode", "pipeline"]
STEPS = 400  # the decoding steps both harnesses time


def key(row):
    """(pass, dtype, implementation) of a timing row, or None for rows of other tables."""
    impl = row.get("backend") or row.get("impl")
    if impl == "pytorch" or impl == "torch":
        impl = "PyTorch"
    if row.get("op") == "gemm":
        return None
    if "model" in row and row.get("model") in ("dsr", "itersr"):
        op = row["model"]
    elif row.get("impl") == "pytorch" and row.get("op") in ("encode", "decode") and "size" in row:
        op = f"vq{row['size']} {row['op']}"
    elif row.get("impl") == "pytorch" and "steps" in row and "op" not in row:
        op = "decode"
    else:
        op = row.get("op")
    if row.get("weights") == "int8" or op == "decode_int8_pair":
        return None
    dtype = {"float32": "f32"}.get(row.get("dtype"), row.get("dtype"))
    return op, dtype, impl


def fmt(op, values):
    if not values:
        return "—"
    med, best, worst = statistics.median(values), min(values), max(values)
    if op == "decode":
        return f"{STEPS / med:.1f} ({STEPS / best:.1f}-{STEPS / worst:.1f}) tok/s"
    return f"{med:.3f} ({best:.3f}-{worst:.3f})"


def main(path):
    rows = [json.loads(l) for l in open(path) if l.startswith("{")]
    times = defaultdict(list)
    for r in rows:
        k = key(r)
        if k:
            times[k].append(r["seconds"])
    print("| pass | dtype | built-in | tch plugin | PyTorch eager | built-in vs tch | built-in bf16 vs f32 |")
    print("|---|---|---|---|---|---|---|")
    for op in PASSES:
        for dtype in ("f32", "bf16"):
            b, t, p = (times.get((op, dtype, i), []) for i in ("built-in", "tch", "PyTorch"))
            if not (b or t or p):
                continue
            vs_tch = f"{statistics.median(t) / statistics.median(b):.2f}×" if b and t else "—"
            b32 = times.get((op, "f32", "built-in"), [])
            vs_f32 = (f"{statistics.median(b32) / statistics.median(b):.2f}×"
                      if dtype == "bf16" and b and b32 else "")
            print(f"| {op} | {dtype} | {fmt(op, b)} | {fmt(op, t)} | {fmt(op, p)} | {vs_tch} | {vs_f32} |")
    # int8 against the dtype's own weights, measured as a pair in the same minutes.
    pair = defaultdict(dict)
    for r in rows:
        if r.get("op") == "decode_int8_pair":
            pair[(r["dtype"], r["bench_round"], r["round"])][r["weights"]] = r["seconds"]
    ratios = defaultdict(list)
    for (dtype, _, _), w in pair.items():
        if "int8" in w and "dtype" in w:
            ratios[dtype].append(w["dtype"] / w["int8"])
    if ratios:
        print()
        print("| decoding (400 steps, batch 1) | int8 weights over the dtype's own, per round | median |")
        print("|---|---|---|")
        for dtype, v in ratios.items():
            print(f"| {dtype} stage | {', '.join(f'{x:.2f}×' for x in v)} | {statistics.median(v):.2f}× |")
    gemm = defaultdict(list)
    for r in rows:
        if r.get("op") == "gemm":
            impl = "PyTorch" if r["impl"] == "pytorch" else f"cogview {r.get('kernels', '')}".strip()
            gemm[(r["m"], r["k"], r["n"], r["dtype"], impl)].append(r["gflops"])
    if gemm:
        print()
        print("| GEMM m × k × n | dtype | implementation | GFLOP/s median (best-worst) |")
        print("|---|---|---|---|")
        for (m, k, n, dtype, impl), v in sorted(gemm.items()):
            print(f"| {m} × {k} × {n} | {dtype} | {impl} | {statistics.median(v):.1f} ({max(v):.1f}-{min(v):.1f}) |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "target/bench/backends.jsonl")
