//! The models built from trainable variables (differentiable paths: candle's ops, dense masked
//! attention) compute the same function as the same weights loaded for inference (the fast CPU
//! kernels and the local-attention kernel, which are parity-tested against the official code).
//! So what training optimises is what `cogview generate` runs.

use candle_core::{Device, Tensor};
use cogview_candle::{
    CoglmConfig, CoglmModel, LoadOptions, SrConfig, SrKind, SrModel, VqTokenizer,
};
use cogview_checkpoint::Checkpoint;
use cogview_core::stage1::{full_logits, CoglmMask};
use cogview_core::{Compression, Rng};
use cogview_train::optim::{init_store, save_weights};
use std::collections::HashMap;

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn saved(vars: &cogview_candle::VarStore) -> (tempfile::TempDir, Checkpoint) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    save_weights(vars, &[], &path, HashMap::new(), false).unwrap();
    let ckpt = Checkpoint::open(&path, None).unwrap();
    (dir, ckpt)
}

/// Every variable gets a gradient from a loss on `out`, except attention key biases (a key bias
/// shifts all scores of a query equally; the softmax removes it, so its gradient is exactly zero).
fn all_have_gradients(vars: &cogview_candle::VarStore, out: &Tensor, unused: &[&str]) {
    let grads = out.sqr().unwrap().mean_all().unwrap().backward().unwrap();
    let missing: Vec<&str> = vars
        .vars()
        .filter(|(n, v)| {
            grads.get(v.as_tensor()).is_none() && !is_key_bias(n) && !unused.contains(n)
        })
        .map(|(n, _)| n)
        .collect();
    assert!(missing.is_empty(), "no gradient for {missing:?}");
}

fn is_key_bias(name: &str) -> bool {
    name.ends_with(".k.bias")
}

fn backbone(vocab: usize, image_vocab: usize) -> CoglmConfig {
    CoglmConfig {
        num_layers: 2,
        hidden_size: 32,
        num_attention_heads: 4,
        vocab_size: vocab,
        max_sequence_length: 1024,
        inner_hidden_size: 64,
        head_dim: 8,
        layernorm_epsilon: 1e-5,
        image_vocab_size: image_vocab,
        start_of_image_id: (vocab - 3) as u32,
    }
}

#[test]
fn vq_training_path_equals_inference_path() {
    let cfg = cogview_train::vq::default_config();
    let vars = init_store(&cfg.expected_tensors(), 11, 0.5).unwrap();
    let train_model =
        VqTokenizer::from_checkpoint(&vars, cfg.clone(), LoadOptions::default()).unwrap();
    let (_d, ckpt) = saved(&vars);
    let infer_model =
        VqTokenizer::from_checkpoint(&ckpt, cfg.clone(), LoadOptions::default()).unwrap();
    let mut rng = Rng::from_seed(3);
    let x: Vec<f32> = (0..2 * 3 * 32 * 32).map(|_| rng.normal() as f32).collect();
    let x = Tensor::from_vec(x, (2, 3, 32, 32), &Device::Cpu).unwrap();
    let z_train = train_model.latent(&x, Compression::X8).unwrap();
    assert!(z_train.track_op(), "the training model records the graph");
    let z_infer = infer_model.latent(&x, Compression::X8).unwrap();
    assert!(!z_infer.track_op());
    assert_eq!(z_train.dims(), &[2, 64, 4, 4]);
    let scale = z_infer
        .abs()
        .unwrap()
        .max_keepdim(0)
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        max_diff(&z_train, &z_infer) <= 1e-4 * scale.max(1.0),
        "{}",
        max_diff(&z_train, &z_infer)
    );
    let y_train = train_model
        .decode_latent(&z_train, Compression::X8)
        .unwrap();
    let y_infer = infer_model
        .decode_latent(&z_infer, Compression::X8)
        .unwrap();
    assert_eq!(y_train.dims(), &[2, 3, 32, 32]);
    assert!(
        max_diff(&y_train, &y_infer) <= 1e-3,
        "{}",
        max_diff(&y_train, &y_infer)
    );
    // Every trained tensor gets a gradient.
    let grads = y_train
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .backward()
        .unwrap();
    let trained_paths = ["enc.", "down_samplers.0.", "quantize.proj", "decs.1."];
    for (name, var) in vars.vars() {
        // An attention key bias shifts every score of a query by the same amount: the softmax
        // removes it, so its gradient is exactly zero and candle records none.
        if trained_paths.iter().any(|p| name.starts_with(p)) && !name.ends_with(".k.bias") {
            assert!(
                grads.get(var.as_tensor()).is_some(),
                "no gradient for {name}"
            );
        }
    }
    // Compression 4 was not trained and is refused.
    let img = cogview_core::Image::new(32, 32, vec![200; 32 * 32 * 3]).unwrap();
    use cogview_core::ImageTokenizer;
    let err = infer_model
        .encode(&img, Compression::X4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("trained for compression [8] only"), "{err}");
}

