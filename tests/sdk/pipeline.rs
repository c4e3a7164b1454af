//! The pipeline from Rust, end to end on the tiny official-layout folder
//! (tests/fixtures/model-dir: random weights, so the images are noise; what is tested is the
//! wiring, determinism, low-memory behaviour and the dry-run arithmetic).

use cogview_backend_tests as common;

use cogview::checkpoint::Checkpoint;
use cogview::core::context::Progress;
use cogview::pipeline::settings::dsr_recipe;
use cogview::pipeline::{dry_run, Geometry};
use cogview::{Pipeline, PipelineConfig, RunContext, Settings};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

fn model_dir() -> PathBuf {
    common::fixtures().join("model-dir")
}

fn config() -> PipelineConfig {
    PipelineConfig {
        model_dir: Some(model_dir()),
        ..Default::default()
    }
}

fn pipeline(cfg: &PipelineConfig, sr: bool) -> Pipeline {
    Pipeline::from_settings(Settings::resolve(cfg, sr).unwrap()).unwrap()
}

#[test]
fn generation_is_deterministic_per_seed_and_independent_of_the_batch() {
    let p = pipeline(&config(), false);
    let ctx = RunContext::with_seed(40);
    // Three images decoded together (batch 8 by default)...
    let together = p.generate("a red circle", 3, true, &ctx).unwrap();
    assert_eq!(
        together.iter().map(|g| g.seed).collect::<Vec<_>>(),
        [40, 41, 42]
    );
    // ...equal each image made alone with its own seed, and a second run.
    for g in &together {
        let alone = p
            .generate("a red circle", 1, true, &RunContext::with_seed(g.seed))
            .unwrap();
        assert_eq!(alone[0].low_res, g.low_res, "seed {}", g.seed);
        assert_eq!(alone[0].image, g.image, "seed {}", g.seed);
    }
    // Different seeds give different grids.
    assert_ne!(together[0].low_res, together[1].low_res);
    // A batch of 2 (chunks 2 + 1) gives the same images as a batch of 8.
    let mut cfg = config();
    cfg.coglm.batch_size = Some(2);
    let small_batches = pipeline(&cfg, false)
        .generate("a red circle", 3, true, &ctx)
        .unwrap();
    for (a, b) in together.iter().zip(&small_batches) {
        assert_eq!(a.low_res, b.low_res);
    }
}

#[test]
fn first_stage_images_are_the_160_px_decode_enlarged_three_times() {
    let p = pipeline(&config(), false);
    let g = &p
        .generate("a blue square", 1, true, &RunContext::with_seed(3))
        .unwrap()[0];
    assert_eq!((g.low_res.height, g.low_res.width), (20, 20));
    assert!(g.high_res.is_none());
    assert_eq!((g.image.width, g.image.height), (480, 480));
    let small = p
        .image_tokenizer()
        .unwrap()
        .decode(&g.low_res, cogview::Compression::X8)
        .unwrap();
    assert_eq!((small.width, small.height), (160, 160));
    for y in 0..480 {
        for x in 0..480 {
            let big = &g.image.pixels[(y * 480 + x) * 3..][..3];
            let src = &small.pixels[((y / 3) * 160 + x / 3) * 3..][..3];
            assert_eq!(big, src, "pixel ({x}, {y})");
        }
    }
}

