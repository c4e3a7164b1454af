//! Bad input gets a typed error that names the file, tensor or field, never a panic.

use cogview_backend_tests as common;

use cogview::candle::{CoglmModel, LoadOptions};
use cogview::checkpoint::{Checkpoint, SatFolder};
use cogview::core::sampling::TopKSampler;
use cogview::core::stage1::{full_logits, CoglmGenerator, CoglmMask, Stage1Settings};
use cogview::{Error, GlobalGenerator, RunContext, TextTokens};
use common::*;
use std::path::Path;
use std::sync::Arc;

fn load(path: &Path) -> Result<CoglmModel, Error> {
    CoglmModel::load(path, LoadOptions::default())
}

fn model_file(dir: &Path) -> std::path::PathBuf {
    SatFolder::open(dir).unwrap().model_file
}

#[test]
fn truncated_checkpoint_is_an_invalid_checkpoint_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&coglm_fixture("tiny-f16"), tmp.path());
    let file = model_file(tmp.path());
    let bytes = std::fs::read(&file).unwrap();
    for keep in [bytes.len() / 2, bytes.len() - 30, 100] {
        std::fs::write(&file, &bytes[..keep]).unwrap();
        let err = load(tmp.path()).unwrap_err();
        assert!(matches!(err, Error::InvalidCheckpoint { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("mp_rank_00_model_states.pt"), "{msg}");
    }
}

#[test]
fn corrupt_checkpoint_is_an_invalid_checkpoint_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&coglm_fixture("tiny-f32"), tmp.path());
    let file = model_file(tmp.path());
    // Garbage instead of a checkpoint.
    std::fs::write(&file, b"this is not a checkpoint at all, just some text").unwrap();
    let err = load(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::InvalidCheckpoint { .. }), "{err}");
    // A zip whose pickle is damaged: overwrite the bytes of data.pkl's opcodes.
    let mut bytes =
        std::fs::read(coglm_fixture("tiny-f32").join("1000/mp_rank_00_model_states.pt")).unwrap();
    let at = bytes.windows(8).position(|w| w == b"data.pkl").unwrap();
    let start = at
        + bytes[at..]
            .windows(3)
            .position(|w| w == b"\x80\x02}")
            .unwrap(); // the pickle itself
    let original = bytes.clone();
    for b in &mut bytes[start..start + 64] {
        *b = 0xff;
    }
    std::fs::write(&file, &bytes).unwrap();
    let err = load(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::InvalidCheckpoint { .. }), "{err}");
    assert!(err.to_string().contains("data.pkl"), "{err}");
    // One flipped bit inside a tensor's data: caught by the archive's CRC-32, naming the entry.
    let mut bytes = original;
    let data_entry = bytes.windows(7).position(|w| w == b"/data/0").unwrap(); // local header
    let flip = data_entry + 200;
    bytes[flip] ^= 0x01;
    std::fs::write(&file, &bytes).unwrap();
    let err = load(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("CRC-32"), "{err}");
}

#[test]
fn wrong_shaped_missing_and_unexpected_tensors_are_named() {
    let sat = SatFolder::open(coglm_fixture("tiny-f32")).unwrap();
    let ckpt = Checkpoint::open(&sat.model_file, None).unwrap();
    // Rewrite the checkpoint as safetensors with one tensor reshaped, one dropped and one extra.
    let tmp = tempfile::tempdir().unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for name in ckpt.names() {
        if name == "transformer.layers.1.mlp.dense_4h_to_h.bias" {
            continue; // missing
        }
        let info = ckpt.info(name).unwrap();
        let mut shape = info.shape.clone();
        if name == "transformer.layers.0.attention.dense.weight" {
            shape = vec![shape[0] * shape[1] / 16, 16]; // same bytes, wrong shape
        }
        tensors.push((
            name.to_string(),
            safetensors::Dtype::F32,
            shape,
            ckpt.bytes(name).unwrap().into_owned(),
        ));
    }
    tensors.push((
        "mixins.extra.weight".into(),
        safetensors::Dtype::F32,
        vec![2],
        vec![0; 8],
    ));
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let out = tmp.path().join("bad.safetensors");
    let mut meta = std::collections::HashMap::new();
    meta.insert(
        "model_config".to_string(),
        std::fs::read_to_string(&sat.config_file).unwrap(),
    );
    safetensors::serialize_to_file(views, Some(meta), &out).unwrap();
    let err = load(&out).unwrap_err();
    let Error::WeightMismatch {
        missing,
        unexpected,
        mis_shaped,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(
        missing,
        &vec!["transformer.layers.1.mlp.dense_4h_to_h.bias".to_string()]
    );
    assert_eq!(unexpected, &vec!["mixins.extra.weight".to_string()]);
    assert_eq!(mis_shaped.len(), 1);
    assert_eq!(
        mis_shaped[0].name,
        "transformer.layers.0.attention.dense.weight"
    );
    assert_eq!(mis_shaped[0].expected, vec![32, 32]);
    let msg = err.to_string();
    for needle in [
        "dense_4h_to_h.bias",
        "mixins.extra.weight",
        "expected [32, 32], found [64, 16]",
        "bad.safetensors",
    ] {
        assert!(msg.contains(needle), "`{needle}` not in: {msg}");
    }
}

#[test]
fn a_config_that_disagrees_with_the_weights_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&coglm_fixture("tiny-f16"), tmp.path());
    let cfg = tmp.path().join("model_config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"inner_hidden_size\": 80", "\"inner_hidden_size\": 96");
    std::fs::write(&cfg, text).unwrap();
    let err = load(tmp.path()).unwrap_err();
    let Error::WeightMismatch { mis_shaped, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        mis_shaped.len(),
        3 * 3,
        "h_to_4h weight+bias and 4h_to_h weight in each of 3 layers"
    );
}

