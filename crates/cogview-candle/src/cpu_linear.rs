//! A CPU kernel for `x · Wᵀ` when `x` has few rows: the incremental decoding steps of CogLM
//! (one row per image in the batch). candle's general matrix multiply is built for large
//! products; with a handful of rows the work is one memory-bound pass over the weights, which this
//! kernel makes once, spread over all cores, reading f16/bf16 weights directly (converted to f32
//! in registers) so that half-precision weights halve the memory traffic. Accumulation is in f32.
//!
//! On x86-64 with AVX-512 it uses explicit vector intrinsics (4 or 2 rows of x × 4 rows of W per
//! tile), with AVX2 and FMA 256-bit ones (2 rows of x × 4 rows of W); elsewhere a portable loop.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Shape};
use half::{bf16, f16};
use rayon::prelude::*;

/// Rows of `x` up to which [`SmallRowsLinear`] is used instead of the general matmul.
pub const MAX_ROWS: usize = 16;

/// `x [m, k] · w [n, k]ᵀ → [m, n]`, both contiguous, each f32, f16 or bf16; the result has x's dtype.
pub struct SmallRowsLinear;

/// Weight element types.
pub(crate) trait Weight: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
}
impl Weight for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
}
impl Weight for bf16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }
}
impl Weight for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

/// Output features per parallel task.
const CHUNK: usize = 64;