#[test]
fn all_stages_give_480_px_images_and_super_resolution_from_the_grid_reproduces_them() {
    let p = pipeline(&config(), true);
    assert_eq!(
        p.geometry(),
        Geometry {
            low: 20,
            high: 60,
            compression: cogview::Compression::X8,
            max_text_tokens: 95
        }
    );
    let ctx = RunContext::with_seed(11);
    let out = p.generate("a green triangle", 2, false, &ctx).unwrap();
    for g in &out {
        let high = g.high_res.as_ref().unwrap();
        assert_eq!((high.height, high.width), (60, 60));
        assert!(high.ids.iter().all(|&t| t < 512), "only image codes");
        assert_eq!((g.image.width, g.image.height), (480, 480));
        // The decoder maps the final grid to the image.
        let decoded = p
            .image_tokenizer()
            .unwrap()
            .decode(high, cogview::Compression::X8)
            .unwrap();
        assert_eq!(decoded, g.image);
    }
    // Stages 2-3 alone, from the stage-1 grid and the same seed, give the same image.
    let again = p
        .super_resolve(
            "a green triangle",
            vec![out[1].low_res.clone()],
            &[out[1].seed],
            &RunContext::default(),
        )
        .unwrap();
    assert_eq!(again[0].high_res, out[1].high_res);
    assert_eq!(again[0].image, out[1].image);
}

#[test]
fn low_memory_holds_one_stage_at_a_time_and_changes_nothing() {
    let mut cfg = config();
    cfg.low_memory = Some(true);
    let p = Arc::new(pipeline(&cfg, true));
    assert!(
        p.loaded_components().is_empty(),
        "nothing is loaded before the run"
    );
    let mut ctx = RunContext::with_seed(5);
    let log = common::ResidencyLog::attach(&p, &mut ctx);
    let low_mem = p.generate("a small cat", 1, false, &ctx).unwrap();
    log.assert_one_model_at_a_time();
    assert!(
        p.loaded_components().is_empty(),
        "everything released after the run"
    );

    let normal = pipeline(&config(), true);
    assert_eq!(
        normal.loaded_components(),
        ["coglm", "dsr", "itersr", "image tokenizer"],
        "the default keeps all stages, loaded up front"
    );
    let full = normal
        .generate("a small cat", 1, false, &RunContext::with_seed(5))
        .unwrap();
    assert_eq!(full[0].image, low_mem[0].image);
}

/// Runs `generate_many` and returns each request's result plus the order of their stage-1
/// progress reports (request index per report).
#[allow(clippy::type_complexity)]
fn generate_many(
    p: &Pipeline,
    requests: &[(&str, usize, u64)],
    cancel_at: Option<(usize, usize)>,
) -> (
    Vec<cogview::Result<Vec<cogview::pipeline::GeneratedImage>>>,
    Vec<usize>,
) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let ctxs: Vec<RunContext> = requests
        .iter()
        .enumerate()
        .map(|(i, &(_, _, seed))| {
            let mut ctx = RunContext::with_seed(seed);
            let order = order.clone();
            let token = ctx.cancel.clone();
            ctx.progress = Some(Arc::new(move |pr: Progress| {
                if pr.stage == "coglm" {
                    order.lock().unwrap().push(i);
                    if cancel_at == Some((i, pr.step)) {
                        token.cancel();
                    }
                }
            }));
            ctx
        })
        .collect();
    let reqs: Vec<cogview::pipeline::GenerationRequest> = requests
        .iter()
        .zip(&ctxs)
        .map(
            |(&(prompt, n, _), ctx)| cogview::pipeline::GenerationRequest {
                prompt,
                num_images: n,
                only_first_stage: true,
                ctx,
                on_stage1: None,
            },
        )
        .collect();
    let mut results: Vec<_> = (0..requests.len()).map(|_| None).collect();
    p.generate_many(&reqs, |i, r| {
        assert!(results[i].is_none(), "request {i} answered twice");
        results[i] = Some(r);
    });
    let order = order.lock().unwrap().clone();
    (results.into_iter().map(Option::unwrap).collect(), order)
}

