//! A bf16 matrix product with f32 accumulation for `x · Wᵀ (+ b)`, the linear layers and the image
//! head of bf16 stages on the CPU. W is packed once, at load, into [`PackedBf16`]; the activations
//! x (f32) are rounded to bf16 (round to nearest even) at the product's input, and the result is
//! f32, so LayerNorms, softmax and sampling see f32 as before.
//!
//! # Layout
//!
//! Both bf16 instructions multiply *pairs* along k: `vdpbf16ps` adds `a[2i]·b[2i] + a[2i+1]·b[2i+1]`
//! into f32 lane `i`, and AMX's `tdpbf16ps` reads its B tile as rows of k-pairs, each holding one
//! pair per output column. So W [n, k] is stored in panels of [`NR`] = 32 output columns, each
//! panel `[k-pair][column]` of `u32` (the low half the even k, the high half the odd k), with k
//! padded with zeros to a multiple of 2·[`KP_ALIGN`] and n to a multiple of [`NR`]. A panel's
//! 16 k-pairs × first or last 16 columns is exactly one AMX B tile (row stride 128 bytes), and one
//! k-pair's 32 columns are two 512-bit vectors for `vdpbf16ps`.
//!
//! # Kernels
//!
//! One per [`CpuKernels`] path: AMX ([`crate::cpu_amx`], 32×32 blocks of four tiles), AVX512-BF16
//! (12×32 register tiles of `vdpbf16ps`), AVX-512F (the same tiles in f32 FMAs, the bf16 pairs
//! widened in registers) and portable Rust. Every path multiplies the same bf16 values exactly
//! (a product of two bf16 is exact in f32) and differs only in the order of the f32 sums.

use crate::bf16_pack::{bf16_value, pack_rows, PackedBf16, NR};
use crate::cpu_kernels::CpuKernels;
use rayon::prelude::*;

/// Rows of x per register tile of the vector kernels.
const MR: usize = 12;
/// k-pairs per cache block of the vector kernels (a 32-column panel block is 16 KiB).
const KCP: usize = 128;
/// Output columns per parallel task of the vector kernels.
const NC: usize = 512;

/// `y [m, n] = x [m, k] · Wᵀ (+ bias)` on the process's selected path ([`CpuKernels::selected`]).
pub(crate) fn matmul(x: &[f32], m: usize, w: &PackedBf16) -> Vec<f32> {
    matmul_with(CpuKernels::selected(), x, m, w)
}

/// [`matmul`] on a given path, which must be [`CpuKernels::available`] (checked: an unavailable
/// path falls back to the best available one).
pub(crate) fn matmul_with(path: CpuKernels, x: &[f32], m: usize, w: &PackedBf16) -> Vec<f32> {
    assert_eq!(x.len(), m * w.k, "x is not {m}×{}", w.k);
    matmul_pairs_with(path, &pack_rows(x, m, w.k, w.kp, PAIR_ROWS_ALIGN), m, w)
}

/// Rows of the activations that [`matmul_pairs_with`] takes are padded to a multiple of this: a
/// multiple of both the vector kernels' [`MR`] and AMX's row block.
pub(crate) const PAIR_ROWS_ALIGN: usize = 96;
const _: () = assert!(PAIR_ROWS_ALIGN.is_multiple_of(MR));
#[cfg(target_arch = "x86_64")]
const _: () = assert!(PAIR_ROWS_ALIGN.is_multiple_of(crate::cpu_amx::MB));

/// [`matmul_with`] for activations already rounded to bf16 and packed as pairs, rows of `w.kp`
/// pairs ([`crate::bf16_pack::pack_rows`]'s layout), zero-padded to at least
/// `m.div_ceil(PAIR_ROWS_ALIGN) · PAIR_ROWS_ALIGN` rows: for callers that build the activations
/// themselves (the convolutions' im2col), saving a pass over an f32 copy.
pub(crate) fn matmul_pairs_with(path: CpuKernels, a: &[u32], m: usize, w: &PackedBf16) -> Vec<f32> {
    assert!(
        a.len() >= m.div_ceil(PAIR_ROWS_ALIGN) * PAIR_ROWS_ALIGN * w.kp,
        "A is not {m} rows of {} pairs padded to {PAIR_ROWS_ALIGN} rows",
        w.kp
    );
    let path = if path.available() {
        path
    } else {
        CpuKernels::best()
    };
    if m == 0 || w.n == 0 {
        return vec![0f32; m * w.n];
    }
    #[cfg(target_arch = "x86_64")]
    if path == CpuKernels::Amx {
        if let Some(c) = crate::cpu_amx::gemm(a, m, w) {
            return c;
        }
    }
    gemm_vector(path, a, m, w)
}

