#!/usr/bin/env python3
"""Build the completion (editing stage 1) and inverse-prompt parity fixtures in
tests/fixtures/completion/ by EXECUTING the official CogView2 code on the tiny random CogLM of
tests/fixtures/coglm/tiny-f32 (SwissArmyTransformer 0.4.12, CPU).

Run with the reference venv (tools/reference/setup_venv.sh), from the repository root:

    nice .venv-ref/bin/python tools/reference/make_completion_fixtures.py

Options: --cogview2 PATH (a checkout, or a bare git repository, of THUDM/CogView2; default the
mirror /work/.mirror/THUDM+CogView2/repo), --rev REV (for a bare repository; default HEAD, which
is d92dbad there), --out DIR (default tests/fixtures/completion), --threads N (default 1).
To get the official code elsewhere:

    git clone https://github.com/THUDM/CogView2 /tmp/CogView2 && git -C /tmp/CogView2 checkout d92dbad
    .venv-ref/bin/python tools/reference/make_completion_fixtures.py --cogview2 /tmp/CogView2

The script is deterministic: re-running it rewrites byte-identical files.
Needs tests/fixtures/coglm/tiny-f32 (tools/reference/make_coglm_fixtures.py).

What runs (file formats and line references: tests/fixtures/completion/README.md):

* official code, unmodified (nothing of it is copied into this repository): the package
  `comp_pipeline/` (`__init__.py`, `base_completion.py`, `patch_completion.py`) is written to a
  temporary folder and imported as a package, with
  - `icetk` replaced by a stub whose `icetk['<start_of_image>']` is 1199 (nothing else of the
    tokenizer is used by the code that runs here);
  - `SwissArmyTransformer`, `SwissArmyTransformer.generation` and
    `SwissArmyTransformer.generation.autoregressive_sampling` aliased to SAT 0.4.12's `sat`,
    `sat.generation`, `sat.generation.autoregressive_sampling` (so BaseCompletion calls SAT's own
    `filling_sequence`; that file is identical in v0.2.1 and 0.4.12, see docs/parity.md).
  We call `cord2mask`, `PatchCompletion._surrounding_box_crop` and
  `BaseCompletion(model, strategy, log_attention_weight=1.4, max_inference_batch_size=8)
  (img_tokens, mask, txt_tokens, batch_size=1)`. The module-level name `filling_sequence` inside
  base_completion is wrapped by a transparent spy that records what BaseCompletion passes to it
  (the sequence with -1 holes, `log_attention_weights`, and the keywords `pos_ids`, `txt_len`,
  `context_length` of its `get_masks_and_position_ids_comp` partial) and what it returns.
* the model: tiny-f32 loaded with SAT's `from_pretrained` as a SAT BaseModel plus
  - `V021AttentionMixin` (make_coglm_fixtures.py: attention through SAT's `standard_attention`,
    as SAT v0.2.1 did; 0.4.12's default would drop the text bias on the KV-cache steps);
  - `CachedAutoregressiveMixin` (the KV cache; CogView2's InferenceModel is a
    CachedAutoregressiveModel, cogview2_text2image.py:160);
  - `final_forward` = `F.linear(h.float(), word_embeddings.weight[:1000].float())`, CogView2's
    `InferenceModel.final_forward` (cogview2_text2image.py:161-164, cogview2_completion.py) with
    the tiny image vocabulary 1000 instead of 20000.
* strategy: greedy (argmax over the 1000 image ids) with SAT's strategy interface, recording the
  logits row it receives at every sampled position.
* full forward: one non-cached forward (same model without the cache mixin) over the final
  sequence with the official `get_masks_and_position_ids_comp` (the recorded partial) and the
  recorded `log_attention_weights`. The script prints max |step logits - full-forward row|
  (row = sequence index of the previous token) for every case and fails above 1e-4.
* inverse prompt: the sequence, mask, positions and loss mask of cogview2_text2image.py:91-110,
  written out here (they sit inside `main()` there), scored by SAT's own `evaluate_perplexity`
  with the plain (non-cached, full-vocabulary) model. `tokenizer['<start_of_chinese>']` does
  not exist in the tiny vocabulary; 1198 stands in for it.
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import types

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np
import torch
import torch.nn.functional as F

import sat
import sat.generation
import sat.generation.autoregressive_sampling as sat_ar
from sat.generation.autoregressive_sampling import evaluate_perplexity

from make_coglm_fixtures import (  # noqa: E402  (the project's CogLM reference helpers)
    REPO, CogLMReference, IMAGE_VOCAB_SIZE, START_OF_IMAGE_ID, TEXT_ID_RANGE, max_abs,
)

DEFAULT_COGVIEW2 = "/work/.mirror/THUDM+CogView2/repo"
MODEL_DIR = os.path.join(REPO, "tests", "fixtures", "coglm", "tiny-f32")
COMP_PIPELINE_FILES = ["__init__.py", "base_completion.py", "patch_completion.py"]

TEXT_BIAS = 1.4                 # cogview2_completion.py: PatchCompletion(..., log_attention_weight=1.4)
MAX_INFERENCE_BATCH_SIZE = 8    # text_guided_completion.sh: --max-inference-batch-size 8
GRID = 20
INVERSE_START_TOKEN = 1198      # stands in for tokenizer['<start_of_chinese>']
CAPTION_ID_RANGE = (1000, 1198)  # caption ids exclude the stand-in start token

# name -> seed of the image / text (and of the mask for "ragged")
COMPLETION_CASES = {
    "official_rect": 7001,
    "two_regions": 7002,
    "single_cell": 7003,
    "ragged": 7004,
}
INVERSE_CASES = [(7101, 1), (7102, 4), (7103, 9)]   # (seed, caption length)


# ----------------------------------------------------------------------------------------------
# loading the official code

def read_official(cogview2, rev, rel_path):
    if os.path.isdir(os.path.join(cogview2, ".git")) or not os.path.exists(os.path.join(cogview2, "HEAD")):
        with open(os.path.join(cogview2, rel_path), encoding="utf-8") as f:
            return f.read()
    out = subprocess.run(["git", "-C", cogview2, "show", f"{rev}:{rel_path}"],
                         check=True, capture_output=True)
    return out.stdout.decode("utf-8")


def official_commit(cogview2, rev):
    try:
        out = subprocess.run(["git", "-C", cogview2, "rev-parse", rev], check=True, capture_output=True)
        return out.stdout.decode().strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


class _StubIcetk:
    """The only tokenizer use on the code paths we run: icetk['<start_of_image>']."""

    _special = {"<start_of_image>": START_OF_IMAGE_ID}

    def __getitem__(self, name):
        return self._special[name]

    def __getattr__(self, name):
        raise AttributeError(f"stub icetk has no {name!r} (not needed by the fixture code paths)")


def install_import_stubs():
    icetk_mod = types.ModuleType("icetk")
    icetk_mod.icetk = _StubIcetk()
    sys.modules["icetk"] = icetk_mod
    sys.modules["SwissArmyTransformer"] = sat
    sys.modules["SwissArmyTransformer.generation"] = sat.generation
    sys.modules["SwissArmyTransformer.generation.autoregressive_sampling"] = sat_ar


def import_comp_pipeline(cogview2, rev):
    """Import the official comp_pipeline package (unmodified) from a temporary folder."""
    install_import_stubs()
    with tempfile.TemporaryDirectory(prefix="cogview2_comp_") as tmp:
        pkg = os.path.join(tmp, "comp_pipeline")
        os.makedirs(pkg)
        for name in COMP_PIPELINE_FILES:
            with open(os.path.join(pkg, name), "w", encoding="utf-8") as f:
                f.write(read_official(cogview2, rev, f"comp_pipeline/{name}"))
        sys.path.insert(0, tmp)
        try:
            import comp_pipeline
            import comp_pipeline.base_completion
            import comp_pipeline.patch_completion
        finally:
            sys.path.remove(tmp)
    return comp_pipeline


class FillingSequenceSpy:
    """Wraps SAT's filling_sequence; records BaseCompletion's arguments and the result."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __call__(self, model, seq, batch_size, **kw):
        get_func = kw["get_masks_and_position_ids"]
        assert isinstance(get_func, functools.partial)
        rec = {
            "seq": seq.clone(),
            "batch_size": batch_size,
            "log_attention_weights": kw["log_attention_weights"].clone(),
            "get_func": get_func,
        }
        out = self.inner(model, seq, batch_size, **kw)
        rec["output_tokens"] = out[0].clone()
        self.calls.append(rec)
        return out


