#!/usr/bin/env python3
"""PyTorch's CPU matrix multiply, the peer of `cogview bench gemm`: C [M x N] = A [M x K] . W^T
with torch.nn.functional.linear (oneDNN / MKL underneath), f32 or bf16, best and median of
--repeats after one warm-up. Prints one JSON line per size. With no --m/--k/--n, the shapes are
cogview's (4096 x 768 . 768 x 3072, the MLP's first product at DSR's size) and a large square one
(4096^3), whose rate is the machine's measured peak for that dtype.

  .venv-ref/bin/python tools/bench/gemm_torch_bench.py --dtype bf16 --threads 2
"""

import argparse
import json
import statistics
import time

import torch


def bench(m, k, n, dtype, repeats):
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(m, k, generator=gen).to(dtype)
    w = torch.randn(n, k, generator=gen).to(dtype)
    torch.nn.functional.linear(a, w)  # warm-up (oneDNN builds its kernel here)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.nn.functional.linear(a, w)
        times.append(time.perf_counter() - t0)
    flops = 2.0 * m * k * n
    return {"impl": "pytorch", "op": "gemm", "m": m, "k": k, "n": n,
            "dtype": {torch.float32: "f32", torch.bfloat16: "bf16"}[dtype],
            "seconds": min(times), "gflops": flops / min(times) / 1e9,
            "gflops_median": flops / statistics.median(times) / 1e9,
            "threads": torch.get_num_threads(), "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="bf16")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--m", type=int)
    ap.add_argument("--k", type=int)
    ap.add_argument("--n", type=int)
    opts = ap.parse_args()
    torch.set_num_threads(opts.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[opts.dtype]
    if opts.m or opts.k or opts.n:
        if not (opts.m and opts.k and opts.n):
            ap.error("give all of --m, --k and --n, or none")
        shapes = [(opts.m, opts.k, opts.n)]
    else:
        shapes = [(4096, 768, 3072), (4096, 4096, 4096)]
    for m, k, n in shapes:
        print(json.dumps(bench(m, k, n, dtype, opts.repeats)), flush=True)


if __name__ == "__main__":
    main()
