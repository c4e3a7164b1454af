//! Flags of the commands that use the NATS JetStream queue (`worker`, `batch`).

use cogview::{Error, Result};
use cogview_queue::{QueueConfig, QueueError};
use std::time::Duration;

/// Where the queue is.
#[derive(Debug, Clone, clap::Args)]
pub struct QueueArgs {
    /// The NATS server with JetStream (`nats-server -js`), e.g. nats://127.0.0.1:4222.
    #[arg(long, env = "COGVIEW_NATS")]
    pub nats: String,
    /// Prefix of the queue's stream, buckets and subjects (several deployments can share one
    /// broker under different prefixes).
    #[arg(long, default_value = "cogview")]
    pub queue_prefix: String,
    /// Seconds a delivered job may go without a worker's heartbeat before another worker gets
    /// it (set when the queue is first created; workers send a heartbeat every third of it).
    #[arg(long, default_value_t = 30.0)]
    pub ack_wait: f64,
}

impl QueueArgs {
    /// The queue's settings.
    pub fn config(&self) -> Result<QueueConfig> {
        let mut c = QueueConfig::new(self.nats.clone());
        c.prefix = self.queue_prefix.clone();
        c.ack_wait = Duration::try_from_secs_f64(self.ack_wait).map_err(|_| {
            Error::invalid_input(
                "--ack-wait",
                format!("{} is not a number of seconds ≥ 0", self.ack_wait),
            )
        })?;
        Ok(c)
    }
}

/// The queue's error as the command's.
pub fn queue_error(e: QueueError) -> Error {
    match e {
        QueueError::Setting { setting, reason } => Error::invalid_input(setting, reason),
        e => Error::backend(e.to_string()),
    }
}

/// A multi-threaded async runtime for the queue's client.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::backend(format!("starting the async runtime: {e}")))
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    cogview_server::shutdown_signal().await
}
