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
    /// The caption tokenizer (ice_text.model) from every training caption.
    Tokenizer(TokenizerArgs),
    /// CogLM on the mixed objective (text→image, image→caption with infilling).
    Coglm(CoglmArgs),
    /// The cluster table of cluster sampling: k-means over the codebook of a trained tokenizer.
    Clusters(ClustersArgs),
    /// A picture of what the image tokenizer keeps: training examples (top row) and their
    /// encode → decode round trips (bottom row).
    PreviewVq(PreviewArgs),
    /// Direct super-resolution (8×8 → 24×24 tokens).
    Dsr(CoglmArgs),
    /// Iterative super-resolution (LoPAR refinement of 24×24 tokens).
    Itersr(CoglmArgs),
    /// The model's closed vocabulary (vocabulary.txt): every word of the training captions (the
    /// scene grammar and the emoji names), for the warning about prompts outside it.
    Vocabulary(VocabularyArgs),
}

#[derive(Debug, clap::Args)]
struct VocabularyArgs {
    /// The vocabulary.txt to write.
    #[arg(long)]
    out: PathBuf,
    /// The Fluent Emoji set; `none` for scenes only.
    #[arg(long, default_value = cogview_emoji_default())]
    emoji: String,
}

#[derive(Debug, clap::Args)]
struct TokenizerArgs {
    /// The ice_text.model to write.
    #[arg(long)]
    out: PathBuf,
    /// The Fluent Emoji set; `none` for scenes only.
    #[arg(long, default_value = cogview_emoji_default())]
    emoji: String,
    /// Words seen fewer times become spelled-out characters.
    #[arg(long, default_value_t = 1)]
    min_count: usize,
}

#[derive(Debug, clap::Args)]
struct PreviewArgs {
    #[arg(long)]
    vq: PathBuf,
    /// The PNG to write.
    #[arg(long)]
    out: PathBuf,
    /// Examples (half scenes, half emoji).
    #[arg(long, default_value_t = 8)]
    count: usize,
    #[arg(long, default_value_t = 192)]
    side: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[arg(long, default_value = cogview_emoji_default())]
    emoji: String,
    /// The scene split whose training side is drawn: `compositions` (every single object; a
    /// fixed tenth of the two- and three-object scenes held out; models/default) or
    /// `attribute-pairs` (the unseen colour×shape and shape×cell pair experiment). A state
    /// resumes only under the split it was trained on.
    #[arg(long, default_value = "compositions")]
    split: cogview_scenes::Split,
}

#[derive(Debug, clap::Args)]
struct ClustersArgs {
    /// The trained image tokenizer.
    #[arg(long)]
    vq: PathBuf,
    /// The cluster_label.npy to write.
    #[arg(long)]
    out: PathBuf,
    /// Number of clusters (CogView2: 500 for 20000 codes).
    #[arg(long, default_value_t = 32)]
    clusters: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, clap::Args)]
