//! The VQ-VAE's convolutions on the bf16 GEMM ([`crate::cpu_bf16`]), for a tokenizer loaded in
//! bf16 on the CPU. Each weight [Cout, C, k, k] is packed once, at load, as the GEMM's
//! `W [n = Cout, k = C·k·k]` ([`PackedConv`]); the activations stay f32. A convolution builds, for
//! a block of output rows at a time, the pixel-major im2col block `[rows·Wo, C·k·k]` (zero
//! outside the image) rounded to bf16 as it is gathered, straight into the GEMM's rows of bf16
//! pairs (the rounding [`crate::cpu_bf16::matmul`] does to its f32 input, without the f32 copy
//! and the extra pass: both cost as much as the product itself at these sizes), multiplies it
//! with the packed weight on the process's kernel path (AMX → AVX512-BF16 → AVX-512 → portable,
//! f32 accumulation, the f32 bias as the accumulators' start), and writes the block transposed
//! into the output `[Cout, Ho, Wo]`. Nothing else is rounded.
//!
//! The blocks are bounded by [`BLOCK_VALUES`] so that a 480-px image needs a few MiB of columns,
//! not the whole im2col matrix.

use crate::bf16_pack::PackedBf16;
use crate::cpu_kernels::CpuKernels;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Budget of one block, in values: the larger of its im2col block [rows·Wo, C·k·k] (bf16, 8 MiB
/// at most; the GEMM adds one repacked copy) and its product [rows·Wo, Cout] (f32, 16 MiB at
/// most) stays within it.
pub(crate) const BLOCK_VALUES: usize = 4 << 20;

/// A convolution's weight [Cout, C, k, k] and bias [Cout] in the bf16 GEMM's layout.
pub(crate) struct PackedConv {
    /// W as [Cout, k·k·C] (rounded to bf16; the columns in (ky, kx, ci) order), the bias in f32.
    pub w: PackedBf16,
    /// Input channels.
    pub cin: usize,
    /// Kernel side.
    pub k: usize,
}

impl std::fmt::Debug for PackedConv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PackedConv {{ cout: {}, cin: {}, k: {} }}",
            self.cout(),
            self.cin,
            self.k
        )
    }
}

impl PackedConv {
    /// Packs `weight` [Cout, C, k, k] (any float dtype; rounded to bf16 unless it is bf16) and
    /// `bias` [Cout] (kept in f32).
    pub fn from_tensors(weight: &Tensor, bias: &Tensor) -> candle_core::Result<Self> {
        let (cout, cin, k, k2) = weight.dims4()?;
        if k != k2 || k == 0 || cin == 0 || cout == 0 {
            candle_core::bail!(
                "bf16 conv2d: weight {:?} is not [Cout, C, k, k] with a square kernel",
                weight.dims()
            );
        }
        let b = bias.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?;
        if b.len() != cout {
            candle_core::bail!("bf16 conv2d: {} biases for {cout} output channels", b.len());
        }
        // Columns in (ky, kx, ci) order, as the im2col rows are built (see `im2col_pairs`).
        let bits: Vec<u16> = weight
            .to_dtype(candle_core::DType::BF16)?
            .permute((0, 2, 3, 1))?
            .flatten_all()?
            .to_vec1::<half::bf16>()?
            .into_iter()
            .map(|v| v.to_bits())
            .collect();
        Ok(PackedConv {
            w: PackedBf16::from_bf16_bits(&bits, cout, cin * k * k, Some(&b)),
            cin,
            k,
        })
    }

    /// Output channels.
    pub fn cout(&self) -> usize {
        self.w.n
    }
}

/// Output size of a `k`-wide kernel over `n` inputs, or `None` when the kernel does not fit.
fn out_size(n: usize, k: usize, stride: usize, pad: usize) -> Option<usize> {
    (n + 2 * pad)
        .checked_sub(k)
        .map(|span| span / stride.max(1) + 1)
}

/// bf16 bits of `x`, rounded to nearest even, a NaN kept a (quiet) NaN: the same bits as
/// [`crate::bf16_pack::bf16_bits`] (tested), in a branch-light form for the im2col loops.
#[inline(always)]
fn round_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if b & 0x7fff_ffff > 0x7f80_0000 {
        ((b >> 16) | 0x0040) as u16
    } else {
        // No overflow: b ≤ 0xff80_0000 here.
        ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
    }
}

