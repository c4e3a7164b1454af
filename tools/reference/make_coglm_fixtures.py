#!/usr/bin/env python3
"""Build the CogLM parity fixtures in tests/fixtures/coglm/ with SwissArmyTransformer 0.4.12.

Run with the reference venv (see tools/reference/setup_venv.sh):

    .venv-ref/bin/python tools/reference/make_coglm_fixtures.py [--out tests/fixtures/coglm]

What it does, for each tiny model (tiny-f32, tiny-f16):
  1. builds a small sandwich-LN CogLM with SAT's own BaseModel (tanh GELU, LayerNorm eps 1e-5,
     dropout 0), overwrites every parameter with seeded random values (LayerNorm weights/biases
     included), and saves it with SAT's own `save_checkpoint` (SAT folder layout: latest,
     model_config.json, <iter>/mp_rank_00_model_states.pt); tiny-f16 is cast to float16 first;
  2. adds the two keys the Rust loader reads to model_config.json (SAT ignores unknown keys);
  3. loads the folder back with SAT's `from_pretrained` into a float32 model (so the f16 weights
     are upcast) and runs SAT's forward on the official CogLM text-to-image layout (mask,
     positions and log_attention_weights as CogView2's cogview2_text2image.py builds them),
     saving the full-vocabulary logits of every position;
  4. (tiny-f32) runs the bias14 case through SAT's own `filling_sequence` +
     `CachedAutoregressiveMixin` (context forward, then one token per step with the KV cache)
     and saves the image-vocabulary logits of every step; prints the max |diff| against the
     full forward.

SAT 0.4.12 vs v0.2.1: SAT >= 0.4 replaced the default attention function (standard_attention in
v0.2.1) by `attention_fn_default`, which sends all-ones and plain lower-triangular masks to
torch's scaled_dot_product_attention and silently DROPS `log_attention_weights` there. The
incremental decoding steps have an all-ones mask row, so 0.4.12 would lose CogView2's text bias.
We therefore add a one-hook mixin that routes attention to SAT's own `standard_attention`
(which is line-for-line v0.2.1's default), exactly as v0.2.1 behaved. The script also prints
what plain 0.4.12 would give, to show where the difference appears. See docs/parity.md.
"""

import argparse
import json
import os
import shutil
import sys
from functools import partial

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import numpy as np
import torch
import torch.nn.functional as F

import sat
from sat.model import BaseModel, BaseMixin
from sat.model.cached_autoregressive_model import CachedAutoregressiveMixin
from sat.transformer_defaults import standard_attention
from sat.training.model_io import save_checkpoint
from sat.generation.autoregressive_sampling import filling_sequence

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# CogLM text-to-image layout constants (cogview2_text2image.py): start_of_image sits at
# position 512 and image token j at 513 + j.
SOI_POSITION = 512

MODELS = {
    "tiny-f32": dict(
        num_layers=2, hidden_size=32, num_attention_heads=4, inner_hidden_size=None,
        vocab_size=1200, max_sequence_length=1024, storage=torch.float32,
        iteration=1000, seed=20240601,
    ),
    "tiny-f16": dict(
        num_layers=3, hidden_size=48, num_attention_heads=6, inner_hidden_size=80,
        vocab_size=1200, max_sequence_length=1024, storage=torch.float16,
        iteration=432000, seed=20240602,
    ),
}
IMAGE_VOCAB_SIZE = 1000    # ids [0, 1000) are image codes (official: 20000)
START_OF_IMAGE_ID = 1199   # official: 150000
TEXT_ID_RANGE = (1000, 1199)

# name -> (text_len, n_image_tokens, text_bias, token seed offset); bias0 reuses bias14's tokens
CASES = {
    "bias14": (9, 16, 1.4, 0),
    "bias0": (9, 16, 0.0, 0),
    "long": (40, 60, 1.4, 1),
}


# ----------------------------------------------------------------------------------------------
# model classes (SAT BaseModel + mixins; no transformer code of our own)

