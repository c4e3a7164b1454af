//! # cogview-server
//!
//! `cogview serve`: one loaded [`Pipeline`] behind an HTTP server (axum on tokio).
//!
//! - the OpenAI Images API: `POST /v1/images/generations`, `POST /v1/images/edits`,
//!   `GET /v1/models`, with cogview's own optional fields (`seed`, `style`, `only_first_stage`,
//!   `rerank`);
//! - asynchronous jobs: `POST /v1/jobs` (202), `GET /v1/jobs/{id}`, its progress as server-sent
//!   events (`/v1/jobs/{id}/events`), cancel (`DELETE /v1/jobs/{id}`, `POST …/cancel`), its
//!   PNGs (`/v1/jobs/{id}/images/{k}.png`); finished jobs expire after the job TTL;
//! - `GET /health`, `GET /v1/capabilities`, and a web page at `/`.
//!
//! Work runs on one worker thread ([`jobs::Scheduler`]), never on the async executor: a bounded
//! queue (429 with `Retry-After` when full) whose waiting generation requests share CogLM
//! batches ([`Pipeline::generate_many`]). Every PNG carries the records `cogview generate`
//! writes, so `cogview regenerate` reproduces it. docs/server.md describes the API.

pub mod client;
pub mod config;
pub mod error;
pub mod jobs;
mod routes;

pub use axum::body::Body;
/// The HTTP types of [`Server::router`]'s requests and responses.
pub use axum::http;
/// The routes as a service ([`Server::router`]).
pub use axum::Router as ServerRouter;
pub use config::{Limits, ServerConfig};
pub use error::{ApiError, ServeError};
use jobs::{Scheduler, SchedulerConfig};

use cogview::pipeline::record::weight_records;
use cogview::Pipeline;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A bound server, ready to run.
pub struct Server {
    listener: tokio::net::TcpListener,
    scheduler: Arc<Scheduler>,
    config: ServerConfig,
    app: axum::Router,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.listener.local_addr().ok())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Checks the settings, hashes the pipeline's weights (for the records), starts the worker
    /// and binds the address. The pipeline's batch size should be `config.batch_size`.
    pub async fn bind(config: ServerConfig, pipeline: Pipeline) -> Result<Server, ServeError> {
        config.check()?;
        let pipeline = Arc::new(pipeline);
        let image_dir = config.image_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "cogview-serve-{}-{}",
                std::process::id(),
                config.bind.port()
            ))
        });
        let scheduler_config = SchedulerConfig {
            queue_size: config.queue_size,
            batch_size: config.batch_size,
            job_ttl: config.job_ttl,
            image_dir: image_dir.clone(),
        };
        let started = if let Some(queue_config) = config.queue.clone() {
            // The workers write the records; this server only submits and follows.
            let queue = cogview_queue::Queue::connect(queue_config)
                .await
                .map_err(|e| ServeError::Queue(e.to_string()))?;
            Scheduler::start_remote(pipeline, queue, scheduler_config)
        } else {
            let weights = {
                let p = pipeline.clone();
                tokio::task::spawn_blocking(move || weight_records(&p.weight_files()?))
                    .await
                    .map_err(|e| ServeError::Io {
                        what: "hashing the weights".into(),
                        source: std::io::Error::other(e.to_string()),
                    })??
            };
            Scheduler::start(pipeline, weights, scheduler_config)
        };
        let scheduler = started.map_err(|source| ServeError::Io {
            what: format!("starting the worker (image folder {})", image_dir.display()),
            source,
        })?;
        let listener = match tokio::net::TcpListener::bind(config.bind).await {
            Ok(l) => l,
            Err(source) => {
                let s = scheduler.clone();
                let _ = tokio::task::spawn_blocking(move || s.shutdown(Duration::ZERO)).await;
                return Err(ServeError::Bind {
                    addr: config.bind,
                    source,
                });
            }
        };
        let app = routes::router(scheduler.clone(), config.clone());
        Ok(Server {
            listener,
            scheduler,
            config,
            app,
        })
    }

    /// The address it listens on (with the port picked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.bind)
    }

    /// The routes, for driving the server without a socket (the request-parsing fuzz target).
    pub fn router(&self) -> axum::Router {
        self.app.clone()
    }

    /// The scheduler (its counters, for tests and the load test).
    pub fn scheduler(&self) -> &Arc<Scheduler> {
        &self.scheduler
    }

    /// Serves until `shutdown` resolves; then stops taking connections, cancels queued jobs,
    /// gives running ones the shutdown grace to finish (then cancels them), ends the event
    /// streams, waits for open requests and removes the image folder.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            listener,
            scheduler,
            config,
            app,
        } = self;
        let janitor = {
            let s = scheduler.clone();
            let every =
                (config.job_ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let s = s.clone();
                    let _ = tokio::task::spawn_blocking(move || s.expire()).await;
                }
            })
        };
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let s = scheduler.clone();
        let grace = config.shutdown_grace;
        let stop = async move {
            shutdown.await;
            tracing::info!("shutting down: cancelling queued jobs, finishing running ones");
            // Jobs end first (so that their event streams close), then the connections.
            let _ = tokio::task::spawn_blocking(move || s.shutdown(grace)).await;
            let _ = stopped_tx.send(());
        };
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await;
        let _ = stopped_rx.await;
        janitor.abort();
        served.map_err(|source| ServeError::Io {
            what: "serving".into(),
            source,
        })
    }
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Runs a server on a new multi-threaded runtime until ctrl-c or SIGTERM (what `cogview serve`
/// calls). `on_ready` gets the bound address.
pub fn serve_blocking(
    config: ServerConfig,
    pipeline: Pipeline,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| ServeError::Io {
            what: "starting the async runtime".into(),
            source,
        })?;
    rt.block_on(async move {
        let server = Server::bind(config, pipeline).await?;
        on_ready(server.local_addr());
        server.run(shutdown_signal()).await
    })
}
