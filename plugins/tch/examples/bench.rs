//! Times the built-in backend against the tch (libtorch) plugin on the same checkpoints, in one
//! process, interleaved: each round runs every backend once per pass, and the backend that goes
//! first rotates from round to round so that drift on a shared machine hits both. The built-in
//! backend runs as its plugin (`libcogview_plugin_candle.so`: the same code behind the same ABI, so
//! both pay the same crossing), so that this crate does not link candle.
//!
//! Passes (`--ops`, default all):
//! - `prefill`: CogLM over text (20) + `<start_of_image>` + 400 image tokens in one forward, image
//!   logits at every position;
//! - `decode`: CogLM's real workload: the 21-position context, then 400 cached one-token steps at
//!   batch 1; only the steps are timed (reported as tokens/s too). With `--int8` the built-in
//!   backend also runs with `weights = "int8"` (libtorch has no such option);
//! - `dsr`, `itersr`: one forward of DSR (20×20 → 60×60) and of ItersR (60×60), batch 1, as the
//!   pipeline assembles their input (`cogview_core::sr::predict_grid`);
//! - `vq160`, `vq480`: the VQ tokenizer's encode (pixels → 20×20 or 60×60 ids, compression 8) and
//!   decode (ids → pixels) of `--image` resized and centre-cropped to 160 or 480 px.
//!
//! Every pass runs once untimed per backend before the timed rounds. Each measurement is one JSON
//! line on stdout (`{"backend": …, "weights": …, "dtype": …, "op": …, "round": …, "seconds": …}`),
//! then a table of the medians.
//!
//!   cargo build --release -p cogview-plugin-candle
//!   COGVIEW_TCH_PLUGIN=$(tools/build-tch-plugin.sh) \
//!     cargo run --release --manifest-path plugins/tch/Cargo.toml --example bench -- \
//!     --coglm tests/fixtures/model-dir/coglm --dsr tests/fixtures/model-dir/cogview2-dsr \
//!     [--itersr DIR] [--vq FILE --image FILE] [--rounds N] [--threads N] [--dtypes f32,bf16] \
//!     [--ops prefill,decode,dsr,itersr,vq160,vq480] [--int8]
//!
//! `COGVIEW_CANDLE_PLUGIN` names the built-in backend's plugin if it is not
//! target/release/libcogview_plugin_candle.so. `tools/bench/bench_backends.sh` runs this beside
//! PyTorch eager on the same weights.

use cogview_core::backend::{Backend, LoadRequest};
use cogview_core::lm::{AutoregressiveLm, LmInput, LogitsRequest};
use cogview_core::sr::{predict_grid, GridPredictor};
use cogview_core::stage1::CoglmMask;
use cogview_core::{Compression, DType, Device, Image, ImageTokenizer, TokenGrid};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The 20 text tokens every pass is given.
fn text() -> Vec<u32> {
    (0..20).map(|i| 512 + 37 * i).collect()
}

/// Text, <start_of_image>, 400 image tokens, with CogView2's positions.
fn sequence(lm: &dyn AutoregressiveLm) -> (Vec<u32>, Vec<u32>, usize) {
    let spec = lm.spec();
    let text = text();
    let mut tokens = text.clone();
    tokens.push(spec.start_of_image_id);
    tokens.extend((0..400).map(|i| (i * 53 % spec.image_vocab_size) as u32));
    let mut positions: Vec<u32> = (0..text.len() as u32).collect();
    positions.extend((0..401).map(|j| 512 + j));
    (tokens, positions, text.len())
}

fn prefill(lm: &dyn AutoregressiveLm) -> Duration {
    let (tokens, positions, text_len) = sequence(lm);
    let mask = CoglmMask { text_len, text_bias: 1.4 };
    let n = tokens.len();
    let bias = mask.bias_rows(0, n, n);
    let vocab = lm.spec().image_vocab_size;
    let t = Instant::now();
    let mut s = lm.new_session(1, n).unwrap();
    s.forward(&LmInput {
        tokens: &tokens,
        positions: &positions,
        bias: &bias,
        logits: LogitsRequest::All { vocab },
    })
    .unwrap();
    t.elapsed()
}

