//! `cogview train coglm --layers 10 --init-from W` (and `train dsr --layers`): a deeper model grown
//! from weights of fewer layers starts as exactly that model (the added layers are the identity),
//! and the added layers can learn (their gains receive gradient).

use candle_core::Device;
use cogview_candle::{CoglmModel, LoadOptions, SrKind, SrModel};
use cogview_train::coglm::{
    batch_tensors, config_with_layers, masked_cross_entropy, text_to_image, Vocab,
};
use cogview_train::optim::{added_layers_as_identity, init_from, init_store};
use std::path::PathBuf;

/// A small vocabulary of the default model's layout (image codes, text pieces, specials): only
/// the sizes matter here.
const VOCAB: Vocab = Vocab {
    image: 64,
    start_of_image: 100,
    start_of_english: 101,
    total: 103,
};

/// `n` image codes, varied (`j·step + offset` modulo the image vocabulary).
fn codes(n: u32, step: u32, offset: u32) -> Vec<u32> {
    (0..n)
        .map(|j| (j * step + offset) % VOCAB.image as u32)
        .collect()
}

/// Text ids (after the image codes) of a short caption.
fn caption(pieces: &[u32]) -> Vec<u32> {
    pieces.iter().map(|i| VOCAB.image as u32 + i).collect()
}

/// A source to grow from: random weights of the given tensors, saved as `cogview train` saves
/// weights, in a folder removed with the returned guard.
fn saved_source(expected: &[(String, Vec<usize>)], seed: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let vars = init_store(expected, seed, 0.5).unwrap();
    let path = dir.path().join("weights.safetensors");
    cogview_train::optim::save_weights(&vars, &[], &path, Default::default(), false).unwrap();
    (dir, path)
}

#[test]
fn a_coglm_grown_by_identity_layers_computes_what_the_source_computes() {
    let (_dir, path) = saved_source(&config_with_layers(&VOCAB, 6).expected_tensors(), 11);
    let seq = text_to_image(&caption(&[3, 17, 30, 5, 29]), &codes(81, 37, 11), &VOCAB);
    let (tokens, positions, bias, targets, weights) = batch_tensors(&[seq], &Device::Cpu).unwrap();

    let run = |layers: usize| {
        let config = config_with_layers(&VOCAB, layers);
        let vars = init_store(&config.expected_tensors(), 7, 0.5).unwrap();
        let report = init_from(&vars, &path).unwrap();
        let grown = added_layers_as_identity(&vars, &report, layers).unwrap();
        let model = CoglmModel::from_checkpoint(&vars, config, LoadOptions::default()).unwrap();
        let logits = model
            .forward_train(&tokens, &positions, &bias, VOCAB.total)
            .unwrap();
        (vars, grown, logits)
    };
    let (_, grown6, base) = run(6);
    assert!(grown6.is_empty(), "the source has 6 layers: {grown6:?}");
    let (vars8, grown8, deeper) = run(8);
    assert_eq!(grown8, vec![6, 7]);
    let a = base.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let b = deeper.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    // Exactly: each added layer adds zero to the residual stream.
    assert!(a.iter().zip(&b).all(|(x, y)| x == y), "grown logits differ");

    // The added layers' output gains get gradient (training moves them off zero), while their
    // inner weights get none until then.
    let loss = masked_cross_entropy(&deeper, &targets, &weights).unwrap();
    let grads = loss.backward().unwrap();
    let grad_norm = |name: &str| {
        let v = vars8.vars().find(|(n, _)| *n == name).unwrap().1;
        grads
            .get(v.as_tensor())
            .map(|g| {
                g.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .unwrap_or(0.0)
    };
    assert!(grad_norm("transformer.layers.7.third_layernorm.weight") > 0.0);
    assert!(grad_norm("transformer.layers.7.fourth_layernorm.weight") > 0.0);
    assert_eq!(
        grad_norm("transformer.layers.7.mlp.dense_h_to_4h.weight"),
        0.0
    );
    assert!(grad_norm("transformer.layers.5.mlp.dense_h_to_4h.weight") > 0.0);
}

#[test]
fn a_dsr_grown_by_identity_layers_computes_what_the_source_computes() {
    let dsr = |layers| cogview_train::sr::config_with_layers(SrKind::Dsr, &VOCAB, 9, 27, layers);
    let (_dir, path) = saved_source(&dsr(3).expected_tensors(), 12);
    let (text, low) = (caption(&[3, 17, 30]), codes(81, 53, 5));
    let run = |layers: usize| {
        let config = dsr(layers);
        let vars = init_store(&config.expected_tensors(), 3, 0.5).unwrap();
        let report = init_from(&vars, &path).unwrap();
        let grown = added_layers_as_identity(&vars, &report, layers).unwrap();
        let model = SrModel::from_checkpoint(&vars, config, LoadOptions::default()).unwrap();
        let logits = model.dsr_logits(&text, &low, VOCAB.start_of_image).unwrap();
        (
            grown,
            logits.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        )
    };
    let (grown3, base) = run(3);
    assert!(grown3.is_empty());
    let (grown5, deeper) = run(5);
    assert_eq!(grown5, vec![3, 4]);
    assert_eq!(base.len(), deeper.len());
    assert!(
        base.iter().zip(&deeper).all(|(x, y)| x == y),
        "grown logits differ"
    );
}

#[test]
fn resuming_a_state_with_another_layer_count_is_refused_with_the_count_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_layers(&VOCAB, 2);
    let vars = init_store(&config.expected_tensors(), 1, 0.5).unwrap();
    let mut meta = std::collections::HashMap::new();
    meta.insert(
        "model_config".to_string(),
        cogview_train::coglm::model_config_json(&config, 9, 63).to_string(),
    );
    meta.insert("step".to_string(), "0".to_string());
    let state = dir.path().join("state.safetensors");
    cogview_train::optim::checkpoint(
        &state,
        &dir.path().join("coglm.safetensors"),
        &vars,
        &cogview_train::optim::AdamW::new(1e-4, 0.01),
        meta,
    )
    .unwrap();
    cogview_train::optim::check_resumed_layers(&state, 2).unwrap();
    let err = cogview_train::optim::check_resumed_layers(&state, 4)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 layers, not 4") && err.contains("--layers 2"),
        "{err}"
    );
}
