//! The pipeline's TOML file: which weights each stage loads, on which backend, device and dtype,
//! and how each stage samples. Every key is optional; the defaults are the official CogView2
//! recipe for the chosen style.
//!
//! ```toml
//! model_dir = "/models/cogview2"    # the official download; stage paths default into it
//! style = "mainbody"                # none, mainbody, photo, flat, comics, oil, sketch, ...
//! low_memory = false                # keep only the running stage's weights loaded
//!
//! [coglm]
//! dtype = "bf16"
//! temperature = 1.15                # default: the style's
//! top_k_clusters = 16
//! batch_size = 8
//!
//! [dsr]
//! top_k_clusters = 100              # flat and comics: 5
//! inner_temperature = 0.89          # flat and comics: 0.4
//!
//! [itersr]
//! top_k = [40, 40, 40, 20, 20, 10]
//! ```
//!
//! Unknown keys and values of the wrong type are errors that name the key and the line.
//! Relative paths are relative to the file's folder; stage paths are relative to `model_dir`.

use cogview_core::stage1::Style;
use cogview_core::{DType, Device, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How a stage's token sampler works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SamplerKind {
    /// CogView2's cluster sampling with `cluster_label.npy`.
    #[default]
    Cluster,
    /// Plain temperature + top-k.
    TopK,
}

/// Where and how a stage's model runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// `"candle"`, the built-in backend, or a plugin's name.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// `cpu`, `cuda` or `cuda:N`.
    #[serde(default)]
    pub device: Device,
    /// The compute dtype (weights); CPU activations stay f32.
    #[serde(default)]
    pub dtype: DType,
}

fn default_backend() -> String {
    "candle".into()
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            backend: default_backend(),
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}

/// `[text_tokenizer]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextTokenizerConfig {
    /// `ice_text.model` (default: `<model_dir>/ice_text.model`).
    pub path: Option<PathBuf>,
    /// The model's closed vocabulary, if it declares one (a [`crate::Vocabulary`] file, resolved
    /// like `path`): prompts with other words get a warning. None by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<PathBuf>,
}

/// `[image_tokenizer]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageTokenizerConfig {
    /// `ice_image.pt` or a safetensors copy (default: `<model_dir>/ice_image.pt`).
    pub path: Option<PathBuf>,
    /// `"candle"` (built in) or the name of a plugin found in the plugin folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// A plugin library to load this stage's backend from (instead of searching by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PathBuf>,
    /// Backend-specific options, handed to the backend as TOML text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<toml::Table>,
    /// Where it runs (default: `[defaults]`, else the CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// The compute dtype (default: `[defaults]`, else f32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<DType>,
}

/// `[coglm]`: stage 1.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoglmStageConfig {
    /// The CogLM checkpoint (default: `<model_dir>/coglm`).
    pub path: Option<PathBuf>,
    /// `"candle"` (built in) or the name of a plugin found in the plugin folders (`"tch"`).
    pub backend: Option<String>,
    /// A plugin library to load this stage's backend from (instead of searching by name).
    pub plugin: Option<PathBuf>,
    /// Backend-specific options, handed to the backend as TOML text.
    pub options: Option<toml::Table>,
    /// Where it runs (default: `[defaults]`, else the CPU).
    pub device: Option<Device>,
    /// The compute dtype (default: `[defaults]`, else f32).
    pub dtype: Option<DType>,
    /// Cluster sampling (official) or plain top-k.
    pub sampler: Option<SamplerKind>,
    /// Temperature over the image vocabulary (official: 1.15; 1.1 for flat, comics, sketch and
    /// isometric; 1.12 for chinese).
    pub temperature: Option<f32>,
    /// Clusters kept by cluster sampling (official 16).
    pub top_k_clusters: Option<usize>,
    /// Temperature inside the chosen cluster, relative to `temperature` (official 1.0).
    pub inner_temperature: Option<f32>,
    /// Tokens kept by the top-k sampler.
    pub top_k: Option<usize>,
    /// Added to attention scores on text keys (official 1.4).
    pub text_bias: Option<f32>,
    /// Images decoded together (official 8).
    pub batch_size: Option<usize>,
    /// One cluster id per image code (default: `<model_dir>/cluster_label.npy`, else the official
    /// table built into cogview).
    pub cluster_labels: Option<PathBuf>,
    /// The token before a caption when scoring (`--rerank`) or writing one (`cogview caption`):
    /// official `"<start_of_chinese>"` (what CogView2's inverse prompt uses for every language).
    pub caption_start: Option<String>,
    /// The token that ends a written caption, if the model learnt one (the default model:
    /// `"<start_of_image>"`); without it a caption runs to its maximum length.
    pub caption_end: Option<String>,
    /// Stage-1 candidates drawn per image: each image is the candidate under which CogLM finds
    /// the prompt most likely (inverse prompting, the same score as `generate --rerank`), and only
    /// it is super-resolved. 1 (the default, and CogView2's): no reranking.
    pub rerank: Option<usize>,
    /// Classifier-free guidance scale: each image token is drawn from the unconditional logits
    /// plus this times (conditional − unconditional). 1 (the default, and CogView2's): none;
    /// above 1 stage 1 runs the model twice per token. Needs a CogLM trained with some captions
    /// dropped (the default model is).
    pub guidance: Option<f32>,
}

