//! `cogview generate`: stage 1 (CogLM) from text token ids to 20×20 token grids.
//!
//! Until the icetk text tokenizer lands, the prompt is given as token ids (`--text-ids`) and the
//! result is written as token grids (JSON), one file per image.

use super::BackendArgs;
use cogview::candle::CoglmModel;
use cogview::core::coglm::{CoglmGenerator, Stage1Layout, Stage1Settings, Style};
use cogview::core::sampling::{ClusterLabels, ClusterSampler, TopKSampler};
use cogview::{Error, GlobalGenerator, Result, RunContext, Sampler, TextTokens};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SamplerKind {
    /// CogView2's cluster sampling (needs a cluster table matching the image vocabulary).
    Cluster,
    /// Plain temperature + top-k sampling.
    TopK,
}

/// Generate low-resolution image-token grids with CogLM (stage 1).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CogLM weights: a SAT checkpoint folder or a safetensors file from `cogview convert`.
    #[arg(long)]
    model: PathBuf,
    /// The query text as comma-separated token ids (prompt + style template, without <start_of_image>).
    #[arg(long, value_delimiter = ',', required = true)]
    text_ids: Vec<u32>,
    /// Base seed; image i uses seed + i, so any one image can be regenerated alone.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Number of images.
    #[arg(short = 'n', long, default_value_t = 1)]
    num_images: usize,
    /// Images decoded together (official: 8).
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Output folder for the grids (grid_<seed>.json).
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Style whose official stage-1 temperature is used (the template text is part of --text-ids).
    #[arg(long, default_value = "mainbody")]
    style: Style,
    #[arg(long, value_enum, default_value_t = SamplerKind::Cluster)]
    sampler: SamplerKind,
    /// Temperature (default: the style's official value, 1.15 for mainbody).
    #[arg(long)]
    temperature: Option<f32>,
    /// Clusters kept by cluster sampling (official 16).
    #[arg(long, default_value_t = 16)]
    top_k_clusters: usize,
    /// Temperature inside the chosen cluster, relative (official 1.0).
    #[arg(long, default_value_t = 1.0)]
    inner_temperature: f32,
    /// Tokens kept by top-k sampling.
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    /// A cluster table (.npy, one label per image code); default: the official CogView2 table.
    #[arg(long)]
    cluster_labels: Option<PathBuf>,
    /// Added to attention scores on text keys (official 1.4).
    #[arg(long, default_value_t = 1.4)]
    text_bias: f32,
    /// Image grid side (official 20).
    #[arg(long, default_value_t = 20)]
    grid: usize,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

pub fn run(args: Args) -> Result<()> {
    if args.num_images == 0 {
        return Err(Error::invalid_input("--num-images", "must be at least 1"));
    }
    let model = Arc::new(CoglmModel::load(&args.model, args.backend.load_options())?);
    let image_vocab = model.config().image_vocab_size;
    let temperature = args.temperature.unwrap_or(args.style.stage1_temperature());
    let sampler: Arc<dyn Sampler> = match args.sampler {
        SamplerKind::TopK => Arc::new(TopKSampler {
            temperature,
            top_k: args.top_k,
        }),
        SamplerKind::Cluster => {
            let labels = match &args.cluster_labels {
                Some(p) => ClusterLabels::from_npy_file(p)?,
                None => ClusterLabels::official(),
            };
            if labels.len() != image_vocab {
                return Err(Error::invalid_input(
                    "--cluster-labels",
                    format!(
                        "the cluster table labels {} codes but the model has {image_vocab} image codes; \
                         pass a matching --cluster-labels or use --sampler top-k",
                        labels.len()
                    ),
                ));
            }
            Arc::new(ClusterSampler {
                labels: Arc::new(labels),
                temperature,
                top_k_clusters: args.top_k_clusters,
                inner_temperature: args.inner_temperature,
            })
        }
    };
    let settings = Stage1Settings {
        layout: Stage1Layout {
            grid_height: args.grid,
            grid_width: args.grid,
            ..Default::default()
        },
        text_bias: args.text_bias,
        max_batch: args.batch_size,
    };
    let generator = CoglmGenerator::new(model, sampler, settings)?;
    let mut ctx = RunContext::with_seed(args.seed);
    if !args.quiet {
        let every = (args.grid * args.grid).max(1) / 4;
        ctx.progress = Some(Arc::new(move |p| {
            if p.step % (every.max(1) * 1) == 0 || p.step == p.total {
                eprintln!("[{}] {}/{} tokens", p.stage, p.step, p.total);
            }
        }));
    }
    let seeds = ctx.image_seeds(args.num_images);
    let grids = generator.generate(&TextTokens(args.text_ids.clone()), &seeds, &ctx)?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    for (grid, seed) in grids.iter().zip(&seeds) {
        let path = args.out.join(format!("grid_{seed}.json"));
        let json = serde_json::json!({
            "height": grid.height, "width": grid.width, "ids": grid.ids,
            "seed": seed, "text_ids": args.text_ids, "model": args.model.display().to_string(),
        });
        std::fs::write(&path, json.to_string()).map_err(|e| Error::io(&path, e))?;
        println!("{}", path.display());
    }
    Ok(())
}
