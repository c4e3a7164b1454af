#!/usr/bin/env bash
# The bf16 kernels (docs/benchmarks.md, "bf16 kernels"): the GEMM microbenchmark on every kernel
# path this CPU has, then CogLM prefill (421 positions), DSR and ItersR forwards and CogLM decoding
# in f32 and bf16 on the mid-size models (12 layers x 768, vocabulary 150003, 20000 image codes),
# interleaved: each round runs every configuration once, alternating the order of the binaries.
# Every measurement is one JSON line in target/bench/bf16.jsonl; the script prints the best and
# worst of the rounds per configuration.
#
#   bash tools/bench/bench_bf16.sh [ROUNDS]
#   OLD=path/to/an/older/cogview bash tools/bench/bench_bf16.sh 3   # also time an older build
#                                                                   # (no --prefill there)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
new=${NEW:-target/release/cogview}
old=${OLD:-}
md=target/bench/mid
export RAYON_NUM_THREADS=${THREADS:-2}
[ -x "$new" ] || cargo build --release -p cogview-cli --quiet
if [ ! -f "$md/coglm/latest" ]; then
  python3 tools/bench/make_mid_models.py "$md"
fi
out=target/bench/bf16.jsonl
: >"$out"
tag() { sed "s|^{|{\"bin\":\"$1\",\"round\":$2,|" >>"$out"; }
bins=(new); [ -n "$old" ] && bins+=(old)
for r in $(seq 1 "$rounds"); do
  "$new" bench gemm --m 4096 --k 768 --n 3072 --repeats 3 | tag new "$r"
  order=("${bins[@]}"); [ $((r % 2)) = 0 ] && order=($(printf '%s\n' "${bins[@]}" | tac))
  for b in "${order[@]}"; do
    bin=$new; [ "$b" = old ] && bin=$old
    for dtype in f32 bf16; do
      if [ "$b" = new ]; then
        "$bin" bench coglm --model "$md/coglm" --prefill 421 --text-len 20 --repeats 1 --dtype "$dtype" | tag "$b" "$r"
      fi
      "$bin" bench sr --model "$md/sr" --which dsr --repeats 1 --dtype "$dtype" | tag "$b" "$r"
      "$bin" bench sr --model "$md/sr" --which itersr --repeats 1 --dtype "$dtype" | tag "$b" "$r"
      "$bin" bench coglm --model "$md/coglm" --steps 64 --dtype "$dtype" | tag "$b" "$r"
    done
  done
done
python3 - "$out" <<'EOF'
import json, sys, collections
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = collections.defaultdict(list)
for r in rows:
    if r.get("op") == "gemm":
        key = ("gemm", r["dtype"], r["kernels"], "")
        groups[key].append(r["gflops"])
        continue
    what = r.get("op") or r.get("which") or "decode"
    if "tokens_per_s" in r:
        what = "decode"
    key = (what, r["dtype"], r["bin"], "tok/s" if what == "decode" else "s")
    groups[key].append(r["tokens_per_s"] if what == "decode" else r["seconds"])
print(f"{'what':8} {'dtype':5} {'bin/kernels':11} {'best':>9} {'worst':>9} unit  (n)")
for (what, dtype, b, unit), v in sorted(groups.items()):
    hi_is_good = what in ("gemm", "decode")
    best, worst = (max(v), min(v)) if hi_is_good else (min(v), max(v))
    print(f"{what:8} {dtype:5} {b:11} {best:9.3f} {worst:9.3f} {unit or 'GFLOP/s'} ({len(v)})")
EOF