/// `[dsr]`: stage 2, direct super-resolution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsrStageConfig {
    /// The DSR checkpoint (default: `<model_dir>/cogview2-dsr`).
    pub path: Option<PathBuf>,
    /// `"candle"` (built in) or the name of a plugin found in the plugin folders (`"tch"`).
    pub backend: Option<String>,
    /// A plugin library to load this stage's backend from (instead of searching by name).
    pub plugin: Option<PathBuf>,
    /// Backend-specific options, handed to the backend as TOML text.
    pub options: Option<toml::Table>,
    /// Where it runs (default: `[defaults]`, else the CPU).
    pub device: Option<Device>,
    /// The compute dtype (default: `[defaults]`, else f32).
    pub dtype: Option<DType>,
    /// Temperature (official 1.0: the recipe's `temp_all_dsr` 1.5 is never used).
    pub temperature: Option<f32>,
    /// Clusters kept (official 100; flat and comics 5).
    pub top_k_clusters: Option<usize>,
    /// Temperature inside the chosen cluster (official 0.89; flat and comics 0.4).
    pub inner_temperature: Option<f32>,
}

/// `[itersr]`: stage 3, iterative super-resolution (LoPAR).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItersrStageConfig {
    /// The ItersR checkpoint (default: `<model_dir>/cogview2-itersr`).
    pub path: Option<PathBuf>,
    /// `"candle"` (built in) or the name of a plugin found in the plugin folders (`"tch"`).
    pub backend: Option<String>,
    /// A plugin library to load this stage's backend from (instead of searching by name).
    pub plugin: Option<PathBuf>,
    /// Backend-specific options, handed to the backend as TOML text.
    pub options: Option<toml::Table>,
    /// Where it runs (default: `[defaults]`, else the CPU).
    pub device: Option<Device>,
    /// The compute dtype (default: `[defaults]`, else f32).
    pub dtype: Option<DType>,
    /// Temperature (official 1.0: the recipe's `temp_all_itersr` is never used).
    pub temperature: Option<f32>,
    /// Top-k of each LoPAR iteration; its length is the number of iterations (official
    /// [40, 40, 40, 20, 20, 10]; `[]`: none, DSR's grid is final).
    pub top_k: Option<Vec<usize>>,
}

