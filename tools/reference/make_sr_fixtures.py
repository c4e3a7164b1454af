#!/usr/bin/env python3
"""Build the super-resolution parity fixtures in tests/fixtures/sr/ (DSR, ItersR, LoPAR, local
attention) with SwissArmyTransformer 0.4.12 on CPU.

Run with the reference venv (tools/reference/setup_venv.sh) and, preferably, a checkout of the
official CogView2 code (THUDM/CogView2 at d92dbad):

    git clone https://github.com/THUDM/CogView2 /tmp/CogView2 && git -C /tmp/CogView2 checkout d92dbad
    .venv-ref/bin/python tools/reference/make_sr_fixtures.py --cogview2 /tmp/CogView2

What runs where (details and every deviation: tests/fixtures/sr/README.md):

* official code (when --cogview2 is given; nothing of it is copied into this repository):
  - `sr_pipeline/dsr_model.py` and `sr_pipeline/itersr_model.py` are imported unmodified. Their
    `SwissArmyTransformer.*` imports are pointed at SAT 0.4.12's `sat.*` modules,
    `deepspeed...get_cuda_rng_tracker` (training-only) at a stub, and
    `SwissArmyTransformer.ops.local_attention_function` at our pure-PyTorch kernel reference
    (tools/reference/local_attention.py) instead of the CUDA extension;
  - `filling_sequence_dsr` / `filling_sequence_itersr` are taken from `dsr_sampling.py` /
    `itersr_sampling.py` with `ast` and executed unmodified, except that their default argument
    `strategy=IterativeEntfilterStrategy(topk=10)` is dropped (evaluating it at definition time
    needs CUDA and cluster_label.npy; we always pass our own recording strategy);
    `tokenizer['<start_of_image>']` resolves to 1199;
  - the LoPAR table and top-k list are read from `iterative_sr.py` with `ast`.
  The models are built and loaded the way DirectSuperResolution / IterativeSuperResolution do
  it (model class constructor + SAT `load_checkpoint`), not with 0.4.12's `from_pretrained`,
  whose `get_model` passes a `params_dtype` keyword the official constructors do not accept.
* our re-implementation (always run): `SrReference` below, a SAT `BaseModel` with the same
  mixins and state-dict names and our own attention code, in two variants: `local` (the two
  windows through our f_similar/f_weighting reference) and `dense` (one masked softmax over all
  keys with the window pattern as a 0/1 mask). Without --cogview2 the fixtures come from
  `local`; with it, from the official classes, and the script prints the max |diff| between
  official, local and dense on every case.
"""

import argparse
import ast
import importlib.util
import json
import math
import os
import shutil
import sys
import types

os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

import numpy as np
import torch
import torch.nn.functional as F

import sat
from sat.arguments import update_args_with_file
from sat.model import BaseModel, BaseMixin
from sat.mpu import ColumnParallelLinear, RowParallelLinear
from sat.training.model_io import load_checkpoint, save_checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import local_attention as la  # noqa: E402

# ----------------------------------------------------------------------------------------------
# official geometry (direct_sr.py, iterative_sr.py, dsr_sampling.py, itersr_sampling.py)

DSR_LAYOUT = [96, 496, 4096]       # [text (left-padded) | + 400 low-res | + 3600 high-res]
ITERSR_LAYOUT = [16, 3616]         # [text (truncated to 16, left-padded) | + 3600 high-res]
NEW_SEQUENCE_LENGTH = 4624         # max_sequence_length 1024 + 3600 extra positions
KERNEL_SIZE = 5                    # high-res self window: (2*5-1) x 5 = 9 rows x 5 columns
KERNEL_SIZE2 = 5                   # DSR cross-resolution window: 5 x 5 on the 20 x 20 grid
LOW_EDGE, HIGH_EDGE = 20, 60
LOW_RES_POS0, HIGH_RES_POS0 = 513, 1024
PAD_ID = 0                         # official left padding id (masked out as a key)

# tiny-model vocabulary (official: 20000 image codes, 150000 = <start_of_image>)
IMAGE_VOCAB_SIZE = 200
START_OF_IMAGE_ID = 1199           # also the DSR placeholder and the ItersR [MASK]
TEXT_ID_RANGE = (IMAGE_VOCAB_SIZE, START_OF_IMAGE_ID)

# LoPAR (iterative_sr.py): our own transcription, checked against the official file when given
LOPAR_TABLE = [[-1, 0, 1, 2, 3, 4],
               [0, -1, 2, -1, -2, 5],
               [1, -2, 3, 4, 5, 6],
               [2, 3, 4, 5, -1, 1],
               [3, -1, -2, 0, -1, 2],
               [4, 5, 6, 1, 3, -2]]
LOPAR_TOPKS = [60, 40, 40, 40, 20, 20, 10]   # indexed by iteration 1..6 (entry 0 unused)

TINY = dict(num_layers=2, hidden_size=32, num_attention_heads=4, inner_hidden_size=None,
            vocab_size=1200, max_sequence_length=1024)
MODELS = {
    "dsr-tiny": dict(kind="dsr", iteration=20000, seed=20240611, **TINY),
    "itersr-tiny": dict(kind="itersr", iteration=20000, seed=20240612, **TINY),
}
# name -> (text_len, lopar iteration or None, seed offset)
CASES = {
    "dsr-tiny": {"short": (7, None, 0), "long": (95, None, 1)},
    "itersr-tiny": {"iter1": (10, 1, 0), "iter4_long_text": (20, 4, 1)},
}


def recorded_cells():
    """High-res cells (row-major index into 60x60) whose logits are stored: rows 0, 1 and 59,
    columns 0 and 59, and every 7th cell."""
    cells = set(range(0, 3600, 7))
    cells |= set(range(0, 2 * HIGH_EDGE)) | set(range(3600 - HIGH_EDGE, 3600))
    cells |= {r * HIGH_EDGE for r in range(HIGH_EDGE)} | {r * HIGH_EDGE + HIGH_EDGE - 1 for r in range(HIGH_EDGE)}
    return sorted(cells)


