#!/usr/bin/env bash
# CogLM decoding (the memory-bound stage-1 steps) with int8 weights against the stage's own dtype,
# same weights, same process settings, interleaved rounds. Writes target/bench/int8.jsonl and
# prints, per batch, the median tokens/s of each configuration (min-max over the rounds) and the
# median of the per-round ratios int8 / bf16 weights.
#
#   bash tools/bench/bench_int8.sh [ROUNDS] [STEPS]
#
# The model is target/bench/coglm-mid (12 layers x 768, vocabulary 150003; tools/bench/bench_coglm.sh
# or `coglm_torch_bench.py --make-model` make it). `--weights int8` is the CLI form of a pipeline
# stage's `options = { weights = "int8" }`.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
steps=${2:-128}
model=${MODEL:-target/bench/coglm-mid}
out=target/bench/int8.jsonl
cargo build --release --quiet -p cogview-cli
[ -e "$model" ] || { echo "no $model: make it with tools/bench/coglm_torch_bench.py --make-model $model" >&2; exit 1; }
configs=("f32 dtype" "bf16 dtype" "f32 int8" "bf16 int8")
: > "$out"
for r in $(seq "$rounds"); do
  for batch in 1 8; do
    # Rotate the order each round so that drift on a shared machine hits every configuration.
    for c in $(seq 0 3); do
      set -- ${configs[$(( (c + r) % 4 ))]}
      target/release/cogview bench coglm --model "$model" --batch "$batch" --steps "$steps" \
        --dtype "$1" --weights "$2" | sed "s/^{/{\"round\":$r,/" >> "$out"
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
by = collections.defaultdict(list)
per_round = collections.defaultdict(dict)
for r in rows:
    by[(r["batch"], r["dtype"], r["weights"])].append(r["tokens_per_s"])
    per_round[(r["batch"], r["round"])][(r["dtype"], r["weights"])] = r["tokens_per_s"]
print(f"{'batch':>5} {'dtype':>5} {'weights':>7} {'tokens/s median':>16} {'min-max':>14}")
for (b, d, w), v in sorted(by.items()):
    print(f"{b:>5} {d:>5} {w:>7} {statistics.median(v):>16.1f} {min(v):>6.1f}-{max(v):<7.1f}")
for b in sorted({k[0] for k in per_round}):
    for d in ["f32", "bf16"]:
        ratios = [v[(d, "int8")] / v[("bf16", "dtype")] for (bb, _), v in per_round.items() if bb == b]
        print(f"batch {b}: {d} activations + int8 weights / bf16 weights, per round: median "
              f"{statistics.median(ratios):.2f}x (min {min(ratios):.2f}, max {max(ratios):.2f})")
PY