# ----------------------------------------------------------------------------------------------
# model and strategy

class ImageVocabCogLM(CogLMReference):
    """CogLMReference (SAT BaseModel + v0.2.1 attention routing [+ KV cache]) with CogView2's
    InferenceModel.final_forward: logits over the image vocabulary only."""

    def final_forward(self, logits, **kwargs):
        return F.linear(logits.float(), self.transformer.word_embeddings.weight[:IMAGE_VOCAB_SIZE].float())


def load_model(cls, **kwargs):
    model, _ = cls.from_pretrained(MODEL_DIR, args=None, **kwargs)
    model.eval()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    return model


class RecordingGreedyStrategy:
    """SAT strategy interface; appends argmax over the image ids and records each logits row."""

    def __init__(self):
        self.rows = []
        self.is_done = False

    def forward(self, logits, tokens, mems):
        assert logits.shape[-1] == IMAGE_VOCAB_SIZE
        self.rows.append(logits[0, :IMAGE_VOCAB_SIZE].float().clone())
        nxt = logits[:, :IMAGE_VOCAB_SIZE].float().argmax(dim=-1, keepdim=True).to(tokens.dtype)
        return torch.cat([tokens, nxt], dim=1), mems

    def finalize(self, tokens, mems):
        return tokens, mems


