//! A differentiable 2-D convolution for training on the CPU: im2col + matrix products forward
//! and backward. candle's own CPU backward of conv2d goes through a scalar transposed
//! convolution and a convolution whose kernel is the whole gradient image, which made training
//! the VQ-VAE about two orders of magnitude slower than its arithmetic needs.

use crate::cpu_gemm::matmul;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// `y = conv2d(x, w)` (no bias) with square stride and zero padding; x `[b, c, h, w]`, w
/// `[o, c, kh, kw]`, both f32.
struct Conv2dIm2col {
    stride: usize,
    padding: usize,
}

struct Geometry {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    stride: usize,
    padding: usize,
}

impl Geometry {
    fn ckk(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn hw_out(&self) -> usize {
        self.ho * self.wo
    }
}

fn geometry(xs: &[usize], ws: &[usize], stride: usize, padding: usize) -> Result<Geometry> {
    let (&[b, c, h, w], &[o, c2, kh, kw]) = (xs, ws) else {
        candle_core::bail!("conv2d expects 4-d input and kernel, got {xs:?} and {ws:?}")
    };
    if c != c2 {
        candle_core::bail!("conv2d: input has {c} channels, the kernel {c2}");
    }
    if h + 2 * padding < kh || w + 2 * padding < kw || stride == 0 {
        candle_core::bail!("conv2d: kernel {kh}x{kw} larger than the padded input {h}x{w}");
    }
    Ok(Geometry {
        b,
        c,
        h,
        w,
        o,
        kh,
        kw,
        ho: (h + 2 * padding - kh) / stride + 1,
        wo: (w + 2 * padding - kw) / stride + 1,
        stride,
        padding,
    })
}

/// Columns `[c·kh·kw, b·ho·wo]` of `x` (contiguous `[b, c, h, w]`): one row per kernel tap, the
/// images side by side, so that one matrix product covers the batch.
fn im2col(x: &[f32], g: &Geometry) -> Vec<f32> {
    let n = g.hw_out();
    let mut cols = vec![0f32; g.ckk() * g.b * n];
    cols.par_chunks_mut(g.b * n)
        .enumerate()
        .for_each(|(row, dst)| {
            let (ci, ky, kx) = (row / (g.kh * g.kw), row / g.kw % g.kh, row % g.kw);
            for bi in 0..g.b {
                let plane = &x[(bi * g.c + ci) * g.h * g.w..][..g.h * g.w];
                let dst = &mut dst[bi * n..][..n];
                for oy in 0..g.ho {
                    let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..][..g.w];
                    for ox in 0..g.wo {
                        let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                        if ix >= 0 && ix < g.w as isize {
                            dst[oy * g.wo + ox] = src[ix as usize];
                        }
                    }
                }
            }
        });
    cols
}

/// The adjoint of [`im2col`]: sums columns back into an image `[b, c, h, w]`.
fn col2im(cols: &[f32], g: &Geometry) -> Vec<f32> {
    let n = g.hw_out();
    let mut x = vec![0f32; g.b * g.c * g.h * g.w];
    x.par_chunks_mut(g.h * g.w)
        .enumerate()
        .for_each(|(p, plane)| {
            let (bi, ci) = (p / g.c, p % g.c);
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let row = (ci * g.kh + ky) * g.kw + kx;
                    let src = &cols[row * g.b * n + bi * n..][..n];
                    for oy in 0..g.ho {
                        let iy = (oy * g.stride + ky) as isize - g.padding as isize;
                        if iy < 0 || iy >= g.h as isize {
                            continue;
                        }
                        for ox in 0..g.wo {
                            let ix = (ox * g.stride + kx) as isize - g.padding as isize;
                            if ix >= 0 && ix < g.w as isize {
                                plane[iy as usize * g.w + ix as usize] += src[oy * g.wo + ox];
                            }
                        }
                    }
                }
            }
        });
    x
}

/// `[o, b·n]` ↔ `[b, o, n]`.
fn batch_major(y: &[f32], o: usize, b: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; o * b * n];
    out.par_chunks_mut(n).enumerate().for_each(|(i, dst)| {
        let (bi, oi) = (i / o, i % o);
        dst.copy_from_slice(&y[oi * b * n + bi * n..][..n]);
    });
    out
}

fn channel_major(y: &[f32], o: usize, b: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; o * b * n];
    out.par_chunks_mut(n).enumerate().for_each(|(i, dst)| {
        let (oi, bi) = (i / b, i % b);
        dst.copy_from_slice(&y[(bi * o + oi) * n..][..n]);
    });
    out
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("conv2d (training) needs contiguous inputs"),
    }
}

