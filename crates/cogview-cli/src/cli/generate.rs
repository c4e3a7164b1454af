//! `cogview generate PROMPT`: text → CogLM → DSR → ItersR → PNG files.

use super::pipeline_args::{prepare_output_dir, records, slug, warn_unknown_words, PipelineArgs};
use super::progress;
use cogview::core::grid_file::GridFile;
use cogview::pipeline::record::{weight_records, Origin};
use cogview::pipeline::{dry_run, Settings};
use cogview::{Error, Pipeline, Result, RunContext};
use std::path::PathBuf;

/// Generate images from a text prompt (all three stages, or only the first).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to draw.
    prompt: String,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Base seed; image i uses seed + i, so any one image can be regenerated alone.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Number of images.
    #[arg(short = 'n', long, default_value_t = 1)]
    num_images: usize,
    /// Stop after CogLM: decode the 20×20 tokens at 160 px and enlarge ×3 (official behaviour).
    #[arg(long)]
    only_first_stage: bool,
    /// Inverse prompting: make K stage-1 candidates (seeds seed..seed+K-1), keep the
    /// --num-images best by the mean log-probability of the prompt given each (CogView2's
    /// inverse-prompt score) and super-resolve only those; each image keeps its candidate's
    /// seed. Without it, a pipeline's `coglm.rerank` K makes image i the best of K candidates
    /// of its own seed, seed + i (the default model's K is 4); K equal to --num-images keeps
    /// every candidate (no selection).
    #[arg(long, value_name = "K")]
    rerank: Option<usize>,
    /// Output folder: one PNG per image, <prompt>-<seed>.png.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Also write all images tiled in one PNG, three per row (the official output).
    #[arg(long)]
    grid: bool,
    /// Also write each image's token grids (<name>.low.json, <name>.high.json) for
    /// `cogview super-resolve` and `cogview detokenize`.
    #[arg(long)]
    save_grids: bool,
    /// Print per stage the parameters, the weight bytes and the estimated peak memory, then exit.
    #[arg(long)]
    dry_run: bool,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.num_images == 0 {
        return Err(Error::invalid_input(
            "--num-images",
            "must be at least 1 (-n 1 makes one image)",
        ));
    }
    let cfg = args.pipeline.config()?;
    let settings = Settings::resolve(&cfg, !args.only_first_stage)?;
    if args.dry_run {
        println!("{}", dry_run(&settings, args.num_images)?);
        return Ok(());
    }
    prepare_output_dir(&args.out)?;
    let pipeline = Pipeline::from_settings(settings)?;
    // Fail on the prompt before any model runs.
    pipeline.encode_prompt(&args.prompt)?;
    warn_unknown_words(&pipeline, &args.prompt);
    let weights = weight_records(&pipeline.weight_files()?)?;

    let mut ctx = RunContext::with_seed(args.seed);
    ctx.progress = progress::reporter(args.quiet);
    progress::cancel_on_ctrl_c(&ctx.cancel);
    let started = std::time::Instant::now();
    // --rerank K (the whole draw), else the pipeline's own (`coglm.rerank`, K per image).
    let (images, ranked) = match args.rerank {
        Some(k) => {
            let (images, ranked) = pipeline.generate_reranked(
                &args.prompt,
                k,
                args.num_images,
                args.only_first_stage,
                &ctx,
            )?;
            (images, Some(ranked))
        }
        None => (
            pipeline.generate(&args.prompt, args.num_images, args.only_first_stage, &ctx)?,
            None,
        ),
    };
    if let (Some(ranked), false) = (&ranked, args.quiet) {
        for c in ranked {
            eprintln!(
                "candidate seed {}: score {:.4}{}",
                c.seed,
                c.score,
                if c.kept { " (kept)" } else { "" }
            );
        }
    }
    let only_first = args.only_first_stage;
    let recs = records(
        &pipeline,
        &args.prompt,
        &images,
        |img| Origin::Generate {
            only_first_stage: only_first,
            rerank: img.rerank.clone(),
        },
        &weights,
    )?;
    let stem = slug(&args.prompt);
    for (img, rec) in images.iter().zip(&recs) {
        let path = args.out.join(format!("{stem}-{}.png", img.seed));
        cogview::image::save_png(
            &img.image,
            &path,
            &rec.png_text_with(args.pipeline.record_options()),
        )?;
        println!("{}", path.display());
        if args.save_grids {
            let mut grids = vec![("low", &img.low_res)];
            if let Some(h) = &img.high_res {
                grids.push(("high", h));
            }
            for (kind, g) in grids {
                let gp = args.out.join(format!("{stem}-{}.{kind}.json", img.seed));
                GridFile {
                    grid: g.clone(),
                    compression: Some(pipeline.geometry().compression),
                    tokenizer_sha256: None,
                }
                .write(&gp)?;
            }
        }
    }
    if args.grid {
        let all: Vec<_> = images.iter().map(|i| i.image.clone()).collect();
        let path = args.out.join(format!("{stem}-grid-{}.png", args.seed));
        cogview::image::save_png(&cogview::image::tile(&all, 3)?, &path, &[])?;
        println!("{}", path.display());
    }
    if !args.quiet {
        eprintln!(
            "{} image(s) in {:.1} s",
            images.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