/// `x [m, k] → x · Wᵀ + b [m, n]` for contiguous f32 x on the CPU, W and b from a [`PackedBf16`].
pub(crate) struct PackedLinear(pub std::sync::Arc<PackedBf16>);

impl candle_core::CustomOp1 for PackedLinear {
    fn name(&self) -> &'static str {
        "packed-bf16-linear"
    }
    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let candle_core::CpuStorage::F32(data) = s else {
            candle_core::bail!("packed-bf16-linear: x must be f32")
        };
        let (m, k) = l.shape().dims2()?;
        if k != self.0.k {
            candle_core::bail!("packed-bf16-linear: x has {k} columns, W {}", self.0.k)
        }
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("packed-bf16-linear: x must be contiguous")
        };
        let y = matmul(&data[a..b], m, &self.0);
        Ok((
            candle_core::CpuStorage::F32(y),
            candle_core::Shape::from((m, self.0.n)),
        ))
    }
}

/// Writes an `rows × cols` block of results `acc` (row stride `NR`) into C at `c` (row stride
/// `ldc`), adding to what is there when `add`.
///
/// # Safety
/// `c` is valid for writes of `rows` rows of `cols` elements at stride `ldc`, and no other thread
/// accesses those elements meanwhile.
#[inline(always)]
unsafe fn write_block(acc: &[f32], c: *mut f32, ldc: usize, rows: usize, cols: usize, add: bool) {
    for r in 0..rows {
        let src = &acc[r * NR..r * NR + cols];
        for (t, s) in src.iter().enumerate() {
            // SAFETY: inside the block the caller vouches for.
            unsafe {
                let d = c.add(r * ldc + t);
                *d = if add { *d + s } else { *s };
            }
        }
    }
}

