//! `cogview train coglm --init-from models/default/coglm.safetensors`: the shipped model's weights
//! file (f16, tensors by name, no optimizer state) starts every tensor of a CogLM of the default
//! configuration, so a run on another split can be warm-started from the product's model.

use candle_core::{DType, Device};
use cogview_candle::TensorSource;
use cogview_checkpoint::Checkpoint;
use cogview_train::coglm::{default_config, Vocab};
use cogview_train::optim::{init_from, init_store};
use std::path::PathBuf;

#[test]
fn the_shipped_coglm_weights_start_every_tensor_of_the_default_coglm() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/default/coglm.safetensors");
    let ckpt = Checkpoint::open(&path, None).unwrap();
    let c: serde_json::Value = serde_json::from_str(&ckpt.metadata()["model_config"]).unwrap();
    let vocab = Vocab {
        image: c["image_vocab_size"].as_u64().unwrap() as usize,
        start_of_image: c["start_of_image_id"].as_u64().unwrap() as u32,
        start_of_english: 0, // not part of the model's shapes
        total: c["vocab_size"].as_u64().unwrap() as usize,
    };
    let config = default_config(&vocab);
    let expected = config.expected_tensors();
    let vars = init_store(&expected, 1, 0.5).unwrap();
    let report = init_from(&vars, &path).unwrap();
    assert!(report.kept_fresh.is_empty(), "{:?}", report.kept_fresh);
    assert_eq!(report.copied, expected.len());
    // The values are the file's (f16 widened to f32), not the fresh initialisation.
    for (name, var) in vars.vars() {
        let want = ckpt.load(name, DType::F32, &Device::Cpu).unwrap();
        let diff = (var.as_tensor() - &want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(diff, 0.0, "{name}");
    }
}