/// The context forward (untimed), then one cached step per remaining token (timed).
fn decode(lm: &dyn AutoregressiveLm) -> Duration {
    let (tokens, positions, text_len) = sequence(lm);
    let mask = CoglmMask { text_len, text_bias: 1.4 };
    let n = tokens.len();
    let vocab = lm.spec().image_vocab_size;
    let first = text_len + 1;
    let mut s = lm.new_session(1, n).unwrap();
    s.forward(&LmInput {
        tokens: &tokens[..first],
        positions: &positions[..first],
        bias: &mask.bias_rows(0, first, first),
        logits: LogitsRequest::Last { vocab },
    })
    .unwrap();
    let t = Instant::now();
    for i in first..n {
        s.forward(&LmInput {
            tokens: &tokens[i..i + 1],
            positions: &positions[i..i + 1],
            bias: &mask.bias_rows(i, 1, i + 1),
            logits: LogitsRequest::Last { vocab },
        })
        .unwrap();
    }
    t.elapsed()
}

/// The decoding steps `decode` times.
const DECODE_STEPS: usize = 400;

struct Args {
    coglm: Option<PathBuf>,
    dsr: Option<PathBuf>,
    itersr: Option<PathBuf>,
    vq: Option<PathBuf>,
    image: Option<PathBuf>,
    rounds: usize,
    threads: usize,
    dtypes: Vec<DType>,
    ops: Vec<String>,
    int8: bool,
}

const ALL_OPS: [&str; 6] = ["prefill", "decode", "dsr", "itersr", "vq160", "vq480"];

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        coglm: None,
        dsr: None,
        itersr: None,
        vq: None,
        image: None,
        rounds: 3,
        threads: 2,
        dtypes: vec![DType::F32, DType::Bf16],
        ops: ALL_OPS.iter().map(|s| s.to_string()).collect(),
        int8: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--int8" {
            a.int8 = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag} takes a positive whole number, not {v:?}"))
        };
        match flag.as_str() {
            "--coglm" => a.coglm = Some(value.into()),
            "--dsr" => a.dsr = Some(value.into()),
            "--itersr" => a.itersr = Some(value.into()),
            "--vq" => a.vq = Some(value.into()),
            "--image" => a.image = Some(value.into()),
            "--rounds" => a.rounds = number(&value)?,
            "--threads" => a.threads = number(&value)?,
            "--dtypes" => {
                a.dtypes = value
                    .split(',')
                    .map(|d| match d {
                        "f32" => Ok(DType::F32),
                        "bf16" => Ok(DType::Bf16),
                        other => Err(format!("--dtypes: {other:?} is not f32 or bf16")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--ops" => {
                a.ops = value.split(',').map(str::to_string).collect();
                if let Some(bad) = a.ops.iter().find(|o| !ALL_OPS.contains(&o.as_str())) {
                    return Err(format!("--ops: {bad:?} is not one of {}", ALL_OPS.join(", ")));
                }
            }
            other => return Err(format!("unknown argument {other} (see the comment at the top of examples/bench.rs)")),
        }
    }
    let need = |op: &str, path: &Option<PathBuf>, flag: &str| -> Result<(), String> {
        if a.ops.iter().any(|o| o.starts_with(op)) && path.is_none() {
            return Err(format!("--ops {op} needs {flag}"));
        }
        Ok(())
    };
    need("prefill", &a.coglm, "--coglm")?;
    need("decode", &a.coglm, "--coglm")?;
    need("dsr", &a.dsr, "--dsr")?;
    need("itersr", &a.itersr, "--itersr")?;
    need("vq", &a.vq, "--vq")?;
    need("vq", &a.image, "--image")?;
    Ok(a)
}

fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "f32",
        DType::Bf16 => "bf16",
        _ => "other",
    }
}

/// One configuration of a pass: which backend, with which weights.
struct Runner<T: ?Sized> {
    backend: &'static str,
    weights: &'static str,
    model: Arc<T>,
}

