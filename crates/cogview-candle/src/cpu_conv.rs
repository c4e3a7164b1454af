//! A CPU convolution for the VQ-VAE. With AVX-512: an implicit-GEMM convolution, the matrix
//! kernel of [`crate::cpu_gemm`] packing its B panels straight from the image (no column buffer).
//! Otherwise: im2col by whole-row copies (candle's CPU im2col goes element by element and was half
//! of the tokenizer's time), then one matrix product per block of output rows, so the column
//! buffer stays small even at 480 px.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// The f32 values of a contiguous CPU operand, or an error naming the op and operand.
fn contiguous_f32<'a>(
    s: &'a CpuStorage,
    l: &Layout,
    op: &str,
    what: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = s else {
        candle_core::bail!("{op}: the {what} must be f32, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{op}: the {what} must be contiguous"),
    }
}

/// Column-buffer budget per block, in f32 values (64 MiB).
const BLOCK_VALUES: usize = 16 << 20;

/// im2col of output rows `oy0..oy1` of a `k×k` convolution over x [C, H, W]:
/// [C·k·k, (oy1−oy0)·Wo], zero outside the image.
struct Im2Col {
    k: usize,
    stride: usize,
    pad: usize,
    oy0: usize,
    oy1: usize,
    wo: usize,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (c, h, w) = l.shape().dims3()?;
        let x = contiguous_f32(s, l, "im2col-rows", "input")?;
        let (k, st, pad, wo) = (self.k, self.stride, self.pad, self.wo);
        let rows = self.oy1 - self.oy0;
        let n = rows * wo;
        let mut cols = vec![0f32; c * k * k * n];
        cols.par_chunks_mut(n).enumerate().for_each(|(r, dst)| {
            let (ci, ky, kx) = (r / (k * k), (r / k) % k, r % k);
            let plane = &x[ci * h * w..(ci + 1) * h * w];
            for (oyi, out_row) in dst.chunks_exact_mut(wo).enumerate() {
                let iy = ((self.oy0 + oyi) * st + ky) as isize - pad as isize;
                if iy < 0 || iy >= h as isize {
                    continue; // stays zero
                }
                let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                if st == 1 {
                    // ix = ox + kx − pad: one contiguous copy between the zero borders.
                    let lo = pad.saturating_sub(kx);
                    let hi = (w + pad - kx).min(wo);
                    if lo < hi {
                        out_row[lo..hi].copy_from_slice(&src[lo + kx - pad..hi + kx - pad]);
                    }
                } else {
                    for (ox, o) in out_row.iter_mut().enumerate() {
                        let ix = (ox * st + kx) as isize - pad as isize;
                        if ix >= 0 && (ix as usize) < w {
                            *o = src[ix as usize];
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(cols), Shape::from((c * k * k, n))))
    }
}

/// Implicit-GEMM convolution with bias: (x [C, H, W], w [Cout, C·k·k], b [Cout]) → [Cout, Ho·Wo].
struct ImplicitConv {
    k: usize,
    stride: usize,
    pad: usize,
}

impl candle_core::CustomOp3 for ImplicitConv {
    fn name(&self) -> &'static str {
        "implicit-gemm-conv2d"
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
        let (c, h, w) = l1.shape().dims3()?;
        let (cout, ckk) = l2.shape().dims2()?;
        let x = contiguous_f32(s1, l1, "implicit-gemm-conv2d", "input")?;
        let wt = contiguous_f32(s2, l2, "implicit-gemm-conv2d", "weight")?;
        let (k, stride, pad) = (self.k, self.stride, self.pad);
        if ckk != c * k * k || h + 2 * pad < k || w + 2 * pad < k {
            candle_core::bail!(
                "implicit-gemm-conv2d: weight [{cout}, {ckk}] does not fit input [{c}, {h}, {w}]"
            );
        }
        let (ho, wo) = (
            (h + 2 * pad - k) / stride + 1,
            (w + 2 * pad - k) / stride + 1,
        );
        let cols = crate::cpu_gemm::ConvCols {
            x,
            h,
            w,
            k,
            stride,
            pad,
            ho,
            wo,
        };
        let a = crate::cpu_gemm::View {
            data: wt,
            rows: cout,
            cols: ckk,
            rs: ckk,
            cs: 1,
        };
        let bias = contiguous_f32(s3, l3, "implicit-gemm-conv2d", "bias")?;
        if bias.len() != cout {
            candle_core::bail!(
                "implicit-gemm-conv2d: {} biases for {cout} output channels",
                bias.len()
            );
        }
        let y = crate::cpu_gemm::gemm_bias(a, &cols, Some(bias));
        Ok((CpuStorage::F32(y), Shape::from((cout, ho * wo))))
    }
}

/// `conv2d(x, weight, bias)` for x [N, C, H, W] f32 on the CPU, square kernel, symmetric padding.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    stride: usize,
    pad: usize,
) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let (cout, cin, k, k2) = weight.dims4()?;
    if cin != c || k != k2 {
        candle_core::bail!(
            "conv2d: weight {:?} does not fit input {:?}",
            weight.dims(),
            x.dims()
        );
    }
    let ho = (h + 2 * pad - k) / stride + 1;
    let wo = (w + 2 * pad - k) / stride + 1;
    let wmat = weight.reshape((cout, c * k * k))?;
    if crate::cpu_gemm::available() {
        let (wmat, bias) = (wmat.contiguous()?, bias.contiguous()?);
        let op = ImplicitConv { k, stride, pad };
        let mut outs = Vec::with_capacity(n);
        for b in 0..n {
            let y = x
                .get(b)?
                .contiguous()?
                .apply_op3_no_bwd(&wmat, &bias, &op)?;
            outs.push(y.reshape((cout, ho, wo))?);
        }
        return if n == 1 {
            outs.pop().unwrap().unsqueeze(0)
        } else {
            Tensor::stack(&outs, 0)
        };
    }
    let rows_per_block = (BLOCK_VALUES / (c * k * k * wo).max(1)).clamp(1, ho);
    let mut outs = Vec::with_capacity(n);
    for b in 0..n {
        let xb = x.get(b)?.contiguous()?;
        let mut blocks = Vec::new();
        let mut oy = 0;
        while oy < ho {
            let oy1 = (oy + rows_per_block).min(ho);
            let cols = if k == 1 && stride == 1 && pad == 0 {
                xb.reshape((c, h * w))?.narrow(1, oy * w, (oy1 - oy) * w)?
            } else {
                xb.apply_op1_no_bwd(&Im2Col {
                    k,
                    stride,
                    pad,
                    oy0: oy,
                    oy1,
                    wo,
                })?
            };
            blocks.push(wmat.matmul(&cols)?);
            oy = oy1;
        }
        let out = if blocks.len() == 1 {
            blocks.pop().unwrap()
        } else {
            Tensor::cat(&blocks, 1)?
        };
        outs.push(out.reshape((cout, ho, wo))?);
    }
    Tensor::stack(&outs, 0)?.broadcast_add(&bias.reshape((1, cout, 1, 1))?)
}

