#!/usr/bin/env python3
"""Assemble target/bench/model-dir: a model folder in the official layout at official vocabulary
sizes (20000 image codes, <start_of_image> = 150000) with mid-sized transformers, for the
pipeline's speed and memory measurements (tools/bench/bench_pipeline.sh).

- coglm, cogview2-dsr, cogview2-itersr: links to the 12-layer, 768-wide benchmark models that
  bench_coglm.sh and bench_sr.sh build (target/bench/coglm-mid, target/bench/sr-mid/*);
- ice_image.pt: link to the official-size VQ-VAE of bench_vq.sh (target/bench/vq), random weights;
- cluster_label.npy: the official table (../shared/data/cogview2 or data/);
- ice_text.model: the 5000-piece fixture tokenizer padded to icetk's 130000 pieces with unused
  pieces, so that <start_of_image> lands on 150000 as with the real ice_text.model.
"""
import os
import struct
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(REPO, "target", "bench", "model-dir")
LINKS = {
    "coglm": "../coglm-mid",
    "cogview2-dsr": "../sr-mid/dsr",
    "cogview2-itersr": "../sr-mid/itersr",
    "ice_image.pt": "../vq/ice_image.pt",
    "vq_config.json": "../vq/vq_config.json",
    "cluster_label.npy": os.path.join(REPO, "crates/cogview-core/data/cluster_label.npy"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, target in LINKS.items():
        path = os.path.join(OUT, name)
        if not os.path.exists(os.path.join(OUT, target)):
            sys.exit(f"{target} is missing: run tools/bench/bench_coglm.sh, bench_sr.sh and bench_vq.sh first")
        if os.path.lexists(path):
            os.remove(path)
        os.symlink(target, path)
    # Protobuf repeated fields concatenate, so pieces can be appended as raw bytes:
    # ModelProto.pieces = field 1 (a message); SentencePiece.piece = field 1 (string),
    # .score = field 2 (float); type NORMAL is the default and is left out.
    def varint(n):
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    with open(os.path.join(REPO, "tests/fixtures/icetk/text/ice_text.model"), "rb") as f:
        model = bytearray(f.read())
    pieces = 5000  # the fixture's size (tests/fixtures/icetk/text/model_info.json)
    for i in range(130000 - pieces):
        text = f"\u2581unused{i:06d}".encode()
        inner = b"\x0a" + varint(len(text)) + text + b"\x15" + struct.pack("<f", -1e4)
        model += b"\x0a" + varint(len(inner)) + inner
    with open(os.path.join(OUT, "ice_text.model"), "wb") as f:
        f.write(model)
    print(OUT)


if __name__ == "__main__":
    main()
