//! The effective settings of a pipeline: every path resolved and every sampling value concrete.
//! They are what a run records in its PNGs and what `cogview regenerate` rebuilds the pipeline from.

use crate::config::{PipelineConfig, SamplerKind};
use cogview_core::lopar::OFFICIAL_TOP_K;
use cogview_core::stage1::Style;
use cogview_core::{DType, Device, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One part of the official download: its file name and what it is, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// The file or folder name in the official download.
    pub name: &'static str,
    /// What it is.
    pub what: &'static str,
}

/// The CogLM checkpoint folder.
pub const COGLM: Part = Part {
    name: "coglm",
    what: "the CogLM checkpoint (stage 1: text to 20x20 tokens), a SAT folder with `latest`",
};
/// The DSR checkpoint folder.
pub const DSR: Part = Part {
    name: "cogview2-dsr",
    what: "the direct super-resolution checkpoint (stage 2: 20x20 to 60x60 tokens), a SAT folder",
};
/// The ItersR checkpoint folder.
pub const ITERSR: Part = Part {
    name: "cogview2-itersr",
    what: "the iterative super-resolution checkpoint (stage 3: LoPAR refinement), a SAT folder",
};
/// icetk's image tokenizer.
pub const IMAGE_TOKENIZER: Part = Part {
    name: "ice_image.pt",
    what: "icetk's image tokenizer (the VQ-VAE that turns tokens into pixels)",
};
/// icetk's text tokenizer.
pub const TEXT_TOKENIZER: Part = Part {
    name: "ice_text.model",
    what: "icetk's text tokenizer (a SentencePiece model)",
};

/// The model's closed vocabulary (optional, only where the configuration names it).
pub const VOCABULARY: Part = Part {
    name: "vocabulary.txt",
    what: "the model's closed vocabulary (one known word per line)",
};

/// The cluster table.
pub const CLUSTER_LABELS: Part = Part {
    name: "cluster_label.npy",
    what: "the cluster table of CogView2's cluster sampling",
};

/// Backend, device and dtype of one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagePlacement {
    /// The checkpoint.
    pub path: PathBuf,
    /// `"candle"` (built in), a plugin's name, or `"plugin"` when `plugin` names the library.
    pub backend: String,
    /// Where it runs.
    pub device: Device,
    /// The compute dtype.
    pub dtype: DType,
    /// The plugin library the backend comes from, when the configuration names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PathBuf>,
    /// The stage's backend options as TOML text (empty: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
}

/// Stage 1 (CogLM), resolved: every value concrete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoglmSettings {
    /// The checkpoint and where it runs.
    #[serde(flatten)]
    pub placement: StagePlacement,
    /// Cluster sampling or top-k.
    pub sampler: SamplerKind,
    /// Temperature over the image vocabulary.
    pub temperature: f32,
    /// Clusters kept by cluster sampling.
    pub top_k_clusters: usize,
    /// Temperature inside the chosen cluster.
    pub inner_temperature: f32,
    /// Tokens kept by the top-k sampler.
    pub top_k: usize,
    /// Added to attention scores on text keys.
    pub text_bias: f32,
    /// Images drawn together.
    pub batch_size: usize,
    /// `None`: the official table built into cogview.
    pub cluster_labels: Option<PathBuf>,
    /// The token (a piece of the text tokenizer) before a caption.
    pub caption_start: String,
    /// The token that ends a written caption, if any.
    pub caption_end: Option<String>,
    /// Stage-1 candidates per image, the best kept by the inverse-prompt score (1: none).
    #[serde(default = "one_candidate")]
    pub rerank: usize,
    /// Classifier-free guidance scale (1: none).
    #[serde(default = "no_guidance")]
    pub guidance: f32,
}

fn one_candidate() -> usize {
    1
}

fn no_guidance() -> f32 {
    1.0
}

/// The largest classifier-free guidance scale `coglm.guidance` accepts.
pub const MAX_GUIDANCE: f32 = 20.0;

