//! The web page in a real browser: Debian's headless Chromium driven through chromedriver's
//! WebDriver HTTP API. Fails when Chromium or chromedriver is missing (.ci/run installs them
//! with tools/setup-server-test-deps.sh). With COGVIEW_SCREENSHOTS=1 it writes the page's
//! screenshots to docs/images/server-*.png (else into a temporary folder).

mod common;

use cogview_server::client;
use common::{config, record, TestServer};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn find(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{program} is not installed: run tools/setup-server-test-deps.sh (apt-get install chromium chromium-driver; .ci/run does)")
        })
}

struct Driver {
    child: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let chromium = find("chromium");
        let chromedriver = find("chromedriver");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let t = Instant::now();
        while client::json(addr, "GET", "/status", None, None).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.to_string_lossy(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=1100,900",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let mut d = Driver {
            child,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let r = d.call("POST", "/session", Some(caps));
        d.session = r["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{r}"))
            .to_string();
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = client::json(self.addr, method, path, None, body.as_ref()).unwrap();
        let v = r.json();
        assert!(
            r.status < 400,
            "WebDriver {method} {path}: {} {}",
            r.status,
            r.text()
        );
        v["value"].clone()
    }

    fn s(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    fn script(&self, js: &str) -> Value {
        self.s(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
    }

    fn element(&self, css: &str) -> String {
        let v = self.s(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn wait_for(&self, js: &str, what: &str) -> Value {
        let t = Instant::now();
        loop {
            let v = self.script(js);
            if !v.is_null() && v != json!(false) {
                return v;
            }
            assert!(
                t.elapsed() < Duration::from_secs(180),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self, name: &str, dir: &std::path::Path) {
        use base64::Engine;
        let v = self.s("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(dir.join(format!("server-{name}.png")), png).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = client::json(
                self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
                None,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_web_page_generates_shows_progress_and_cancels_in_headless_chromium() {
    let s = TestServer::start(config());
    let shots_dir = if std::env::var_os("COGVIEW_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/images")
    } else {
        tempfile::tempdir().unwrap().keep()
    };
    std::fs::create_dir_all(&shots_dir).unwrap();
    let d = Driver::start();
    d.s(
        "POST",
        "/url",
        Some(json!({"url": format!("http://{}/", s.addr)})),
    );
    d.wait_for(
        "return document.getElementById('style').options.length > 0",
        "the capabilities",
    );
    let header = d.script("return document.getElementById('model').textContent");
    assert!(header.as_str().unwrap().contains("216x216"), "{header}");

    // Type a prompt and a seed, submit.
    let prompt = d.element("#prompt");
    d.s("POST", &format!("/element/{prompt}/clear"), Some(json!({})));
    d.s(
        "POST",
        &format!("/element/{prompt}/value"),
        Some(json!({"text": "a small red square at the top"})),
    );
    let seed = d.element("#seed");
    d.s(
        "POST",
        &format!("/element/{seed}/value"),
        Some(json!({"text": "42"})),
    );
    let n = d.element("#n");
    d.s("POST", &format!("/element/{n}/clear"), Some(json!({})));
    d.s(
        "POST",
        &format!("/element/{n}/value"),
        Some(json!({"text": "2"})),
    );
    d.screenshot("form", &shots_dir);
    let submit = d.element("#submit");
    d.s("POST", &format!("/element/{submit}/click"), Some(json!({})));

    // The progress bar moves with the event stream; the stage-1 preview shows.
    d.wait_for(
        "return document.getElementById('preview-box').style.display === 'flex' && document.getElementById('preview').naturalWidth > 0",
        "the stage-1 preview",
    );
    d.screenshot("progress", &shots_dir);
    // The images appear in the gallery, decoded.
    let srcs = d.wait_for(
        "const imgs = [...document.querySelectorAll('img.result')];
         return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth === 216)
             ? imgs.map(i => i.getAttribute('src')) : null",
        "the two images",
    );
    assert_eq!(
        d.script("return document.getElementById('status').textContent"),
        "done"
    );
    assert_eq!(
        d.script("return document.getElementById('fill').style.width"),
        "100%"
    );
    let captions =
        d.script("return [...document.querySelectorAll('figcaption')].map(f => f.textContent)");
    let captions: Vec<String> = serde_json::from_value(captions).unwrap();
    assert!(
        captions.iter().any(|c| c.starts_with("seed 42")),
        "{captions:?}"
    );
    assert!(
        captions.iter().any(|c| c.starts_with("seed 43")),
        "{captions:?}"
    );
    let links = d.script(
        "return [...document.querySelectorAll('figcaption a')].map(a => a.getAttribute('href'))",
    );
    assert_eq!(links.as_array().unwrap().len(), 2);
    d.screenshot("gallery", &shots_dir);
    // What the page shows is what the server made for that prompt and seed.
    for src in srcs.as_array().unwrap() {
        let png = s.get(src.as_str().unwrap()).body;
        let rec = record(&png);
        assert_eq!(rec.prompt, "a small red square at the top");
        assert!(rec.seed == 42 || rec.seed == 43);
    }

    // Cancel: a long job, stopped from the page.
    d.s("POST", &format!("/element/{n}/clear"), Some(json!({})));
    d.s(
        "POST",
        &format!("/element/{n}/value"),
        Some(json!({"text": "8"})),
    );
    d.s("POST", &format!("/element/{submit}/click"), Some(json!({})));
    d.wait_for(
        "return document.getElementById('status').textContent.startsWith('stage 1')",
        "progress of the long job",
    );
    let cancel = d.element("#cancel");
    d.s("POST", &format!("/element/{cancel}/click"), Some(json!({})));
    d.wait_for(
        "return document.getElementById('status').textContent === 'cancelled'",
        "the cancellation",
    );
    assert_eq!(
        d.script("return document.querySelectorAll('img.result').length"),
        2
    );
    assert_eq!(s.get("/health").json()["cancelled"], 1);
}
