#!/usr/bin/env bash
# Rebuilds the README's picture, docs/images/readme-blue-circle-seeds-1-9.png: the README's main
# command with the embedded default model, seeds 1-9, tiled three per row by `--grid`.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo run --release --quiet -- generate "a large blue circle in the center" -n 9 --seed 1 \
    --grid --out "$tmp" --quiet
mkdir -p docs/images
cp "$tmp/a-large-blue-circle-in-the-center-grid-1.png" docs/images/readme-blue-circle-seeds-1-9.png
