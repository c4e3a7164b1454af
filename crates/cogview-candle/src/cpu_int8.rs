//! int8 weights for the memory-bound decoding steps (the `weights = "int8"` backend option).
//!
//! Each linear layer's weight W [out, in] is stored as int8 with one f32 scale per output row
//! (symmetric, round to nearest: `W[j, c] ≈ q[j, c] · scale[j]`, `scale[j] = max_c |W[j, c]| /
//! 127`), in panels of 16 output rows whose 64-byte vectors hold four consecutive k values of
//! each of the 16 rows. A decoding step (≤ [`crate::cpu_linear::MAX_ROWS`] rows) reads one byte
//! per weight instead of two (bf16) or four (f32):
//!
//! - with AVX512-VNNI (Intel since Cascade Lake, AMD Zen 4), each row of x is quantized the same
//!   way (one scale per row, stored as u8 = q + 128); for each k-group, one load of a panel vector
//!   and one `vpdpbusd` per row of x (its four bytes broadcast) advance 16 dot products by four
//!   terms, so no horizontal sums are needed; `Σ (qx + 128)·qw − 128·Σ qw` is the exact integer
//!   dot product, scaled by `scale_x · scale[j]`;
//! - otherwise (or with `COGVIEW_CPU_KERNELS=avx512|portable`) a portable loop over the same
//!   panels against f32 x, the row's scale applied to the finished sum.
//!
//! Products with more rows (prefill, DSR, ItersR) are compute-bound: they widen W to f32 once per
//! call and run on the f32 GEMM.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Shape, Tensor};

/// A weight matrix in int8 with per-output-row scales, and its bias.
pub(crate) struct Int8Weights {
    /// Panels of [`PR`] output rows: `[n.div_ceil(PR)][kp / 4][PR][4]` — each 64-byte vector holds
    /// four consecutive k values of 16 rows, so one `vpdpbusd` advances 16 dot products by four
    /// terms and no horizontal sums are needed. Rows past n and columns past k are 0.
    pub q: Vec<i8>,
    /// `Σ_c q[j, c]` per row (the u8 offset's correction).
    pub row_sum: Vec<i32>,
    /// One scale per output row.
    pub scale: Vec<f32>,
    /// Bias (f32), one per output row.
    pub bias: Vec<f32>,
    pub n: usize,
    pub k: usize,
    /// k rounded up to a multiple of 4 (one k-group of a panel vector).
    pub kp: usize,
}

/// Output rows per panel (one 512-bit vector of i32 sums).
const PR: usize = 16;

impl Int8Weights {
    /// Index in `q` of row j, column c.
    #[inline(always)]
    fn at(&self, j: usize, c: usize) -> usize {
        ((j / PR * (self.kp / 4) + c / 4) * PR + j % PR) * 4 + c % 4
    }
    /// Panels.
    fn panels(&self) -> usize {
        self.n.div_ceil(PR)
    }
}

impl Int8Weights {
    /// Quantizes f32 W [n, k] (row-major) per output row.
    pub fn quantize(w: &[f32], n: usize, k: usize, bias: Vec<f32>) -> Int8Weights {
        assert_eq!(w.len(), n * k, "int8 weights: W is not [n, k]");
        let kp = k.div_ceil(4) * 4;
        let mut rows = vec![0i8; n * k];
        let mut scale = vec![0f32; n];
        for j in 0..n {
            let row = &w[j * k..(j + 1) * k];
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            // An all-zero row keeps scale 0 (its products are 0 whatever q holds).
            let s = if max > 0.0 && max.is_finite() {
                max / 127.0
            } else {
                0.0
            };
            scale[j] = s;
            if s > 0.0 {
                for (qc, &v) in rows[j * k..(j + 1) * k].iter_mut().zip(row) {
                    *qc = (v / s).round().clamp(-127.0, 127.0) as i8;
                }
            }
        }
        let row_sum = (0..n)
            .map(|j| rows[j * k..(j + 1) * k].iter().map(|&v| v as i32).sum())
            .collect();
        let mut w = Int8Weights {
            q: vec![0i8; n.div_ceil(PR) * PR * kp],
            row_sum,
            scale,
            bias,
            n,
            k,
            kp,
        };
        for j in 0..n {
            for c in 0..k {
                let at = w.at(j, c);
                w.q[at] = rows[j * k + c];
            }
        }
        w
    }