/// What is wrong with `g` as a classifier-free guidance scale (1 to [`MAX_GUIDANCE`]), if anything.
pub fn guidance_problem(g: f32) -> Option<String> {
    (!(g.is_finite() && (1.0..=MAX_GUIDANCE).contains(&g))).then(|| {
        format!("{g} is not a guidance scale: give 1 (none, CogView2's) to {MAX_GUIDANCE}")
    })
}

/// The most stage-1 candidates per image `coglm.rerank` may ask for.
pub const MAX_RERANK: usize = 64;

/// Refuses a number of stage-1 candidates per image outside 1..=[`MAX_RERANK`].
pub(crate) fn check_rerank(k: usize) -> Result<usize> {
    if k == 0 || k > MAX_RERANK {
        return Err(Error::config(
            "pipeline",
            "coglm.rerank",
            format!("{k} stage-1 candidates per image: give 1 (no reranking) to {MAX_RERANK}"),
        ));
    }
    Ok(k)
}

/// Stage 2 (DSR), resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DsrSettings {
    /// The checkpoint and where it runs.
    #[serde(flatten)]
    pub placement: StagePlacement,
    /// Temperature.
    pub temperature: f32,
    /// Clusters kept.
    pub top_k_clusters: usize,
    /// Temperature inside the chosen cluster.
    pub inner_temperature: f32,
}

/// Stage 3 (ItersR), resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItersrSettings {
    /// The checkpoint and where it runs.
    #[serde(flatten)]
    pub placement: StagePlacement,
    /// Temperature.
    pub temperature: f32,
    /// Top-k of each LoPAR iteration.
    pub top_k: Vec<usize>,
}

/// Everything a pipeline was built from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The prompt template.
    pub style: Style,
    /// Whether only the running stage's weights are kept in memory.
    pub low_memory: bool,
    /// `ice_text.model`.
    pub text_tokenizer: PathBuf,
    /// The model's closed vocabulary, when its pipeline file declares one (`[text_tokenizer]
    /// vocabulary`): prompts with other words get a warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocabulary: Option<PathBuf>,
    /// The image tokenizer and where it runs.
    pub image_tokenizer: StagePlacement,
    /// Stage 1.
    pub coglm: CoglmSettings,
    /// `None` when the pipeline stops after stage 1.
    pub dsr: Option<DsrSettings>,
    /// `None` when the pipeline stops after stage 1 (with `dsr`).
    pub itersr: Option<ItersrSettings>,
}

impl Settings {
    /// The same settings in another style: the prompt template changes, and so do the sampling
    /// values these settings took from their style's official recipe (stage 1's temperature,
    /// DSR's top clusters and inner temperature). A value that differs from its style's recipe
    /// was set in the pipeline file and is kept.
    pub fn with_style(&self, style: Style) -> Settings {
        let mut s = self.clone();
        s.style = style;
        if self.coglm.temperature == self.style.stage1_temperature() {
            s.coglm.temperature = style.stage1_temperature();
        }
        if let Some(d) = &mut s.dsr {
            let (k, inner) = dsr_recipe(self.style);
            let (new_k, new_inner) = dsr_recipe(style);
            if d.top_k_clusters == k {
                d.top_k_clusters = new_k;
            }
            if d.inner_temperature == inner {
                d.inner_temperature = new_inner;
            }
        }
        s
    }
}

/// The official DSR cluster sampling of a style: (top clusters, inner temperature).
pub fn dsr_recipe(style: Style) -> (usize, f32) {
    match style {
        Style::Flat | Style::Comics => (5, 0.4),
        _ => (100, 0.89),
    }
}

/// A stage's backend keys, as written in the configuration.
struct StageBackend<'a> {
    backend: &'a Option<String>,
    plugin: &'a Option<PathBuf>,
    options: &'a Option<toml::Table>,
    device: Option<Device>,
    dtype: Option<DType>,
}

