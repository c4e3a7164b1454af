//! # cogview-backend-tests
//!
//! The backend conformance suite, one copy that every backend runs the same way (like burn's
//! backend-tests crate): [`conformance_tests!`] expands to the suite's `#[test]` functions for a
//! [`suite::Candidate`] — the built-in candle backend (crates/cogview-candle/tests), the candle
//! plugin (plugins/candle/tests), the tch plugin (tests/tch) and the CUDA build when a GPU is
//! lent. Every stage's output must equal the reference (the built-in candle backend) within the
//! candidate's tolerance, and a whole pipeline must draw the same tokens for the same seed.
//!
//! It also holds what the workspace's tests share: the fixtures in the official formats
//! (`tests/fixtures`, made by tools/reference), and building plugin libraries and the command
//! from a test ([`plugins`]).

pub mod full_disk;
mod paths;
pub mod plugins;
/// The library the suite drives (for tests of crates that cannot name it themselves: the C API
/// crate's library is also called `cogview`).
pub use cogview as sdk;
pub mod suite;

pub use paths::{coglm_fixture, fixtures, workspace_root};

/// Expands to the conformance suite's tests for the candidate `$candidate` (an expression of
/// type [`suite::Candidate`], evaluated in each test).
///
/// ```text
/// cogview_backend_tests::conformance_tests!(cogview_backend_tests::suite::Candidate::built_in());
/// ```
///
/// Attributes after the candidate (e.g. `, #[ignore = "why"]`) go on every generated test.
#[macro_export]
macro_rules! conformance_tests {
    ($candidate:expr $(, #[$attr:meta])* $(,)?) => {
        #[test]
        $(#[$attr])*
        fn conformance_each_stage_equals_the_reference() {
            $crate::suite::each_stage_equals_the_reference(&[$candidate]);
        }

        #[test]
        $(#[$attr])*
        fn conformance_same_tokens_for_the_same_seed() {
            $crate::suite::same_tokens_for_the_same_seed(&[$candidate]);
        }
    };
}

use cogview::core::npy::read_npy_file;
use serde::Deserialize;
use std::path::Path;

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

/// What a low-memory pipeline holds while each stage runs: install with
/// [`ResidencyLog::attach`], then [`ResidencyLog::assert_one_model_at_a_time`] after the run.
#[derive(Default, Clone)]
pub struct ResidencyLog(std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<&'static str>)>>>);

impl ResidencyLog {
    /// Records, at every progress report of `ctx`, the stage and `p`'s loaded components.
    pub fn attach(p: &std::sync::Arc<cogview::Pipeline>, ctx: &mut cogview::RunContext) -> Self {
        let log = ResidencyLog::default();
        let (seen, weak) = (log.0.clone(), std::sync::Arc::downgrade(p));
        ctx.progress = Some(std::sync::Arc::new(
            move |pr: cogview::core::context::Progress| {
                if let Some(p) = weak.upgrade() {
                    seen.lock()
                        .unwrap()
                        .push((pr.stage.to_string(), p.loaded_components()));
                }
            },
        ));
        log
    }

    /// Every stage reported, and while each ran only its own model was loaded.
    pub fn assert_one_model_at_a_time(&self) {
        let seen = self.0.lock().unwrap();
        let stages: std::collections::BTreeSet<&str> =
            seen.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(
            stages,
            std::collections::BTreeSet::from(["coglm", "dsr", "itersr", "decode"])
        );
        for (stage, loaded) in seen.iter() {
            let want: &[&str] = match stage.as_str() {
                "coglm" => &["coglm"],
                "dsr" => &["dsr"],
                "itersr" => &["itersr"],
                _ => &["image tokenizer"],
            };
            assert_eq!(loaded, want, "while {stage} runs");
        }
    }
}

/// Runs the `cogview` command ([`plugins::command`]) with a test-only cache folder.
pub fn cogview(args: &[&str]) -> std::process::Output {
    std::process::Command::new(plugins::command())
        .args(args)
        .env(
            "COGVIEW_CACHE_DIR",
            std::env::temp_dir().join("cogview-test-cache"),
        )
        .output()
        .expect("cogview runs")
}
