//! The model description read from the fixture checkpoints (tests/fixtures): each configuration,
//! its validation, and its expected tensors against what the checkpoint really holds.

use cogview_core::sr::SrKind;
use cogview_core::Error;
use cogview_model::inspect::{coglm_config, model_config, open_checkpoint, sr_config, vq_config};
use cogview_model::vq::is_training_buffer;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The checkpoint holds exactly the expected tensors, and the parameter count is their size.
fn holds_exactly(path: &Path, expected: &[(String, Vec<usize>)], parameters: usize) {
    let ckpt = open_checkpoint(path).unwrap();
    ckpt.check(expected, is_training_buffer).unwrap();
    let stored: usize = expected
        .iter()
        .map(|(n, _)| ckpt.info(n).unwrap().shape.iter().product::<usize>())
        .sum();
    assert_eq!(parameters, stored, "{}", path.display());
}

#[test]
fn the_fixture_models_are_described_without_their_weights() {
    let dir = fixtures().join("model-dir");
    let (coglm, files) = coglm_config(dir.join("coglm")).unwrap();
    assert_eq!(
        (coglm.num_layers, coglm.hidden_size, coglm.head_dim),
        (2, 32, 8)
    );
    assert_eq!(coglm.inner_hidden_size, 128, "4 x hidden by default");
    assert_eq!(
        (
            coglm.vocab_size,
            coglm.image_vocab_size,
            coglm.start_of_image_id
        ),
        (5515, 512, 5512)
    );
    assert_eq!(
        files.len(),
        2,
        "model_config.json and the weights: {files:?}"
    );
    holds_exactly(
        &dir.join("coglm"),
        &coglm.expected_tensors(),
        coglm.parameters(),
    );
    assert_eq!(
        model_config(dir.join("coglm"))
            .unwrap()
            .opt_str("model_class")
            .unwrap(),
        Some("BaseModel")
    );

    let (itersr, _) = sr_config(dir.join("cogview2-itersr")).unwrap();
    assert_eq!(itersr.kind, SrKind::Itersr);
    assert_eq!((itersr.text_slots, itersr.low, itersr.high), (16, 0, 60));
    holds_exactly(
        &dir.join("cogview2-itersr"),
        &itersr.expected_tensors(),
        itersr.parameters(),
    );
    let spec = itersr.spec();
    spec.validate().unwrap();
    assert_eq!(spec.level0_len(), 16);
    assert_eq!(spec.own_window().kh, 9);

    let (dsr, _) = sr_config(fixtures().join("sr/dsr-tiny")).unwrap();
    assert_eq!(dsr.kind, SrKind::Dsr);
    assert_eq!((dsr.text_slots, dsr.low, dsr.high), (96, 20, 60));
    assert_eq!(
        dsr.expected_tensors().len(),
        itersr.expected_tensors().len() + 2 * 4,
        "DSR adds a QKV and a dense projection (weight and bias) per layer"
    );
    holds_exactly(
        &fixtures().join("sr/dsr-tiny"),
        &dsr.expected_tensors(),
        dsr.parameters(),
    );
    assert_eq!(dsr.spec().cross_window().ah, 3);
    dsr.spec().validate().unwrap();

    let (vq, files) = vq_config(&dir).unwrap();
    assert_eq!((vq.channels, vq.n_embed), (32, 512));
    assert_eq!(files.len(), 2, "ice_image.pt and vq_config.json: {files:?}");
    vq.validate().unwrap();
    holds_exactly(
        &dir.join("ice_image.pt"),
        &vq.expected_tensors(),
        vq.parameters(),
    );
}

#[test]
fn bad_configurations_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("model-dir/cogview2-itersr");
    for entry in walk(&src) {
        let to = dir.path().join(entry.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &to).unwrap();
    }
    let cfg = dir.path().join("model_config.json");
    let original = std::fs::read_to_string(&cfg).unwrap();
    let case = |from: &str, to: &str| {
        assert!(original.contains(from), "{from}");
        std::fs::write(&cfg, original.replace(from, to)).unwrap();
        sr_config(dir.path()).unwrap_err()
    };
    let e = case("\"kernel_size\": 5", "\"kernel_size\": 4");
    assert!(
        matches!(&e, Error::Config { key, .. } if key == "kernel_size"),
        "{e}"
    );
    let e = case("3616", "3615");
    assert!(e.to_string().contains("not a square grid"), "{e}");
    let e = case("\"sandwich\"", "\"pre\"");
    assert!(
        matches!(&e, Error::Config { key, .. } if key == "layernorm_order"),
        "{e}"
    );
    let e = case("\"num_attention_heads\": 4", "\"num_attention_heads\": 0");
    assert!(
        matches!(&e, Error::Config { key, .. } if key == "num_attention_heads"),
        "{e}"
    );
    let e = case("\"vocab_size\": 5515", "\"vocab_size\": 500");
    assert!(
        matches!(&e, Error::Config { key, .. } if key == "vocab_size"),
        "{e}"
    );
    let e = case("\"ItersrModel\"", "\"DsrModel\"");
    assert!(e.to_string().contains("does not fit a Dsr model"), "{e}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