/// The portable kernel: `R` rows of packed A ([kcp][MR] pairs) times one panel block ([kcp][NR]
/// pairs), starting from `init` (per column), into `out` ([R][NR]).
fn kernel_portable<const R: usize>(
    kcp: usize,
    a: &[u32],
    b: &[u32],
    init: &[f32],
    out: &mut [f32],
) {
    let mut acc = [[0f32; NR]; R];
    for row in acc.iter_mut() {
        row.copy_from_slice(&init[..NR]);
    }
    for p in 0..kcp {
        let bp = &b[p * NR..(p + 1) * NR];
        let mut b0 = [0f32; NR];
        let mut b1 = [0f32; NR];
        for c in 0..NR {
            b0[c] = bf16_value(bp[c] as u16);
            b1[c] = bf16_value((bp[c] >> 16) as u16);
        }
        for (r, row) in acc.iter_mut().enumerate() {
            let ap = a[p * MR + r];
            let (a0, a1) = (bf16_value(ap as u16), bf16_value((ap >> 16) as u16));
            for c in 0..NR {
                row[c] += a0 * b0[c] + a1 * b1[c];
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        out[r * NR..(r + 1) * NR].copy_from_slice(row);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// `vdpbf16ps` tile: acc[R][2] = init + Σ_p a[p][r] ⊙pair b[p][..]; stored to `out` [R][NR].
    ///
    /// # Safety
    /// The CPU supports AVX-512F and AVX512-BF16; `a` is valid for `kcp·MR` u32, `b` for `kcp·NR`
    /// u32, `init` for `NR` f32 and `out` for `R·NR` f32.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn kernel_bf16<const R: usize>(
        kcp: usize,
        a: *const u32,
        b: *const u32,
        init: *const f32,
        out: *mut f32,
    ) {
        // SAFETY: the caller upholds the contract above; `__m512i` and `__m512bh` are both 64
        // plain bytes, so the transmutes reinterpret bits only.
        unsafe {
            let i0 = _mm512_loadu_ps(init);
            let i1 = _mm512_loadu_ps(init.add(16));
            let mut acc = [[i0, i1]; R];
            for p in 0..kcp {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(p * NR).cast()));
                let b1: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(b.add(p * NR + 16).cast()));
                for (r, row) in acc.iter_mut().enumerate() {
                    let av: __m512bh =
                        std::mem::transmute(_mm512_set1_epi32(*a.add(p * MR + r) as i32));
                    row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                    row[1] = _mm512_dpbf16_ps(row[1], av, b1);
                }
            }
            for (r, row) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * NR), row[0]);
                _mm512_storeu_ps(out.add(r * NR + 16), row[1]);
            }
        }
    }

    /// The same tile in f32 FMAs: each bf16 pair is split into its even and odd halves, widened to
    /// f32 by a shift or a mask.
    ///
    /// # Safety
    /// The CPU supports AVX-512F; pointers as for [`kernel_bf16`].
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn kernel_f32<const R: usize>(
        kcp: usize,
        a: *const u32,
        b: *const u32,
        init: *const f32,
        out: *mut f32,
    ) {
        // SAFETY: the caller upholds the contract above.
        unsafe {
            let hi_mask = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
            let even = |v: __m512i| _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
            let odd = |v: __m512i| _mm512_castsi512_ps(_mm512_and_si512(v, hi_mask));
            let i0 = _mm512_loadu_ps(init);
            let i1 = _mm512_loadu_ps(init.add(16));
            let mut acc = [[i0, i1]; R];
            for p in 0..kcp {
                let v0 = _mm512_loadu_si512(b.add(p * NR).cast());
                let v1 = _mm512_loadu_si512(b.add(p * NR + 16).cast());
                let (b0e, b0o, b1e, b1o) = (even(v0), odd(v0), even(v1), odd(v1));
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_epi32(*a.add(p * MR + r) as i32);
                    let (ae, ao) = (even(av), odd(av));
                    row[0] = _mm512_fmadd_ps(ae, b0e, row[0]);
                    row[1] = _mm512_fmadd_ps(ae, b1e, row[1]);
                    row[0] = _mm512_fmadd_ps(ao, b0o, row[0]);
                    row[1] = _mm512_fmadd_ps(ao, b1o, row[1]);
                }
            }
            for (r, row) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * NR), row[0]);
                _mm512_storeu_ps(out.add(r * NR + 16), row[1]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_avx2 {
    use super::{KCP, MR, NR};
    use std::arch::x86_64::*;

    /// `RR` (≤ 4) rows of A from row `r0` times the 16 columns of the panel from `c0`: 8
    /// accumulators, four widened B vectors and two broadcast A values in the 16 registers. A's
    /// values come widened from `af` ([kcp][R][even, odd] f32) by broadcast loads. (Measured on
    /// Zen 3: keeping even and odd k in separate accumulators, 6 rows × 8 columns, was slower —
    /// twice the broadcasts per FMA and a register spill.)
    #[inline(always)]
    unsafe fn block<const R: usize, const RR: usize>(
        kcp: usize,
        af: &[f32],
        b: *const u32,
        init: *const f32,
        out: *mut f32,
        r0: usize,
        c0: usize,
    ) {
        // SAFETY: the caller ([`kernel`]) upholds the pointer contract; features as enabled there.
        unsafe {
            let hi_mask = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
            let even = |v: __m256i| _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
            let odd = |v: __m256i| _mm256_castsi256_ps(_mm256_and_si256(v, hi_mask));
            let i0 = _mm256_loadu_ps(init.add(c0));
            let i1 = _mm256_loadu_ps(init.add(c0 + 8));
            let mut acc = [[i0, i1]; RR];
            let af = af.as_ptr();
            for p in 0..kcp {
                let v0 = _mm256_loadu_si256(b.add(p * NR + c0).cast());
                let v1 = _mm256_loadu_si256(b.add(p * NR + c0 + 8).cast());
                let (b0e, b0o, b1e, b1o) = (even(v0), odd(v0), even(v1), odd(v1));
                let ap = af.add((p * R + r0) * 2);
                for (r, row) in acc.iter_mut().enumerate() {
                    let ae = _mm256_broadcast_ss(&*ap.add(2 * r));
                    let ao = _mm256_broadcast_ss(&*ap.add(2 * r + 1));
                    row[0] = _mm256_fmadd_ps(ae, b0e, row[0]);
                    row[1] = _mm256_fmadd_ps(ae, b1e, row[1]);
                    row[0] = _mm256_fmadd_ps(ao, b0o, row[0]);
                    row[1] = _mm256_fmadd_ps(ao, b1o, row[1]);
                }
            }
            for (r, row) in acc.iter().enumerate() {
                _mm256_storeu_ps(out.add((r0 + r) * NR + c0), row[0]);
                _mm256_storeu_ps(out.add((r0 + r) * NR + c0 + 8), row[1]);
            }
        }
    }

    /// The tile of [`super::x86::kernel_f32`] in 256-bit FMAs: `R` rows × 32 columns as blocks of
    /// 4 rows × 16 columns (a 12×32 tile of 256-bit accumulators would not fit 16 registers),
    /// with A's bf16 pairs widened to f32 once per call.
    ///
    /// # Safety
    /// The CPU supports AVX2 and FMA; `kcp ≤ KCP`; `a` is valid for `kcp·MR` u32, `b` for
    /// `kcp·NR` u32, `init` for `NR` f32 and `out` for `R·NR` f32.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel<const R: usize>(
        kcp: usize,
        a: *const u32,
        b: *const u32,
        init: *const f32,
        out: *mut f32,
    ) {
        debug_assert!(kcp <= KCP);
        let mut af = [0f32; KCP * MR * 2];
        // SAFETY: the caller upholds the contract above; every block stays inside R rows and NR
        // columns, and `af` holds kcp·R pairs.
        unsafe {
            for p in 0..kcp {
                for r in 0..R {
                    let pair = *a.add(p * MR + r);
                    af[(p * R + r) * 2] = f32::from_bits(pair << 16);
                    af[(p * R + r) * 2 + 1] = f32::from_bits(pair & 0xFFFF_0000);
                }
            }
            for c0 in [0, 16] {
                let mut r0 = 0;
                while r0 + 4 <= R {
                    block::<R, 4>(kcp, &af, b, init, out, r0, c0);
                    r0 += 4;
                }
                match R - r0 {
                    0 => {}
                    1 => block::<R, 1>(kcp, &af, b, init, out, r0, c0),
                    2 => block::<R, 2>(kcp, &af, b, init, out, r0, c0),
                    _ => block::<R, 3>(kcp, &af, b, init, out, r0, c0),
                }
            }
        }
    }
}