# ----------------------------------------------------------------------------------------------
# our re-implementation: SAT BaseModel + the two mixins (same names/shapes as the official ones)

class ExtraPositionEmbeddingMixin(BaseMixin):
    """`mixins.extra_position_embedding.position_embeddings.weight` [3600, hidden]: the
    embeddings of positions 1024..4623 (high-res cell k <-> row k)."""

    def __init__(self, n, hidden_size):
        super().__init__()
        self.position_embeddings = torch.nn.Embedding(n, hidden_size)


class AttentionPlusMixin(BaseMixin):
    """`mixins.attention_plus.{query_key_value,dense}.{i}`: DSR's second attention projection
    per layer, used by the high-res tokens."""

    def __init__(self, num_layers, hidden_size):
        super().__init__()
        self.query_key_value = torch.nn.ModuleList(
            [ColumnParallelLinear(hidden_size, 3 * hidden_size, stride=3, gather_output=False)
             for _ in range(num_layers)])
        self.dense = torch.nn.ModuleList(
            [RowParallelLinear(hidden_size, hidden_size, input_is_parallel=True)
             for _ in range(num_layers)])


def _heads(x, n_head):
    """[b, s, n_head*hd] -> [b, n_head, s, hd] (head i = columns i*hd..(i+1)*hd)."""
    b, s, hh = x.shape
    return x.view(b, s, n_head, hh // n_head).permute(0, 2, 1, 3)


def _merge(x):
    """[b, n_head, s, hd] -> [b, s, n_head*hd]."""
    b, nh, s, hd = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, s, nh * hd)


def _grid(x, edge):
    """[b, nh, edge*edge, hd] -> [b*nh, hd, edge, edge] (the kernel's [N, C, H, W])."""
    b, nh, s, hd = x.shape
    return x.permute(0, 1, 3, 2).reshape(b * nh, hd, edge, edge)


def _ungrid(x, b, nh):
    """[b*nh, hd, H, W] -> [b, nh, H*W, hd]."""
    n, hd, H, W = x.shape
    return x.view(b, nh, hd, H * W).transpose(-1, -2)


def _masked_softmax(scores, allowed):
    """The SAT/CogView2 masking: scores*mask - 10000*(1-mask), then softmax (written as a
    masked_fill, which gives the same values: exactly -10000 where masked)."""
    return F.softmax(scores.masked_fill(~allowed, -10000.0), dim=-1)


_MASK_CACHE = {}


def window_masks():
    """Bool masks of the two official windows (cached): high-res self 9x5 [3600, 3600] and DSR
    cross-resolution 5x5 centred at (y//3, x//3) [3600, 400]."""
    if not _MASK_CACHE:
        _MASK_CACHE["self"] = la.window_mask(HIGH_EDGE, HIGH_EDGE, HIGH_EDGE, HIGH_EDGE,
                                             2 * KERNEL_SIZE - 1, KERNEL_SIZE)
        _MASK_CACHE["cross"] = la.window_mask(HIGH_EDGE, HIGH_EDGE, LOW_EDGE, LOW_EDGE,
                                              KERNEL_SIZE2, KERNEL_SIZE2)
    return _MASK_CACHE["self"], _MASK_CACHE["cross"]


class SrReference(BaseModel):
    """DSR (kind='dsr') or ItersR (kind='itersr') forward, our own code on SAT's BaseModel
    (sandwich layers, embeddings, final LayerNorm, MLP are SAT's).

    Forward inputs are those of the official filling functions: tokens [b, L], position_ids
    [L] (or [b, L]), and the mask: DSR level-0 mask [496, 496] (1 = may attend); ItersR text key
    mask [1, 16]. attention='local' uses the local-attention kernel reference, 'dense' one masked
    softmax over all keys.
    """

    def __init__(self, args, transformer=None, kind=None, attention="local", **kwargs):
        super().__init__(args, transformer=transformer, **kwargs)
        if kind is None:   # building: args.sr_kind; loading: the official class name in the config
            kind = getattr(args, "sr_kind", None) or {"DsrModel": "dsr", "ItersrModel": "itersr"}[args.model_class]
        self.kind = kind
        self.attention_mode = attention
        self.original_sequence_length = args.max_sequence_length
        layout = args.layout
        self.layout = [int(x) for x in layout.split(",")] if isinstance(layout, str) else list(layout)
        self.image_vocab_size = int(getattr(args, "image_vocab_size", 20000))
        self.add_mixin("extra_position_embedding", ExtraPositionEmbeddingMixin(
            args.new_sequence_length - args.max_sequence_length, args.hidden_size))
        if self.kind == "dsr":
            self.add_mixin("attention_plus", AttentionPlusMixin(args.num_layers, args.hidden_size))
        else:
            assert self.kind == "itersr", self.kind

    @classmethod
    def add_model_specific_args(cls, parser):
        # the same four arguments as the official DsrModel/ItersrModel declare
        group = parser.add_argument_group("SR", "super-resolution configuration")
        group.add_argument("--kernel-size", type=int, default=KERNEL_SIZE)
        group.add_argument("--kernel-size2", type=int, default=KERNEL_SIZE2)
        group.add_argument("--layout", type=str, default="96,496,4096")
        group.add_argument("--new-sequence-length", type=int, default=NEW_SEQUENCE_LENGTH)
        return parser

    # -- hooks ----------------------------------------------------------------------------
    def position_embedding_forward(self, position_ids, **kw_args):
        # DSR: the first 496 positions (text + low-res) use the base table; ItersR: the first
        # 16 (text). The rest (high-res, ids 1024..4623) use the extra table at id - 1024.
        split = self.layout[1] if self.kind == "dsr" else self.layout[0]
        base = self.transformer.position_embeddings(position_ids[..., :split])
        extra = self.get_mixin("extra_position_embedding").position_embeddings(
            position_ids[..., split:] - self.original_sequence_length)
        return torch.cat((base, extra), dim=-2)

    def final_forward(self, logits, **kw_args):
        w = self.transformer.word_embeddings.weight[: self.image_vocab_size]
        return F.linear(logits.float(), w.float())

    def attention_forward(self, hidden_states, mask, layer_id=None, **kw_args):
        attn = self.transformer.layers[layer_id].attention
        n_head = attn.num_attention_heads_per_partition
        if self.kind == "dsr":
            s0 = self.layout[1]
            plus = self.get_mixin("attention_plus")
            q0, k0, v0 = attn.query_key_value(hidden_states[:, :s0]).chunk(3, dim=-1)
            q1, k1, v1 = plus.query_key_value[layer_id](hidden_states[:, s0:]).chunk(3, dim=-1)
            if self.attention_mode == "dense":
                c0, c1 = dsr_attention_dense(q0, k0, v0, q1, k1, v1, self._full_mask(mask), n_head)
            else:
                c0, c1 = dsr_attention_local(q0, k0, v0, q1, k1, v1, mask, n_head, self.layout[0])
            return torch.cat((attn.dense(c0), plus.dense[layer_id](c1)), dim=1)
        s0 = self.layout[0]
        q, k, v = attn.query_key_value(hidden_states).chunk(3, dim=-1)
        if self.attention_mode == "dense":
            ctx = itersr_attention_dense(q, k, v, self._full_mask(mask), n_head)
        else:
            ctx = itersr_attention_local(q[:, :s0], k[:, :s0], v[:, :s0], q[:, s0:], k[:, s0:], v[:, s0:],
                                         mask, n_head)
        return attn.dense(ctx)

    def _full_mask(self, mask):
        """Dense [L, L] bool mask, built once per forward (every layer gets the same mask object)."""
        cached = getattr(self, "_mask_cache", None)
        if cached is None or cached[0] is not mask:
            # the window masks are built on the CPU; the dense mask goes where the input is
            host = mask.cpu()
            full = (dsr_full_mask(host) if self.kind == "dsr" else itersr_full_mask(host)).to(mask.device)
            cached = (mask, full)
            self._mask_cache = cached
        return cached[1]


