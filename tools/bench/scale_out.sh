#!/usr/bin/env bash
# Jobs per second of `cogview worker`s on the built-in default model, with 1, 2 and 3 workers
# fed by `cogview batch` through a local nats-server (docs/scale-out.md). Runs are interleaved
# (1, 2, 3, 1, 2, 3, …) so that drifting machine load hits every worker count alike.
#
#   bash tools/bench/scale_out.sh [JOBS=30] [REPEATS=2]
#   WORKER_THREADS=1 bash tools/bench/scale_out.sh   # each worker on one thread (RAYON_NUM_THREADS)
#
# Needs nats-server (apt-get install nats-server) and builds the release binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=${1:-30}
repeats=${2:-2}
cargo build --release --quiet -p cogview-cli
bin=$PWD/target/release/cogview
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir/js" > "$dir/nats.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; pkill -f "cogview worker --nats nats://127.0.0.1:$port" 2>/dev/null; rm -rf "$dir"' EXIT
sleep 1
url=nats://127.0.0.1:$port
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "worker threads: ${WORKER_THREADS:-all cores}"
echo "workers,run,jobs,seconds,jobs_per_second"
for rep in $(seq 1 "$repeats"); do
  for w in 1 2 3; do
    prefix="bench-w$w-r$rep"
    file=$dir/$prefix.txt
    # Distinct prompts of the scene grammar (equal lines would be one job: batch ids hash the
    # prompt and seed).
    python3 - "$jobs" > "$file" <<'PY'
import itertools, sys
sizes = ["small", "large"]
colours = ["red", "green", "blue", "yellow", "purple", "orange"]
shapes = ["circle", "square", "triangle"]
places = ["in the center", "on the left", "at the top", "at the bottom right"]
for i, (p, s, c, h) in enumerate(itertools.product(places, sizes, colours, shapes)):
    if i == int(sys.argv[1]):
        break
    print(f"a {s} {c} {h} {p}")
PY
    pids=()
    for k in $(seq 1 "$w"); do
      RAYON_NUM_THREADS=${WORKER_THREADS:-} "$bin" worker --nats "$url" --queue-prefix "$prefix" --name "w$k" 2> "$dir/$prefix-w$k.log" &
      pids+=($!)
    done
    # Workers load the model before the clock starts: wait for each one's ready line.
    for k in $(seq 1 "$w"); do
      until grep -q "taking jobs" "$dir/$prefix-w$k.log"; do sleep 0.1; done
    done
    start=$(date +%s.%N)
    "$bin" batch "$file" --nats "$url" --queue-prefix "$prefix" --out "$dir/out-$prefix" -q --seed "$rep"
    end=$(date +%s.%N)
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
    python3 -c "s=$end-$start; print(f'$w,$rep,$jobs,{s:.1f},{$jobs/s:.2f}')"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
