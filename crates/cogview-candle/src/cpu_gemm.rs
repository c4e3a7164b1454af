//! An f32 matrix product for x86-64 CPUs with AVX-512: C = A · B with packed panels and a 12×32
//! register-blocked micro-kernel, parallel over column blocks. candle's CPU matmul (the `gemm`
//! crate) uses 256-bit AVX2 kernels on stable Rust, so it reaches about half of what these CPUs can
//! do; the VQ-VAE's convolutions are almost all matrix product.
//!
//! Operands are read through strides, so transposed views need no copy.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape};
use rayon::prelude::*;

const MR: usize = 12;
const NR: usize = 32;
const KC: usize = 256;
const NC: usize = 512;

/// A strided read-only matrix.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View<'_> {
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.rs + c * self.cs]
    }
}

/// Where the B operand's panels come from: a strided matrix, or a convolution's input read
/// through im2col indexing without materialising the columns.
pub(crate) trait BSource: Sync {
    fn cols(&self) -> usize;
    /// Packs rows `k0..k0+kc` × columns `n0..n0+NR` as [kc][NR], zero-padded.
    fn pack(&self, k0: usize, kc: usize, n0: usize, out: &mut [f32]);
}

impl BSource for View<'_> {
    fn cols(&self) -> usize {
        self.cols
    }
    fn pack(&self, k0: usize, kc: usize, n0: usize, out: &mut [f32]) {
        pack_b(self, k0, kc, n0, out)
    }
}

/// The columns of a `k×k` convolution over x [C, H, W]: row (c, ky, kx), column (oy, ox).
pub(crate) struct ConvCols<'a> {
    pub x: &'a [f32],
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub ho: usize,
    pub wo: usize,
}

impl BSource for ConvCols<'_> {
    fn cols(&self) -> usize {
        self.ho * self.wo
    }
    fn pack(&self, k0: usize, kc: usize, n0: usize, out: &mut [f32]) {
        let n = (self.cols() - n0).min(NR);
        // The panel's columns as runs within one output row: (first column, length, oy, ox).
        let mut runs = [(0usize, 0usize, 0usize, 0usize); NR];
        let mut nruns = 0;
        let mut j = 0;
        while j < n {
            let (oy, ox) = ((n0 + j) / self.wo, (n0 + j) % self.wo);
            let len = (self.wo - ox).min(n - j);
            runs[nruns] = (j, len, oy, ox);
            nruns += 1;
            j += len;
        }
        let (h, w, pad, st) = (
            self.h as isize,
            self.w as isize,
            self.pad as isize,
            self.stride as isize,
        );
        for kk in 0..kc {
            let r = k0 + kk;
            let (ci, ky, kx) = (
                r / (self.k * self.k),
                ((r / self.k) % self.k) as isize,
                (r % self.k) as isize,
            );
            let plane = &self.x[ci * self.h * self.w..(ci + 1) * self.h * self.w];
            let dst = &mut out[kk * NR..(kk + 1) * NR];
            dst.iter_mut().for_each(|d| *d = 0.0);
            for &(j0, len, oy, ox) in &runs[..nruns] {
                let iy = oy as isize * st + ky - pad;
                if iy < 0 || iy >= h {
                    continue;
                }
                let row = &plane[iy as usize * self.w..(iy as usize + 1) * self.w];
                let ix0 = ox as isize * st + kx - pad;
                if st == 1 {
                    // ix = ix0 + t for t in 0..len: copy the part inside the image.
                    let lo = (-ix0).clamp(0, len as isize) as usize;
                    let hi = (w - ix0).clamp(0, len as isize) as usize;
                    if lo < hi {
                        let src = (ix0 + lo as isize) as usize;
                        dst[j0 + lo..j0 + hi].copy_from_slice(&row[src..src + (hi - lo)]);
                    }
                } else {
                    for t in 0..len {
                        let ix = ix0 + t as isize * st;
                        if ix >= 0 && ix < w {
                            dst[j0 + t] = row[ix as usize];
                        }
                    }
                }
            }
        }
    }
}