impl<'a> StageBackend<'a> {
    fn of(
        backend: &'a Option<String>,
        plugin: &'a Option<PathBuf>,
        options: &'a Option<toml::Table>,
        device: &Option<Device>,
        dtype: &Option<DType>,
    ) -> Self {
        StageBackend {
            backend,
            plugin,
            options,
            device: *device,
            dtype: *dtype,
        }
    }
}

fn options_table(text: &str) -> Option<toml::Table> {
    if text.is_empty() {
        None
    } else {
        text.parse::<toml::Table>().ok()
    }
}

fn missing(dir: &Path, part: Part) -> Error {
    Error::config(
        dir.display().to_string(),
        part.name,
        format!(
            "{} is missing: it should hold {}. The folder must be laid out as the official \
             download (coglm/, cogview2-dsr/, cogview2-itersr/, ice_image.pt, ice_text.model)",
            dir.join(part.name).display(),
            part.what
        ),
    )
}

fn no_path(part: Part, section: &str) -> Error {
    Error::config(
        "pipeline",
        format!("{section}.path"),
        format!(
            "no weights for {}: set `model_dir` (--model-dir) or `[{section}] path`",
            part.what
        ),
    )
}

impl Settings {
    /// Calls `f` on every file or folder path the settings hold, with the role of the weights
    /// it names (`text_tokenizer`, `vocabulary`, `image_tokenizer`, `coglm`, `cluster_labels`,
    /// `dsr`, `itersr`, `plugin`), so that a record can leave out where they are and a reader can
    /// put them back.
    pub fn for_each_path(&mut self, mut f: impl FnMut(&str, &mut PathBuf)) {
        f("text_tokenizer", &mut self.text_tokenizer);
        if let Some(v) = &mut self.vocabulary {
            f("vocabulary", v);
        }
        let mut placement = |role: &str, p: &mut StagePlacement| {
            f(role, &mut p.path);
            if let Some(l) = &mut p.plugin {
                f("plugin", l);
            }
        };
        placement("image_tokenizer", &mut self.image_tokenizer);
        placement("coglm", &mut self.coglm.placement);
        if let Some(d) = &mut self.dsr {
            placement("dsr", &mut d.placement);
        }
        if let Some(i) = &mut self.itersr {
            placement("itersr", &mut i.placement);
        }
        if let Some(c) = &mut self.coglm.cluster_labels {
            f("cluster_labels", c);
        }
    }