/// One register tile on `path` (not AMX): `rows` (≤ MR) rows of packed A times a panel block.
#[inline(always)]
fn tile(
    path: CpuKernels,
    rows: usize,
    kcp: usize,
    a: &[u32],
    b: &[u32],
    init: &[f32],
    out: &mut [f32],
) {
    debug_assert!(a.len() >= kcp * MR && b.len() >= kcp * NR && init.len() >= NR);
    debug_assert!(out.len() >= MR * NR);
    macro_rules! by_rows {
        ($f:ident) => {
            match rows {
                1 => $f::<1>(kcp, a, b, init, out),
                2 => $f::<2>(kcp, a, b, init, out),
                3 | 4 => $f::<4>(kcp, a, b, init, out),
                5..=8 => $f::<8>(kcp, a, b, init, out),
                _ => $f::<MR>(kcp, a, b, init, out),
            }
        };
    }
    #[cfg(target_arch = "x86_64")]
    {
        fn bf16<const R: usize>(kcp: usize, a: &[u32], b: &[u32], init: &[f32], out: &mut [f32]) {
            // SAFETY: `gemm_vector` only takes this path when `CpuKernels::Avx512Bf16` is
            // available (AVX-512F and AVX512-BF16); the slices' lengths were checked above (R ≤ MR).
            unsafe {
                x86::kernel_bf16::<R>(kcp, a.as_ptr(), b.as_ptr(), init.as_ptr(), out.as_mut_ptr())
            }
        }
        fn f32<const R: usize>(kcp: usize, a: &[u32], b: &[u32], init: &[f32], out: &mut [f32]) {
            // SAFETY: taken only when `CpuKernels::Avx512` (AVX-512F) is available; lengths as above.
            unsafe {
                x86::kernel_f32::<R>(kcp, a.as_ptr(), b.as_ptr(), init.as_ptr(), out.as_mut_ptr())
            }
        }
        fn avx2<const R: usize>(kcp: usize, a: &[u32], b: &[u32], init: &[f32], out: &mut [f32]) {
            // SAFETY: taken only when `CpuKernels::Avx2` (AVX2 and FMA) is available; lengths as
            // above.
            unsafe {
                x86_avx2::kernel::<R>(kcp, a.as_ptr(), b.as_ptr(), init.as_ptr(), out.as_mut_ptr())
            }
        }
        match path {
            CpuKernels::Avx512Bf16 => return by_rows!(bf16),
            CpuKernels::Avx512 => return by_rows!(f32),
            CpuKernels::Avx2 => return by_rows!(avx2),
            _ => {}
        }
    }
    let _ = path;
    by_rows!(kernel_portable)
}

