//! Local attention for the super-resolution models, with the semantics of Image-Local-Attention's
//! kernel (window arithmetic in `cogview_core::local_window`): each high-resolution query attends
//! to one set of "extra" keys (DSR: a 5×5 window of the low-resolution grid; ItersR: the text)
//! and to a 9×5 window of the high-resolution grid, with one softmax over both. Keys outside a
//! grid get no weight (the kernel's −10000 score, which underflows to zero weight in f32).
//! Time and memory are linear in the number of queries; no N×N matrix is formed.

use cogview_core::local_window::LocalWindow;
use rayon::prelude::*;

/// Row-major `[rows, heads·head_dim]` keys and values.
pub(crate) struct Kv<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
}

/// The keys a query sees besides its high-resolution window.
pub(crate) enum Extra<'a> {
    /// A window over another grid (DSR's cross-resolution attention).
    Window {
        kv: Kv<'a>,
        window: LocalWindow,
        grid: (usize, usize),
    },
    /// Every key whose flag is set (ItersR's text, padding excluded).
    Global { kv: Kv<'a>, visible: &'a [bool] },
}

/// Dot product with 16 independent lanes (vectorises without reassociating a serial sum).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, ar) = a.split_at(a.len() / 16 * 16);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(16).zip(bc.chunks_exact(16)) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s: f32 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    for v in acc {
        s += v;
    }
    s
}

/// Attention of `q` ([h·w, heads·d], already scaled by 1/√d) over `extra` and the window `window`
/// of `own` (the same grid as the queries). Returns [h·w, heads·d].
pub(crate) fn attend(
    q: &[f32],
    grid: (usize, usize),
    heads: usize,
    d: usize,
    own: Kv,
    window: LocalWindow,
    extra: Extra,
) -> Vec<f32> {
    let (h, w) = grid;
    let a = heads * d;
    let mut out = vec![0f32; h * w * a];
    out.par_chunks_mut(a).enumerate().for_each_init(
        || (Vec::with_capacity(128), Vec::with_capacity(128)),
        |(keys, scores), (qi, o)| {
            let (y, x) = (qi / w, qi % w);
            // Key rows for this query: (set, row); the same for every head.
            let keys: &mut Vec<(bool, usize)> = keys;
            keys.clear();
            match &extra {
                Extra::Window {
                    window: ew,
                    grid: (gh, gw),
                    ..
                } => {
                    keys.extend(ew.keys(y, x, *gh, *gw).flatten().map(|r| (true, r)));
                }
                Extra::Global { visible, .. } => {
                    keys.extend(
                        visible
                            .iter()
                            .enumerate()
                            .filter(|(_, v)| **v)
                            .map(|(r, _)| (true, r)),
                    );
                }
            }
            keys.extend(window.keys(y, x, h, w).flatten().map(|r| (false, r)));
            let extra_kv = match &extra {
                Extra::Window { kv, .. } | Extra::Global { kv, .. } => kv,
            };
            let scores: &mut Vec<f32> = scores;
            scores.clear();
            scores.resize(keys.len(), 0.0);
            for hd in 0..heads {
                let qh = &q[qi * a + hd * d..qi * a + (hd + 1) * d];
                let mut max = f32::NEG_INFINITY;
                for (s, &(is_extra, r)) in scores.iter_mut().zip(keys.iter()) {
                    let kv = if is_extra { extra_kv } else { &own };
                    let kr = &kv.k[r * a + hd * d..r * a + (hd + 1) * d];
                    *s = dot(qh, kr);
                    max = max.max(*s);
                }
                let mut total = 0f32;
                for s in scores.iter_mut() {
                    *s = (*s - max).exp();
                    total += *s;
                }
                let oh = &mut o[hd * d..(hd + 1) * d];
                for (s, &(is_extra, r)) in scores.iter().zip(keys.iter()) {
                    let kv = if is_extra { extra_kv } else { &own };
                    let vr = &kv.v[r * a + hd * d..r * a + (hd + 1) * d];
                    let p = s / total;
                    for (ov, vv) in oh.iter_mut().zip(vr) {
                        *ov += p * vv;
                    }
                }
            }
        },
    );
    out
}