/// A whole pipeline file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// A folder laid out as the official download: `coglm/`, `cogview2-dsr/`,
    /// `cogview2-itersr/`, `ice_image.pt`, `ice_text.model`, `cluster_label.npy`.
    pub model_dir: Option<PathBuf>,
    /// The official style presets: the prompt template and the sampling values.
    pub style: Option<Style>,
    /// Keep only the running stage's weights in memory (the official pipeline keeps all three).
    pub low_memory: Option<bool>,
    /// The default for every stage's `backend`, `device` and `dtype`.
    #[serde(default)]
    pub defaults: DefaultsConfig,
    /// `[text_tokenizer]`.
    #[serde(default)]
    pub text_tokenizer: TextTokenizerConfig,
    /// `[image_tokenizer]`.
    #[serde(default)]
    pub image_tokenizer: ImageTokenizerConfig,
    /// `[coglm]`: stage 1.
    #[serde(default)]
    pub coglm: CoglmStageConfig,
    /// `[dsr]`: stage 2.
    #[serde(default)]
    pub dsr: DsrStageConfig,
    /// `[itersr]`: stage 3.
    #[serde(default)]
    pub itersr: ItersrStageConfig,
    /// The folder of the file the configuration was read from (not a key).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// `[defaults]`: placement shared by every stage unless a stage sets its own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsConfig {
    /// The backend of every stage that names none.
    pub backend: Option<String>,
    /// The plugin library of every stage that names none.
    pub plugin: Option<PathBuf>,
    /// The device of every stage that names none.
    pub device: Option<Device>,
    /// The dtype of every stage that names none.
    pub dtype: Option<DType>,
}

/// The keys of a pipeline file that hold file paths.
const PATH_KEYS: [&str; 4] = ["model_dir", "path", "cluster_labels", "vocabulary"];

/// Makes the relative file paths of a parsed pipeline file absolute against `dir`.
fn absolutize_paths(table: &mut toml::Table, dir: &Path) {
    for (key, value) in table.iter_mut() {
        match value {
            toml::Value::Table(t) => absolutize_paths(t, dir),
            toml::Value::String(s)
                if PATH_KEYS.contains(&key.as_str()) && Path::new(s.as_str()).is_relative() =>
            {
                *s = dir.join(s.as_str()).to_string_lossy().into_owned();
            }
            _ => {}
        }
    }
}