class V021AttentionMixin(BaseMixin):
    """Use SAT's `standard_attention` for every attention call, as SAT v0.2.1 did by default.

    SAT 0.4.12's default `attention_fn_default` takes a torch SDPA shortcut for all-ones /
    lower-triangular masks that ignores `log_attention_weights`; v0.2.1 had no such shortcut.
    `standard_attention` itself is unchanged between the two versions.
    """

    def attention_fn(self, query_layer, key_layer, value_layer, attention_mask,
                     attention_dropout=None, **kw_args):
        return standard_attention(query_layer, key_layer, value_layer, attention_mask,
                                  attention_dropout=attention_dropout, **kw_args)


class CogLMReference(BaseModel):
    """BaseModel + (optionally) the v0.2.1 attention routing and SAT's KV-cache mixin.

    Mixin order matters: the cache mixin's attention_fn is `non_conflict` and wraps whatever
    attention_fn was registered before it, so the v0.2.1 routing must be added first.
    """

    def __init__(self, args, transformer=None, v021_attention=True, cached=False, **kwargs):
        super().__init__(args, transformer=transformer, **kwargs)
        if v021_attention:
            self.add_mixin("v021-attention", V021AttentionMixin())
        if cached:
            self.add_mixin("auto-regressive", CachedAutoregressiveMixin())


# ----------------------------------------------------------------------------------------------
# building, randomising, saving

def build_args(cfg):
    return BaseModel.get_args(
        num_layers=cfg["num_layers"],
        hidden_size=cfg["hidden_size"],
        num_attention_heads=cfg["num_attention_heads"],
        vocab_size=cfg["vocab_size"],
        max_sequence_length=cfg["max_sequence_length"],
        inner_hidden_size=cfg["inner_hidden_size"],
        layernorm_order="sandwich",
        layernorm_epsilon=1e-5,
        hidden_dropout=0.0,
        attention_dropout=0.0,
    )


@torch.no_grad()
def randomise_(model, seed):
    """Overwrite every parameter with seeded random values that are far from the init defaults.

    word/position embeddings ~ N(0, 0.5^2); linear weights ~ N(0, 1/fan_in) (so attention scores
    and GELU inputs are O(1), which makes head-split / GELU-variant mistakes visible); linear
    biases ~ 0.05 N; LayerNorm weight ~ 1 + 0.1 N, LayerNorm bias ~ 0.05 N.
    """
    gen = torch.Generator().manual_seed(seed)

    def normal(shape):
        return torch.randn(shape, generator=gen, dtype=torch.float32)

    for name, p in sorted(model.named_parameters()):
        if name.endswith("word_embeddings.weight") or name.endswith("position_embeddings.weight"):
            v = 0.5 * normal(p.shape)
        elif "layernorm" in name and name.endswith(".weight"):
            v = 1.0 + 0.1 * normal(p.shape)
        elif "layernorm" in name and name.endswith(".bias"):
            v = 0.05 * normal(p.shape)
        elif name.endswith(".weight"):
            assert p.dim() == 2, name
            v = normal(p.shape) / (p.shape[1] ** 0.5)
        elif name.endswith(".bias"):
            v = 0.05 * normal(p.shape)
        else:
            raise ValueError(f"unexpected parameter {name}")
        p.copy_(v.to(p.dtype))


def save_sat_folder(model, args, out_dir, iteration, storage_dtype):
    """Save with SAT's own save_checkpoint (inference mode: {'module': state_dict})."""
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    model = model.to(storage_dtype)
    args.save = out_dir
    args.mode = "inference"
    save_checkpoint(iteration, model, None, None, args)
    # extra keys for the Rust loader; SAT copies unknown model_config keys into args and
    # otherwise ignores them
    cfg_path = os.path.join(out_dir, "model_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["image_vocab_size"] = IMAGE_VOCAB_SIZE
    cfg["start_of_image_id"] = START_OF_IMAGE_ID
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=4)
    return cfg


def load_sat_folder(path, **kwargs):
    """SAT's own loading path; always builds a float32 model (f16 weights are upcast)."""
    model, _ = CogLMReference.from_pretrained(path, args=None, **kwargs)
    model.eval()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    return model


# ----------------------------------------------------------------------------------------------
# the CogLM text-to-image inputs (our own code, same semantics as CogView2's
# get_masks_and_position_ids_coglm and the log_attention_weights built in cogview2_text2image.py)

