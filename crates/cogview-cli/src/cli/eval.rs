//! `cogview eval`: the scene checker on held-out prompts (see docs/default-model.md).

use super::pipeline_args::PipelineArgs;
use cogview::{Error, Pipeline, Result, Settings};
use std::path::PathBuf;

/// Score generated images of held-out scene prompts with the exact scene checker, next to the
/// image tokenizer's ceiling and a mismatched-caption floor.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Only the reference rows, for this image tokenizer (no generation).
    #[arg(long, conflicts_with_all = ["config", "model_dir"])]
    tokenizer: Option<PathBuf>,
    /// Image side for --tokenizer.
    #[arg(long, default_value_t = 192)]
    side: usize,
    /// Objects per scene; repeat for several sets.
    #[arg(long, default_values_t = [1, 2])]
    objects: Vec<usize>,
    /// Prompts per set.
    #[arg(long, default_value_t = 50)]
    count: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Score compositions seen in training instead of held-out ones.
    #[arg(long)]
    seen: bool,
    /// The split the model was trained on, which says what is held out: `compositions` (the
    /// default and models/default's: held-out two- and three-object compositions; with one
    /// object, every single-object scene, all trained) or `attribute-pairs` (held-out
    /// colour×shape and shape×cell pairs).
    #[arg(long, default_value = "compositions")]
    split: cogview_scenes::Split,
    /// Held-out emoji captions for caption → image retrieval by CogLM's likelihood, and (unless
    /// --named-emoji says otherwise) trained and held-out emoji to generate and name (0: skip
    /// both).
    #[arg(long, default_value_t = 50)]
    emoji: usize,
    /// Generated emoji a person can name: this many trained emoji and as many held-out skin-tone
    /// variants are generated, each matched to its real render among 20 by blurred pixels
    /// (default: --emoji; 0: skip).
    #[arg(long)]
    named_emoji: Option<usize>,
    /// Candidate images per caption.
    #[arg(long, default_value_t = 10)]
    candidates: usize,
    /// The Fluent Emoji set.
    #[arg(long, default_value = "data/fluent-emoji-flat/icons.json.gz")]
    emoji_data: PathBuf,
    /// Scene edits to score (two-object scenes, one object's cell masked and recaptioned; 0: skip).
    #[arg(long, default_value_t = 0)]
    edit: usize,
    /// Generate each image (scenes and named emoji) as the best of K stage-1 candidates by the
    /// inverse-prompt score (`generate --rerank K`); 1: plain generation. Default: the
    /// pipeline's `coglm.rerank` (the default model's: 4). With K > 1 the row "stage 1 checker's
    /// best" is added: the best of the K stage-1 candidates by the scene checker, the most any
    /// reranker could get.
    #[arg(long, value_name = "K")]
    rerank: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let (pipeline, tokenizer) = match &args.tokenizer {
        Some(t) => (
            None,
            Some(
                std::sync::Arc::new(cogview::candle::VqTokenizer::load(t, Default::default())?)
                    as std::sync::Arc<dyn cogview::ImageTokenizer>,
            ),
        ),
        None => {
            let cfg = args.pipeline.config()?;
            let p = Pipeline::from_settings(Settings::resolve(&cfg, true)?)?;
            let p = match args.rerank {
                Some(0) => {
                    return Err(Error::invalid_input(
                        "--rerank",
                        "0 candidates per image; pass 1 for plain generation or K > 1 for the best of K",
                    ))
                }
                Some(k) => p.with_rerank(k)?,
                None => p,
            };
            (Some(p), None)
        }
    };
    let mut reports = Vec::new();
    for &objects in &args.objects {
        if !(1..=3).contains(&objects) {
            return Err(Error::invalid_input(
                "--objects",
                "scenes have 1 to 3 objects",
            ));
        }
        let set = cogview_eval::SceneSet {
            objects,
            count: args.count,
            seed: args.seed,
            seen: args.seen,
            split: args.split,
        };
        let r = cogview_eval::evaluate_scenes(
            pipeline.as_ref(),
            tokenizer.clone(),
            args.side,
            set,
            args.seed,
        )?;
        if !args.json {
            println!("{r}");
        }
        reports.push(r);
    }
    let mut retrieval = None;
    let mut naming = None;
    let named = args.named_emoji.unwrap_or(args.emoji);
    if let (Some(p), true) = (&pipeline, args.emoji > 0 || named > 0) {
        let set = cogview_emoji::EmojiSet::load(&args.emoji_data)
            .map_err(|e| Error::invalid_input("--emoji-data", e.to_string()))?;
        if args.emoji > 0 {
            let r = cogview_eval::evaluate_emoji_retrieval(p, &set, args.emoji, args.candidates)?;
            if !args.json {
                println!("{r}");
            }
            retrieval = Some(r);
        }
        if named > 0 {
            let r = cogview_eval::evaluate_emoji_naming(p, &set, named, args.seed)?;
            if !args.json {
                println!("{r}");
            }
            naming = Some(r);
        }
    }
    let mut edits = None;
    if let (Some(p), true) = (&pipeline, args.edit > 0) {
        let r = cogview_eval::evaluate_edits(p, args.edit, args.seed, args.seen, args.split)?;
        if !args.json {
            println!("{r}");
        }
        edits = Some(r);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "scenes": reports,
                "emoji_retrieval": retrieval,
                "emoji_naming": naming,
                "edits": edits,
            }))
            .map_err(|e| Error::backend_source("", e))?
        );
    }
    Ok(())
}