    /// W widened back to f32 [n, k] (`q · scale`).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut w = Vec::with_capacity(self.n * self.k);
        for j in 0..self.n {
            let s = self.scale[j];
            w.extend((0..self.k).map(|c| self.q[self.at(j, c)] as f32 * s));
        }
        w
    }
}

/// `x · Wᵀ + b` for f32 x [m, k] on the CPU with int8 W: the decoding kernel for few rows, the
/// f32 GEMM on the widened W otherwise.
pub(crate) fn linear(x: &Tensor, w: &std::sync::Arc<Int8Weights>) -> candle_core::Result<Tensor> {
    let x = x.to_dtype(candle_core::DType::F32)?.contiguous()?;
    if x.dim(0)? <= crate::cpu_linear::MAX_ROWS {
        return x.apply_op1_no_bwd(&SmallRowsInt8(w.clone()));
    }
    let wf = Tensor::from_vec(w.dequantize(), (w.n, w.k), x.device())?;
    let b = Tensor::from_slice(&w.bias, w.n, x.device())?;
    let y = if crate::cpu_gemm::available() {
        crate::cpu_gemm::matmul(&x, &wf.t()?)?
    } else {
        x.matmul(&wf.t()?)?
    };
    y.broadcast_add(&b)
}

/// The decoding-step product with int8 weights (scale and bias applied).
struct SmallRowsInt8(std::sync::Arc<Int8Weights>);

impl candle_core::CustomOp1 for SmallRowsInt8 {
    fn name(&self) -> &'static str {
        "small-rows-linear-int8"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let w = &self.0;
        let (m, k) = l.shape().dims2()?;
        if k != w.k {
            candle_core::bail!(
                "small-rows-linear-int8: x has {k} columns but W has {}",
                w.k
            );
        }
        let x = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(x), Some((a, b))) => &x[a..b],
            (CpuStorage::F32(_), None) => {
                candle_core::bail!("small-rows-linear-int8: x must be contiguous")
            }
            (other, _) => candle_core::bail!(
                "small-rows-linear-int8: x must be f32, not {:?}",
                other.dtype()
            ),
        };
        let y = if vnni_available() {
            vnni_product(x, m, w)
        } else {
            widened_product(x, m, w)
        };
        Ok((CpuStorage::F32(y), Shape::from((m, w.n))))
    }
}

/// Whether the VNNI kernel runs: the CPU has AVX512-VNNI and `COGVIEW_CPU_KERNELS` does not
/// force the f32 (`avx512`), `avx2` or `portable` kernels.
pub(crate) fn vnni_available() -> bool {
    use crate::cpu_kernels::CpuKernels;
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && !matches!(
                CpuKernels::selected(),
                CpuKernels::Portable | CpuKernels::Avx2 | CpuKernels::Avx512
            )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// x f32 against the int8 panels widened to f32 (CPUs without AVX512-VNNI, or the f32/portable
/// kernels forced): each panel's 16 rows are widened once into a row-major f32 block, then every
/// row of x takes plain dot products with them; `y = (x · qᵀ) · scale + b`.
fn widened_product(x: &[f32], m: usize, w: &Int8Weights) -> Vec<f32> {
    let avx2 = crate::cpu_kernels::CpuKernels::selected() == crate::cpu_kernels::CpuKernels::Avx2;
    widened_product_with(x, m, w, avx2)
}

/// [`widened_product`] with the AVX2/FMA build of the panel loop when `avx2` (which the caller
/// checked the CPU can run), the portable build otherwise.
fn widened_product_with(x: &[f32], m: usize, w: &Int8Weights, avx2: bool) -> Vec<f32> {
    use rayon::prelude::*;
    let groups = w.kp / 4;
    #[cfg(not(target_arch = "x86_64"))]
    let _ = avx2;
    let mut t = vec![0f32; w.panels() * PR * m];
    t.par_chunks_mut(PR * m).enumerate().for_each(|(p, out)| {
        let panel = &w.q[p * groups * PR * 4..(p + 1) * groups * PR * 4];
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: the avx2 path is selected only where the CPU has AVX2 and FMA.
            unsafe { widened_panel_avx2(x, m, w, panel, out) };
            return;
        }
        widened_panel(x, m, w, panel, out);
    });
    let mut y = vec![0f32; m * w.n];
    for i in 0..m {
        for j in 0..w.n {
            y[i * w.n + j] = t[j * m + i] * w.scale[j] + w.bias[j];
        }
    }
    y
}