#[test]
fn coglm_training_forward_equals_the_cached_inference_path() {
    let cfg = backbone(300, 100);
    let vars = init_store(&cfg.expected_tensors(), 12, 0.5).unwrap();
    let train_model =
        CoglmModel::from_checkpoint(&vars, cfg.clone(), LoadOptions::default()).unwrap();
    let (_d, ckpt) = saved(&vars);
    let infer_model =
        CoglmModel::from_checkpoint(&ckpt, cfg.clone(), LoadOptions::default()).unwrap();
    let n = 20;
    let text_len = 6;
    let mut rng = Rng::from_seed(4);
    let tokens: Vec<u32> = (0..2 * n).map(|_| rng.below(297) as u32).collect();
    let positions: Vec<u32> = (0..n as u32)
        .map(|i| if i < text_len as u32 { i } else { 506 + i })
        .collect();
    let mask = CoglmMask {
        text_len,
        text_bias: 1.4,
    };
    let bias_rows = mask.bias_rows(0, n, n);
    let bias: Vec<f32> = [bias_rows.clone(), bias_rows].concat();
    let dev = Device::Cpu;
    let logits = train_model
        .forward_train(
            &Tensor::from_vec(tokens.clone(), (2, n), &dev).unwrap(),
            &Tensor::from_vec(positions.clone(), n, &dev).unwrap(),
            &Tensor::from_vec(bias, (2, n, n), &dev).unwrap(),
            300,
        )
        .unwrap();
    assert!(logits.track_op());
    all_have_gradients(&vars, &logits, &[]);
    for b in 0..2 {
        let want = full_logits(
            &infer_model,
            &tokens[b * n..(b + 1) * n],
            &positions,
            mask,
            300,
        )
        .unwrap();
        let want = Tensor::from_vec(want.data, (n, 300), &dev).unwrap();
        let got = logits.get(b).unwrap();
        assert!(
            max_diff(&got, &want) <= 1e-4,
            "row {b}: {}",
            max_diff(&got, &want)
        );
    }
}

#[test]
fn super_resolution_training_attention_equals_the_local_kernel() {
    for kind in [SrKind::Dsr, SrKind::Itersr] {
        let cfg = SrConfig {
            kind,
            backbone: backbone(300, 100),
            text_slots: 8,
            low: 4,
            high: 12,
            kernel_size: 5,
            kernel_size2: 5,
        };
        let vars = init_store(&cfg.expected_tensors(), 13, 0.5).unwrap();
        let train_model =
            SrModel::from_checkpoint(&vars, cfg.clone(), LoadOptions::default()).unwrap();
        let (_d, ckpt) = saved(&vars);
        let infer_model =
            SrModel::from_checkpoint(&ckpt, cfg.clone(), LoadOptions::default()).unwrap();
        let mut rng = Rng::from_seed(5);
        let text: Vec<u32> = (0..5).map(|_| 100 + rng.below(190) as u32).collect();
        let (got, want) = match kind {
            SrKind::Dsr => {
                let low: Vec<u32> = (0..16).map(|_| rng.below(100) as u32).collect();
                (
                    train_model.dsr_logits(&text, &low, 297).unwrap(),
                    infer_model.dsr_logits(&text, &low, 297).unwrap(),
                )
            }
            SrKind::Itersr => {
                let grid: Vec<u32> = (0..144)
                    .map(|i| {
                        if i % 3 == 0 {
                            297
                        } else {
                            rng.below(100) as u32
                        }
                    })
                    .collect();
                (
                    train_model.itersr_logits(&text, &grid).unwrap(),
                    infer_model.itersr_logits(&text, &grid).unwrap(),
                )
            }
        };
        assert!(got.track_op());
        assert_eq!(got.dims(), &[144, 100]);
        // DSR's last layer: the text/low-resolution stream's attention output projection feeds
        // nothing that reaches the high-resolution logits (as in the official model).
        let unused: &[&str] = match kind {
            SrKind::Dsr => &[
                "transformer.layers.1.attention.dense.weight",
                "transformer.layers.1.attention.dense.bias",
            ],
            SrKind::Itersr => &[],
        };
        all_have_gradients(&vars, &got, unused);
        assert!(
            max_diff(&got, &want) <= 1e-4,
            "{kind:?}: {}",
            max_diff(&got, &want)
        );
    }
}
