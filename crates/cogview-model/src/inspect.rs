//! What a model path is, without loading its weights: the configuration, the files behind it, and
//! the checkpoint (header only), from which the exact parameter count follows.
//!
//! Only checkpoint headers (the pickle or safetensors index) are read, so this is instant even on
//! the official 6-billion-parameter folders; `cogview generate --dry-run`, `cogview info` and every
//! backend's loader use it.

use crate::coglm::CoglmConfig;
use crate::sr::SrConfig;
use crate::vq::VqConfig;
use cogview_checkpoint::{Checkpoint, ModelConfig, SatFolder};
use cogview_core::{Error, Result};
use std::path::{Path, PathBuf};

/// The files a model path stands for: a SAT folder's `model_config.json` and weights file, or a
/// weights file and the configuration beside it.
fn model_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_dir() {
        let sat = SatFolder::open(path)?;
        return Ok(vec![sat.config_file, sat.model_file]);
    }
    let mut files = vec![path.to_path_buf()];
    let beside = path
        .parent()
        .unwrap_or(Path::new("."))
        .join("model_config.json");
    if beside.is_file() {
        files.push(beside);
    }
    Ok(files)
}

/// The `model_config.json` of a model path (a SAT folder, or a weights file with the configuration
/// in its metadata or beside it), for keys beyond the backend's own.
pub fn model_config(path: impl AsRef<Path>) -> Result<ModelConfig> {
    Ok(open_model(path.as_ref())?.1)
}

/// CogLM's configuration and files.
pub fn coglm_config(path: impl AsRef<Path>) -> Result<(CoglmConfig, Vec<PathBuf>)> {
    let path = path.as_ref();
    let (ckpt, cfg) = open_model(path)?;
    let rows = ckpt
        .info("transformer.position_embeddings.weight")
        .map(|i| i.shape[0]);
    Ok((
        CoglmConfig::from_model_config(&cfg, rows)?,
        model_files(path)?,
    ))
}

/// A DSR or ItersR model's configuration and files.
pub fn sr_config(path: impl AsRef<Path>) -> Result<(SrConfig, Vec<PathBuf>)> {
    let path = path.as_ref();
    let (ckpt, cfg) = open_model(path)?;
    Ok((
        SrConfig::from_model_config(&cfg, &ckpt)?,
        model_files(path)?,
    ))
}

/// The image tokenizer's configuration and files.
pub fn vq_config(path: impl AsRef<Path>) -> Result<(VqConfig, Vec<PathBuf>)> {
    let (_, cfg, files) = open_vq(path.as_ref())?;
    Ok((cfg, files))
}

/// The checkpoint behind a model path (header only), for describing what it stores.
pub fn open_checkpoint(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    if path.is_dir() {
        if path.join("latest").is_file() {
            return Ok(open_model(path)?.0);
        }
        return Ok(open_vq(path)?.0);
    }
    Checkpoint::open(path, None)
}

/// Opens a model: a SAT folder, or a weights file whose configuration is in its safetensors
/// metadata (`model_config`) or in a `model_config.json` beside it.
pub fn open_model(path: &Path) -> Result<(Checkpoint, ModelConfig)> {
    if path.is_dir() {
        let sat = SatFolder::open(path)?;
        let cfg = sat.config()?;
        return Ok((Checkpoint::open(&sat.model_file, None)?, cfg));
    }
    let ckpt = Checkpoint::open(path, None)?;
    let cfg = match ckpt.metadata().get("model_config") {
        Some(text) => ModelConfig::parse(text, path)?,
        None => {
            let beside = path
                .parent()
                .unwrap_or(Path::new("."))
                .join("model_config.json");
            if !beside.is_file() {
                return Err(Error::config(
                    path.display().to_string(),
                    "model_config.json",
                    format!(
                        "no model configuration: the file has no `model_config` metadata and {} is missing",
                        beside.display()
                    ),
                ));
            }
            ModelConfig::read(beside)?
        }
    };
    Ok((ckpt, cfg))
}

/// Opens `ice_image.pt`, a safetensors file, or a folder holding one of them (`ice_image.pt` or
/// `ice_image.safetensors`), and reads its sizes: the safetensors metadata key `vq_config`, else a
/// `vq_config.json` beside the weights, else the official sizes. Returns the checkpoint (header
/// only; no weights are read), the configuration and the files it came from.
pub fn open_vq(path: &Path) -> Result<(Checkpoint, VqConfig, Vec<PathBuf>)> {
    let file = if path.is_dir() {
        ["ice_image.pt", "ice_image.safetensors"]
            .iter()
            .map(|n| path.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::checkpoint(
                    path,
                    "the folder has no ice_image.pt or ice_image.safetensors",
                )
            })?
    } else {
        path.to_path_buf()
    };
    let ckpt = Checkpoint::open(&file, None)?;
    let mut files = vec![file.clone()];
    let config = match ckpt.metadata().get("vq_config") {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::config(file.display().to_string(), "vq_config", e.to_string()))?,
        None => {
            let beside = file
                .parent()
                .unwrap_or(Path::new("."))
                .join("vq_config.json");
            if beside.is_file() {
                let text = std::fs::read_to_string(&beside).map_err(|e| Error::io(&beside, e))?;
                files.push(beside.clone());
                serde_json::from_str(&text).map_err(|e| {
                    Error::config(
                        beside.display().to_string(),
                        "(file)",
                        format!("invalid VQ configuration: {e}"),
                    )
                })?
            } else {
                VqConfig::default()
            }
        }
    };
    Ok((ckpt, config, files))
}