/// One panel's PR output rows for every row of x, into `out` ([PR][m]): the panel widened to f32
/// rows, then plain dot products.
#[inline(always)]
fn widened_panel(x: &[f32], m: usize, w: &Int8Weights, panel: &[i8], out: &mut [f32]) {
    let (k, kp) = (w.k, w.kp);
    let mut rows = vec![0f32; PR * kp];
    for (g, block) in panel.chunks_exact(PR * 4).enumerate() {
        for (r, q) in block.chunks_exact(4).enumerate() {
            for (u, &v) in q.iter().enumerate() {
                rows[r * kp + 4 * g + u] = v as f32;
            }
        }
    }
    for i in 0..m {
        let xr = &x[i * k..(i + 1) * k];
        for r in 0..PR {
            out[r * m + i] = dot(xr, &rows[r * kp..r * kp + k]);
        }
    }
}

/// [`widened_panel`] compiled for AVX2 and FMA (8-lane vectors).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn widened_panel_avx2(x: &[f32], m: usize, w: &Int8Weights, panel: &[i8], out: &mut [f32]) {
    widened_panel(x, m, w, panel, out)
}

/// Σ a·b with eight independent sums (so that the compiler vectorises it).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `v` rounded to the nearest integer (ties to even) for |v| < 2²², without a libm call: adding
/// and subtracting 1.5·2²³ leaves no fraction bits in between (the compiler can vectorise it).
#[inline(always)]
fn round_small(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    (v + MAGIC) - MAGIC
}

/// One row of x quantized for the VNNI kernel: `(u8 values q + 128 padded to kp, scale)`.
fn quantize_row(x: &[f32], kp: usize) -> (Vec<u8>, f32) {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let s = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        0.0
    };
    let mut q = vec![128u8; kp];
    if s > 0.0 {
        let inv = 1.0 / s;
        for (qc, &v) in q.iter_mut().zip(x) {
            *qc = (round_small(v * inv).clamp(-127.0, 127.0) as i32 + 128) as u8;
        }
    }
    (q, s)
}

