//! CogLM in Rust against the official model code (SwissArmyTransformer running on small random
//! checkpoints saved in the official SAT layout; see tests/fixtures/coglm/README.md).

use cogview_backend_tests as common;

use cogview::candle::{CoglmModel, LoadOptions};
use cogview::core::lm::{AutoregressiveLm, LmInput, LmSession, LogitsRequest};
use cogview::core::npy::read_npy_file;
use cogview::core::sampling::{Sampler, TopKSampler};
use cogview::core::stage1::{full_logits, CoglmGenerator, CoglmMask, Stage1Layout, Stage1Settings};
use cogview::core::Rng;
use cogview::{DType, GlobalGenerator, RunContext, TextTokens};
use common::*;
use std::sync::Arc;

const MODELS: [&str; 2] = ["tiny-f32", "tiny-f16"];
const CASES: [&str; 3] = ["bias14", "bias0", "long"];

fn load(model: &str, dtype: DType) -> CoglmModel {
    CoglmModel::load(
        coglm_fixture(model),
        LoadOptions {
            dtype,
            ..Default::default()
        },
    )
    .unwrap()
}

fn logits_of(model: &CoglmModel, c: &Case) -> Vec<f32> {
    let mask = CoglmMask {
        text_len: c.text_len,
        text_bias: c.text_bias,
    };
    full_logits(
        model,
        &c.tokens,
        &c.positions,
        mask,
        model.spec().vocab_size,
    )
    .unwrap()
    .data
}

#[test]
fn full_forward_matches_the_official_logits_in_f32() {
    for m in MODELS {
        let model = load(m, DType::F32);
        for name in CASES {
            let (c, want, shape) = case(m, name);
            let got = logits_of(&model, &c);
            assert_eq!(shape, vec![c.tokens.len(), model.spec().vocab_size]);
            let d = max_abs_diff(&got, &want);
            eprintln!("{m}/{name}: max |diff| = {d:e}");
            assert!(d <= 1e-4, "{m}/{name}: max |diff| {d} > 1e-4");
        }
    }
}

#[test]
fn the_text_bias_changes_image_rows_and_not_text_rows() {
    // Independent check of where the bias acts: for text queries it is a uniform shift over their
    // visible keys, so it cannot change their output; image queries do change.
    let model = load("tiny-f32", DType::F32);
    let (c14, _, _) = case("tiny-f32", "bias14");
    let (c0, _, _) = case("tiny-f32", "bias0");
    let (a, b) = (logits_of(&model, &c14), logits_of(&model, &c0));
    let v = model.spec().vocab_size;
    let text = c14.text_len * v;
    assert!(max_abs_diff(&a[..text], &b[..text]) < 1e-4);
    assert!(max_abs_diff(&a[text..], &b[text..]) > 0.1);
}

/// Prefills text + <start_of_image>, then feeds the image tokens one at a time with the cache,
/// returning the image-vocabulary logits that predict each image token.
fn cached_steps(model: &CoglmModel, c: &Case, batch: usize) -> Vec<Vec<f32>> {
    let ctx = c.text_len + 1;
    let n = c.tokens.len();
    let mask = CoglmMask {
        text_len: c.text_len,
        text_bias: c.text_bias,
    };
    let vocab = model.spec().image_vocab_size;
    let mut s = model.session(batch, n).unwrap();
    let tokens: Vec<u32> = (0..batch)
        .flat_map(|_| c.tokens[..ctx].iter().copied())
        .collect();
    let mut out = Vec::new();
    let l = s
        .forward(&LmInput {
            tokens: &tokens,
            positions: &c.positions[..ctx],
            bias: &mask.bias_rows(0, ctx, ctx),
            logits: LogitsRequest::Last { vocab },
        })
        .unwrap();
    out.push(l);
    for q in ctx..n {
        let l = s
            .forward(&LmInput {
                tokens: &vec![c.tokens[q]; batch],
                positions: &c.positions[q..q + 1],
                bias: &mask.bias_rows(q, 1, q + 1),
                logits: LogitsRequest::Last { vocab },
            })
            .unwrap();
        out.push(l);
    }
    // Every batch row saw the same tokens, so every row must agree; return row 0.
    for l in &out {
        for b in 1..batch {
            assert_eq!(l.row(0), l.row(b));
        }
    }
    out.into_iter().map(|l| l.row(0).to_vec()).collect()
}

