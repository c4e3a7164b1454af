//! The candle backend behind the core's [`Backend`] trait: built into the `cogview` command, and
//! exported through the plugin ABI by `plugins/candle` (the CPU build and the CUDA build).

use crate::{CoglmModel, LoadOptions, SrModel, VqTokenizer};
use cogview_core::backend::{Availability, Backend, LoadRequest, ModelKind};
use cogview_core::lm::AutoregressiveLm;
use cogview_core::sr::GridPredictor;
use cogview_core::{Device, Error, ImageTokenizer, Result};
use std::path::Path;
use std::sync::Arc;

/// candle, CPU always; CUDA when built with the `cuda` feature on a machine with a driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct CandleBackend;

/// Whether this build of the backend includes CUDA kernels.
pub const HAS_CUDA: bool = cfg!(feature = "cuda");

fn options(request: &LoadRequest) -> Result<LoadOptions> {
    if !request.options_toml.trim().is_empty() {
        return Err(Error::config(
            "candle backend options",
            "options",
            "the candle backend takes no options; remove the stage's `options` table",
        ));
    }
    request.check_cancelled()?;
    Ok(LoadOptions {
        device: request.device,
        dtype: request.dtype,
    })
}

impl Backend for CandleBackend {
    fn name(&self) -> &str {
        if HAS_CUDA {
            "candle-cuda"
        } else {
            "candle"
        }
    }

    fn describe(&self) -> String {
        format!(
            "candle 0.11 ({}), cogview {}",
            if HAS_CUDA { "CPU + CUDA" } else { "CPU" },
            env!("CARGO_PKG_VERSION")
        )
    }

    fn availability(&self, device: Device) -> Availability {
        match device {
            Device::Cpu => Availability::Usable {
                score: if HAS_CUDA { 1 } else { 2 },
            },
            Device::Cuda(i) if !HAS_CUDA => Availability::Unusable {
                reason: format!(
                    "this build of candle has no CUDA kernels (cuda:{i} needs the candle-cuda plugin)"
                ),
            },
            Device::Cuda(i) => match crate::device(Device::Cuda(i)) {
                Ok(_) => Availability::Usable { score: 10 },
                Err(e) => Availability::Unusable {
                    reason: e.to_string(),
                },
            },
        }
    }

    fn supports(&self, _kind: ModelKind) -> bool {
        true
    }

    fn load_lm(&self, path: &Path, request: &LoadRequest) -> Result<Arc<dyn AutoregressiveLm>> {
        let options = options(request)?;
        request.report(0, 1);
        let model = CoglmModel::load(path, options)?;
        request.report(1, 1);
        Ok(Arc::new(model))
    }

    fn load_grid_predictor(
        &self,
        path: &Path,
        request: &LoadRequest,
    ) -> Result<Arc<dyn GridPredictor>> {
        let options = options(request)?;
        request.report(0, 1);
        let model = SrModel::load(path, options)?;
        request.report(1, 1);
        Ok(Arc::new(model))
    }

    fn load_image_tokenizer(
        &self,
        path: &Path,
        request: &LoadRequest,
    ) -> Result<Arc<dyn ImageTokenizer>> {
        let options = options(request)?;
        request.report(0, 1);
        let model = VqTokenizer::load(path, options)?;
        request.report(1, 1);
        Ok(Arc::new(model))
    }
}
