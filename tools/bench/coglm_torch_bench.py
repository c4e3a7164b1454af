#!/usr/bin/env python3
"""PyTorch-eager reference for CogLM stage-1 decoding speed (SwissArmyTransformer 0.4.12; CPU by
default, `--device cuda` for a GPU: tools/bench/gpu_bench.sh).

Run with the reference venv (tools/reference/setup_venv.sh):

  # once: a random mid-size CogLM in SAT folder layout (~800 MB, float32), under target/
  .venv-ref/bin/python tools/bench/coglm_torch_bench.py --make-model target/bench/coglm-mid

  # decode: context forward (text + start_of_image), then N cached steps; only the N steps
  # are timed; prints one JSON line
  .venv-ref/bin/python tools/bench/coglm_torch_bench.py --model target/bench/coglm-mid \
      --batch 4 --dtype f32 --steps 32 --text-len 16 --threads 2

The model is SAT's BaseModel with SAT's CachedAutoregressiveMixin, loaded with SAT's
from_pretrained. As in CogView2 (cogview2_text2image.py):
  * the context forward runs at batch 1, the KV cache (SAT `mems`) is expanded to the batch
    on the first incremental step (SAT's mixin and update_mems do that);
  * text keys get +1.4 through `log_attention_weights`; attention goes through SAT's
    `standard_attention` (SAT v0.2.1's default) because 0.4.12's default attention drops
    log_attention_weights on the all-ones mask rows of incremental steps (docs/parity.md);
  * the head computes only the image-vocabulary logits, h @ word_embeddings[:image_vocab].T,
    in float32 (InferenceModel.final_forward); the next token is the argmax (a cheap stand-in
    for cluster sampling).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import torch

from sat.model import BaseModel, BaseMixin
from sat.model.cached_autoregressive_model import CachedAutoregressiveMixin
from sat.transformer_defaults import standard_attention
from sat.training.model_io import save_checkpoint
from sat.generation.autoregressive_sampling import update_mems

SOI_POSITION = 512
TEXT_BIAS = 1.4  # CogView2 recipe attn_plus

MID_MODEL = dict(num_layers=12, hidden_size=768, num_attention_heads=12, vocab_size=150003,
                 max_sequence_length=1024)
MID_EXTRA = dict(image_vocab_size=20000, start_of_image_id=150000)


class V021AttentionMixin(BaseMixin):
    """Route attention to SAT's standard_attention (the v0.2.1 default; honours
    log_attention_weights on every step)."""

    def attention_fn(self, query_layer, key_layer, value_layer, attention_mask,
                     attention_dropout=None, **kw_args):
        return standard_attention(query_layer, key_layer, value_layer, attention_mask,
                                  attention_dropout=attention_dropout, **kw_args)


class CogLMBench(BaseModel):
    """BaseModel + v0.2.1 attention routing + KV cache, with CogView2's image-only fp32 head."""

    def __init__(self, args, transformer=None, **kwargs):
        super().__init__(args, transformer=transformer, **kwargs)
        self.image_vocab_size = int(getattr(args, "image_vocab_size", 20000))
        self.add_mixin("v021-attention", V021AttentionMixin())
        self.add_mixin("auto-regressive", CachedAutoregressiveMixin())

    def final_forward(self, logits, **kw_args):
        w = self.transformer.word_embeddings.weight[: self.image_vocab_size]
        return torch.nn.functional.linear(logits.float(), w.float())


def make_model(out_dir, seed):
    torch.manual_seed(seed)
    args = BaseModel.get_args(**MID_MODEL, layernorm_order="sandwich", layernorm_epsilon=1e-5,
                              hidden_dropout=0.0, attention_dropout=0.0)
    model = BaseModel(args)  # SAT's own random init (normal std 0.02; LN weight 1, bias 0)
    os.makedirs(out_dir, exist_ok=True)
    args.save = out_dir
    args.mode = "inference"
    save_checkpoint(1, model, None, None, args)
    cfg_path = os.path.join(out_dir, "model_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg.update(MID_EXTRA)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=4)
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"made": out_dir, "params": n, "config": cfg}))


