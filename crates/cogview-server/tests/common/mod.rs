//! A server on a free loopback port, with the embedded default model, for the tests.
#![allow(dead_code)]

use cogview::{Pipeline, Settings};
use cogview_server::client::{self, Response};
use cogview_server::jobs::Scheduler;
use cogview_server::{Server, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PROMPT: &str = "a large blue circle in the center";

/// The default model's pipeline with CogLM batches of `batch`.
pub fn pipeline(batch: usize) -> Pipeline {
    pipeline_with_itersr_passes(batch, None)
}

/// The embedded default model's pipeline, with `passes` LoPAR passes (top-k 1) instead of its
/// own number (none) when given.
pub fn pipeline_with_itersr_passes(batch: usize, passes: Option<usize>) -> Pipeline {
    let mut cfg = cogview::OpenOptions {
        batch_size: Some(batch),
        ..Default::default()
    }
    .config()
    .expect("the embedded default model");
    if let Some(n) = passes {
        cfg.itersr.top_k = Some(vec![1; n]);
    }
    Pipeline::from_settings(Settings::resolve(&cfg, true).unwrap()).unwrap()
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub scheduler: Arc<Scheduler>,
    pub image_dir: PathBuf,
    pub token: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn config() -> ServerConfig {
    ServerConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        shutdown_grace: Duration::ZERO,
        ..Default::default()
    }
}

impl TestServer {
    pub fn start(config: ServerConfig) -> TestServer {
        Self::start_with(config, pipeline)
    }

    /// [`TestServer::start`] with the pipeline `make(batch size)` builds.
    pub fn start_with(
        mut config: ServerConfig,
        make: impl FnOnce(usize) -> Pipeline + Send + 'static,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap().keep();
        let image_dir = dir.join("images");
        config.image_dir = Some(image_dir.clone());
        let token = config.token.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let p = make(config.batch_size);
                let server = Server::bind(config, p).await.unwrap();
                tx.send((server.local_addr(), server.scheduler().clone()))
                    .unwrap();
                server
                    .run(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let (addr, scheduler) = rx.recv().expect("the server started");
        TestServer {
            addr,
            scheduler,
            image_dir,
            token,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn get(&self, path: &str) -> Response {
        client::json(self.addr, "GET", path, self.token.as_deref(), None).unwrap()
    }
    pub fn post(&self, path: &str, body: serde_json::Value) -> Response {
        client::json(self.addr, "POST", path, self.token.as_deref(), Some(&body)).unwrap()
    }
    pub fn delete(&self, path: &str) -> Response {
        client::json(self.addr, "DELETE", path, self.token.as_deref(), None).unwrap()
    }

    /// Submits a job and returns its id.
    pub fn submit(&self, body: serde_json::Value) -> String {
        let r = self.post("/v1/jobs", body);
        assert_eq!(r.status, 202, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    }

    /// Polls a job until it ends; its final state.
    pub fn wait(&self, id: &str) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let s = self.get(&format!("/v1/jobs/{id}")).json();
            if matches!(s["status"].as_str(), Some("done" | "failed" | "cancelled")) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "job {id} never ended: {s}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The PNGs of a finished job.
    pub fn images(&self, id: &str) -> Vec<Vec<u8>> {
        let s = self.wait(id);
        assert_eq!(s["status"], "done", "{s}");
        s["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let r = self.get(u.as_str().unwrap());
                assert_eq!(r.status, 200);
                assert_eq!(r.header("content-type"), Some("image/png"));
                r.body
            })
            .collect()
    }

    /// Waits until the worker runs a job (the queue drained into it).
    pub fn wait_until_running(&self, id: &str) {
        let start = Instant::now();
        while self.get(&format!("/v1/jobs/{id}")).json()["status"] == "queued" {
            assert!(start.elapsed() < Duration::from_secs(120));
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().expect("the server thread ended cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub fn b64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// The record in PNG bytes.
pub fn record(png: &[u8]) -> cogview::pipeline::ImageRecord {
    let f = tempfile::Builder::new().suffix(".png").tempfile().unwrap();
    std::fs::write(f.path(), png).unwrap();
    cogview::pipeline::ImageRecord::read_png(f.path()).unwrap()
}

/// Width and height of PNG bytes.
pub fn dimensions(png: &[u8]) -> (u32, u32) {
    let img = image::load_from_memory(png).unwrap();
    (img.width(), img.height())
}
