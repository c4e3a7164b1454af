//! `cogview regenerate IMAGE.png`: rebuild the pipeline an image records and make it again.

use super::pipeline_args::{output_file, prepare_output_dir};
use super::progress;
use cogview::pipeline::record::{find_weights, weight_records, ImageRecord, Origin, RecordOptions};
use cogview::{Error, Pipeline, Result, RunContext, Settings};
use std::path::PathBuf;

/// Reproduce an image from the settings, seed and weights recorded in it, and compare the pixels.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A PNG written by `cogview generate` or `cogview super-resolve`.
    image: PathBuf,
    /// Where to write the reproduction: a file, or a folder that receives
    /// IMAGE-NAME.regenerated.png (default: beside IMAGE).
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Look for the weights in this folder (official layout) instead of the recorded paths.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// A folder to search for the recorded weights by their SHA-256 (repeatable; searched four
    /// levels deep). Records hold file names only unless made with --record-paths; the
    /// embedded default model is always searched.
    #[arg(long = "weights-dir", value_name = "DIR")]
    weights_dirs: Vec<PathBuf>,
    /// Record the full paths of the weight files in the reproduction (default: file names).
    #[arg(long)]
    record_paths: bool,
    /// Run even if a weight file's SHA-256 differs from the recorded one.
    #[arg(long)]
    ignore_weight_changes: bool,
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    let rec = ImageRecord::read_png(&args.image)?;
    let original = cogview::image::load_image(&args.image)?;
    let with_sr = !matches!(
        rec.origin,
        Origin::Generate {
            only_first_stage: true,
            ..
        }
    );
    if let Origin::Edit { image_sha256, mask } = &rec.origin {
        return Err(Error::invalid_input(
            "image",
            format!(
                "{} is an edit (input image sha256 {image_sha256}, mask {mask}); run `cogview edit` again with that image, mask, prompt and --seed {}",
                args.image.display(),
                rec.seed
            ),
        ));
    }
    let settings = match &args.model_dir {
        None => {
            let mut folders = args.weights_dirs.clone();
            if let Some(d) = cogview::embedded::default_model_dir()? {
                folders.push(d);
            }
            let (settings, missing) = find_weights(&rec.settings, &rec.weights, &folders)?;
            if !missing.is_empty() {
                return Err(Error::invalid_input(
                    "weights",
                    format!(
                        "the recorded {} weights were not found: they are not at the recorded \
                         paths and no file of the recorded SHA-256 is in {}; pass the folder \
                         that holds them with --weights-dir DIR (or --model-dir DIR)",
                        missing.join(", "),
                        if args.weights_dirs.is_empty() {
                            "the embedded default model".to_string()
                        } else {
                            args.weights_dirs
                                .iter()
                                .map(|d| d.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                ));
            }
            settings
        }
        Some(dir) => {
            let mut cfg = rec.settings.to_config();
            cfg.model_dir = Some(dir.clone());
            cfg.text_tokenizer.path = None;
            cfg.image_tokenizer.path = None;
            cfg.coglm.path = None;
            cfg.coglm.cluster_labels = None;
            cfg.dsr.path = None;
            cfg.itersr.path = None;
            Settings::resolve(&cfg, with_sr)?
        }
    };
    let pipeline = Pipeline::from_settings(settings)?;
    let now = weight_records(&pipeline.weight_files()?)?;
    let name = |p: &std::path::Path| p.file_name().map(|n| n.to_os_string());
    for w in &rec.weights {
        let current = now
            .iter()
            .find(|n| n.role == w.role && name(&n.path) == name(&w.path));
        let problem = match current {
            None => Some(format!(
                "the recorded {} file {} is not part of this pipeline",
                w.role,
                w.path.display()
            )),
            Some(n) if n.sha256 != w.sha256 => Some(format!(
                "{} ({}) has SHA-256 {} but the image was made with {}",
                n.path.display(),
                w.role,
                n.sha256,
                w.sha256
            )),
            _ => None,
        };
        if let Some(p) = problem {
            if args.ignore_weight_changes {
                eprintln!("warning: {p}");
            } else {
                return Err(Error::invalid_input(
                    "weights",
                    format!("{p}; pass --ignore-weight-changes to run anyway"),
                ));
            }
        }
    }

    let mut ctx = RunContext::with_seed(rec.seed);
    ctx.progress = progress::reporter(args.quiet);
    progress::cancel_on_ctrl_c(&ctx.cancel);
    let images = match &rec.origin {
        Origin::Generate {
            only_first_stage, ..
        } => pipeline.generate(&rec.prompt, 1, *only_first_stage, &ctx)?,
        Origin::Edit { image_sha256, mask } => {
            return Err(Error::invalid_input(
                "image",
                format!(
                    "{} is an edit (input image sha256 {image_sha256}, mask {mask}); run `cogview edit` again with that image, mask, prompt and --seed {}",
                    args.image.display(),
                    rec.seed
                ),
            ))
        }
        Origin::SuperResolve { low_res } => {
            pipeline.super_resolve(&rec.prompt, vec![low_res.clone()], &[rec.seed], &ctx)?
        }
    };
    let stem = args
        .image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let default_name = format!("{stem}.regenerated.png");
    let out = match &args.out {
        Some(out) => output_file("--out", out, &default_name)?,
        None => {
            let out = args.image.with_file_name(&default_name);
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                prepare_output_dir(dir)?;
            }
            out
        }
    };
    let img = &images[0].image;
    let mut new_rec = rec.clone();
    new_rec.weights = now;
    new_rec.index = 0;
    new_rec.of = 1;
    cogview::image::save_png(
        img,
        &out,
        &new_rec.png_text_with(RecordOptions::with_full_paths(args.record_paths)),
    )?;
    println!("{}", out.display());
    if img.width != original.width || img.height != original.height {
        return Err(Error::invalid_input(
            "image",
            format!(
                "the reproduction is {}x{} but the original is {}x{}",
                img.width, img.height, original.width, original.height
            ),
        ));
    }
    let differing = img
        .pixels
        .iter()
        .zip(&original.pixels)
        .filter(|(a, b)| a != b)
        .count();
    if differing == 0 {
        eprintln!("identical: every pixel matches {}", args.image.display());
        Ok(())
    } else {
        let max = img
            .pixels
            .iter()
            .zip(&original.pixels)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        Err(Error::invalid_input(
            "image",
            format!(
                "the reproduction differs from {} in {differing} of {} pixel values (max difference {max}); \
                 a different backend, device or dtype than recorded changes the numerics",
                args.image.display(),
                img.pixels.len()
            ),
        ))
    }
}