/// Index of bf16 number `j` of a row of pairs seen as `u16`: pair `j / 2` holds the even `j` in
/// its low half (see [`crate::bf16_pack`]), which is the first `u16` in memory on little-endian
/// CPUs and the second on big-endian ones.
const HALF_SWAP: usize = if cfg!(target_endian = "big") { 1 } else { 0 };

/// The `u16` halves of bf16 pairs.
fn halves(v: &mut [u32]) -> &mut [u16] {
    // SAFETY: a `u32` slice is also a valid, suitably aligned slice of twice as many `u16`, and
    // the result borrows `v` mutably for its whole life.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u16>(), v.len() * 2) }
}

/// Input rows `iy0..iy0 + rows` of x [c, h, w] rounded to bf16 and transposed to [rows, w, c]
/// (`out`, `rows · w · c` numbers); rows outside the image are left as they are (never read).
fn round_hwc(x: &[f32], (c, h, w): (usize, usize, usize), iy0: isize, out: &mut [u16]) {
    const TILE: usize = 64; // pixels: the tile's writes stay in L1
    out.par_chunks_mut(w * c).enumerate().for_each(|(r, dst)| {
        let iy = iy0 + r as isize;
        if iy < 0 || iy >= h as isize {
            return;
        }
        let iy = iy as usize;
        for t0 in (0..w).step_by(TILE) {
            let n = TILE.min(w - t0);
            let tile = &mut dst[t0 * c..(t0 + n) * c];
            for ci in 0..c {
                let src = &x[(ci * h + iy) * w + t0..(ci * h + iy) * w + t0 + n];
                for (p, &v) in src.iter().enumerate() {
                    tile[p * c + ci] = round_bf16(v);
                }
            }
        }
    });
}

/// Output rows `oy0..` of the pixel-major im2col, as rows of `kp` bf16 pairs into `out` (one row
/// per output pixel (oy, ox), `out.len() / kp` of them, a multiple of `wo`): number
/// (ky·k + kx)·c + ci of a row is input pixel (oy·stride + ky − pad, ox·stride + kx − pad) of
/// channel ci, zero outside the image and in the padding pairs. The numbers come from `hwc`, the
/// block's input rows rounded and transposed by [`round_hwc`] (row r = input row iy0 + r), so each
/// (ky, kx) is one copy of c contiguous numbers.
#[allow(clippy::too_many_arguments)]
fn im2col_pairs(
    hwc: &[u16],
    (c, h, w): (usize, usize, usize),
    k: usize,
    stride: usize,
    pad: usize,
    (oy0, iy0): (usize, isize),
    wo: usize,
    kp: usize,
    out: &mut [u32],
) {
    let rs = 2 * kp; // bf16 numbers a row
    out.par_chunks_mut(wo * kp)
        .enumerate()
        .for_each(|(r, dst)| {
            dst.fill(0);
            let dst = halves(dst);
            let oy = oy0 + r;
            for ky in 0..k {
                let iy = (oy * stride + ky) as isize - pad as isize;
                if iy < 0 || iy >= h as isize {
                    continue; // stays zero
                }
                let src_row = &hwc[(iy - iy0) as usize * w * c..((iy - iy0) as usize + 1) * w * c];
                for ox in 0..wo {
                    let row = &mut dst[ox * rs..(ox + 1) * rs];
                    for kx in 0..k {
                        let ix = (ox * stride + kx) as isize - pad as isize;
                        if ix < 0 || ix >= w as isize {
                            continue;
                        }
                        let src = &src_row[ix as usize * c..(ix as usize + 1) * c];
                        let base = (ky * k + kx) * c;
                        if HALF_SWAP == 0 {
                            row[base..base + c].copy_from_slice(src);
                        } else {
                            for (ci, &v) in src.iter().enumerate() {
                                row[(base + ci) ^ HALF_SWAP] = v;
                            }
                        }
                    }
                }
            }
        });
}