#[test]
fn missing_model_config_is_a_config_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&coglm_fixture("tiny-f32"), tmp.path());
    std::fs::remove_file(tmp.path().join("model_config.json")).unwrap();
    let err = load(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
    assert!(err.to_string().contains("model_config.json"), "{err}");
    // A missing `latest` file.
    std::fs::remove_file(tmp.path().join("latest")).unwrap();
    let err = load(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("latest"), "{err}");
}

#[test]
fn bad_config_values_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&coglm_fixture("tiny-f32"), tmp.path());
    let cfg = tmp.path().join("model_config.json");
    let orig = std::fs::read_to_string(&cfg).unwrap();
    for (from, to, key) in [
        ("\"num_layers\": 2", "\"num_layers\": \"two\"", "num_layers"),
        (
            "\"layernorm_order\": \"sandwich\"",
            "\"layernorm_order\": \"pre\"",
            "layernorm_order",
        ),
        ("\"vocab_size\": 1200", "\"vocab_size\": 900", "vocab_size"),
    ] {
        assert!(orig.contains(from), "{from}");
        std::fs::write(&cfg, orig.replace(from, to)).unwrap();
        let err = load(tmp.path()).unwrap_err();
        assert!(
            matches!(&err, Error::Config { key: k, .. } if k == key),
            "{key}: {err}"
        );
    }
    std::fs::write(&cfg, "{ not json").unwrap();
    assert!(load(tmp.path())
        .unwrap_err()
        .to_string()
        .contains("not valid JSON"));
}

#[test]
fn token_ids_beyond_the_vocabulary_are_rejected() {
    let model = load(&coglm_fixture("tiny-f32")).unwrap();
    let mask = CoglmMask {
        text_len: 1,
        text_bias: 1.4,
    };
    let err = full_logits(&model, &[5, 1200], &[0, 1], mask, 1200).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TokenOutOfVocab {
                token: 1200,
                index: 1,
                vocab_size: 1200
            }
        ),
        "{err}"
    );
    // The generator checks the text before running anything.
    let g = CoglmGenerator::new(
        Arc::new(model),
        Arc::new(TopKSampler {
            temperature: 1.0,
            top_k: 0,
        }),
        Stage1Settings::default(),
    )
    .unwrap();
    let err = g
        .generate(
            &TextTokens(vec![1001, 150000]),
            &[0],
            &RunContext::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::TokenOutOfVocab { token: 150000, .. }),
        "{err}"
    );
}

#[test]
fn prompts_longer_than_the_model_accepts_are_rejected() {
    let model = Arc::new(load(&coglm_fixture("tiny-f32")).unwrap());
    // Positions beyond the position table.
    let mask = CoglmMask {
        text_len: 0,
        text_bias: 0.0,
    };
    let err = full_logits(model.as_ref(), &[1, 2], &[0, 1024], mask, 1200).unwrap_err();
    assert!(err.to_string().contains("position id 1024"), "{err}");
    // Text longer than stage 1's limit.
    let g = CoglmGenerator::new(
        model.clone(),
        Arc::new(TopKSampler {
            temperature: 1.0,
            top_k: 0,
        }),
        Stage1Settings::default(),
    )
    .unwrap();
    let err = g
        .generate(&TextTokens(vec![1001; 200]), &[0], &RunContext::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::TextTooLong {
                tokens: 200,
                max: 109,
                ..
            }
        ),
        "{err}"
    );
    // A grid that does not fit the model's positions is refused when the generator is built.
    let mut s = Stage1Settings::default();
    s.layout.grid_height = 30;
    s.layout.grid_width = 30;
    let err = CoglmGenerator::new(
        model,
        Arc::new(TopKSampler {
            temperature: 1.0,
            top_k: 0,
        }),
        s,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("position embeddings"), "{err}");
}

#[test]
fn legacy_and_unknown_files_get_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let legacy = tmp.path().join("old.pt");
    std::fs::write(&legacy, b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19.").unwrap();
    let err = Checkpoint::open(&legacy, None).unwrap_err();
    assert!(err.to_string().contains("legacy"), "{err}");
    let err = Checkpoint::open(tmp.path().join("nope.pt"), None).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}
