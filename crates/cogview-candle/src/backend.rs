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

/// The stage's `options` table. The one option: `weights = "int8"` (the transformer layers'
/// linear weights stored in int8 with per-output-row scales, for the memory-bound decoding steps
/// on the CPU) or `weights = "dtype"` (the default: the stage's dtype).
fn options(request: &LoadRequest) -> Result<LoadOptions> {
    let bad = |reason: String| Error::config("candle backend options", "options", reason);
    let mut int8_weights = false;
    if !request.options_toml.trim().is_empty() {
        let table: toml::Table = request
            .options_toml
            .parse()
            .map_err(|e| bad(format!("not a TOML table: {e}")))?;
        for (key, value) in &table {
            match (key.as_str(), value.as_str()) {
                ("weights", Some("int8")) => int8_weights = true,
                ("weights", Some("dtype")) => int8_weights = false,
                ("weights", _) => {
                    return Err(bad(format!(
                        "`weights` is \"int8\" or \"dtype\", not {value}"
                    )))
                }
                (other, _) => {
                    return Err(bad(format!(
                        "unknown option `{other}`; the candle backend takes `weights` (\"int8\" or \"dtype\")"
                    )))
                }
            }
        }
    }
    if int8_weights && request.device != Device::Cpu {
        return Err(bad(format!(
            "int8 weights run on the CPU kernels; {} needs `weights = \"dtype\"` (or no options)",
            request.device
        )));
    }
    if int8_weights && !crate::cpu_int8::vnni_available() {
        tracing::warn!(
            "int8 weights without AVX512-VNNI (or with COGVIEW_CPU_KERNELS forcing avx512, avx2 or portable): the weights take a quarter of f32's memory, but decoding falls back to a slower loop than f32 weights (docs/benchmarks.md, \"int8 weights\")"
        );
    }
    request.check_cancelled()?;
    Ok(LoadOptions {
        device: request.device,
        dtype: request.dtype,
        int8_weights,
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
        if options.int8_weights {
            return Err(Error::config(
                "candle backend options",
                "options",
                "int8 weights apply to the transformers (coglm, dsr, itersr); the image tokenizer's convolutions take `weights = \"dtype\"`",
            ));
        }
        request.report(0, 1);
        let model = VqTokenizer::load(path, options)?;
        request.report(1, 1);
        Ok(Arc::new(model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(device: Device, options: &str) -> LoadRequest {
        let mut r = LoadRequest::new(device, cogview_core::DType::F32);
        r.options_toml = options.into();
        r
    }

    #[test]
    fn the_weights_option_takes_int8_or_dtype_and_refuses_anything_else() {
        assert!(!options(&request(Device::Cpu, "")).unwrap().int8_weights);
        assert!(
            options(&request(Device::Cpu, "weights = \"int8\""))
                .unwrap()
                .int8_weights
        );
        assert!(
            !options(&request(Device::Cpu, "weights = \"dtype\""))
                .unwrap()
                .int8_weights
        );
        for (text, want) in [
            (
                "weights = \"int4\"",
                "`weights` is \"int8\" or \"dtype\", not \"int4\"",
            ),
            ("weights = 8", "not 8"),
            ("threads = 4", "unknown option `threads`"),
            ("weights = ", "not a TOML table"),
        ] {
            let e = options(&request(Device::Cpu, text))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = options(&request(Device::Cuda(0), "weights = \"int8\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("int8 weights run on the CPU kernels"), "{e}");
        let e = CandleBackend
            .load_image_tokenizer(
                Path::new("/nonexistent"),
                &request(Device::Cpu, "weights = \"int8\""),
            )
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("image tokenizer"), "{e}");
    }
}
