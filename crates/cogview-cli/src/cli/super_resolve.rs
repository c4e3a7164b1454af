//! `cogview super-resolve INPUT --prompt TEXT`: stages 2-3 (DSR, ItersR) and the decoder on a
//! stage-1 token grid or an image.

use super::pipeline_args::{prepare_output_dir, records, slug, PipelineArgs};
use super::progress;
use cogview::core::grid_file::GridFile;
use cogview::pipeline::record::{weight_records, Origin};
use cogview::{Error, Pipeline, Result, RunContext, Settings};
use std::path::PathBuf;

/// Run only the super-resolution stages on a 20×20 token grid (a grid file from `cogview
/// tokenize` or `generate --save-grids`) or on an image (resized and centre-cropped to 160 px
/// and encoded first).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A grid file (.json) or an image.
    input: PathBuf,
    /// The text the super-resolution models are conditioned on.
    #[arg(long)]
    prompt: String,
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Output folder.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Also write the 60×60 grid (<name>.high.json).
    #[arg(long)]
    save_grids: bool,
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    let cfg = args.pipeline.config()?;
    let settings = Settings::resolve(&cfg, true)?;
    prepare_output_dir(&args.out)?;
    let pipeline = Pipeline::from_settings(settings)?;
    pipeline.encode_prompt(&args.prompt)?;
    let is_grid = args
        .input
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let low = if is_grid {
        let f = GridFile::read(&args.input)?;
        if let Some(c) = f.compression {
            if c != pipeline.geometry().compression {
                return Err(Error::invalid_input(
                    "grid",
                    format!(
                        "{} was encoded at compression {} but the pipeline decodes at {}",
                        args.input.display(),
                        c.factor(),
                        pipeline.geometry().compression.factor()
                    ),
                ));
            }
        }
        f.grid
    } else {
        pipeline.encode_image(&cogview::image::load_image(&args.input)?)?
    };
    let mut ctx = RunContext::with_seed(args.seed);
    ctx.progress = progress::reporter(args.quiet);
    progress::cancel_on_ctrl_c(&ctx.cancel);
    let images = pipeline.super_resolve(&args.prompt, vec![low.clone()], &[args.seed], &ctx)?;
    let weights = weight_records(&pipeline.weight_files()?)?;
    let recs = records(
        &pipeline,
        &args.prompt,
        &images,
        |_| Origin::SuperResolve {
            low_res: low.clone(),
        },
        &weights,
    )?;
    let stem = format!("{}-sr", slug(&args.prompt));
    for (img, rec) in images.iter().zip(&recs) {
        let path = args.out.join(format!("{stem}-{}.png", img.seed));
        cogview::image::save_png(
            &img.image,
            &path,
            &rec.png_text_with(args.pipeline.record_options()),
        )?;
        println!("{}", path.display());
        if let (true, Some(h)) = (args.save_grids, &img.high_res) {
            let gp = args.out.join(format!("{stem}-{}.high.json", img.seed));
            GridFile {
                grid: h.clone(),
                compression: Some(pipeline.geometry().compression),
                tokenizer_sha256: None,
            }
            .write(&gp)?;
        }
    }
    Ok(())
}