#[test]
fn incremental_decoding_with_the_cache_equals_the_full_forward() {
    for m in MODELS {
        let model = load(m, DType::F32);
        let iv = model.spec().image_vocab_size;
        let v = model.spec().vocab_size;
        for name in ["bias14", "long"] {
            let (c, want, _) = case(m, name);
            let steps = cached_steps(&model, &c, 3);
            for (j, row) in steps.iter().enumerate() {
                let pos = c.text_len + j; // the row predicting image token j
                let d = max_abs_diff(row, &want[pos * v..pos * v + iv]);
                assert!(d <= 1e-4, "{m}/{name} step {j}: {d}");
            }
        }
    }
}

#[test]
fn incremental_decoding_matches_the_official_cached_path() {
    // SAT's own filling_sequence + CachedAutoregressiveMixin, recorded by the fixture script.
    let model = load("tiny-f32", DType::F32);
    let (c, _, _) = case("tiny-f32", "bias14");
    let official = read_npy_file(coglm_fixture("tiny-f32").join("cached_steps.npy")).unwrap();
    let steps = cached_steps(&model, &c, 1);
    let iv = model.spec().image_vocab_size;
    assert_eq!(official.shape, vec![steps.len() - 1, iv]);
    let want = official.to_f32();
    for j in 0..official.shape[0] {
        let d = max_abs_diff(&steps[j], &want[j * iv..(j + 1) * iv]);
        assert!(d <= 1e-4, "step {j}: {d}");
    }
}

#[test]
fn half_precision_stays_close_to_f32() {
    // f16 keeps 11 significant bits, bf16 8; over a few layers the logits (|x| up to ~15) move by
    // a few 1e-2 (f16) or 1e-1 (bf16). The bounds catch wrong maths, not rounding.
    for m in MODELS {
        let reference = load(m, DType::F32);
        let (c, _, _) = case(m, "long");
        let want = logits_of(&reference, &c);
        for (dtype, tol) in [(DType::F16, 0.1), (DType::Bf16, 0.5)] {
            let got = logits_of(&load(m, dtype), &c);
            let d = max_abs_diff(&got, &want);
            eprintln!("{m} {dtype}: max |diff| vs f32 = {d}");
            assert!(d < tol, "{m} {dtype}: {d}");
        }
    }
}

#[test]
fn safetensors_conversion_gives_identical_logits() {
    use cogview::checkpoint::{write_safetensors, Checkpoint, SatFolder};
    let dir = tempfile::tempdir().unwrap();
    let sat = SatFolder::open(coglm_fixture("tiny-f16")).unwrap();
    let ckpt = Checkpoint::open(&sat.model_file, None).unwrap();
    let mut meta = std::collections::HashMap::new();
    meta.insert(
        "model_config".to_string(),
        std::fs::read_to_string(&sat.config_file).unwrap(),
    );
    let out = dir.path().join("coglm.safetensors");
    let n = write_safetensors(&ckpt, |_| true, meta, &out).unwrap();
    assert_eq!(n, ckpt.len());
    let back = Checkpoint::open(&out, None).unwrap();
    for name in ckpt.names() {
        assert_eq!(back.info(name), ckpt.info(name));
        assert_eq!(back.bytes(name).unwrap(), ckpt.bytes(name).unwrap());
    }
    let (c, _, _) = case("tiny-f16", "bias14");
    let from_sat = logits_of(&load("tiny-f16", DType::F32), &c);
    let from_st = logits_of(&CoglmModel::load(&out, LoadOptions::default()).unwrap(), &c);
    assert_eq!(from_sat, from_st);
}

