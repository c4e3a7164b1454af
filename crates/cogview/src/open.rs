//! Which pipeline to build: a configuration file, a model folder, or the embedded default model,
//! with per-run overrides on top. Shared by the `cogview` command and the C API.

use crate::embedded;
use cogview_core::stage1::Style;
use cogview_core::{DType, Device, Error, Result};
use cogview_pipeline::PipelineConfig;
use std::path::PathBuf;

/// What to open; every field is optional.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// A pipeline file (TOML).
    pub config: Option<PathBuf>,
    /// A folder in the official layout (overrides the file's `model_dir`).
    pub model_dir: Option<PathBuf>,
    /// Overrides the file's style.
    pub style: Option<Style>,
    /// Holds one stage's weights at a time.
    pub low_memory: bool,
    /// Every stage's dtype.
    pub dtype: Option<DType>,
    /// Every stage's device.
    pub device: Option<Device>,
    /// Images CogLM generates together.
    pub batch_size: Option<usize>,
}

impl OpenOptions {
    /// The configuration: the file (if any), else the model folder, else the embedded default
    /// model, with the overrides applied on top.
    pub fn config(&self) -> Result<PipelineConfig> {
        let mut cfg = match &self.config {
            Some(p) => PipelineConfig::from_file(p)?,
            None => PipelineConfig::default(),
        };
        if let Some(d) = &self.model_dir {
            // A folder given here is relative to the working directory, not to the file's
            // folder (where the file's own `model_dir` is resolved).
            let d = std::path::absolute(d).map_err(|e| Error::io(d, e))?;
            cfg.model_dir = Some(d);
        }
        if cfg.model_dir.is_none() && cfg.coglm.path.is_none() {
            match (embedded::default_model_dir()?, &self.config) {
                (Some(dir), None) => {
                    cfg = PipelineConfig::from_file(dir.join("pipeline.toml"))?;
                }
                // A pipeline file that names no model: its settings over the embedded model's.
                (Some(dir), Some(file)) => {
                    cfg = PipelineConfig::from_file_over(file, dir.join("pipeline.toml"))?;
                }
                (None, Some(file)) => {
                    return Err(Error::invalid_input(
                        "model_dir",
                        format!(
                            "the pipeline file {} names no model (no `model_dir`, no \
                             `[coglm] path`) and this build has no embedded default model: \
                             set `model_dir` in the file or pass a model folder",
                            file.display()
                        ),
                    ))
                }
                (None, None) => {
                    return Err(Error::invalid_input(
                        "model_dir",
                        "no model given: pass a model folder (laid out as the official CogView2 \
                         download) or a pipeline file (this build has no embedded default model)",
                    ))
                }
            }
        }
        if let Some(s) = self.style {
            cfg.style = Some(s);
        }
        if self.low_memory {
            cfg.low_memory = Some(true);
        }
        if let Some(d) = self.dtype {
            cfg.defaults.dtype = Some(d);
            for stage in [
                &mut cfg.coglm.dtype,
                &mut cfg.dsr.dtype,
                &mut cfg.itersr.dtype,
                &mut cfg.image_tokenizer.dtype,
            ] {
                *stage = None;
            }
        }
        if let Some(d) = self.device {
            cfg.defaults.device = Some(d);
            for stage in [
                &mut cfg.coglm.device,
                &mut cfg.dsr.device,
                &mut cfg.itersr.device,
                &mut cfg.image_tokenizer.device,
            ] {
                *stage = None;
            }
        }
        if let Some(b) = self.batch_size {
            if b == 0 {
                return Err(Error::invalid_input("batch_size", "must be at least 1"));
            }
            cfg.coglm.batch_size = Some(b);
        }
        Ok(cfg)
    }
}