def coglm_context(text_len, n_total, vocab_lo, vocab_hi, soi_id, gen):
    """Random text ids + start_of_image; the full [L, L] mask, positions and text bias."""
    text = torch.randint(vocab_lo, vocab_hi, (text_len,), generator=gen)
    ctx = torch.cat([text, torch.tensor([soi_id])]).unsqueeze(0)
    mask = torch.tril(torch.ones(n_total, n_total))
    mask[:, :text_len] = 1.0
    pos = torch.empty(n_total, dtype=torch.long)
    pos[:text_len] = torch.arange(text_len)
    pos[text_len:] = SOI_POSITION + torch.arange(n_total - text_len)
    law = torch.zeros(n_total, n_total)
    law[:, :text_len] = TEXT_BIAS
    return ctx, mask.view(1, 1, n_total, n_total), pos.unsqueeze(0), law


def sync(device):
    """Wait for the GPU's queued kernels (timings on CUDA measure the work, not its launch)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decode(model, ctx, mask, pos, law, batch, steps):
    """Context forward at batch 1, then `steps` cached steps at batch `batch`.

    Mirrors the body of SAT's filling_sequence (model call with mems + update_mems), with an
    argmax in place of the sampling strategy. Returns (seconds for the cached steps, tokens).
    """
    dtype = next(model.parameters()).dtype
    mask = mask.to(dtype)
    law = law.to(dtype)
    n_ctx = ctx.shape[1]
    logits, *layers = model(input_ids=ctx, position_ids=pos[:, :n_ctx],
                            attention_mask=mask[..., :n_ctx, :n_ctx], mems=None,
                            log_attention_weights=law[..., :n_ctx, :n_ctx])
    mems = update_mems([o["mem_kv"] for o in layers], None, max_memory_length=100000)
    nxt = logits[:, -1].argmax(-1, keepdim=True).expand(batch, 1)
    out = [nxt]
    sync(ctx.device)
    t0 = time.perf_counter()
    for i in range(steps):
        q = n_ctx + i  # index of the token being fed
        logits, *layers = model(input_ids=nxt, position_ids=pos[:, q:q + 1],
                                attention_mask=mask[..., q:q + 1, :q + 1], mems=mems,
                                log_attention_weights=law[..., q:q + 1, :q + 1])
        mems = update_mems([o["mem_kv"] for o in layers], mems, max_memory_length=100000)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        out.append(nxt)
    sync(ctx.device)
    seconds = time.perf_counter() - t0
    return seconds, torch.cat(out, 1)


def prefill(model, ctx, mask, pos, law, n_total, image_vocab, gen):
    """One forward over the context and n_total - len(context) image tokens (no cache), image
    logits at every position, as cogview's `bench coglm --prefill` and the tch example's `prefill`.
    Returns the seconds of the forward."""
    dtype = next(model.parameters()).dtype
    images = torch.randint(0, image_vocab, (1, n_total - ctx.shape[1]), generator=gen).to(ctx.device)
    ids = torch.cat([ctx, images], 1)
    sync(ctx.device)
    t0 = time.perf_counter()
    logits, *_ = model(input_ids=ids, position_ids=pos[:, :n_total], attention_mask=mask.to(dtype),
                       mems=None, log_attention_weights=law.to(dtype))
    sync(ctx.device)
    seconds = time.perf_counter() - t0
    assert logits.shape == (1, n_total, image_vocab), logits.shape
    return seconds


def run_prefill(opts, model, args, device, soi, image_vocab):
    n_total = opts.prefill
    if not opts.text_len + 1 < n_total <= opts.text_len + 1 + args.max_sequence_length - SOI_POSITION:
        sys.exit(f"--prefill {n_total} must exceed the context ({opts.text_len} + 1) and fit the positions")
    gen = torch.Generator().manual_seed(opts.seed)
    ctx, mask, pos, law = (t.to(device) for t in coglm_context(opts.text_len, n_total, image_vocab, soi, soi, gen))
    with torch.inference_mode():
        times = [prefill(model, ctx, mask, pos, law, n_total, image_vocab, gen)
                 for _ in range(1 + opts.repeats)][1:]
    print(json.dumps({
        "impl": "pytorch", "op": "prefill", "tokens": n_total, "dtype": opts.dtype,
        "seconds": min(times), "seconds_all": [round(t, 4) for t in times],
        "threads": opts.threads, "torch": torch.__version__, "device": opts.device,
        "text_len": opts.text_len, "model": os.path.abspath(opts.model),
    }), flush=True)


def run(opts):
    torch.set_num_threads(opts.threads)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[opts.dtype]
    model, args = CogLMBench.from_pretrained(opts.model, args=None)
    device = torch.device(opts.device)
    model = model.to(device=device, dtype=dtype).eval()
    soi = int(getattr(args, "start_of_image_id", 150000))
    image_vocab = int(getattr(args, "image_vocab_size", 20000))
    if opts.prefill:
        run_prefill(opts, model, args, device, soi, image_vocab)
        return
    n_total = opts.text_len + 1 + max(opts.steps, opts.warmup_steps)  # context + fed tokens
    if opts.text_len > SOI_POSITION or SOI_POSITION + max(opts.steps, opts.warmup_steps) >= args.max_sequence_length:
        sys.exit(f"--steps {opts.steps} does not fit max_sequence_length {args.max_sequence_length}")
    gen = torch.Generator().manual_seed(opts.seed)
    ctx, mask, pos, law = (t.to(device) for t in coglm_context(opts.text_len, n_total, image_vocab, soi, soi, gen))

    with torch.inference_mode():
        decode(model, ctx, mask, pos, law, opts.batch, opts.warmup_steps)  # warm-up
        seconds, tokens = decode(model, ctx, mask, pos, law, opts.batch, opts.steps)
    assert tokens.shape == (opts.batch, opts.steps + 1) and int(tokens.max()) < image_vocab
    print(json.dumps({
        "impl": "pytorch", "batch": opts.batch, "dtype": opts.dtype, "steps": opts.steps,
        "tokens_per_s": opts.batch * opts.steps / seconds, "seconds": seconds,
        "threads": opts.threads, "torch": torch.__version__, "device": opts.device,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "text_len": opts.text_len, "warmup_steps": opts.warmup_steps,
        "model": os.path.abspath(opts.model),
    }), flush=True)


def main():
    ap = argparse.ArgumentParser(description="CogLM stage-1 decoding speed, PyTorch eager (SAT 0.4.12)")
    ap.add_argument("--make-model", metavar="DIR", help="write a random 12-layer/768 CogLM in SAT layout")
    ap.add_argument("--model", metavar="DIR", help="SAT model folder to benchmark")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--steps", type=int, default=32, help="timed incremental steps")
    ap.add_argument("--text-len", type=int, default=16)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--threads", type=int, default=max(1, os.cpu_count() or 1))
    ap.add_argument("--warmup-steps", type=int, default=1,
                    help="incremental steps of the untimed warm-up pass (after its context forward)")
    ap.add_argument("--prefill", type=int, default=0, metavar="N",
                    help="instead of decoding: time one uncached forward over N positions (text, "
                         "start_of_image, image tokens), image logits at each; one warm-up, then --repeats")
    ap.add_argument("--repeats", type=int, default=1, help="timed prefill forwards; 'seconds' is the best")
    ap.add_argument("--seed", type=int, default=1234)
    opts = ap.parse_args()
    if opts.make_model:
        torch.set_num_threads(opts.threads)
        make_model(opts.make_model, opts.seed)
    if opts.model:
        run(opts)
    if not (opts.make_model or opts.model):
        ap.error("give --make-model DIR and/or --model DIR")


if __name__ == "__main__":
    main()