fn generator(model: &str) -> CoglmGenerator {
    let model = Arc::new(load(model, DType::F32));
    let sampler = Arc::new(TopKSampler {
        temperature: 1.0,
        top_k: 40,
    });
    CoglmGenerator::new(
        model,
        sampler,
        Stage1Settings {
            max_batch: 4,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn seeded_stage1_generation_is_reproducible() {
    let g = generator("tiny-f16");
    let text = TextTokens(vec![1049, 1176, 1112, 1023]);
    let ctx = RunContext::with_seed(77);
    let seeds = ctx.image_seeds(3);
    let a = g.generate(&text, &seeds, &ctx).unwrap();
    let b = g.generate(&text, &seeds, &ctx).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 3);
    for grid in &a {
        assert_eq!((grid.height, grid.width, grid.ids.len()), (20, 20, 400));
        assert!(
            grid.ids.iter().all(|&t| t < 1000),
            "only image codes are generated"
        );
    }
    assert_ne!(a[0], a[1], "each image has its own seed");
    // Image 1 of the batch is reproduced alone from its own seed.
    let alone = g.generate(&text, &[seeds[1]], &ctx).unwrap();
    assert_eq!(alone[0], a[1]);
}

/// Classifier-free guidance against a reference built from uncached whole-sequence forwards:
/// at every step the conditional logits (text, `<start_of_image>`, the image so far) and the
/// unconditional ones (`<start_of_image>`, the image so far) are computed from scratch, combined
/// as `u + s·(c − u)` and sampled with the image's own generator.
#[test]
fn guided_generation_samples_the_guided_logits_of_uncached_forwards() {
    let model = Arc::new(load("tiny-f32", DType::F32));
    let sampler = TopKSampler {
        temperature: 1.0,
        top_k: 40,
    };
    let layout = Stage1Layout {
        grid_height: 3,
        grid_width: 4,
        ..Default::default()
    };
    let settings = |guidance| Stage1Settings {
        layout,
        max_batch: 2,
        guidance,
        ..Default::default()
    };
    let guided =
        CoglmGenerator::new(model.clone(), Arc::new(sampler.clone()), settings(2.5)).unwrap();
    let plain =
        CoglmGenerator::new(model.clone(), Arc::new(sampler.clone()), settings(1.0)).unwrap();
    let text = TextTokens(vec![1049, 1176, 1112]);
    let seeds = [5u64, 6, 7];
    let ctx = RunContext::with_seed(5);
    let got = guided.generate(&text, &seeds, &ctx).unwrap();

    let spec = model.spec();
    let vocab = spec.image_vocab_size;
    let soi = spec.start_of_image_id;
    let last_row = |tokens: &[u32], positions: &[u32], text_len: usize| -> Vec<f32> {
        let mask = CoglmMask {
            text_len,
            text_bias: Stage1Settings::default().text_bias,
        };
        let all = full_logits(model.as_ref(), tokens, positions, mask, vocab).unwrap();
        all.row(all.rows - 1).to_vec()
    };
    for (grid, &seed) in got.iter().zip(&seeds) {
        let mut rng = Rng::from_seed(seed);
        let mut image: Vec<u32> = Vec::new();
        for j in 0..layout.image_tokens() {
            let image_positions = (0..j).map(|i| layout.image_position(i));
            let mut c_tokens = text.0.clone();
            c_tokens.push(soi);
            c_tokens.extend(&image);
            let mut c_positions: Vec<u32> = (0..text.0.len() as u32).collect();
            c_positions.push(layout.start_of_image_position as u32);
            c_positions.extend(image_positions.clone());
            let c = last_row(&c_tokens, &c_positions, text.0.len());
            let mut u_tokens = vec![soi];
            u_tokens.extend(&image);
            let mut u_positions = vec![layout.start_of_image_position as u32];
            u_positions.extend(image_positions);
            let u = last_row(&u_tokens, &u_positions, 0);
            let mixed: Vec<f32> = c.iter().zip(&u).map(|(c, u)| u + 2.5 * (c - u)).collect();
            image.push(sampler.sample(&mixed, &mut rng).unwrap());
        }
        assert_eq!(grid.ids, image, "seed {seed}");
    }
    let unguided = plain.generate(&text, &seeds, &ctx).unwrap();
    assert_ne!(got, unguided, "guidance changes what is drawn");
    // A scale that is not a number, or below zero, is refused when the generator is made.
    for bad in [f32::NAN, -1.0, f32::INFINITY] {
        let err = CoglmGenerator::new(model.clone(), Arc::new(sampler.clone()), settings(bad))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("guidance"), "{err}");
    }
}

#[test]
fn generation_reports_progress_and_stops_when_cancelled() {
    let g = generator("tiny-f32");
    let text = TextTokens(vec![1049, 1176]);
    let ctx = RunContext::with_seed(1);
    let cancel = ctx.cancel.clone();
    let steps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = steps.clone();
    let ctx = RunContext {
        progress: Some(Arc::new(move |p| {
            assert_eq!(p.stage, "coglm");
            if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 9 {
                cancel.cancel();
            }
        })),
        ..ctx
    };
    let err = g.generate(&text, &[1], &ctx).unwrap_err();
    assert!(matches!(err, cogview::Error::Cancelled), "{err}");
    assert_eq!(steps.load(std::sync::atomic::Ordering::SeqCst), 10);
}
