//! Mixed-precision training through the bf16 kernels: the linear layers' three products of a
//! training step (forward `y = x·Wᵀ`, backward `dx = dy·W` and `dW = dyᵀ·x`) run on the bf16 GEMM of
//! [`crate::cpu_bf16`] (operands rounded to bf16, products and sums in f32), while the weights
//! stay f32 variables (the "master weights" the optimizer updates) and everything else stays f32.
//! Turned on process-wide by [`set_training_precision`] (`cogview train --precision bf16`).

use crate::bf16_pack::PackedBf16;
use candle_core::{CpuStorage, Layout, Shape, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

static BF16_TRAINING: AtomicBool = AtomicBool::new(false);

/// The precision of the linear layers' products while training on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainingPrecision {
    /// f32 throughout (candle's matrix product).
    #[default]
    F32,
    /// bf16 operands, f32 accumulation, f32 master weights.
    Bf16,
}

/// Sets the precision of the linear layers' products in training, for the whole process.
pub fn set_training_precision(p: TrainingPrecision) {
    BF16_TRAINING.store(p == TrainingPrecision::Bf16, Ordering::Relaxed);
}

/// The precision set by [`set_training_precision`].
pub fn training_precision() -> TrainingPrecision {
    if BF16_TRAINING.load(Ordering::Relaxed) {
        TrainingPrecision::Bf16
    } else {
        TrainingPrecision::F32
    }
}

/// `a [m, k] · bᵀ` for row-major f32 `b [n, k]` on the bf16 GEMM (b packed here).
fn product_wt(a: &[f32], m: usize, k: usize, b: &[f32], n: usize) -> Vec<f32> {
    crate::cpu_bf16::matmul(a, m, &PackedBf16::from_f32(b, n, k, None))
}

/// The transpose of row-major `a [rows, cols]`.
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

fn f32_data<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("bf16 training product: {what} must be contiguous f32"),
    }
}

/// `x [m, k] · W [n, k]ᵀ` with the bf16 products in the forward and the backward.
struct Bf16LinearProduct;

impl candle_core::CustomOp2 for Bf16LinearProduct {
    fn name(&self) -> &'static str {
        "bf16-training-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k, n) = crate::cpu_linear::product_dims(l1, l2, "bf16 training product")?;
        let y = product_wt(f32_data(s1, l1, "x")?, m, k, f32_data(s2, l2, "W")?, n);
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (m, k) = x.dims2()?;
        let (n, _) = w.dims2()?;
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let ws = w.flatten_all()?.to_vec1::<f32>()?;
        let dys = dy.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        // dx [m, k] = dy [m, n] · W [n, k] = dy · (Wᵀ [k, n])ᵀ
        let dx = product_wt(&dys, m, n, &transpose(&ws, n, k), k);
        // dW [n, k] = dyᵀ [n, m] · x [m, k] = dyᵀ · (xᵀ [k, m])ᵀ
        let dw = product_wt(&transpose(&dys, m, n), n, m, &transpose(&xs, m, k), k);
        Ok((
            Some(Tensor::from_vec(dx, (m, k), x.device())?),
            Some(Tensor::from_vec(dw, (n, k), w.device())?),
        ))
    }
}

/// `x · Wᵀ` for tracked f32 x [m, k] and W [n, k] on the CPU when bf16 training is on; `None`
/// otherwise (the caller uses candle's f32 product).
pub(crate) fn linear_product(x: &Tensor, w: &Tensor) -> candle_core::Result<Option<Tensor>> {
    if training_precision() != TrainingPrecision::Bf16
        || !x.device().is_cpu()
        || x.dtype() != candle_core::DType::F32
        || w.dtype() != candle_core::DType::F32
        || x.rank() != 2
        || w.rank() != 2
    {
        return Ok(None);
    }
    x.contiguous()?
        .apply_op2(&w.contiguous()?, Bf16LinearProduct)
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{max_abs_diff, reference_product_wt};
    use candle_core::{Device, Var};

    /// bf16 rounding of a value (the operands' precision).
    fn bf16(v: f32) -> f32 {
        half::bf16::from_f32(v).to_f32()
    }

    #[test]
    fn forward_and_gradients_are_the_f32_ones_of_bf16_rounded_operands() {
        let (m, k, n) = (37, 45, 29);
        let xs = crate::pseudo_random::lcg_values(5, m * k);
        let ws = crate::pseudo_random::lcg_values(6, n * k);
        let gs = crate::pseudo_random::lcg_values(7, m * n); // the upstream gradient dL/dy
        let dev = Device::Cpu;
        let run = |bf16_products: bool| {
            let x = Var::from_vec(xs.clone(), (m, k), &dev).unwrap();
            let w = Var::from_vec(ws.clone(), (n, k), &dev).unwrap();
            let g = Tensor::from_vec(gs.clone(), (m, n), &dev).unwrap();
            let y = if bf16_products {
                x.as_tensor()
                    .apply_op2(w.as_tensor(), Bf16LinearProduct)
                    .unwrap()
            } else {
                x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap()
            };
            let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (v(&y), v(grads.get(&x).unwrap()), v(grads.get(&w).unwrap()))
        };
        let (y, dx, dw) = run(true);
        // Independent expectation: f64 products of the bf16-rounded operands.
        let r = |a: &[f32]| a.iter().map(|&v| bf16(v)).collect::<Vec<_>>();
        let (xb, wb, gb) = (r(&xs), r(&ws), r(&gs));
        // The transposes written independently of the module's.
        let t = |a: &[f32], rows: usize, cols: usize| -> Vec<f32> {
            (0..cols)
                .flat_map(|c| (0..rows).map(move |r| a[r * cols + c]))
                .collect()
        };
        let worst = [
            max_abs_diff(&y, &reference_product_wt(&xb, m, k, &wb, n)),
            max_abs_diff(&dx, &reference_product_wt(&gb, m, n, &t(&wb, n, k), k)),
            max_abs_diff(
                &dw,
                &reference_product_wt(&t(&gb, m, n), n, m, &t(&xb, m, k), k),
            ),
        ];
        assert!(
            worst.iter().all(|&e| e < 1e-4),
            "y, dx, dW errors {worst:?}"
        );
        // And close to f32 training (the rounding of the operands is the only difference).
        let (y32, dx32, dw32) = run(false);
        for (a, b) in [(&y, &y32), (&dx, &dx32), (&dw, &dw32)] {
            let d = a
                .iter()
                .zip(b.iter())
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(d < 0.05, "bf16 vs f32 differ by {d}");
        }
    }
}
