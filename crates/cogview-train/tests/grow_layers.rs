//! `cogview train coglm --layers 10 --init-from W` (and `train dsr --layers`): a deeper model grown
//! from weights of fewer layers starts as exactly that model (the added layers are the identity),
//! and the added layers can learn (their gains receive gradient).

use candle_core::Device;
use cogview_candle::{CoglmModel, LoadOptions};
use cogview_checkpoint::Checkpoint;
use cogview_train::coglm::{
    batch_tensors, config_with_layers, masked_cross_entropy, text_to_image, Vocab,
};
use cogview_train::optim::{added_layers_as_identity, init_from, init_store};
use std::path::PathBuf;

/// The shipped model's vocabulary (the sizes only matter).
fn shipped() -> (PathBuf, Vocab) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/default/coglm.safetensors");
    let ckpt = Checkpoint::open(&path, None).unwrap();
    let c: serde_json::Value = serde_json::from_str(&ckpt.metadata()["model_config"]).unwrap();
    let vocab = Vocab {
        image: c["image_vocab_size"].as_u64().unwrap() as usize,
        start_of_image: c["start_of_image_id"].as_u64().unwrap() as u32,
        start_of_english: 0,
        total: c["vocab_size"].as_u64().unwrap() as usize,
    };
    (path, vocab)
}

/// A trained-looking source to grow from: `layers` layers of the default model's shapes with the
/// shipped model's vocabulary, random weights (not the shipped file, whose depth may change),
/// saved as `cogview train` saves weights.
fn saved_source(
    name: &str,
    expected: &[(String, Vec<usize>)],
    seed: u64,
) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new(name);
    let vars = init_store(expected, seed, 0.5).unwrap();
    let path = dir.0.join("weights.safetensors");
    cogview_train::optim::save_weights(&vars, &[], &path, Default::default(), false).unwrap();
    (dir, path)
}

mod tempdir {
    /// A folder removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("cogview-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn a_coglm_grown_by_identity_layers_computes_what_the_source_computes() {
    let (_, vocab) = shipped();
    let (_dir, path) = saved_source(
        "grow-coglm",
        &config_with_layers(&vocab, 6).expected_tensors(),
        11,
    );
    // A caption of a few text ids and a 9×9 image of varied codes.
    let text: Vec<u32> = [3u32, 17, 40, 5, 99]
        .iter()
        .map(|i| vocab.image as u32 + i)
        .collect();
    let image: Vec<u32> = (0..81u32)
        .map(|j| (j * 37 + 11) % vocab.image as u32)
        .collect();
    let seq = text_to_image(&text, &image, &vocab);
    let (tokens, positions, bias, targets, weights) = batch_tensors(&[seq], &Device::Cpu).unwrap();

    let run = |layers: usize| {
        let config = config_with_layers(&vocab, layers);
        let vars = init_store(&config.expected_tensors(), 7, 0.5).unwrap();
        let report = init_from(&vars, &path).unwrap();
        let grown = added_layers_as_identity(&vars, &report, layers).unwrap();
        let model = CoglmModel::from_checkpoint(&vars, config, LoadOptions::default()).unwrap();
        let logits = model
            .forward_train(&tokens, &positions, &bias, vocab.total)
            .unwrap();
        (vars, grown, logits)
    };
    let (_, grown6, base) = run(6);
    assert!(
        grown6.is_empty(),
        "the shipped model has 6 layers: {grown6:?}"
    );
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
    let (_, vocab) = shipped();
    let dsr = |layers| {
        cogview_train::sr::config_with_layers(cogview_candle::SrKind::Dsr, &vocab, 9, 27, layers)
    };
    let (_dir, path) = saved_source("grow-dsr", &dsr(3).expected_tensors(), 12);
    let text: Vec<u32> = [3u32, 17, 40]
        .iter()
        .map(|i| vocab.image as u32 + i)
        .collect();
    let low: Vec<u32> = (0..81u32)
        .map(|j| (j * 53 + 5) % vocab.image as u32)
        .collect();
    let run = |layers: usize| {
        let config = dsr(layers);
        let vars = init_store(&config.expected_tensors(), 3, 0.5).unwrap();
        let report = init_from(&vars, &path).unwrap();
        let grown = added_layers_as_identity(&vars, &report, layers).unwrap();
        let model = cogview_candle::SrModel::from_checkpoint(&vars, config, LoadOptions::default())
            .unwrap();
        let logits = model.dsr_logits(&text, &low, vocab.start_of_image).unwrap();
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
    let (_, vocab) = shipped();
    let dir = std::env::temp_dir().join(format!("cogview-grow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = config_with_layers(&vocab, 2);
    let vars = init_store(&config.expected_tensors(), 1, 0.5).unwrap();
    let mut meta = std::collections::HashMap::new();
    meta.insert(
        "model_config".to_string(),
        cogview_train::coglm::model_config_json(&config, 9, 63).to_string(),
    );
    meta.insert("step".to_string(), "0".to_string());
    let state = dir.join("state.safetensors");
    cogview_train::optim::checkpoint(
        &state,
        &dir.join("coglm.safetensors"),
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
    std::fs::remove_dir_all(&dir).unwrap();
}