    /// Resolves a configuration. `with_super_resolution: false` leaves out DSR and ItersR (for
    /// `--only-first-stage`), so their weights need not exist. Checks that every file it names
    /// exists, naming the missing one and what it is.
    pub fn resolve(cfg: &PipelineConfig, with_super_resolution: bool) -> Result<Settings> {
        let style = cfg.style();
        let base = cfg.base_dir();
        let model_dir = cfg.model_dir.as_ref().map(|d| base.join(d));
        let dir = model_dir.as_deref();
        if let Some(d) = dir {
            if !d.is_dir() {
                return Err(Error::config(
                    "pipeline",
                    "model_dir",
                    format!("{} is not a folder", d.display()),
                ));
            }
        }
        let locate = |p: &Option<PathBuf>, part: Part, section: &str| -> Result<PathBuf> {
            let path = match (p, dir) {
                (Some(p), Some(d)) => d.join(p),
                (Some(p), None) => base.join(p),
                (None, Some(d)) => d.join(part.name),
                (None, None) => return Err(no_path(part, section)),
            };
            if !path.exists() {
                return Err(match (p, dir) {
                    (None, Some(d)) => missing(d, part),
                    _ => Error::config(
                        "pipeline",
                        format!("{section}.path"),
                        format!(
                            "{} does not exist; it should be {}",
                            path.display(),
                            part.what
                        ),
                    ),
                });
            }
            Ok(std::path::absolute(&path).unwrap_or(path))
        };
        let d = &cfg.defaults;
        let place = |path: PathBuf, stage: StageBackend, section: &str| -> Result<StagePlacement> {
            let plugin = stage
                .plugin
                .clone()
                .or_else(|| d.plugin.clone())
                .map(|p| base.join(p));
            let backend = stage
                .backend
                .clone()
                .or_else(|| d.backend.clone())
                .unwrap_or_else(|| {
                    if plugin.is_some() {
                        "plugin".into()
                    } else {
                        "candle".into()
                    }
                });
            if backend.is_empty()
                || !backend
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(Error::config(
                    "pipeline",
                    format!("{section}.backend"),
                    format!("'{backend}' is not a backend name; use \"candle\" or a plugin's name such as \"tch\""),
                ));
            }
            if let Some(p) = &plugin {
                if !p.is_file() {
                    return Err(Error::config(
                        "pipeline",
                        format!("{section}.plugin"),
                        format!(
                            "{} is not a file; give the path of a plugin library",
                            p.display()
                        ),
                    ));
                }
            }
            let options = match stage.options {
                Some(t) if !t.is_empty() => toml::to_string(t).map_err(|e| {
                    Error::config("pipeline", format!("{section}.options"), e.to_string())
                })?,
                _ => String::new(),
            };
            Ok(StagePlacement {
                path,
                backend,
                device: stage.device.or(d.device).unwrap_or_default(),
                dtype: stage.dtype.or(d.dtype).unwrap_or_default(),
                plugin: plugin.map(|p| std::path::absolute(&p).unwrap_or(p)),
                options,
            })
        };

