//! What every PNG cogview writes carries, so that the image can be explained and reproduced:
//! the prompt, style, seed, the full effective settings and the SHA-256 of every weight file.
//!
//! It is stored as JSON in the PNG text chunk `cogview` (iTXt, UTF-8), next to a plain `prompt`
//! chunk and `Software`. `cogview regenerate IMAGE.png` reads it back.
//!
//! Images get shared: by default a record names each weight file and folder by its file name
//! only, with its size and SHA-256 ([`ImageRecord::png_text`]), never where it lives (a home
//! folder, a user name); [`RecordOptions::full_paths`] keeps the paths for a user who wants them.
//! `cogview regenerate` finds the weights again by their digests ([`find_weights`]).

pub use crate::selection::RerankRecord;
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

/// How a record is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordOptions {
    /// Keep the full paths of the weights and settings files (default: file names only).
    pub full_paths: bool,
}

impl RecordOptions {
    /// Options that keep (`true`) or leave out (`false`, the default) full paths.
    pub fn with_full_paths(full_paths: bool) -> Self {
        RecordOptions { full_paths }
    }
}

/// The last component of `p` (the path itself when it has none).
fn file_name_only(p: &Path) -> PathBuf {
    p.file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| p.to_path_buf())
}

impl ImageRecord {
    /// The PNG text chunks of the record, paths reduced to file names
    /// ([`RecordOptions::default`]).
    pub fn png_text(&self) -> Vec<(String, String)> {
        self.png_text_with(RecordOptions::default())
    }

    /// The PNG text chunks of the record, written as `options` say.
    pub fn png_text_with(&self, options: RecordOptions) -> Vec<(String, String)> {
        let rec = if options.full_paths {
            self.clone()
        } else {
            self.without_paths()
        };
        vec![
            ("prompt".into(), rec.prompt.clone()),
            (
                PNG_KEY.into(),
                serde_json::to_string(&rec).expect("records are serialisable"),
            ),
            ("Software".into(), format!("cogview {}", rec.cogview)),
        ]
    }

    /// The record with every path (weights, settings, plugins) reduced to its file name.
    pub fn without_paths(&self) -> ImageRecord {
        let mut rec = self.clone();
        rec.settings.for_each_path(|_, p| *p = file_name_only(p));
        for w in &mut rec.weights {
            w.path = file_name_only(&w.path);
        }
        rec
    }

    /// Reads the record from a PNG written by cogview.
    pub fn read_png(path: &Path) -> Result<Self> {
        Self::from_png_chunks(cogview_image::read_png_text(path)?, path)
    }

    /// Reads the record from the bytes of a PNG written by cogview; `name` stands for its path in
    /// errors.
    pub fn from_png_bytes(bytes: &[u8], name: &Path) -> Result<Self> {
        Self::from_png_chunks(
            cogview_image::png_text_from_bytes(bytes, &name.display().to_string())?,
            name,
        )
    }

    fn from_png_chunks(chunks: Vec<(String, String)>, path: &Path) -> Result<Self> {
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

/// Puts the weights of a record back: every path of `settings` that does not exist as recorded
/// (a record without paths holds file names only) is looked for in `folders` (searched a few
/// levels deep): a file of the recorded size and SHA-256 for each weight file, and for a folder
/// (a SAT checkpoint) the folder of the recorded name that holds such a file. A vocabulary is
/// found by name; one not found is dropped (it only adds warnings). Returns the settings and
/// the roles it could not find.
pub fn find_weights(
    settings: &Settings,
    weights: &[WeightFile],
    folders: &[PathBuf],
) -> Result<(Settings, Vec<String>)> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    for f in folders {
        walk(f, 4, &mut candidates);
    }
    let mut by_digest: std::collections::HashMap<String, PathBuf> = Default::default();
    let wanted: Vec<&WeightFile> = weights.iter().collect();
    let sizes: std::collections::HashSet<u64> = wanted.iter().map(|w| w.bytes).collect();
    let sized: Vec<PathBuf> = candidates
        .iter()
        .filter(|p| {
            std::fs::metadata(p)
                .map(|m| sizes.contains(&m.len()))
                .unwrap_or(false)
        })
        .cloned()
        .collect();
    for (p, d) in sized.iter().zip(crate::hashing::sha256_files(&sized)?) {
        by_digest.entry(d).or_insert_with(|| p.clone());
    }
    let mut out = settings.clone();
    let mut missing = Vec::new();
    let mut drop_vocabulary = false;
    out.for_each_path(|role, path| {
        if path.exists() || role == "plugin" {
            return;
        }
        if role == "vocabulary" {
            match candidates
                .iter()
                .find(|c| c.file_name() == path.file_name())
            {
                Some(c) => *path = c.clone(),
                None => drop_vocabulary = true,
            }
            return;
        }
        let found = weights
            .iter()
            .filter(|w| w.role == role)
            .find_map(|w| by_digest.get(&w.sha256));
        let Some(file) = found else {
            missing.push(role.to_string());
            return;
        };
        // A folder (SAT checkpoint) is the ancestor of the file with the recorded name.
        *path = if file.file_name() == path.file_name() {
            file.clone()
        } else {
            file.ancestors()
                .skip(1)
                .find(|a| a.file_name() == path.file_name())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| file.clone())
        };
    });
    if drop_vocabulary {
        out.vocabulary = None;
    }
    Ok((out, missing))
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_file() => out.push(p),
            Ok(t) if t.is_dir() && depth > 0 => walk(&p, depth - 1, out),
            // Links are followed one level (a model folder linked into place).
            Ok(t) if t.is_symlink() => {
                if p.is_file() {
                    out.push(p)
                } else if p.is_dir() && depth > 0 {
                    walk(&p, depth - 1, out)
                }
            }
            _ => {}
        }
    }
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
        let mut settings = pipeline
            .settings()
            .cloned()
            .ok_or_else(|| Error::backend("the pipeline has no recorded settings"))?;
        // A candidate kept from a pool (`--rerank K`) is plain generation of its seed: the
        // settings that make it again rerank nothing.
        if let Origin::Generate {
            rerank: Some(RerankRecord {
                per_image: false, ..
            }),
            ..
        } = &origin
        {
            settings.coglm.rerank = 1;
        }
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
