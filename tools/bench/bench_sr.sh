#!/usr/bin/env bash
# Super-resolution speed and memory: one DSR pass and one ItersR pass (batch 1, f32), cogview
# (candle, local attention) vs the PyTorch reference with dense masked attention (the CUDA kernel
# does not run on CPUs), same weights, same machine, same run, interleaved.
#
#   bash tools/reference/setup_venv.sh      # once
#   bash tools/bench/bench_sr.sh [REPEATS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
repeats=${1:-2}
rounds=${2:-1}
py=${PYTHON:-.venv-ref/bin/python}
threads=${THREADS:-$(nproc)}
model=target/bench/sr-mid
out=target/bench/sr.jsonl
export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python RAYON_NUM_THREADS=$threads
cargo build --release --quiet
[ -d "$model/dsr" ] || "$py" tools/bench/sr_torch_bench.py --make-model "$model" 2>/dev/null
: > "$out"
for r in $(seq "$rounds"); do
  for which in dsr itersr; do
    if (( r % 2 )); then order="torch candle"; else order="candle torch"; fi
    for impl in $order; do
      if [ "$impl" = torch ]; then
        "$py" tools/bench/sr_torch_bench.py --model "$model" --which "$which" --threads "$threads" \
          --warmup 1 --repeats "$repeats" 2>/dev/null | grep '^{' >> "$out"
      else
        target/release/cogview bench sr --model "$model" --which "$which" --repeats "$repeats" >> "$out"
      fi
    done
  done
done
"$py" - "$out" <<'PY'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = collections.defaultdict(lambda: (float("inf"), 0.0))
for r in rows:
    which = r.get("which") or r.get("model")
    impl = "candle" if r["impl"] == "candle" else "torch"
    peak = r["peak_rss_bytes"] / 2**20 if impl == "candle" else r["peak_rss_mb"]
    k = (which, impl)
    best[k] = (min(best[k][0], r["seconds"]), max(best[k][1], peak))
print("SR passes, 12 layers x 768, batch 1, f32; best time, peak RSS (MiB, includes the weights)")
print("| pass | PyTorch dense s | cogview local s | speed-up | PyTorch peak MiB | cogview peak MiB |")
print("|---|---|---|---|---|---|")
for which in ("dsr", "itersr"):
    (ts, tm), (cs, cm) = best[(which, "torch")], best[(which, "candle")]
    print(f"| {which} | {ts:.2f} | {cs:.2f} | {ts / cs:.2f}x | {tm:.0f} | {cm:.0f} |")
PY
