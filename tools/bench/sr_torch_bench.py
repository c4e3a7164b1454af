#!/usr/bin/env python3
"""PyTorch-eager reference timing of one DSR forward and one ItersR forward (SwissArmyTransformer
0.4.12, batch 1; CPU and float32 by default, `--device cuda` and `--dtype bf16` for a GPU:
tools/bench/gpu_bench.sh).

Run with the reference venv (tools/reference/setup_venv.sh):

  # once: random mid-size DSR and ItersR models in SAT folder layout (~0.9 + 0.8 GB, float32)
  .venv-ref/bin/python tools/bench/sr_torch_bench.py --make-model target/bench/sr-mid

  # time one forward of each (each model in its own process, so peak RSS is per model);
  # prints one JSON line per model
  .venv-ref/bin/python tools/bench/sr_torch_bench.py --model target/bench/sr-mid --threads 2

The models are the re-implementation in tools/reference/make_sr_fixtures.py (`SrReference`, a
SAT BaseModel with CogView2's DSR/ItersR mixins and state-dict names), which matches the
official DsrModel/ItersrModel to ~7e-6 on the tiny fixtures. The official models call the CUDA
Image-Local-Attention kernel, which does not exist on CPU; here attention is by default DENSE:
one softmax over all keys with the local windows (DSR: 9x5 high-res + 5x5 cross-resolution;
ItersR: text + 9x5) as a 0/1 mask, i.e. a [heads, L, L] score matrix per layer (L = 4096 for
DSR, 3616 for ItersR). `--attention local` uses the gather-based local-attention reference
instead (same results). Inputs follow the official layouts: DSR [96 text (left-padded) | 400
low-res | 3600 placeholders], ItersR [16 text | 3600 cells] with the LoPAR iteration-1 mask.
The head computes only the 20000 image logits, in float32 (as DsrModel/ItersrModel).

Timed: the model forward only (`model(tokens, positions, mask)`), after --warmup untimed runs.
Peak RSS is the process's ru_maxrss (it includes loading the checkpoint).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import make_sr_fixtures as srf  # noqa: E402

MID_MODEL = dict(num_layers=12, hidden_size=768, num_attention_heads=12, inner_hidden_size=None,
                 vocab_size=150003, max_sequence_length=1024)
IMAGE_VOCAB = 20000
START_OF_IMAGE = 150000
TEXT_IDS = (20000, 150000)
KINDS = {"dsr": "DsrModel", "itersr": "ItersrModel"}


def make_models(out_dir, seed):
    """Random mid-size models (SAT's own init: normal std 0.02, LayerNorm 1/0) in SAT layout."""
    for kind, cls_name in KINDS.items():
        torch.manual_seed(seed)
        args = srf.build_args(dict(kind=kind, **MID_MODEL), image_vocab_size=IMAGE_VOCAB)
        model = srf.SrReference(args)
        path = os.path.join(out_dir, kind)
        cfg = srf.save_sat_folder(model, args, path, 20000, cls_name,
                                  {"image_vocab_size": IMAGE_VOCAB, "start_of_image_id": START_OF_IMAGE})
        n = sum(p.numel() for p in model.parameters())
        print(json.dumps({"made": path, "params": n, "config": cfg}))
        del model


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def inputs(kind, text_len, seed):
    rng = np.random.default_rng(seed)
    text = rng.integers(*TEXT_IDS, size=text_len).tolist()
    if kind == "dsr":
        low = rng.integers(0, IMAGE_VOCAB, size=400).tolist()
        return srf.dsr_inputs(text, low, START_OF_IMAGE)
    grid = rng.integers(0, IMAGE_VOCAB, size=3600)
    grid[np.array(srf.lopar_mask(1))] = START_OF_IMAGE
    return srf.itersr_inputs(text, grid.tolist())


@torch.inference_mode()
def bench_one(opts):
    torch.set_num_threads(opts.threads)
    path = os.path.join(opts.model, opts.which)
    t0 = time.perf_counter()
    device = torch.device(opts.device)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[opts.dtype]
    model = srf.load_ours(path, opts.attention).to(device=device, dtype=dtype)
    load_s = time.perf_counter() - t0
    tokens, pos, mask = (t.to(device) for t in inputs(opts.which, opts.text_len, opts.seed))
    rss_loaded = rss_mb()
    times = []
    for i in range(opts.warmup + opts.repeats):
        t = time.perf_counter()
        logits, *_ = model(tokens, pos, mask)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t
        if i >= opts.warmup:
            times.append(dt)
    assert logits.shape == (1, tokens.shape[1], IMAGE_VOCAB) and logits.dtype == torch.float32
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    extra = {}
    if opts.compare_local:   # equivalence check (after the peak-RSS reading)
        other = "local" if opts.attention == "dense" else "dense"
        model = srf.load_ours(path, other).to(device=device, dtype=dtype)
        logits2, *_ = model(tokens, pos, mask)
        extra["max_abs_diff_vs_" + other] = float((logits - logits2).abs().max())
    print(json.dumps({
        "impl": "torch", "model": opts.which, "attention": opts.attention, "batch": 1, "dtype": opts.dtype, "device": opts.device,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "seq_len": int(tokens.shape[1]), "text_len": opts.text_len, "threads": opts.threads,
        "seconds": min(times), "seconds_all": [round(x, 4) for x in times],
        "warmup": opts.warmup, "load_seconds": round(load_s, 3),
        "rss_after_load_mb": round(rss_loaded, 1), "peak_rss_mb": round(peak, 1),
        "logits_checksum": float(logits[0, -3600:, :8].double().sum()),
        "torch": torch.__version__, "num_layers": MID_MODEL["num_layers"], **extra,
    }), flush=True)


def main():
    ap = argparse.ArgumentParser(description="DSR / ItersR forward speed, PyTorch eager (SAT 0.4.12)")
    ap.add_argument("--make-model", metavar="DIR", help="write random mid-size DIR/dsr and DIR/itersr")
    ap.add_argument("--model", metavar="DIR", help="folder made by --make-model")
    ap.add_argument("--which", choices=["dsr", "itersr", "both"], default="both",
                    help="'both' runs each model in its own child process")
    ap.add_argument("--attention", choices=["dense", "local"], default="dense")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                    help="weights and activations (the 20000-code head stays float32, as in CogView2)")
    ap.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    ap.add_argument("--text-len", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=1, help="untimed forwards before the timed ones")
    ap.add_argument("--repeats", type=int, default=1, help="timed forwards; 'seconds' is the minimum")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--compare-local", action="store_true",
                    help="also run the other attention variant once and report the max |diff| of the logits")
    opts = ap.parse_args()

    if opts.make_model:
        make_models(opts.make_model, opts.seed)
        return
    if not opts.model:
        ap.error("--model DIR (or --make-model DIR) is required")
    if opts.which != "both":
        bench_one(opts)
        return
    for kind in KINDS:
        cmd = [sys.executable, os.path.abspath(__file__), "--model", opts.model, "--which", kind,
               "--attention", opts.attention, "--threads", str(opts.threads), "--text-len", str(opts.text_len),
               "--device", opts.device, "--dtype", opts.dtype, "--warmup", str(opts.warmup), "--repeats", str(opts.repeats), "--seed", str(opts.seed)]
        if opts.compare_local:
            cmd.append("--compare-local")
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
