#!/usr/bin/env python3
"""Build the icetk parity fixtures in tests/fixtures/icetk/ with the official `icetk` package.

Run with the reference venv (see tools/reference/setup_venv.sh):

    .venv-ref/bin/python tools/reference/make_icetk_fixtures.py [--out tests/fixtures/icetk]

Everything is computed by icetk's own code (icetk 0.0.7 from PyPI; its image/VQ code is
unchanged since 0.0.3, which CogView2 pins), on CPU, float32, with fixed seeds:

  image tokenizer
    1. builds a SMALL HVQVAE with icetk's own `new_module` config mechanism and classes
       (HVQVAE / Encoder / Decoder / ResidualDownSample / VectorQuantizeEMA), with the official
       level structure and attention placement, and channel multipliers chosen so that the
       state-dict key set is exactly the official one (see TINY below); randomises every
       parameter and buffer; saves `ice_image.pt` = torch.save({'module': state_dict});
    2. loads it back through icetk's `ImageTokenizer` (load_ckpt, strict=False - we also check
       strict loading) and encodes/decodes test images through `IceTokenizer.encode/decode`
       (the official path: pil_to_tensor, /255, Normalize(mean, std), enc, down_samplers[:l],
       quantize; decode = decs[2-l](embed[ids]) * std + mean, unclamped);
    3. records icetk's Resize(size) + CenterCrop(size) on uint8 tensors, with the installed
       torchvision's default (antialias=True) and with antialias=False (what torchvision
       0.11.1, pinned by CogView2's cog.yaml, did for tensors).

  text tokenizer
    4. trains a small SentencePiece unigram model on an offline English/Chinese corpus built by
       this script, loads it with icetk's `TextTokenizer`, adds CogView2's three special tokens
       and records encode/decode of >1000 strings (also through `IceTokenizer`, +20000).

Nothing is downloaded: IceTokenizer's auto-download is replaced by a function that fails if a
model file is missing.
"""

import argparse
import hashlib
import inspect
import importlib
import io
import json
import math
import os
import random
import shutil
import sys
import tempfile
import unicodedata

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import numpy as np
import torch
from PIL import Image, ImageDraw

import sentencepiece as spm
import torchvision
from torchvision import transforms
from torchvision.transforms.functional import pil_to_tensor

import icetk
import icetk.ice_tokenizer as ice_tokenizer_mod
import icetk.image_tokenizer as image_tokenizer_mod
from icetk.ice_tokenizer import IceTokenizer
from icetk.text_tokenizer import TextTokenizer
from icetk.vqvae import api as vq_api

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# THUDM/CogView2 assets/cute_girl.jpg (Apache-2.0), unchanged; a copy is kept in the fixtures
CUTE_GIRL = "/work/shared/data/cogview2/cute_girl.jpg"
if not os.path.exists(CUTE_GIRL):
    CUTE_GIRL = os.path.join(REPO, "tests", "fixtures", "icetk", "images", "cute_girl.jpg")
CUTE_GIRL_SHA256 = "c7d86d3d3052216939e3a7ddb8a5e7eb0fc5c72eb96858651be23a60ead1954b"

# icetk image_tokenizer.py: transforms.Normalize(mean, std) and the inverse in decode.
NORM_MEAN = [0.79093, 0.76271, 0.75340]
NORM_STD = [0.30379, 0.32279, 0.32800]
NUM_IMAGE_TOKENS = 20000       # IceTokenizer.num_image_tokens (hard-coded)
SPECIAL_TOKENS = ["<start_of_image>", "<start_of_english>", "<start_of_chinese>"]

# ---------------------------------------------------------------------------------------------
# VQ-VAE configurations
# ---------------------------------------------------------------------------------------------

# icetk/vqvae/api.py load_default_HVQVAE(), with the Encoder/Decoder defaults made explicit.
OFFICIAL = dict(
    channels=128, z_channels=256, embedding_dim=256, n_embed=20000,
    enc_channels_mult=[1, 2, 4], enc_num_res_blocks=2,
    dec_channels_mult=[[1, 1, 1, 2, 4], [1, 1, 2, 4], [1, 2, 4]], dec_num_res_blocks=0,
    resolution=256, attn_resolutions=[16],
)

# The fixture model. GroupNorm(32 groups) needs multiples of 32 channels, so 32 is the floor.
# A `nin_shortcut` exists exactly where consecutive multipliers differ, so alternating 1,2,1
# where the official one has 1,2,4 gives the SAME state-dict key set as the official model
# (enc.down.{1,2}.block.0.nin_shortcut, decs.0.up.{3,2}, decs.1.up.{2,1}, decs.2.up.{1,0}),
# with ResNet blocks going both 32->64 and 64->32. Same number of levels as the official
# decoders, resolution=256 and attn_resolutions=[16] -> decs.0.up.4.attn.0 exists, as officially.
TINY = dict(
    channels=32, z_channels=32, embedding_dim=32, n_embed=512,
    enc_channels_mult=[1, 2, 1], enc_num_res_blocks=2,
    dec_channels_mult=[[1, 1, 1, 2, 1], [1, 1, 2, 1], [1, 2, 1]], dec_num_res_blocks=0,
    resolution=256, attn_resolutions=[16],
)


def hvqvae_module_config(c):
    """icetk's `new_module` config for an HVQVAE of size `c` (same shape as load_default_HVQVAE)."""
    z = c["z_channels"]
    common = dict(channels=c["channels"], z_channels=z, resolution=c["resolution"],
                  attn_resolutions=list(c["attn_resolutions"]))
    return {
        "target": "..vqvae.HVQVAE",
        "params": {
            "levels": 3,
            "embedding_dim": c["embedding_dim"],
            "codebook_scale": 1,
            "down_sampler_configs": [
                {"target": "..vqvae.ResidualDownSample", "params": {"in_channels": z}}
                for _ in range(2)
            ],
            "enc_config": {
                "target": "..vqvae.Encoder",
                "params": dict(common, num_res_blocks=c["enc_num_res_blocks"],
                               channels_mult=list(c["enc_channels_mult"])),
            },
            "quantize_config": {
                "target": "..vqvae.VectorQuantizeEMA",
                "params": {"hidden_dim": z, "embedding_dim": c["embedding_dim"],
                           "n_embed": c["n_embed"], "training_loc": False},
            },
            "dec_configs": [
                {"target": "..vqvae.Decoder",
                 "params": dict(common, num_res_blocks=c["dec_num_res_blocks"],
                                channels_mult=list(m))}
                for m in c["dec_channels_mult"]
            ],
        },
    }


