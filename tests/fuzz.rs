//! The fuzz targets (fuzz/, docs/reliability.md) in the normal test suite:
//!
//! - every input of the committed corpora (fuzz/corpus/TARGET) and every input that once crashed
//!   a target (fuzz/regressions/TARGET, each fixed) runs through the same function the target
//!   runs, here in the ordinary test build: none may panic;
//! - a short coverage-guided pass of every target (libFuzzer through cargo-fuzz, a few seconds
//!   each, from the committed corpus), ignored by default and run by the README's test command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a fuzz target runs on one input.
type Run = Box<dyn Fn(&[u8])>;

/// Every target and the function it runs.
fn targets() -> Vec<(&'static str, Run)> {
    let tokenizer = cogview_fuzz::default_tokenizer();
    let server = cogview_fuzz::ServerHarness::new();
    vec![
        ("torch_zip", Box::new(cogview_fuzz::torch_or_safetensors)),
        ("pickle", Box::new(cogview_fuzz::pickle)),
        ("safetensors", Box::new(cogview_fuzz::torch_or_safetensors)),
        ("sat_folder", Box::new(cogview_fuzz::sat_folder)),
        ("text_model", Box::new(cogview_fuzz::text_model)),
        (
            "prompt",
            Box::new(move |d| cogview_fuzz::prompt(&tokenizer, d)),
        ),
        ("pipeline_toml", Box::new(cogview_fuzz::pipeline_toml)),
        ("grid_file", Box::new(cogview_fuzz::grid_file)),
        ("png_record", Box::new(cogview_fuzz::png_record)),
        ("image", Box::new(cogview_fuzz::image)),
        ("npy", Box::new(cogview_fuzz::npy)),
        (
            "server_request",
            Box::new(move |d| cogview_fuzz::server_request(&server, d)),
        ),
    ]
}

fn fuzz_dir() -> PathBuf {
    cogview_backend_tests::workspace_root().join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn every_corpus_and_regression_input_runs_without_panicking() {
    let mut total = 0;
    for (name, run) in targets() {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name} is empty");
        for f in corpus
            .iter()
            .chain(&files(&fuzz_dir().join("regressions").join(name)))
        {
            let data = std::fs::read(f).unwrap();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&data)));
            assert!(r.is_ok(), "{name}: {} panicked", f.display());
            total += 1;
        }
    }
    eprintln!("{total} inputs");
}

/// A short libFuzzer run of every target from its committed corpus (cargo-fuzz; see
/// docs/reliability.md): a crash, a timeout or running out of memory fails it. `FUZZ_SECONDS`
/// sets the time per target (default 5).
#[test]
#[ignore = "builds the fuzz targets (minutes the first time); run by the README's test command"]
fn a_bounded_fuzz_pass_of_every_target_finds_nothing() {
    let dir = fuzz_dir();
    let have = Command::new("cargo").args(["fuzz", "--version"]).output();
    assert!(
        have.is_ok_and(|o| o.status.success()),
        "cargo-fuzz is not installed: `cargo install cargo-fuzz` (.ci/run does it)"
    );
    let build = Command::new("cargo")
        .current_dir(&dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "build", "-s", "none", "-a"])
        .status()
        .unwrap();
    assert!(build.success(), "cargo fuzz build failed");
    let seconds = std::env::var("FUZZ_SECONDS").unwrap_or_else(|_| "5".into());
    let bin_dir = dir.join("target/x86_64-unknown-linux-gnu/release");
    for (name, _) in targets() {
        let work = tempfile::tempdir().unwrap();
        let artifacts = work.path().join("artifacts/");
        std::fs::create_dir_all(&artifacts).unwrap();
        let o = Command::new(bin_dir.join(name))
            .arg(work.path())
            .arg(dir.join("corpus").join(name))
            .arg(format!("-max_total_time={seconds}"))
            .args(["-rss_limit_mb=2048", "-timeout=10", "-max_len=65536"])
            .arg(format!("-artifact_prefix={}", artifacts.display()))
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&o.stderr);
        let stats = log
            .lines()
            .rev()
            .find(|l| l.starts_with("Done") || l.contains("stat::number_of_executed_units"))
            .unwrap_or("");
        eprintln!("{name}: {stats}");
        if !o.status.success() {
            // Keep the failing input: the folder is removed on success only.
            let kept = work.keep();
            panic!(
                "fuzz target {name} found a problem (the input is in {}):\n{}",
                kept.join("artifacts").display(),
                &log[log.len().saturating_sub(4000)..]
            );
        }
    }
}