#[test]
fn requests_batched_together_give_the_images_each_makes_alone() {
    let p = pipeline(&config(), false);
    let len = |s: &str| p.encode_prompt(s).unwrap().len();
    // Two different texts of one length (one CogLM batch), one of another length.
    let (a, b, c) = (
        "a red circle",
        "a blue square",
        "a big green triangle at the top",
    );
    assert_eq!(
        len(a),
        len(b),
        "the fixture's tokenizer: {} vs {}",
        len(a),
        len(b)
    );
    assert_ne!(len(a), len(c));
    let requests = [(a, 2, 7), (b, 1, 100), (c, 2, 7), (a, 1, 8), ("", 1, 1)];
    let (results, order) = generate_many(&p, &requests, None);
    for (i, &(prompt, n, seed)) in requests.iter().enumerate().take(4) {
        let got = results[i].as_ref().unwrap();
        let alone = p
            .generate(prompt, n, true, &RunContext::with_seed(seed))
            .unwrap();
        assert_eq!(got.len(), n);
        for (g, w) in got.iter().zip(&alone) {
            assert_eq!(g.seed, w.seed);
            assert_eq!(g.low_res, w.low_res, "request {i} seed {}", g.seed);
            assert_eq!(g.image, w.image, "request {i} seed {}", g.seed);
        }
    }
    // The empty prompt is refused alone, as `generate` refuses it.
    let err = results[4].as_ref().unwrap_err().to_string();
    assert!(err.contains("prompt is empty"), "{err}");
    // Requests 0, 1 and 3 (one text length) ran in one batch: their progress reports
    // interleave, step by step; request 2 (another length) ran in a batch of its own.
    let first = |i: usize| order.iter().position(|&r| r == i).unwrap();
    let last = |i: usize| order.iter().rposition(|&r| r == i).unwrap();
    assert!(first(1) < last(0) && first(3) < last(0), "{order:?}");
    assert!(first(2) > last(0) || last(2) < first(0), "{order:?}");
}

#[test]
fn a_request_cancelled_in_a_shared_batch_stops_alone() {
    let p = pipeline(&config(), false);
    let requests = [("a red circle", 1, 3), ("a blue square", 1, 4)];
    let (results, _) = generate_many(&p, &requests, Some((0, 5)));
    assert!(matches!(results[0], Err(cogview::Error::Cancelled)));
    let alone = p
        .generate("a blue square", 1, true, &RunContext::with_seed(4))
        .unwrap();
    assert_eq!(results[1].as_ref().unwrap()[0].image, alone[0].image);
}

#[test]
fn cancelling_stops_the_run_after_the_current_step() {
    let p = pipeline(&config(), true);
    let mut ctx = RunContext::with_seed(1);
    let token = ctx.cancel.clone();
    let steps = Arc::new(Mutex::new(0usize));
    {
        let steps = steps.clone();
        ctx.progress = Some(Arc::new(move |pr: Progress| {
            let mut s = steps.lock().unwrap();
            *s += 1;
            if pr.stage == "coglm" && pr.step == 10 {
                token.cancel();
            }
        }));
    }
    let err = p.generate("a red circle", 1, false, &ctx).unwrap_err();
    assert!(matches!(err, cogview::Error::Cancelled), "{err}");
    assert_eq!(
        *steps.lock().unwrap(),
        10,
        "no step after the cancelling one"
    );
}