struct Recorder {
    dtype: DType,
    threads: usize,
    /// (op, backend, weights) → timed seconds, in round order.
    rows: Vec<((String, &'static str, &'static str), Vec<f64>)>,
}

impl Recorder {
    fn record(&mut self, op: &str, backend: &'static str, weights: &'static str, round: usize, d: Duration) {
        let seconds = d.as_secs_f64();
        let per_token = if op == "decode" {
            format!(", \"tokens_per_s\": {:.2}", DECODE_STEPS as f64 / seconds)
        } else {
            String::new()
        };
        println!(
            "{{\"backend\": \"{backend}\", \"weights\": \"{weights}\", \"dtype\": \"{}\", \"op\": \"{op}\", \"round\": {round}, \"threads\": {}, \"seconds\": {seconds:.5}{per_token}}}",
            dtype_name(self.dtype),
            self.threads
        );
        let key = (op.to_string(), backend, weights);
        match self.rows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(seconds),
            None => self.rows.push((key, vec![seconds])),
        }
    }
}

/// Runs `pass` on every runner once untimed, then `rounds` times, rotating the order.
fn interleave<T: ?Sized>(
    rec: &mut Recorder,
    rounds: usize,
    runners: &[Runner<T>],
    passes: &[(&str, &dyn Fn(&Arc<T>) -> Duration)],
) {
    for r in runners {
        for (_, pass) in passes {
            pass(&r.model);
        }
    }
    for round in 0..rounds {
        for k in 0..runners.len() {
            let r = &runners[(round + k) % runners.len()];
            for (op, pass) in passes {
                let d = pass(&r.model);
                rec.record(op, r.backend, r.weights, round, d);
            }
        }
    }
}

