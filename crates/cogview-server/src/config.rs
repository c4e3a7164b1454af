//! The server's settings: [`ServerConfig`] and the request [`Limits`].

use crate::error::ServeError;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What requests may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The longest prompt, in characters (the model's own token limit applies too).
    pub max_prompt_chars: usize,
    /// The most images per request (`n`).
    pub max_images: usize,
    /// The most stage-1 candidates of `rerank`.
    pub max_rerank: usize,
    /// The largest upload (the whole multipart body of an edit), in bytes.
    pub max_upload_bytes: usize,
    /// The longest side of an uploaded image or mask, in pixels.
    pub max_image_side: usize,
    /// The most rectangles of one edit.
    pub max_rectangles: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_prompt_chars: 1000,
            max_images: 8,
            max_rerank: 16,
            max_upload_bytes: 8 << 20,
            max_image_side: 4096,
            max_rectangles: 16,
        }
    }
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (default 127.0.0.1:8000; port 0 picks a free one).
    pub bind: SocketAddr,
    /// The bearer token every API request must carry (required off loopback).
    pub token: Option<String>,
    /// Jobs that may wait (more are refused with 429).
    pub queue_size: usize,
    /// Images whose stage 1 runs in one CogLM batch.
    pub batch_size: usize,
    /// How long finished jobs and their images are kept.
    pub job_ttl: Duration,
    /// The longest a request may take (a synchronous generation included); its job is cancelled.
    pub request_timeout: Duration,
    /// At shutdown, how long running jobs may take to finish before they are cancelled.
    pub shutdown_grace: Duration,
    /// Request limits.
    pub limits: Limits,
    /// The model's name in `/v1/models` and the `model` field.
    pub model_id: String,
    /// Where job images are written (a folder the server creates and removes; default: a fresh
    /// folder in the system's temporary folder).
    pub image_dir: Option<PathBuf>,
    /// `serve --queue`: submit jobs to this NATS JetStream queue (run by `cogview worker`s)
    /// instead of running them in this process.
    pub queue: Option<cogview_queue::QueueConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            token: None,
            queue_size: 64,
            batch_size: 8,
            job_ttl: Duration::from_secs(600),
            request_timeout: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(30),
            limits: Limits::default(),
            model_id: "cogview".into(),
            image_dir: None,
            queue: None,
        }
    }
}

impl ServerConfig {
    /// Checks the settings: sizes at least 1 and a token off loopback.
    pub fn check(&self) -> Result<(), ServeError> {
        if !self.bind.ip().is_loopback() && self.token.as_deref().is_none_or(str::is_empty) {
            return Err(ServeError::TokenRequired { addr: self.bind });
        }
        for (setting, v) in [
            ("--queue-size", self.queue_size),
            ("--batch-size", self.batch_size),
            ("--max-images", self.limits.max_images),
            ("--max-prompt-chars", self.limits.max_prompt_chars),
        ] {
            if v == 0 {
                return Err(ServeError::Setting {
                    setting,
                    reason: "must be at least 1".into(),
                });
            }
        }
        Ok(())
    }
}
