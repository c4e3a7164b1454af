#!/usr/bin/env python3
"""Pure-PyTorch reference for the Image-Local-Attention kernel (`f_similar`, `f_weighting`).

CogView2's super-resolution models call the CUDA extension of Sleepychord/Image-Local-Attention
through SwissArmyTransformer v0.2.1 (`SwissArmyTransformer/ops/local_attention_function.py`).
That extension only builds with CUDA. This module re-states what its forward kernels compute
(`cc2k` and `ck2c_ori` in src/kernels.cuh, launched by src/similar.cu and src/weighting.cu),
written from the description in docs (see /work/shared/reference/cogview2.md section 7), as
plain tensor code that runs anywhere:

Layouts
    q: [N, C, H, W]          queries on the large grid
    k, v: [N', C, h, w]      keys / values on the small (or same) grid,
                             H = ah*h, W = aw*w with integer ah, aw; N = r*N' (query batch n
                             uses key batch n // r, as the kernel's outer/inner batch loops do)
    scores: [N, H, W, P]     P = kH*kW, or kH*kW//2 + 1 in causal mode

f_similar(q, k, kH, kW, causal)
    For the query at (Y, X) the window centre is (cy, cx) = (Y // ah, X // aw) in the key grid,
    rH = kH // 2, rW = kW // 2. Slot p (raster order, p = 0..P-1) is the key at
    (cy - rH + p // kW, cx - rW + p % kW). score[p] = sum_c q[c, Y, X] * k[c, key], accumulated
    in float32 and stored in the input dtype. A key outside the key grid scores -10000 (the
    kernel launches cc2k with fill_neginf = true). Causal mode keeps only slots 0..kH*kW//2
    (the rows above, the left part of the centre row and the centre itself) and needs odd kH, kW.

f_weighting(v, probs, kH, kW, causal)
    out[c, Y, X] = sum_p probs[Y, X, p] * v[c, key_p] over the same slots, skipping slots whose
    key is outside the grid (whatever weight they carry).

Run this file to check the reference against an independent implementation of the pure-PyTorch
semantics in Image-Local-Attention's test/function.py (`TorchLocalAttention`: F.unfold with zero
padding, which scores out-of-bounds slots 0 instead of -10000 and has no cross-resolution
support) and against hand-checked index examples:

    .venv-ref/bin/python tools/reference/local_attention.py
"""

import sys

import torch
import torch.nn.functional as F

OOB_SCORE = -10000.0