/// Whether the fast path can run on this CPU (and the process did not force a path below AVX-512
/// with `COGVIEW_CPU_KERNELS=avx2` or `portable`).
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && crate::cpu_kernels::CpuKernels::selected().uses_avx512()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Packs rows `m0..m0+MR` × columns `k0..k0+kc` of A as [kc][MR] (zero-padded rows).
fn pack_a(a: &View, m0: usize, k0: usize, kc: usize, out: &mut [f32]) {
    for k in 0..kc {
        for r in 0..MR {
            out[k * MR + r] = if m0 + r < a.rows {
                a.at(m0 + r, k0 + k)
            } else {
                0.0
            };
        }
    }
}

/// Packs rows `k0..k0+kc` × columns `n0..n0+NR` of B as [kc][NR] (zero-padded columns).
fn pack_b(b: &View, k0: usize, kc: usize, n0: usize, out: &mut [f32]) {
    let n = (b.cols - n0).min(NR);
    if b.rs == 1 && b.cs != 1 {
        // B is a transposed row-major matrix (a weight used as Wᵀ): read each of its rows
        // (a column of B) contiguously and scatter into the small panel, which stays in L1.
        out[..kc * NR].iter_mut().for_each(|d| *d = 0.0);
        for j in 0..n {
            let src = &b.data[(n0 + j) * b.cs + k0..(n0 + j) * b.cs + k0 + kc];
            for (k, v) in src.iter().enumerate() {
                out[k * NR + j] = *v;
            }
        }
        return;
    }
    for k in 0..kc {
        let dst = &mut out[k * NR..(k + 1) * NR];
        if b.cs == 1 {
            let start = (k0 + k) * b.rs + n0;
            dst[..n].copy_from_slice(&b.data[start..start + n]);
        } else {
            for (j, d) in dst[..n].iter_mut().enumerate() {
                *d = b.at(k0 + k, n0 + j);
            }
        }
        dst[n..].iter_mut().for_each(|d| *d = 0.0);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
/// acc(MR×NR) = init + Σ_k a[k][·] ⊗ b[k][·]; then C (+)= acc over the valid `rows × cols`.
/// `init` holds MR per-row starting values (the bias), or is null for zeros.
// Indexed loops over the register tile's rows, as written (newer clippy flags them).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    add: bool,
    init: *const f32,
) {
    // SAFETY: the caller upholds this function's contract (pointers valid for the
    // lengths used, the CPU features checked by the dispatcher).
    unsafe {
        use std::arch::x86_64::*;
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        if !init.is_null() {
            for (r, row) in acc.iter_mut().enumerate() {
                let v = _mm512_set1_ps(*init.add(r));
                *row = [v, v];
            }
        }
        for k in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(k * NR));
            let b1 = _mm512_loadu_ps(b.add(k * NR + 16));
            for r in 0..MR {
                let av = _mm512_set1_ps(*a.add(k * MR + r));
                acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
            }
        }
        if cols == NR {
            for r in 0..rows {
                let p = c.add(r * ldc);
                let (mut v0, mut v1) = (acc[r][0], acc[r][1]);
                if add {
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(p));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(p.add(16)));
                }
                _mm512_storeu_ps(p, v0);
                _mm512_storeu_ps(p.add(16), v1);
            }
        } else {
            let mut tmp = [0f32; NR];
            for r in 0..rows {
                _mm512_storeu_ps(tmp.as_mut_ptr(), acc[r][0]);
                _mm512_storeu_ps(tmp.as_mut_ptr().add(16), acc[r][1]);
                let p = c.add(r * ldc);
                for (j, t) in tmp.iter().enumerate().take(cols) {
                    if add {
                        *p.add(j) += t;
                    } else {
                        *p.add(j) = *t;
                    }
                }
            }
        }
    }
}

/// C [m×n] = A [m×k] · B [k×n]. Requires [`available`].
pub(crate) fn gemm(a: View, b: &impl BSource) -> Vec<f32> {
    gemm_bias(a, b, None)
}