#[test]
fn dry_run_parameters_are_the_checkpoints_parameters() {
    let settings = Settings::resolve(&config(), true).unwrap();
    let report = dry_run(&settings, 3).unwrap();
    let training_buffers = [
        "quantize.cluster_size",
        "quantize.embed_avg",
        "quantize.initted",
    ];
    let dir = model_dir();
    let stored = |path: PathBuf| -> u64 {
        let ckpt = Checkpoint::open(&path, None).unwrap();
        ckpt.names()
            .filter(|n| !training_buffers.contains(n))
            .map(|n| ckpt.info(n).unwrap().shape.iter().product::<usize>() as u64)
            .sum()
    };
    let want = [
        ("coglm", stored(dir.join("coglm"))),
        ("dsr", stored(dir.join("cogview2-dsr"))),
        ("itersr", stored(dir.join("cogview2-itersr"))),
        ("image_tokenizer", stored(dir.join("ice_image.pt"))),
    ];
    assert_eq!(report.stages.len(), 4);
    for ((stage, params), e) in want.iter().zip(&report.stages) {
        assert_eq!(e.stage, *stage);
        assert_eq!(e.memory.parameters, *params, "{stage}");
        // f32 weights: 4 bytes a parameter (no extra head copy in f32).
        assert_eq!(e.memory.weight_bytes, 4 * params, "{stage}");
    }
    assert_eq!(report.stages[0].batch, 3, "3 images fit in one batch of 8");
    // Peak: all weights plus the largest working set.
    let weights: u64 = report.stages.iter().map(|e| e.memory.weight_bytes).sum();
    let act = report
        .stages
        .iter()
        .map(|e| e.memory.activation_bytes)
        .max()
        .unwrap();
    assert_eq!(report.peak_bytes, weights + act);

    // bf16 halves the matrices and adds CogLM's f32 image head (512 codes x 32).
    let mut cfg = config();
    cfg.defaults.dtype = Some(cogview::DType::Bf16);
    cfg.low_memory = Some(true);
    let bf16 = dry_run(&Settings::resolve(&cfg, true).unwrap(), 3).unwrap();
    assert_eq!(
        bf16.stages[0].memory.weight_bytes,
        2 * want[0].1 + 512 * 32 * 4
    );
    let largest = bf16
        .stages
        .iter()
        .map(|e| e.memory.peak_bytes())
        .max()
        .unwrap();
    assert_eq!(bf16.peak_bytes, largest, "low memory: the largest stage");
}

#[test]
fn styles_set_the_official_recipe() {
    for (style, t, k, inner) in [
        ("mainbody", 1.15, 100, 0.89),
        ("flat", 1.1, 5, 0.4),
        ("comics", 1.1, 5, 0.4),
        ("sketch", 1.1, 100, 0.89),
        ("chinese", 1.12, 100, 0.89),
        ("none", 1.15, 100, 0.89),
    ] {
        let mut cfg = config();
        cfg.style = Some(style.parse().unwrap());
        let s = Settings::resolve(&cfg, true).unwrap();
        assert_eq!(s.coglm.temperature, t, "{style}");
        let d = s.dsr.unwrap();
        assert_eq!(
            (d.top_k_clusters, d.inner_temperature),
            (k, inner),
            "{style}"
        );
        assert_eq!(dsr_recipe(s.style), (k, inner));
        assert_eq!(s.itersr.unwrap().top_k, [40, 40, 40, 20, 20, 10]);
    }
    // A value in the file wins over the style's.
    let mut cfg = config();
    cfg.style = Some("flat".parse().unwrap());
    cfg.dsr.top_k_clusters = Some(50);
    assert_eq!(
        Settings::resolve(&cfg, true)
            .unwrap()
            .dsr
            .unwrap()
            .top_k_clusters,
        50
    );
}

#[test]
fn example_configs_parse_and_resolve() {
    let dir = common::workspace_root().join("examples/configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        n += 1;
        let mut cfg =
            PipelineConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cfg.model_dir = Some(model_dir());
        let s = Settings::resolve(&cfg, true).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The settings round-trip through TOML.
        let back = PipelineConfig::from_toml(&s.to_config().to_toml(), "roundtrip").unwrap();
        assert_eq!(
            Settings::resolve(&back, true).unwrap(),
            s,
            "{}",
            path.display()
        );
        // Every CPU example builds and runs on the tiny folder.
        let on_cpu = [&s.coglm.placement, &s.image_tokenizer]
            .into_iter()
            .chain(s.dsr.as_ref().map(|d| &d.placement))
            .all(|p| p.device == cogview::Device::Cpu);
        let backends: BTreeSet<String> = [&s.coglm.placement, &s.image_tokenizer]
            .into_iter()
            .chain(s.dsr.as_ref().map(|d| &d.placement))
            .map(|p| p.backend.clone())
            .collect();
        let missing: Vec<&String> = backends
            .iter()
            .filter(|b| *b != "candle" && cogview::plugin_host::find(b).is_err())
            .collect();
        if !missing.is_empty() {
            // A plugin that is not built here: the pipeline says which and where it looked.
            let e = Pipeline::from_settings(s)
                .err()
                .expect("refused")
                .to_string();
            assert!(
                e.contains(missing[0].as_str()) && e.contains("COGVIEW_PLUGIN_PATH"),
                "{}: {e}",
                path.display()
            );
        } else if on_cpu {
            let p = Pipeline::from_settings(s).unwrap();
            let g = p
                .generate("a cat", 1, true, &RunContext::with_seed(1))
                .unwrap();
            assert_eq!(g[0].image.width, 480, "{}", path.display());
        }
    }
    assert!(n >= 4, "found {n} example configs");
    // The official example says what the defaults are.
    let mut official = PipelineConfig::from_file(dir.join("official.toml")).unwrap();
    official.model_dir = Some(model_dir());
    assert_eq!(
        Settings::resolve(&official, true).unwrap(),
        Settings::resolve(&config(), true).unwrap()
    );
}

