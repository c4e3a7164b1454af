//! Helpers for the kernels' unit tests.

pub(crate) use crate::pseudo_random::lcg_values as random_values;

/// x [m, k] · w [n, k]ᵀ in f64.
pub fn reference_product_wt(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Vec<f64> {
    let mut y = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            y[i * n + j] = (0..k)
                .map(|c| x[i * k + c] as f64 * w[j * k + c] as f64)
                .sum();
        }
    }
    y
}

pub fn max_abs_diff(got: &[f32], want: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max)
}

/// The largest |a − b| of two tensors of the same shape.
pub fn tensor_max_abs_diff(a: &candle_core::Tensor, b: &candle_core::Tensor) -> f32 {
    (a - b)
        .and_then(|d| d.abs())
        .and_then(|d| d.flatten_all())
        .and_then(|d| d.max(0))
        .and_then(|d| d.to_scalar::<f32>())
        .expect("tensors of the same shape")
}

/// Σ_k round(x)·round(w) in f64 (+ bias): the product every path approximates.
pub fn bf16_reference(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    bias: Option<&[f32]>,
) -> Vec<f64> {
    let r = |v: f32| half::bf16::from_f32(v).to_f32() as f64;
    let mut out = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = bias.map_or(0.0, |b| b[j] as f64);
            for t in 0..k {
                s += r(x[i * k + t]) * r(w[j * k + t]);
            }
            out[i * n + j] = s;
        }
    }
    out
}

/// max |got − want| / (1 + Σ|terms|) over the entries: f32 summation error relative to the
/// magnitude of the sum's terms.
#[allow(clippy::too_many_arguments)]
pub fn bf16_check(
    got: &[f32],
    want: &[f64],
    x: &[f32],
    m: usize,
    k: usize,
    w: &[f32],
    n: usize,
    what: &str,
) {
    assert_eq!(got.len(), want.len(), "{what}");
    for i in 0..m {
        for j in 0..n {
            let mag: f64 = (0..k)
                .map(|t| (x[i * k + t] as f64 * w[j * k + t] as f64).abs())
                .sum();
            let (g, v) = (got[i * n + j] as f64, want[i * n + j]);
            assert!(
                (g - v).abs() <= 1e-5 * (1.0 + mag),
                "{what}: [{i}, {j}] {g} vs {v} (terms {mag})"
            );
        }
    }
}
