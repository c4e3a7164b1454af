#!/usr/bin/env bash
# Image tokenizer speed: cogview (candle) vs PyTorch eager (icetk's own VQ-VAE classes) on the same
# official-size random weights, same machine, same run, interleaved. Writes target/bench/vq.jsonl
# and prints a table.
#
#   bash tools/reference/setup_venv.sh      # once: the PyTorch reference
#   bash tools/bench/bench_vq.sh [REPEATS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
repeats=${1:-3}
rounds=${2:-2}
py=${PYTHON:-.venv-ref/bin/python}
threads=${THREADS:-$(nproc)}
model=target/bench/vq/ice_image.pt
image=tests/fixtures/icetk/images/cute_girl.jpg
out=target/bench/vq.jsonl
export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python RAYON_NUM_THREADS=$threads
cargo build --release --quiet
[ -f "$model" ] || "$py" tools/bench/vq_torch_bench.py --make-model "$model" 2>/dev/null
: > "$out"
for r in $(seq "$rounds"); do
  for size in 160 480; do
    if (( r % 2 )); then order="torch candle"; else order="candle torch"; fi
    for impl in $order; do
      if [ "$impl" = torch ]; then
        "$py" tools/bench/vq_torch_bench.py --model "$model" --size "$size" --threads "$threads" \
          --repeats "$repeats" 2>/dev/null | grep '^{' >> "$out"
      else
        target/release/cogview bench vq --tokenizer "$model" --image "$image" --size "$size" --repeats "$repeats" >> "$out"
      fi
    done
  done
done
"$py" - "$out" <<'PY'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
best = collections.defaultdict(lambda: float("inf"))
for r in rows:
    k = (r["size"], r["op"], r["impl"])
    best[k] = min(best[k], r["seconds"])
print("icetk VQ-VAE (official sizes, random weights), f32, batch 1, compression 8; best of runs")
print("| image | op | PyTorch s | cogview s | PyTorch / cogview |")
print("|---|---|---|---|---|")
for size in (160, 480):
    for op in ("encode", "decode"):
        t, c = best[(size, op, "pytorch")], best[(size, op, "candle")]
        print(f"| {size} px | {op} | {t:.3f} | {c:.3f} | {t / c:.2f}x |")
PY