# ----------------------------------------------------------------------------------------------
# masks

def make_mask(case, comp_pipeline, rng):
    """Returns a [20, 20] bool tensor."""
    if case == "official_rect":
        # input_comp.txt: "<text>\tassets/cute_girl.jpg\t0.4\t0.2\t1\t0.9", read by
        # cogview2_completion.py as x0, y0, x1, y1 and passed to cord2mask(x0, y0, x1, y1, size=480)
        full = comp_pipeline.cord2mask(0.4, 0.2, 1.0, 0.9, size=480)
        (h0, w0, h1, w1), crop_mask, _ = comp_pipeline.PatchCompletion._surrounding_box_crop(full)
        # for this rectangle the official crop is already the whole image
        assert (h0, w0, h1, w1) == (0, 0, 480, 480)
        # patch_completion.py, PatchCompletion.__call__:
        return (F.interpolate(crop_mask.float()[None, None, ...], size=20) >= 0.5).view(20, 20)
    m = torch.zeros(GRID, GRID, dtype=torch.bool)
    if case == "two_regions":
        m[3:7, 0:6] = True      # starts at column 0: its rows have no block starter
        m[11:16, 13:20] = True  # ends at column 19
    elif case == "single_cell":
        m[10, 10] = True
    elif case == "ragged":
        m = torch.from_numpy(rng.random((GRID, GRID)) < 0.3)
    else:
        raise ValueError(case)
    return m


# ----------------------------------------------------------------------------------------------
# completion cases

@torch.inference_mode()
def full_forward(model, tokens, get_func, log_attention_weights):
    ids, mask, pos = get_func(tokens)
    mask = mask.type_as(next(model.parameters()))
    logits, *_ = model(input_ids=ids, position_ids=pos, attention_mask=mask,
                       log_attention_weights=log_attention_weights)
    return logits[0].float().numpy()


