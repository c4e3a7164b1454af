//! The `cogview` command, run as a user runs it.

use cogview_backend_tests as common;

use common::*;
use std::process::Command;

fn cogview(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cogview"))
        .args(args)
        .output()
        .expect("cogview runs")
}

fn ok(args: &[&str]) -> String {
    let out = cogview(args);
    assert!(
        out.status.success(),
        "cogview {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = cogview(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "cogview {args:?} should fail cleanly"
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn logits_command_prints_the_official_logits() {
    let dir = coglm_fixture("tiny-f16");
    let input = dir.join("case_bias14.json");
    let out = ok(&[
        "logits",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["logits"].as_array().unwrap();
    let got: Vec<f32> = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
        })
        .collect();
    let (c, want, _) = case("tiny-f16", "bias14");
    assert_eq!(rows.len(), c.tokens.len());
    assert_eq!(rows[0].as_array().unwrap().len(), 1200, "full vocabulary");
    assert!(max_abs_diff(&got, &want) <= 1e-4);
}

#[test]
fn logits_command_rejects_malformed_input_naming_the_field() {
    let dir = coglm_fixture("tiny-f32");
    let tmp = tempfile::tempdir().unwrap();
    let model = dir.to_str().unwrap();
    let cases = [
        (
            "{\"tokens\": [1, 2], \"positions\": [0, 1], \"text_len\": 1",
            "malformed input JSON",
        ),
        (
            "{\"tokens\": [1, 2], \"positions\": [0], \"text_len\": 1}",
            "positions",
        ),
        (
            "{\"tokens\": [1, 2], \"positions\": [0, 1], \"text_len\": 5}",
            "text_len",
        ),
        (
            "{\"tokens\": [1, 2], \"positions\": [0, 1], \"text_len\": 1, \"bias\": 2}",
            "unknown field `bias`",
        ),
        (
            "{\"tokens\": [1, 5000], \"positions\": [0, 1], \"text_len\": 1}",
            "token id 5000",
        ),
    ];
    for (i, (json, needle)) in cases.iter().enumerate() {
        let p = tmp.path().join(format!("in{i}.json"));
        std::fs::write(&p, json).unwrap();
        let err = fails(&["logits", "--model", model, "--input", p.to_str().unwrap()]);
        assert!(err.contains(needle), "`{needle}` not in: {err}");
    }
}

#[test]
fn convert_then_load_gives_the_same_logits() {
    let dir = coglm_fixture("tiny-f32");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("coglm.safetensors");
    ok(&[
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let input = dir.join("case_long.json");
    let a = ok(&[
        "logits",
        "--model",
        dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    let b = ok(&[
        "logits",
        "--model",
        out.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
    ]);
    assert_eq!(a, b);
    // Converting something that is not a SAT folder fails with a message naming `latest`.
    let err = fails(&[
        "convert",
        tmp.path().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("latest"), "{err}");
}

fn icetk() -> std::path::PathBuf {
    fixtures().join("icetk")
}

#[test]
fn tokenize_then_detokenize_round_trips_through_files() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = icetk().join("ice_image.pt");
    let grid = tmp.path().join("girl.grid.json");
    let img = icetk().join("images/cute_girl.jpg");
    ok(&[
        "tokenize",
        img.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--size",
        "160",
        "-o",
        grid.to_str().unwrap(),
    ]);
    let file = cogview::core::grid_file::GridFile::read(&grid).unwrap();
    assert_eq!((file.grid.height, file.grid.width), (20, 20));
    assert_eq!(file.compression, Some(cogview::Compression::X8));
    // The same ids as icetk's own pipeline on this file (tests/icetk_image_parity.rs allows a few
    // JPEG-decoder differences; the command uses the same code).
    let json = ok(&[
        "tokenize",
        img.to_str().unwrap(),
        "--tokenizer",
        icetk().to_str().unwrap(),
        "--size",
        "160",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ids: Vec<u32> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(
        ids, file.grid.ids,
        "a folder and the file give the same tokenizer"
    );
    // Both forms decode; the PNG is 160×160.
    let short = tmp.path().join("short.json");
    std::fs::write(&short, &json).unwrap();
    for (g, png) in [(&grid, "a.png"), (&short, "b.png")] {
        let out = tmp.path().join(png);
        ok(&[
            "detokenize",
            g.to_str().unwrap(),
            "--tokenizer",
            tok.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        let im = cogview::image::load_image(&out).unwrap();
        assert_eq!((im.width, im.height), (160, 160));
    }
    assert_eq!(
        std::fs::read(tmp.path().join("a.png")).unwrap(),
        std::fs::read(tmp.path().join("b.png")).unwrap()
    );
}

#[test]
fn tokenize_text_prints_icetk_ids() {
    let model = icetk().join("text/ice_text.model");
    let out = ok(&[
        "tokenize-text",
        "a cat 高清摄影 隔绝<start_of_image>",
        "--tokenizer",
        model.to_str().unwrap(),
    ]);
    let ids: Vec<u32> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        *ids.last().unwrap(),
        25000,
        "<start_of_image> follows the 5000 pieces, +20000"
    );
    assert!(ids.iter().all(|&i| i >= 20000));
}

#[test]
fn tokenizer_commands_reject_bad_input_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let tok = icetk().join("ice_image.pt");
    let t = tok.to_str().unwrap();
    // Empty and unreadable images.
    let empty = tmp.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    assert!(fails(&[
        "tokenize",
        empty.to_str().unwrap(),
        "--tokenizer",
        t,
        "--json"
    ])
    .contains("empty"));
    let junk = tmp.path().join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    assert!(fails(&[
        "tokenize",
        junk.to_str().unwrap(),
        "--tokenizer",
        t,
        "--json"
    ])
    .contains("junk.png"));
    let missing = tmp.path().join("missing.png");
    assert!(fails(&[
        "tokenize",
        missing.to_str().unwrap(),
        "--tokenizer",
        t,
        "--json"
    ])
    .contains("missing.png"));
    // An image smaller than one token, and an unknown compression rate.
    let small = tmp.path().join("small.png");
    cogview::image::save_png(
        &cogview::Image::new(5, 5, vec![9; 75]).unwrap(),
        &small,
        &[],
    )
    .unwrap();
    assert!(fails(&[
        "tokenize",
        small.to_str().unwrap(),
        "--tokenizer",
        t,
        "--json"
    ])
    .contains("multiples of 8"));
    let img = icetk().join("images/girl160.png");
    assert!(fails(&[
        "tokenize",
        img.to_str().unwrap(),
        "--tokenizer",
        t,
        "--compression",
        "6",
        "--json"
    ])
    .contains("4, 8 or 16"));
    // Grids: ids outside the codebook, the wrong size, another tokenizer, another compression.
    let png = tmp.path().join("o.png");
    let o = png.to_str().unwrap();
    let cases = [
        (
            r#"{"height": 1, "width": 2, "ids": [1, 512]}"#,
            "token id 512",
        ),
        (
            r#"{"height": 2, "width": 2, "ids": [1, 2, 3]}"#,
            "do not fill a 2x2 grid",
        ),
        (
            r#"{"format": "cogview-token-grid", "version": 1, "height": 1, "width": 1, "compression": 8, "tokenizer_sha256": "00", "ids": [1]}"#,
            "another image tokenizer",
        ),
    ];
    for (i, (json, needle)) in cases.iter().enumerate() {
        let g = tmp.path().join(format!("g{i}.json"));
        std::fs::write(&g, json).unwrap();
        let err = fails(&["detokenize", g.to_str().unwrap(), "--tokenizer", t, "-o", o]);
        assert!(err.contains(needle), "`{needle}` not in {err}");
    }
    let grid = tmp.path().join("g.json");
    ok(&[
        "tokenize",
        img.to_str().unwrap(),
        "--tokenizer",
        t,
        "-o",
        grid.to_str().unwrap(),
    ]);
    let err = fails(&[
        "detokenize",
        grid.to_str().unwrap(),
        "--tokenizer",
        t,
        "--compression",
        "16",
        "-o",
        o,
    ]);
    assert!(err.contains("encoded at compression 8"), "{err}");
}

#[cfg(unix)]
#[test]
fn invalid_utf8_text_is_refused_without_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let model = icetk().join("text/ice_text.model");
    let out = Command::new(env!("CARGO_BIN_EXE_cogview"))
        .arg("tokenize-text")
        .arg(std::ffi::OsStr::from_bytes(b"caf\xff"))
        .arg("--tokenizer")
        .arg(&model)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("UTF-8") && !err.contains("panicked"), "{err}");
}

/// `cogview train dsr|itersr`: options that belong to CogLM or are out of range are refused with
/// a message naming the option, before any file is read.
#[test]
fn train_refuses_options_that_do_not_apply() {
    // Each CogLM-only option, on each super-resolution part.
    for part in ["dsr", "itersr"] {
        for (flag, value) in [("--infill-ratio", "0.2"), ("--caption-dropout", "0.1")] {
            let err = fails(&[
                "train",
                part,
                "--out",
                "unused-out",
                "--vq",
                "missing-vq.safetensors",
                "--tokenizer",
                "missing.model",
                flag,
                value,
            ]);
            assert!(
                err.contains(flag) && err.contains("CogLM"),
                "{part} {flag}: {err}"
            );
        }
    }
    for (flag, value) in [("--caption-dropout", "0.9"), ("--infill-ratio", "0.8")] {
        let err = fails(&[
            "train",
            "coglm",
            "--out",
            "unused-out",
            "--vq",
            "missing-vq.safetensors",
            "--tokenizer",
            "missing.model",
            flag,
            value,
        ]);
        assert!(
            err.contains(flag) && err.contains("between 0 and") && !err.contains("missing-vq"),
            "{flag}: {err}"
        );
    }
    let out = cogview(&[
        "train",
        "coglm",
        "--out",
        "x",
        "--vq",
        "v",
        "--tokenizer",
        "t",
        "--layers",
        "0",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--layers"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `--guidance` outside 1-20 (or not a number the scale can be) is refused by name before any
/// model is loaded.
#[test]
fn guidance_outside_its_range_is_refused_by_name() {
    for g in ["0.5", "21", "NaN", "inf"] {
        let err = fails(&[
            "generate",
            "a red circle",
            "--guidance",
            g,
            "--out",
            "unused-out",
        ]);
        assert!(
            err.contains("--guidance") && err.contains("1 (none"),
            "{g}: {err}"
        );
    }
}
