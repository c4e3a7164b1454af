#!/usr/bin/env bash
# On a CUDA machine: the mid-size pipeline on the candle-cuda plugin (the GPU kit, docs/cuda.md)
# beside PyTorch eager on the same random weights and the same GPU. Nothing here needs Rust or a
# network: the machine needs python3 with PyTorch (CUDA) and the CUDA 13 libraries of its wheels.
#
#   tools/build-candle-cuda-plugin.sh --gpu-kit          # here: target/gpu-kit.tar.xz
#   # wheels PyTorch's image may lack (pure Python; docs/cuda.md "Benchmarks on the GPU"):
#   python3 -m pip download --no-deps -d .whl SwissArmyTransformer==0.4.12 icetk==0.0.7 protobuf==3.18.3
#   # there, in the repository root:
#   OUT=/some/dir bash tools/bench/gpu_bench.sh
#
# Writes $OUT/gpu_bench.log (everything), $OUT/gpu_bench.jsonl (one JSON line per measurement:
# PyTorch's from its bench scripts, cogview's from the time stamps of its progress lines),
# $OUT/gpu_runs.txt (each cogview run's time-stamped progress lines) and $OUT/gpu_mem.csv
# (nvidia-smi memory samples). Each step has its own time limit and a failed
# step does not stop the others.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-target/gpu-bench}
mkdir -p "$out"
exec > >(tee -a "$out/gpu_bench.log") 2>&1
jsonl=$out/gpu_bench.jsonl
: > "$jsonl"
export PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python PYTHONUNBUFFERED=1 RUST_BACKTRACE=0
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
step() {  # step SECONDS NAME COMMAND...: run with a limit, report its status and time
    local limit=$1 name=$2; shift 2
    local t0; t0=$(date +%s.%N)
    echo "== $name"
    timeout "$limit" "$@"
    local rc=$?
    echo "== $name: rc=$rc, $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
    return $rc
}

nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'

# -- weights: random mid-size models (12 layers x 768, official vocabularies), made by the
#    PyTorch reference scripts, read by both implementations
b=target/bench
step 120 make-coglm python3 tools/bench/coglm_torch_bench.py --make-model $b/coglm-mid --threads 16 >/dev/null
step 180 make-sr python3 tools/bench/sr_torch_bench.py --make-model $b/sr-mid >/dev/null
step 120 make-vq python3 tools/bench/vq_torch_bench.py --make-model $b/vq/ice_image.pt >/dev/null
step 60 make-model-dir python3 tools/bench/make_bench_model_dir.py
md=$PWD/$b/model-dir

# -- cogview through the candle-cuda plugin
kit=$PWD/target/gpu-kit
# (python's tarfile reads the .tar.xz whether or not the machine has xz)
[ -d "$kit" ] || python3 -c 'import tarfile; tarfile.open("target/gpu-kit.tar.xz").extractall("target")'
libs=$(python3 -c 'import nvidia, glob; print(":".join(d for p in nvidia.__path__ for d in glob.glob(p + "/cu13/lib")))')
export LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} COGVIEW_PLUGIN_PATH=$kit
ldd "$kit/libcogview_plugin_candle_cuda.so" | grep -E 'libcu|not found'
step 60 backends "$kit/cogview" backends
nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader -lms 250 > "$out/gpu_mem.csv" &
smi=$!

# One generate run; every progress line gets a time stamp, and tools/bench/gpu_stage_times.py
# turns them into stage times (stage 1 from its first to its last progress line, scaled to 400
# tokens; DSR; each ItersR pass; decoding).
pipeline() {  # pipeline NAME DTYPE N MODEL_DIR PROMPT
    local name=$1 dtype=$2 n=$3 dir=$4 prompt=$5 log=/tmp/gpu-runs/$1.txt
    mkdir -p /tmp/gpu-runs
    echo "== $name"
    echo "$(date +%s.%N) start" > "$log"
    timeout 240 "$kit/cogview" generate --config examples/configs/candle-cuda.toml --model-dir "$dir" \
        --dtype "$dtype" -n "$n" --batch-size "$n" --out "/tmp/cogview-out/$name" "$prompt" 2>&1 \
        | while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done >> "$log"
    { echo "### $name"; cat "$log"; } >> "$out/gpu_runs.txt"
    tail -n 2 "$log"
    python3 tools/bench/gpu_stage_times.py "$log" --name "$name" --dtype "$dtype" --batch "$n" >> "$jsonl"
    tail -n 1 "$jsonl"
}
cogview_round() {  # cogview_round ROUND
    for d in bf16 f32; do
        for n in 1 8; do pipeline "mid-$d-b$n-r$1" "$d" "$n" "$md" "a cat"; done
    done
}
torch_round() {
    for d in bf16 f32; do
        for n in 1 8; do
            step 180 "torch-coglm-$d-b$n" python3 tools/bench/coglm_torch_bench.py --model $b/coglm-mid --device cuda \
                --dtype "$d" --batch "$n" --steps 400 --warmup-steps 16 | grep '^{' | tee -a "$jsonl"
        done
        step 240 "torch-sr-$d" python3 tools/bench/sr_torch_bench.py --model $b/sr-mid --device cuda --dtype "$d" \
            --warmup 2 --repeats 5 | grep '^{' | tee -a "$jsonl"
    done
}
for d in f32 bf16; do   # the fixture model first: does the plugin run at all
    pipeline "fixture-$d" "$d" 2 "$PWD/tests/fixtures/model-dir" "a tiger"
done
# Interleaved rounds: cogview, PyTorch, cogview (so drift hits both).
cogview_round 1
torch_round
cogview_round 2
kill $smi 2>/dev/null
echo "== done"