@torch.inference_mode()
def make_completion_case(case, seed, comp_pipeline, spy, cached, full, out_dir):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, IMAGE_VOCAB_SIZE, size=GRID * GRID)
    text_len = int(rng.integers(5, 13))
    text = rng.integers(TEXT_ID_RANGE[0], TEXT_ID_RANGE[1], size=text_len)
    mask = make_mask(case, comp_pipeline, rng)
    assert mask.shape == (GRID, GRID) and mask.dtype == torch.bool

    img_tokens = torch.tensor(image, dtype=torch.long).view(1, GRID * GRID)
    txt_tokens = torch.tensor(text, dtype=torch.long)
    strategy = RecordingGreedyStrategy()
    comp = comp_pipeline.BaseCompletion(cached, strategy, log_attention_weight=TEXT_BIAS,
                                        max_inference_batch_size=MAX_INFERENCE_BATCH_SIZE)
    spy.calls.clear()
    out = comp(img_tokens, mask, txt_tokens, batch_size=1)
    assert out.shape == (1, GRID * GRID)
    assert len(spy.calls) == 1
    rec = spy.calls[0]
    kw = rec["get_func"].keywords
    pos_ids = kw["pos_ids"].tolist()
    context_length = int(kw["context_length"])
    assert kw["txt_len"] == text_len
    seq_in = rec["seq"].tolist()
    seq_out = rec["output_tokens"][0].tolist()
    n = len(seq_in)
    assert len(seq_out) == n == len(pos_ids) == text_len + 1 + GRID * GRID

    # generated positions: the -1 holes, in sequence order (= generation order)
    hole_idx = [k for k in range(n) if seq_in[k] < 0]
    generated_cells = [pos_ids[k] - 513 for k in hole_idx]
    mask_flat = mask.view(-1).tolist()
    assert generated_cells == [c for c in range(GRID * GRID) if mask_flat[c]]
    assert len(strategy.rows) == len(hole_idx)
    output = out[0].tolist()
    for k in range(text_len + 1, n):
        assert output[pos_ids[k] - 513] == seq_out[k]
    assert all(output[c] == int(image[c]) for c in range(GRID * GRID) if not mask_flat[c])
    assert all(seq_in[k] == seq_out[k] for k in range(n) if seq_in[k] >= 0)

    step_logits = torch.stack(strategy.rows).numpy().astype(np.float32)
    full_logits = full_forward(full, rec["output_tokens"][0], rec["get_func"],
                               rec["log_attention_weights"]).astype(np.float32)
    assert full_logits.shape == (n, IMAGE_VOCAB_SIZE)
    d = max_abs(step_logits, full_logits[[k - 1 for k in hole_idx]])
    # filling_sequence's own context length (first -1) vs BaseCompletion's
    fs_context = hole_idx[0]
    starters = [k for k in range(context_length, n) if seq_in[k] >= 0]

    fixture = {
        "image": [int(v) for v in image],
        "mask": [bool(v) for v in mask_flat],
        "text": [int(v) for v in text],
        "text_bias": TEXT_BIAS,
        "output": [int(v) for v in output],
        "generated_cells": [int(c) for c in generated_cells],
        "sequence_tokens": [int(v) for v in seq_out],
        "sequence_positions": [int(v) for v in pos_ids],
        "context_length": context_length,
    }
    with open(os.path.join(out_dir, f"{case}.json"), "w") as f:
        json.dump(fixture, f)
        f.write("\n")
    np.save(os.path.join(out_dir, f"{case}.step_logits.npy"), step_logits)
    # The full forward is not saved (1.6 MB per case): its rows at the predicting positions are
    # the step logits to 1e-5 (printed below), so the Rust test compares its own full forward
    # with the step logits at those rows.
    print(f"[{case}] text_len {text_len}, seq_len {n}, context_length {context_length} "
          f"(filling_sequence's first hole at {fs_context}), {len(starters)} block starters, "
          f"{len(hole_idx)} generated cells; step vs full-forward max|diff| {d:.3g}")
    return d


# ----------------------------------------------------------------------------------------------
# inverse-prompt cases (cogview2_text2image.py:91-110, with the tokenizer replaced by ids)