#[test]
fn a_pipeline_composed_in_rust_equals_the_configured_one() {
    use cogview::candle::{CoglmModel, LoadOptions, SrModel, VqTokenizer};
    use cogview::core::sampling::{ClusterLabels, ClusterSampler};
    use cogview::core::sr::SuperResolution;
    use cogview::core::stage1::{CoglmGenerator, Stage1Settings};
    let dir = model_dir();
    let o = LoadOptions::default();
    let labels = Arc::new(ClusterLabels::from_npy_file(dir.join("cluster_label.npy")).unwrap());
    let coglm = Arc::new(CoglmModel::load(dir.join("coglm"), o).unwrap());
    let generator = CoglmGenerator::new(
        coglm,
        Arc::new(ClusterSampler {
            labels: labels.clone(),
            temperature: 1.15,
            top_k_clusters: 16,
            inner_temperature: 1.0,
        }),
        Stage1Settings::default(),
    )
    .unwrap();
    let sr = SuperResolution::official(
        Arc::new(SrModel::load(dir.join("cogview2-dsr"), o).unwrap()),
        Arc::new(SrModel::load(dir.join("cogview2-itersr"), o).unwrap()),
        labels,
        5512,
    );
    let text = cogview::text::IceTextTokenizer::from_bytes(
        &std::fs::read(dir.join("ice_text.model")).unwrap(),
        "ice_text.model",
        512,
        &cogview::text::SPECIAL_TOKENS,
    )
    .unwrap();
    let built = Pipeline::builder()
        .text_tokenizer(Arc::new(text))
        .generator(Arc::new(generator))
        .super_resolver(Arc::new(sr))
        .image_tokenizer(Arc::new(
            VqTokenizer::load(dir.join("ice_image.pt"), o).unwrap(),
        ))
        .build()
        .unwrap();
    let ctx = RunContext::with_seed(77);
    let a = built.generate("a dog", 1, false, &ctx).unwrap();
    let b = pipeline(&config(), true)
        .generate("a dog", 1, false, &ctx)
        .unwrap();
    assert_eq!(a[0].image, b[0].image);
    // A builder without a generator says what is missing.
    let err = Pipeline::builder().build().unwrap_err().to_string();
    assert!(err.contains("text tokenizer"), "{err}");
}

#[test]
fn every_stage_runs_in_f16_and_bf16_on_the_cpu() {
    for dtype in [cogview::DType::F16, cogview::DType::Bf16] {
        let mut cfg = config();
        cfg.defaults.dtype = Some(dtype);
        let p = pipeline(&cfg, true);
        let ctx = RunContext::with_seed(2);
        let a = p.generate("a cat", 1, false, &ctx).unwrap();
        assert_eq!((a[0].image.width, a[0].image.height), (480, 480), "{dtype}");
        let b = p.generate("a cat", 1, false, &ctx).unwrap();
        assert_eq!(a[0].image, b[0].image, "{dtype}: deterministic");
    }
}

