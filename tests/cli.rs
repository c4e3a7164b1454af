//! The `cogview` command, run as a user runs it.

mod common;

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
fn generate_writes_reproducible_grids() {
    let dir = coglm_fixture("tiny-f16");
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &str| {
        ok(&[
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--text-ids",
            "1049,1176,1112",
            "--sampler",
            "top-k",
            "-n",
            "2",
            "--seed",
            "5",
            "--quiet",
            "--out",
            tmp.path().join(out).to_str().unwrap(),
        ])
    };
    let printed = run("a");
    run("b");
    assert_eq!(printed.lines().count(), 2);
    for seed in [5, 6] {
        let a = std::fs::read_to_string(tmp.path().join(format!("a/grid_{seed}.json"))).unwrap();
        let b = std::fs::read_to_string(tmp.path().join(format!("b/grid_{seed}.json"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["seed"], seed);
        assert_eq!(v["ids"].as_array().unwrap().len(), 400);
        let (av, bv): (serde_json::Value, serde_json::Value) =
            (v, serde_json::from_str(&b).unwrap());
        assert_eq!(av["ids"], bv["ids"]);
    }
}

#[test]
fn generate_explains_a_cluster_table_that_does_not_fit() {
    let dir = coglm_fixture("tiny-f32");
    let err = fails(&[
        "generate",
        "--model",
        dir.to_str().unwrap(),
        "--text-ids",
        "1001",
        "--quiet",
    ]);
    assert!(
        err.contains("20000 codes")
            && err.contains("1000 image codes")
            && err.contains("--sampler top-k"),
        "{err}"
    );
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