/// GroupNorm with an optional SiLU (swish) fused in, for f32 on the CPU: one pass for the
/// statistics of each group (f64 sums), one pass to normalise, scale, shift and activate.
pub struct GroupNormSilu {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub groups: usize,
    pub eps: f64,
    pub silu: bool,
}

impl CustomOp1 for GroupNormSilu {
    fn name(&self) -> &'static str {
        "group-norm-silu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = l.shape().dims();
        if dims.len() < 3 {
            candle_core::bail!("group-norm: input rank {} < 3", dims.len());
        }
        let (n, c) = (dims[0], dims[1]);
        let hw: usize = dims[2..].iter().product();
        if c != self.weight.len() || c % self.groups != 0 {
            candle_core::bail!(
                "group-norm: {c} channels for {} weights in {} groups",
                self.weight.len(),
                self.groups
            );
        }
        let x = contiguous_f32(s, l, "group-norm", "input")?;
        let cg = c / self.groups;
        let group_len = cg * hw;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(group_len)
            .zip(x.par_chunks(group_len))
            .enumerate()
            .for_each(|(gi, (o, xi))| {
                let g = gi % self.groups;
                let _ = n;
                let mean = xi.iter().map(|&v| v as f64).sum::<f64>() / group_len as f64;
                let var =
                    xi.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / group_len as f64;
                let rstd = 1.0 / (var + self.eps).sqrt();
                for ch in 0..cg {
                    let cidx = g * cg + ch;
                    let scale = (rstd * self.weight[cidx] as f64) as f32;
                    let shift =
                        (self.bias[cidx] as f64 - mean * rstd * self.weight[cidx] as f64) as f32;
                    let (oc, xc) = (&mut o[ch * hw..(ch + 1) * hw], &xi[ch * hw..(ch + 1) * hw]);
                    if self.silu {
                        for (ov, &xv) in oc.iter_mut().zip(xc) {
                            let y = xv * scale + shift;
                            *ov = y / (1.0 + (-y).exp());
                        }
                    } else {
                        for (ov, &xv) in oc.iter_mut().zip(xc) {
                            *ov = xv * scale + shift;
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}
