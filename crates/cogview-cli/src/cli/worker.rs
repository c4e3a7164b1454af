//! `cogview worker --nats URL`: runs jobs from the NATS JetStream queue on one loaded pipeline
//! (docs/scale-out.md).

use super::pipeline_args::PipelineArgs;
use super::queue_args::QueueArgs;
use cogview::pipeline::record::weight_records;
use cogview::{Error, Pipeline, Result, Settings};
use cogview_worker::{Worker, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;

/// Run generation and edit jobs from a NATS JetStream queue (fed by `cogview batch` and
/// `cogview serve --queue`): results go to the queue's object store, a job is acknowledged only
/// after its results are stored, and a job whose worker dies is redelivered to another.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(flatten)]
    queue: QueueArgs,
    /// The worker's name in job records (default: HOSTNAME-PID).
    #[arg(long)]
    name: Option<String>,
    /// Seconds a broker operation is retried (e.g. while the broker restarts) before the job is
    /// left for redelivery.
    #[arg(long, default_value_t = 120.0)]
    retry_for: f64,
    /// Exit after this many jobs.
    #[arg(long)]
    max_jobs: Option<u64>,
}

pub fn run(args: Args) -> Result<()> {
    let queue_config = args.queue.config()?;
    let retry_for = Duration::try_from_secs_f64(args.retry_for).map_err(|_| {
        Error::invalid_input(
            "--retry-for",
            format!("{} is not a number of seconds ≥ 0", args.retry_for),
        )
    })?;
    let cfg = args.pipeline.config()?;
    let settings = Settings::resolve(&cfg, true)?;
    eprintln!("loading the pipeline…");
    let pipeline = Arc::new(Pipeline::from_settings(settings)?);
    let weights = weight_records(&pipeline.weight_files()?)?;
    let mut config = WorkerConfig::new();
    if let Some(n) = args.name {
        config.name = n;
    }
    config.retry_for = retry_for;
    config.max_jobs = args.max_jobs;
    let rt = super::queue_args::runtime()?;
    rt.block_on(async move {
        let queue = cogview_queue::Queue::connect(queue_config)
            .await
            .map_err(super::queue_args::queue_error)?;
        let name = config.name.clone();
        let worker = Worker::new(queue, pipeline, weights, config);
        eprintln!(
            "cogview worker {name}: taking jobs from {} (ctrl-c or SIGTERM stops it)",
            args.queue.nats
        );
        worker
            .run(super::queue_args::shutdown_signal())
            .await
            .map_err(super::queue_args::queue_error)?;
        eprintln!("stopped: {}", worker.stats.summary());
        Ok(())
    })
}
