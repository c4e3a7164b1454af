//! The official OpenAI Python client (pinned in tools/setup-server-test-deps.sh, installed into
//! target/openai-venv) against the server: models, images.generate, images.edit, errors, auth.
//! Fails when the client is missing: .ci/run installs it.

mod common;

use cogview::pipeline::record::Origin;
use cogview_server::ServerConfig;
use common::{config, dimensions, record, TestServer};
use std::path::PathBuf;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("COGVIEW_OPENAI_PYTHON") {
        return p.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = root.join("target/openai-venv/bin/python");
    assert!(
        p.is_file(),
        "{} is missing: run tools/setup-server-test-deps.sh (it installs the pinned OpenAI client; .ci/run does)",
        p.display()
    );
    p
}

#[test]
fn the_official_openai_python_client_generates_and_edits() {
    let python = python();
    let s = TestServer::start(ServerConfig {
        token: Some("sk-cogview-test".into()),
        ..config()
    });
    let out = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_client.py");
    let run = std::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{}/v1", s.addr))
        .arg("sk-cogview-test")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "the client failed:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(run.stdout.trim_ascii())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&run.stdout)));
    assert_eq!(report["openai_version"], "3.63.0");
    assert_eq!(report["models"], serde_json::json!(["cogview"]));
    let generated: Vec<Vec<u8>> = report["generate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| std::fs::read(p.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(generated.len(), 2);
    for (k, png) in generated.iter().enumerate() {
        assert_eq!(dimensions(png), (216, 216));
        let rec = record(png);
        assert_eq!(
            rec.seed,
            7 + k as u64,
            "extra_body's seed reached the server"
        );
        assert!(matches!(
            rec.origin,
            Origin::Generate {
                only_first_stage: true,
                ..
            }
        ));
    }
    let edited = std::fs::read(report["edit"][0].as_str().unwrap()).unwrap();
    let rec = record(&edited);
    assert_eq!(rec.seed, 3);
    assert_eq!(rec.prompt, "a large red circle in the center");
    match rec.origin {
        Origin::Edit { mask, .. } => assert!(mask.starts_with("file "), "{mask}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(report["error"]["status"], 400);
    let m = report["error"]["message"].as_str().unwrap();
    assert!(m.contains("max_images = 8"), "{m}");
    assert_eq!(report["auth"], 401);
}
