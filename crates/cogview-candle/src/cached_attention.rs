//! Attention of a few new queries over CogLM's KV cache on the CPU, read in place.
//!
//! A decoding step has one query per batch row and head; through candle's ops it took a
//! transposed view of the cache, two small batched matrix products (each dispatched on its own,
//! with the keys copied to make them contiguous) and a separate softmax. Here each (row, head)
//! reads its keys and values straight from the cache once: scores, one softmax, the weighted sum
//! of values. The arithmetic is the same (`q·k` scaled, plus the bias, softmax in f32). The cache
//! holds f32, or bf16 for bf16 stages (half the bytes a step reads; widened exactly to f32 here).

use crate::cpu_linear::contiguous;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Shape};
use rayon::prelude::*;

/// What a cache holds: f32, or bf16 widened exactly to f32 when read.
pub(crate) trait KvValue: Copy + Send + Sync {
    fn widen(self) -> f32;
}

impl KvValue for f32 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self
    }
}

impl KvValue for half::bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }
}

/// Dot product with 16 independent lanes (vectorises without reassociating a serial sum).
#[inline(always)]
fn dot<T: KvValue>(a: &[f32], b: &[T]) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, ar) = a.split_at(a.len() / 16 * 16);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(16).zip(bc.chunks_exact(16)) {
        for l in 0..16 {
            acc[l] += x[l] * y[l].widen();
        }
    }
    let mut s: f32 = ar.iter().zip(br).map(|(x, y)| x * y.widen()).sum();
    for v in acc {
        s += v;
    }
    s
}

/// `e^x` for `x ≤ 0` (a score minus the row's maximum) without a libm call, so that the loop
/// over a row's scores vectorises: `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2` (Cody-Waite), a degree-7
/// polynomial for `e^r` (truncation below 6e-9 relative), `2^n` from the exponent bits. Below
/// −87 (where f32 turns subnormal, 1e-38 of the largest weight) it is 0, as is `e^−∞`.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to an integer
    let xc = x.max(-87.0);
    let n = (xc * LOG2E + MAGIC) - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        p * scale
    }
}

/// New queries at most for which [`CachedAttention`] is used (decoding steps); longer inputs
/// (the prefill) go through matrix products.
pub(crate) const MAX_QUERIES: usize = 16;

/// `softmax(q·kᵀ · scale + bias) · v` over the first `keys` positions of the cache.
///
/// Inputs (all f32, contiguous): `q` `[batch, heads, n, d]`, the key and value caches
/// `[batch, heads, capacity, d]`. `bias` is `[n, keys]`, shared by every row and head (−∞ where a
/// query may not look). Output: `[batch, n, heads·d]`, the layout the dense layer reads.
pub(crate) struct CachedAttention<'a> {
    /// Cache positions attended to (those written so far, the new ones included).
    pub keys: usize,
    /// `[n, keys]` additive bias.
    pub bias: &'a [f32],
    /// Applied to `q·k` (1/√d).
    pub scale: f32,
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!(
            "{what} must be f32 (or both caches bf16), not {:?}",
            s.dtype()
        );
    };
    contiguous(data, l, what)
}

impl CachedAttention<'_> {
    /// The attention of `q` ([batch·heads, n, d] as a slice) over the caches `k`, `v`
    /// ([batch·heads, capacity, d]); returns [batch, n, heads·d].
    pub(crate) fn run<T: KvValue>(
        &self,
        q: &[f32],
        k: &[T],
        v: &[T],
        (batch, heads, n, d): (usize, usize, usize, usize),
        capacity: usize,
    ) -> Vec<f32> {
        let keys = self.keys;
        #[cfg(target_arch = "x86_64")]
        let path = crate::cpu_kernels::CpuKernels::selected();
        // AVX-512 where the path allows it, else AVX2/FMA where selected, else portable.
        #[cfg(target_arch = "x86_64")]
        let (wide, avx2) = (
            crate::cpu_gemm::available(),
            path == crate::cpu_kernels::CpuKernels::Avx2,
        );
        #[cfg(not(target_arch = "x86_64"))]
        let wide = false;
        // One (row, head) per task: its n outputs of d values.
        let per_head: Vec<Vec<f32>> = (0..batch * heads)
            .into_par_iter()
            .map_init(
                || vec![0f32; keys],
                |scores, bh| {
                    let head = Head {
                        q: &q[bh * n * d..][..n * d],
                        k: &k[bh * capacity * d..][..keys * d],
                        v: &v[bh * capacity * d..][..keys * d],
                        d,
                    };
                    let mut out = vec![0f32; n * d];
                    #[cfg(target_arch = "x86_64")]
                    {
                        if wide {
                            // SAFETY: `wide` says the CPU has AVX-512F.
                            unsafe { head.attend_avx512(self.bias, self.scale, scores, &mut out) };
                            return out;
                        }
                        if avx2 {
                            // SAFETY: the avx2 path is selected only where the CPU has AVX2 and FMA.
                            unsafe { head.attend_avx2(self.bias, self.scale, scores, &mut out) };
                            return out;
                        }
                    }
                    let _ = wide;
                    head.attend(self.bias, self.scale, scores, &mut out);
                    out
                },
            )
            .collect();
        let a = heads * d;
        let mut out = vec![0f32; batch * n * a];
        for (bh, o) in per_head.iter().enumerate() {
            let (b, h) = (bh / heads, bh % heads);
            for i in 0..n {
                out[(b * n + i) * a + h * d..][..d].copy_from_slice(&o[i * d..][..d]);
            }
        }
        out
    }
}

