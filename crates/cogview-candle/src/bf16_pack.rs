//! The bf16 pair layout shared by the bf16 kernels ([`crate::cpu_bf16`]'s vector kernels and
//! [`crate::cpu_amx`]'s tiles): weights packed once at load into [`PackedBf16`], activations
//! rounded into rows of pairs by [`pack_rows`]. See `cpu_bf16.rs` for why pairs of k.

use rayon::prelude::*;

/// Output columns per packed panel (two 512-bit vectors of f32, or two AMX tiles' width).
pub(crate) const NR: usize = 32;
/// k-pairs are padded to a multiple of this (one AMX tile's depth: 16 pairs = 64 bytes a row).
pub(crate) const KP_ALIGN: usize = 16;
/// bf16 bits of `x`, rounded to nearest even (NaN stays NaN), as `vcvtne2ps2bf16` does.
#[inline(always)]
pub(crate) fn bf16_bits(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

/// The f32 value of bf16 bits.
#[inline(always)]
pub(crate) fn bf16_value(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// A weight matrix W [n, k] (and an optional bias [n]) in the kernels' bf16 pair layout.
pub(crate) struct PackedBf16 {
    /// Output features.
    pub n: usize,
    /// Input features.
    pub k: usize,
    /// k-pairs after padding (a multiple of [`KP_ALIGN`]).
    pub kp: usize,
    /// `[panel][kp][NR]` bf16 pairs.
    pub data: Vec<u32>,
    /// The bias, f32, zero-padded to `panels · NR` (zeros when the layer has none).
    pub bias: Vec<f32>,
}

impl PackedBf16 {
    /// Packs W given as bf16 bits in row-major [n, k].
    pub fn from_bf16_bits(w: &[u16], n: usize, k: usize, bias: Option<&[f32]>) -> Self {
        assert_eq!(w.len(), n * k, "weight is not {n}×{k}");
        let kp = k.div_ceil(2).div_ceil(KP_ALIGN).max(1) * KP_ALIGN;
        let panels = n.div_ceil(NR);
        let mut data = vec![0u32; panels * kp * NR];
        data.par_chunks_mut(kp * NR)
            .enumerate()
            .for_each(|(panel, out)| {
                for c in 0..NR.min(n - panel * NR) {
                    let row = &w[(panel * NR + c) * k..(panel * NR + c + 1) * k];
                    for (p, pair) in row.chunks(2).enumerate() {
                        let lo = pair[0] as u32;
                        let hi = pair.get(1).copied().unwrap_or(0) as u32;
                        out[p * NR + c] = lo | (hi << 16);
                    }
                }
            });
        let mut b = vec![0f32; panels * NR];
        if let Some(bias) = bias {
            b[..n].copy_from_slice(&bias[..n]);
        }
        PackedBf16 {
            n,
            k,
            kp,
            data,
            bias: b,
        }
    }

    /// Packs W given as f32 in row-major [n, k], rounding to bf16.
    pub fn from_f32(w: &[f32], n: usize, k: usize, bias: Option<&[f32]>) -> Self {
        let bits: Vec<u16> = w.par_iter().map(|&v| bf16_bits(v)).collect();
        Self::from_bf16_bits(&bits, n, k, bias)
    }

    /// Panels of [`NR`] columns.
    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }
}

/// x [m, k] (f32, row-major) as bf16 pairs [m_pad, kp] (row-major, zero-padded), m_pad a multiple
/// of `row_align`.
pub(crate) fn pack_rows(x: &[f32], m: usize, k: usize, kp: usize, row_align: usize) -> Vec<u32> {
    let m_pad = m.div_ceil(row_align).max(1) * row_align;
    let mut out = vec![0u32; m_pad * kp];
    out.par_chunks_mut(kp)
        .take(m)
        .enumerate()
        .for_each(|(i, row)| {
            let src = &x[i * k..(i + 1) * k];
            for (p, pair) in src.chunks(2).enumerate() {
                let lo = bf16_bits(pair[0]) as u32;
                let hi = pair.get(1).map_or(0, |&v| bf16_bits(v)) as u32;
                row[p] = lo | (hi << 16);
            }
        });
    out
}