/// One image x [C, H, W] (f32) convolved with `p` on the given kernel path, the blocks bounded by
/// `block_values`: the output [Cout, Ho·Wo] and (Ho, Wo).
pub(crate) fn conv_image(
    path: CpuKernels,
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    p: &PackedConv,
    stride: usize,
    pad: usize,
    block_values: usize,
) -> candle_core::Result<(Vec<f32>, usize, usize)> {
    let k = p.k;
    if c != p.cin {
        candle_core::bail!(
            "bf16 conv2d: input has {c} channels, the weight [{}, {}, {k}, {k}] takes {}",
            p.cout(),
            p.cin,
            p.cin
        );
    }
    if stride == 0 {
        candle_core::bail!("bf16 conv2d: stride 0");
    }
    if x.len() != c * h * w {
        candle_core::bail!("bf16 conv2d: {} input values for [{c}, {h}, {w}]", x.len());
    }
    let (Some(ho), Some(wo)) = (out_size(h, k, stride, pad), out_size(w, k, stride, pad)) else {
        candle_core::bail!(
            "bf16 conv2d: a {k}×{k} kernel does not fit a {h}×{w} input with padding {pad}"
        );
    };
    let (ckk, cout, hwo, kp) = (c * k * k, p.cout(), ho * wo, p.w.kp);
    let mut out = vec![0f32; cout * hwo];
    if hwo == 0 {
        return Ok((out, ho, wo));
    }
    let rows_per_block = (block_values / (wo * ckk.max(cout)).max(1)).clamp(1, ho);
    let align = crate::cpu_bf16::PAIR_ROWS_ALIGN;
    let mut cols = vec![0u32; (rows_per_block * wo).div_ceil(align) * align * kp];
    let mut hwc = vec![0u16; ((rows_per_block - 1) * stride + k) * w * c];
    let mut oy0 = 0;
    while oy0 < ho {
        let rows = rows_per_block.min(ho - oy0);
        let m = rows * wo;
        let m_pad = m.div_ceil(align) * align;
        // The input rows these output rows read.
        let iy0 = (oy0 * stride) as isize - pad as isize;
        let n_in = (rows - 1) * stride + k;
        round_hwc(x, (c, h, w), iy0, &mut hwc[..n_in * w * c]);
        let dims = (c, h, w);
        im2col_pairs(
            &hwc,
            dims,
            k,
            stride,
            pad,
            (oy0, iy0),
            wo,
            kp,
            &mut cols[..m * kp],
        );
        cols[m * kp..m_pad * kp].fill(0);
        // [m, cout], the bias added.
        let y = crate::cpu_bf16::matmul_pairs_with(path, &cols[..m_pad * kp], m, &p.w);
        // Transposed into out [cout, hwo], 16 channels a task: each pixel's 16 values are one
        // cache line of y.
        const CG: usize = 16;
        out.par_chunks_mut(CG * hwo)
            .enumerate()
            .for_each(|(g, dst)| {
                let c0 = g * CG;
                let nc = dst.len() / hwo;
                for (i, yr) in y.chunks_exact(cout).enumerate() {
                    for (j, &v) in yr[c0..c0 + nc].iter().enumerate() {
                        dst[j * hwo + oy0 * wo + i] = v;
                    }
                }
            });
        oy0 += rows;
    }
    Ok((out, ho, wo))
}

/// The candle op: x [C, H, W] (contiguous f32) → [Cout, Ho, Wo].
struct ConvOp<'a> {
    p: &'a PackedConv,
    stride: usize,
    pad: usize,
}

impl CustomOp1 for ConvOp<'_> {
    fn name(&self) -> &'static str {
        "packed-bf16-conv2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.shape().dims3()?;
        let CpuStorage::F32(data) = s else {
            candle_core::bail!("packed-bf16-conv2d: the input must be f32")
        };
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("packed-bf16-conv2d: the input must be contiguous")
        };
        let (y, ho, wo) = conv_image(
            CpuKernels::selected(),
            &data[a..b],
            dims,
            self.p,
            self.stride,
            self.pad,
            BLOCK_VALUES,
        )?;
        Ok((CpuStorage::F32(y), Shape::from((self.p.cout(), ho, wo))))
    }
}

