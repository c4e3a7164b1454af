//! The tch (libtorch) plugin, built and tested here so that it is never silently untested.
//!
//! The first test to run builds `plugins/tch` with `tools/build-tch-plugin.sh` (debug profile):
//! the script installs libtorch 2.13.0 from PyPI's `torch` wheel into `target/libtorch-venv`
//! once (about 540 MB), then builds the plugin (about 2 minutes cold on 2 cores). Set
//! `COGVIEW_TCH_PLUGIN=/path/to/libcogview_plugin_tch.so` to test an already built library, or
//! `LIBTORCH=/path/to/libtorch` to build against an existing libtorch 2.13.0.
//!
//! The tests are `#[ignore]`d because of that set-up; the test command (`cargo test --workspace
//! -- --include-ignored`, what `.ci/run` runs) includes them.

use cogview_backend_tests as common;

use common::suite::Candidate;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Runs `tools/build-tch-plugin.sh` (debug profile) with `args`; its messages (pip, cargo) go to
/// this test's output, its standard output (the library's path) is returned.
fn build_script(args: &[&str]) -> String {
    let root = common::workspace_root();
    let out = Command::new("bash")
        .arg(root.join("tools/build-tch-plugin.sh"))
        .args(args)
        .env("PROFILE", "debug")
        .env("NICE", "0")
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("bash runs tools/build-tch-plugin.sh");
    assert!(
        out.status.success(),
        "tools/build-tch-plugin.sh {args:?} failed ({}); its messages are above",
        out.status
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The plugin library: `COGVIEW_TCH_PLUGIN`, or built once per test run.
fn tch_plugin() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        if let Some(lib) = std::env::var_os("COGVIEW_TCH_PLUGIN") {
            return PathBuf::from(lib);
        }
        let stdout = build_script(&[]);
        let lib = PathBuf::from(
            stdout
                .lines()
                .last()
                .expect("the script prints the library"),
        );
        assert!(lib.is_file(), "{} was not built", lib.display());
        lib
    })
    .clone()
}

// The conformance suite, called as every other backend calls it.
cogview_backend_tests::conformance_tests!(
    Candidate::tch_plugin(tch_plugin()),
    #[ignore = "installs libtorch from PyPI once (~540 MB) and builds the tch plugin (~2 min)"]
);

/// The plugin crate's own unit tests (option parsing), against the same libtorch.
#[test]
#[ignore = "installs libtorch from PyPI once (~540 MB) and builds the tch plugin (~2 min)"]
fn tch_plugin_unit_tests_pass() {
    tch_plugin(); // one build at a time
    build_script(&["--test"]);
}

/// The "done when": `cogview generate --config examples/configs/tch.toml` runs with the
/// plugin found by name at run time, and draws the tokens of the same command on candle.
#[test]
#[ignore = "installs libtorch from PyPI once (~540 MB) and builds the tch plugin (~2 min)"]
fn generate_with_the_tch_config_draws_the_candle_tokens() {
    let lib = tch_plugin();
    let root = common::workspace_root();
    let model_dir = common::fixtures().join("model-dir");
    let tmp = tempfile::tempdir().unwrap();
    let run = |config: &str, out: &str| {
        let status = Command::new(common::plugins::command())
            .arg("generate")
            .arg("--config")
            .arg(root.join("examples/configs").join(config))
            .arg("--model-dir")
            .arg(&model_dir)
            .args([
                "a red circle",
                "--seed",
                "5",
                "-n",
                "2",
                "--save-grids",
                "--quiet",
            ])
            .arg("--out")
            .arg(tmp.path().join(out))
            // Found by name (`backend = "tch"`) in the plugin search path.
            .env("COGVIEW_PLUGIN_PATH", lib.parent().unwrap())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cogview generate --config {config} failed"
        );
    };
    run("tch.toml", "tch");
    run("official.toml", "candle");
    let (mut same, mut total) = (0, 0);
    for seed in [5, 6] {
        for stage in ["low", "high"] {
            let name = format!("a-red-circle-{seed}.{stage}.json");
            let read = |dir: &str| {
                let text = std::fs::read_to_string(tmp.path().join(dir).join(&name)).unwrap();
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                v["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap())
                    .collect::<Vec<_>>()
            };
            let (a, b) = (read("tch"), read("candle"));
            assert_eq!(a.len(), b.len(), "{name}");
            same += a.iter().zip(&b).filter(|(x, y)| x == y).count();
            total += a.len();
        }
    }
    eprintln!("cogview generate, tch.toml vs official.toml: {same}/{total} tokens agree");
    assert!(
        same * 100 >= total * 99,
        "tch and candle configs: only {same}/{total} tokens agree"
    );
}