/// One (batch row, head): its `n` queries `[n, d]` and its cache rows `[keys, d]`.
struct Head<'a, T> {
    q: &'a [f32],
    k: &'a [T],
    v: &'a [T],
    d: usize,
}

impl<T: KvValue> Head<'_, T> {
    /// Scores, softmax and the weighted sum of values for every query; `out` is `[n, d]`, zero.
    #[inline(always)]
    fn attend(&self, bias: &[f32], scale: f32, scores: &mut [f32], out: &mut [f32]) {
        let d = self.d;
        let keys = scores.len();
        for (i, o) in out.chunks_exact_mut(d).enumerate() {
            let qi = &self.q[i * d..][..d];
            let bias = &bias[i * keys..][..keys];
            let mut max = f32::NEG_INFINITY;
            for ((s, kj), b) in scores.iter_mut().zip(self.k.chunks_exact(d)).zip(bias) {
                *s = if *b == f32::NEG_INFINITY {
                    f32::NEG_INFINITY
                } else {
                    dot(qi, kj) * scale + b
                };
                max = max.max(*s);
            }
            let mut total = 0f32;
            for s in scores.iter_mut() {
                *s = exp_nonpositive(*s - max);
                total += *s;
            }
            let inv = 1.0 / total;
            for (s, vj) in scores.iter().zip(self.v.chunks_exact(d)) {
                if *s == 0.0 {
                    continue;
                }
                let p = s * inv;
                for (ov, vv) in o.iter_mut().zip(vj) {
                    *ov += p * vv.widen();
                }
            }
        }
    }

    /// [`Head::attend`] compiled for AVX-512 (the loops over `d` become 16-lane vectors).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,fma")]
    unsafe fn attend_avx512(&self, bias: &[f32], scale: f32, scores: &mut [f32], out: &mut [f32]) {
        self.attend(bias, scale, scores, out)
    }

    /// [`Head::attend`] compiled for AVX2 and FMA (8-lane vectors).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn attend_avx2(&self, bias: &[f32], scale: f32, scores: &mut [f32], out: &mut [f32]) {
        self.attend(bias, scale, scores, out)
    }
}