/// `conv2d(x, W, b)` for x [N, C, H, W] f32 on the CPU (not tracked for training) with a weight
/// packed by [`PackedConv::from_tensors`]: square kernel, symmetric zero padding, f32 result.
pub(crate) fn conv2d(
    x: &Tensor,
    p: &PackedConv,
    stride: usize,
    pad: usize,
) -> candle_core::Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 || x.track_op() {
        candle_core::bail!(
            "packed-bf16-conv2d: the bf16-packed convolutions take f32 CPU inputs for inference \
             (got {:?} on {:?}{}); load the tokenizer in f32 to train it",
            x.dtype(),
            x.device(),
            if x.track_op() { ", tracked" } else { "" }
        );
    }
    let n = x.dims4()?.0;
    let op = ConvOp { p, stride, pad };
    let mut outs = Vec::with_capacity(n);
    for b in 0..n {
        outs.push(x.get(b)?.contiguous()?.apply_op1_no_bwd(&op)?);
    }
    if n == 1 {
        outs.pop().expect("one image").unsqueeze(0)
    } else {
        Tensor::stack(&outs, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::random_values;

    /// bf16 rounding (to nearest even) in f64.
    fn r(v: f32) -> f64 {
        half::bf16::from_f32(v).to_f32() as f64
    }

    /// The convolution in f64 on bf16-rounded x and W (bias unrounded), by direct loops, and for
    /// each output the sum of |terms| (the scale of its f32 summation error).
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f32],
        (c, h, w): (usize, usize, usize),
        wt: &[f32],
        bias: &[f32],
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> (Vec<f64>, Vec<f64>, usize, usize) {
        let ho = (h + 2 * pad - k) / stride + 1;
        let wo = (w + 2 * pad - k) / stride + 1;
        let mut y = vec![0f64; cout * ho * wo];
        let mut mag = vec![0f64; cout * ho * wo];
        for co in 0..cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let (mut s, mut a) = (bias[co] as f64, bias[co].abs() as f64);
                    for ci in 0..c {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * stride + ky) as isize - pad as isize;
                                let ix = (ox * stride + kx) as isize - pad as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let t = r(x[(ci * h + iy as usize) * w + ix as usize])
                                    * r(wt[((co * c + ci) * k + ky) * k + kx]);
                                s += t;
                                a += t.abs();
                            }
                        }
                    }
                    y[(co * ho + oy) * wo + ox] = s;
                    mag[(co * ho + oy) * wo + ox] = a;
                }
            }
        }
        (y, mag, ho, wo)
    }

    /// One case on every kernel path this CPU has, with blocks of `block_values`: each output
    /// within γ·Σ|terms| of the f64 reference, γ = n·u/(1 − n·u), u = 2⁻²⁴, n = C·k·k + 1 (the
    /// terms and the bias). A product of two bf16 values is exact in f32, so every path differs
    /// from the reference only by its f32 additions, at most n of them per output in whatever
    /// order its blocks take: the classic bound of recursive summation (Higham, Accuracy and
    /// Stability, §4.2). It is a worst case (the typical error is about √n·u·Σ|terms|; the
    /// largest ratio seen is printed), yet far below what a wrong index or a missing or rounded
    /// term would cost. Returns the largest |error| / (u·Σ|terms|).
    #[allow(clippy::too_many_arguments)]
    fn check_case(
        seed: u64,
        (c, h, w): (usize, usize, usize),
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        block_values: usize,
    ) -> f64 {
        let x = random_values(seed, c * h * w);
        let wt: Vec<f32> = random_values(seed + 1, cout * c * k * k)
            .iter()
            .map(|v| v * 0.5)
            .collect();
        let bias = random_values(seed + 2, cout);
        let weight = Tensor::from_slice(&wt, (cout, c, k, k), &candle_core::Device::Cpu).unwrap();
        let b = Tensor::from_slice(&bias, cout, &candle_core::Device::Cpu).unwrap();
        let p = PackedConv::from_tensors(&weight, &b).unwrap();
        let (want, mag, ho, wo) = reference(&x, (c, h, w), &wt, &bias, cout, k, stride, pad);
        let u = 2f64.powi(-24);
        let n = (c * k * k + 1) as f64;
        let gamma = n * u / (1.0 - n * u);
        let mut worst = 0f64;
        for path in CpuKernels::available_paths() {
            let (got, gh, gw) =
                conv_image(path, &x, (c, h, w), &p, stride, pad, block_values).unwrap();
            let what = format!(
                "{path:?} x [{c}, {h}, {w}] cout {cout} k {k} stride {stride} pad {pad} block {block_values}"
            );
            assert_eq!((gh, gw), (ho, wo), "{what}");
            assert_eq!(got.len(), want.len(), "{what}");
            for (i, ((&g, &v), &m)) in got.iter().zip(&want).zip(&mag).enumerate() {
                let err = (g as f64 - v).abs();
                assert!(
                    err <= gamma * m,
                    "{what}: output {i}: {g} vs {v} (Σ|terms| {m}, bound {})",
                    gamma * m
                );
                if m > 0.0 {
                    worst = worst.max(err / (u * m));
                }
            }
        }
        worst
    }

    #[test]
    fn every_path_equals_the_f64_reference_on_bf16_rounded_inputs() {
        // (C, H, W), Cout, k, stride, pad: the VQ-VAE's kinds (3×3 pad 1, 3×3 stride 2 pad 0,
        // 1×1) and odd sizes, channels not multiples of the GEMM's panels.
        let mut worst = 0f64;
        for (i, &(chw, cout, k, stride, pad)) in [
            ((3, 9, 7), 5, 3, 1, 1),
            ((16, 8, 8), 33, 3, 1, 1),
            ((7, 11, 13), 9, 3, 2, 0),
            ((5, 10, 9), 4, 3, 2, 1),
            ((33, 6, 5), 40, 1, 1, 0),
            ((4, 5, 7), 3, 1, 2, 0),
            ((2, 3, 3), 2, 3, 1, 0),
            ((64, 4, 4), 64, 3, 1, 1),
            ((1, 1, 1), 1, 1, 1, 0),
        ]
        .iter()
        .enumerate()
        {
            worst = worst.max(check_case(
                10 * i as u64,
                chw,
                cout,
                k,
                stride,
                pad,
                BLOCK_VALUES,
            ));
        }
        println!("largest |error| / (u·Σ|terms|): {worst:.2}");
    }

    #[test]
    fn the_im2col_rounding_equals_the_kernels_rounding() {
        use crate::bf16_pack::bf16_bits;
        let mut specials = vec![
            0.0f32,
            -0.0,
            1.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(1),
            f32::from_bits(0x7f80_0001), // a signalling NaN
            f32::from_bits(0x3f80_8000), // a tie, even below: stays
            f32::from_bits(0x3f81_8000), // a tie, odd below: rounds up
            f32::from_bits(0x3f80_8001),
            f32::from_bits(0x7f7f_8000), // rounds to infinity
        ];
        let mut s = 1u64;
        specials.extend((0..1 << 20).map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            f32::from_bits((s >> 32) as u32)
        }));
        for v in specials {
            assert_eq!(round_bf16(v), bf16_bits(v), "{v:e} ({:#010x})", v.to_bits());
        }
    }

    #[test]
    fn the_bias_is_added_in_f32_not_rounded() {
        // W = 0: every output is its bias, exactly (bias values with more bits than bf16 keeps).
        let dev = candle_core::Device::Cpu;
        let bias: Vec<f32> = (0..37).map(|i| 1.0 + i as f32 * 2f32.powi(-20)).collect();
        let weight = Tensor::zeros((37, 5, 3, 3), candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::from_slice(&bias, 37, &dev).unwrap();
        let p = PackedConv::from_tensors(&weight, &b).unwrap();
        let x = random_values(1, 5 * 6 * 7);
        for path in CpuKernels::available_paths() {
            let (y, ho, wo) = conv_image(path, &x, (5, 6, 7), &p, 1, 1, BLOCK_VALUES).unwrap();
            for (co, plane) in y.chunks_exact(ho * wo).enumerate() {
                assert!(
                    plane.iter().all(|&v| v == bias[co]),
                    "{path:?} channel {co}"
                );
            }
        }
    }

    #[test]
    fn blocks_of_a_few_rows_give_the_whole_image_result() {
        // Budgets down to one output row a block (the block's last rows shorter), 1×1 included.
        for block_values in [1, 200, 1000] {
            check_case(3, (6, 13, 11), 7, 3, 1, 1, block_values);
            check_case(4, (6, 13, 11), 7, 3, 2, 0, block_values);
            check_case(5, (70, 9, 10), 20, 1, 1, 0, block_values);
        }
        // And the blocked result equals the one-block result exactly (the same sums per row).
        let (c, h, w, cout) = (8, 17, 9, 12);
        let x = random_values(7, c * h * w);
        let weight = Tensor::from_vec(
            random_values(8, cout * c * 9),
            (cout, c, 3, 3),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let b = Tensor::zeros(cout, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
        let p = PackedConv::from_tensors(&weight, &b).unwrap();
        let path = CpuKernels::selected();
        let whole = conv_image(path, &x, (c, h, w), &p, 1, 1, usize::MAX).unwrap();
        let rows = conv_image(path, &x, (c, h, w), &p, 1, 1, 1).unwrap();
        assert_eq!(whole.0, rows.0);
    }

    #[test]
    fn random_shapes_equal_the_reference() {
        // A seeded sweep of shapes (proptest is not a dependency of this crate): C, H, W, Cout in
        // small ranges, k ∈ {1, 3}, stride ∈ {1, 2}, pad ∈ {0, 1}, budgets that split or not.
        let mut s = 0x5eed_u64;
        let mut next = |n: u64| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) % n) as usize
        };
        for case in 0..24 {
            let k: usize = [1, 3][next(2)];
            let (stride, pad) = (1 + next(2), next(2));
            let (c, cout) = (1 + next(40), 1 + next(40));
            let h = k.saturating_sub(2 * pad).max(1) + next(12);
            let w = k.saturating_sub(2 * pad).max(1) + next(12);
            let block = [BLOCK_VALUES, 1, 500][next(3)];
            check_case(100 + case, (c, h, w), cout, k, stride, pad, block);
        }
    }

    #[test]
    fn bad_shapes_are_errors_not_panics() {
        let dev = candle_core::Device::Cpu;
        let weight = Tensor::zeros((4, 3, 3, 3), candle_core::DType::F32, &dev).unwrap();
        let bias = Tensor::zeros(4, candle_core::DType::F32, &dev).unwrap();
        let p = PackedConv::from_tensors(&weight, &bias).unwrap();
        let path = CpuKernels::Portable;
        let x = vec![0f32; 3 * 2 * 2];
        // Kernel larger than the padded input, wrong channels, stride 0, too few values.
        assert!(conv_image(path, &x, (3, 2, 2), &p, 1, 0, BLOCK_VALUES).is_err());
        assert!(conv_image(path, &x, (4, 1, 3), &p, 1, 1, BLOCK_VALUES).is_err());
        assert!(conv_image(path, &x, (3, 2, 2), &p, 0, 1, BLOCK_VALUES).is_err());
        assert!(conv_image(path, &x, (3, 3, 3), &p, 1, 1, BLOCK_VALUES).is_err());
        // A non-square kernel, a bias of the wrong length, a weight of the wrong rank.
        let rect = Tensor::zeros((4, 3, 3, 1), candle_core::DType::F32, &dev).unwrap();
        assert!(PackedConv::from_tensors(&rect, &bias).is_err());
        let bias5 = Tensor::zeros(5, candle_core::DType::F32, &dev).unwrap();
        assert!(PackedConv::from_tensors(&weight, &bias5).is_err());
        assert!(PackedConv::from_tensors(&bias, &bias).is_err());
        // Through the tensor API: a bf16 input, a 3-D input, the wrong channel count.
        let xb = Tensor::zeros((1, 3, 4, 4), candle_core::DType::BF16, &dev).unwrap();
        assert!(conv2d(&xb, &p, 1, 1).is_err());
        let x3 = Tensor::zeros((3, 4, 4), candle_core::DType::F32, &dev).unwrap();
        assert!(conv2d(&x3, &p, 1, 1).is_err());
        let x5 = Tensor::zeros((1, 5, 4, 4), candle_core::DType::F32, &dev).unwrap();
        assert!(conv2d(&x5, &p, 1, 1).is_err());
        // A good one, batch 2: the shape.
        let x2 = Tensor::zeros((2, 3, 5, 4), candle_core::DType::F32, &dev).unwrap();
        assert_eq!(conv2d(&x2, &p, 2, 1).unwrap().dims(), &[2, 4, 3, 2]);
    }
}
