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