def coglm_masks_and_positions(seq, text_len):
    """seq: 1-D LongTensor (text ids, start_of_image, image ids or -1 placeholders).

    Returns tokens [1, L], attention_mask [1, 1, L, L] (1 = may attend), position_ids [1, L].
    Mask: causal over the whole sequence, plus every row sees all text columns [:text_len].
    Positions: text i -> i; the token at index text_len + j -> 512 + j.
    """
    n = seq.shape[0]
    mask = torch.tril(torch.ones(n, n))
    mask[:, :text_len] = 1.0
    positions = torch.empty(n, dtype=torch.long)
    positions[:text_len] = torch.arange(text_len)
    positions[text_len:] = SOI_POSITION + torch.arange(n - text_len)
    return seq.unsqueeze(0), mask.view(1, 1, n, n), positions.unsqueeze(0)


def log_attention_weights_for(n, text_len, text_bias):
    """[L, L] matrix added to the raw attention scores: text_bias in every column < text_len."""
    w = torch.zeros(n, n)
    w[:, :text_len] = text_bias
    return w


def make_case_tokens(seed, text_len, n_image):
    rng = np.random.default_rng(seed)
    text = rng.integers(TEXT_ID_RANGE[0], TEXT_ID_RANGE[1], size=text_len).tolist()
    image = rng.integers(0, IMAGE_VOCAB_SIZE, size=n_image).tolist()
    return text, image


@torch.inference_mode()
def full_forward_logits(model, tokens, text_len, text_bias):
    seq = torch.tensor(tokens, dtype=torch.long)
    ids, mask, pos = coglm_masks_and_positions(seq, text_len)
    law = log_attention_weights_for(len(tokens), text_len, text_bias)
    logits, *_ = model(input_ids=ids, position_ids=pos, attention_mask=mask,
                       log_attention_weights=law)
    return logits[0].float().numpy(), pos[0].tolist()


class ForcedTokensStrategy:
    """A sampling 'strategy' for SAT's filling_sequence that records the logits of each step and
    then appends a predetermined token instead of sampling."""

    def __init__(self, forced, keep_vocab):
        self.forced = list(forced)
        self.keep_vocab = keep_vocab
        self.records = []
        self.is_done = False

    def forward(self, logits, tokens, mems):
        self.records.append(logits[0, : self.keep_vocab].float().clone())
        nxt = self.forced[len(self.records) - 1]
        tokens = torch.cat([tokens, torch.full((tokens.shape[0], 1), nxt, dtype=tokens.dtype)], 1)
        return tokens, mems

    def finalize(self, tokens, mems):
        return tokens, mems


@torch.inference_mode()
def cached_steps_logits(model, text, image, text_bias):
    """Context forward over text + start_of_image, then one image token per step using the
    KV cache (SAT's filling_sequence + CachedAutoregressiveMixin). Returns [len(image), 1000]:
    row j = image-vocabulary logits predicting image token j."""
    text_len = len(text)
    seq = torch.tensor(text + [START_OF_IMAGE_ID] + [-1] * len(image), dtype=torch.long)
    law = log_attention_weights_for(seq.shape[0], text_len, text_bias)
    strategy = ForcedTokensStrategy(image, IMAGE_VOCAB_SIZE)
    out_tokens, _ = filling_sequence(
        model, seq, batch_size=1, strategy=strategy, log_attention_weights=law,
        get_masks_and_position_ids=partial(coglm_masks_and_positions, text_len=text_len),
    )
    assert out_tokens[0].tolist() == text + [START_OF_IMAGE_ID] + image
    assert len(strategy.records) == len(image)
    return torch.stack(strategy.records).numpy()


# ----------------------------------------------------------------------------------------------