def dsr_attention_local(q0, k0, v0, q1, k1, v1, mask0, n_head, text_len):
    """DSR attention (semantics of sparse_attention_2d_light, our code).

    Level 0 (text + low-res, 496 rows): full attention under mask0 [496, 496].
    Level 1 (3600 high-res rows): one softmax over 25 cross-resolution scores (5x5 window of the
    low-res keys of level 0, centre (y//3, x//3)) followed by 45 self scores (9x5 window of the
    high-res keys); the output sums both weighted neighbourhoods.
    Returns (context0 [b, 496, h], context1 [b, 3600, h]).
    """
    q0, k0, v0 = (_heads(t, n_head) for t in (q0, k0, v0))
    q1, k1, v1 = (_heads(t, n_head) for t in (q1, k1, v1))
    b, nh, _, hd = q0.shape
    scale = 1.0 / math.sqrt(hd)
    s00 = torch.matmul(q0 * scale, k0.transpose(-1, -2))
    ctx0 = torch.matmul(_masked_softmax(s00, mask0 > 0), v0)

    qg = _grid(q1 * scale, HIGH_EDGE)
    kg, vg = _grid(k1, HIGH_EDGE), _grid(v1, HIGH_EDGE)
    k_low, v_low = _grid(k0[:, :, text_len:], LOW_EDGE), _grid(v0[:, :, text_len:], LOW_EDGE)
    s_self = la.f_similar(qg, kg, 2 * KERNEL_SIZE - 1, KERNEL_SIZE, False)   # [bn, 60, 60, 45]
    s_cross = la.f_similar(qg, k_low, KERNEL_SIZE2, KERNEL_SIZE2, False)     # [bn, 60, 60, 25]
    n_cross = s_cross.shape[-1]
    probs = F.softmax(torch.cat((s_cross, s_self), dim=-1), dim=-1)
    ctx1 = la.f_weighting(vg, probs[..., n_cross:].contiguous(), 2 * KERNEL_SIZE - 1, KERNEL_SIZE, False)
    ctx1 = ctx1 + la.f_weighting(v_low, probs[..., :n_cross].contiguous(), KERNEL_SIZE2, KERNEL_SIZE2, False)
    return _merge(ctx0), _merge(_ungrid(ctx1, b, nh))


def dsr_full_mask(mask0):
    """[4096, 4096] bool: the dense equivalent of DSR's two-level pattern."""
    s0 = mask0.shape[-1]
    win_self, win_cross = window_masks()
    m = torch.zeros(s0 + HIGH_EDGE ** 2, s0 + HIGH_EDGE ** 2, dtype=torch.bool)
    m[:s0, :s0] = mask0 > 0
    m[s0:, s0 - LOW_EDGE ** 2: s0] = win_cross
    m[s0:, s0:] = win_self
    return m


def dsr_attention_dense(q0, k0, v0, q1, k1, v1, full_mask, n_head):
    """Same result as dsr_attention_local via one dense masked softmax over all 4096 keys
    (full_mask = dsr_full_mask(mask0))."""
    s0 = q0.shape[1]
    q = _heads(torch.cat((q0, q1), 1), n_head)
    k = _heads(torch.cat((k0, k1), 1), n_head)
    v = _heads(torch.cat((v0, v1), 1), n_head)
    ctx = _merge(_dense_attention(q, k, v, full_mask))
    return ctx[:, :s0], ctx[:, s0:]


def _dense_attention(q, k, v, allowed):
    """softmax(mask(q k^T / sqrt(hd))) v with in-place masking (one [b, nh, L, L] buffer)."""
    scores = torch.matmul(q / math.sqrt(q.shape[-1]), k.transpose(-1, -2))
    scores.masked_fill_(~allowed, -10000.0)
    return torch.matmul(F.softmax(scores, dim=-1), v)