@torch.inference_mode()
def inverse_prompt_score(text_model, image, start_token, caption):
    coarse_samples = torch.tensor(image, dtype=torch.long).view(1, GRID * GRID)
    device = "cpu"
    image_text_seq = torch.cat(
        (
            coarse_samples[:, -400:],
            torch.tensor([start_token] + list(caption), device=device).expand(coarse_samples.shape[0], -1)
        ), dim=1)
    seqlen = image_text_seq.shape[1]
    attention_mask = torch.zeros(seqlen, seqlen, device=device, dtype=torch.long)
    attention_mask[:, :400] = 1
    attention_mask[400:, 400:] = 1
    attention_mask[400:, 400:].tril_()
    position_ids = torch.zeros(seqlen, device=device, dtype=torch.long)
    torch.arange(513, 513 + 400, out=position_ids[:400])
    torch.arange(0, seqlen - 400, out=position_ids[400:])
    loss_mask = torch.zeros(seqlen, device=device, dtype=torch.long)
    loss_mask[401:] = 1
    scores = evaluate_perplexity(
        text_model, image_text_seq, attention_mask,
        position_ids, loss_mask
    )
    assert scores.shape == (1,)
    return scores.tolist()[0]


def make_inverse_cases(plain, cached_full_vocab, out_dir):
    cases = []
    for seed, cap_len in INVERSE_CASES:
        rng = np.random.default_rng(seed)
        image = [int(v) for v in rng.integers(0, IMAGE_VOCAB_SIZE, size=GRID * GRID)]
        caption = [int(v) for v in rng.integers(CAPTION_ID_RANGE[0], CAPTION_ID_RANGE[1], size=cap_len)]
        score = inverse_prompt_score(plain, image, INVERSE_START_TOKEN, caption)
        # CogView2 calls a CachedAutoregressiveModel without mems: must be the same number
        score_cached = inverse_prompt_score(cached_full_vocab, image, INVERSE_START_TOKEN, caption)
        print(f"[inverse_prompt] caption length {cap_len}: evaluate_perplexity {score!r} "
              f"(cached-model class: {score_cached!r})")
        assert abs(score - score_cached) <= 1e-6
        cases.append({"image": image, "start_token": INVERSE_START_TOKEN, "caption": caption,
                      "official_score": float(score)})
    with open(os.path.join(out_dir, "inverse_prompt.json"), "w") as f:
        json.dump(cases, f)
        f.write("\n")


# ----------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cogview2", default=DEFAULT_COGVIEW2,
                    help="THUDM/CogView2 checkout or bare git repository")
    ap.add_argument("--rev", default="HEAD", help="revision, for a bare repository")
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "completion"))
    ap.add_argument("--threads", type=int, default=1)
    opts = ap.parse_args()
    torch.set_num_threads(opts.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(opts.out, exist_ok=True)
    print(f"torch {torch.__version__}, SwissArmyTransformer {sat.__version__}, numpy {np.__version__}; "
          f"CogView2 {official_commit(opts.cogview2, opts.rev)}")

    comp_pipeline = import_comp_pipeline(opts.cogview2, opts.rev)
    bc = comp_pipeline.base_completion
    assert bc.filling_sequence is sat_ar.filling_sequence
    spy = FillingSequenceSpy(bc.filling_sequence)
    bc.filling_sequence = spy

    cached = load_model(ImageVocabCogLM, cached=True)    # InferenceModel (KV cache), image vocab
    full = load_model(ImageVocabCogLM)                    # same weights, no cache
    plain = load_model(CogLMReference)                    # text_model: full vocabulary, no cache
    plain_cached = load_model(CogLMReference, cached=True)

    diffs = {}
    for case, seed in COMPLETION_CASES.items():
        diffs[case] = make_completion_case(case, seed, comp_pipeline, spy, cached, full, opts.out)
    make_inverse_cases(plain, plain_cached, opts.out)

    worst = max(diffs.values())
    print("step logits (KV cache) vs full forward, max |diff|: "
          + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
    total = sum(os.path.getsize(os.path.join(opts.out, f)) for f in sorted(os.listdir(opts.out)))
    print(f"fixture folder size: {total / 1e6:.2f} MB")
    if worst > 1e-4:
        sys.exit("the KV-cache path disagrees with the full forward")


if __name__ == "__main__":
    main()
