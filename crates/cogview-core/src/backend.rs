//! A backend: the tensor library that loads and runs a stage's model. The built-in candle backend
//! and every plugin (loaded at run time through the C ABI of `cogview-plugin-abi`) implement
//! [`Backend`], so a pipeline cannot tell them apart.

use crate::context::{CancelToken, ProgressFn};
use crate::error::Result;
use crate::lm::AutoregressiveLm;
use crate::sr::GridPredictor;
use crate::traits::ImageTokenizer;
use crate::types::{DType, Device};
use std::path::Path;
use std::sync::Arc;

/// How one model is to be loaded.
#[derive(Clone, Default)]
pub struct LoadRequest {
    /// Where the model runs.
    pub device: Device,
    /// The dtype the model computes in.
    pub dtype: DType,
    /// Backend-specific options as TOML text (a stage's `options` table); empty: the defaults.
    pub options_toml: String,
    /// Threads for the backend's own pool (plugins have their own); 0: its default.
    pub num_threads: usize,
    /// Set to stop a long load; the backend checks it between steps and returns `Cancelled`.
    pub cancel: CancelToken,
    /// Progress of the load, stage "load".
    pub progress: Option<ProgressFn>,
}

impl LoadRequest {
    /// A request for `device` and `dtype` with default options, no cancellation and no progress.
    pub fn new(device: Device, dtype: DType) -> Self {
        LoadRequest {
            device,
            dtype,
            ..Default::default()
        }
    }

    /// `Err(Cancelled)` once [`LoadRequest::cancel`] is set; backends call it between steps.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(crate::Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Reports `step` of `total` done, as stage "load".
    pub fn report(&self, step: usize, total: usize) {
        if let Some(p) = &self.progress {
            p(crate::Progress {
                stage: "load",
                step,
                total,
            });
        }
    }
}

impl std::fmt::Debug for LoadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadRequest")
            .field("device", &self.device)
            .field("dtype", &self.dtype)
            .field("options_toml", &self.options_toml)
            .field("num_threads", &self.num_threads)
            .finish_non_exhaustive()
    }
}

/// The kinds of model a backend can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModelKind {
    /// CogLM (stage 1, editing, captioning).
    Lm,
    /// DSR or ItersR.
    GridPredictor,
    /// The VQ image tokenizer.
    ImageTokenizer,
}

impl ModelKind {
    /// A short description for messages (e.g. "super-resolution (DSR / ItersR)").
    pub fn describe(self) -> &'static str {
        match self {
            ModelKind::Lm => "CogLM (autoregressive transformer)",
            ModelKind::GridPredictor => "super-resolution (DSR / ItersR)",
            ModelKind::ImageTokenizer => "image tokenizer (VQ-VAE)",
        }
    }
}

/// Whether a backend can run on a device, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// Usable; higher scores are preferred among variants of one backend.
    Usable {
        /// Higher is preferred.
        score: u32,
    },
    /// Not usable here.
    Unusable {
        /// Why (what is missing, what to install).
        reason: String,
    },
}

/// A tensor library that loads models from checkpoints.
pub trait Backend: Send + Sync {
    /// The name stages select it by (`backend = "candle"`).
    fn name(&self) -> &str;
    /// Version and build facts (library versions, CUDA, panic strategy), for `cogview backends`.
    fn describe(&self) -> String;
    /// Whether it can run on `device` on this machine. Cheap: loads nothing.
    fn availability(&self, device: Device) -> Availability;
    /// Whether it can load models of `kind`.
    fn supports(&self, kind: ModelKind) -> bool;
    /// Loads a CogLM checkpoint.
    fn load_lm(&self, path: &Path, request: &LoadRequest) -> Result<Arc<dyn AutoregressiveLm>>;
    /// Loads a DSR or ItersR checkpoint.
    fn load_grid_predictor(
        &self,
        path: &Path,
        request: &LoadRequest,
    ) -> Result<Arc<dyn GridPredictor>>;
    /// Loads a VQ image tokenizer checkpoint.
    fn load_image_tokenizer(
        &self,
        path: &Path,
        request: &LoadRequest,
    ) -> Result<Arc<dyn ImageTokenizer>>;
}
