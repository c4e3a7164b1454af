//! `cogview bench`: stage-1 decoding speed, measured like `tools/bench/coglm_torch_bench.py` measures
//! PyTorch, so the two can be run side by side on the same weights.

use super::backend_args::BackendArgs;
use cogview::candle::CoglmModel;
use cogview::core::lm::{AutoregressiveLm, LmInput, LmSession, LogitsRequest};
use cogview::core::sampling::argmax;
use cogview::core::stage1::CoglmMask;
use cogview::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Measure speed (one JSON line per measurement); see docs/benchmarks.md.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// CogLM's incremental decoding with the KV cache (stage 1).
    Coglm(CoglmArgs),
    /// The image tokenizer: encode (pixels → ids) and decode (ids → pixels) of one image, in the
    /// dtype given (`--dtype bf16` on the CPU: the convolutions on the bf16 GEMM, activations f32).
    Vq(VqArgs),
    /// One forward pass of DSR or ItersR (a folder holding `dsr/` and `itersr/`).
    Sr(SrArgs),
    /// The CPU matrix-product kernels alone: `C [m, n] = A [m, k] · Wᵀ` in f32 (candle's product,
    /// and the AVX-512 kernel where the CPU has it) and bf16 on every kernel path this CPU has
    /// (COGVIEW_CPU_KERNELS names them), in GFLOP/s.
    Gemm(GemmArgs),
}

#[derive(Debug, clap::Args)]
pub struct GemmArgs {
    /// Rows of A (tokens).
    #[arg(long, default_value_t = 4096)]
    m: usize,
    /// Inner dimension (input features).
    #[arg(long, default_value_t = 768)]
    k: usize,
    /// Columns of C (output features).
    #[arg(long, default_value_t = 3072)]
    n: usize,
    /// Timed repetitions after one warm-up; the best is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
}

