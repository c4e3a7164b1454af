#!/usr/bin/env bash
# Stage-1 decoding speed: cogview (candle) vs PyTorch eager (SwissArmyTransformer) on the same
# weights, same machine, same run, interleaved. Writes target/bench/coglm.jsonl and prints a table.
#
#   bash tools/reference/setup_venv.sh      # once: the PyTorch reference
#   bash tools/bench/bench_coglm.sh [STEPS] [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/../.."
steps=${1:-128}
repeats=${2:-2}
py=${PYTHON:-.venv-ref/bin/python}
threads=${THREADS:-$(nproc)}
model=target/bench/coglm-mid
out=target/bench/coglm.jsonl
export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python RAYON_NUM_THREADS=$threads
cargo build --release --quiet
[ -f "$model/latest" ] || "$py" tools/bench/coglm_torch_bench.py --make-model "$model" 2>/dev/null
: > "$out"
for r in $(seq "$repeats"); do
  for dtype in f32 bf16; do
    for batch in 1 8; do
      # Alternate which implementation goes first so drift on a shared machine hits both.
      if (( r % 2 )); then order="torch candle"; else order="candle torch"; fi
      for impl in $order; do
        if [ "$impl" = torch ]; then
          "$py" tools/bench/coglm_torch_bench.py --model "$model" --batch "$batch" --dtype "$dtype" \
            --steps "$steps" --threads "$threads" 2>/dev/null | tail -n 1 >> "$out"
        else
          target/release/cogview bench coglm --model "$model" --batch "$batch" --dtype "$dtype" --steps "$steps" >> "$out"
        fi
      done
    done
  done
done
"$py" - "$out" <<'PY'
import json, sys, collections, platform
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = collections.defaultdict(float)
for r in rows:
    k = (r["dtype"], r["batch"], r["impl"])
    best[k] = max(best[k], r["tokens_per_s"])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
print(f"CogLM 12x768, 12 heads, stage-1 incremental decoding; {cpu}; best of runs")
print("| dtype | batch | PyTorch tok/s | cogview tok/s | cogview / PyTorch |")
print("|---|---|---|---|---|")
for dtype in ("f32", "bf16"):
    for batch in (1, 8):
        t, c = best[(dtype, batch, "pytorch")], best[(dtype, batch, "candle")]
        print(f"| {dtype} | {batch} | {t:.1f} | {c:.1f} | {c / t:.2f}x |")
PY
