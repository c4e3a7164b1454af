//! `cogview train`: trains the parts of the small default model on the CPU (see docs/default-model.md).

use cogview::{Error, Result};
use std::path::PathBuf;

/// Train a part of the small default model (resumes from the output folder's state).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    part: Part,
}

#[derive(Debug, clap::Subcommand)]
enum Part {
    /// The image tokenizer (icetk's VQ-VAE structure, compression 8).
    Vq(VqArgs),
}

#[derive(Debug, clap::Args)]
struct VqArgs {
    /// Folder for state.safetensors (resumable) and ice_image.safetensors.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 3000)]
    steps: u64,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The Fluent Emoji set (training split used); `none` for scenes only.
    #[arg(long, default_value = cogview_emoji_default())]
    emoji: String,
    /// Share of scenes among the examples (the rest are emoji).
    #[arg(long, default_value_t = 0.5)]
    scene_fraction: f64,
    /// Print a line every N steps.
    #[arg(long, default_value_t = 10)]
    log_every: u64,
}

const fn cogview_emoji_default() -> &'static str {
    "data/fluent-emoji-flat/icons.json.gz"
}

fn data(emoji: &str, seed: u64, scene_fraction: f64) -> Result<cogview_train::data::DataMix> {
    let set = if emoji == "none" {
        None
    } else {
        Some(
            cogview_emoji::EmojiSet::load(emoji)
                .map_err(|e| Error::invalid_input("--emoji", e.to_string()))?,
        )
    };
    Ok(cogview_train::data::DataMix::new(seed, set, scene_fraction))
}

pub fn run(args: Args) -> Result<()> {
    match args.part {
        Part::Vq(a) => {
            let opts = cogview_train::vq::VqTrainOptions {
                steps: a.steps,
                batch: a.batch,
                lr: a.lr,
                seed: a.seed,
                ..Default::default()
            };
            let mut mix = data(&a.emoji, a.seed, a.scene_fraction)?;
            let start = std::time::Instant::now();
            let mut first: Option<u64> = None;
            let out = cogview_train::vq::train(&opts, &mut mix, &a.out, |s| {
                let f = *first.get_or_insert(s.step);
                if s.step % a.log_every == 0 || s.step == opts.steps {
                    let el = start.elapsed().as_secs_f64();
                    eprintln!(
                        "vq step {}/{}: reconstruction {:.4}, commitment {:.4}, code perplexity {:.0}, restarted {}, {:.2} steps/s",
                        s.step,
                        opts.steps,
                        s.reconstruction,
                        s.commitment,
                        s.perplexity,
                        s.restarted,
                        (s.step - f + 1) as f64 / el.max(1e-9)
                    );
                }
            })?;
            println!("{}", out.display());
            Ok(())
        }
    }
}