def build_hvqvae(c):
    return vq_api.new_module(hvqvae_module_config(c))


def vq_config_json(c, model=None):
    """cogview's `vq_config.json` (the fields of `cogview_candle::VqConfig`), written next to
    ice_image.pt. Every size needed to rebuild the model; the official file needs none (defaults)."""
    return {
        "channels": c["channels"],
        "enc_channels_mult": list(c["enc_channels_mult"]),
        "enc_num_res_blocks": c["enc_num_res_blocks"],
        "z_channels": c["z_channels"],
        "embedding_dim": c["embedding_dim"],
        "n_embed": c["n_embed"],
        "dec_channels_mult": [list(m) for m in c["dec_channels_mult"]],
        "dec_num_res_blocks": c["dec_num_res_blocks"],
        "resolution": c["resolution"],
        "attn_resolutions": list(c["attn_resolutions"]),
        "norm_groups": 32,
        "norm_eps": 1e-6,
        "mean": list(NORM_MEAN),
        "std": list(NORM_STD),
    }


def check_official_builder():
    """Our config builder at OFFICIAL sizes == icetk's load_default_HVQVAE (keys and shapes)."""
    torch.manual_seed(0)
    a = {k: tuple(v.shape) for k, v in vq_api.load_default_HVQVAE().state_dict().items()}
    b = {k: tuple(v.shape) for k, v in build_hvqvae(OFFICIAL).state_dict().items()}
    assert a == b, "hvqvae_module_config(OFFICIAL) differs from icetk's load_default_HVQVAE"
    return a


def randomise_(model, gen):
    """Overwrite every parameter/buffer with seeded random values (codebook set later)."""
    with torch.no_grad():
        for name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Conv2d):
                fan_in = mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=gen) / math.sqrt(fan_in))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=gen))
            elif isinstance(mod, torch.nn.GroupNorm):
                mod.weight.copy_(1.0 + 0.25 * torch.randn(mod.weight.shape, generator=gen))
                mod.bias.copy_(0.2 * torch.randn(mod.bias.shape, generator=gen))
        q = model.quantize
        q.cluster_size.copy_(100.0 * torch.rand(q.cluster_size.shape, generator=gen))
        q.embed_avg.copy_(torch.randn(q.embed_avg.shape, generator=gen))
    # everything else must have been covered
    covered = set()
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.GroupNorm)):
            covered |= {f"{name}.weight", f"{name}.bias"}
    left = set(model.state_dict()) - covered - {"quantize.embed.weight", "quantize.cluster_size",
                                                 "quantize.embed_avg"}
    assert not left, left


def quantizer_inputs(model, images):
    """z_e = quantize.proj(enc/down-sampled features) for every image and level."""
    out = []
    with torch.no_grad():
        for img in images:
            h = model.enc(img)
            for lvl in range(3):
                if lvl:
                    h = model.down_samplers[lvl - 1](h)
                z = model.quantize.proj(h).permute(0, 2, 3, 1).reshape(-1, model.quantize.embedding_dim)
                out.append(z)
    return torch.cat(out)


def set_codebook_(model, z_all, gen):
    """Codebook spread over the distribution of the quantizer inputs: half Gaussian draws with
    the per-dimension mean/std of z_e, half perturbed samples of z_e itself."""
    n, d = model.quantize.embed.weight.shape
    mean, std = z_all.mean(0), z_all.std(0)
    half = n // 2
    g = mean + std * torch.randn((half, d), generator=gen)
    idx = torch.randperm(z_all.shape[0], generator=gen)[: n - half]
    s = z_all[idx] + 0.35 * std * torch.randn((n - half, d), generator=gen)
    emb = torch.cat([g, s])[torch.randperm(n, generator=gen)]
    with torch.no_grad():
        model.quantize.embed.weight.copy_(emb)


def enforce_margins_(model, z, min_rel=1e-3, max_iters=1000):
    """Make every quantizer input have a clear nearest code: while some z has
    (d2 - d1) / (d1 + |z|^2) < min_rel (d1, d2 = squared distances to the best and second-best
    code), move that second-best code 3% further away from z. Deterministic (float64)."""
    e = model.quantize.embed.weight.detach().double().clone()
    z64 = z.double()
    zn = z64.pow(2).sum(1)
    for it in range(max_iters):
        v, i = torch.cdist(z64, e).pow(2).topk(2, dim=1, largest=False)
        bad = ((v[:, 1] - v[:, 0]) / (v[:, 0] + zn)) < min_rel
        if not bad.any():
            break
        j = i[bad, 1]
        push = torch.zeros_like(e).index_add_(0, j, 0.03 * (e[j] - z64[bad]))
        cnt = torch.zeros(e.shape[0], dtype=e.dtype).index_add_(0, j, torch.ones_like(j, dtype=e.dtype))
        e += push / cnt.clamp(min=1).unsqueeze(1)
    else:
        raise RuntimeError("could not separate the codebook")
    with torch.no_grad():
        model.quantize.embed.weight.copy_(e.float())
    return it


def distance_margins(z, embed):
    """icetk's distance (float32, same formula) + exact float64 margins best vs second best."""
    dist32 = (z.pow(2).sum(1, keepdim=True) - 2 * z @ embed.t() + embed.pow(2).sum(1, keepdim=True).t())
    ids32 = (-dist32).max(1)[1]
    z64, e64 = z.double(), embed.double()
    dist64 = torch.cdist(z64, e64).pow(2)
    two = dist64.topk(2, dim=1, largest=False)
    margin = two.values[:, 1] - two.values[:, 0]
    rel = margin / (two.values[:, 0] + z64.pow(2).sum(1))
    assert torch.equal(ids32, two.indices[:, 0]), "float32 and float64 nearest codes differ"
    return ids32, margin, rel


# ---------------------------------------------------------------------------------------------
# Test images
# ---------------------------------------------------------------------------------------------