#[test]
fn image_likelihood_equals_the_cached_step_by_step_score() {
    use cogview::core::lm::{AutoregressiveLm, LmInput, LogitsRequest};
    use cogview::core::stage1::{image_log_likelihood, CoglmMask, Stage1Layout};
    let model = cogview::candle::CoglmModel::load(
        model_dir().join("coglm"),
        cogview::candle::LoadOptions::default(),
    )
    .unwrap();
    let layout = Stage1Layout::default();
    let text = [600u32, 700, 800, 900];
    let mut rng = cogview::Rng::from_seed(8);
    let image: Vec<u32> = (0..400).map(|_| rng.below(512) as u32).collect();
    let got = image_log_likelihood(&model, &layout, &text, &image, 1.4).unwrap();
    // Independently: prefill, then one cached step per image token, log-softmax by hand.
    let spec = model.spec();
    let (ctx, pos) = layout.query(&text, spec.start_of_image_id).unwrap();
    let mask = CoglmMask {
        text_len: text.len(),
        text_bias: 1.4,
    };
    let mut s = model.new_session(1, ctx.len() + image.len()).unwrap();
    let mut logits = s
        .forward(&LmInput {
            tokens: &ctx,
            positions: &pos,
            bias: &mask.bias_rows(0, ctx.len(), ctx.len()),
            logits: LogitsRequest::Last { vocab: 512 },
        })
        .unwrap();
    let mut total = 0f64;
    for (j, &t) in image.iter().enumerate() {
        let row: Vec<f64> = logits.row(0).iter().map(|&x| x as f64).collect();
        let lse = row.iter().map(|x| x.exp()).sum::<f64>().ln();
        total += row[t as usize] - lse;
        if j + 1 < image.len() {
            let q = ctx.len() + j;
            logits = s
                .forward(&LmInput {
                    tokens: &[t],
                    positions: &[layout.image_position(j)],
                    bias: &mask.bias_rows(q, 1, q + 1),
                    logits: LogitsRequest::Last { vocab: 512 },
                })
                .unwrap();
        }
    }
    let want = total / image.len() as f64;
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    assert!(got < 0.0);
}

/// `options = { weights = "int8" }` on CogLM: the built-in default model draws nearly the same
/// stage-1 tokens as with f32 weights (int8 weights with per-row scales; on CPUs with
/// AVX512-VNNI the activations of the decoding steps are quantized per row too).
#[test]
fn int8_weights_keep_the_default_models_stage1_tokens() {
    let f32_cfg = cogview::OpenOptions::default().config().unwrap();
    let mut int8_cfg = f32_cfg.clone();
    int8_cfg.coglm.options = Some(toml::toml! { weights = "int8" });
    let f32_p = pipeline(&f32_cfg, false);
    let int8_p = pipeline(&int8_cfg, false);
    let (mut same, mut total) = (0, 0);
    for (prompt, seed) in [
        ("a large blue circle in the center", 100),
        ("two small red triangles at the top", 200),
    ] {
        let ctx = RunContext::with_seed(seed);
        let a = f32_p.generate(prompt, 8, true, &ctx).unwrap();
        let b = int8_p.generate(prompt, 8, true, &ctx).unwrap();
        for (x, y) in a.iter().zip(&b) {
            total += x.low_res.ids.len();
            same += x
                .low_res
                .ids
                .iter()
                .zip(&y.low_res.ids)
                .filter(|(p, q)| p == q)
                .count();
        }
    }
    let agreement = same as f64 / total as f64;
    eprintln!("int8 / f32 stage-1 token agreement: {same}/{total} = {agreement:.4}");
    assert!(agreement >= 0.97, "token agreement {agreement:.4} < 0.97");
    // The option reaches the backend: a wrong value is refused by name.
    let mut bad = f32_cfg.clone();
    bad.coglm.options = Some(toml::toml! { weights = "int4" });
    let e = Pipeline::from_settings(Settings::resolve(&bad, false).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("\"int8\" or \"dtype\""), "{e}");
}