struct CoglmArgs {
    /// Folder for state.safetensors (resumable) and coglm.safetensors.
    #[arg(long)]
    out: PathBuf,
    /// Precision of the linear layers' products (forward and backward): `f32`, or `bf16`
    /// (operands rounded to bf16, f32 sums, f32 master weights; the bf16 kernels of `cogview
    /// bench gemm`). The saved weights are f32 either way.
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16"])]
    precision: String,
    /// The trained image tokenizer (ice_image.safetensors).
    #[arg(long)]
    vq: PathBuf,
    /// The caption tokenizer (ice_text.model).
    #[arg(long)]
    tokenizer: PathBuf,
    #[arg(long, default_value_t = 6000)]
    steps: u64,
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 2)]
    seed: u64,
    #[arg(long, default_value = cogview_emoji_default())]
    emoji: String,
    #[arg(long, default_value_t = 0.5)]
    scene_fraction: f64,
    /// The scene split whose training side is drawn: `compositions` (every single object; a
    /// fixed tenth of the two- and three-object scenes held out; models/default) or
    /// `attribute-pairs` (the unseen colour×shape and shape×cell pair experiment). A state
    /// resumes only under the split it was trained on.
    #[arg(long, default_value = "compositions")]
    split: cogview_scenes::Split,
    /// The stage-1 grid side in tokens (images of grid·8 px at stage 1; super-resolution works at
    /// 3·grid). 9 puts every cell of the scenes' 3×3 layout on whole tokens.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(4..=32))]
    grid: u64,
    /// Start from trained weights of the same part (a model's coglm/dsr/itersr.safetensors, e.g.
    /// models/default/coglm.safetensors, or a state.safetensors): tensors of the same name and
    /// shape are copied, the rest (e.g. position tables of another grid) start fresh. Ignored
    /// when --out already holds a state to resume.
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Transformer layers (default: the default model's, 6 for CogLM and 3 for DSR and ItersR).
    /// With --init-from weights of fewer layers, the model grows: the file's layers are copied
    /// and each added layer starts as the identity (its post-attention and post-MLP LayerNorms
    /// zero), so training starts from exactly the file's model.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=48))]
    layers: Option<u64>,
    /// Share of text-conditioned infilling samples (the sequence editing runs; cogview's
    /// addition to the official objective, which has none). CogLM only.
    #[arg(long, default_value_t = 0.0)]
    infill_ratio: f64,
    /// Share of text → image samples trained without their text, so that the model also knows
    /// the unconditional image distribution (what `[coglm] guidance` contrasts the prompt
    /// with). CogLM only; 0 (the official objective) by default.
    #[arg(long, default_value_t = 0.0)]
    caption_dropout: f64,
    #[arg(long, default_value_t = 10)]
    log_every: u64,
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
    /// The scene split whose training side is drawn: `compositions` (every single object; a
    /// fixed tenth of the two- and three-object scenes held out; models/default) or
    /// `attribute-pairs` (the unseen colour×shape and shape×cell pair experiment). A state
    /// resumes only under the split it was trained on.
    #[arg(long, default_value = "compositions")]
    split: cogview_scenes::Split,
    /// Print a line every N steps.
    #[arg(long, default_value_t = 10)]
    log_every: u64,
}

/// Steps per second since the first step this run made (a resumed run starts later).
struct Rate {
    start: std::time::Instant,
    first: Option<u64>,
}

impl Rate {
    fn new() -> Self {
        Rate {
            start: std::time::Instant::now(),
            first: None,
        }
    }
    fn per_second(&mut self, step: u64) -> f64 {
        let f = *self.first.get_or_insert(step);
        (step - f + 1) as f64 / self.start.elapsed().as_secs_f64().max(1e-9)
    }
}

const fn cogview_emoji_default() -> &'static str {
    "data/fluent-emoji-flat/icons.json.gz"
}

fn data(
    emoji: &str,
    seed: u64,
    split: cogview_scenes::Split,
    scene_fraction: f64,
) -> Result<cogview_train::data::DataMix> {
    let set = if emoji == "none" {
        None
    } else {
        Some(
            cogview_emoji::EmojiSet::load(emoji)
                .map_err(|e| Error::invalid_input("--emoji", e.to_string()))?,
        )
    };
    Ok(cogview_train::data::DataMix::new(
        seed,
        split,
        set,
        scene_fraction,
    ))
}

/// What a model trained on the scene grammar (and `emoji` emoji names) knows, in a phrase,
/// written from the grammar itself.
fn vocabulary_description(emoji: usize) -> String {
    use cogview_scenes::{Cell, Colour, Shape, Size};
    let list = |names: Vec<&str>| names.join(", ");
    let mut d = format!(
        "scenes of one to three shapes ({}), colours ({}), sizes ({}) and positions ({}), as in \"a large blue circle in the center and a small red square at the top left\"",
        list(Shape::ALL.iter().map(|s| s.name()).collect()),
        list(Colour::ALL.iter().map(|c| c.name()).collect()),
        list(Size::ALL.iter().map(|s| s.name()).collect()),
        list(Cell::ALL.iter().map(|c| c.name()).collect()),
    );
    if emoji > 0 {
        d.push_str(&format!(
            ", and the names of {emoji} Fluent emoji, as in \"grinning face\" or \"waving hand, medium skin tone\""
        ));
    }
    d
}

fn set_precision(a: &CoglmArgs) {
    use cogview::candle::TrainingPrecision;
    cogview::candle::set_training_precision(if a.precision == "bf16" {
        TrainingPrecision::Bf16
    } else {
        TrainingPrecision::F32
    });
}

