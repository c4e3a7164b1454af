//! DSR and ItersR against the official CogView2 model classes (run on SwissArmyTransformer with a
//! PyTorch reference of the local-attention kernel; see tests/fixtures/sr/README.md).

use cogview_backend_tests as common;

use cogview::candle::{LoadOptions, SrModel};
use cogview::core::lopar::Lopar;
use cogview::core::npy::read_npy_file;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    kind: String,
    text: Vec<u32>,
    #[serde(default)]
    low_res: Vec<u32>,
    #[serde(default)]
    tokens: Vec<u32>,
    #[serde(default)]
    placeholder: u32,
    image_vocab: usize,
    cells: Vec<usize>,
}

fn sr(name: &str) -> std::path::PathBuf {
    common::fixtures().join("sr").join(name)
}

fn check(model_dir: &str, case: &str) {
    let model = SrModel::load(sr(model_dir), LoadOptions::default()).unwrap();
    let c: Case = serde_json::from_str(
        &std::fs::read_to_string(sr(model_dir).join(format!("case_{case}.json"))).unwrap(),
    )
    .unwrap();
    let want = read_npy_file(sr(model_dir).join(format!("case_{case}.logits.npy"))).unwrap();
    assert_eq!(want.shape, vec![c.cells.len(), c.image_vocab]);
    let logits = match c.kind.as_str() {
        "dsr" => model
            .dsr_logits(&c.text, &c.low_res, c.placeholder)
            .unwrap(),
        _ => model.itersr_logits(&c.text, &c.tokens).unwrap(),
    };
    assert_eq!(logits.dims(), &[3600, c.image_vocab]);
    let got: Vec<Vec<f32>> = logits.to_vec2().unwrap();
    let want = want.to_f32();
    let mut max = 0f32;
    for (i, &cell) in c.cells.iter().enumerate() {
        for (g, w) in got[cell]
            .iter()
            .zip(&want[i * c.image_vocab..(i + 1) * c.image_vocab])
        {
            max = max.max((g - w).abs());
        }
    }
    eprintln!(
        "{model_dir}/{case}: max |diff| {max:e} over {} cells",
        c.cells.len()
    );
    assert!(max <= 1e-4, "{model_dir}/{case}: {max}");
}

#[test]
fn dsr_logits_equal_the_official_model() {
    check("dsr-tiny", "short");
    check("dsr-tiny", "long");
}

#[test]
fn itersr_logits_equal_the_official_model() {
    check("itersr-tiny", "iter1");
    check("itersr-tiny", "iter4_long_text");
}

#[test]
fn lopar_masks_equal_the_official_tiling() {
    #[derive(Deserialize)]
    struct L {
        table: Vec<Vec<i8>>,
        topks: Vec<usize>,
        masked_counts: std::collections::BTreeMap<String, usize>,
        mask_iter1: Vec<u8>,
    }
    let l: L = serde_json::from_str(&std::fs::read_to_string(sr("lopar.json")).unwrap()).unwrap();
    let lopar = Lopar::default();
    // The official literals read from iterative_sr.py: the table and the top-k list (index 0 unused).
    assert_eq!(lopar.table, l.table);
    assert_eq!(lopar.top_k, l.topks[1..].to_vec());
    let m1: Vec<u8> = lopar
        .mask(1, 60, 60, None)
        .unwrap()
        .into_iter()
        .map(u8::from)
        .collect();
    assert_eq!(m1, l.mask_iter1);
    let counts: Vec<usize> = (1..=6)
        .map(|k| {
            lopar
                .mask(k, 60, 60, None)
                .unwrap()
                .iter()
                .filter(|m| **m)
                .count()
        })
        .collect();
    let want: Vec<usize> = (1..=6).map(|k| l.masked_counts[&k.to_string()]).collect();
    assert_eq!(counts, want);
}

#[test]
fn logits_command_prints_every_cell_for_sr_models() {
    let dir = sr("itersr-tiny");
    let out = std::process::Command::new(common::plugins::command())
        .args([
            "logits",
            "--model",
            dir.to_str().unwrap(),
            "--input",
            dir.join("case_iter1.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["logits"].as_array().unwrap();
    assert_eq!(rows.len(), 3600);
    assert_eq!(rows[0].as_array().unwrap().len(), 200);
    let want = read_npy_file(dir.join("case_iter1.logits.npy"))
        .unwrap()
        .to_f32();
    // Cell 0 is the first recorded cell.
    let got: Vec<f32> = rows[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert!(common::max_abs_diff(&got, &want[..200]) <= 1e-4);
}

#[test]
fn bad_sr_inputs_are_typed_errors() {
    use cogview::Error;
    let dsr = SrModel::load(sr("dsr-tiny"), LoadOptions::default()).unwrap();
    let err = dsr.dsr_logits(&[300, 301], &[1; 399], 1199).unwrap_err();
    assert!(
        err.to_string().contains("399 ids for a 20x20 grid"),
        "{err}"
    );
    let err = dsr.dsr_logits(&[300], &[250; 400], 1199).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TokenOutOfVocab {
                token: 250,
                vocab_size: 200,
                ..
            }
        ),
        "{err}"
    );
    let err = dsr.dsr_logits(&vec![300; 96], &[1; 400], 1199).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TextTooLong {
                tokens: 96,
                max: 95,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        dsr.itersr_logits(&[300], &[1; 3600]).is_err(),
        "a DSR model is not an ItersR model"
    );
    let itersr = SrModel::load(sr("itersr-tiny"), LoadOptions::default()).unwrap();
    assert!(itersr
        .itersr_logits(&[300], &[1; 100])
        .unwrap_err()
        .to_string()
        .contains("60x60"));
    assert!(itersr
        .itersr_logits(&[300], &[5000; 3600])
        .unwrap_err()
        .to_string()
        .contains("token id 5000"));
    // A DSR checkpoint without its attention_plus mixins: every missing tensor is named.
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(&sr("itersr-tiny"), tmp.path());
    let cfg = tmp.path().join("model_config.json");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace("ItersrModel", "DsrModel")
            .replace("[\n        16,\n        3616\n    ]", "[96, 496, 4096]"),
    )
    .unwrap();
    let err = SrModel::load(tmp.path(), LoadOptions::default()).unwrap_err();
    let Error::WeightMismatch { missing, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        missing.len(),
        8,
        "qkv and dense weight and bias for 2 layers: {missing:?}"
    );
    assert!(
        err.to_string()
            .contains("mixins.attention_plus.query_key_value.0.weight"),
        "{err}"
    );
}