/// `[itersr] top_k = []` is a pipeline with no LoPAR pass (the default model's); a pass with
/// k = 0 is refused by name.
#[test]
fn an_empty_itersr_top_k_means_no_pass_and_a_zero_k_is_refused() {
    let mut cfg = config();
    cfg.itersr.top_k = Some(vec![]);
    let s = Settings::resolve(&cfg, true).unwrap();
    assert!(s.itersr.as_ref().unwrap().top_k.is_empty());
    let p = pipeline(&cfg, true);
    let img = p
        .generate("a red circle", 1, false, &RunContext::with_seed(3))
        .unwrap();
    assert_eq!(img.len(), 1);
    cfg.itersr.top_k = Some(vec![2, 0]);
    let e = Settings::resolve(&cfg, true).err().unwrap().to_string();
    assert!(
        e.contains("itersr.top_k") && e.contains("positive k"),
        "{e}"
    );
}

#[test]
fn a_pipeline_that_reranks_keeps_each_images_best_candidate_and_regenerates_it_alone() {
    let prompt = "a red circle";
    let mut cfg = config();
    cfg.coglm.rerank = Some(3);
    let p = pipeline(&cfg, false);
    assert_eq!(p.rerank(), 3);
    let ctx = RunContext::with_seed(30);
    let images = p.generate(prompt, 2, true, &ctx).unwrap();

    // The independent expectation: each image's 3 candidates drawn alone with no reranking
    // (its own seed first), each scored alone by the inverse-prompt score; the best is kept.
    let plain = p.with_rerank(1).unwrap();
    assert_eq!(plain.rerank(), 1);
    assert_eq!(images.len(), 2);
    for (i, img) in images.iter().enumerate() {
        let seed = 30 + i as u64;
        assert_eq!((img.index, img.seed), (i, seed), "image i keeps seed + i");
        let seeds = RunContext::candidate_seeds(seed, 3);
        assert_eq!(seeds[0], seed);
        let candidates: Vec<_> = seeds
            .iter()
            .map(|&c| {
                let g = plain
                    .generate(prompt, 1, true, &RunContext::with_seed(c))
                    .unwrap()
                    .remove(0);
                let score = p.caption_score(&g.low_res, prompt).unwrap();
                (score, g)
            })
            .collect();
        let best = (1..3).fold(0, |b, j| {
            if candidates[j].0 > candidates[b].0 {
                j
            } else {
                b
            }
        });
        let (score, chosen) = &candidates[best];
        assert_eq!(img.low_res, chosen.low_res, "image {i}: candidate {best}");
        assert_eq!(img.image, chosen.image);
        let r = img
            .rerank
            .as_ref()
            .expect("a reranked image records its score");
        assert_eq!(r.candidates, 3);
        assert!((r.score - score).abs() < 1e-9, "{} vs {score}", r.score);
        assert!(chosen.rerank.is_none());
        // The same pipeline makes it again from its seed alone.
        let alone = p
            .generate(prompt, 1, true, &RunContext::with_seed(seed))
            .unwrap();
        assert_eq!(alone[0].image, img.image);
    }

    // The records name the settings that make each image again from its seed: this pipeline
    // (rerank 3) for its own images; no reranking for a candidate kept from a pool.
    let record = |img: &cogview::pipeline::GeneratedImage| {
        cogview::pipeline::ImageRecord::for_image(
            &p,
            prompt,
            (img.seed, img.index, 1),
            cogview::pipeline::record::Origin::Generate {
                only_first_stage: true,
                rerank: img.rerank.clone(),
            },
            &[],
        )
        .unwrap()
    };
    assert_eq!(record(&images[0]).settings.coglm.rerank, 3);
    assert!(images[0].rerank.as_ref().unwrap().per_image);
    let (pooled, _) = p.generate_reranked(prompt, 4, 1, true, &ctx).unwrap();
    assert!(!pooled[0].rerank.as_ref().unwrap().per_image);
    assert_eq!(record(&pooled[0]).settings.coglm.rerank, 1);
    let again = plain
        .generate(prompt, 1, true, &RunContext::with_seed(pooled[0].seed))
        .unwrap();
    assert_eq!(again[0].image, pooled[0].image);

    // Batched requests (a server's) rerank the same way.
    let requests = [(prompt, 2, 30), ("a blue square", 1, 50)];
    let (results, _) = generate_many(&p, &requests, None);
    for (r, &(prompt, n, seed)) in results.iter().zip(&requests) {
        let alone = p
            .generate(prompt, n, true, &RunContext::with_seed(seed))
            .unwrap();
        let got = r.as_ref().unwrap();
        assert_eq!(got.len(), n);
        for (g, w) in got.iter().zip(&alone) {
            assert_eq!((g.index, g.seed), (w.index, w.seed));
            assert_eq!(g.image, w.image);
            assert_eq!(g.rerank, w.rerank);
        }
    }
}