impl candle_core::CustomOp3 for CachedAttention<'_> {
    fn name(&self) -> &'static str {
        "cached-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (batch, heads, n, d) = l1.shape().dims4()?;
        let (kb, kh, capacity, kd) = l2.shape().dims4()?;
        if (kb, kh, kd) != (batch, heads, d) || l3.shape() != l2.shape() {
            candle_core::bail!(
                "cached-attention: queries {:?} do not match the caches {:?} / {:?}",
                l1.shape(),
                l2.shape(),
                l3.shape()
            );
        }
        if self.keys == 0 || self.keys > capacity || self.bias.len() != n * self.keys {
            candle_core::bail!(
                "cached-attention: {} keys and {} bias values for {n} queries and a cache of {capacity}",
                self.keys,
                self.bias.len()
            );
        }
        let q = f32_slice(s1, l1, "cached-attention: q")?;
        let dims = (batch, heads, n, d);
        let out = match (s2, s3) {
            (CpuStorage::BF16(k), CpuStorage::BF16(v)) => self.run(
                q,
                contiguous(k, l2, "cached-attention: the key cache")?,
                contiguous(v, l3, "cached-attention: the value cache")?,
                dims,
                capacity,
            ),
            _ => self.run(
                q,
                f32_slice(s2, l2, "cached-attention: the key cache")?,
                f32_slice(s3, l3, "cached-attention: the value cache")?,
                dims,
                capacity,
            ),
        };
        Ok((CpuStorage::F32(out), Shape::from((batch, n, heads * d))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cogview_core::Rng;

    /// softmax(q·k·scale + bias)·v in f64, one (row, head, query) at a time.
    fn reference(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        bias: &[f32],
        (batch, heads, n, d): (usize, usize, usize, usize),
        (capacity, keys, scale): (usize, usize, f32),
    ) -> Vec<f64> {
        let mut out = vec![0f64; batch * n * heads * d];
        for b in 0..batch {
            for h in 0..heads {
                let bh = b * heads + h;
                for i in 0..n {
                    let qi = &q[(bh * n + i) * d..][..d];
                    let s: Vec<f64> = (0..keys)
                        .map(|j| {
                            let kj = &k[(bh * capacity + j) * d..][..d];
                            let dot: f64 =
                                qi.iter().zip(kj).map(|(a, b)| *a as f64 * *b as f64).sum();
                            dot * scale as f64 + bias[i * keys + j] as f64
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let total: f64 = e.iter().sum();
                    for c in 0..d {
                        out[(b * n + i) * heads * d + h * d + c] = (0..keys)
                            .map(|j| e[j] / total * v[(bh * capacity + j) * d + c] as f64)
                            .sum();
                    }
                }
            }
        }
        out
    }

    fn largest_difference(got: &[f32], want: &[f64]) -> f64 {
        got.iter()
            .zip(want)
            .map(|(g, w)| (*g as f64 - w).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn exp_of_nonpositive_scores_is_within_two_ulp_and_zero_below_the_f32_range() {
        let mut worst = 0f64;
        for i in 0..=870_000 {
            let x = -(i as f32) * 1e-4;
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-87.5), 0.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn cached_attention_equals_the_f64_softmax_over_the_written_keys() {
        let mut rng = Rng::from_seed(7);
        let mut rand = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| rng.next_f64() as f32 * 4.0 - 2.0)
                .collect()
        };
        // d not a multiple of 16 (the vector tail), several queries with a causal mask and a
        // text bias, a cache larger than the keys written.
        for (batch, heads, n, d, capacity, keys) in [
            (2, 3, 1, 64, 40, 17),
            (1, 2, 4, 20, 12, 9),
            (3, 1, 2, 7, 5, 5),
        ] {
            let q = rand(batch * heads * n * d);
            let k = rand(batch * heads * capacity * d);
            let v = rand(batch * heads * capacity * d);
            let text = 3;
            let bias: Vec<f32> = (0..n)
                .flat_map(|i| {
                    (0..keys).map(move |j| {
                        if j < text {
                            1.4
                        } else if j <= keys - n + i {
                            0.0
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                })
                .collect();
            let scale = 1.0 / (d as f32).sqrt();
            let op = CachedAttention {
                keys,
                bias: &bias,
                scale,
            };
            let want = reference(
                &q,
                &k,
                &v,
                &bias,
                (batch, heads, n, d),
                (capacity, keys, scale),
            );
            let got = op.run(&q, &k, &v, (batch, heads, n, d), capacity);
            let worst = largest_difference(&got, &want);
            assert!(worst < 1e-5, "{batch}x{heads}x{n}x{d}: {worst}");
            // A bf16 cache: the same values as the f32 cache of its widened contents.
            let k16: Vec<half::bf16> = k.iter().map(|&x| half::bf16::from_f32(x)).collect();
            let v16: Vec<half::bf16> = v.iter().map(|&x| half::bf16::from_f32(x)).collect();
            let k_wide: Vec<f32> = k16.iter().map(|x| x.to_f32()).collect();
            let v_wide: Vec<f32> = v16.iter().map(|x| x.to_f32()).collect();
            let want16 = reference(
                &q,
                &k_wide,
                &v_wide,
                &bias,
                (batch, heads, n, d),
                (capacity, keys, scale),
            );
            let got16 = op.run(&q, &k16, &v16, (batch, heads, n, d), capacity);
            let worst = largest_difference(&got16, &want16);
            assert!(worst < 1e-5, "bf16 {batch}x{heads}x{n}x{d}: {worst}");
            // The portable body, whatever the CPU.
            let mut out = vec![0f32; n * d];
            let mut scores = vec![0f32; keys];
            let head = Head {
                q: &q[..n * d],
                k: &k[..keys * d],
                v: &v[..keys * d],
                d,
            };
            head.attend(&bias, scale, &mut scores, &mut out);
            for i in 0..n {
                for c in 0..d {
                    let w = want[i * heads * d + c];
                    assert!(
                        (out[i * d + c] as f64 - w).abs() < 1e-5,
                        "portable: {i} {c}"
                    );
                }
            }
            // The AVX2/FMA and AVX-512 bodies where this CPU has them, whatever path is selected.
            #[cfg(target_arch = "x86_64")]
            {
                let mut bodies: Vec<(&str, Vec<f32>)> = Vec::new();
                if crate::cpu_kernels::CpuKernels::Avx2.available() {
                    let mut out = vec![0f32; n * d];
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    unsafe { head.attend_avx2(&bias, scale, &mut scores, &mut out) };
                    bodies.push(("avx2", out));
                }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                {
                    let mut out = vec![0f32; n * d];
                    // SAFETY: the CPU has AVX-512F/VL (checked just above); FMA comes with them.
                    unsafe { head.attend_avx512(&bias, scale, &mut scores, &mut out) };
                    bodies.push(("avx512", out));
                }
                for (body, out) in bodies {
                    for i in 0..n {
                        for c in 0..d {
                            let w = want[i * heads * d + c];
                            assert!((out[i * d + c] as f64 - w).abs() < 1e-5, "{body}: {i} {c}");
                        }
                    }
                }
            }
        }
    }
}