/// C [m×n] = A [m×k] · B [k×n] + bias (one value per row of C, if given). Requires [`available`].
pub(crate) fn gemm_bias(a: View, b: &impl BSource, bias: Option<&[f32]>) -> Vec<f32> {
    let (m, k, n) = (a.rows, a.cols, b.cols());
    if m == 0 || n == 0 || k == 0 {
        let mut c = vec![0f32; m * n];
        if let Some(bias) = bias {
            for (i, row) in c.chunks_mut(n.max(1)).enumerate().take(m) {
                row.iter_mut().for_each(|v| *v = bias[i]);
            }
        }
        return c;
    }
    let bias_padded: Option<Vec<f32>> = bias.map(|b| {
        let mut v = b[..m].to_vec();
        v.resize(m.div_ceil(MR) * MR, 0.0);
        v
    });
    // Zeroed, although the first k block overwrites every element: a view of uninitialised
    // floats would be undefined behaviour, and zeroing costs one pass against k passes of work.
    let mut c: Vec<f32> = vec![0.0; m * n];
    let m_panels = m.div_ceil(MR);
    // Pack all of A once per k block: [kblock][m_panel][kc][MR].
    let k_blocks: Vec<(usize, usize)> = (0..k).step_by(KC).map(|k0| (k0, KC.min(k - k0))).collect();
    let packed_a: Vec<Vec<f32>> = k_blocks
        .par_iter()
        .map(|&(k0, kc)| {
            let mut buf = vec![0f32; m_panels * kc * MR];
            for p in 0..m_panels {
                pack_a(&a, p * MR, k0, kc, &mut buf[p * kc * MR..(p + 1) * kc * MR]);
            }
            buf
        })
        .collect();
    // Column blocks of C are independent: split C by columns via raw pointer ranges.
    let c_ptr = c.as_mut_ptr() as usize;
    let tasks = parallel_tasks(n, NC, m_panels);
    tasks.into_par_iter().for_each(|(n0, panels)| {
        let nc = NC.min(n - n0);
        let n_panels = nc.div_ceil(NR);
        let mut bbuf = vec![0f32; n_panels * KC * NR];
        for (kb, &(k0, kc)) in k_blocks.iter().enumerate() {
            for j in 0..n_panels {
                b.pack(
                    k0,
                    kc,
                    n0 + j * NR,
                    &mut bbuf[j * kc * NR..(j + 1) * kc * NR],
                );
            }
            let pa = &packed_a[kb];
            for p in panels.clone() {
                let rows = (m - p * MR).min(MR);
                for j in 0..n_panels {
                    let cols = (nc - j * NR).min(NR);
                    let c_off = (p * MR) * n + n0 + j * NR;
                    // SAFETY: `available()` was checked by the caller; the packed panels hold
                    // kc×MR and kc×NR values; each task writes only its own block of C (columns
                    // n0..n0+nc, row panels `panels`, all inside m × n), so no two tasks touch
                    // the same element.
                    unsafe {
                        #[cfg(target_arch = "x86_64")]
                        kernel(
                            kc,
                            pa.as_ptr().add(p * kc * MR),
                            bbuf.as_ptr().add(j * kc * NR),
                            (c_ptr as *mut f32).add(c_off),
                            n,
                            rows,
                            cols,
                            kb > 0,
                            match (&bias_padded, kb) {
                                (Some(bv), 0) => bv.as_ptr().add(p * MR),
                                _ => std::ptr::null(),
                            },
                        );
                    }
                }
            }
        }
    });
    c
}

/// `a [m, k] · b [k, n]` for f32 CPU tensors of any strides (the [`available`] fast path).
pub struct Sgemm;

fn view<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<View<'a>> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("sgemm: {what} must be f32, got {:?}", s.dtype())
    };
    let (rows, cols) = l.shape().dims2()?;
    let st = l.stride();
    let data = &data[l.start_offset()..];
    if rows > 0 && cols > 0 && (rows - 1) * st[0] + (cols - 1) * st[1] >= data.len() {
        candle_core::bail!("sgemm: {what} layout exceeds its storage");
    }
    Ok(View {
        data,
        rows,
        cols,
        rs: st[0],
        cs: st[1],
    })
}