#[test]
fn coglm_guidance_outside_one_to_the_maximum_is_refused_by_name() {
    let max = cogview::pipeline::settings::MAX_GUIDANCE;
    for g in [0.5, -1.0, max + 0.5, f32::NAN, f32::INFINITY] {
        let mut cfg = config();
        cfg.coglm.guidance = Some(g);
        let e = Settings::resolve(&cfg, false).unwrap_err().to_string();
        assert!(
            e.contains("coglm.guidance") && e.contains("none"),
            "{g}: {e}"
        );
    }
    // Written in a pipeline file, it is read, kept in the resolved settings and written back;
    // left out, it is 1 (no guidance), also in settings recorded before it existed.
    let cfg = PipelineConfig::from_toml("[coglm]\nguidance = 2.5\n", "p.toml").unwrap();
    assert_eq!(cfg.coglm.guidance, Some(2.5));
    let mut cfg = config();
    cfg.coglm.guidance = Some(2.5);
    let s = Settings::resolve(&cfg, false).unwrap();
    assert_eq!(s.coglm.guidance, 2.5);
    assert_eq!(s.to_config().coglm.guidance, Some(2.5));
    assert_eq!(
        Settings::resolve(&config(), false).unwrap().coglm.guidance,
        1.0
    );
    let mut recorded = serde_json::to_value(&s).unwrap();
    recorded["coglm"]
        .as_object_mut()
        .unwrap()
        .remove("guidance");
    let old: Settings = serde_json::from_value(recorded).unwrap();
    assert_eq!(old.coglm.guidance, 1.0);
}

#[test]
fn coglm_rerank_outside_one_to_the_maximum_is_refused_by_name() {
    for k in [0, cogview::pipeline::settings::MAX_RERANK + 1] {
        let mut cfg = config();
        cfg.coglm.rerank = Some(k);
        let e = Settings::resolve(&cfg, false).unwrap_err().to_string();
        assert!(
            e.contains("coglm.rerank") && e.contains("no reranking"),
            "{e}"
        );
        let e = pipeline(&config(), false)
            .with_rerank(k)
            .unwrap_err()
            .to_string();
        assert!(e.contains("coglm.rerank"), "{e}");
    }
    // Written in a pipeline file, it is read and kept in the resolved settings.
    let cfg = PipelineConfig::from_toml("[coglm]\nrerank = 4\n", "p.toml").unwrap();
    assert_eq!(cfg.coglm.rerank, Some(4));
    let mut cfg = config();
    cfg.coglm.rerank = Some(4);
    let s = Settings::resolve(&cfg, false).unwrap();
    assert_eq!(s.coglm.rerank, 4);
    assert_eq!(s.to_config().coglm.rerank, Some(4));
}
