#!/usr/bin/env python3
"""Build tests/fixtures/model-dir/: a complete, consistent tiny CogView2 model folder laid out as
the official download, with random weights saved in the official formats.

Run with the reference venv (see tools/reference/setup_venv.sh):

    .venv-ref/bin/python tools/reference/make_model_dir.py [--out tests/fixtures/model-dir]

The official download is

    coglm/            SAT checkpoint folder (latest, model_config.json, <iter>/mp_rank_00_model_states.pt)
    cogview2-dsr/     SAT checkpoint folder of DsrModel
    cogview2-itersr/  SAT checkpoint folder of ItersrModel
    ice_image.pt      icetk's VQ-VAE (torch zip)
    ice_text.model    icetk's SentencePiece model
    cluster_label.npy one cluster id per image code (int64)

and this script writes the same layout with small sizes, so that the end-to-end tests run the
real text -> 20x20 -> 60x60 -> 480 px path in seconds:

- the image tokenizer and the text tokenizer are the icetk fixtures (tests/fixtures/icetk:
  a 512-code VQ-VAE and a 5000-piece unigram model), linked, not copied;
- the vocabulary follows icetk's layout with 512 image codes instead of 20000: ids 0..511 are
  image codes, text pieces follow at 512 + piece id, and the three specials come last
  (<start_of_image> = 512 + 5000 = 5512);
- CogLM, DSR and ItersR are SAT models (2 layers, hidden 32, 4 heads) built with the same
  classes as the parity fixtures (make_coglm_fixtures.py, make_sr_fixtures.py), randomised with
  seeded values and saved with SAT's own save_checkpoint in float16, as the official weights are;
- cluster_label.npy assigns the 512 codes to 32 clusters of 16 (a seeded permutation), saved as
  int64 like the official file.

The weights are random: the images are noise. The folder tests loading, wiring, determinism,
metadata and memory accounting, not image quality.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

import make_coglm_fixtures as coglm  # noqa: E402
import make_sr_fixtures as sr  # noqa: E402

IMAGE_VOCAB_SIZE = 512
TEXT_PIECES = 5000
START_OF_IMAGE_ID = IMAGE_VOCAB_SIZE + TEXT_PIECES
VOCAB_SIZE = START_OF_IMAGE_ID + 3
TINY = dict(num_layers=2, hidden_size=32, num_attention_heads=4, inner_hidden_size=None,
            vocab_size=VOCAB_SIZE, max_sequence_length=1024)
EXTRA = {"image_vocab_size": IMAGE_VOCAB_SIZE, "start_of_image_id": START_OF_IMAGE_ID}
LINKS = {
    "ice_image.pt": "../icetk/ice_image.pt",
    "vq_config.json": "../icetk/vq_config.json",
    "ice_text.model": "../icetk/text/ice_text.model",
}


def save_folder(model, args, out_dir, iteration, model_class):
    model = model.to(torch.float16)
    return sr.save_sat_folder(model, args, out_dir, iteration, model_class, EXTRA)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "model-dir"))
    a = ap.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)

    # CogLM: SAT's BaseModel, as the parity fixtures.
    torch.manual_seed(7001)
    args = coglm.build_args(TINY)
    model = coglm.CogLMReference(args)
    coglm.randomise_(model, 7001)
    cfg = save_folder(model, args, os.path.join(out, "coglm"), 1000, "BaseModel")
    print("coglm:", json.dumps(cfg))

    for name, kind, cls, seed in [("cogview2-dsr", "dsr", "DsrModel", 7002),
                                  ("cogview2-itersr", "itersr", "ItersrModel", 7003)]:
        torch.manual_seed(seed)
        args = sr.build_args(dict(kind=kind, **TINY), image_vocab_size=IMAGE_VOCAB_SIZE)
        model = sr.SrReference(args)
        sr.randomise_(model, seed)
        cfg = save_folder(model, args, os.path.join(out, name), 2000, cls)
        print(f"{name}:", json.dumps(cfg))

    rng = np.random.default_rng(7004)
    labels = (rng.permutation(IMAGE_VOCAB_SIZE) % 32).astype(np.int64)
    np.save(os.path.join(out, "cluster_label.npy"), labels)

    for name, target in LINKS.items():
        path = os.path.join(out, name)
        if os.path.lexists(path):
            os.remove(path)
        assert os.path.exists(os.path.join(out, target)), target
        os.symlink(target, path)

    with open(os.path.join(out, "README.md"), "w") as f:
        f.write(
            "# model-dir: a tiny CogView2 download, random weights\n\n"
            "Built by `tools/reference/make_model_dir.py` (see its docstring); do not edit by hand.\n"
            "The official layout with small sizes: 512 image codes, text ids 512..5511 "
            "(the 5000-piece fixture tokenizer), `<start_of_image>` = 5512, CogLM/DSR/ItersR with 2 layers "
            "of width 32 in float16, 32 clusters. `ice_image.pt`, `vq_config.json` and `ice_text.model` "
            "link to the icetk fixtures. The weights are random, so images are noise.\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