def itersr_attention_local(q0, k0, v0, q1, k1, v1, key_mask, n_head):
    """ItersR attention (semantics of sparse_attention_2d_text, our code).

    Text rows (16): full attention over the non-pad text keys (key_mask [1, 16]).
    High-res rows: one softmax over the 16 text scores (pad keys masked) followed by the 45
    self scores of the 9x5 window. Returns the context [b, 16 + 3600, h].
    """
    q0, k0, v0 = (_heads(t, n_head) for t in (q0, k0, v0))
    q1, k1, v1 = (_heads(t, n_head) for t in (q1, k1, v1))
    b, nh, s0, hd = q0.shape
    scale = 1.0 / math.sqrt(hd)
    allowed = (key_mask > 0).view(1, 1, 1, s0)
    ctx0 = torch.matmul(_masked_softmax(torch.matmul(q0 * scale, k0.transpose(-1, -2)), allowed), v0)

    qg = _grid(q1 * scale, HIGH_EDGE)
    s_self = la.f_similar(qg, _grid(k1, HIGH_EDGE), 2 * KERNEL_SIZE - 1, KERNEL_SIZE, False)
    s_text = torch.matmul(q1 * scale, k0.transpose(-1, -2)).masked_fill(~allowed, -10000.0)
    s_text = s_text.reshape(b * nh, HIGH_EDGE, HIGH_EDGE, s0)
    probs = F.softmax(torch.cat((s_text, s_self), dim=-1), dim=-1)
    ctx1 = la.f_weighting(_grid(v1, HIGH_EDGE), probs[..., s0:].contiguous(), 2 * KERNEL_SIZE - 1, KERNEL_SIZE, False)
    ctx1 = _ungrid(ctx1, b, nh) + torch.matmul(probs[..., :s0].reshape(b, nh, -1, s0), v0)
    return _merge(torch.cat((ctx0, ctx1), dim=2))


def itersr_full_mask(key_mask):
    s0 = key_mask.shape[-1]
    win_self, _ = window_masks()
    m = torch.zeros(s0 + HIGH_EDGE ** 2, s0 + HIGH_EDGE ** 2, dtype=torch.bool)
    m[:, :s0] = (key_mask > 0).view(1, s0)
    m[s0:, s0:] = win_self
    return m


def itersr_attention_dense(q, k, v, full_mask, n_head):
    """Same result as itersr_attention_local via one dense masked softmax over all 3616 keys
    (full_mask = itersr_full_mask(key_mask))."""
    return _merge(_dense_attention(_heads(q, n_head), _heads(k, n_head), _heads(v, n_head), full_mask))


# ----------------------------------------------------------------------------------------------
# inputs (our code; same tensors as filling_sequence_dsr / filling_sequence_itersr build)

def dsr_inputs(text, low_res, placeholder):
    """Model inputs of the single DSR forward: tokens [1, 4096], positions [4096], mask
    [496, 496]. Output row 496 + k is high-res cell k."""
    n_pad = DSR_LAYOUT[0] - len(text)
    assert n_pad > 0, "DSR text must be at most 95 tokens"
    assert len(low_res) == LOW_EDGE ** 2
    tokens = [PAD_ID] * n_pad + list(text) + list(low_res) + [placeholder] * HIGH_EDGE ** 2
    s0 = DSR_LAYOUT[1]
    mask = torch.ones(s0, s0)
    mask[: DSR_LAYOUT[0], DSR_LAYOUT[0]:] = 0      # text rows do not see the image
    mask[n_pad:, :n_pad] = 0                       # nobody (but pads) sees the pads
    positions = [0] * n_pad + list(range(len(text))) \
        + list(range(LOW_RES_POS0, LOW_RES_POS0 + LOW_EDGE ** 2)) \
        + list(range(HIGH_RES_POS0, HIGH_RES_POS0 + HIGH_EDGE ** 2))
    return torch.tensor([tokens]), torch.tensor(positions), mask


def itersr_inputs(text, grid_tokens):
    """Model inputs of one ItersR forward: tokens [1, 3616], positions [3616], key mask [1, 16].
    Text is truncated to its first 16 tokens (IterativeSuperResolution.__call__)."""
    text = list(text)[: ITERSR_LAYOUT[0]]
    n_pad = ITERSR_LAYOUT[0] - len(text)
    assert len(grid_tokens) == HIGH_EDGE ** 2
    tokens = [PAD_ID] * n_pad + text + list(grid_tokens)
    key_mask = torch.ones(1, ITERSR_LAYOUT[0])
    key_mask[:, :n_pad] = 0
    positions = [0] * n_pad + list(range(len(text))) + list(range(HIGH_RES_POS0, HIGH_RES_POS0 + HIGH_EDGE ** 2))
    return torch.tensor([tokens]), torch.tensor(positions), key_mask


def lopar_value_grid(table=LOPAR_TABLE):
    """60x60 values, cell (r, c) -> table[r % 6][c % 6]."""
    return [[table[r % 6][c % 6] for c in range(HIGH_EDGE)] for r in range(HIGH_EDGE)]


def lopar_mask(iteration, table=LOPAR_TABLE):
    """Flat (row-major) bool list: cells re-sampled in this iteration (value >= iteration)."""
    return [v >= iteration for row in lopar_value_grid(table) for v in row]


# ----------------------------------------------------------------------------------------------
# the official code (optional): import shims and loaders

class _Stub:
    def __getattr__(self, name):
        raise RuntimeError(f"deepspeed stub: {name} is training-only and not available")