def max_abs(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def make_model_fixtures(name, cfg, out_root, report):
    out_dir = os.path.join(out_root, name)
    torch.manual_seed(cfg["seed"])
    args = build_args(cfg)
    model = BaseModel(args)  # the class the official CogLM was trained/saved as
    randomise_(model, cfg["seed"])
    saved_cfg = save_sat_folder(model, args, out_dir, cfg["iteration"], cfg["storage"])
    print(f"[{name}] model_config.json: {json.dumps(saved_cfg)}")

    ckpt = torch.load(os.path.join(out_dir, str(cfg["iteration"]), "mp_rank_00_model_states.pt"),
                      map_location="cpu", weights_only=True)
    dtypes = sorted({str(t.dtype) for t in ckpt["module"].values()})
    print(f"[{name}] checkpoint keys {sorted(ckpt.keys())}, {len(ckpt['module'])} tensors, dtypes {dtypes}")

    ref = load_sat_folder(out_dir)                                     # v0.2.1 semantics
    plain = load_sat_folder(out_dir, v021_attention=False)             # SAT 0.4.12 as shipped
    erf = load_sat_folder(out_dir, activation_func=F.gelu)             # exact (erf) GELU
    cached = load_sat_folder(out_dir, cached=True)
    cached_plain = load_sat_folder(out_dir, v021_attention=False, cached=True)

    for case, (text_len, n_image, text_bias, seed_off) in CASES.items():
        text, image = make_case_tokens(cfg["seed"] * 10 + seed_off, text_len, n_image)
        tokens = text + [START_OF_IMAGE_ID] + image
        logits, positions = full_forward_logits(ref, tokens, text_len, text_bias)
        assert logits.shape == (len(tokens), cfg["vocab_size"]) and logits.dtype == np.float32
        assert positions[text_len] == SOI_POSITION and positions[-1] == SOI_POSITION + n_image
        with open(os.path.join(out_dir, f"case_{case}.json"), "w") as f:
            json.dump({"tokens": tokens, "positions": positions, "text_len": text_len,
                       "text_bias": text_bias}, f)
            f.write("\n")
        np.save(os.path.join(out_dir, f"case_{case}.logits.npy"), logits)

        d_plain = max_abs(logits, full_forward_logits(plain, tokens, text_len, text_bias)[0])
        d_erf = max_abs(logits, full_forward_logits(erf, tokens, text_len, text_bias)[0])
        print(f"[{name}] case {case}: seq_len {len(tokens)}, |logits| max {np.abs(logits).max():.3f}; "
              f"full forward: plain 0.4.12 vs v0.2.1 routing max|diff| {d_plain:.3g}; "
              f"erf-GELU vs tanh-GELU max|diff| {d_erf:.3g}")
        report.append((name, case, "full: plain-0.4.12 vs v0.2.1", d_plain))

        # KV-cache path (the official sampling loop) vs the full forward
        steps = cached_steps_logits(cached, text, image, text_bias)
        full_rows = logits[text_len: text_len + n_image, :IMAGE_VOCAB_SIZE]
        d_cached = max_abs(steps, full_rows)
        steps_plain = cached_steps_logits(cached_plain, text, image, text_bias)
        d_cached_plain = max_abs(steps_plain, full_rows)
        print(f"[{name}] case {case}: cached (filling_sequence + CachedAutoregressiveMixin) vs full "
              f"forward max|diff| {d_cached:.3g}; with plain 0.4.12 attention: {d_cached_plain:.3g}")
        report.append((name, case, "cached vs full", d_cached))
        report.append((name, case, "cached plain-0.4.12 vs full", d_cached_plain))
        if name == "tiny-f32" and case == "bias14":
            np.save(os.path.join(out_dir, "cached_steps.npy"), steps.astype(np.float32))
            print(f"[{name}] wrote cached_steps.npy {steps.shape}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "coglm"))
    ap.add_argument("--threads", type=int, default=1)
    opts = ap.parse_args()
    torch.set_num_threads(opts.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(opts.out, exist_ok=True)
    print(f"torch {torch.__version__}, SwissArmyTransformer {sat.__version__}, numpy {np.__version__}")

    report = []
    for name, cfg in MODELS.items():
        make_model_fixtures(name, cfg, opts.out, report)

    print("\nsummary (max |diff|):")
    for name, case, what, d in report:
        print(f"  {name:9s} {case:7s} {what:30s} {d:.3g}")
    worst = max(d for _, _, what, d in report if what == "cached vs full")
    print(f"max |diff| cached vs full forward over all cases: {worst:.3g}")
    if worst > 1e-4:
        sys.exit("cached path disagrees with the full forward")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(opts.out) for f in fs)
    print(f"fixture folder size: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