def make_girl_png(path):
    """A natural-looking 160x160 RGB image: square crop of cute_girl.jpg, Lanczos-resized."""
    im = Image.open(CUTE_GIRL).convert("RGB")          # 264 x 322 (w x h)
    w, h = im.size
    top = 16
    im = im.crop((0, top, w, top + w)).resize((160, 160), Image.LANCZOS)
    im.save(path, format="PNG", optimize=True)


def make_shapes_png(path, h=96, w=128, seed=7):
    """A synthetic 96x128 (h x w) RGB image: gradient background, shapes, stripes, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    bg = np.stack([40 + 180 * xx / (w - 1), 60 + 150 * yy / (h - 1),
                   200 - 120 * (xx + yy) / (w + h - 2)], axis=-1)
    im = Image.fromarray(bg.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    d.ellipse((10, 8, 58, 56), fill=(230, 40, 40), outline=(20, 20, 20), width=3)
    d.rectangle((70, 12, 118, 44), fill=(30, 160, 70))
    d.polygon([(64, 90), (96, 52), (124, 90)], fill=(250, 220, 30), outline=(0, 0, 90))
    for i in range(6):
        d.line((4 + 6 * i, 62, 24 + 6 * i, 92), fill=(255, 255, 255), width=2)
    d.ellipse((34, 66, 54, 86), fill=(20, 20, 200))
    arr = np.asarray(im).astype(np.int16) + rng.integers(-6, 7, size=(h, w, 3))
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").save(path, format="PNG", optimize=True)


# ---------------------------------------------------------------------------------------------
# icetk loading without downloads
# ---------------------------------------------------------------------------------------------

def no_download(file_path):
    if not os.path.exists(file_path):
        raise FileNotFoundError(f"{file_path} missing (auto-download disabled)")
    return False


ice_tokenizer_mod.auto_create = no_download     # IceTokenizer's text/image properties call this


def ice_with_tiny_vq(model_dir, cfg):
    """An official IceTokenizer (CPU, fp32) whose ImageTokenizer builds the tiny HVQVAE instead
    of load_default_HVQVAE(); everything else (load_ckpt, normalisation, encode/decode) is
    icetk's own code."""
    image_tokenizer_mod.load_default_HVQVAE = lambda: build_hvqvae(cfg)
    return IceTokenizer(path=model_dir, device="cpu", fp16=False)


def save_npy(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, arr)


# ---------------------------------------------------------------------------------------------
# Image tokenizer fixtures
# ---------------------------------------------------------------------------------------------

