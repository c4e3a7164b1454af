#!/usr/bin/env bash
# Training speed of the default model's CogLM: `cogview train coglm --precision f32` against
# `--precision bf16` (the linear layers' forward and backward products on the bf16 kernels, f32
# master weights), and PyTorch eager on the same network (tools/bench/coglm_train_torch.py, f32
# and bf16 autocast) when $PYTHON has torch. Interleaved rounds, one thread each
# (RAYON_NUM_THREADS / --threads), from the shipped weights so that every round does the same work.
#
#   bash tools/bench/bench_train.sh [ROUNDS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
steps=${2:-20}
threads=${THREADS:-1}
py=${PYTHON:-python3}
cargo build --release --quiet -p cogview-cli
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cogview_run() {  # cogview_run PRECISION: prints the last steps/s figure
  rm -rf "$work/out"
  RAYON_NUM_THREADS=$threads target/release/cogview train coglm --out "$work/out" \
    --vq models/default/ice_image.safetensors --tokenizer models/default/ice_text.model \
    --init-from models/default/coglm.safetensors --grid 9 --steps "$steps" --batch 16 \
    --log-every "$steps" --precision "$1" 2>&1 | sed -n 's/.*, \([0-9.]*\) steps\/s.*/\1/p' | tail -n 1
}
torch_run() {  # torch_run DTYPE
  "$py" tools/bench/coglm_train_torch.py --threads "$threads" --batch 16 --steps "$steps" --dtype "$1" 2>/dev/null \
    | "$py" -c 'import json,sys; print(round(json.loads(sys.stdin.read().strip().splitlines()[-1])["steps_per_s"], 3))'
}
have_torch=0
"$py" -c 'import torch' 2>/dev/null && have_torch=1
printf '%-6s %-22s %s\n' round implementation steps/s
for r in $(seq "$rounds"); do
  runs=("cogview f32" "cogview bf16")
  [ "$have_torch" = 1 ] && runs+=("torch f32" "torch bf16")
  n=${#runs[@]}
  for i in $(seq 0 $((n - 1))); do
    set -- ${runs[$(( (i + r) % n ))]}
    if [ "$1" = cogview ]; then v=$(cogview_run "$2"); else v=$(torch_run "$2"); fi
    printf '%-6s %-22s %s\n' "$r" "$1 $2" "$v"
  done
done