pub fn run(args: Args) -> Result<()> {
    match args.part {
        Part::Vocabulary(a) => {
            // Exactly the captions the caption tokenizer is trained on (`train tokenizer`).
            let mix = data(&a.emoji, 1, Default::default(), 0.5)?;
            let captions = mix.all_captions();
            let emoji = if a.emoji == "none" {
                0
            } else {
                let set = cogview_emoji::EmojiSet::load(&a.emoji)
                    .map_err(|e| Error::invalid_input("--emoji", e.to_string()))?;
                set.train().count() + set.heldout().count()
            };
            let v = cogview::pipeline::Vocabulary::from_texts(
                vocabulary_description(emoji),
                captions.iter().map(String::as_str),
            );
            let text = v.to_text(&[
                "Every word of the training captions (the scene grammar and the emoji names), one per line.",
                "Written by `cogview train vocabulary --out vocabulary.txt`; do not edit by hand.",
            ]);
            if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            cogview::core::output::write_file(&a.out, text.as_bytes())?;
            eprintln!("{} words from {} captions", v.len(), captions.len());
            println!("{}", a.out.display());
            Ok(())
        }
        Part::Tokenizer(a) => {
            // The caption list is the same under either split (DataMix::all_captions).
            let mix = data(&a.emoji, 1, Default::default(), 0.5)?;
            let captions = mix.all_captions();
            let bytes = cogview_train::caption_tokenizer::train(&captions, a.min_count, 100_000)?;
            if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            }
            cogview::core::output::write_file(&a.out, &bytes)?;
            eprintln!("{} captions", captions.len());
            println!("{}", a.out.display());
            Ok(())
        }
        Part::Vq(a) => {
            let opts = cogview_train::vq::VqTrainOptions {
                steps: a.steps,
                batch: a.batch,
                lr: a.lr,
                seed: a.seed,
                ..Default::default()
            };
            let mut mix = data(&a.emoji, a.seed, a.split, a.scene_fraction)?;
            let mut rate = Rate::new();
            let out = cogview_train::vq::train(&opts, &mut mix, &a.out, |s| {
                let per_second = rate.per_second(s.step);
                if s.step % a.log_every == 0 || s.step == opts.steps {
                    eprintln!(
                        "vq step {}/{}: reconstruction {:.4}, commitment {:.4}, code perplexity {:.0}, restarted {}, {:.2} steps/s",
                        s.step,
                        opts.steps,
                        s.reconstruction,
                        s.commitment,
                        s.perplexity,
                        s.restarted,
                        per_second
                    );
                }
            })?;
            println!("{}", out.display());
            Ok(())
        }
        Part::Clusters(a) => {
            let vq = cogview::candle::VqTokenizer::load(&a.vq, Default::default())?;
            let cb = vq.codebook();
            let dim = cb.dim(1).map_err(|e| Error::backend_source("", e))?;
            let points = cb
                .flatten_all()
                .and_then(|t| t.to_vec1::<f32>())
                .map_err(|e| Error::backend_source("", e))?;
            let labels = cogview_train::clusters::kmeans(&points, dim, a.clusters, 100, a.seed)?;
            cogview::core::output::write_file(&a.out, &cogview::core::npy::write_npy_i64(&labels))?;
            println!("{}", a.out.display());
            Ok(())
        }
        Part::PreviewVq(a) => {
            use cogview::ImageTokenizer;
            let vq = cogview::candle::VqTokenizer::load(&a.vq, Default::default())?;
            let mut mix = data(&a.emoji, a.seed, a.split, 0.5)?;
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for _ in 0..a.count {
                let ex = mix.draw()?;
                let img = mix.render(&ex, a.side)?;
                let grid = vq.encode(&img, cogview::Compression::X8)?;
                bottom.push(vq.decode(&grid, cogview::Compression::X8)?);
                top.push(img);
            }
            top.extend(bottom);
            let sheet = cogview::image::tile(&top, a.count)?;
            cogview::image::save_png(&sheet, &a.out, &[])?;
            println!("{}", a.out.display());
            Ok(())
        }
        Part::Dsr(a) => {
            set_precision(&a);
            train_sr(a, cogview::candle::SrKind::Dsr)
        }
        Part::Itersr(a) => {
            set_precision(&a);
            train_sr(a, cogview::candle::SrKind::Itersr)
        }
        Part::Coglm(a) => {
            set_precision(&a);
            // The shares are checked before any file is read.
            if !(0.0..=0.5).contains(&a.caption_dropout) {
                return Err(cogview::Error::invalid_input(
                    "--caption-dropout",
                    "give a share of the text → image samples between 0 and 0.5 (0.1 is usual)",
                ));
            }
            if !(0.0..=0.7).contains(&a.infill_ratio) {
                return Err(cogview::Error::invalid_input(
                    "--infill-ratio",
                    "give a share between 0 and 0.7 (the caption samples take 0.3)",
                ));
            }
            let (vq, text, vocab) = load_tokenizers(&a)?;
            let layers = a
                .layers
                .map_or(cogview_train::coglm::DEFAULT_LAYERS, |l| l as usize);
            let config = cogview_train::coglm::config_with_layers(&vocab, layers);
            let opts = cogview_train::coglm::CoglmTrainOptions {
                steps: a.steps,
                batch: a.batch,
                lr: a.lr,
                seed: a.seed,
                infill_ratio: a.infill_ratio,
                caption_dropout: a.caption_dropout,
                grid: a.grid as usize,
                init_from: a.init_from.clone(),
                ..Default::default()
            };
            let mut mix = data(&a.emoji, a.seed, a.split, a.scene_fraction)?;
            let mut rate = Rate::new();
            let mut avg: Option<f64> = None;
            let out = cogview_train::coglm::train(
                &opts,
                &config,
                &vocab,
                &mut mix,
                &vq,
                &text,
                &a.out,
                |s| {
                    let per_second = rate.per_second(s.step);
                    let smoothed = avg.map_or(s.loss as f64, |a| 0.95 * a + 0.05 * s.loss as f64);
                    avg = Some(smoothed);
                    if s.step % a.log_every == 0 || s.step == opts.steps {
                        eprintln!(
                            "coglm step {}/{}: loss {:.4} (smoothed {:.4}), lr {:.2e}, {:.2} steps/s",
                            s.step,
                            opts.steps,
                            s.loss,
                            smoothed,
                            s.lr,
                            per_second
                        );
                    }
                },
            )?;
            println!("{}", out.display());
            Ok(())
        }
    }
}