impl CustomOp2 for Conv2dIm2col {
    fn name(&self) -> &'static str {
        "conv2d-im2col"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = geometry(xl.dims(), wl.dims(), self.stride, self.padding)?;
        let x = f32_slice(xs, xl)?;
        let w = f32_slice(ws, wl)?;
        let dev = candle_core::Device::Cpu;
        let (bn, n) = (g.b * g.hw_out(), g.hw_out());
        let cols = Tensor::from_vec(im2col(x, &g), (g.ckk(), bn), &dev)?;
        let wm = Tensor::from_slice(w, (g.o, g.ckk()), &dev)?;
        let y = matmul(&wm, &cols)?.flatten_all()?.to_vec1::<f32>()?; // [o, b·n]
        Ok((
            CpuStorage::F32(batch_major(&y, g.o, g.b, n)),
            Shape::from((g.b, g.o, g.ho, g.wo)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = geometry(x.dims(), w.dims(), self.stride, self.padding)?;
        let dev = x.device();
        let (n, bn) = (g.hw_out(), g.b * g.hw_out());
        let xv = x.detach().contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let cols = Tensor::from_vec(im2col(&xv, &g), (g.ckk(), bn), dev)?;
        let gv = grad
            .detach()
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let gy = Tensor::from_vec(channel_major(&gv, g.o, g.b, n), (g.o, bn), dev)?;
        // dW = dY · colsᵀ over the whole batch at once.
        let dw = matmul(&gy, &cols.t()?)?.reshape((g.o, g.c, g.kh, g.kw))?;
        // dX = col2im(Wᵀ · dY).
        let wt = w.detach().reshape((g.o, g.ckk()))?;
        let dcols = matmul(&wt.t()?, &gy)?.flatten_all()?.to_vec1::<f32>()?;
        let dx = Tensor::from_vec(col2im(&dcols, &g), (g.b, g.c, g.h, g.w), dev)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// Differentiable convolution with bias for training (f32, CPU).
pub(crate) fn conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    if x.dtype() != DType::F32 || w.dtype() != DType::F32 {
        candle_core::bail!("conv2d (training) computes in f32");
    }
    let y = x
        .contiguous()?
        .apply_op2(&w.contiguous()?, Conv2dIm2col { stride, padding })?;
    y.broadcast_add(&bias.reshape((1, bias.dim(0)?, 1, 1))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rand(shape: &[usize], seed: u64) -> Vec<f32> {
        let mut r = cogview_core::Rng::from_seed(seed);
        (0..shape.iter().product::<usize>())
            .map(|_| r.next_f64() as f32 - 0.5)
            .collect()
    }

    /// Forward values and both gradients equal candle's own conv2d and its autograd.
    #[test]
    fn matches_candles_convolution_and_gradients() {
        for (xs, ws, stride, padding) in [
            ([2, 3, 7, 6], [4, 3, 3, 3], 1, 1),
            ([1, 2, 9, 9], [3, 2, 3, 3], 2, 0),
            ([2, 4, 5, 5], [2, 4, 1, 1], 1, 0),
        ] {
            let dev = Device::Cpu;
            let x = Var::from_vec(rand(&xs, 1), &xs[..], &dev).unwrap();
            let w = Var::from_vec(rand(&ws, 2), &ws[..], &dev).unwrap();
            let b = Var::from_vec(rand(&ws[..1], 3), ws[0], &dev).unwrap();
            let ours = conv2d(&x, &w, &b, stride, padding).unwrap();
            let theirs = x
                .conv2d(&w, padding, stride, 1, 1)
                .unwrap()
                .broadcast_add(&b.reshape((1, ws[0], 1, 1)).unwrap())
                .unwrap();
            assert!(crate::test_util::tensor_max_abs_diff(&ours, &theirs) < 1e-5);
            // A weighted sum as the loss, so every output position has its own gradient.
            let weights = Tensor::from_vec(rand(ours.dims(), 4), ours.dims(), &dev).unwrap();
            let g1 = (&ours * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g2 = (&theirs * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&x, &w, &b] {
                let (a, c) = (
                    g1.get(v.as_tensor()).unwrap(),
                    g2.get(v.as_tensor()).unwrap(),
                );
                assert!(
                    crate::test_util::tensor_max_abs_diff(a, c) < 1e-4,
                    "{xs:?} {ws:?}: {}",
                    crate::test_util::tensor_max_abs_diff(a, c)
                );
            }
        }
    }
}