def _official_module(cogview2, relpath, name):
    """Import an official CogView2 file with SwissArmyTransformer -> sat (0.4.12) and the CUDA
    local attention -> our reference."""
    import sat.model.base_model
    import sat.model.transformer
    import sat.mpu
    import sat.mpu.utils
    ops = types.ModuleType("SwissArmyTransformer.ops")
    laf = types.ModuleType("SwissArmyTransformer.ops.local_attention_function")
    laf.f_similar, laf.f_weighting = la.f_similar, la.f_weighting
    ops.local_attention_function = laf
    shims = {
        "SwissArmyTransformer": sat,
        "SwissArmyTransformer.model": sat.model,
        "SwissArmyTransformer.model.base_model": sat.model.base_model,
        "SwissArmyTransformer.model.transformer": sat.model.transformer,
        "SwissArmyTransformer.mpu": sat.mpu,
        "SwissArmyTransformer.mpu.utils": sat.mpu.utils,
        "SwissArmyTransformer.ops": ops,
        "SwissArmyTransformer.ops.local_attention_function": laf,
    }
    sys.modules.update(shims)   # kept: the attention functions import f_similar at call time
    ds_names = ["deepspeed", "deepspeed.runtime", "deepspeed.runtime.activation_checkpointing",
                "deepspeed.runtime.activation_checkpointing.checkpointing"]
    saved = {n: sys.modules.get(n) for n in ds_names}
    for n in ds_names:
        m = types.ModuleType(n)
        m.get_cuda_rng_tracker = _Stub()
        sys.modules[n] = m
    try:
        spec = importlib.util.spec_from_file_location(name, os.path.join(cogview2, relpath))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:   # the fake deepspeed must not leak into SAT's own "is deepspeed installed" checks
        for n in ds_names:
            if saved[n] is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = saved[n]
    return mod


def _official_function(cogview2, relpath, fname, extra_globals):
    """Execute one top-level function of an official file, without its Call-valued defaults."""
    with open(os.path.join(cogview2, relpath)) as f:
        tree = ast.parse(f.read())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == fname)
    fn.args.defaults = [ast.Constant(None) if isinstance(d, ast.Call) else d for d in fn.args.defaults]
    module = ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[]))
    ns = {"torch": torch, "math": math, "np": np, "F": F, **extra_globals}
    exec(compile(module, os.path.join(cogview2, relpath), "exec"), ns)
    return ns[fname]


def official_lopar(cogview2):
    """(table 6x6, topks) as literals in iterative_sr.py."""
    with open(os.path.join(cogview2, "sr_pipeline", "iterative_sr.py")) as f:
        tree = ast.parse(f.read())
    table = topks = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "topks" for t in node.targets):
            topks = ast.literal_eval(node.value)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "tensor"
                and node.args and isinstance(node.args[0], ast.List) and len(node.args[0].elts) == 36):
            flat = ast.literal_eval(node.args[0])
            table = [flat[6 * r: 6 * r + 6] for r in range(6)]
    assert table is not None and topks is not None
    # the official tiling: .view(1, 6, 1, 6).expand(10, 6, 10, 6).reshape(-1)
    tiled = torch.tensor(sum(table, [])).view(1, 6, 1, 6).expand(10, 6, 10, 6).reshape(-1)
    return table, topks, tiled


class Official:
    def __init__(self, cogview2):
        self.dir = cogview2
        self.dsr_mod = _official_module(cogview2, "sr_pipeline/dsr_model.py", "cogview2_dsr_model")
        self.itersr_mod = _official_module(cogview2, "sr_pipeline/itersr_model.py", "cogview2_itersr_model")
        tok = {"<start_of_image>": START_OF_IMAGE_ID}
        self.filling_dsr = _official_function(cogview2, "sr_pipeline/dsr_sampling.py", "filling_sequence_dsr", {})
        self.filling_itersr = _official_function(cogview2, "sr_pipeline/itersr_sampling.py",
                                                 "filling_sequence_itersr", {"tokenizer": tok})

    def load(self, kind, path):
        """As DirectSuperResolution / IterativeSuperResolution.__init__: set the SR args, build
        the class, SAT load_checkpoint (inference mode: missing keys raise)."""
        cls = self.dsr_mod.DsrModel if kind == "dsr" else self.itersr_mod.ItersrModel
        args = cls.get_args()
        args = update_args_with_file(args, os.path.join(path, "model_config.json"))
        args.kernel_size, args.kernel_size2, args.new_sequence_length = 5, 5, 4624
        args.layout = [96, 496, 4096] if kind == "dsr" else [16, 3616]
        args.mode = "inference"
        model = cls(args)
        load_checkpoint(model, args, load_path=path)
        model.eval()
        return model


class RecordingStrategy:
    """Stands in for IterativeEntfilterStrategy: records the logits and 'samples' the argmax."""

    def __init__(self, kind):
        self.kind, self.logits = kind, []

    def forward(self, logits, tokens, temperature=None, **kw):
        self.logits.append(logits.detach().float().clone())
        pred = logits.argmax(dim=-1)
        if self.kind == "dsr":   # DSR's strategy shifts by one: new token j+1 <- output j
            return torch.cat((tokens[:, :1], pred), dim=1)
        return pred


@torch.inference_mode()
def official_dsr_logits(official, model, text, low_res):
    """As DirectSuperResolution.__call__ -> filling_sequence_dsr (one forward)."""
    text_t, img_t = torch.tensor([text]), torch.tensor([low_res])
    seq = torch.cat((text_t, img_t), dim=1)
    seq1 = torch.tensor([START_OF_IMAGE_ID] * 3601).unsqueeze(0).expand(1, -1)
    strat = RecordingStrategy("dsr")
    out = official.filling_dsr(model, seq, seq1, warmup_steps=1, block_hw=(1, 0), strategy=strat)
    assert len(strat.logits) == 1 and len(out) == 2
    logits = strat.logits[0][0]                                     # [4096, vocab]
    hi = logits[DSR_LAYOUT[1]:]                                     # placeholder k -> cell k
    assert out[1].shape == (1, 3600) and torch.equal(out[1][0], hi.argmax(-1)), "cell mapping"
    return hi


