//! Reproducible pseudo-random test and benchmark inputs (a 64-bit LCG), shared by the kernels'
//! unit tests and `cogview bench gemm`. A leaf module: it imports nothing from the crate.

/// A deterministic stream of values in [−0.5, 0.5) (an LCG; quality is irrelevant): the inputs of
/// the kernels' tests and of `cogview bench gemm`.
pub(crate) fn lcg_values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}
