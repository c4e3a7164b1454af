//! `cogview serve` run as a user runs it: a served image reproduced by `cogview regenerate`,
//! SIGTERM, and the refusal to listen off loopback without a token.

use cogview_server::client;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn serve(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cogview"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    // Keep draining stderr so that the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(t.elapsed() < within, "the server did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a served PNG to `dir` and checks that `cogview regenerate` reproduces it pixel for pixel.
fn regenerates_identically(dir: &std::path::Path, png: &[u8], name: &str) {
    let served = dir.join(format!("served-{name}.png"));
    std::fs::write(&served, png).unwrap();
    let regen = Command::new(env!("CARGO_BIN_EXE_cogview"))
        .args(["regenerate", "-q"])
        .arg(&served)
        .arg("-o")
        .arg(dir.join(format!("again-{name}.png")))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&regen.stderr);
    assert!(regen.status.success(), "{name}: {stderr}");
    assert!(
        stderr.contains("identical: every pixel matches"),
        "{name}: {stderr}"
    );
}

#[test]
fn a_served_image_is_reproduced_by_regenerate_and_sigterm_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    let (mut child, addr) = serve(&[
        "--bind",
        "127.0.0.1:0",
        "--shutdown-grace",
        "0",
        "--image-dir",
        images.to_str().unwrap(),
    ]);
    let r = client::json(
        addr,
        "POST",
        "/v1/images/generations",
        None,
        Some(&json!({"prompt": "a large blue circle in the center", "n": 2, "seed": 21})),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(r.json()["data"][1]["b64_json"].as_str().unwrap())
        .unwrap();
    regenerates_identically(dir.path(), &png, "first");
    // A request in another style than the server's (the default model's is `none`): regenerate
    // rebuilds the pipeline in that style from the record.
    let r = client::json(
        addr,
        "POST",
        "/v1/images/generations",
        None,
        Some(&json!({"prompt": "a small red square at the top", "seed": 22, "style": "flat"})),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let png = base64::engine::general_purpose::STANDARD
        .decode(r.json()["data"][0]["b64_json"].as_str().unwrap())
        .unwrap();
    regenerates_identically(dir.path(), &png, "flat");

    // SIGTERM while a job runs: it is cancelled, the server exits cleanly, no files are left.
    let r = client::json(
        addr,
        "POST",
        "/v1/jobs",
        None,
        Some(&json!({"prompt": "a triangle", "n": 8})),
    )
    .unwrap();
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    while client::json(addr, "GET", &format!("/v1/jobs/{id}"), None, None)
        .unwrap()
        .json()["status"]
        == "queued"
    {
        assert!(t.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(10));
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_exit(&mut child, Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(!images.exists(), "the image folder is removed at exit");
}

#[test]
fn serving_off_loopback_without_a_token_is_refused_before_loading() {
    let out = Command::new(env!("CARGO_BIN_EXE_cogview"))
        .args(["serve", "--bind", "0.0.0.0:0"])
        .env_remove("COGVIEW_SERVE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("--token") && e.contains("0.0.0.0"), "{e}");
    assert!(!e.contains("loading the pipeline"), "{e}");
}