/// The vector kernels' driver: A as bf16 pairs [m_pad, kp] (m_pad a multiple of MR).
fn gemm_vector(path: CpuKernels, a: &[u32], m: usize, w: &PackedBf16) -> Vec<f32> {
    let (n, kp) = (w.n, w.kp);
    let m_panels = m.div_ceil(MR);
    // A in [k block][m panel][kcp][MR] pairs, one k block at a time contiguous.
    let k_blocks: Vec<(usize, usize)> = (0..kp)
        .step_by(KCP)
        .map(|p0| (p0, KCP.min(kp - p0)))
        .collect();
    let mut packed_a = vec![0u32; m_panels * MR * kp];
    packed_a
        .par_chunks_mut(MR * kp)
        .enumerate()
        .for_each(|(panel, out)| {
            let mut off = 0;
            for &(p0, kcp) in &k_blocks {
                let blk = &mut out[off..off + kcp * MR];
                for r in 0..MR {
                    let src = &a[(panel * MR + r) * kp + p0..(panel * MR + r) * kp + p0 + kcp];
                    for (p, v) in src.iter().enumerate() {
                        blk[p * MR + r] = *v;
                    }
                }
                off += kcp * MR;
            }
        });
    // Layout of packed_a: per m panel, the k blocks in order; block (p0, kcp) of panel `panel`
    // starts at panel·MR·kp + p0·MR.
    let mut c = vec![0f32; m * n];
    let c_ptr = c.as_mut_ptr() as usize;
    let c_len = c.len();
    let tasks = crate::cpu_gemm::parallel_tasks(n, NC, m_panels);
    let zeros = [0f32; NR];
    tasks.into_par_iter().for_each(|(n0, panels)| {
        let nc = NC.min(n - n0);
        let mut acc = [0f32; MR * NR];
        for (kb, &(p0, kcp)) in k_blocks.iter().enumerate() {
            for p in panels.clone() {
                let rows = (m - p * MR).min(MR);
                let pa = &packed_a[p * MR * kp + p0 * MR..p * MR * kp + (p0 + kcp) * MR];
                for j in 0..nc.div_ceil(NR) {
                    let panel = n0 / NR + j;
                    let pb = &w.data[panel * kp * NR + p0 * NR..panel * kp * NR + (p0 + kcp) * NR];
                    let init = if kb == 0 {
                        &w.bias[panel * NR..(panel + 1) * NR]
                    } else {
                        &zeros[..]
                    };
                    tile(path, rows, kcp, pa, pb, init, &mut acc);
                    let cols = (nc - j * NR).min(NR);
                    let off = p * MR * n + n0 + j * NR;
                    debug_assert!(off + (rows - 1) * n + cols <= c_len);
                    // SAFETY: the block (rows p·MR.., columns n0 + j·NR..) lies inside C [m, n],
                    // and tasks own disjoint blocks (their columns n0..n0+NC of row panels
                    // `panels`), so no other thread touches it.
                    unsafe {
                        write_block(&acc, (c_ptr as *mut f32).add(off), n, rows, cols, kb > 0)
                    };
                }
            }
        }
    });
    c
}

/// Which product [`time_gemm`] measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmKind {
    /// The f32 AVX-512 GEMM that f32 stages use (operands f32).
    F32,
    /// candle's own f32 matrix product (the `gemm` crate), which f32 stages use below the
    /// AVX-512 paths.
    CandleF32,
    /// The bf16 GEMM of bf16 stages on the given path (weights pre-packed once, outside the
    /// timing; the activations' rounding and packing inside it, as in a linear layer).
    Bf16(CpuKernels),
}