impl CustomOp2 for Sgemm {
    fn name(&self) -> &'static str {
        "sgemm-avx512"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (a, b) = (view(s1, l1, "a")?, view(s2, l2, "b")?);
        if a.cols != b.rows {
            candle_core::bail!("sgemm: {}x{} · {}x{}", a.rows, a.cols, b.rows, b.cols);
        }
        if !available() {
            candle_core::bail!("sgemm: this CPU has no AVX-512");
        }
        Ok((CpuStorage::F32(gemm(a, &b)), Shape::from((a.rows, b.cols))))
    }
}

/// `a · b` for 2-D tensors: the AVX-512 kernel for f32 on capable CPUs, candle's matmul otherwise.
pub fn matmul(
    a: &candle_core::Tensor,
    b: &candle_core::Tensor,
) -> candle_core::Result<candle_core::Tensor> {
    if a.device().is_cpu()
        && a.dtype() == candle_core::DType::F32
        && b.dtype() == candle_core::DType::F32
        && available()
    {
        a.apply_op2_no_bwd(b, &Sgemm)
    } else {
        a.contiguous()?.matmul(&b.contiguous()?)
    }
}

/// The parallel tasks of a blocked GEMM: column blocks of `nc` columns × ranges of row panels,
/// enough of them (about four per thread) to keep every thread busy even when C has few columns
/// (e.g. attention outputs with 512 channels). Each is (first column, row-panel range).
pub(crate) fn parallel_tasks(
    n: usize,
    nc: usize,
    m_panels: usize,
) -> Vec<(usize, std::ops::Range<usize>)> {
    let n_blocks: Vec<usize> = (0..n).step_by(nc).collect();
    let want = 4 * rayon::current_num_threads();
    let m_chunks = want
        .div_ceil(n_blocks.len().max(1))
        .clamp(1, m_panels.max(1));
    let per_chunk = m_panels.div_ceil(m_chunks).max(1);
    n_blocks
        .iter()
        .flat_map(|&n0| {
            (0..m_panels)
                .step_by(per_chunk)
                .map(move |p0| (n0, p0..(p0 + per_chunk).min(m_panels)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{max_abs_diff, random_values, reference_product_wt};

    #[test]
    fn matches_a_reference_product_on_awkward_shapes_and_strides() {
        if !available() {
            return;
        }
        for (m, k, n) in [
            (1, 1, 1),
            (13, 7, 33),
            (12, 256, 32),
            (25, 300, 600),
            (3, 520, 1030),
        ] {
            let a = random_values(7 + m as u64, m * k);
            // B given as the transpose of a row-major [n, k] matrix, and as a row-major copy.
            let bt = random_values(11 + n as u64, n * k);
            let want = reference_product_wt(&a, m, k, &bt, n);
            let b: Vec<f32> = (0..k * n).map(|i| bt[(i % n) * k + i / n]).collect();
            let av = View {
                data: &a,
                rows: m,
                cols: k,
                rs: k,
                cs: 1,
            };
            let got = gemm(
                av,
                &View {
                    data: &b,
                    rows: k,
                    cols: n,
                    rs: n,
                    cs: 1,
                },
            );
            assert!(max_abs_diff(&got, &want) < 1e-4, "{m}x{k}x{n}");
            let got = gemm(
                av,
                &View {
                    data: &bt,
                    rows: k,
                    cols: n,
                    rs: 1,
                    cs: k,
                },
            );
            assert!(max_abs_diff(&got, &want) < 1e-4, "transposed {m}x{k}x{n}");
            // With a per-row bias.
            let bias = random_values(3, m);
            let got = gemm_bias(
                av,
                &View {
                    data: &b,
                    rows: k,
                    cols: n,
                    rs: n,
                    cs: 1,
                },
                Some(&bias),
            );
            let want_b: Vec<f64> = want
                .iter()
                .enumerate()
                .map(|(i, w)| w + bias[i / n] as f64)
                .collect();
            assert!(max_abs_diff(&got, &want_b) < 1e-4, "bias {m}x{k}x{n}");
        }
    }
}