/// `over`'s keys replace `base`'s; tables present in both are merged recursively.
fn merge_tables(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl PipelineConfig {
    /// Parses TOML text. `source` names the text in errors (a file name). Errors name the key
    /// (`coglm.temperature`) and the line.
    pub fn from_toml(text: &str, source: &str) -> Result<Self> {
        let de = toml::Deserializer::parse(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!("line {}: ", line_col(text, s.start).0))
                .unwrap_or_default();
            Error::config(source, "(syntax)", format!("{line}{}", e.message().trim()))
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let at = inner
                .span()
                .map(|s| {
                    let (l, c) = line_col(text, s.start);
                    format!("line {l}, column {c}: ")
                })
                .unwrap_or_default();
            let key = if path == "." || path.is_empty() {
                "(top level)".to_string()
            } else {
                path
            };
            Error::config(source, key, format!("{at}{}", inner.message().trim()))
        })
    }

    /// Reads a TOML file; relative paths in it are made relative to the file's folder.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = cogview_core::limits::read_text(path)?;
        let mut cfg = Self::from_toml(&text, &path.display().to_string())?;
        cfg.base_dir = Some(path.parent().unwrap_or(Path::new(".")).to_path_buf());
        Ok(cfg)
    }

    /// Reads the pipeline file `path` layered over the pipeline file `base`: every key `path`
    /// sets wins, every key it leaves out comes from `base` (tables are merged key by key).
    /// Relative file paths of `base` (`model_dir`, each stage's `path`, `cluster_labels`) are
    /// resolved against `base`'s folder, those of `path` against its own.
    ///
    /// The command and the C API use it for a pipeline file that names no model: its settings
    /// are applied to the embedded default model.
    pub fn from_file_over(path: impl AsRef<Path>, base: impl AsRef<Path>) -> Result<Self> {
        let (path, base) = (path.as_ref(), base.as_ref());
        // Parse each alone first, so that an error names its own file and line.
        Self::from_file(base)?;
        let mut cfg_user = Self::from_file(path)?;
        let read = |p: &Path| -> Result<toml::Table> {
            let text = cogview_core::limits::read_text(p)?;
            text.parse::<toml::Table>()
                .map_err(|e| Error::config(p.display().to_string(), "(syntax)", e.to_string()))
        };
        let mut merged = read(base)?;
        let base_dir = base.parent().unwrap_or(Path::new("."));
        absolutize_paths(&mut merged, base_dir);
        merge_tables(&mut merged, read(path)?);
        let text = toml::to_string(&merged)
            .map_err(|e| Error::config(path.display().to_string(), "(top level)", e.to_string()))?;
        let mut cfg = Self::from_toml(&text, &path.display().to_string())?;
        cfg.base_dir = cfg_user.base_dir.take();
        Ok(cfg)
    }

    /// Writes the configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a pipeline configuration is always serialisable")
    }

    /// Where relative paths start: `model_dir` is relative to it, and so are stage paths when
    /// there is no `model_dir` (they are relative to `model_dir` otherwise).
    pub fn base_dir(&self) -> &Path {
        self.base_dir.as_deref().unwrap_or(Path::new("."))
    }

    /// The style (default: `mainbody`).
    pub fn style(&self) -> Style {
        self.style.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_official_recipe() {
        let c = PipelineConfig::from_toml("", "t").unwrap();
        assert_eq!(c, PipelineConfig::default());
        assert_eq!(c.style(), Style::Mainbody);
    }

    #[test]
    fn every_key_parses() {
        let c = PipelineConfig::from_toml(
            r#"
model_dir = "m"
style = "flat"
low_memory = true
[defaults]
dtype = "bf16"
device = "cpu"
backend = "candle"
[text_tokenizer]
path = "t.model"
vocabulary = "v.txt"
[image_tokenizer]
path = "i.pt"
dtype = "f32"
[coglm]
sampler = "top-k"
temperature = 1.0
top_k_clusters = 8
inner_temperature = 0.5
top_k = 30
text_bias = 1.0
batch_size = 2
cluster_labels = "c.npy"
device = "cuda:1"
[dsr]
temperature = 1.0
top_k_clusters = 5
inner_temperature = 0.4
[itersr]
temperature = 0.9
top_k = [1, 2, 3]
"#,
            "t",
        )
        .unwrap();
        assert_eq!(c.style(), Style::Flat);
        assert_eq!(c.coglm.sampler, Some(SamplerKind::TopK));
        assert_eq!(c.coglm.device, Some(Device::Cuda(1)));
        assert_eq!(c.defaults.dtype, Some(DType::Bf16));
        assert_eq!(c.itersr.top_k, Some(vec![1, 2, 3]));
        assert_eq!(c.text_tokenizer.vocabulary, Some(PathBuf::from("v.txt")));
        // It round-trips through TOML.
        assert_eq!(PipelineConfig::from_toml(&c.to_toml(), "t").unwrap(), c);
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_line() {
        let e =
            PipelineConfig::from_toml("style = \"flat\"\n[coglm]\ntemprature = 1.0\n", "p.toml")
                .unwrap_err()
                .to_string();
        assert!(e.contains("p.toml"), "{e}");
        assert!(e.contains("temprature"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        let e = PipelineConfig::from_toml("colour = 1\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour") && e.contains("line 1"), "{e}");
    }

    #[test]
    fn wrong_types_name_the_key_and_the_line() {
        let e = PipelineConfig::from_toml("\n\n[dsr]\ntop_k_clusters = \"many\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dsr.top_k_clusters"), "{e}");
        assert!(e.contains("line 4"), "{e}");
        let e = PipelineConfig::from_toml("[coglm]\ndevice = \"gpu\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("coglm.device") && e.contains("line 2"), "{e}");
        assert!(e.contains("cuda:N"), "{e}");
        let e = PipelineConfig::from_toml("style = \"cubist\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("style") && e.contains("line 1"), "{e}");
        let e = PipelineConfig::from_toml("[itersr]\ntop_k = [1, -2]\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("itersr.top_k"), "{e}");
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let e = PipelineConfig::from_toml("a = 1\n[coglm\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn a_file_records_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.toml");
        std::fs::write(&p, "[coglm]\npath = \"w/coglm\"\n").unwrap();
        let c = PipelineConfig::from_file(&p).unwrap();
        assert_eq!(c.base_dir(), dir.path());
        assert_eq!(c.coglm.path.as_deref(), Some(Path::new("w/coglm")));
    }
}