type Tokenizers = (
    cogview::candle::VqTokenizer,
    cogview::text::IceTextTokenizer,
    cogview_train::coglm::Vocab,
);

/// The trained image tokenizer, the caption tokenizer at icetk's offset, and the vocabulary.
fn load_tokenizers(a: &CoglmArgs) -> Result<Tokenizers> {
    let vq = cogview::candle::VqTokenizer::load(&a.vq, Default::default())?;
    let image = vq.config().n_embed;
    let bytes = std::fs::read(&a.tokenizer).map_err(|e| Error::io(&a.tokenizer, e))?;
    let text = cogview::text::IceTextTokenizer::from_bytes(
        &bytes,
        &a.tokenizer.display().to_string(),
        image as u32,
        &cogview::text::SPECIAL_TOKENS,
    )?;
    let id = |p: &str| {
        text.piece_id(p)
            .ok_or_else(|| Error::invalid_input("--tokenizer", format!("no {p} piece")))
    };
    let vocab = cogview_train::coglm::Vocab {
        image,
        start_of_image: id("<start_of_image>")?,
        start_of_english: id("<start_of_english>")?,
        total: image + text.len(),
    };
    Ok((vq, text, vocab))
}

fn train_sr(a: CoglmArgs, kind: cogview::candle::SrKind) -> Result<()> {
    if a.caption_dropout != 0.0 {
        return Err(cogview::Error::invalid_input(
            "--caption-dropout",
            "dropping captions trains CogLM's unconditional distribution; DSR and ItersR do not \
             use guidance: leave --caption-dropout out",
        ));
    }
    if a.infill_ratio != 0.0 {
        return Err(cogview::Error::invalid_input(
            "--infill-ratio",
            "text-conditioned infilling is a CogLM sample type; DSR and ItersR train on their own \
             tasks: leave --infill-ratio out",
        ));
    }
    let (vq, text, vocab) = load_tokenizers(&a)?;
    let config = cogview_train::sr::config_with_layers(
        kind,
        &vocab,
        a.grid as usize,
        3 * a.grid as usize,
        a.layers
            .map_or(cogview_train::sr::DEFAULT_LAYERS, |l| l as usize),
    );
    let opts = cogview_train::sr::SrTrainOptions {
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
        init_from: a.init_from.clone(),
        ..Default::default()
    };
    let mut mix = data(&a.emoji, a.seed, a.split, a.scene_fraction)?;
    let mut rate = Rate::new();
    let out =
        cogview_train::sr::train(&opts, &config, &vocab, &mut mix, &vq, &text, &a.out, |s| {
            let per_second = rate.per_second(s.step);
            if s.step % a.log_every == 0 || s.step == opts.steps {
                eprintln!(
                    "{kind:?} step {}/{}: loss {:.4}, accuracy {:.3}, {:.2} steps/s",
                    s.step, opts.steps, s.loss, s.accuracy, per_second
                );
            }
        })?;
    println!("{}", out.display());
    Ok(())
}