/// Portable version: row `j` of the transposed result for every x row.
fn block_portable<W: Weight>(x: &[f32], m: usize, k: usize, w: &[W], j0: usize, out: &mut [f32]) {
    for (jj, o) in out.chunks_exact_mut(m).enumerate() {
        let wr = &w[(j0 + jj) * k..(j0 + jj + 1) * k];
        for (i, oi) in o.iter_mut().enumerate() {
            let xr = &x[i * k..(i + 1) * k];
            let mut acc = [0f32; 8];
            let mut c = 0;
            while c + 8 <= k {
                for l in 0..8 {
                    acc[l] += xr[c + l] * wr[c + l].to_f32();
                }
                c += 8;
            }
            let mut s: f32 = acc.iter().sum();
            while c < k {
                s += xr[c] * wr[c].to_f32();
                c += 1;
            }
            *oi = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Weight;
    use std::arch::x86_64::*;

    pub(super) trait Load: Weight {
        /// Loads 16 weights starting at `p` as f32.
        unsafe fn load16(p: *const Self) -> __m512;
    }
    impl Load for f32 {
        #[inline(always)]
        unsafe fn load16(p: *const Self) -> __m512 {
            // SAFETY: the caller upholds this function's contract (pointers valid for the
            // lengths used, the CPU features checked by the dispatcher).
            unsafe { _mm512_loadu_ps(p) }
        }
    }
    impl Load for half::bf16 {
        #[inline(always)]
        unsafe fn load16(p: *const Self) -> __m512 {
            // SAFETY: the caller upholds this function's contract (pointers valid for the
            // lengths used, the CPU features checked by the dispatcher).
            unsafe {
                let h = _mm256_loadu_si256(p as *const __m256i);
                _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
            }
        }
    }
    impl Load for half::f16 {
        #[inline(always)]
        unsafe fn load16(p: *const Self) -> __m512 {
            // SAFETY: the caller upholds this function's contract (pointers valid for the
            // lengths used, the CPU features checked by the dispatcher).
            unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
        }
    }

    /// Dot products of IB rows of x with JB = 4 rows of w starting at `w_rows`.
    #[inline(always)]
    unsafe fn tile<W: Load, const IB: usize>(
        x: [*const f32; IB],
        w: [*const W; 4],
        k: usize,
    ) -> [[f32; 4]; IB] {
        // SAFETY: the caller upholds this function's contract (pointers valid for the
        // lengths used, the CPU features checked by the dispatcher).
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); 4]; IB];
            let full = k / 16 * 16;
            let mut c = 0;
            while c < full {
                let mut xv = [_mm512_setzero_ps(); IB];
                for i in 0..IB {
                    xv[i] = _mm512_loadu_ps(x[i].add(c));
                }
                for j in 0..4 {
                    let wv = W::load16(w[j].add(c));
                    for i in 0..IB {
                        acc[i][j] = _mm512_fmadd_ps(xv[i], wv, acc[i][j]);
                    }
                }
                c += 16;
            }
            let mut out = [[0f32; 4]; IB];
            for i in 0..IB {
                for j in 0..4 {
                    let mut s = _mm512_reduce_add_ps(acc[i][j]);
                    for t in full..k {
                        s += *x[i].add(t) * (*w[j].add(t)).to_f32();
                    }
                    out[i][j] = s;
                }
            }
            out
        }
    }

    /// Rows `j0..j0 + out.len()/m` of the transposed result.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block<W: Load>(
        x: &[f32],
        m: usize,
        k: usize,
        w: &[W],
        j0: usize,
        out: &mut [f32],
    ) {
        // SAFETY: the caller upholds this function's contract (pointers valid for the
        // lengths used, the CPU features checked by the dispatcher).
        unsafe {
            let nj = out.len() / m;
            let mut jj = 0;
            while jj < nj {
                let jb = (nj - jj).min(4);
                // Past the last row, repeat it; those results are not stored.
                let wp: [*const W; 4] =
                    std::array::from_fn(|b| w.as_ptr().add((j0 + jj + b.min(jb - 1)) * k));
                let mut i = 0;
                while i + 4 <= m {
                    let t =
                        tile::<W, 4>(std::array::from_fn(|r| x.as_ptr().add((i + r) * k)), wp, k);
                    for b in 0..jb {
                        for r in 0..4 {
                            out[(jj + b) * m + i + r] = t[r][b];
                        }
                    }
                    i += 4;
                }
                while i + 2 <= m {
                    let t =
                        tile::<W, 2>([x.as_ptr().add(i * k), x.as_ptr().add((i + 1) * k)], wp, k);
                    for b in 0..jb {
                        out[(jj + b) * m + i] = t[0][b];
                        out[(jj + b) * m + i + 1] = t[1][b];
                    }
                    i += 2;
                }
                if i < m {
                    let t = tile::<W, 1>([x.as_ptr().add(i * k)], wp, k);
                    for b in 0..jb {
                        out[(jj + b) * m + i] = t[0][b];
                    }
                }
                jj += jb;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Weight;
    use std::arch::x86_64::*;

    pub(super) trait Load: Weight {
        /// Loads 8 weights starting at `p` as f32.
        unsafe fn load8(p: *const Self) -> __m256;
    }
    impl Load for f32 {
        #[inline(always)]
        unsafe fn load8(p: *const Self) -> __m256 {
            // SAFETY: the caller upholds this function's contract (pointers valid for the
            // lengths used, the CPU features checked by the dispatcher).
            unsafe { _mm256_loadu_ps(p) }
        }
    }
    impl Load for half::bf16 {
        #[inline(always)]
        unsafe fn load8(p: *const Self) -> __m256 {
            // SAFETY: as above; a bf16 is the high half of an f32.
            unsafe {
                let h = _mm_loadu_si128(p as *const __m128i);
                _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
            }
        }
    }
    impl Load for half::f16 {
        #[inline(always)]
        unsafe fn load8(p: *const Self) -> __m256 {
            // SAFETY: as above (F16C is part of the avx2 path's requirements).
            unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
        }
    }

    /// Σ of the 8 lanes.
    #[inline(always)]
    unsafe fn sum8(v: __m256) -> f32 {
        // SAFETY: register-only arithmetic on the features the caller enabled.
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
            _mm_cvtss_f32(s)
        }
    }

    /// Dot products of IB (≤ 2) rows of x with 4 rows of w: 8 accumulators, two x vectors and
    /// one weight vector in the 16 registers.
    #[inline(always)]
    unsafe fn tile<W: Load, const IB: usize>(
        x: [*const f32; IB],
        w: [*const W; 4],
        k: usize,
    ) -> [[f32; 4]; IB] {
        // SAFETY: the caller upholds this function's contract (pointers valid for `k` elements,
        // the CPU features checked by the dispatcher).
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 4]; IB];
            let full = k / 8 * 8;
            let mut c = 0;
            while c < full {
                let mut xv = [_mm256_setzero_ps(); IB];
                for i in 0..IB {
                    xv[i] = _mm256_loadu_ps(x[i].add(c));
                }
                for j in 0..4 {
                    let wv = W::load8(w[j].add(c));
                    for i in 0..IB {
                        acc[i][j] = _mm256_fmadd_ps(xv[i], wv, acc[i][j]);
                    }
                }
                c += 8;
            }
            let mut out = [[0f32; 4]; IB];
            for i in 0..IB {
                for j in 0..4 {
                    let mut s = sum8(acc[i][j]);
                    for t in full..k {
                        s += *x[i].add(t) * (*w[j].add(t)).to_f32();
                    }
                    out[i][j] = s;
                }
            }
            out
        }
    }

    /// Rows `j0..j0 + out.len()/m` of the transposed result.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn block<W: Load>(
        x: &[f32],
        m: usize,
        k: usize,
        w: &[W],
        j0: usize,
        out: &mut [f32],
    ) {
        // SAFETY: the caller upholds this function's contract (pointers valid for the lengths
        // used, the CPU features checked by the dispatcher).
        unsafe {
            let nj = out.len() / m;
            let mut jj = 0;
            while jj < nj {
                let jb = (nj - jj).min(4);
                // Past the last row, repeat it; those results are not stored.
                let wp: [*const W; 4] =
                    std::array::from_fn(|b| w.as_ptr().add((j0 + jj + b.min(jb - 1)) * k));
                let mut i = 0;
                while i + 2 <= m {
                    let t =
                        tile::<W, 2>([x.as_ptr().add(i * k), x.as_ptr().add((i + 1) * k)], wp, k);
                    for b in 0..jb {
                        out[(jj + b) * m + i] = t[0][b];
                        out[(jj + b) * m + i + 1] = t[1][b];
                    }
                    i += 2;
                }
                if i < m {
                    let t = tile::<W, 1>([x.as_ptr().add(i * k)], wp, k);
                    for b in 0..jb {
                        out[(jj + b) * m + i] = t[0][b];
                    }
                }
                jj += jb;
            }
        }
    }
}

