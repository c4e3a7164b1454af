//! What every PNG cogview writes carries, so that the image can be explained and reproduced:
//! the prompt, style, seed, the full effective settings and the SHA-256 of every weight file.
//!
//! It is stored as JSON in the PNG text chunk `cogview` (iTXt, UTF-8), next to a plain `prompt`
//! chunk and `Software`. `cogview regenerate IMAGE.png` reads it back.

use crate::settings::Settings;
use cogview_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The PNG text key of the record.
pub const PNG_KEY: &str = "cogview";
/// The record's `format` field.
pub const FORMAT: &str = "cogview-image";
/// The record's `version` field this library writes.
pub const VERSION: u32 = 1;

/// One weight file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightFile {
    /// What the file is for: `coglm`, `dsr`, `itersr`, `image_tokenizer`, `text_tokenizer`,
    /// `cluster_labels`.
    pub role: String,
    /// The file (as configured).
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
}

/// How an image was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// `cogview generate`: all stages from the prompt.
    Generate {
        /// Whether the run stopped after stage 1.
        only_first_stage: bool,
        /// With `--rerank K`: the image was the best of K candidates by its inverse-prompt score
        /// (its own seed regenerates it alone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rerank: Option<RerankRecord>,
    },
    /// `cogview edit`: the input image regenerated inside a mask.
    Edit {
        /// SHA-256 of the input image file.
        image_sha256: String,
        /// The mask: `file <sha256>` of a mask image, and/or the rectangles given.
        mask: String,
    },
    /// `cogview super-resolve`: stages 2-3 from a given stage-1 grid.
    SuperResolve {
        /// The stage-1 grid given.
        low_res: cogview_core::TokenGrid,
    },
}

/// How a reranked image was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerankRecord {
    /// Candidates drawn.
    pub candidates: usize,
    /// Mean log-probability of the prompt given the image's stage-1 grid.
    pub score: f64,
}

/// The record of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRecord {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`] of the writer.
    pub version: u32,
    /// The cogview version that wrote it.
    pub cogview: String,
    /// The prompt as given.
    pub prompt: String,
    /// The query text after the style template.
    pub query: String,
    /// The image's own seed: `--seed` of a one-image run that reproduces it.
    pub seed: u64,
    /// Position in its run and the run's size (informational).
    pub index: usize,
    /// The run's size.
    pub of: usize,
    /// How it was made.
    pub origin: Origin,
    /// The effective settings of the pipeline.
    pub settings: Settings,
    /// Every weight file, with its digest.
    pub weights: Vec<WeightFile>,
}

impl ImageRecord {
    /// The PNG text chunks of the record.
    pub fn png_text(&self) -> Vec<(String, String)> {
        vec![
            ("prompt".into(), self.prompt.clone()),
            (
                PNG_KEY.into(),
                serde_json::to_string(self).expect("records are serialisable"),
            ),
            ("Software".into(), format!("cogview {}", self.cogview)),
        ]
    }

    /// Reads the record from a PNG written by cogview.
    pub fn read_png(path: &Path) -> Result<Self> {
        let chunks = cogview_image::read_png_text(path)?;
        let text = chunks
            .iter()
            .find(|(k, _)| k == PNG_KEY)
            .map(|(_, v)| v)
            .ok_or_else(|| {
                Error::invalid_input(
                    "image",
                    format!(
                        "{} has no `{PNG_KEY}` text chunk: it was not written by cogview (or the chunk was stripped)",
                        path.display()
                    ),
                )
            })?;
        let record: ImageRecord = serde_json::from_str(text).map_err(|e| {
            Error::invalid_input(
                "image",
                format!(
                    "{}: the `{PNG_KEY}` record is malformed: {e}",
                    path.display()
                ),
            )
        })?;
        if record.format != FORMAT || record.version != VERSION {
            return Err(Error::invalid_input(
                "image",
                format!(
                    "{}: record format {} version {} is not {FORMAT} version {VERSION}",
                    path.display(),
                    record.format,
                    record.version
                ),
            ));
        }
        Ok(record)
    }
}

/// Digests of the files by role.
pub fn weight_records(files: &[(String, PathBuf)]) -> Result<Vec<WeightFile>> {
    let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
    let digests = crate::hashing::sha256_files(&paths)?;
    files
        .iter()
        .zip(digests)
        .map(|((role, path), sha256)| {
            Ok(WeightFile {
                role: role.clone(),
                path: path.clone(),
                bytes: std::fs::metadata(path)
                    .map_err(|e| Error::io(path, e))?
                    .len(),
                sha256,
            })
        })
        .collect()
}

impl ImageRecord {
    /// The record of image `index` (seed `seed`) of a run of `of` images of `pipeline` for
    /// `prompt`: its settings, the style's query text and the given weight digests. This is what
    /// `cogview generate` and `cogview serve` write into each PNG.
    pub fn for_image(
        pipeline: &crate::Pipeline,
        prompt: &str,
        (seed, index, of): (u64, usize, usize),
        origin: Origin,
        weights: &[WeightFile],
    ) -> Result<Self> {
        let settings = pipeline
            .settings()
            .cloned()
            .ok_or_else(|| Error::backend("the pipeline has no recorded settings"))?;
        Ok(ImageRecord {
            format: FORMAT.into(),
            version: VERSION,
            cogview: env!("CARGO_PKG_VERSION").into(),
            prompt: prompt.into(),
            query: pipeline.style().query_text(prompt),
            seed,
            index,
            of,
            origin,
            settings,
            weights: weights.to_vec(),
        })
    }
}
