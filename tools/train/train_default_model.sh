#!/usr/bin/env bash
# Trains cogview's default model from scratch and assembles models/default/ (see
# docs/default-model.md). Every step resumes from its state in target/train/ when run again, so
# the script can be interrupted and restarted. On a 2-core machine the transformer stages run two
# at a time, single-threaded each (faster than one job on two threads here).
#
#   bash tools/train/train_default_model.sh
# The shipped models up to issue 17 were trained on the attribute-pair split
# (`--split attribute-pairs`, crates/cogview-scenes/src/split.rs); their states record no split
# and resume only under it. tools/train/train_default_whole_domain.sh trains on `compositions`.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
bin=target/release/cogview
t=target/train
mkdir -p "$t"

# 1. The caption tokenizer (seconds) and the image tokenizer (about 25 min). The VQ-VAE trains at
#    a constant learning rate and its colour fidelity moves between checkpoints: check the round
#    trip with `eval --tokenizer` and keep the best export (the shipped one is step 1000).
$bin train tokenizer --out "$t/ice_text.model"
$bin train vq --split attribute-pairs --out "$t/vq" --steps 1000 --batch 8 --seed 1 --log-every 50
mkdir -p "$t/vq-final"
cp "$t/vq/ice_image.safetensors" "$t/vq-final/ice_image.safetensors"
vq="$t/vq-final/ice_image.safetensors"
$bin train clusters --vq "$vq" --out "$t/cluster_label.npy" --clusters 32 --seed 1
$bin eval --split attribute-pairs --tokenizer "$vq" --count 112 --objects 1 --objects 2

# 2. CogLM and DSR side by side, then ItersR: the first schedules (sessions 2-3).
common=(--vq "$vq" --tokenizer "$t/ice_text.model" --log-every 50 --split attribute-pairs)
RAYON_NUM_THREADS=1 $bin train coglm "${common[@]}" --out "$t/coglm" --steps 4000 --batch 16 --seed 2 &
coglm=$!
RAYON_NUM_THREADS=1 $bin train dsr "${common[@]}" --out "$t/dsr" --steps 2000 --batch 4 --seed 3
RAYON_NUM_THREADS=1 $bin train itersr "${common[@]}" --out "$t/itersr" --steps 1300 --batch 4 --seed 4
wait "$coglm"

# 3. Longer runs (sessions 3-4), each resumed from its state with a longer schedule (the cosine
#    schedule continues on the new length, so the learning rate rises again at the resume).
#    CogLM: 80 % scenes from step 4000. Its caption samples end with <start_of_image> (the
#    `caption_end` token) from step 4250 on; a retrain from scratch has it from step 0.
RAYON_NUM_THREADS=1 $bin train coglm "${common[@]}" --out "$t/coglm" --steps 9000 --batch 16 --seed 2 \
    --scene-fraction 0.8 &
coglm=$!
RAYON_NUM_THREADS=1 $bin train itersr "${common[@]}" --out "$t/itersr" --steps 4000 --batch 4 --seed 4
RAYON_NUM_THREADS=1 $bin train dsr "${common[@]}" --out "$t/dsr" --steps 6000 --batch 4 --seed 3
RAYON_NUM_THREADS=1 $bin train dsr "${common[@]}" --out "$t/dsr" --steps 9000 --batch 4 --seed 3
wait "$coglm"

# 3. The model folder.
m=models/default
mkdir -p "$m"
cp "$t/coglm/coglm.safetensors" "$t/dsr/dsr.safetensors" "$t/itersr/itersr.safetensors" \
   "$vq" "$t/ice_text.model" "$t/cluster_label.npy" "$m/"
cat > "$m/pipeline.toml" <<'TOML'
# cogview's default model: 8x8 -> 24x24 tokens -> 192x192 px (docs/default-model.md).
style = "none"

[text_tokenizer]
path = "ice_text.model"

[image_tokenizer]
path = "ice_image.safetensors"

[coglm]
path = "coglm.safetensors"
cluster_labels = "cluster_label.npy"
# 32 clusters over 1024 codes; sampling tuned with `cogview eval` (fewer stray objects).
temperature = 0.7
top_k_clusters = 4
# Captions (cogview caption, --rerank): the model's training tokens (docs/editing.md).
caption_start = "<start_of_english>"
caption_end = "<start_of_image>"

[dsr]
path = "dsr.safetensors"
top_k_clusters = 1
inner_temperature = 0.2

[itersr]
path = "itersr.safetensors"
top_k = [1, 1, 1, 1, 1, 1]
TOML
$bin info "$m/coglm.safetensors"
echo "models/default is ready; rebuild to embed it"
