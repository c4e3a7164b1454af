//! `cogview bench`: stage-1 decoding speed, measured like `tools/bench/coglm_torch_bench.py` measures
//! PyTorch, so the two can be run side by side on the same weights.

use super::BackendArgs;
use cogview::candle::CoglmModel;
use cogview::core::coglm::CoglmMask;
use cogview::core::lm::{AutoregressiveLm, LmInput, LmSession, LogitsRequest};
use cogview::core::sampling::argmax;
use cogview::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Time CogLM's incremental decoding (KV cache) and print one JSON line.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// CogLM weights (SAT folder or safetensors).
    #[arg(long)]
    model: PathBuf,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Timed incremental steps.
    #[arg(long, default_value_t = 64)]
    steps: usize,
    /// Text tokens in the context.
    #[arg(long, default_value_t = 16)]
    text_len: usize,
    #[command(flatten)]
    backend: BackendArgs,
}

pub fn run(args: Args) -> Result<()> {
    if args.batch == 0 || args.steps == 0 {
        return Err(Error::invalid_input(
            "--batch/--steps",
            "must be at least 1",
        ));
    }
    let model = CoglmModel::load(&args.model, args.backend.load_options())?;
    let spec = model.spec();
    let image_vocab = spec.image_vocab_size;
    let text_vocab_start = image_vocab as u32;
    // Context: text ids above the image codes, then <start_of_image> at position 512.
    let mut context: Vec<u32> = (0..args.text_len as u32)
        .map(|i| text_vocab_start + (i * 7919) % (spec.start_of_image_id - text_vocab_start))
        .collect();
    context.push(spec.start_of_image_id);
    let mut positions: Vec<u32> = (0..args.text_len as u32).collect();
    positions.push(512);
    let mask = CoglmMask {
        text_len: args.text_len,
        text_bias: 1.4,
    };
    let capacity = context.len() + args.steps + 1;
    let mut session = model.session(args.batch, capacity)?;
    let tokens: Vec<u32> = (0..args.batch)
        .flat_map(|_| context.iter().copied())
        .collect();
    let logits = session.forward(&LmInput {
        tokens: &tokens,
        positions: &positions,
        bias: &mask.bias_rows(0, context.len(), context.len()),
        logits: LogitsRequest::Last { vocab: image_vocab },
    })?;
    let mut next: Vec<u32> = (0..args.batch)
        .map(|b| argmax(logits.row(b)) as u32)
        .collect();
    let mut step = |j: usize, next: &mut Vec<u32>| -> Result<()> {
        let q = session.cached_len();
        let l = session.forward(&LmInput {
            tokens: next,
            positions: &[513 + j as u32],
            bias: &mask.bias_rows(q, 1, q + 1),
            logits: LogitsRequest::Last { vocab: image_vocab },
        })?;
        *next = (0..args.batch).map(|b| argmax(l.row(b)) as u32).collect();
        Ok(())
    };
    step(0, &mut next)?; // warm-up
    let start = Instant::now();
    for j in 1..=args.steps {
        step(j, &mut next)?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let out = serde_json::json!({
        "impl": "candle", "batch": args.batch, "dtype": args.backend.dtype.to_string(), "steps": args.steps,
        "tokens_per_s": (args.batch * args.steps) as f64 / seconds, "seconds": seconds,
        "threads": std::env::var("RAYON_NUM_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(threads),
    });
    println!("{out}");
    Ok(())
}
