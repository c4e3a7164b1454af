//! Times the tch plugin against the candle backend on the same model, interleaved: CogLM over a
//! full stage-1 sequence (one prefill pass over text + <start_of_image> + 400 image tokens, and the
//! real workload: the text, then 400 cached one-token steps) and one DSR predict, in f32 and bf16
//! on the CPU. Candle runs as its plugin (the built-in backend's code behind the same ABI, so both
//! pay the same crossing), so that this crate does not link candle; `COGVIEW_CANDLE_PLUGIN` names
//! it if it is not target/release/libcogview_plugin_candle.so.
//!
//!   cargo build --release -p cogview-plugin-candle
//!   COGVIEW_TCH_PLUGIN=$(tools/build-tch-plugin.sh) \
//!     cargo run --release --manifest-path plugins/tch/Cargo.toml --example bench -- \
//!     tests/fixtures/model-dir/coglm tests/fixtures/model-dir/cogview2-dsr [repetitions] [threads]

use cogview_core::backend::{Backend, LoadRequest};
use cogview_core::stage1::CoglmMask;
use cogview_core::lm::{AutoregressiveLm, LmInput, LogitsRequest};
use cogview_core::sr::predict_grid;
use cogview_core::{DType, Device, TokenGrid};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Text, <start_of_image>, 400 image tokens, with CogView2's positions.
fn sequence(lm: &dyn AutoregressiveLm) -> (Vec<u32>, Vec<u32>, usize) {
    let spec = lm.spec();
    let text: Vec<u32> = (0..20).map(|i| 512 + 37 * i).collect();
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

fn decode(lm: &dyn AutoregressiveLm) -> Duration {
    let (tokens, positions, text_len) = sequence(lm);
    let mask = CoglmMask { text_len, text_bias: 1.4 };
    let n = tokens.len();
    let vocab = lm.spec().image_vocab_size;
    let first = text_len + 1;
    let t = Instant::now();
    let mut s = lm.new_session(1, n).unwrap();
    s.forward(&LmInput {
        tokens: &tokens[..first],
        positions: &positions[..first],
        bias: &mask.bias_rows(0, first, first),
        logits: LogitsRequest::Last { vocab },
    })
    .unwrap();
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

fn main() {
    // As the `cogview` command does (src/main.rs): keep large buffers in the heap instead of fresh
    // page-faulted mmaps, for both backends.
    // SAFETY: mallopt only changes glibc's thresholds; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
    let args: Vec<String> = std::env::args().collect();
    let coglm = PathBuf::from(args.get(1).map(String::as_str).unwrap_or("tests/fixtures/model-dir/coglm"));
    let dsr_path = PathBuf::from(
        args.get(2)
            .map(String::as_str)
            .unwrap_or("tests/fixtures/model-dir/cogview2-dsr"),
    );
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(7);
    let threads: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(2);
    let lib = PathBuf::from(
        std::env::var_os("COGVIEW_TCH_PLUGIN").expect("set COGVIEW_TCH_PLUGIN to the built plugin"),
    );
    let tch = cogview_plugin_host::load_path(&lib)
        .unwrap()
        .backend_for(Device::Cpu)
        .unwrap();
    println!("tch: {}", tch.describe());
    let candle_lib = std::env::var_os("COGVIEW_CANDLE_PLUGIN")
        .map_or_else(|| PathBuf::from("target/release/libcogview_plugin_candle.so"), PathBuf::from);
    let candle = cogview_plugin_host::load_path(&candle_lib)
        .unwrap()
        .backend_for(Device::Cpu)
        .unwrap();
    let backends: Vec<(&str, Arc<dyn Backend>)> = vec![("candle plugin", candle), ("tch plugin", tch)];
    let low = {
        let (c, _) = cogview_model::inspect::sr_config(&dsr_path).unwrap();
        c.low
    };
    let grid = TokenGrid::new(low, low, (0..low * low).map(|i| (i * 7 % 512) as u32).collect())
        .unwrap();
    let text: Vec<u32> = (0..20).map(|i| 512 + 37 * i).collect();
    println!(
        "models: {} and {}, {reps} interleaved repetitions, medians, {threads} threads",
        coglm.display(),
        dsr_path.display()
    );
    println!("| dtype | backend | CogLM prefill (421 tokens) | CogLM 20 + 401 cached steps | DSR predict |");
    println!("|---|---|---|---|---|");
    for dtype in [DType::F32, DType::Bf16] {
        let mut req = LoadRequest::new(Device::Cpu, dtype);
        req.num_threads = threads;
        let models: Vec<_> = backends
            .iter()
            .map(|(name, b)| {
                (
                    *name,
                    b.load_lm(&coglm, &req).unwrap(),
                    b.load_grid_predictor(&dsr_path, &req).unwrap(),
                )
            })
            .collect();
        let mut times = vec![[Vec::new(), Vec::new(), Vec::new()]; models.len()];
        for rep in 0..reps + 1 {
            for (i, (_, lm, dsr)) in models.iter().enumerate() {
                let p = prefill(lm.as_ref());
                let d = decode(lm.as_ref());
                // As the pipeline runs it: the core assembles the input, the backend runs it.
                let t = Instant::now();
                predict_grid(dsr.as_ref(), &text, &grid).unwrap();
                let s = t.elapsed();
                if rep > 0 {
                    // The first round warms caches and allocators.
                    times[i][0].push(p);
                    times[i][1].push(d);
                    times[i][2].push(s);
                }
            }
        }
        for ((name, _, _), t) in models.iter().zip(times) {
            let [p, d, s] = t;
            println!(
                "| {dtype:?} | {name} | {:.2} ms | {:.1} ms | {:.2} ms |",
                median(p).as_secs_f64() * 1e3,
                median(d).as_secs_f64() * 1e3,
                median(s).as_secs_f64() * 1e3
            );
        }
    }
}