def _window(H, W, h, w, kH, kW, causal, device=None):
    """Key coordinates of every (query, slot) pair.

    Returns (index [H, W, P] long: flat key index clamped into range, valid [H, W, P] bool).
    """
    if H % h or W % w:
        raise ValueError(f"query grid {H}x{W} is not an integer multiple of key grid {h}x{w}")
    if causal and (kH % 2 == 0 or kW % 2 == 0):
        raise ValueError("causal mode needs odd kH and kW")
    ah, aw = H // h, W // w
    rH, rW = kH // 2, kW // 2
    P = kH * kW // 2 + 1 if causal else kH * kW
    p = torch.arange(P, device=device)
    cy = torch.arange(H, device=device) // ah                       # [H]
    cx = torch.arange(W, device=device) // aw                       # [W]
    ky = cy.view(H, 1, 1) - rH + (p // kW).view(1, 1, P)            # [H, 1, P]
    kx = cx.view(1, W, 1) - rW + (p % kW).view(1, 1, P)             # [1, W, P]
    ky, kx = torch.broadcast_tensors(ky, kx)                        # [H, W, P]
    valid = (ky >= 0) & (ky < h) & (kx >= 0) & (kx < w)
    index = ky.clamp(0, h - 1) * w + kx.clamp(0, w - 1)
    return index, valid


def _expand_batch(x, n):
    """Key/value batch n' serves query batches n'*r .. n'*r + r - 1."""
    if n % x.shape[0]:
        raise ValueError(f"query batch {n} is not a multiple of key batch {x.shape[0]}")
    return x.repeat_interleave(n // x.shape[0], dim=0)


def window_keys(H, W, h, w, kH, kW, causal=False):
    """(key_row, key_col, valid) for every query and slot, each [H, W, P] (for tests / docs)."""
    index, valid = _window(H, W, h, w, kH, kW, causal)
    return index // w, index % w, valid


def f_similar(q, k, kH, kW, causal=False):
    """Local attention scores. q [N, C, H, W], k [N', C, h, w] -> [N, H, W, P]."""
    N, C, H, W = q.shape
    Nk, Ck, h, w = k.shape
    if C != Ck:
        raise ValueError("q and k channel counts differ")
    index, valid = _window(H, W, h, w, kH, kW, causal, q.device)
    P = index.shape[-1]
    kb = _expand_batch(k, N).reshape(N, C, h * w).float()
    keys = kb[:, :, index.reshape(-1)].view(N, C, H, W, P)          # [N, C, H, W, P]
    scores = torch.einsum("nchw,nchwp->nhwp", q.float(), keys)
    scores = scores.masked_fill(~valid, OOB_SCORE)
    return scores.to(q.dtype).contiguous()   # the kernel returns a fresh contiguous tensor


def f_weighting(v, probs, kH, kW, causal=False):
    """Weighted sum over the window. v [N', C, h, w], probs [N, H, W, P] -> [N, C, H, W]."""
    N, H, W, P = probs.shape
    Nv, C, h, w = v.shape
    index, valid = _window(H, W, h, w, kH, kW, causal, v.device)
    if index.shape[-1] != P:
        raise ValueError(f"probs has {P} slots, the window has {index.shape[-1]}")
    vb = _expand_batch(v, N).reshape(N, C, h * w).float()
    vals = vb[:, :, index.reshape(-1)].view(N, C, H, W, P)
    wts = probs.float().masked_fill(~valid, 0.0)                    # out-of-bounds keys skipped
    out = torch.einsum("nhwp,nchwp->nchw", wts, vals)
    return out.to(v.dtype).contiguous()      # callers .view() it, as with the kernel's output


# ----------------------------------------------------------------------------------------------
# Independent check: the semantics of Image-Local-Attention's test/function.py
# (TorchLocalAttention.f_similar / f_weighting), restated here: the key map is unfolded with
# F.unfold(kernel (kh, kw), stride 1, padding (kh//2, kw//2)) in the same raster slot order, so
# out-of-bounds slots see zero-padding (score 0, value 0); causal mode slices [..., :kh*kw//2+1].
# It supports only same-resolution maps with matching batch and odd kernel sizes.

def unfold_f_similar(q, k, kh, kw, causal=False):
    n, c, h, w = q.shape
    cols = F.unfold(k, kernel_size=(kh, kw), stride=1, padding=(kh // 2, kw // 2))
    cols = cols.view(n, c, kh * kw, h * w)                          # [n, c, P, hw]
    out = torch.einsum("ncq,ncpq->nqp", q.reshape(n, c, h * w), cols).view(n, h, w, kh * kw)
    return out[..., : kh * kw // 2 + 1] if causal else out


def unfold_f_weighting(v, probs, kh, kw, causal=False):
    n, c, h, w = v.shape
    cols = F.unfold(v, kernel_size=(kh, kw), stride=1, padding=(kh // 2, kw // 2))
    cols = cols.view(n, c, kh * kw, h * w)
    if causal:
        cols = cols[:, :, : kh * kw // 2 + 1]
    P = cols.shape[2]
    out = torch.einsum("ncpq,nqp->ncq", cols, probs.reshape(n, h * w, P))
    return out.view(n, c, h, w)


# ----------------------------------------------------------------------------------------------
# Dense equivalent: a boolean [H*W, h*w] "may attend" matrix with the same window (used for the
# dense-masked model variants and the CPU benchmark).

def window_mask(H, W, h, w, kH, kW, causal=False):
    """[H*W, h*w] bool: True where the query (row-major on H x W) has the key in its window."""
    index, valid = _window(H, W, h, w, kH, kW, causal)
    m = torch.zeros(H * W, h * w, dtype=torch.bool)
    rows = torch.arange(H * W).view(H, W, 1).expand_as(index)
    m[rows[valid], index[valid]] = True
    return m


# ----------------------------------------------------------------------------------------------

def _max_abs(a, b):
    return float((a.double() - b.double()).abs().max())


def self_check(verbose=True):
    """Compare with the unfold semantics and hand-checked index examples; returns max diffs."""
    torch.manual_seed(0)
    report = {}

    # 1. same resolution (ah = aw = 1) vs test/function.py semantics
    worst_s, worst_s_repo, worst_w = 0.0, 0.0, 0.0
    for (h, w, c, kh, kw, causal) in [(12, 10, 8, 9, 5, False), (60, 60, 8, 9, 5, False),
                                      (7, 9, 4, 5, 5, False), (8, 9, 4, 5, 5, True),
                                      (11, 6, 3, 3, 7, True), (5, 4, 2, 9, 5, False)]:
        q = torch.randn(3, c, h, w)
        k = torch.randn(3, c, h, w)
        v = torch.randn(3, c, h, w)
        ours = f_similar(q, k, kh, kw, causal)
        ref = unfold_f_similar(q, k, kh, kw, causal)
        _, _, valid = window_keys(h, w, h, w, kh, kw, causal)
        # where the key exists both agree; out-of-bounds: ours -10000, unfold 0
        assert bool((ours[:, ~valid] == OOB_SCORE).all())
        worst_s = max(worst_s, _max_abs(ours.masked_fill(~valid, 0.0), ref))
        # the repo's own test: positive inputs, then z * (z > -1) on the kernel output
        qp, kp = torch.rand(3, c, h, w), torch.rand(3, c, h, w)
        z = f_similar(qp, kp, kh, kw, causal)
        worst_s_repo = max(worst_s_repo, _max_abs(z * (z > -1), unfold_f_similar(qp, kp, kh, kw, causal)))
        # weighting with arbitrary weights (also on out-of-bounds slots): zero padding == skipping
        probs = torch.randn(ours.shape)
        worst_w = max(worst_w, _max_abs(f_weighting(v, probs, kh, kw, causal),
                                        unfold_f_weighting(v, probs, kh, kw, causal)))
    report["similar_vs_unfold"] = worst_s
    report["similar_vs_unfold_repo_masking"] = worst_s_repo
    report["weighting_vs_unfold"] = worst_w

    # 2. hand-checked index examples (reference spec section 7)
    r, c_, valid = window_keys(20, 20, 20, 20, 9, 5)
    assert bool(valid[10, 10].all())
    assert sorted(set(r[10, 10].tolist())) == list(range(6, 15))
    assert sorted(set(c_[10, 10].tolist())) == list(range(8, 13))
    assert (r[10, 10, 0].item(), c_[10, 10, 0].item()) == (6, 8)      # slot 0: top-left
    assert (r[10, 10, 22].item(), c_[10, 10, 22].item()) == (10, 10)  # slot 22: centre
    r, c_, valid = window_keys(60, 60, 20, 20, 5, 5)
    assert (r[4, 7, 12].item(), c_[4, 7, 12].item()) == (1, 2)        # centre slot of (4, 7)
    assert sorted(set(r[4, 7][valid[4, 7]].tolist())) == [0, 1, 2, 3]  # rows -1..3, -1 is out
    assert sorted(set(c_[4, 7].tolist())) == [0, 1, 2, 3, 4]
    # the same through f_similar itself: keys carry their own coordinates (+1) in channels 0/1
    kc = torch.zeros(1, 2, 20, 20)
    kc[0, 0] = torch.arange(20).view(20, 1).float() + 1
    kc[0, 1] = torch.arange(20).view(1, 20).float() + 1
    qr = torch.zeros(1, 2, 60, 60); qr[:, 0] = 1
    qc = torch.zeros(1, 2, 60, 60); qc[:, 1] = 1
    rows = f_similar(qr, kc, 5, 5)[0, 4, 7]
    cols = f_similar(qc, kc, 5, 5)[0, 4, 7]
    assert (rows[12].item() - 1, cols[12].item() - 1) == (1, 2)
    assert rows[:5].tolist() == [OOB_SCORE] * 5                      # row -1 is out of bounds
    assert [int(x) - 1 for x in rows[5:].tolist()] == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    # 9x5 on the high-res grid through f_similar
    kc = torch.zeros(1, 2, 20, 20)
    kc[0, 0] = torch.arange(20).view(20, 1).float() + 1
    kc[0, 1] = torch.arange(20).view(1, 20).float() + 1
    rows = f_similar(qr[:, :, :20, :20].contiguous(), kc, 9, 5)[0, 10, 10]
    cols = f_similar(qc[:, :, :20, :20].contiguous(), kc, 9, 5)[0, 10, 10]
    assert sorted({int(x) - 1 for x in rows.tolist()}) == list(range(6, 15))
    assert sorted({int(x) - 1 for x in cols.tolist()}) == list(range(8, 13))
    # causal 5x5: 13 slots, the last one is the centre
    r, c_, valid = window_keys(8, 8, 8, 8, 5, 5, causal=True)
    assert r.shape[-1] == 13 and (r[4, 4, 12].item(), c_[4, 4, 12].item()) == (4, 4)
    assert (r[4, 4, 10].item(), c_[4, 4, 10].item()) == (4, 2)
    report["index_examples"] = "ok"

    # 3. cross resolution: compare with a brute-force loop over the description
    q = torch.randn(2, 3, 12, 12)
    k = torch.randn(1, 3, 4, 4)
    v = torch.randn(1, 3, 4, 4)
    s = f_similar(q, k, 5, 5)
    probs = torch.randn(s.shape)
    o = f_weighting(v, probs, 5, 5)
    s_loop = torch.empty_like(s)
    o_loop = torch.zeros_like(o)
    for n in range(2):
        for Y in range(12):
            for X in range(12):
                for p in range(25):
                    y, x = Y // 3 - 2 + p // 5, X // 3 - 2 + p % 5
                    if 0 <= y < 4 and 0 <= x < 4:
                        s_loop[n, Y, X, p] = (q[n, :, Y, X] * k[0, :, y, x]).sum()
                        o_loop[n, :, Y, X] += probs[n, Y, X, p] * v[0, :, y, x]
                    else:
                        s_loop[n, Y, X, p] = OOB_SCORE
    report["cross_res_vs_loop_similar"] = _max_abs(s, s_loop)
    report["cross_res_vs_loop_weighting"] = _max_abs(o, o_loop)

    # 4. dense mask equivalence: softmax over the window == masked softmax over all keys
    q = torch.randn(2, 4, 12, 10)
    k = torch.randn(2, 4, 12, 10)
    v = torch.randn(2, 4, 12, 10)
    p_local = torch.softmax(f_similar(q, k, 9, 5), -1)
    out_local = f_weighting(v, p_local, 9, 5)
    m = window_mask(12, 10, 12, 10, 9, 5)
    sc = torch.einsum("ncq,nck->nqk", q.flatten(2), k.flatten(2))
    sc = sc * m - 10000.0 * (~m)
    out_dense = torch.einsum("nqk,nck->ncq", torch.softmax(sc, -1), v.flatten(2)).view_as(out_local)
    report["local_vs_dense_masked"] = _max_abs(out_local, out_dense)

    if verbose:
        for key, val in report.items():
            print(f"  {key:32s} {val if isinstance(val, str) else f'{val:.3g}'}")
    bad = [key for key, val in report.items() if not isinstance(val, str) and val > 1e-4]
    if bad:
        raise AssertionError(f"local attention reference disagrees: {bad}")
    return report


if __name__ == "__main__":
    torch.set_num_threads(1)
    print("local attention reference self-check (max |diff|):")
    self_check()
    print("ok")
    sys.exit(0)
