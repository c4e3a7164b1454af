//! `cogview caption IMAGE`: the text CogLM finds most likely for an image (or a sample), and the
//! inverse-prompt score of given captions.

use super::pipeline_args::PipelineArgs;
use super::progress;
use cogview::core::sampling::TopKSampler;
use cogview::pipeline::CaptionOptions;
use cogview::{Error, Pipeline, Result, RunContext, Settings};
use std::path::PathBuf;

/// Write a caption for an image with CogLM (image → text), or score given captions.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image (resized and centre-cropped to the stage-1 size, as icetk does).
    image: PathBuf,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Sample the caption instead of taking the most likely token at each step.
    #[arg(long)]
    sample: bool,
    /// Sampling temperature (with --sample).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Tokens kept at each sampling step (with --sample).
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// Seed of --sample.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// The longest caption, in tokens (a model without an end-of-caption token always writes
    /// this many; CogView2's CogLM has none).
    #[arg(long, default_value_t = 32)]
    max_tokens: usize,
    /// Instead of writing a caption, print the inverse-prompt score (mean log-probability per
    /// token) of each of these captions, best first. Repeat for several.
    #[arg(long)]
    score: Vec<String>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.sample && !(args.temperature > 0.0 && args.temperature.is_finite()) {
        return Err(Error::invalid_input(
            "--temperature",
            format!("{} is not a positive number", args.temperature),
        ));
    }
    if args.sample && args.top_k == 0 {
        return Err(Error::invalid_input("--top-k", "must be at least 1"));
    }
    let image = cogview::image::load_image(&args.image)?;
    let cfg = args.pipeline.config()?;
    let settings = Settings::resolve(&cfg, false)?;
    let pipeline = Pipeline::from_settings(settings)?;
    if !args.score.is_empty() {
        let grid = pipeline.encode_image(&image)?;
        let mut scored = Vec::new();
        for text in &args.score {
            scored.push((pipeline.caption_score(&grid, text)?, text));
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (s, t) in scored {
            println!("{s:.4}\t{t}");
        }
        return Ok(());
    }
    let mut ctx = RunContext::with_seed(args.seed);
    ctx.progress = progress::reporter(args.quiet);
    progress::cancel_on_ctrl_c(&ctx.cancel);
    let options = CaptionOptions {
        max_tokens: args.max_tokens,
        sampling: args.sample.then_some(TopKSampler {
            temperature: args.temperature,
            top_k: args.top_k,
        }),
        seed: args.seed,
    };
    let written = pipeline.caption(&image, &options, &ctx)?;
    println!("{}", written.text.trim());
    if !args.quiet {
        eprintln!(
            "mean log-probability {:.4} over {} token(s); {}",
            written.caption.mean_log_prob,
            written.caption.ids.len(),
            if written.caption.ended {
                "the model ended the caption"
            } else {
                "stopped at --max-tokens (this model has no end-of-caption token, or did not write it)"
            }
        );
    }
    Ok(())
}
