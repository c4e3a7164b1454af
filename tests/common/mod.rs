//! Helpers shared by the top-level integration tests.
#![allow(dead_code)]

pub mod plugins;

use cogview::core::npy::read_npy_file;
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn coglm_fixture(name: &str) -> PathBuf {
    fixtures().join("coglm").join(name)
}

#[derive(Debug, Deserialize)]
pub struct Case {
    pub tokens: Vec<u32>,
    pub positions: Vec<u32>,
    pub text_len: usize,
    pub text_bias: f32,
}

/// A parity case and the official logits `[seq, vocab]`.
pub fn case(model: &str, name: &str) -> (Case, Vec<f32>, Vec<usize>) {
    let dir = coglm_fixture(model);
    let case: Case = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("case_{name}.json"))).unwrap(),
    )
    .unwrap();
    let logits = read_npy_file(dir.join(format!("case_{name}.logits.npy"))).unwrap();
    (case, logits.to_f32(), logits.shape)
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Copies a fixture folder tree into a fresh temporary folder.
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}
