//! Differentiable CPU ops for training (f32) with one-pass backward passes: LayerNorm over the
//! last dimension and softmax over the last dimension. The composed candle versions are a dozen
//! and five separate ops, each with its own backward.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct LayerNormOp {
    eps: f32,
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("layer-norm (training) needs contiguous inputs"),
    }
}

/// Mean and 1/√(var + eps) of a row.
fn stats(row: &[f32], eps: f32) -> (f32, f32) {
    let h = row.len() as f32;
    let mean = row.iter().sum::<f32>() / h;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (slice(xs, xl)?, slice(ws, wl)?, slice(bs, bl)?);
        let h = w.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(h).zip(x.par_chunks(h)).for_each(|(y, x)| {
            let (mean, rstd) = stats(x, self.eps);
            for i in 0..h {
                y[i] = (x[i] - mean) * rstd * w[i] + b[i];
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let xv = x.detach().contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let wv = w.detach().to_vec1::<f32>()?;
        let gv = grad
            .detach()
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let h = wv.len();
        let mut dx = vec![0f32; xv.len()];
        // Per row: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·w; dw = Σ dy·x̂; db = Σ dy.
        let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(h)
            .zip(xv.par_chunks(h))
            .zip(gv.par_chunks(h))
            .fold(
                || (vec![0f32; h], vec![0f32; h]),
                |(mut dw, mut db), ((dx, x), g)| {
                    let (mean, rstd) = stats(x, self.eps);
                    let (mut m1, mut m2) = (0f32, 0f32);
                    for i in 0..h {
                        let xh = (x[i] - mean) * rstd;
                        let gh = g[i] * wv[i];
                        m1 += gh;
                        m2 += gh * xh;
                        dw[i] += g[i] * xh;
                        db[i] += g[i];
                    }
                    let (m1, m2) = (m1 / h as f32, m2 / h as f32);
                    for i in 0..h {
                        let xh = (x[i] - mean) * rstd;
                        dx[i] = rstd * (g[i] * wv[i] - m1 - xh * m2);
                    }
                    (dw, db)
                },
            )
            .collect();
        let (mut dw, mut db) = (vec![0f32; h], vec![0f32; h]);
        for (pw, pb) in partial {
            for i in 0..h {
                dw[i] += pw[i];
                db[i] += pb[i];
            }
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, h, dev)?),
            Some(Tensor::from_vec(db, h, dev)?),
        ))
    }
}

/// LayerNorm of the last dimension with weight and bias, differentiable in all three (f32, CPU).
pub(crate) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f32) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNormOp { eps })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradients_match_the_composed_layer_norm() {
        let mut r = cogview_core::Rng::from_seed(5);
        let mut v = |n: usize, s: f64, o: f64| -> Vec<f32> {
            (0..n).map(|_| (o + s * r.normal()) as f32).collect()
        };
        let dev = Device::Cpu;
        let x = Var::from_vec(v(6 * 40, 2.0, 0.5), (6, 40), &dev).unwrap();
        let w = Var::from_vec(v(40, 0.3, 1.0), 40, &dev).unwrap();
        let b = Var::from_vec(v(40, 0.3, 0.0), 40, &dev).unwrap();
        let k = Tensor::from_vec(v(6 * 40, 1.0, 0.0), (6, 40), &dev).unwrap();
        let ours = layer_norm(&x, &w, &b, 1e-5).unwrap();
        let theirs = candle_nn::ops::layer_norm_slow(&x, &w, &b, 1e-5).unwrap();
        assert!(crate::test_util::tensor_max_abs_diff(&ours, &theirs) < 1e-5);
        let g1 = (&ours * &k).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&theirs * &k)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for t in [&x, &w, &b] {
            let d = crate::test_util::tensor_max_abs_diff(
                g1.get(t.as_tensor()).unwrap(),
                g2.get(t.as_tensor()).unwrap(),
            );
            assert!(d < 1e-4, "{d}");
        }
    }
}

/// Softmax over the last dimension with a backward (f32, CPU): one pass each way, where the
/// composed version is five ops (max, subtract, exp, sum, divide) each with its own backward.
struct SoftmaxOp;

impl candle_core::CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "softmax-train"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let n = *l.dims().last().unwrap_or(&1);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(n.max(1))
            .zip(x.par_chunks(n.max(1)))
            .for_each(|(y, x)| {
                let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut total = 0f32;
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = (v - max).exp();
                    total += *o;
                }
                for o in y.iter_mut() {
                    *o /= total;
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    /// dx = y ⊙ (g − Σ g⊙y), per row.
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let y = res.detach().contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let g = grad
            .detach()
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let n = *res.dims().last().unwrap_or(&1);
        let mut dx = vec![0f32; y.len()];
        dx.par_chunks_mut(n.max(1))
            .zip(y.par_chunks(n.max(1)).zip(g.par_chunks(n.max(1))))
            .for_each(|(d, (y, g))| {
                let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
                for i in 0..d.len() {
                    d[i] = y[i] * (g[i] - dot);
                }
            });
        Ok(Some(Tensor::from_vec(dx, res.shape(), res.device())?))
    }
}

/// Differentiable softmax of the last dimension (f32, CPU).
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(SoftmaxOp)
}

#[cfg(test)]
mod softmax_tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn values_and_gradients_match_the_composed_softmax() {
        let mut r = cogview_core::Rng::from_seed(6);
        let dev = Device::Cpu;
        let mut data: Vec<f32> = (0..4 * 3 * 17).map(|_| (3.0 * r.normal()) as f32).collect();
        data[5] = f32::NEG_INFINITY; // a masked score
        let x = Var::from_vec(data, (4, 3, 17), &dev).unwrap();
        let k: Vec<f32> = (0..4 * 3 * 17).map(|_| r.normal() as f32).collect();
        let k = Tensor::from_vec(k, (4, 3, 17), &dev).unwrap();
        let ours = softmax_last_dim(&x).unwrap();
        let theirs = candle_nn::ops::softmax(&x, candle_core::D::Minus1).unwrap();
        assert!(crate::test_util::tensor_max_abs_diff(&ours, &theirs) < 1e-6);
        assert_eq!(
            ours.flatten_all().unwrap().to_vec1::<f32>().unwrap()[5],
            0.0
        );
        let g1 = (&ours * &k).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&theirs * &k)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (a, b) = (
            g1.get(x.as_tensor()).unwrap(),
            g2.get(x.as_tensor()).unwrap(),
        );
        // The masked entry: candle's composed gradient is 0·(…) = 0 too, or NaN-free equal.
        assert!(
            crate::test_util::tensor_max_abs_diff(a, b) < 1e-5,
            "{}",
            crate::test_util::tensor_max_abs_diff(a, b)
        );
    }
}