def make_vq_fixtures(out):
    torch.manual_seed(0)
    official_keys = check_official_builder()

    gen = torch.Generator().manual_seed(20240611)
    model = build_hvqvae(TINY)
    randomise_(model, gen)
    assert set(model.state_dict()) == set(official_keys), \
        sorted(set(model.state_dict()) ^ set(official_keys))

    img_dir = os.path.join(out, "images")
    os.makedirs(img_dir, exist_ok=True)
    images = {"girl160": os.path.join(img_dir, "girl160.png"),
              "shapes96x128": os.path.join(img_dir, "shapes96x128.png")}
    make_girl_png(images["girl160"])
    make_shapes_png(images["shapes96x128"])
    with open(CUTE_GIRL, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == CUTE_GIRL_SHA256, CUTE_GIRL
    dst = os.path.join(img_dir, "cute_girl.jpg")
    if not (os.path.exists(dst) and os.path.samefile(CUTE_GIRL, dst)):
        shutil.copyfile(CUTE_GIRL, dst)

    # codebook from the quantizer-input distribution of the test inputs (official normalisation):
    # both PNGs, and cute_girl.jpg after icetk's Resize(160) + CenterCrop(160)
    norm = transforms.Normalize(NORM_MEAN, NORM_STD)
    u8 = [pil_to_tensor(Image.open(p)) for p in images.values()]
    u8.append(icetk_resize(pil_to_tensor(Image.open(CUTE_GIRL)), 160, antialias=True))
    z_all = quantizer_inputs(model.eval(), [norm(t.float().unsqueeze(0) / 255.) for t in u8])
    set_codebook_(model, z_all, gen)
    iters = enforce_margins_(model, z_all)
    print(f"  codebook: {model.quantize.embed.weight.shape[0]} codes, margins enforced in {iters} rounds")

    sd = model.state_dict()
    assert all(v.dtype == torch.float32 for v in sd.values())
    torch.save({"module": sd}, os.path.join(out, "ice_image.pt"))
    cfg_json = vq_config_json(TINY, model)
    with open(os.path.join(out, "vq_config.json"), "w") as f:
        json.dump(cfg_json, f, indent=1)
        f.write("\n")

    # strict reload check (icetk itself loads with strict=False)
    m2 = build_hvqvae(TINY)
    m2.load_state_dict(torch.load(os.path.join(out, "ice_image.pt"), map_location="cpu")["module"], strict=True)

    ice = ice_with_tiny_vq(out, TINY)
    it = ice.image_tokenizer
    assert it.device == "cpu" and not it.fp16 and it.num_tokens == TINY["n_embed"]

    # capture what the encoder saw and what the quantizer got
    seen = {}
    h1 = it.model.enc.register_forward_pre_hook(lambda m, a: seen.__setitem__("enc_in", a[0].detach().clone()))
    h2 = it.model.quantize.register_forward_pre_hook(lambda m, a: seen.__setitem__("q_in", a[0].detach().clone()))

    vq_dir = os.path.join(out, "vq")
    cases = []
    for name, path in images.items():
        for rate in (4, 8, 16):
            level = int(math.log2(rate)) - 2
            seen.clear()
            flat = ice.encode(image_path=path, compress_rate=rate)        # [1, h*w]
            q_in = seen["q_in"]
            _, _, hh, ww = q_in.shape
            ids = flat.view(hh, ww).to(torch.int64)
            with torch.no_grad():
                z = it.model.quantize.proj(q_in).permute(0, 2, 3, 1).reshape(-1, TINY["embedding_dim"])
            ids_m, margin, rel = distance_margins(z, it.model.quantize.embed.weight.detach())
            assert torch.equal(ids_m.view(hh, ww), ids)
            # official decode; pass [1, h, w]: with a flat [1, h*w] icetk assumes a square grid
            dec = ice.decode(image_ids=ids.unsqueeze(0), compress_rate=rate)[0]
            H, W = dec.shape[-2:]
            base = f"{name}_c{rate}"
            save_npy(os.path.join(vq_dir, base + "_ids.npy"), ids.numpy())
            save_npy(os.path.join(vq_dir, base + "_margin.npy"), margin.view(hh, ww).float().numpy())
            save_npy(os.path.join(vq_dir, base + "_decoded.npy"), dec.float().numpy())
            if name == "girl160" and rate == 8:
                enc_in = seen["enc_in"][0].float().numpy()
                save_npy(os.path.join(vq_dir, "girl160_normalized.npy"), enc_in)
            cases.append({
                "name": base, "image": f"images/{os.path.basename(path)}",
                "image_hw": list(Image.open(path).size[::-1]),
                "compression": rate, "level": level, "decoder": f"decs.{2 - level}",
                "ids": f"vq/{base}_ids.npy", "ids_hw": [hh, ww],
                "distinct_ids": int(ids.unique().numel()),
                "margin": f"vq/{base}_margin.npy",
                "min_margin": float(margin.min()), "min_rel_margin": float(rel.min()),
                "decoded": f"vq/{base}_decoded.npy", "decoded_shape": [3, H, W],
                "decoded_min": float(dec.min()), "decoded_max": float(dec.max()),
            })
            print(f"  {base}: ids {hh}x{ww}, {cases[-1]['distinct_ids']} distinct, "
                  f"min margin {cases[-1]['min_margin']:.4g} (rel {cases[-1]['min_rel_margin']:.3g}), "
                  f"decoded [{cases[-1]['decoded_min']:.3f}, {cases[-1]['decoded_max']:.3f}]")

    # end to end: JPEG -> icetk Resize(160)+CenterCrop(160) (installed torchvision) -> ids
    seen.clear()
    flat = ice.encode(image_path=os.path.join(img_dir, "cute_girl.jpg"), image_size=160, compress_rate=8)
    ids = flat.view(20, 20).to(torch.int64)
    with torch.no_grad():
        z = it.model.quantize.proj(seen["q_in"]).permute(0, 2, 3, 1).reshape(-1, TINY["embedding_dim"])
    _, margin, rel = distance_margins(z, it.model.quantize.embed.weight.detach())
    save_npy(os.path.join(vq_dir, "cute_girl_s160_c8_ids.npy"), ids.numpy())
    e2e = {"name": "cute_girl_s160_c8", "image": "images/cute_girl.jpg", "image_size": 160,
           "compression": 8, "ids": "vq/cute_girl_s160_c8_ids.npy", "ids_hw": [20, 20],
           "distinct_ids": int(ids.unique().numel()),
           "min_margin": float(margin.min()), "min_rel_margin": float(rel.min()),
           "note": "IceTokenizer.encode(image_path=..., image_size=160, compress_rate=8): PIL JPEG "
                   "decode, pil_to_tensor, Resize(160, bilinear, antialias=True - the default of "
                   "the pinned torchvision) + CenterCrop(160) on the uint8 tensor, /255, network. "
                   "Input of the resize: resize/cute_girl_rgb.npy; output: resize/cute_girl_s160_aa.npy."}
    h1.remove(); h2.remove()

    with open(os.path.join(out, "vq_cases.json"), "w") as f:
        json.dump({"model": "ice_image.pt", "config": "vq_config.json",
                   "normalized_input": {"image": "images/girl160.png", "file": "vq/girl160_normalized.npy",
                                        "shape": [3, 160, 160],
                                        "formula": "(pil_to_tensor(png).float() / 255 - mean) / std"},
                   "cases": cases, "end_to_end": [e2e]}, f, indent=1)
        f.write("\n")
    print(f"  end-to-end {e2e['name']}: {e2e['distinct_ids']} distinct, min margin {e2e['min_margin']:.4g}")
    return model, cases


# ---------------------------------------------------------------------------------------------
# Resize fixtures
# ---------------------------------------------------------------------------------------------

def icetk_resize(img_u8_chw, size, antialias):
    """Exactly the transform icetk's IceTokenizer.encode builds (ice_tokenizer.py), applied to
    the uint8 tensor from pil_to_tensor; antialias=True is the pinned torchvision's default."""
    tr = transforms.Compose([transforms.Resize(size, antialias=antialias), transforms.CenterCrop(size)])
    return tr(img_u8_chw)


def make_resize_fixtures(out):
    rdir = os.path.join(out, "resize")
    os.makedirs(rdir, exist_ok=True)
    entries = []
    srcs = {"cute_girl": os.path.join(out, "images", "cute_girl.jpg"),
            "shapes96x128": os.path.join(out, "images", "shapes96x128.png")}
    for name, path in srcs.items():
        t = pil_to_tensor(Image.open(path))
        if name == "cute_girl":
            save_npy(os.path.join(rdir, "cute_girl_rgb.npy"), t.permute(1, 2, 0).contiguous().numpy())
        default = icetk_resize(t, 160, antialias=True)
        # the exact object icetk builds (no antialias argument) must give the same result
        icetk_tr = transforms.Compose([transforms.Resize(160), transforms.CenterCrop(160)])
        assert torch.equal(icetk_tr(t), default)
        noaa = icetk_resize(t, 160, antialias=False)
        h, w = (int(x) for x in t.shape[1:])
        # torchvision _compute_resized_output_size: the short side becomes `size`, the long side
        # int(size * long / short) (truncated)
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = 160, int(160 * long / short)
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        resized = [new_h, new_w]
        assert list(transforms.Resize(160)(t).shape[1:]) == resized
        e = {"name": f"{name}_s160", "source": os.path.relpath(path, out),
             "source_hw": [int(h), int(w)], "size": 160, "resized_hw": resized,
             "crop_top_left": [int(round((resized[0] - 160) / 2.0)), int(round((resized[1] - 160) / 2.0))],
             "antialias_true": f"resize/{name}_s160_aa.npy"}
        save_npy(os.path.join(rdir, f"{name}_s160_aa.npy"), default.permute(1, 2, 0).contiguous().numpy())
        if torch.equal(noaa, default):
            e["antialias_false"] = e["antialias_true"]
        else:
            e["antialias_false"] = f"resize/{name}_s160_noaa.npy"
            save_npy(os.path.join(rdir, f"{name}_s160_noaa.npy"), noaa.permute(1, 2, 0).contiguous().numpy())
        e["max_abs_diff_aa_vs_noaa"] = int((noaa.int() - default.int()).abs().max())
        entries.append(e)
        print(f"  resize {name} {tuple(t.shape)} -> {resized} -> 160x160; |aa - noaa| max {e['max_abs_diff_aa_vs_noaa']}")
    with open(os.path.join(rdir, "cases.json"), "w") as f:
        json.dump({"layout": "uint8 [H, W, 3] (RGB, HWC)",
                   "torchvision": torchvision.__version__,
                   "transform": "transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)]) "
                                "on the uint8 CHW tensor from pil_to_tensor (icetk ice_tokenizer.py)",
                   "cute_girl_rgb": "resize/cute_girl_rgb.npy (PIL's JPEG decode of images/cute_girl.jpg)",
                   "cases": entries}, f, indent=1)
        f.write("\n")


# ---------------------------------------------------------------------------------------------
# Text tokenizer: corpus
# ---------------------------------------------------------------------------------------------

# English: docstrings of these stdlib modules (and their public members), Python's LICENSE.txt
# and the Zen of Python. Modules listed in EN_HELDOUT_MODULES are used for test strings only.
EN_TRAIN_MODULES = [
    "argparse", "asyncio", "base64", "bisect", "calendar", "collections", "configparser",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email.message",
    "enum", "fractions", "ftplib", "functools", "gettext", "glob", "gzip", "hashlib", "heapq",
    "hmac", "html.parser", "http.client", "http.cookies", "imaplib", "inspect", "io", "ipaddress",
    "itertools", "json", "locale", "logging", "mailbox", "mimetypes", "operator", "optparse",
    "os", "pathlib", "pickle", "pprint", "queue", "random", "re", "sched", "secrets", "shlex",
    "shutil", "smtplib", "socket", "sqlite3", "statistics", "string", "struct", "subprocess",
    "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "traceback", "typing",
    "unittest", "urllib.parse", "urllib.request", "uuid", "warnings", "weakref", "xml.dom.minidom",
    "zipfile", "zoneinfo",
]
EN_HELDOUT_MODULES = ["wave", "colorsys", "pydoc", "trace", "cmd", "codecs", "abc", "numbers"]

# Chinese: a hand-written word list (this script's own), combined by seeded templates.
ZH = {
    "animal": "猫 狗 老虎 熊猫 兔子 狐狸 小鸟 鹦鹉 金鱼 海豚 大象 长颈鹿 狮子 猴子 松鼠 企鹅 马 牛 羊 鸭子 天鹅 蝴蝶 蜜蜂 乌龟 青蛙 鲸鱼 骆驼 孔雀 老鹰 小猪",
    "person": "女孩 男孩 老人 孩子 宇航员 厨师 画家 医生 老师 学生 警察 农民 渔夫 舞者 歌手 骑士 公主 国王 士兵 科学家 工程师 司机 妈妈 爸爸 奶奶 爷爷 朋友 少年 姑娘 先生",
    "object": "西瓜 苹果 香蕉 鲜花 雨伞 帽子 眼镜 书包 手机 电脑 自行车 汽车 火车 飞机 轮船 气球 风筝 灯笼 茶杯 蛋糕 面包 咖啡 钢琴 吉他 小提琴 足球 篮球 椅子 桌子 杯子 钟表 镜子 蜡烛 花瓶 领结 围巾 裙子 外套 鞋子 项链",
    "place": "森林 海边 沙漠 山顶 城市 街道 公园 花园 湖边 河边 草原 雪山 乡村 校园 厨房 客厅 卧室 图书馆 博物馆 咖啡馆 火车站 机场 市场 寺庙 宫殿 城堡 太空 月球 海底 天空",
    "adj": "美丽 可爱 古老 现代 安静 热闹 明亮 黑暗 温暖 寒冷 巨大 小小 神秘 快乐 悲伤 优雅 复杂 简单 干净 漂亮 高大 柔软 闪亮 透明 五彩 金色 银色 红色 蓝色 绿色 黄色 白色 黑色 紫色 粉色",
    "verb": "抱着 拿着 戴着 穿着 看着 骑着 吃着 喝着 弹着 踢着 画着 读着 写着 追着 望着 举着 背着 提着 推着 拉着",
    "action": "奔跑 跳舞 唱歌 睡觉 飞翔 游泳 散步 微笑 思考 等待 休息 玩耍 学习 工作 旅行 钓鱼 做饭 画画 下棋 聊天",
    "time": "清晨 早上 中午 下午 傍晚 夜晚 春天 夏天 秋天 冬天 雨天 雪天 今天 明天 昨天 周末 节日 新年 中秋 深夜",
    "style": "高清摄影 隔绝 平面风格 漫画 油画风格 素描风格 等距矢量图 水墨国画 水彩画风格 电影画面 超现实主义 印象派 像素风格 赛博朋克 中国风 卡通 写实 极简主义 复古 梦幻",
    "misc": "我们 你们 他们 这里 那里 一个 一只 一位 一群 一些 非常 十分 特别 已经 正在 可以 应该 因为 所以 但是 而且 如果 虽然 然后 还是 或者 没有 什么 怎么 为什么 世界 中国 北京 上海 时间 生活 工作 学习 问题 方法 系统 数据 模型 图像 文字 语言 计算机 人工智能 机器 学习 网络 训练 生成 分辨率 像素 颜色 风景 照片 作品 艺术",
}
ZH = {k: v.split() for k, v in ZH.items()}
ZH_PUNCT = "，。！？、；：“”《》（）"
ZH_TEMPLATES = [
    "{adj}的{person}{verb}{object}",
    "一只{adj}的{animal}在{place}{action}",
    "{time}，{person}在{place}{action}。",
    "{person}{verb}{adj}的{object}，{style}",
    "{animal}和{animal}在{place}{action}，{adj}的{time}。",
    "{misc}{misc}{person}{verb}{object}，{misc}{action}。",
    "在{place}里，{adj}的{animal}{verb}{object}！",
    "{time}的{place}{misc}{adj}，{misc}{person}{action}？",
    "《{adj}的{place}》是一幅{style}的{misc}。",
    "“{person}，{misc}{action}吧！”{person}说。",
    "{place}的{object}和{object}、{object}；{misc}{adj}。",
    "{n}个{person}{verb}{n}个{object}",
    "{year}年{month}月{day}日，{person}去{place}{action}。",
    "{person}{verb}{object} {style}",
    "a {en_adj} {en_noun} {verb}{object}，{style}",
    "{en_noun} {misc}{adj}的{object}",
]
EN_ADJ = "red blue small big old young happy cute quiet bright dark golden wooden tiny huge".split()
EN_NOUN = "tiger cat dog girl boy robot castle garden city river mountain car bicycle flower tree".split()
COGVIEW2_PROMPTS = ["a tiger wearing VR glasses", "抱着西瓜的女孩", "抱着鲜花的女孩", "穿戴红领结的女孩"]
COGVIEW2_STYLE_SUFFIXES = ["", " 高清摄影 隔绝", " 高清摄影", " 平面风格", " 漫画 隔绝", " 油画风格",
                           " 素描风格", " 等距矢量图", " 水墨国画", " 水彩画风格"]


def fill_zh(tmpl, rng):
    vals = {k: rng.choice(v) for k, v in ZH.items()}
    # allow repeated keys in a template to differ
    out, i = [], 0
    while i < len(tmpl):
        if tmpl[i] == "{":
            j = tmpl.index("}", i)
            key = tmpl[i + 1:j]
            if key in ZH:
                out.append(rng.choice(ZH[key]))
            elif key == "n":
                out.append(str(rng.randint(1, 99)) if rng.random() < 0.5 else rng.choice("一二三四五六七八九十"))
            elif key == "year":
                out.append(str(rng.randint(1900, 2030)))
            elif key == "month":
                out.append(str(rng.randint(1, 12)))
            elif key == "day":
                out.append(str(rng.randint(1, 28)))
            elif key == "en_adj":
                out.append(rng.choice(EN_ADJ))
            elif key == "en_noun":
                out.append(rng.choice(EN_NOUN))
            else:
                raise KeyError(key)
            i = j + 1
        else:
            out.append(tmpl[i])
            i += 1
    del vals
    return "".join(out)


def module_docs(names):
    docs = []
    for name in names:
        mod = importlib.import_module(name)      # fail loudly: the corpus must not depend on the build
        d = inspect.getdoc(mod)
        if d:
            docs.append(d)
        for attr in sorted(dir(mod)):
            if attr.startswith("_"):
                continue
            try:
                obj = getattr(mod, attr)
            except Exception:
                continue
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            d = inspect.getdoc(obj)
            if d:
                docs.append(d)
    return docs


def doc_lines(docs):
    lines = []
    for d in docs:
        for para in d.split("\n\n"):
            para = " ".join(para.split())
            if len(para) >= 8:
                lines.append(para)
    return lines


def build_corpus():
    rng = random.Random(1234)
    en = doc_lines(module_docs(EN_TRAIN_MODULES))
    import sysconfig
    lic = os.path.join(sysconfig.get_paths()["stdlib"], "LICENSE.txt")
    if os.path.exists(lic):
        with open(lic, encoding="utf-8") as f:
            en += doc_lines([f.read()])
    import contextlib
    with contextlib.redirect_stdout(io.StringIO()):
        import this  # noqa: F401  (prints the Zen on first import)
    zen = "".join(this.d.get(c, c) for c in this.s)
    en += [l for l in zen.splitlines() if l.strip()]
    zh = [fill_zh(rng.choice(ZH_TEMPLATES), rng) for _ in range(24000)]
    zh += [p + s for p in COGVIEW2_PROMPTS for s in COGVIEW2_STYLE_SUFFIXES] * 5
    mixed = []
    for _ in range(3000):
        a, b = rng.choice(en), fill_zh(rng.choice(ZH_TEMPLATES), rng)
        words = a.split()
        k = rng.randint(1, min(8, len(words)))
        s = rng.randint(0, len(words) - k)
        mixed.append(" ".join(words[s:s + k]) + rng.choice(["，", " ", "：", "（"]) + b)
    lines = en + zh + mixed
    rng.shuffle(lines)
    return lines, {"english_lines": len(en), "chinese_lines": len(zh), "mixed_lines": len(mixed)}


SP_OPTIONS = dict(
    model_type="unigram",
    vocab_size=5000,
    character_coverage=0.9995,
    normalization_rule_name="nmt_nfkc",   # icetk README: '！' and '!' both encode to 20035
    add_dummy_prefix=True,                # icetk README: '▁Hello', and a lone '▁' (20005) before Chinese
    remove_extra_whitespaces=True,        # icetk README: decode(encode('abc\nhi')) == 'abc hi'
    split_by_unicode_script=True,
    split_by_whitespace=True,
    split_by_number=True,
    split_digits=False,
    byte_fallback=False,                  # icetk README: "perfectly recover (if without <unk>)"
    max_sentencepiece_length=16,          # icetk README: '--------' is one piece
    unk_id=0, bos_id=1, eos_id=2, pad_id=3,   # icetk: 20000 <unk>, 20001 <s>, 20002 </s>, 20003 <pad>
    user_defined_symbols=["<n>"],         # icetk 20004 '<n>', used by encode(ignore_linebreak=False)
    num_threads=1,                        # deterministic
    shuffle_input_sentence=False,
    input_sentence_size=0,
    seed_sentencepiece_size=200000,
    minloglevel=2,
)


def train_text_model(path):
    lines, stats = build_corpus()
    spm.set_random_generator_seed(20240611)
    with tempfile.TemporaryDirectory() as td:
        corpus = os.path.join(td, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            for l in lines:
                f.write(l.replace("\n", " ") + "\n")
        stats["corpus_bytes"] = os.path.getsize(corpus)
        stats["corpus_sha256"] = hashlib.sha256(open(corpus, "rb").read()).hexdigest()
        cwd = os.getcwd()
        os.chdir(td)      # relative paths: the trainer_spec stored in the model records them
        try:
            spm.SentencePieceTrainer.train(input="corpus.txt", model_prefix="ice_text", **SP_OPTIONS)
        finally:
            os.chdir(cwd)
        shutil.copyfile(os.path.join(td, "ice_text.model"), path)
    return stats


# ---------------------------------------------------------------------------------------------
# Text tokenizer: test strings
# ---------------------------------------------------------------------------------------------

def test_strings():
    rng = random.Random(4321)
    out = []
    add = out.append

    add("")
    for c in range(0x20, 0x7F):
        add(chr(c))
    # held-out English prose
    held = doc_lines(module_docs(EN_HELDOUT_MODULES))
    rng.shuffle(held)
    for l in held[:220]:
        add(l[:400])
    # Chinese sentences (same generator, different seed) and words alone
    for _ in range(160):
        add(fill_zh(rng.choice(ZH_TEMPLATES), rng))
    for k in ("animal", "object", "style"):
        for w in ZH[k][:8]:
            add(w)
    # CogView2 queries exactly as cogview2_text2image.py builds them
    for p in COGVIEW2_PROMPTS + ["一只戴着眼镜的猫", "a photo of a cat", "城堡 at night"]:
        for s in COGVIEW2_STYLE_SUFFIXES:
            add(p + s + "<start_of_image>")
    # mixed English/Chinese
    en_words = " ".join(held[:50]).split()
    for _ in range(100):
        parts = []
        for _ in range(rng.randint(2, 6)):
            if rng.random() < 0.5:
                parts.append(" ".join(rng.choice(en_words) for _ in range(rng.randint(1, 4))))
            else:
                parts.append(fill_zh(rng.choice(ZH_TEMPLATES), rng))
        add(rng.choice(["", " ", "，"]).join(parts))
    # punctuation and digits
    punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~，。！？、；：“”‘’《》（）【】…—·￥"
    for _ in range(60):
        add("".join(rng.choice(punct) for _ in range(rng.randint(1, 12))))
    for s in ["--------", "//--------", "...", "!!!", "?!", "((()))", "a-b_c.d", "C++", "x==y", "<>", "<<", ">>"]:
        add(s)
    for _ in range(50):
        kind = rng.randint(0, 5)
        if kind == 0:
            add(str(rng.randint(0, 10 ** rng.randint(1, 18))))
        elif kind == 1:
            add(f"{rng.uniform(-1000, 1000):.{rng.randint(0, 6)}f}")
        elif kind == 2:
            add(f"{rng.randint(1900, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
        elif kind == 3:
            add(f"{rng.randint(1, 999)}个{rng.choice(ZH['object'])}和{rng.randint(1, 99)}%")
        elif kind == 4:
            add(f"+86 {rng.randint(100, 999)} {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}")
        else:
            add(f"v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)} (build {rng.randint(1, 99999)})")
    for s in ["0", "00", "007", "1234567890", "3.14159", "1e-6", "１２３", "一二三", "①②③", "Ⅻ", "½", "x²", "10⁹"]:
        add(s)
    # emoji, rare and out-of-vocabulary characters
    emoji = ["😀", "🐯", "👍🏽", "❤️", "🇨🇳", "👩‍💻", "🎉🎉🎉", "☕", "✨", "🐼"]
    for e in emoji:
        add(e)
        add(f"我爱{e}和{rng.choice(ZH['animal'])}")
        add(f"a {e} b")
    for s in ["龘", "𠀀", "𪚥", "齉", "ㄅㄆㄇ", "ぁ", "ｱｲｳ", "한국어", "Привет мир", "Ελληνικά", "عربى",
              "עברית", "हिन्दी", "ไทย", "Ωmega", "Ǆ", "ß", "İstanbul", "naïve café", "e\u0301", "ﬁ ﬂ ﬃ",
              "™ © ®", "№", "℃", "㎏", "㈱", "ｈｅｌｌｏ　ｗｏｒｌｄ", "ＡＢＣ！？", "\u00ad", "\ufeffBOM",
              "\u200bzero\u200bwidth", "a\u200db", "\U0001F600\U0001F600", "\uffff", "\ue000private"]:
        add(s)
    # whitespace
    ws = [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", " \t \n ", "\u3000", "\u00a0", "\u2003", "\u2028", "\x0b", "\x0c"]
    for w in ws:
        add(w)
        add(f"a{w}b")
        add(f"{w}hello{w}")
        add(f"你好{w}世界")
        add(f"{w}{w}x{w}{w}")
    for _ in range(60):
        parts = [rng.choice(["hello", "world", "猫", "狗", "12", "!", "<n>", "测试"]) for _ in range(rng.randint(1, 6))]
        add("".join(p + rng.choice(ws[:9]) * rng.randint(1, 4) for p in parts))
    add("line one\nline two\n\nline four")
    add("abc\nhi")
    add("\tindented\tcode\t")
    add("    four spaces")
    add("trailing   ")
    add("   leading")
    # special-token literals and look-alikes
    specials = SPECIAL_TOKENS + ["<n>", "<unk>", "<s>", "</s>", "<pad>", "▁", "▁▁", "<image_123>"]
    for s in specials:
        add(s)
        add(f"x{s}y")
        add(f" {s} ")
        add(f"{s}{s}")
        add(f"你好{s}世界")
        add(f"hello {s}world")
    for s in ["<start_of_imag", "start_of_image>", "<<start_of_image>>", "<start_of_image", "<START_OF_IMAGE>",
              "<start_of_image>\n<start_of_chinese>", "<start_of_english>a<start_of_chinese>中",
              "<n><n>", "a<n>b", "<n>\n<n>", "＜start_of_image＞", "<start of image>"]:
        add(s)
    # random unicode soup
    pools = [
        [chr(c) for c in range(0x21, 0x7F)],
        list("".join(sum(ZH.values(), []))),
        list(ZH_PUNCT + "·…—"),
        [" ", " ", "\t", "\n"],
        emoji,
        [chr(c) for c in range(0x4E00, 0x9FA6, 97)],
        [chr(c) for c in range(0xFF01, 0xFF5F, 3)],
        [chr(c) for c in range(0x00C0, 0x0250, 7)],
    ]
    for _ in range(150):
        n = rng.randint(1, 40)
        add("".join(rng.choice(rng.choice(pools)) for _ in range(n)))
    # very long strings
    add(" ".join(held[:40])[:6000])
    add("".join(fill_zh(rng.choice(ZH_TEMPLATES), rng) for _ in range(200))[:4000])
    add("".join((rng.choice(held)[:60] + fill_zh(rng.choice(ZH_TEMPLATES), rng)) for _ in range(60)))
    add("a" * 3000)
    add("哈" * 2000)
    add("1" * 2500)
    add(" " * 1000 + "x" + " " * 1000)
    add("-" * 500)
    add("<start_of_image>" * 100)
    add("supercalifragilisticexpialidocious" * 20)

    seen, uniq = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            uniq.append(s)
    return uniq


def proto_info(tt):
    p = tt.proto
    ts, ns = p.trainer_spec, p.normalizer_spec
    types = {}
    for piece in p.pieces:
        types[piece.type] = types.get(piece.type, 0) + 1
    names = {1: "NORMAL", 2: "UNKNOWN", 3: "CONTROL", 4: "USER_DEFINED", 5: "UNUSED", 6: "BYTE"}
    normal_scores = [x.score for x in p.pieces if x.type == 1]
    return {
        "model_type": {1: "UNIGRAM", 2: "BPE", 3: "WORD", 4: "CHAR"}[ts.model_type],
        "vocab_size_trained": ts.vocab_size,
        "character_coverage": round(ts.character_coverage, 6),
        "normalizer_name": ns.name,
        "precompiled_charsmap_bytes": len(ns.precompiled_charsmap),
        "add_dummy_prefix": ns.add_dummy_prefix,
        "remove_extra_whitespaces": ns.remove_extra_whitespaces,
        "escape_whitespaces": ns.escape_whitespaces,
        "has_denormalizer_spec": p.HasField("denormalizer_spec"),
        "byte_fallback": ts.byte_fallback,
        "split_digits": ts.split_digits,
        "split_by_unicode_script": ts.split_by_unicode_script,
        "split_by_number": ts.split_by_number,
        "split_by_whitespace": ts.split_by_whitespace,
        "treat_whitespace_as_suffix": ts.treat_whitespace_as_suffix,
        "max_sentencepiece_length": ts.max_sentencepiece_length,
        "unk_id": ts.unk_id, "bos_id": ts.bos_id, "eos_id": ts.eos_id, "pad_id": ts.pad_id,
        "unk_piece": ts.unk_piece, "unk_surface": ts.unk_surface,
        "user_defined_symbols": list(ts.user_defined_symbols),
        "piece_type_counts": {names[k]: v for k, v in sorted(types.items())},
        "normal_score_min": min(normal_scores), "normal_score_max": max(normal_scores),
    }


def make_text_fixtures(out):
    tdir = os.path.join(out, "text")
    os.makedirs(tdir, exist_ok=True)
    model_path = os.path.join(tdir, "ice_text.model")
    stats = train_text_model(model_path)

    tt = TextTokenizer(model_path)                       # as IceTokenizer.text_tokenizer does
    info = {"file": "ice_text.model", "sentencepiece": spm.__version__, "icetk": "0.0.7",
            "train_options": {k: v for k, v in SP_OPTIONS.items() if k != "minloglevel"},
            "corpus": stats}
    info["before_special_tokens"] = proto_info(tt)
    n_before = len(tt)
    tt.add_special_tokens(SPECIAL_TOKENS)               # exactly CogView2's call
    special_ids = {t: tt.convert_token_to_id(t) for t in SPECIAL_TOKENS}
    assert list(special_ids.values()) == [n_before, n_before + 1, n_before + 2], special_ids
    appended = tt.proto.pieces[n_before:]
    info["special_tokens"] = {
        "call": "TextTokenizer.add_special_tokens(['<start_of_image>', '<start_of_english>', '<start_of_chinese>'])",
        "ids": special_ids,
        "ice_ids": {t: i + NUM_IMAGE_TOKENS for t, i in special_ids.items()},
        "appended_pieces": [{"piece": x.piece, "score": x.score, "type": int(x.type)} for x in appended],
    }
    info["num_tokens_after_special"] = len(tt)
    info["ice_offset"] = NUM_IMAGE_TOKENS
    info["piece_ids"] = {p: tt.convert_token_to_id(p) for p in ["<unk>", "<s>", "</s>", "<pad>", "<n>", "▁", ",", "."]}

    # the IceTokenizer path on the same file (+20000; decode replaces '<n>' by '\n')
    ice = IceTokenizer(path=tdir, device="cpu", fp16=False)
    ice.add_special_tokens(SPECIAL_TOKENS)
    assert ice.num_tokens == NUM_IMAGE_TOKENS + len(tt)

    strings = test_strings()
    n_unk = 0
    with open(os.path.join(tdir, "cases.jsonl"), "w", encoding="utf-8") as f:
        for s in strings:
            ids = tt.encode(s)
            ice_ids = ice.encode(s)
            assert ice_ids == [i + NUM_IMAGE_TOKENS for i in ids]
            rec = {"text": s, "ids": ids, "ice_ids": ice_ids, "pieces": tt.tokenize(s),
                   "decoded": tt.decode(ids)}
            ice_dec = ice.decode(ice_ids)
            if ice_dec != rec["decoded"]:
                rec["ice_decoded"] = ice_dec
            if "\n" in s:
                rec["ice_ids_linebreak"] = ice.encode(s, ignore_linebreak=False)
            n_unk += 0 in ids
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    info["cases"] = {"file": "cases.jsonl", "count": len(strings), "with_unk": n_unk}
    with open(os.path.join(tdir, "model_info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"  text model: {len(tt) - 3} pieces + 3 specials {special_ids}; {len(strings)} cases ({n_unk} with <unk>)")
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "icetk"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    print(f"icetk {getattr(icetk, '__version__', '0.0.7')} ({os.path.dirname(icetk.__file__)}), torch {torch.__version__}, "
          f"torchvision {torchvision.__version__}, sentencepiece {spm.__version__}")
    print("image tokenizer:")
    make_vq_fixtures(out)
    print("resize:")
    make_resize_fixtures(out)
    print("text tokenizer:")
    make_text_fixtures(out)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out) for f in fs)
    print(f"wrote {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
