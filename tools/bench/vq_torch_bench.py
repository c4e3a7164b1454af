#!/usr/bin/env python3
"""PyTorch eager (CPU, float32 or bfloat16) timing of icetk's VQ-VAE image tokenizer.

Run with the reference venv (tools/reference/setup_venv.sh):

    # 1. a random model at the OFFICIAL sizes (channels 128, mult [1,2,4], z 256, codebook
    #    20000x256, decoders [1,1,1,2,4] / [1,1,2,4] / [1,2,4]); writes vq_config.json next to it
    .venv-ref/bin/python tools/bench/vq_torch_bench.py --make-model target/vq-bench/ice_image.pt

    # 2. time encode (image -> ids) and decode (ids -> pixels), one image, batch 1
    .venv-ref/bin/python tools/bench/vq_torch_bench.py --model target/vq-bench/ice_image.pt \
        --size 160 --compression 8 --threads 2 --repeats 3

Prints one JSON line per op:
    {"impl": "pytorch", "op": "encode"|"decode", "size": .., "seconds": best, ...}

The model is built and run by icetk's own code: ImageTokenizer(path, device='cpu', fp16=False)
(load_default_HVQVAE + load_ckpt) for the official sizes; for another vq_config.json next to the
.pt (e.g. tests/fixtures/icetk/) the HVQVAE is built from that config with icetk's classes.
encode = ImageTokenizer.encode (Normalize + enc + down_samplers[:l] + quantize), decode =
ImageTokenizer.decode (embedding + decs[2-l] + de-normalisation). Each op runs once as a warm-up,
then --repeats times; "seconds" is the best, "median" the median.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))

import icetk.image_tokenizer as image_tokenizer_mod          # noqa: E402
from icetk.image_tokenizer import ImageTokenizer             # noqa: E402
from icetk.vqvae import api as vq_api                         # noqa: E402
from PIL import Image                                         # noqa: E402
from torchvision.transforms.functional import pil_to_tensor   # noqa: E402

import make_icetk_fixtures as fx                              # noqa: E402  (shared config helpers)

CUTE_GIRL = os.path.join(REPO, "tests", "fixtures", "icetk", "images", "cute_girl.jpg")


def config_from_json(j):
    """cogview's flat vq_config.json → the builder's size dict."""
    return {k: j[k] for k in fx.OFFICIAL}


def make_model(path, seed):
    torch.manual_seed(seed)
    model = vq_api.load_default_HVQVAE()                  # icetk's official-size model
    fx.check_official_builder()
    gen = torch.Generator().manual_seed(seed)
    fx.randomise_(model, gen)
    with torch.no_grad():
        model.quantize.embed.weight.copy_(torch.randn(model.quantize.embed.weight.shape, generator=gen))
    sd = model.state_dict()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save({"module": sd}, path)
    cfg = fx.vq_config_json(fx.OFFICIAL, model)
    with open(os.path.join(os.path.dirname(os.path.abspath(path)), "vq_config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    n = sum(v.numel() for v in sd.values())
    print(json.dumps({"made": path, "keys": len(sd), "parameters": n,
                      "bytes": os.path.getsize(path)}))


def load_tokenizer(path):
    cfg_path = os.path.join(os.path.dirname(os.path.abspath(path)), "vq_config.json")
    cfg = fx.OFFICIAL
    if os.path.exists(cfg_path):
        with open(cfg_path) as f:
            cfg = config_from_json(json.load(f))
    if cfg != fx.OFFICIAL:
        image_tokenizer_mod.load_default_HVQVAE = lambda: fx.build_hvqvae(cfg)
    return ImageTokenizer(path, device="cpu", fp16=False), cfg


def timed(fn, repeats):
    fn()                                                  # warm-up
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return out, ts


def main():
    ap = argparse.ArgumentParser(description="PyTorch eager timing of icetk's VQ-VAE")
    ap.add_argument("--make-model", metavar="PATH", help="write a random official-size ice_image.pt")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--model", metavar="PATH", help="ice_image.pt to time")
    ap.add_argument("--size", type=int, default=160, help="image side in pixels (e.g. 160, 480)")
    ap.add_argument("--compression", type=int, default=8, choices=[4, 8, 16])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ops", default="encode,decode")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                    help="bf16: the model's parameters and the input image in bfloat16 (icetk's own "
                         "fp16 switch, with bfloat16)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.make_model:
        make_model(args.make_model, args.seed)
    if not args.model:
        return

    it, cfg = load_tokenizer(args.model)
    level = int(math.log2(args.compression)) - 2
    # the input: cute_girl.jpg through icetk's Resize+CenterCrop, as floats in [0, 1]
    img = fx.icetk_resize(pil_to_tensor(Image.open(CUTE_GIRL)), args.size, antialias=True)
    img = img.float().div(255.).unsqueeze(0)
    if args.dtype == "bf16":
        it.model = it.model.to(torch.bfloat16)
        img = img.to(torch.bfloat16)
    side = args.size // args.compression
    common = {"impl": "pytorch", "size": args.size, "compression": args.compression,
              "threads": args.threads, "repeats": args.repeats, "device": "cpu", "dtype": args.dtype,
              "torch": torch.__version__, "channels": cfg["channels"], "n_embed": cfg["n_embed"]}

    ids = None
    with torch.inference_mode():
        ops = args.ops.split(",")
        if "encode" in ops or "decode" in ops:
            ids, ts = timed(lambda: it.encode(img, l=level), args.repeats)
            assert ids.shape == (1, side * side), ids.shape
            if "encode" in ops:
                print(json.dumps(dict(common, op="encode", seconds=min(ts), median=statistics.median(ts),
                                      ids_hw=[side, side])), flush=True)
        if "decode" in ops:
            codes = ids.view(1, side, side)
            out, ts = timed(lambda: it.decode(codes, l=level), args.repeats)
            assert out.shape == (1, 3, args.size, args.size), out.shape
            print(json.dumps(dict(common, op="decode", seconds=min(ts), median=statistics.median(ts),
                                  ids_hw=[side, side])), flush=True)


if __name__ == "__main__":
    main()