/// One runner per backend, each with the model `load` gives it, in the stage's own dtype.
fn load_on_each<T: ?Sized>(
    backends: &[(&'static str, Arc<dyn Backend>)],
    load: impl Fn(&dyn Backend) -> Arc<T>,
) -> Vec<Runner<T>> {
    backends
        .iter()
        .map(|(name, b)| Runner {
            backend: name,
            weights: "dtype",
            model: load(b.as_ref()),
        })
        .collect()
}

/// `path` resized and centre-cropped to `size`, as the pipeline gives images to the tokenizer.
fn square_image(path: &std::path::Path, size: usize) -> Image {
    cogview_image::resize_center_crop(&cogview_image::load_image(path).unwrap(), size).unwrap()
}

fn main() {
    // As the `cogview` command does (src/main.rs): keep large buffers in the heap instead of fresh
    // page-faulted mmaps, for both backends.
    // SAFETY: mallopt only changes glibc's thresholds; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let lib = PathBuf::from(
        std::env::var_os("COGVIEW_TCH_PLUGIN").expect("set COGVIEW_TCH_PLUGIN to the built plugin"),
    );
    let tch = cogview_plugin_host::load_path(&lib)
        .unwrap()
        .backend_for(Device::Cpu)
        .unwrap();
    eprintln!("tch: {}", tch.describe());
    let candle_lib = std::env::var_os("COGVIEW_CANDLE_PLUGIN")
        .map_or_else(|| PathBuf::from("target/release/libcogview_plugin_candle.so"), PathBuf::from);
    let candle = cogview_plugin_host::load_path(&candle_lib)
        .unwrap()
        .backend_for(Device::Cpu)
        .unwrap();
    eprintln!("built-in: {}", candle.describe());
    let backends: [(&'static str, Arc<dyn Backend>); 2] = [("built-in", candle), ("tch", tch)];
    let has = |op: &str| args.ops.iter().any(|o| o == op);
    let mut tables = Vec::new();
    for &dtype in &args.dtypes {
        let mut rec = Recorder { dtype, threads: args.threads, rows: Vec::new() };
        let request = |options: &str| {
            let mut req = LoadRequest::new(Device::Cpu, dtype);
            req.num_threads = args.threads;
            req.options_toml = options.to_string();
            req
        };
        if has("prefill") || has("decode") {
            let path = args.coglm.as_ref().unwrap();
            let mut runners = load_on_each(&backends, |b| b.load_lm(path, &request("")).unwrap());
            let prefill_pass = |m: &Arc<dyn AutoregressiveLm>| prefill(m.as_ref());
            let decode_pass = |m: &Arc<dyn AutoregressiveLm>| decode(m.as_ref());
            let mut passes: Vec<(&str, &dyn Fn(&Arc<dyn AutoregressiveLm>) -> Duration)> =
                Vec::new();
            if has("prefill") {
                passes.push(("prefill", &prefill_pass));
            }
            if has("decode") {
                passes.push(("decode", &decode_pass));
            }
            interleave(&mut rec, args.rounds, &runners, &passes);
            if args.int8 && has("decode") {
                // int8 weights only change the memory-bound steps; the built-in backend's dtype
                // runner goes beside it again so that the ratio is taken in the same minutes.
                runners.truncate(1);
                runners.push(Runner {
                    backend: "built-in",
                    weights: "int8",
                    model: backends[0].1.load_lm(path, &request("weights = \"int8\"")).unwrap(),
                });
                let int8_passes: Vec<(&str, &dyn Fn(&Arc<dyn AutoregressiveLm>) -> Duration)> =
                    vec![("decode_int8_pair", &decode_pass)];
                interleave(&mut rec, args.rounds, &runners, &int8_passes);
            }
        }
        for (op, path) in [("dsr", &args.dsr), ("itersr", &args.itersr)] {
            if !has(op) {
                continue;
            }
            let path = path.as_ref().unwrap();
            let runners =
                load_on_each(&backends, |b| b.load_grid_predictor(path, &request("")).unwrap());
            let spec = runners[0].model.spec().unwrap();
            let text = text();
            let side = if op == "dsr" { spec.low } else { spec.high };
            let grid = TokenGrid::new(
                side,
                side,
                (0..side * side).map(|i| (i * 7 % spec.image_vocab_size) as u32).collect(),
            )
            .unwrap();
            let pass = |m: &Arc<dyn GridPredictor>| {
                let t = Instant::now();
                predict_grid(m.as_ref(), &text, &grid).unwrap();
                t.elapsed()
            };
            interleave(&mut rec, args.rounds, &runners, &[(op, &pass)]);
        }
        for (op, size) in [("vq160", 160), ("vq480", 480)] {
            if !has(op) {
                continue;
            }
            let path = args.vq.as_ref().unwrap();
            let runners =
                load_on_each(&backends, |b| b.load_image_tokenizer(path, &request("")).unwrap());
            let image = square_image(args.image.as_ref().unwrap(), size);
            let grid = runners[0].model.encode(&image, Compression::X8).unwrap();
            let encode = |m: &Arc<dyn ImageTokenizer>| {
                let t = Instant::now();
                m.encode(&image, Compression::X8).unwrap();
                t.elapsed()
            };
            let decode = |m: &Arc<dyn ImageTokenizer>| {
                let t = Instant::now();
                m.decode(&grid, Compression::X8).unwrap();
                t.elapsed()
            };
            let (enc, dec) = (format!("{op} encode"), format!("{op} decode"));
            interleave(&mut rec, args.rounds, &runners, &[(&enc, &encode), (&dec, &decode)]);
        }
        tables.push(rec);
    }
    println!();
    println!("medians of {} timed rounds, {} threads, seconds (decode: tokens/s)", args.rounds, args.threads);
    println!("| dtype | pass | backend | weights | median | best | worst |");
    println!("|---|---|---|---|---|---|---|");
    for rec in &tables {
        for ((op, backend, weights), v) in &rec.rows {
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            let show = |s: f64| {
                if op.starts_with("decode") {
                    format!("{:.1} tok/s", DECODE_STEPS as f64 / s)
                } else {
                    format!("{s:.3}")
                }
            };
            println!(
                "| {} | {op} | {backend} | {weights} | {} | {} | {} |",
                dtype_name(rec.dtype),
                show(v[v.len() / 2]),
                show(v[0]),
                show(v[v.len() - 1])
            );
        }
    }
}
