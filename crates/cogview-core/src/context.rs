//! Per-run state every component receives: seed, progress reporting and cancellation.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancellation flag that can be set from any thread; runs stop after their current step.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// Requests cancellation; any thread may call it.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Clears the flag, so that the token can be used for another run.
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// One progress report: `step` of `total` done in `stage` (e.g. "coglm", 37 of 400 tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// The stage reporting: "coglm", "dsr", "itersr", "decode", "load", "caption", ...
    pub stage: &'static str,
    /// Steps done.
    pub step: usize,
    /// Steps in all.
    pub total: usize,
}

/// A progress callback: called on the thread doing the work.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// What a run carries besides its inputs.
#[derive(Clone, Default)]
pub struct RunContext {
    /// The base seed; image `i` of a run uses seed `seed + i` (see [`RunContext::image_seeds`]).
    pub seed: u64,
    /// Cancellation, checked between steps.
    pub cancel: CancelToken,
    /// Where progress goes; `None`: nowhere.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("seed", &self.seed)
            .field("cancelled", &self.cancel.is_cancelled())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl RunContext {
    /// A context with `seed`, no cancellation and no progress callback.
    pub fn with_seed(seed: u64) -> Self {
        RunContext {
            seed,
            ..Default::default()
        }
    }

    /// The seeds of `n` images: `seed, seed + 1, …` (wrapping). Each image is sampled from its own
    /// generator, so image `i` can be regenerated alone with `--seed (seed + i) -n 1`.
    pub fn image_seeds(&self, n: usize) -> Vec<u64> {
        (0..n as u64).map(|i| self.seed.wrapping_add(i)).collect()
    }

    /// The seeds of an image's `k` stage-1 candidates when each image is the best of `k` (a
    /// pipeline's `coglm.rerank`): the image's own seed first, so one candidate is plain
    /// generation, then `k - 1` seeds mixed from it (SplitMix64), which do not collide with the
    /// neighbouring images' `seed + 1, …`. Image `i` is then made again, alone, by the same
    /// reranking from its own seed.
    pub fn candidate_seeds(image_seed: u64, k: usize) -> Vec<u64> {
        (0..k as u64)
            .map(|j| {
                if j == 0 {
                    return image_seed;
                }
                let mut z = image_seed ^ j.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^ (z >> 31)
            })
            .collect()
    }

    /// Returns `Err(Cancelled)` once cancellation was requested.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Reports `step` of `total` done in `stage` to the progress callback, if any.
    pub fn report(&self, stage: &'static str, step: usize, total: usize) {
        if let Some(p) = &self.progress {
            p(Progress { stage, step, total });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RunContext;
    use std::collections::HashSet;

    #[test]
    fn candidate_seeds_start_with_the_image_seed_and_never_meet_another_images() {
        // A run of 1000 images from seed u64::MAX - 500 (wrapping), 8 candidates each: the
        // first candidate is the image's seed, and all 8000 are distinct.
        let ctx = RunContext::with_seed(u64::MAX - 500);
        let images = ctx.image_seeds(1000);
        let mut all = HashSet::new();
        for &s in &images {
            let c = RunContext::candidate_seeds(s, 8);
            assert_eq!(c.len(), 8);
            assert_eq!(c[0], s);
            // Nested: 4 candidates are the first 4 of 8.
            assert_eq!(RunContext::candidate_seeds(s, 4), c[..4]);
            all.extend(c);
        }
        assert_eq!(all.len(), 8000);
        assert_eq!(RunContext::candidate_seeds(7, 1), [7]);
    }
}