@torch.inference_mode()
def official_itersr_logits(official, model, text, grid_tokens):
    """As IterativeSuperResolution.__call__ (text[..., :16]) -> filling_sequence_itersr."""
    text_seq = torch.tensor([text]).clone()[..., :16]
    seq1 = torch.tensor([grid_tokens])
    strat = RecordingStrategy("itersr")
    out = official.filling_itersr(model, text_seq, seq1, warmup_steps=1, block_hw=(1, 0), strategy=strat)
    assert len(strat.logits) == 1
    logits = strat.logits[0][0]                                     # [3616, vocab]
    hi = logits[ITERSR_LAYOUT[0]:]
    masked = seq1[0] == START_OF_IMAGE_ID
    assert torch.equal(out[0][masked], hi.argmax(-1)[masked]) and torch.equal(out[0][~masked], seq1[0][~masked])
    return hi


@torch.inference_mode()
def ours_logits(model, kind, text, image):
    if kind == "dsr":
        tokens, pos, mask = dsr_inputs(text, image, START_OF_IMAGE_ID)
        logits, *_ = model(tokens, pos, mask)
        return logits[0, DSR_LAYOUT[1]:]
    tokens, pos, mask = itersr_inputs(text, image)
    logits, *_ = model(tokens, pos, mask)
    return logits[0, ITERSR_LAYOUT[0]:]


# ----------------------------------------------------------------------------------------------
# building, randomising, saving

def build_args(cfg, image_vocab_size=IMAGE_VOCAB_SIZE, **extra):
    args = SrReference.get_args(
        num_layers=cfg["num_layers"], hidden_size=cfg["hidden_size"],
        num_attention_heads=cfg["num_attention_heads"], vocab_size=cfg["vocab_size"],
        max_sequence_length=cfg["max_sequence_length"], inner_hidden_size=cfg["inner_hidden_size"],
        layernorm_order="sandwich", layernorm_epsilon=1e-5, hidden_dropout=0.0, attention_dropout=0.0,
        **extra)
    args.kernel_size, args.kernel_size2 = KERNEL_SIZE, KERNEL_SIZE2
    args.new_sequence_length = NEW_SEQUENCE_LENGTH
    args.layout = DSR_LAYOUT if cfg["kind"] == "dsr" else ITERSR_LAYOUT
    args.sr_kind = cfg["kind"]
    args.image_vocab_size = image_vocab_size
    return args