/// The best of `repeats` timings (after one warm-up), in seconds, of `C [m, n] = A [m, k] · Wᵀ`
/// with W [n, k] on random values, on all of rayon's threads: the kernels the linear layers use.
/// 2·m·n·k / seconds is the rate in FLOP/s.
pub fn time_gemm(
    kind: GemmKind,
    m: usize,
    k: usize,
    n: usize,
    repeats: usize,
) -> Result<f64, Box<dyn std::error::Error + Send + Sync>> {
    let values = crate::pseudo_random::lcg_values;
    let (a, w) = (values(1, m * k), values(2, n * k));
    let mut run: Box<dyn FnMut()> = match kind {
        GemmKind::F32 => {
            if !crate::cpu_gemm::available() {
                return Err(
                    crate::cpu_kernels::KernelChoiceError::Unavailable(CpuKernels::Avx512).into(),
                );
            }
            Box::new(move || {
                let av = crate::cpu_gemm::View {
                    data: &a,
                    rows: m,
                    cols: k,
                    rs: k,
                    cs: 1,
                };
                let wt = crate::cpu_gemm::View {
                    data: &w,
                    rows: k,
                    cols: n,
                    rs: 1,
                    cs: k,
                };
                std::hint::black_box(crate::cpu_gemm::gemm(av, &wt));
            })
        }
        GemmKind::CandleF32 => {
            let dev = candle_core::Device::Cpu;
            let at = candle_core::Tensor::from_vec(a, (m, k), &dev)?;
            let wt = candle_core::Tensor::from_vec(w, (n, k), &dev)?.t()?;
            // One product outside the timing: its error (if any) is returned, not timed.
            at.matmul(&wt)?;
            Box::new(move || {
                let _ = std::hint::black_box(at.matmul(&wt));
            })
        }
        GemmKind::Bf16(path) => {
            if !path.available() {
                return Err(crate::cpu_kernels::KernelChoiceError::Unavailable(path).into());
            }
            let packed = PackedBf16::from_f32(&w, n, k, None);
            Box::new(move || {
                std::hint::black_box(matmul_with(path, &a, m, &packed));
            })
        }
    };
    run();
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t = std::time::Instant::now();
        run();
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bf16_pack::KP_ALIGN;
    use crate::test_util::{bf16_check as check, bf16_reference as reference, random_values};

    #[test]
    fn every_available_path_matches_the_bf16_reference_on_odd_shapes() {
        let paths = CpuKernels::available_paths();
        for (m, k, n) in [
            (1, 1, 1),
            (3, 5, 7),
            (13, 33, 31),
            (12, 64, 32),
            (17, 257, 65),
            (40, 300, 100),
            (5, 1031, 33),
        ] {
            let x = random_values(5 + m as u64, m * k);
            let w = random_values(9 + n as u64, n * k);
            let bias = random_values(2, n);
            for with_bias in [false, true] {
                let b = with_bias.then_some(&bias[..]);
                let packed = PackedBf16::from_f32(&w, n, k, b);
                let want = reference(&x, m, k, &w, n, b);
                for &path in &paths {
                    let got = matmul_with(path, &x, m, &packed);
                    check(
                        &got,
                        &want,
                        &x,
                        m,
                        k,
                        &w,
                        n,
                        &format!("{path:?} {m}x{k}x{n} bias {with_bias}"),
                    );
                }
            }
        }
    }

    #[test]
    fn packing_puts_pairs_of_k_in_panels_of_32_columns() {
        let (n, k) = (33, 3);
        let w: Vec<f32> = (0..n * k).map(|i| i as f32).collect();
        let p = PackedBf16::from_f32(&w, n, k, None);
        assert_eq!((p.kp, p.panels()), (KP_ALIGN, 2));
        let at = |panel: usize, pair: usize, col: usize| p.data[(panel * p.kp + pair) * NR + col];
        let pair = |v: u32| (bf16_value(v as u16), bf16_value((v >> 16) as u16));
        assert_eq!(pair(at(0, 0, 1)), (3.0, 4.0));
        assert_eq!(pair(at(0, 1, 1)), (5.0, 0.0)); // k odd: the last pair's high half is zero
        assert_eq!(pair(at(1, 0, 0)), (96.0, 97.0)); // column 32 opens the second panel
        assert_eq!(pair(at(1, 0, 1)), (0.0, 0.0)); // n padded
        assert_eq!(pair(at(0, 2, 0)), (0.0, 0.0)); // k padded to 16 pairs
    }
}