fn gemm(args: GemmArgs) -> Result<()> {
    use cogview::candle::cpu_kernels::CpuKernels;
    use cogview::candle::{time_gemm, GemmKind};
    let mut kinds = vec![("f32", "candle", GemmKind::CandleF32)];
    if CpuKernels::selected().uses_avx512() {
        kinds.push(("f32", "avx512", GemmKind::F32));
    }
    kinds.extend(
        CpuKernels::available_paths()
            .into_iter()
            .map(|k| ("bf16", k.name(), GemmKind::Bf16(k))),
    );
    for (dtype, kernels, kind) in kinds {
        match time_gemm(kind, args.m, args.k, args.n, args.repeats) {
            Ok(seconds) => {
                let flop = 2.0 * (args.m * args.n * args.k) as f64;
                let out = serde_json::json!({
                    "impl": "candle", "op": "gemm", "dtype": dtype, "kernels": kernels,
                    "m": args.m, "k": args.k, "n": args.n, "seconds": seconds,
                    "gflops": flop / seconds / 1e9, "threads": threads(),
                });
                println!("{out}");
            }
            Err(e) => eprintln!("{dtype} {kernels}: {e}"),
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct SrArgs {
    /// A folder with `dsr/` and `itersr/` checkpoints (tools/bench/sr_torch_bench.py --make-model).
    #[arg(long)]
    model: PathBuf,
    /// dsr or itersr.
    #[arg(long)]
    which: String,
    #[arg(long, default_value_t = 16)]
    text_len: usize,
    #[arg(long, default_value_t = 2)]
    repeats: usize,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Peak resident memory of this process (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kb| kb * 1024)
}

fn sr(args: SrArgs) -> Result<()> {
    let model =
        cogview::candle::SrModel::load(args.model.join(&args.which), args.backend.load_options())?;
    let c = model.config().clone();
    let iv = c.backbone.image_vocab_size as u32;
    let text: Vec<u32> = (0..args.text_len as u32).map(|i| iv + 1 + i * 7).collect();
    let lopar = cogview::core::lopar::Lopar::default();
    let mask = lopar.mask(1, c.high, c.high, None)?;
    let grid: Vec<u32> = (0..(c.high * c.high) as u32)
        .map(|i| {
            if mask[i as usize] {
                c.backbone.start_of_image_id
            } else {
                (i * 7919) % iv
            }
        })
        .collect();
    let low: Vec<u32> = (0..(c.low * c.low) as u32)
        .map(|i| (i * 7919) % iv)
        .collect();
    let (_, seconds) = best_of(args.repeats, || match c.kind {
        cogview::candle::SrKind::Dsr => model.dsr_logits(&text, &low, c.backbone.start_of_image_id),
        cogview::candle::SrKind::Itersr => model.itersr_logits(&text, &grid),
    })?;
    let out = serde_json::json!({
        "impl": "candle", "which": args.which, "dtype": args.backend.dtype.to_string(), "seconds": seconds,
        "peak_rss_bytes": peak_rss(), "threads": threads(), "text_len": args.text_len,
    });
    println!("{out}");
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    match args.what {
        What::Coglm(a) => coglm(a),
        What::Vq(a) => vq(a),
        What::Sr(a) => sr(a),
        What::Gemm(a) => gemm(a),
    }
}

#[derive(Debug, clap::Args)]
pub struct VqArgs {
    /// ice_image.pt, safetensors or a folder holding one.
    #[arg(long)]
    tokenizer: PathBuf,
    /// The image (resized and centre-cropped to --size first).
    #[arg(long)]
    image: PathBuf,
    #[arg(long, default_value_t = 160)]
    size: usize,
    #[arg(long, default_value_t = 8)]
    compression: usize,
    /// Timed repetitions after one warm-up; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[command(flatten)]
    backend: BackendArgs,
}

fn best_of<T>(repeats: usize, mut f: impl FnMut() -> Result<T>) -> Result<(T, f64)> {
    let mut out = f()?; // warm-up
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        out = f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok((out, best))
}

fn vq(args: VqArgs) -> Result<()> {
    use cogview::ImageTokenizer;
    let compression = cogview::Compression::from_factor(args.compression)?;
    let vq = cogview::candle::VqTokenizer::load(&args.tokenizer, args.backend.load_options())?;
    let image =
        cogview::image::resize_center_crop(&cogview::image::load_image(&args.image)?, args.size)?;
    let (grid, enc) = best_of(args.repeats, || vq.encode(&image, compression))?;
    let (_, dec) = best_of(args.repeats, || vq.decode_tensor(&grid, compression))?;
    // bf16 on the CPU: f32 activations, convolutions on the bf16 GEMM on this kernel path.
    let kernels = (args.backend.dtype == cogview::DType::Bf16
        && args.backend.device == cogview::Device::Cpu)
        .then(|| cogview::candle::cpu_kernels::CpuKernels::selected().name());
    for (op, seconds) in [("encode", enc), ("decode", dec)] {
        let out = serde_json::json!({
            "impl": "candle", "op": op, "size": args.size, "compression": args.compression,
            "dtype": args.backend.dtype.to_string(), "kernels": kernels, "seconds": seconds,
            "threads": threads(), "peak_rss_bytes": peak_rss(),
        });
        println!("{out}");
    }
    Ok(())
}

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Time CogLM's incremental decoding (KV cache) and print one JSON line.
#[derive(Debug, clap::Args)]
pub struct CoglmArgs {
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
    /// Instead of decoding, time the prefill: one forward over the text, <start_of_image> and
    /// image tokens up to this many positions in all (421 = 20 text + 1 + 400 image tokens, a
    /// whole stage-1 sequence), with the image logits of every position.
    #[arg(long)]
    prefill: Option<usize>,
    /// Timed prefills (with --prefill) after one warm-up; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Times one prefill of `total` positions (see `CoglmArgs::prefill`).
fn coglm_prefill(args: &CoglmArgs, model: &CoglmModel, total: usize) -> Result<()> {
    let spec = model.spec();
    let image_vocab = spec.image_vocab_size;
    if total <= args.text_len + 1 {
        return Err(Error::invalid_input(
            "--prefill",
            "must exceed --text-len + 1 (the text and <start_of_image>)",
        ));
    }
    let text_vocab_start = image_vocab as u32;
    let mut tokens: Vec<u32> = (0..args.text_len as u32)
        .map(|i| text_vocab_start + (i * 7919) % (spec.start_of_image_id - text_vocab_start))
        .collect();
    tokens.push(spec.start_of_image_id);
    let images = total - tokens.len();
    tokens.extend((0..images as u32).map(|i| (i * 53) % image_vocab as u32));
    let mut positions: Vec<u32> = (0..args.text_len as u32).collect();
    positions.extend((0..=images as u32).map(|j| 512 + j));
    let mask = CoglmMask {
        text_len: args.text_len,
        text_bias: 1.4,
    };
    let bias = mask.bias_rows(0, total, total);
    let (_, seconds) = best_of(args.repeats, || {
        let mut s = model.session(1, total)?;
        s.forward(&LmInput {
            tokens: &tokens,
            positions: &positions,
            bias: &bias,
            logits: LogitsRequest::All { vocab: image_vocab },
        })
        .map(|l| l.row(0)[0])
    })?;
    let out = serde_json::json!({
        "impl": "candle", "op": "prefill", "tokens": total, "dtype": args.backend.dtype.to_string(), "weights": args.backend.weights,
        "seconds": seconds, "threads": threads(),
    });
    println!("{out}");
    Ok(())
}

fn coglm(args: CoglmArgs) -> Result<()> {
    if args.batch == 0 || args.steps == 0 {
        return Err(Error::invalid_input(
            "--batch/--steps",
            "must be at least 1",
        ));
    }
    let model = CoglmModel::load(&args.model, args.backend.load_options())?;
    if let Some(total) = args.prefill {
        return coglm_prefill(&args, &model, total);
    }
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
    let out = serde_json::json!({
        "impl": "candle", "batch": args.batch, "dtype": args.backend.dtype.to_string(), "weights": args.backend.weights, "steps": args.steps,
        "tokens_per_s": (args.batch * args.steps) as f64 / seconds, "seconds": seconds,
        "threads": threads(),
    });
    println!("{out}");
    Ok(())
}
