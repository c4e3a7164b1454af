#!/usr/bin/env bash
# The whole pipeline, text -> 480 px, on mid-sized models at the official vocabulary sizes
# (target/bench/model-dir, see make_bench_model_dir.py): wall time and peak RSS of one image with
# all stages loaded (the official behaviour) and with --low-memory, in f32 and bf16, next to the
# --dry-run estimate of each configuration.
#
#   bash tools/bench/bench_pipeline.sh [IMAGES]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-1}
py=${PYTHON:-.venv-ref/bin/python}
cargo build --release --quiet
"$py" tools/bench/make_bench_model_dir.py >/dev/null
md=target/bench/model-dir
out=target/bench/pipeline-out
printf '%-6s %-11s %9s %12s %12s\n' dtype mode wall_s peak_rss estimate
for dtype in f32 bf16; do
  for mode in all-loaded low-memory; do
    flag=(); [ "$mode" = low-memory ] && flag=(--low-memory)
    est=$(target/release/cogview generate "a cat" --model-dir "$md" -n "$n" --dtype "$dtype" "${flag[@]}" --dry-run \
          | sed -n 's/^estimated peak memory: \([0-9.]* [KMG]iB\).*/\1/p')
    log=$(mktemp)
    start=$(date +%s.%N)
    /usr/bin/time -v target/release/cogview generate "a cat" --model-dir "$md" -n "$n" --dtype "$dtype" \
      "${flag[@]}" --quiet --out "$out" >/dev/null 2>"$log"
    end=$(date +%s.%N)
    rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")
    rm -f "$log"
    printf '%-6s %-11s %9.1f %9.0f MiB %12s\n' "$dtype" "$mode" "$(echo "$end - $start" | bc)" \
      "$(echo "$rss_kb / 1024" | bc)" "$est"
  done
done
