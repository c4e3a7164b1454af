//! `cogview serve`: the pipeline, loaded once, behind an HTTP server (docs/server.md).

use super::pipeline_args::PipelineArgs;
use cogview::{Error, Pipeline, Result, Settings};
use cogview_server::{Limits, ServerConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Serve images over HTTP: the OpenAI Images API, asynchronous jobs with progress events, and a
/// web page at /. The pipeline is loaded once; see docs/server.md.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Address to listen on. Anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8000")]
    bind: SocketAddr,
    /// Bearer token every API request must carry (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "COGVIEW_SERVE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Jobs that may wait; more are refused with 429 and Retry-After.
    #[arg(long, default_value_t = 64)]
    queue_size: usize,
    /// Seconds a finished job and its images are kept.
    #[arg(long, default_value_t = 600)]
    job_ttl: u64,
    /// Seconds a request may take (a synchronous generation included) before its job is
    /// cancelled and it gets 504.
    #[arg(long, default_value_t = 300.0)]
    request_timeout: f64,
    /// Seconds running jobs get to finish at shutdown (SIGTERM, ctrl-c) before they are cancelled.
    #[arg(long, default_value_t = 30.0)]
    shutdown_grace: f64,
    /// The longest prompt, in characters.
    #[arg(long, default_value_t = Limits::default().max_prompt_chars)]
    max_prompt_chars: usize,
    /// The most images per request (n).
    #[arg(long, default_value_t = Limits::default().max_images)]
    max_images: usize,
    /// The most stage-1 candidates of `rerank`.
    #[arg(long, default_value_t = Limits::default().max_rerank)]
    max_rerank: usize,
    /// The largest upload (an edit's whole body), in bytes.
    #[arg(long, default_value_t = Limits::default().max_upload_bytes)]
    max_upload_bytes: usize,
    /// The longest side of an uploaded image, in pixels.
    #[arg(long, default_value_t = Limits::default().max_image_side)]
    max_image_side: usize,
    /// Where job images are written (created, and removed at exit; default: a fresh folder in
    /// the system's temporary folder).
    #[arg(long)]
    image_dir: Option<PathBuf>,
    /// Submit jobs to this NATS JetStream queue (nats://HOST:PORT) for `cogview worker`s to run,
    /// instead of running them here: any number of servers and workers can share it. The
    /// pipeline flags must match the workers' (they check requests; no stage runs here).
    #[arg(long, value_name = "URL")]
    queue: Option<String>,
    /// Prefix of the queue's stream, buckets and subjects (with --queue).
    #[arg(long, default_value = "cogview")]
    queue_prefix: String,
    /// The model's name in /v1/models and in requests' `model` field.
    #[arg(long, default_value = "cogview")]
    model_name: String,
}

fn seconds(flag: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| Error::invalid_input(flag, format!("{s} is not a number of seconds ≥ 0")))
}

pub fn run(args: Args) -> Result<()> {
    // The server's batch size is CogLM's: concurrent requests share its batches.
    let batch_size = args.pipeline.batch_size.unwrap_or(8);
    let mut pipeline_args = args.pipeline.clone();
    pipeline_args.batch_size = Some(batch_size);
    let cfg = pipeline_args.config()?;
    let settings = Settings::resolve(&cfg, true)?;
    let config = ServerConfig {
        bind: args.bind,
        token: args.token.filter(|t| !t.is_empty()),
        queue_size: args.queue_size,
        batch_size,
        job_ttl: Duration::from_secs(args.job_ttl),
        request_timeout: seconds("--request-timeout", args.request_timeout)?,
        shutdown_grace: seconds("--shutdown-grace", args.shutdown_grace)?,
        limits: Limits {
            max_prompt_chars: args.max_prompt_chars,
            max_images: args.max_images,
            max_rerank: args.max_rerank,
            max_upload_bytes: args.max_upload_bytes,
            max_image_side: args.max_image_side,
            ..Limits::default()
        },
        model_id: args.model_name,
        image_dir: args.image_dir,
        queue: args.queue.map(|url| {
            let mut q = cogview_queue::QueueConfig::new(url);
            q.prefix = args.queue_prefix.clone();
            q
        }),
    };
    // Refuse a bad address or setting before the models load.
    config.check().map_err(serve_error)?;
    eprintln!("loading the pipeline…");
    let pipeline = Pipeline::from_settings(settings)?;
    let queue = config.queue.as_ref().map(|q| q.url.clone());
    cogview_server::serve_blocking(config, pipeline, |addr| {
        if let Some(url) = &queue {
            eprintln!("cogview serve: jobs go to the NATS queue at {url}");
        }
        eprintln!("cogview serve: listening on http://{addr}/ (ctrl-c or SIGTERM stops it)");
    })
    .map_err(serve_error)?;
    eprintln!("stopped");
    Ok(())
}

fn serve_error(e: cogview_server::ServeError) -> Error {
    match e {
        cogview_server::ServeError::Pipeline(e) => e,
        cogview_server::ServeError::TokenRequired { .. } => {
            Error::invalid_input("--token", e.to_string())
        }
        cogview_server::ServeError::Setting { setting, reason } => {
            Error::invalid_input(setting, reason)
        }
        e => Error::backend(e.to_string()),
    }
}