@torch.no_grad()
def randomise_(model, seed):
    """Every parameter from a seeded generator, in sorted-name order: embeddings N(0, 0.5^2),
    linear weights N(0, 1/fan_in), linear biases 0.05 N, LayerNorm weight 1 + 0.1 N, bias 0.05 N."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        n = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        if name.endswith("embeddings.weight"):
            v = 0.5 * n
        elif "layernorm" in name and name.endswith(".weight"):
            v = 1.0 + 0.1 * n
        elif name.endswith(".bias"):
            v = 0.05 * n
        elif name.endswith(".weight"):
            assert p.dim() == 2, name
            v = n / (p.shape[1] ** 0.5)
        else:
            raise ValueError(f"unexpected parameter {name}")
        p.copy_(v.to(p.dtype))


def save_sat_folder(model, args, out_dir, iteration, model_class, extra_cfg):
    """SAT's save_checkpoint in inference mode ({'module': state_dict}, latest, model_config.json),
    then model_class set to the official class name and our extra keys added."""
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    args.save, args.mode = out_dir, "inference"
    save_checkpoint(iteration, model, None, None, args)
    cfg_path = os.path.join(out_dir, "model_config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["model_class"] = model_class
    cfg.update(extra_cfg)
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=4)
    return cfg


def load_ours(path, attention):
    model, _ = SrReference.from_pretrained(path, args=None, attention=attention)
    model.eval()
    return model


# ----------------------------------------------------------------------------------------------

def max_abs(a, b):
    return float((torch.as_tensor(a).double() - torch.as_tensor(b).double()).abs().max())


def make_model_fixtures(name, cfg, out_root, official, report):
    kind = cfg["kind"]
    out_dir = os.path.join(out_root, name)
    torch.manual_seed(cfg["seed"])
    args = build_args(cfg)
    model = SrReference(args)
    randomise_(model, cfg["seed"])
    saved = save_sat_folder(model, args, out_dir, cfg["iteration"],
                            "DsrModel" if kind == "dsr" else "ItersrModel",
                            {"image_vocab_size": IMAGE_VOCAB_SIZE, "start_of_image_id": START_OF_IMAGE_ID})
    print(f"[{name}] model_config.json: {json.dumps(saved)}")
    sd = torch.load(os.path.join(out_dir, str(cfg["iteration"]), "mp_rank_00_model_states.pt"),
                    map_location="cpu", weights_only=True)["module"]
    print(f"[{name}] {len(sd)} tensors, {sum(t.numel() for t in sd.values())} parameters; mixin keys: "
          f"{sorted(k for k in sd if k.startswith('mixins'))[:3]}...")

    local, dense = load_ours(out_dir, "local"), load_ours(out_dir, "dense")
    off = official.load(kind, out_dir) if official else None
    if off is not None:
        off_keys = set(off.state_dict().keys())
        assert off_keys == set(sd.keys()), off_keys ^ set(sd.keys())
        print(f"[{name}] official {type(off).__name__} hooks: {off.hook_origins}")

    cells = recorded_cells()
    for case, (text_len, iteration, seed_off) in CASES[name].items():
        rng = np.random.default_rng(cfg["seed"] * 10 + seed_off)
        text = rng.integers(*TEXT_ID_RANGE, size=text_len).tolist()
        if kind == "dsr":
            image = rng.integers(0, IMAGE_VOCAB_SIZE, size=LOW_EDGE ** 2).tolist()
            spec = {"kind": "dsr", "text": text, "low_res": image, "placeholder": START_OF_IMAGE_ID,
                    "image_vocab": IMAGE_VOCAB_SIZE}
        else:
            grid = rng.integers(0, IMAGE_VOCAB_SIZE, size=HIGH_EDGE ** 2)
            mask = np.array(lopar_mask(iteration))
            grid[mask] = START_OF_IMAGE_ID
            image = grid.tolist()
            spec = {"kind": "itersr", "text": text, "tokens": image, "image_vocab": IMAGE_VOCAB_SIZE,
                    "lopar_iteration": iteration, "masked_cells": int(mask.sum())}
        v = IMAGE_VOCAB_SIZE
        l_local = ours_logits(local, kind, text, image)
        l_dense = ours_logits(dense, kind, text, image)
        assert l_local.shape == (3600, v)
        d_ld = max_abs(l_local, l_dense)
        report.append((name, case, "ours local vs ours dense", d_ld))
        msg = f"[{name}] case {case}: |logits| max {float(l_local.abs().max()):.3f}; local vs dense {d_ld:.3g}"
        if off is not None:
            if kind == "dsr":
                l_off = official_dsr_logits(official, off, text, image)
            else:
                l_off = official_itersr_logits(official, off, text, image)
            assert l_off.shape[0] == 3600 and l_off.shape[1] >= v
            l_off = l_off[:, :v]
            d_ol, d_od = max_abs(l_off, l_local), max_abs(l_off, l_dense)
            report.append((name, case, "official vs ours local", d_ol))
            report.append((name, case, "official vs ours dense", d_od))
            msg += f"; official vs local {d_ol:.3g}, official vs dense {d_od:.3g}"
            recorded, source = l_off, "official"
        else:
            recorded, source = l_local, "ours-local"
        print(msg)
        spec["cells"] = cells
        spec["logits_source"] = source
        with open(os.path.join(out_dir, f"case_{case}.json"), "w") as f:
            json.dump(spec, f)
            f.write("\n")
        np.save(os.path.join(out_dir, f"case_{case}.logits.npy"),
                recorded[torch.tensor(cells)].numpy().astype(np.float32))

        if kind == "itersr" and text_len > ITERSR_LAYOUT[0]:
            # the truncation is real: the tokens after the 16th do not change anything
            text2 = text[:16] + [(t + 1 - TEXT_ID_RANGE[0]) % (TEXT_ID_RANGE[1] - TEXT_ID_RANGE[0]) + TEXT_ID_RANGE[0]
                                 for t in text[16:]]
            same = official_itersr_logits(official, off, text2, image)[:, :v] if off is not None \
                else ours_logits(local, kind, text2, image)
            assert max_abs(same, recorded) == 0.0
            print(f"[{name}] case {case}: text tokens 17..{text_len} are ignored (truncation to 16) - checked")


def sensitivity_checks(out_root):
    """How far single-detail mistakes move the recorded logits (ours-local on the saved tiny
    models, recorded cells, case 'short' / 'iter1'): shows the fixtures can catch them."""
    global LOW_RES_POS0, PAD_ID
    models = {"dsr-tiny": load_ours(os.path.join(out_root, "dsr-tiny"), "local"),
              "itersr-tiny": load_ours(os.path.join(out_root, "itersr-tiny"), "local")}
    cases = {"dsr-tiny": "short", "itersr-tiny": "iter1"}
    specs, refs = {}, {}
    for name, case in cases.items():
        with open(os.path.join(out_root, name, f"case_{case}.json")) as f:
            specs[name] = json.load(f)
        refs[name] = np.load(os.path.join(out_root, name, f"case_{case}.logits.npy"))

    def run(name, model=None):
        spec = specs[name]
        kind = spec["kind"]
        image = spec["low_res"] if kind == "dsr" else spec["tokens"]
        out = ours_logits(model or models[name], kind, spec["text"], image)[torch.tensor(spec["cells"])]
        return max_abs(out, refs[name])

    results = {}
    orig = la.f_similar, la.f_weighting

    def swapped(fn):
        def g(a, b, kH, kW, causal=False):
            return fn(a, b, *((5, 9) if (kH, kW) == (9, 5) else (kH, kW)), causal)
        return g

    la.f_similar, la.f_weighting = swapped(orig[0]), swapped(orig[1])
    try:
        results["5x9 instead of 9x5 window"] = {n: run(n) for n in models}
    finally:
        la.f_similar, la.f_weighting = orig
    for value, label in ((0.0, "out-of-bounds score 0 (unfold) instead of -10000"),
                         (float("-inf"), "out-of-bounds score -inf instead of -10000")):
        la.OOB_SCORE = value
        try:
            results[label] = {n: run(n) for n in models}
        finally:
            la.OOB_SCORE = -10000.0
    LOW_RES_POS0 = 512
    try:
        results["DSR low-res positions 512.. instead of 513.."] = {"dsr-tiny": run("dsr-tiny")}
    finally:
        LOW_RES_POS0 = 513
    erf = {n: SrReference.from_pretrained(os.path.join(out_root, n), args=None, attention="local",
                                          activation_func=F.gelu)[0].eval() for n in models}
    results["erf-GELU instead of tanh-GELU"] = {n: run(n, erf[n]) for n in models}
    PAD_ID = 5
    try:
        results["pad id 5 instead of 0 (must be 0)"] = {n: run(n) for n in models}
    finally:
        PAD_ID = 0
    for label, diffs in results.items():
        print(f"  {label:50s} " + ", ".join(f"{n} {d:.3g}" for n, d in diffs.items()))
    assert max(results["pad id 5 instead of 0 (must be 0)"].values()) < 1e-4
    return results


def make_local_attention_fixtures(out_dir):
    """Small random f_similar / f_weighting cases for testing a kernel alone."""
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    gen = torch.Generator().manual_seed(7)
    specs = [
        # name, N, C, (H, W), (h, w), kH, kW, causal
        ("self_9x5", 2, 4, (12, 10), (12, 10), 9, 5, False),
        ("cross_5x5_a3", 2, 4, (12, 12), (4, 4), 5, 5, False),
        ("causal_5x5", 2, 3, (8, 9), (8, 9), 5, 5, True),
        ("cross_rect_3x5_a2x3", 2, 3, (8, 9), (4, 3), 3, 5, False),
    ]
    meta = {"description": (
        "Image-Local-Attention forward semantics (tools/reference/local_attention.py). "
        "q [N,C,H,W], k and v [N,C,h,w] (same N here), ah=H/h, aw=W/w. "
        "scores = f_similar(q, k, kH, kW, causal) [N,H,W,P]: slot p (raster order) is the key at "
        "(Y//ah - kH//2 + p//kW, X//aw - kW//2 + p%kW); out-of-bounds slots score -10000; causal keeps "
        "P = kH*kW//2+1 slots. out = f_weighting(v, w, kH, kW, causal) [N,C,H,W] = sum over in-bounds "
        "slots of w[n,Y,X,p] * v[n,:,key_p]; w is random (not a softmax), including on out-of-bounds "
        "slots, which must be skipped. probs_out = f_weighting(v, softmax(scores, -1)) is the attention "
        "output. Files: <name>.{q,k,v,w,scores,out,probs_out}.npy, float32."),
        "cases": []}
    for name, N, C, (H, W), (h, w), kH, kW, causal in specs:
        q = torch.randn(N, C, H, W, generator=gen)
        k = torch.randn(N, C, h, w, generator=gen)
        v = torch.randn(N, C, h, w, generator=gen)
        scores = la.f_similar(q, k, kH, kW, causal)
        wts = torch.randn(scores.shape, generator=gen)
        out = la.f_weighting(v, wts, kH, kW, causal)
        probs_out = la.f_weighting(v, torch.softmax(scores, -1), kH, kW, causal)
        for key, t in dict(q=q, k=k, v=v, w=wts, scores=scores, out=out, probs_out=probs_out).items():
            np.save(os.path.join(out_dir, f"{name}.{key}.npy"), t.numpy().astype(np.float32))
        meta["cases"].append({"name": name, "N": N, "C": C, "H": H, "W": W, "h": h, "w": w,
                              "ah": H // h, "aw": W // w, "kH": kH, "kW": kW, "causal": causal,
                              "P": scores.shape[-1]})
    with open(os.path.join(out_dir, "cases.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"[local_attention] {len(specs)} cases written")


def make_lopar(out_path, official_cv2):
    table, topks = LOPAR_TABLE, LOPAR_TOPKS
    if official_cv2:
        o_table, o_topks, o_tiled = official_lopar(official_cv2)
        assert o_table == LOPAR_TABLE and o_topks == LOPAR_TOPKS, "transcription differs from iterative_sr.py"
        ours = torch.tensor(lopar_value_grid()).reshape(-1)
        assert torch.equal(o_tiled, ours), "tiling differs"
        print("[lopar] table, top-k list and tiling match the official iterative_sr.py")
    counts = [sum(lopar_mask(k)) for k in range(1, 7)]
    grid = lopar_value_grid()
    data = {
        "description": ("LoPAR schedule of CogView2 iterative_sr.py. Cell (r, c) of the 60x60 grid "
                        "(row-major index r*60+c) has value table[r % 6][c % 6]; iteration k = 1..6 "
                        "re-masks (sets to <start_of_image>) and re-samples the cells with value >= k, "
                        "with top-k = topks[k] (topks[0] is unused)."),
        "table": table,
        "topks": topks,
        "masked_counts": {str(k): c for k, c in zip(range(1, 7), counts)},
        "never_resampled": sum(v <= 0 for row in grid for v in row),
        "value_grid": [v for row in grid for v in row],
        "mask_iter1": [int(m) for m in lopar_mask(1)],
    }
    with open(out_path, "w") as f:
        json.dump(data, f)
        f.write("\n")
    print(f"[lopar] masked cells per iteration 1..6: {counts}; never re-sampled: {data['never_resampled']}")
    assert counts == [2300, 1900, 1500, 1000, 600, 200]
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "fixtures", "sr"))
    ap.add_argument("--cogview2", default=os.environ.get("COGVIEW2_SRC"),
                    help="checkout of THUDM/CogView2 (d92dbad) to run the official model code")
    ap.add_argument("--require-official", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    opts = ap.parse_args()
    torch.set_num_threads(opts.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(opts.out, exist_ok=True)
    print(f"torch {torch.__version__}, SwissArmyTransformer {sat.__version__}, numpy {np.__version__}")

    print("[local_attention] reference self-check (max |diff|):")
    la_report = la.self_check()
    official = None
    if opts.cogview2:
        official = Official(opts.cogview2)
        print(f"[official] using CogView2 code from {opts.cogview2}")
    elif opts.require_official:
        sys.exit("--require-official: pass --cogview2 DIR (or set COGVIEW2_SRC)")
    else:
        print("[official] no CogView2 checkout given: fixtures come from our re-implementation")

    make_lopar(os.path.join(opts.out, "lopar.json"), opts.cogview2)
    make_local_attention_fixtures(os.path.join(opts.out, "local_attention"))
    report = []
    for name, cfg in MODELS.items():
        make_model_fixtures(name, cfg, opts.out, official, report)

    print("\nsensitivity: max |diff| vs the recorded logits after changing one detail")
    sensitivity_checks(opts.out)

    print("\nsummary (max |diff| over all 3600 cells x image vocabulary):")
    for key in ("similar_vs_unfold", "weighting_vs_unfold", "cross_res_vs_loop_similar",
                "cross_res_vs_loop_weighting", "local_vs_dense_masked"):
        print(f"  local_attention {key:35s} {la_report[key]:.3g}")
    for name, case, what, d in report:
        print(f"  {name:11s} {case:16s} {what:28s} {d:.3g}")
    worst = max(d for *_, d in report)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(opts.out) for f in fs)
    print(f"recorded cells per case: {len(recorded_cells())}; fixture folder size: {total / 1e6:.2f} MB")
    if worst > 1e-4:
        sys.exit(f"implementations disagree (max |diff| {worst:.3g})")


if __name__ == "__main__":
    main()
