//! The tch backend behind the core's [`Backend`] trait.

use crate::coglm::TchCoglm;
use crate::sr::TchSr;
use crate::vqvae::TchVq;
use crate::weights::{device, kind};
use cogview_core::backend::{Availability, Backend, LoadRequest, ModelKind};
use cogview_core::lm::AutoregressiveLm;
use cogview_core::sr::GridPredictor;
use cogview_core::{Device, Error, ImageTokenizer, Result};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// libtorch through tch, on the CPU and, where libtorch_cuda.so loads, CUDA.
pub struct TchBackend;

impl TchBackend {
    pub fn new() -> Self {
        // Before any other libtorch call (see `crate::cuda`).
        let _ = crate::cuda::init();
        TchBackend
    }
}

impl Default for TchBackend {
    fn default() -> Self {
        Self::new()
    }
}

static THREADS: OnceLock<()> = OnceLock::new();

/// Sizes libtorch's intra-op pool once: the first load that gives a count wins.
pub fn set_threads_once(n: usize) {
    if n > 0 {
        THREADS.get_or_init(|| tch::set_num_threads(n as i32));
    }
}

/// The backend's options (a stage's `options` table).
#[derive(Debug, Default, PartialEq)]
struct Options {
    /// libtorch's intra-op threads (process-wide; overrides `num_threads`).
    threads: Option<usize>,
}

const SOURCE: &str = "tch backend options";

fn parse_options(text: &str) -> Result<Options> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| Error::config(SOURCE, "options", format!("invalid TOML: {e}")))?;
    let mut o = Options::default();
    for (key, value) in &table {
        match key.as_str() {
            "threads" => match value.as_integer() {
                Some(n) if n >= 1 => o.threads = Some(n as usize),
                _ => {
                    return Err(Error::config(
                        SOURCE,
                        "threads",
                        format!("expected a positive integer, found {value}"),
                    ))
                }
            },
            other => {
                return Err(Error::config(
                    SOURCE,
                    other,
                    format!("unknown option '{other}' (the tch backend takes: threads)"),
                ))
            }
        }
    }
    Ok(o)
}

impl TchBackend {
    /// Checks the request and sets up threads; returns the libtorch device.
    fn prepare(&self, request: &LoadRequest) -> Result<tch::Device> {
        let options = parse_options(&request.options_toml)?;
        match options.threads {
            Some(n) => {
                THREADS.get_or_init(|| ());
                tch::set_num_threads(n as i32);
            }
            None => set_threads_once(request.num_threads),
        }
        if let Availability::Unusable { reason } = self.availability(request.device) {
            return Err(Error::backend(format!(
                "tch cannot use {}: {reason}",
                device_name(request.device)
            )));
        }
        request.check_cancelled()?;
        Ok(device(request.device))
    }
}

fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
    }
}

impl Backend for TchBackend {
    fn name(&self) -> &str {
        "tch"
    }

    fn describe(&self) -> String {
        let cuda = match crate::cuda::init() {
            Ok(_) if tch::Cuda::is_available() => {
                format!("CUDA: {} device(s)", tch::Cuda::device_count())
            }
            Ok(_) => "CUDA: libtorch_cuda loaded, no usable GPU".to_string(),
            Err(e) => format!("CPU only ({e})"),
        };
        format!(
            "libtorch 2.13 via tch 0.26, {cuda}, {} intra-op threads, cogview {}",
            tch::get_num_threads(),
            env!("CARGO_PKG_VERSION")
        )
    }

    fn availability(&self, device: Device) -> Availability {
        match device {
            Device::Cpu => Availability::Usable { score: 1 },
            Device::Cuda(i) => {
                if let Err(e) = crate::cuda::init() {
                    return Availability::Unusable { reason: e.clone() };
                }
                if !tch::Cuda::is_available() {
                    return Availability::Unusable {
                        reason: "libtorch finds no usable CUDA device (no GPU or no driver)".into(),
                    };
                }
                let n = tch::Cuda::device_count();
                if i as i64 >= n {
                    return Availability::Unusable {
                        reason: format!("there is no cuda:{i}; this machine has {n} CUDA device(s)"),
                    };
                }
                Availability::Usable { score: 10 }
            }
        }
    }

    fn supports(&self, _kind: ModelKind) -> bool {
        true
    }

    fn load_lm(&self, path: &Path, request: &LoadRequest) -> Result<Arc<dyn AutoregressiveLm>> {
        let dev = self.prepare(request)?;
        let _span = tracing::info_span!("tch_load_coglm", path = %path.display()).entered();
        let (config, _) = cogview_model::inspect::coglm_config(path)?;
        let ckpt = cogview_model::inspect::open_checkpoint(path)?;
        Ok(Arc::new(TchCoglm::load(
            &ckpt,
            config,
            kind(request.dtype),
            dev,
            request,
        )?))
    }

    fn load_grid_predictor(
        &self,
        path: &Path,
        request: &LoadRequest,
    ) -> Result<Arc<dyn GridPredictor>> {
        let dev = self.prepare(request)?;
        let _span = tracing::info_span!("tch_load_sr", path = %path.display()).entered();
        let (config, _) = cogview_model::inspect::sr_config(path)?;
        let ckpt = cogview_model::inspect::open_checkpoint(path)?;
        Ok(Arc::new(TchSr::load(
            &ckpt,
            config,
            kind(request.dtype),
            dev,
            request,
        )?))
    }

    fn load_image_tokenizer(
        &self,
        path: &Path,
        request: &LoadRequest,
    ) -> Result<Arc<dyn ImageTokenizer>> {
        let dev = self.prepare(request)?;
        let _span = tracing::info_span!("tch_load_vq", path = %path.display()).entered();
        let (config, _) = cogview_model::inspect::vq_config(path)?;
        let ckpt = cogview_model::inspect::open_checkpoint(path)?;
        Ok(Arc::new(TchVq::load(
            &ckpt,
            config,
            kind(request.dtype),
            dev,
            request,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_accept_empty_and_threads_and_name_unknown_keys() {
        assert_eq!(parse_options("").unwrap(), Options::default());
        assert_eq!(parse_options("threads = 3").unwrap().threads, Some(3));
        let e = parse_options("threads = 0").unwrap_err().to_string();
        assert!(e.contains("threads"), "{e}");
        let e = parse_options("fast = true").unwrap_err().to_string();
        assert!(e.contains("fast"), "{e}");
        assert!(matches!(
            parse_options("fast = true"),
            Err(Error::Config { ref key, .. }) if key == "fast"
        ));
    }
}
