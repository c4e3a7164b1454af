//! Flags shared by the commands that run a pipeline, and writing its images.

use cogview::core::stage1::Style;
use cogview::pipeline::record::{ImageRecord, Origin, WeightFile};
use cogview::pipeline::GeneratedImage;
use cogview::{DType, Device, Error, Pipeline, PipelineConfig, Result};
use std::path::{Path, PathBuf};

/// Which pipeline to run.
#[derive(Debug, Clone, clap::Args)]
pub struct PipelineArgs {
    /// A pipeline file (TOML): models, backends, devices, dtypes and sampling per stage
    /// (examples in examples/configs/).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A folder laid out as the official download: coglm/, cogview2-dsr/, cogview2-itersr/,
    /// ice_image.pt, ice_text.model (and cluster_label.npy). Overrides the file's `model_dir`.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Official style preset: none, mainbody, photo, flat, comics, oil, sketch, isometric,
    /// chinese, watercolor (default: the file's, else mainbody).
    #[arg(long)]
    pub style: Option<Style>,
    /// Keep only the running stage's weights loaded.
    #[arg(long)]
    pub low_memory: bool,
    /// Compute dtype of every stage: f32, f16 or bf16 (overrides the file).
    #[arg(long)]
    pub dtype: Option<DType>,
    /// Device of every stage: cpu, cuda or cuda:N (overrides the file).
    #[arg(long)]
    pub device: Option<Device>,
    /// Images CogLM generates together (official 8).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Classifier-free guidance scale of stage 1 (overrides the file's `coglm.guidance`): each
    /// image token is drawn from the unconditional logits plus S times the prompt's difference
    /// to them; 1: none (CogView2's). Above 1 stage 1 takes about twice as long.
    #[arg(long, value_name = "S")]
    pub guidance: Option<f32>,
    /// Record the full paths of the weight files in the PNGs (default: their file names,
    /// sizes and SHA-256 only, so a shared image does not tell where your files are).
    #[arg(long)]
    pub record_paths: bool,
}

impl PipelineArgs {
    /// How the images' records are written.
    pub fn record_options(&self) -> cogview::pipeline::record::RecordOptions {
        cogview::pipeline::record::RecordOptions::with_full_paths(self.record_paths)
    }
}

impl PipelineArgs {
    /// The configuration: the file (if any) with the flags applied on top.
    pub fn config(&self) -> Result<PipelineConfig> {
        let mut cfg = self.file_config()?;
        if let Some(g) = self.guidance {
            if let Some(problem) = cogview::pipeline::settings::guidance_problem(g) {
                return Err(Error::invalid_input("--guidance", problem));
            }
            cfg.coglm.guidance = Some(g);
        }
        Ok(cfg)
    }

    fn file_config(&self) -> Result<PipelineConfig> {
        cogview::OpenOptions {
            config: self.config.clone(),
            model_dir: self.model_dir.clone(),
            style: self.style,
            low_memory: self.low_memory,
            dtype: self.dtype,
            device: self.device,
            batch_size: self.batch_size,
        }
        .config()
        .map_err(|e| match e {
            // The command's flags are named as flags.
            Error::InvalidInput { field, reason }
                if field == "model_dir" || field == "batch_size" =>
            {
                let reason = reason
                    .replace("pass a model folder", "pass --model-dir DIR")
                    .replace("or a pipeline file", "or --config FILE");
                Error::InvalidInput {
                    field: format!("--{}", field.replace('_', "-")),
                    reason,
                }
            }
            e => e,
        })
    }
}

/// Prints one line on stderr when `prompt` has words outside the model's declared vocabulary
/// (the image is still made).
pub fn warn_unknown_words(pipeline: &Pipeline, prompt: &str) {
    if let Some(w) = pipeline.vocabulary_warning(prompt) {
        eprintln!("warning: {w}");
    }
}

/// The file a command writes when `out` may name either the file or a folder to put it in:
/// an existing folder, or a path ending in `/` (a folder to create), receives `default_name`;
/// any other path is the file itself, and its folder is created if missing. Errors name `flag`.
pub fn output_file(flag: &str, out: &Path, default_name: &str) -> Result<PathBuf> {
    let names_a_folder = out.is_dir()
        || out
            .as_os_str()
            .to_string_lossy()
            .ends_with(std::path::MAIN_SEPARATOR)
        || matches!(
            out.components().next_back(),
            Some(std::path::Component::CurDir | std::path::Component::ParentDir)
        );
    let (dir, file) = if names_a_folder {
        (out.to_path_buf(), out.join(default_name))
    } else {
        let dir = out.parent().unwrap_or(Path::new("")).to_path_buf();
        (dir, out.to_path_buf())
    };
    if !dir.as_os_str().is_empty() {
        prepare_output_dir_for(flag, &dir)?;
    }
    Ok(file)
}

/// Creates the output folder `dir` of `--out` if missing and checks that it can be written.
pub fn prepare_output_dir(dir: &Path) -> Result<()> {
    prepare_output_dir_for("--out", dir)
}

fn prepare_output_dir_for(flag: &str, dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::invalid_input(
            flag,
            format!(
                "{} is a file, not a folder: name a folder (or a file in an existing folder)",
                dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::invalid_input(
            flag,
            format!("cannot create the output folder {}: {e}", dir.display()),
        )
    })?;
    let probe = dir.join(format!(".cogview-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        Error::invalid_input(
            flag,
            format!("cannot write in the output folder {}: {e}", dir.display()),
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// A file-name stem from a prompt: lower-case letters, digits and dashes, at most 40 characters.
pub fn slug(prompt: &str) -> String {
    let mut s = String::new();
    for c in prompt.chars() {
        if s.len() >= 40 {
            break;
        }
        if c.is_alphanumeric() {
            s.extend(c.to_lowercase());
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() {
        "image".into()
    } else {
        s
    }
}

/// The record of one image of a run of `of` images.
pub fn record(
    pipeline: &Pipeline,
    prompt: &str,
    (seed, index, of): (u64, usize, usize),
    origin: Origin,
    weights: &[WeightFile],
) -> Result<ImageRecord> {
    ImageRecord::for_image(pipeline, prompt, (seed, index, of), origin, weights)
}

/// The record of each image of a run.
pub fn records(
    pipeline: &Pipeline,
    prompt: &str,
    images: &[GeneratedImage],
    origin: impl Fn(&GeneratedImage) -> Origin,
    weights: &[WeightFile],
) -> Result<Vec<ImageRecord>> {
    images
        .iter()
        .map(|img| {
            record(
                pipeline,
                prompt,
                (img.seed, img.index, images.len()),
                origin(img),
                weights,
            )
        })
        .collect()
}