        let c = &cfg.coglm;
        let coglm_path = locate(&c.path, COGLM, "coglm")?;
        let cluster_labels = match (&c.cluster_labels, dir) {
            (Some(_), _) => Some(locate(&c.cluster_labels, CLUSTER_LABELS, "coglm")?),
            (None, Some(d)) if d.join(CLUSTER_LABELS.name).is_file() => Some(
                std::path::absolute(d.join(CLUSTER_LABELS.name))
                    .unwrap_or_else(|_| d.join(CLUSTER_LABELS.name)),
            ),
            _ => None,
        };
        let batch_size = c.batch_size.unwrap_or(8);
        if batch_size == 0 {
            return Err(Error::config(
                "pipeline",
                "coglm.batch_size",
                "must be at least 1",
            ));
        }
        let coglm = CoglmSettings {
            placement: place(
                coglm_path,
                StageBackend::of(&c.backend, &c.plugin, &c.options, &c.device, &c.dtype),
                "coglm",
            )?,
            sampler: c.sampler.unwrap_or_default(),
            temperature: c.temperature.unwrap_or(style.stage1_temperature()),
            top_k_clusters: c.top_k_clusters.unwrap_or(16),
            inner_temperature: c.inner_temperature.unwrap_or(1.0),
            top_k: c.top_k.unwrap_or(40),
            text_bias: c.text_bias.unwrap_or(1.4),
            batch_size,
            cluster_labels,
            caption_start: c
                .caption_start
                .clone()
                .unwrap_or_else(|| "<start_of_chinese>".into()),
            caption_end: c.caption_end.clone(),
            rerank: c.rerank.unwrap_or(1),
            guidance: c.guidance.unwrap_or(1.0),
        };
        let text_tokenizer = locate(&cfg.text_tokenizer.path, TEXT_TOKENIZER, "text_tokenizer")?;
        // Optional: only a file the configuration names.
        let vocabulary = match &cfg.text_tokenizer.vocabulary {
            Some(_) => Some(
                locate(&cfg.text_tokenizer.vocabulary, VOCABULARY, "text_tokenizer").map_err(
                    |e| match e {
                        Error::Config {
                            source_name,
                            reason,
                            ..
                        } => Error::Config {
                            source_name,
                            key: "text_tokenizer.vocabulary".into(),
                            reason,
                        },
                        e => e,
                    },
                )?,
            ),
            None => None,
        };
        let it = &cfg.image_tokenizer;
        let image_tokenizer = place(
            locate(&it.path, IMAGE_TOKENIZER, "image_tokenizer")?,
            StageBackend::of(&it.backend, &it.plugin, &it.options, &it.device, &it.dtype),
            "image_tokenizer",
        )?;
        let (dsr, itersr) = if with_super_resolution {
            let s = &cfg.dsr;
            let (k, inner) = dsr_recipe(style);
            let dsr = DsrSettings {
                placement: place(
                    locate(&s.path, DSR, "dsr")?,
                    StageBackend::of(&s.backend, &s.plugin, &s.options, &s.device, &s.dtype),
                    "dsr",
                )?,
                temperature: s.temperature.unwrap_or(1.0),
                top_k_clusters: s.top_k_clusters.unwrap_or(k),
                inner_temperature: s.inner_temperature.unwrap_or(inner),
            };
            let s = &cfg.itersr;
            let itersr = ItersrSettings {
                placement: place(
                    locate(&s.path, ITERSR, "itersr")?,
                    StageBackend::of(&s.backend, &s.plugin, &s.options, &s.device, &s.dtype),
                    "itersr",
                )?,
                temperature: s.temperature.unwrap_or(1.0),
                top_k: s.top_k.clone().unwrap_or_else(|| OFFICIAL_TOP_K.to_vec()),
            };
            if itersr.top_k.contains(&0) {
                return Err(Error::config(
                    "pipeline",
                    "itersr.top_k",
                    "needs a positive k for every LoPAR iteration (an empty list: no iteration, \
                     DSR's grid is final)",
                ));
            }
            (Some(dsr), Some(itersr))
        } else {
            (None, None)
        };
        let settings = Settings {
            style,
            low_memory: cfg.low_memory.unwrap_or(false),
            text_tokenizer,
            vocabulary,
            image_tokenizer,
            coglm,
            dsr,
            itersr,
        };
        settings.check_values()?;
        Ok(settings)
    }

    fn check_values(&self) -> Result<()> {
        let positive = |v: f32, key: &str| -> Result<()> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(
                    "pipeline",
                    key,
                    format!("{v} is not a positive temperature"),
                ))
            }
        };
        let c = &self.coglm;
        positive(c.temperature, "coglm.temperature")?;
        positive(c.inner_temperature, "coglm.inner_temperature")?;
        if !c.text_bias.is_finite() {
            return Err(Error::config(
                "pipeline",
                "coglm.text_bias",
                "must be finite",
            ));
        }
        if c.top_k_clusters == 0 || c.top_k == 0 {
            return Err(Error::config(
                "pipeline",
                "coglm.top_k_clusters",
                "top_k and top_k_clusters must be at least 1",
            ));
        }
        check_rerank(c.rerank)?;
        if let Some(problem) = guidance_problem(c.guidance) {
            return Err(Error::config("pipeline", "coglm.guidance", problem));
        }
        if let Some(d) = &self.dsr {
            positive(d.temperature, "dsr.temperature")?;
            positive(d.inner_temperature, "dsr.inner_temperature")?;
            if d.top_k_clusters == 0 {
                return Err(Error::config(
                    "pipeline",
                    "dsr.top_k_clusters",
                    "must be at least 1",
                ));
            }
        }
        if let Some(i) = &self.itersr {
            positive(i.temperature, "itersr.temperature")?;
        }
        Ok(())
    }

    /// Back to a configuration (for `--print-config` and to rebuild a recorded pipeline with
    /// changes).
    pub fn to_config(&self) -> PipelineConfig {
        let mut cfg = PipelineConfig {
            style: Some(self.style),
            low_memory: Some(self.low_memory),
            ..Default::default()
        };
        cfg.text_tokenizer.path = Some(self.text_tokenizer.clone());
        cfg.text_tokenizer.vocabulary = self.vocabulary.clone();
        let p = &self.image_tokenizer;
        cfg.image_tokenizer.path = Some(p.path.clone());
        cfg.image_tokenizer.backend = Some(p.backend.clone());
        cfg.image_tokenizer.plugin = p.plugin.clone();
        cfg.image_tokenizer.options = options_table(&p.options);
        cfg.image_tokenizer.device = Some(p.device);
        cfg.image_tokenizer.dtype = Some(p.dtype);
        let c = &self.coglm;
        cfg.coglm = crate::config::CoglmStageConfig {
            path: Some(c.placement.path.clone()),
            backend: Some(c.placement.backend.clone()),
            plugin: c.placement.plugin.clone(),
            options: options_table(&c.placement.options),
            device: Some(c.placement.device),
            dtype: Some(c.placement.dtype),
            sampler: Some(c.sampler),
            temperature: Some(c.temperature),
            top_k_clusters: Some(c.top_k_clusters),
            inner_temperature: Some(c.inner_temperature),
            top_k: Some(c.top_k),
            text_bias: Some(c.text_bias),
            batch_size: Some(c.batch_size),
            cluster_labels: c.cluster_labels.clone(),
            caption_start: Some(c.caption_start.clone()),
            caption_end: c.caption_end.clone(),
            rerank: Some(c.rerank),
            guidance: Some(c.guidance),
        };
        if let Some(d) = &self.dsr {
            cfg.dsr = crate::config::DsrStageConfig {
                path: Some(d.placement.path.clone()),
                backend: Some(d.placement.backend.clone()),
                plugin: d.placement.plugin.clone(),
                options: options_table(&d.placement.options),
                device: Some(d.placement.device),
                dtype: Some(d.placement.dtype),
                temperature: Some(d.temperature),
                top_k_clusters: Some(d.top_k_clusters),
                inner_temperature: Some(d.inner_temperature),
            };
        }
        if let Some(i) = &self.itersr {
            cfg.itersr = crate::config::ItersrStageConfig {
                path: Some(i.placement.path.clone()),
                backend: Some(i.placement.backend.clone()),
                plugin: i.placement.plugin.clone(),
                options: options_table(&i.placement.options),
                device: Some(i.placement.device),
                dtype: Some(i.placement.dtype),
                temperature: Some(i.temperature),
                top_k: Some(i.top_k.clone()),
            };
        }
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model folder of empty files (resolving only checks that they exist).
    fn folder(extra: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in ["coglm", "ice_text.model", "ice_image.pt"]
            .iter()
            .chain(extra)
        {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        dir
    }

    #[test]
    fn a_declared_vocabulary_is_resolved_like_the_other_files_and_optional() {
        let dir = folder(&["words.txt"]);
        let cfg = |vocabulary: Option<&str>| PipelineConfig {
            model_dir: Some(dir.path().to_path_buf()),
            text_tokenizer: crate::config::TextTokenizerConfig {
                path: None,
                vocabulary: vocabulary.map(PathBuf::from),
            },
            ..Default::default()
        };
        let s = Settings::resolve(&cfg(Some("words.txt")), false).unwrap();
        assert_eq!(s.vocabulary, Some(dir.path().join("words.txt")));
        // It survives the way back to a configuration and into a record.
        let again = Settings::resolve(&s.to_config(), false).unwrap();
        assert_eq!(again.vocabulary, s.vocabulary);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Settings>(&json).unwrap(), s);
        // None declared: none, and records without the key still read.
        let none = Settings::resolve(&cfg(None), false).unwrap();
        assert_eq!(none.vocabulary, None);
        let json = serde_json::to_string(&none).unwrap();
        assert!(!json.contains("vocabulary"), "{json}");
        // A declared file that is missing is an error naming the key.
        let e = Settings::resolve(&cfg(Some("missing.txt")), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("text_tokenizer.vocabulary") && e.contains("missing.txt"),
            "{e}"
        );
    }
}
