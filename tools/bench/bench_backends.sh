#!/usr/bin/env bash
# Every compute-bound pass side by side on the same weights and threads: cogview's built-in
# backend, the tch plugin (libtorch 2.13 / oneDNN) and PyTorch eager (SwissArmyTransformer, icetk),
# in f32 and bf16, plus int8 decoding (built-in only), the GEMM microbenchmark against
# PyTorch's, and the whole pipeline on the built-in backend and on tch (docs/benchmarks.md,
# "Side by side"). Each round runs the in-process built-in/tch harness (plugins/tch/examples/bench.rs,
# which rotates the two backends itself) and the PyTorch scripts, alternating which goes first.
# Every measurement is one JSON line in target/bench/backends.jsonl; a summary table follows.
#
#   bash tools/reference/setup_venv.sh          # once: PyTorch + SAT + icetk (.venv-ref)
#   bash tools/bench/bench_backends.sh [ROUNDS=3] [PIPELINE_ROUNDS=2]
#   THREADS=1 bash tools/bench/bench_backends.sh # other thread counts (default 2)
#   DTYPES=f32 BF16_OPS=prefill,decode,dsr bash tools/bench/bench_backends.sh
#       # the dtypes of every pass (default "f32 bf16"), and the passes run in bf16 when DTYPES
#       # has no bf16 (default none): on CPUs without AVX512-BF16/AMX, bf16 in libtorch and
#       # PyTorch is emulated and a dense DSR forward takes minutes
#
# The models are the mid-size random ones of the PyTorch scripts (CogLM, DSR, ItersR: 12 layers x
# 768, vocabulary 150003; the VQ tokenizer at icetk's official sizes), made once under target/bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
pipeline_rounds=${2:-2}
threads=${THREADS:-2}
dtypes=${DTYPES:-f32 bf16}
bf16_ops=${BF16_OPS:-}
py=${PYTHON:-.venv-ref/bin/python}
out=target/bench/backends.jsonl
image=tests/fixtures/icetk/images/cute_girl.jpg
export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python RAYON_NUM_THREADS=$threads \
  OMP_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE

[ -x "$py" ] || { echo "no $py: run tools/reference/setup_venv.sh first (PyTorch eager is one of the peers)" >&2; exit 1; }
[ -f target/bench/coglm-mid/latest ] || "$py" tools/bench/coglm_torch_bench.py --make-model target/bench/coglm-mid >&2
[ -d target/bench/sr-mid/dsr ] || "$py" tools/bench/sr_torch_bench.py --make-model target/bench/sr-mid >&2
[ -f target/bench/vq/ice_image.pt ] || "$py" tools/bench/vq_torch_bench.py --make-model target/bench/vq/ice_image.pt >&2
"$py" tools/bench/make_bench_model_dir.py >/dev/null

cargo build --release --quiet -p cogview-cli -p cogview-plugin-candle
tch_lib=$(tools/build-tch-plugin.sh | tail -n 1)
site=$(target/libtorch-venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The same LIBTORCH as the plugin's build, so that torch-sys is not rebuilt for the example.
LIBTORCH="$site/torch" nice -n 10 cargo build --release --quiet --manifest-path plugins/tch/Cargo.toml --example bench
harness=plugins/tch/target/release/examples/bench
export COGVIEW_TCH_PLUGIN=$tch_lib COGVIEW_CANDLE_PLUGIN=target/release/libcogview_plugin_candle.so

: >"$out"
tag() { # tag ROUND: prefix each JSON line with the round and keep it
  grep '^{' | sed "s|^{|{\"bench_round\":$1,|" | tee -a "$out" >/dev/null
}
builtin_and_tch() {
  local d
  for d in $dtypes; do
    "$harness" --coglm target/bench/coglm-mid --dsr target/bench/sr-mid/dsr \
      --itersr target/bench/sr-mid/itersr --vq target/bench/vq/ice_image.pt --image "$image" \
      --rounds 1 --threads "$threads" --dtypes "$d" --int8 | tag "$1"
  done
  if [ -n "$bf16_ops" ]; then
    "$harness" --coglm target/bench/coglm-mid --dsr target/bench/sr-mid/dsr \
      --itersr target/bench/sr-mid/itersr --vq target/bench/vq/ice_image.pt --image "$image" \
      --rounds 1 --threads "$threads" --dtypes bf16 --ops "$bf16_ops" | tag "$1"
  fi
}
has_op() { [[ ",$2," == *",$1,"* ]]; }
pytorch() {
  local r=$1 d ops
  for d in $dtypes bf16-subset; do
    ops=prefill,decode,dsr,itersr,vq160,vq480
    if [ "$d" = bf16-subset ]; then
      [ -n "$bf16_ops" ] || continue
      d=bf16 ops=$bf16_ops
    fi
    if has_op prefill "$ops"; then
      "$py" tools/bench/coglm_torch_bench.py --model target/bench/coglm-mid --dtype $d --text-len 20 \
        --prefill 421 --threads "$threads" | tag "$r"
    fi
    if has_op decode "$ops"; then
      "$py" tools/bench/coglm_torch_bench.py --model target/bench/coglm-mid --dtype $d --text-len 20 \
        --steps 400 --threads "$threads" | tag "$r"
    fi
    for which in dsr itersr; do
      has_op $which "$ops" || continue
      "$py" tools/bench/sr_torch_bench.py --model target/bench/sr-mid --which $which --dtype $d \
        --threads "$threads" | tag "$r"
    done
    for size in 160 480; do
      has_op vq$size "$ops" || continue
      "$py" tools/bench/vq_torch_bench.py --model target/bench/vq/ice_image.pt --size $size \
        --dtype $d --repeats 1 --threads "$threads" | tag "$r"
    done
  done
}
gemm() {
  local r=$1 d
  target/release/cogview bench gemm | tag "$r"
  target/release/cogview bench gemm --m 4096 --k 4096 --n 4096 --repeats 3 | tag "$r"
  for d in f32 bf16; do
    "$py" tools/bench/gemm_torch_bench.py --dtype $d --threads "$threads" --repeats 2 | tag "$r"
  done
}
pipeline() { # pipeline ROUND BACKEND DTYPE: one 480 px image, wall seconds
  local config=examples/configs/official.toml
  [ "$2" = tch ] && config=examples/configs/tch.toml
  local t0 t1
  t0=$(date +%s.%N)
  COGVIEW_PLUGIN_PATH=$(dirname "$tch_lib") target/release/cogview generate "a cat" --config "$config" \
    --model-dir target/bench/model-dir --dtype "$3" -n 1 --seed 1 --quiet \
    --out target/bench/backends-out >/dev/null
  t1=$(date +%s.%N)
  echo "{\"backend\":\"$2\",\"dtype\":\"$3\",\"op\":\"pipeline\",\"threads\":$threads,\"seconds\":$(echo "$t1 - $t0" | bc)}" | tag "$1"
}

for r in $(seq "$rounds"); do
  echo "round $r of $rounds" >&2
  gemm "$r"
  if (( r % 2 )); then builtin_and_tch "$r"; pytorch "$r"; else pytorch "$r"; builtin_and_tch "$r"; fi
done
for r in $(seq "$pipeline_rounds"); do
  for d in $dtypes; do
    if (( r % 2 )); then order="built-in tch"; else order="tch built-in"; fi
    for b in $order; do pipeline "$r" "$b" "$d"; done
  done
done
python3 tools/bench/summarize_backends.py "$out"