/// The widest kernel the process's path allows.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, PartialEq, Eq)]
enum Width {
    Avx512,
    Avx2,
    Portable,
}

#[cfg(target_arch = "x86_64")]
fn width() -> Width {
    use crate::cpu_kernels::CpuKernels;
    let path = CpuKernels::selected();
    if path.uses_avx512() && std::arch::is_x86_feature_detected!("avx512f") {
        Width::Avx512
    } else if path == CpuKernels::Avx2 {
        Width::Avx2
    } else {
        Width::Portable
    }
}

#[cfg(target_arch = "x86_64")]
fn run<W: avx512::Load + avx2::Load>(x: &[f32], m: usize, k: usize, w: &[W], n: usize) -> Vec<f32> {
    // AVX-512 unless the process forced a lower path (COGVIEW_CPU_KERNELS=avx2 or portable).
    let width = width();
    run_with(x, m, k, w, n, |x, m, k, w, j0, out| match width {
        // SAFETY: the CPU supports AVX-512F (checked by `width`); `block` reads rows j0.. of `w`
        // and `m` rows of `x`, all inside the slices whose lengths `cpu_fwd` checked.
        Width::Avx512 => unsafe { avx512::block(x, m, k, w, j0, out) },
        // SAFETY: the avx2 path is selected only where the CPU has AVX2, FMA and F16C; lengths
        // as above.
        Width::Avx2 => unsafe { avx2::block(x, m, k, w, j0, out) },
        Width::Portable => block_portable(x, m, k, w, j0, out),
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn run<W: Weight>(x: &[f32], m: usize, k: usize, w: &[W], n: usize) -> Vec<f32> {
    run_with(x, m, k, w, n, block_portable)
}

fn run_with<W: Weight>(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[W],
    n: usize,
    block: impl Fn(&[f32], usize, usize, &[W], usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    // Transposed result [n, m], filled in parallel chunks of output features.
    let mut t = vec![0f32; n * m];
    t.par_chunks_mut(CHUNK * m)
        .enumerate()
        .for_each(|(c, out)| block(x, m, k, w, c * CHUNK, out));
    let mut y = vec![0f32; m * n];
    for j in 0..n {
        for i in 0..m {
            y[i * n + j] = t[j * m + i];
        }
    }
    y
}

/// (m, k, n) of `x [m, k] · w [n, k]ᵀ` from the operands' layouts; an error names `op` when
/// the inner sizes differ.
pub(crate) fn product_dims(
    x: &Layout,
    w: &Layout,
    op: &str,
) -> candle_core::Result<(usize, usize, usize)> {
    let (m, k) = x.shape().dims2()?;
    let (n, k2) = w.shape().dims2()?;
    if k != k2 {
        candle_core::bail!("{op}: x has {k} columns but w has {k2}");
    }
    Ok((m, k, n))
}

/// The part of a CPU storage `l` covers, if it is contiguous; else an error naming `what`
/// (the custom op and its operand).
pub(crate) fn contiguous<'a, T>(
    s: &'a [T],
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s[a..b]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

impl candle_core::CustomOp2 for SmallRowsLinear {
    fn name(&self) -> &'static str {
        "small-rows-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k, n) = product_dims(l1, l2, "small-rows-linear")?;
        // x is read as f32 whatever its dtype; the result has x's dtype; w is read in its own.
        let x32: std::borrow::Cow<[f32]> = match s1 {
            CpuStorage::F32(x) => {
                std::borrow::Cow::Borrowed(contiguous(x, l1, "small-rows-linear: x")?)
            }
            CpuStorage::BF16(x) => contiguous(x, l1, "small-rows-linear: x")?
                .iter()
                .map(|v| v.to_f32())
                .collect(),
            CpuStorage::F16(x) => contiguous(x, l1, "small-rows-linear: x")?
                .iter()
                .map(|v| v.to_f32())
                .collect(),
            other => {
                candle_core::bail!("small-rows-linear: unsupported x dtype {:?}", other.dtype())
            }
        };
        let y = match s2 {
            CpuStorage::F32(w) => run(&x32, m, k, contiguous(w, l2, "small-rows-linear: w")?, n),
            CpuStorage::BF16(w) => run(&x32, m, k, contiguous(w, l2, "small-rows-linear: w")?, n),
            CpuStorage::F16(w) => run(&x32, m, k, contiguous(w, l2, "small-rows-linear: w")?, n),
            other => {
                candle_core::bail!("small-rows-linear: unsupported w dtype {:?}", other.dtype())
            }
        };
        let out = match s1 {
            CpuStorage::BF16(_) => CpuStorage::BF16(y.into_iter().map(bf16::from_f32).collect()),
            CpuStorage::F16(_) => CpuStorage::F16(y.into_iter().map(f16::from_f32).collect()),
            _ => CpuStorage::F32(y),
        };
        Ok((out, Shape::from((m, n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{max_abs_diff, random_values, reference_product_wt};

    /// The product on every kernel this CPU can run (portable, AVX2, AVX-512), whatever path the
    /// process selected, named for the failure messages.
    #[cfg(target_arch = "x86_64")]
    fn on_every_kernel<W: avx512::Load + avx2::Load>(
        x: &[f32],
        m: usize,
        k: usize,
        w: &[W],
        n: usize,
    ) -> Vec<(&'static str, Vec<f32>)> {
        let mut got = vec![
            ("selected", run(x, m, k, w, n)),
            ("portable", run_with(x, m, k, w, n, block_portable)),
        ];
        if crate::cpu_kernels::CpuKernels::Avx2.available() {
            // SAFETY: the CPU has AVX2, FMA and F16C (checked just above).
            let y = run_with(x, m, k, w, n, |x, m, k, w, j0, out| unsafe {
                avx2::block(x, m, k, w, j0, out)
            });
            got.push(("avx2", y));
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            let y = run_with(x, m, k, w, n, |x, m, k, w, j0, out| unsafe {
                avx512::block(x, m, k, w, j0, out)
            });
            got.push(("avx512", y));
        }
        got
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn on_every_kernel<W: Weight>(
        x: &[f32],
        m: usize,
        k: usize,
        w: &[W],
        n: usize,
    ) -> Vec<(&'static str, Vec<f32>)> {
        vec![("portable", run_with(x, m, k, w, n, block_portable))]
    }

    #[test]
    fn matches_a_plain_matrix_product_for_every_shape_dtype_and_kernel() {
        for (m, k, n) in [
            (1, 5, 3),
            (2, 16, 4),
            (3, 37, 130),
            (8, 768, 67),
            (5, 33, 1),
            (16, 100, 9),
        ] {
            let x = random_values(1 + k as u64, m * k);
            let w = random_values(2 + n as u64, n * k);
            let want = reference_product_wt(&x, m, k, &w, n);
            for (kernel, got) in on_every_kernel(&x, m, k, &w, n) {
                assert!(max_abs_diff(&got, &want) < 1e-4, "f32 {kernel} {m}x{k}x{n}");
            }
            // Half-precision weights: compare with the product of the rounded weights.
            let wb: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            let want_b = reference_product_wt(
                &x,
                m,
                k,
                &wb.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
                n,
            );
            for (kernel, got) in on_every_kernel(&x, m, k, &wb, n) {
                assert!(
                    max_abs_diff(&got, &want_b) < 1e-4,
                    "bf16 {kernel} {m}x{k}x{n}"
                );
            }
            let wh: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
            let want_h = reference_product_wt(
                &x,
                m,
                k,
                &wh.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
                n,
            );
            for (kernel, got) in on_every_kernel(&x, m, k, &wh, n) {
                assert!(
                    max_abs_diff(&got, &want_h) < 1e-4,
                    "f16 {kernel} {m}x{k}x{n}"
                );
            }
        }
    }
}

/// exp(x) for f32 without libm, vectorisable: 2^(x·log2 e) split into an integer power (exponent
/// bits) and a degree-6 polynomial of the fraction. Relative error below 3e-7 for |x| ≤ 80.
#[inline(always)]
fn fast_exp(x: f32) -> f32 {
    let x = x.clamp(-80.0, 80.0);
    let t = x * std::f32::consts::LOG2_E;
    // floor(t) without a libm call (so the loop vectorises).
    let ti = t as i32;
    let n = (ti - ((ti as f32) > t) as i32) as f32;
    let f = t - n; // in [0, 1)
                   // 2^f on [0, 1): minimax-style polynomial (Horner).
                   // The first coefficient is close to ln 2 by design (the polynomial's own fit), not a typo.
    #[allow(clippy::approx_constant)]
    let p = 1.0
        + f * (0.693_147_2
            + f * (0.240_226_5
                + f * (0.055_504_11
                    + f * (0.009_618_129 + f * (0.001_333_355_8 + f * 0.000_154_035_3)))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

/// The tanh-approximation GELU of SwissArmyTransformer, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))),
/// for f32 on the CPU without libm calls (candle's goes through scalar `tanhf`).
pub struct GeluTanh;

impl candle_core::CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = s else {
            candle_core::bail!("gelu-tanh: f32 only, got {:?}", s.dtype())
        };
        let x = contiguous(data, l, "x")?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(1 << 14)
            .zip(x.par_chunks(1 << 14))
            .for_each(|(o, x)| {
                for (o, &v) in o.iter_mut().zip(x) {
                    let u = 0.797_884_6 * (v + 0.044_715 * v * v * v);
                    let e = fast_exp(2.0 * u.clamp(-15.0, 15.0));
                    let t = (e - 1.0) / (e + 1.0);
                    *o = 0.5 * v * (1.0 + t);
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    /// d/dx = ½(1 + t) + ½·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²), t = tanh(√(2/π)(x + 0.044715x³)).
    fn bwd(
        &self,
        arg: &candle_core::Tensor,
        _res: &candle_core::Tensor,
        grad_res: &candle_core::Tensor,
    ) -> candle_core::Result<Option<candle_core::Tensor>> {
        let x = arg.detach().contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let mut d = vec![0f32; x.len()];
        d.par_chunks_mut(1 << 14)
            .zip(x.par_chunks(1 << 14))
            .for_each(|(o, x)| {
                for (o, &v) in o.iter_mut().zip(x) {
                    let u = 0.797_884_6 * (v + 0.044_715 * v * v * v);
                    let e = fast_exp(2.0 * u.clamp(-15.0, 15.0));
                    let t = (e - 1.0) / (e + 1.0);
                    *o = 0.5 * (1.0 + t)
                        + 0.5 * v * (1.0 - t * t) * 0.797_884_6 * (1.0 + 0.134_145 * v * v);
                }
            });
        let d = candle_core::Tensor::from_vec(d, arg.shape(), arg.device())?;
        Ok(Some(grad_res.mul(&d)?))
    }
}

#[cfg(test)]
mod gelu_tests {
    use super::*;

    #[test]
    fn gelu_gradient_matches_candles_autograd() {
        let xs: Vec<f32> = (-800..=800).map(|i| i as f32 * 0.01).collect();
        let v =
            candle_core::Var::from_vec(xs.clone(), xs.len(), &candle_core::Device::Cpu).unwrap();
        let ours = v.as_tensor().apply_op1(GeluTanh).unwrap();
        let theirs = v.as_tensor().gelu().unwrap();
        let g1 = ours.sum_all().unwrap().backward().unwrap();
        let g2 = theirs.sum_all().unwrap().backward().unwrap();
        let a = g1.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        let b = g2.get(v.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        for ((x, p), q) in xs.iter().zip(&a).zip(&b) {
            assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "x {x}: {p} vs {q}");
        }
    }

    #[test]
    fn fast_gelu_matches_the_tanh_formula() {
        let xs: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.005).collect();
        for &x in &xs {
            let want = 0.5
                * x as f64
                * (1.0 + (0.7978845608028654 * (x as f64 + 0.044715 * (x as f64).powi(3))).tanh());
            let u = 0.797_884_6 * (x + 0.044_715 * x * x * x);
            let e = fast_exp(2.0 * u.clamp(-15.0, 15.0));
            let got = 0.5 * x * (1.0 + (e - 1.0) / (e + 1.0));
            assert!(
                (got as f64 - want).abs() <= 2e-6 * (1.0 + want.abs()),
                "x {x}: {got} vs {want}"
            );
        }
        for x in [-30.0f32, 0.0, 1e-3, 12.0, 40.0] {
            assert!(
                (fast_exp(x) as f64 / (x as f64).exp() - 1.0).abs() < 1e-6,
                "exp({x})"
            );
        }
    }
}
