//! SwissArmyTransformer checkpoint folders: `latest`, `model_config.json`, `<iter>/mp_rank_00_model_states.pt`.

use cogview_core::{Error, Result};
use std::path::{Path, PathBuf};

/// The `model_config.json` of a SAT folder: the arguments SAT saved, kept as JSON so that each model
/// reads the keys it needs (SAT stores many unrelated training arguments too).
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The file it was read from (named in errors).
    pub path: PathBuf,
    /// Every key SAT saved.
    pub values: serde_json::Map<String, serde_json::Value>,
}

impl ModelConfig {
    /// Reads a `model_config.json`.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = cogview_core::limits::read_text(path)?;
        Self::parse(&text, path)
    }

    /// Parses the JSON text of a model configuration; `path` names its source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            Error::config(
                path.display().to_string(),
                "(file)",
                format!("not valid JSON: {e}"),
            )
        })?;
        match v {
            serde_json::Value::Object(values) => Ok(ModelConfig {
                path: path.to_path_buf(),
                values,
            }),
            _ => Err(Error::config(
                path.display().to_string(),
                "(file)",
                "expected a JSON object",
            )),
        }
    }

    fn err(&self, key: &str, reason: impl Into<String>) -> Error {
        Error::config(self.path.display().to_string(), key, reason)
    }

    /// A required positive integer.
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?
            .ok_or_else(|| self.err(key, "missing; SAT writes it for every model"))
    }

    /// An optional positive integer (`null` counts as absent).
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.values.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(n as usize)),
                _ => Err(self.err(key, format!("expected a positive integer, found {v}"))),
            },
        }
    }

    /// An optional number (`null` counts as absent).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.values.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected a number, found {v}"))),
        }
    }

    /// An optional string (`null` counts as absent).
    pub fn opt_str(&self, key: &str) -> Result<Option<&str>> {
        match self.values.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(key, format!("expected a string, found {v}"))),
        }
    }
}

/// A SAT checkpoint folder, resolved to its files.
#[derive(Debug, Clone)]
pub struct SatFolder {
    /// The folder.
    pub dir: PathBuf,
    /// The content of `latest` (an iteration number or `release`).
    pub iteration: String,
    /// `<iter>/mp_rank_00_model_states.pt`: the weights.
    pub model_file: PathBuf,
    /// `model_config.json`.
    pub config_file: PathBuf,
}

impl SatFolder {
    /// Resolves `dir/latest` → `dir/<iter>/mp_rank_00_model_states.pt`. Model-parallel checkpoints
    /// (several ranks) are refused with a clear message.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let latest = dir.join("latest");
        let iteration = std::fs::read_to_string(&latest)
            .map_err(|e| {
                Error::checkpoint(
                    &dir,
                    format!(
                        "not a SAT checkpoint folder: cannot read {} ({e})",
                        latest.display()
                    ),
                )
            })?
            .trim()
            .to_string();
        if iteration.is_empty() || iteration.contains(['/', '\\']) || iteration == ".." {
            return Err(Error::checkpoint(
                &latest,
                format!("'{iteration}' is not an iteration number"),
            ));
        }
        let iter_dir = dir.join(&iteration);
        let model_file = iter_dir.join("mp_rank_00_model_states.pt");
        if !model_file.is_file() {
            return Err(Error::checkpoint(
                &dir,
                format!(
                    "`latest` says iteration {iteration} but {} does not exist",
                    model_file.display()
                ),
            ));
        }
        if iter_dir.join("mp_rank_01_model_states.pt").exists() {
            return Err(Error::checkpoint(
                &dir,
                "this checkpoint is split over several model-parallel ranks; merge it to one rank first",
            ));
        }
        let config_file = dir.join("model_config.json");
        Ok(SatFolder {
            dir,
            iteration,
            model_file,
            config_file,
        })
    }

    /// Reads the folder's `model_config.json`, naming the folder when it is missing.
    pub fn config(&self) -> Result<ModelConfig> {
        if !self.config_file.is_file() {
            return Err(Error::config(
                self.dir.display().to_string(),
                "model_config.json",
                format!(
                    "{} is missing; SAT folders carry their model sizes in it",
                    self.config_file.display()
                ),
            ));
        }
        ModelConfig::read(&self.config_file)
    }
}
