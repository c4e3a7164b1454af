//! What a newcomer tripped on (issue 16): output paths that may name a folder, a pipeline file
//! without a model, and a relative `--model-dir` next to `--config`.

use cogview_backend_tests as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the command in `cwd` with a test-only cache folder.
fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cogview"))
        .args(args)
        .current_dir(cwd)
        .env(
            "COGVIEW_CACHE_DIR",
            std::env::temp_dir().join("cogview-test-cache"),
        )
        .output()
        .expect("cogview runs")
}

fn ok_in(cwd: &Path, args: &[&str]) -> String {
    let out = run_in(cwd, args);
    assert!(
        out.status.success(),
        "cogview {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails_in(cwd: &Path, args: &[&str]) -> String {
    let out = run_in(cwd, args);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "cogview {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn pixels(path: &Path) -> cogview::Image {
    cogview::image::load_image(path).unwrap()
}

/// One stage-1 image of "a small red square at the top left", written into `dir/out`, with
/// extra flags; returns its path.
fn first_stage_image_with(dir: &Path, seed: &str, out: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "generate",
        "a small red square at the top left",
        "--only-first-stage",
        "--seed",
        seed,
        "--out",
        out,
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let printed = ok_in(dir, &args);
    dir.join(printed.lines().next().unwrap())
}

/// The same with the embedded default model and no pipeline file.
fn first_stage_image(dir: &Path, seed: &str) -> PathBuf {
    first_stage_image_with(dir, seed, "made", &[])
}

#[test]
fn regenerate_out_accepts_a_folder_the_current_one_included() {
    let tmp = tempfile::tempdir().unwrap();
    let image = first_stage_image(tmp.path(), "5");
    let name = format!(
        "{}.regenerated.png",
        image.file_stem().unwrap().to_string_lossy()
    );
    // `--out .` once failed with "Device or resource busy (os error 16)".
    ok_in(
        tmp.path(),
        &["regenerate", image.to_str().unwrap(), "--out", ".", "-q"],
    );
    assert_eq!(pixels(&tmp.path().join(&name)), pixels(&image));
    // An existing folder, and a new one named with a trailing slash.
    std::fs::create_dir(tmp.path().join("existing")).unwrap();
    ok_in(
        tmp.path(),
        &[
            "regenerate",
            image.to_str().unwrap(),
            "--out",
            "existing",
            "-q",
        ],
    );
    assert!(tmp.path().join("existing").join(&name).is_file());
    ok_in(
        tmp.path(),
        &["regenerate", image.to_str().unwrap(), "--out", "new/", "-q"],
    );
    assert!(tmp.path().join("new").join(&name).is_file());
    // A file name still names the file, its folder created if missing.
    ok_in(
        tmp.path(),
        &[
            "regenerate",
            image.to_str().unwrap(),
            "--out",
            "deep/er/x.png",
            "-q",
        ],
    );
    assert!(tmp.path().join("deep/er/x.png").is_file());
    // A folder that is a file: said, and nothing written.
    std::fs::write(tmp.path().join("plain"), b"").unwrap();
    let err = fails_in(
        tmp.path(),
        &[
            "regenerate",
            image.to_str().unwrap(),
            "--out",
            "plain/x.png",
        ],
    );
    assert!(
        err.contains("--out") && err.contains("is a file, not a folder"),
        "{err}"
    );
}

#[test]
fn tokenize_and_detokenize_outputs_accept_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let image = first_stage_image(tmp.path(), "6");
    let stem = image.file_stem().unwrap().to_string_lossy().into_owned();
    let model = common::fixtures().join("model-dir");
    let m = model.to_str().unwrap();
    ok_in(
        tmp.path(),
        &[
            "tokenize",
            image.to_str().unwrap(),
            "--tokenizer",
            m,
            "-o",
            ".",
        ],
    );
    let grid = tmp.path().join(format!("{stem}.json"));
    assert!(grid.is_file());
    ok_in(
        tmp.path(),
        &[
            "detokenize",
            grid.to_str().unwrap(),
            "--tokenizer",
            m,
            "-o",
            "pngs/",
        ],
    );
    assert!(tmp
        .path()
        .join("pngs")
        .join(format!("{stem}.png"))
        .is_file());
}

#[test]
fn a_pipeline_file_without_a_model_applies_to_the_embedded_one() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = first_stage_image(tmp.path(), "9");
    // A file holding only sampling settings equal to the embedded model's own.
    std::fs::create_dir(tmp.path().join("cfg")).unwrap();
    let same = tmp.path().join("cfg/same.toml");
    std::fs::write(
        &same,
        "style = \"none\"\n[coglm]\ntemperature = 0.7\ntop_k_clusters = 4\n",
    )
    .unwrap();
    let with_file = first_stage_image_with(
        tmp.path(),
        "9",
        "with-file",
        &["--config", same.to_str().unwrap()],
    );
    assert_eq!(pixels(&with_file), pixels(&plain));
    // A setting of the file takes effect: greedy-ish sampling differs from the default's.
    let other = tmp.path().join("cfg/other.toml");
    std::fs::write(&other, "[coglm]\ntemperature = 3.0\ntop_k_clusters = 32\n").unwrap();
    let hot = first_stage_image_with(
        tmp.path(),
        "9",
        "other",
        &["--config", other.to_str().unwrap()],
    );
    assert_ne!(pixels(&hot), pixels(&plain));
}

#[test]
fn a_relative_model_dir_flag_is_relative_to_the_working_directory() {
    let tmp = tempfile::tempdir().unwrap();
    common::copy_dir(
        &common::fixtures().join("model-dir"),
        &tmp.path().join("work/models/tiny"),
    );
    std::fs::create_dir(tmp.path().join("cfg")).unwrap();
    let cfg = tmp.path().join("cfg/p.toml");
    std::fs::write(&cfg, "[coglm]\ntemperature = 1.0\n").unwrap();
    let out = ok_in(
        &tmp.path().join("work"),
        &[
            "generate",
            "a cat",
            "--only-first-stage",
            "--config",
            cfg.to_str().unwrap(),
            "--model-dir",
            "models/tiny",
            "--out",
            "o",
            "--quiet",
        ],
    );
    assert!(tmp
        .path()
        .join("work")
        .join(out.lines().next().unwrap())
        .is_file());
    // The file's own relative `model_dir` stays relative to the file's folder.
    std::fs::write(&cfg, "model_dir = \"../work/models/tiny\"\n").unwrap();
    ok_in(
        tmp.path(),
        &[
            "generate",
            "a cat",
            "--only-first-stage",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            "o2",
            "--quiet",
        ],
    );
}