/// x quantized per row, integer dot products with VNNI: `y = sx · scale · (Σ ux·q − 128·Σq) + b`.
fn vnni_product(x: &[f32], m: usize, w: &Int8Weights) -> Vec<f32> {
    use rayon::prelude::*;
    let rows: Vec<(Vec<u8>, f32)> = x.chunks_exact(w.k).map(|r| quantize_row(r, w.kp)).collect();
    let xq: Vec<u8> = rows.iter().flat_map(|r| r.0.iter().copied()).collect();
    // Integer sums, transposed [panel rows, m], in parallel chunks of panels: about two per
    // thread, and at least MIN_PANELS (64 output rows) each. A chunk of 16 rows reads a few tens
    // of KiB, microseconds of work: finer chunks cost more in scheduling than they gain, and
    // made two threads slower than one.
    const MIN_PANELS: usize = 4;
    let threads = rayon::current_num_threads().max(1);
    let panels_per_chunk = w.panels().div_ceil(2 * threads).max(MIN_PANELS);
    let groups = w.kp / 4;
    let mut t = vec![0i32; w.panels() * PR * m];
    t.par_chunks_mut(panels_per_chunk * PR * m)
        .enumerate()
        .for_each(|(c, out)| {
            let p0 = c * panels_per_chunk;
            let np = out.len() / (PR * m);
            let q = &w.q[p0 * groups * PR * 4..(p0 + np) * groups * PR * 4];
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `vnni_available` checked AVX512-F/BW/VNNI before this path was chosen;
            // `panels` reads np panels of `q` (np·kp·16 bytes) and m rows of `xq` (m·kp bytes).
            unsafe {
                vnni::panels(&xq, m, w.kp, q, np, out)
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (q, out);
        });
    let mut y = vec![0f32; m * w.n];
    for i in 0..m {
        let sx = rows[i].1;
        for j in 0..w.n {
            let dot = t[j * m + i] - 128 * w.row_sum[j];
            y[i * w.n + j] = dot as f32 * (sx * w.scale[j]) + w.bias[j];
        }
    }
    y
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::PR;
    use std::arch::x86_64::*;

    /// The i32 sums of `np` panels against every row of xq (m rows of kp u8), written transposed:
    /// `out[(p·16 + r)·m + i]`. One 64-byte load of a panel serves all m rows of x; each row's four
    /// bytes of a k-group are broadcast to every lane.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn panels(
        xq: &[u8],
        m: usize,
        kp: usize,
        q: &[i8],
        np: usize,
        out: &mut [i32],
    ) {
        macro_rules! rows {
            ($($mm:literal)*) => {
                match m {
                    $($mm => for p in 0..np {
                        // SAFETY: panel p lies inside q, its rows' slots inside out.
                        unsafe { panel::<$mm>(xq, kp, q, p, out) }
                    },)*
                    _ => unreachable!("at most 16 rows of x"),
                }
            };
        }
        rows!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }

    #[inline(always)]
    unsafe fn panel<const M: usize>(xq: &[u8], kp: usize, q: &[i8], p: usize, out: &mut [i32]) {
        let groups = kp / 4;
        // SAFETY: reads groups·64 bytes of panel p and 4 bytes per group of each x row, all in
        // bounds by construction (kp is a multiple of 4; q holds np whole panels).
        unsafe {
            let base = q.as_ptr().add(p * groups * PR * 4);
            let mut acc = [_mm512_setzero_si512(); M];
            for g in 0..groups {
                let wv = _mm512_loadu_si512(base.add(g * PR * 4) as *const _);
                for (i, a) in acc.iter_mut().enumerate() {
                    let xv = (xq.as_ptr().add(i * kp + 4 * g) as *const i32).read_unaligned();
                    *a = _mm512_dpbusd_epi32(*a, _mm512_set1_epi32(xv), wv);
                }
            }
            let mut lanes = [0i32; PR];
            for (i, a) in acc.iter().enumerate() {
                _mm512_storeu_si512(lanes.as_mut_ptr() as *mut _, *a);
                for (r, v) in lanes.iter().enumerate() {
                    out[(p * PR + r) * M + i] = *v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{max_abs_diff, random_values, reference_product_wt};
    use std::sync::Arc;

    #[test]
    fn round_small_rounds_to_nearest_even_like_the_standard_library() {
        for i in -40_000..40_000 {
            let v = i as f32 * 0.0137 - 3.5;
            assert_eq!(round_small(v), v.round_ties_even(), "{v}");
        }
        for v in [
            0.5f32, 1.5, 2.5, -0.5, -1.5, 126.5, -126.5, 127.0, -127.0, 0.0,
        ] {
            assert_eq!(round_small(v), v.round_ties_even(), "{v}");
        }
    }

    #[test]
    fn quantization_error_is_at_most_half_a_step_per_weight() {
        let (n, k) = (37, 53);
        let mut w = random_values(7, n * k);
        w[5 * k..6 * k].iter_mut().for_each(|v| *v = 0.0); // an all-zero row
        let q = Int8Weights::quantize(&w, n, k, vec![0.0; n]);
        let back = q.dequantize();
        for j in 0..n {
            let max = w[j * k..(j + 1) * k]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            assert!((q.scale[j] - max / 127.0).abs() <= f32::EPSILON * max);
            for c in 0..k {
                let err = (w[j * k + c] - back[j * k + c]).abs();
                assert!(
                    err <= q.scale[j] * 0.5 + 1e-7,
                    "row {j} col {c}: error {err}"
                );
                assert!(q.q[j * k + c] >= -127);
            }
        }
        assert!(back[5 * k..6 * k].iter().all(|&v| v == 0.0));
    }

    /// Shapes covering 1..=16 rows (and the GEMM fallback above), k with and without padding.
    const SHAPES: [(usize, usize, usize); 6] = [
        (1, 64, 70),
        (3, 77, 9),
        (8, 128, 64),
        (16, 50, 33),
        (17, 64, 20),
        (40, 96, 65),
    ];

    fn case(m: usize, k: usize, n: usize) -> (Vec<f32>, Arc<Int8Weights>, Vec<f32>) {
        let x = random_values(m as u64 * 31 + k as u64, m * k);
        let w = random_values(n as u64 * 17 + 1, n * k);
        let bias = random_values(3, n);
        (
            x,
            Arc::new(Int8Weights::quantize(&w, n, k, bias.clone())),
            bias,
        )
    }

    fn plus_bias(y: Vec<f64>, bias: &[f32]) -> Vec<f64> {
        let n = bias.len();
        y.into_iter()
            .enumerate()
            .map(|(i, v)| v + bias[i % n] as f64)
            .collect()
    }

    #[test]
    fn the_widened_kernel_and_the_gemm_fallback_multiply_by_the_dequantized_weights() {
        for (m, k, n) in SHAPES {
            let (x, q, bias) = case(m, k, n);
            let want = plus_bias(reference_product_wt(&x, m, k, &q.dequantize(), n), &bias);
            if m <= crate::cpu_linear::MAX_ROWS && crate::cpu_kernels::CpuKernels::Avx2.available()
            {
                let err = max_abs_diff(&widened_product_with(&x, m, &q, true), &want);
                assert!(
                    err < 1e-4 * (k as f64).sqrt(),
                    "avx2: m {m} k {k} n {n}: {err}"
                );
            }
            let got = if m <= crate::cpu_linear::MAX_ROWS {
                widened_product(&x, m, &q)
            } else {
                let xt = Tensor::from_vec(x, (m, k), &candle_core::Device::Cpu).unwrap();
                linear(&xt, &q)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            let err = max_abs_diff(&got, &want);
            assert!(
                err < 1e-4 * (k as f64).sqrt(),
                "m {m} k {k} n {n}: max error {err}"
            );
        }
    }

    #[test]
    fn the_vnni_kernel_is_the_exact_integer_product_of_the_quantized_values() {
        if !vnni_available() {
            eprintln!("skipped: this CPU has no AVX512-VNNI (the widened kernel is tested above)");
            return;
        }
        for (m, k, n) in SHAPES
            .into_iter()
            .filter(|s| s.0 <= crate::cpu_linear::MAX_ROWS)
        {
            let (x, q, bias) = case(m, k, n);
            // x as the kernel sees it: quantized per row, dequantized.
            let xd: Vec<f32> = x
                .chunks_exact(k)
                .flat_map(|r| {
                    let (u, s) = quantize_row(r, q.kp);
                    u[..k]
                        .iter()
                        .map(move |&v| (v as i32 - 128) as f32 * s)
                        .collect::<Vec<_>>()
                })
                .collect();
            let want = plus_bias(reference_product_wt(&xd, m, k, &q.dequantize(), n), &bias);
            let got = vnni_product(&x, m, &q);
            let err = max_abs_diff(&got, &want);
            assert!(
                err < 1e-5 * (k as f64).sqrt(),
                "m {m} k {k} n {n}: max error {err}"
            );
            // And close to the unquantized product: each term is off by at most half a step of
            // x times |w| plus half a step of w times |x|.
            let exact = plus_bias(reference_product_wt(&x, m, k, &q.dequantize(), n), &bias);
            for i in 0..m {
                let xr = &x[i * k..(i + 1) * k];
                let sx = xr.iter().fold(0f32, |a, v| a.max(v.abs())) as f64 / 127.0;
                for j in 0..n {
                    let wr = &q.dequantize()[j * k..(j + 1) * k];
                    let bound: f64 =
                        wr.iter().map(|v| v.abs() as f64 * sx * 0.5).sum::<f64>() + 1e-5;
                    let d = (got[i * n + j] as f64 - exact[i * n + j]).abs();
                    assert!(
                        d <= bound,
                        "m {m} k {k} n {n} ({i}, {j}): off by {d} > {bound}"
                    );
                }
            }
        }
    }
}
