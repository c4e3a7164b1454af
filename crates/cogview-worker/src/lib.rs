//! # cogview-worker
//!
//! `cogview worker --nats URL`: one loaded [`Pipeline`] that takes jobs from cogview's
//! JetStream queue ([`cogview_queue`]) one at a time and, for each:
//!
//! 1. skips it when its completion marker exists (a redelivery of a job another delivery
//!    finished: the message is acknowledged, nothing is run or stored again) or when its
//!    cancellation was asked for;
//! 2. records it running and, every third of the ack wait while it runs, tells the broker it is
//!    still working on it (so that only a dead worker's job is redelivered) and checks for a
//!    cancellation request;
//! 3. runs it (image `i` with seed `seed + i`, as `cogview generate`), publishing progress;
//! 4. stores each PNG, with the records `cogview generate` writes, as `{id}/{k}.png`; creates
//!    the completion marker (which fails if another delivery got there first: then the
//!    duplicate is counted and logged); records it done; and only then acknowledges the message,
//!    waiting for the broker to confirm the acknowledgement.
//!
//! A job that fails for a reason that would fail again (a bad prompt, a pipeline error, a panic)
//! is recorded failed and terminated, not redelivered. A broker that goes away is waited for:
//! every operation is retried until [`WorkerConfig::retry_for`] passes, after which the job is
//! left unacknowledged for redelivery. On SIGTERM or ctrl-c the running job is cancelled and
//! handed back to the queue at once (a negative acknowledgement).

use async_nats::jetstream::{self, AckKind};
use cogview::core::edit::EditMask;
use cogview::core::{CancelToken, Progress, RunContext};
use cogview::pipeline::record::{ImageRecord, Origin, WeightFile};
use cogview::Pipeline;
use cogview_queue::{
    input_names, parse_spec, result_name, JobKind, JobRecord, JobSpec, JobStatus, ProgressEvent,
    Queue, QueueError,
};
use futures_util::StreamExt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The worker's name in job records and logs.
    pub name: String,
    /// How long a broker operation is retried (the broker restarting) before the job is left
    /// for redelivery.
    pub retry_for: Duration,
    /// Stop after this many jobs (for scripts and tests); `None`: until stopped.
    pub max_jobs: Option<u64>,
}

impl WorkerConfig {
    /// Defaults: the name `HOSTNAME-PID`, retries for two minutes, no job limit.
    pub fn new() -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "worker".into());
        WorkerConfig {
            name: format!("{host}-{}", std::process::id()),
            retry_for: Duration::from_secs(120),
            max_jobs: None,
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// What a worker did.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Jobs completed and acknowledged.
    pub done: AtomicU64,
    /// Jobs recorded failed.
    pub failed: AtomicU64,
    /// Jobs skipped or stopped on a cancellation request.
    pub cancelled: AtomicU64,
    /// Deliveries of jobs already completed (skipped), or completions that found another
    /// completion's marker (not stored twice).
    pub duplicates: AtomicU64,
    /// Jobs handed back (shutdown, or the broker unreachable for longer than `retry_for`).
    pub handed_back: AtomicU64,
}

impl WorkerStats {
    /// One line for logs.
    pub fn summary(&self) -> String {
        format!(
            "{} done, {} failed, {} cancelled, {} duplicate deliveries, {} handed back",
            self.done.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.cancelled.load(Ordering::Relaxed),
            self.duplicates.load(Ordering::Relaxed),
            self.handed_back.load(Ordering::Relaxed),
        )
    }
}

/// A worker: the queue, the pipeline and its weights' records.
pub struct Worker {
    queue: Queue,
    pipeline: Arc<Pipeline>,
    weights: Arc<Vec<WeightFile>>,
    config: WorkerConfig,
    stopping: Arc<AtomicBool>,
    /// The counters.
    pub stats: Arc<WorkerStats>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.queue)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// How handling one delivery ended.
enum Handled {
    /// Acknowledged (done, failed, cancelled, duplicate).
    Settled,
    /// Left for redelivery.
    HandedBack,
}

/// Retries `op` while it fails, for up to `within` (250 ms, doubling to 2 s, between tries).
async fn retry<T, F, Fut>(what: &str, within: Duration, mut op: F) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, QueueError>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if matches!(e, QueueError::Message { .. }) => return Err(e),
            Err(e) => {
                if started.elapsed() >= within {
                    return Err(e);
                }
                tracing::warn!("{what}: {e}; retrying in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        }
    }
}

fn ack_error(e: impl std::fmt::Display) -> QueueError {
    QueueError::broker("acknowledging", e)
}

/// Acknowledges a delivery and waits for the broker to confirm it, retrying for `within`.
async fn acknowledge(msg: &jetstream::Message, within: Duration) -> Result<(), QueueError> {
    retry("acknowledging", within, || async {
        msg.double_ack().await.map_err(ack_error)
    })
    .await
}

impl Worker {
    /// A worker for `queue` running `pipeline`; `weights` go into every image's record.
    pub fn new(
        queue: Queue,
        pipeline: Arc<Pipeline>,
        weights: Vec<WeightFile>,
        config: WorkerConfig,
    ) -> Self {
        Worker {
            queue,
            pipeline,
            weights: Arc::new(weights),
            config,
            stopping: Arc::new(AtomicBool::new(false)),
            stats: Arc::new(WorkerStats::default()),
        }
    }

    /// Takes and runs jobs until `shutdown` resolves (or `max_jobs` were handled). A job
    /// running at shutdown is cancelled and handed back.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<(), QueueError> {
        let consumer = self.queue.consumer().await?;
        let stopping = self.stopping.clone();
        let work = async {
            let mut handled = 0u64;
            while !self.stopping.load(Ordering::SeqCst) {
                if self.config.max_jobs.is_some_and(|m| handled >= m) {
                    break;
                }
                let batch = consumer
                    .fetch()
                    .max_messages(1)
                    .expires(Duration::from_secs(1))
                    .messages()
                    .await;
                let mut batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::warn!("fetching a job: {e}; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                };
                while let Some(msg) = batch.next().await {
                    match msg {
                        Ok(msg) => {
                            self.handle(msg).await;
                            handled += 1;
                        }
                        Err(e) => {
                            tracing::warn!("receiving a job: {e}");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
        };
        tokio::select! {
            _ = work => {},
            _ = async {
                shutdown.await;
                stopping.store(true, Ordering::SeqCst);
                // Let the running job notice, hand itself back and return.
                std::future::pending::<()>().await
            } => {},
        }
        Ok(())
    }

    async fn handle(&self, msg: jetstream::Message) {
        let attempt = msg.info().map_or(1, |i| i.delivered.max(1) as u64);
        let spec = match parse_spec(&msg.payload) {
            Ok(s) => s,
            Err(e) => {
                // Not a job cogview can run, now or later: terminate it.
                tracing::error!("dropping a message on {}: {e}", msg.subject);
                let _ = msg.ack_with(AckKind::Term).await;
                return;
            }
        };
        match self.handle_job(&msg, &spec, attempt).await {
            Ok(Handled::Settled) => {}
            Ok(Handled::HandedBack) => {
                self.stats.handed_back.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                // The broker stayed unreachable: leave the job for redelivery.
                tracing::error!("job {}: {e}; left for redelivery", spec.id);
                self.stats.handed_back.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn handle_job(
        &self,
        msg: &jetstream::Message,
        spec: &JobSpec,
        attempt: u64,
    ) -> Result<Handled, QueueError> {
        let q = &self.queue;
        let within = self.config.retry_for;
        let id = spec.id.as_str();
        if let Some(done) = retry("reading a completion", within, || q.completion(id)).await? {
            tracing::warn!(
                "job {id}: delivery {attempt} of a job already completed (by {}); not run again",
                done.worker.as_deref().unwrap_or("?")
            );
            self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            // The state may not say so if the completing worker died in between.
            retry("recording the state", within, || q.set_record(&done)).await?;
            acknowledge(msg, within).await?;
            return Ok(Handled::Settled);
        }
        let mut record = retry("reading the state", within, || q.record(id))
            .await?
            .unwrap_or_else(|| JobRecord::queued(spec.clone()));
        record.spec = spec.clone();
        if retry("reading a cancellation", within, || q.cancel_requested(id)).await? {
            return self.settle_cancelled(msg, record).await;
        }
        record.status = JobStatus::Running;
        record.worker = Some(self.config.name.clone());
        record.attempt = attempt;
        record.stage = Some("starting".into());
        record.error = None;
        retry("recording the state", within, || q.set_record(&record)).await?;
        self.publish(id, "running", None).await;
        tracing::info!("job {id}: running (delivery {attempt})");

        // An edit's inputs.
        let inputs = match &spec.kind {
            JobKind::Generate => None,
            JobKind::Edit { .. } => {
                let (image_name, mask_name) = input_names(id);
                let image = retry("reading the input", within, || q.object(&image_name)).await?;
                let mask = retry("reading the mask", within, || q.object(&mask_name)).await?;
                Some((image, mask))
            }
        };

        // While it runs: heartbeats, cancellation checks and progress.
        let cancel = CancelToken::new();
        let heartbeat = {
            let msg = msg.clone();
            let q = q.clone();
            let id = id.to_string();
            let cancel = cancel.clone();
            let stopping = self.stopping.clone();
            let every = (q.config().ack_wait / 3).max(Duration::from_millis(100));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every.min(Duration::from_millis(500))).await;
                    if stopping.load(Ordering::SeqCst)
                        || matches!(q.cancel_requested(&id).await, Ok(true))
                    {
                        cancel.cancel();
                    }
                    // The broker restarts the job's ack wait with each.
                    let _ = msg.ack_with(AckKind::Progress).await;
                }
            })
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
        let reporter = {
            let q = q.clone();
            let mut record = record.clone();
            tokio::spawn(async move {
                let mut last_write = Instant::now() - Duration::from_secs(1);
                while let Some(p) = rx.recv().await {
                    let event = ProgressEvent {
                        event: "progress".into(),
                        stage: Some(p.stage.to_string()),
                        step: p.step,
                        of: p.total,
                    };
                    q.publish_progress(&record.spec.id, &event).await;
                    // The state bucket gets at most four updates a second.
                    if last_write.elapsed() >= Duration::from_millis(250) || p.step == p.total {
                        record.stage = Some(p.stage.to_string());
                        record.step = p.step;
                        record.of = p.total;
                        let _ = q.set_record(&record).await;
                        last_write = Instant::now();
                    }
                }
            })
        };
        let run = {
            let pipeline = self.pipeline.clone();
            let weights = self.weights.clone();
            let spec = spec.clone();
            let cancel = cancel.clone();
            tokio::task::spawn_blocking(move || {
                let mut ctx = RunContext::with_seed(spec.seed);
                ctx.cancel = cancel;
                ctx.progress = Some(Arc::new(move |p: Progress| {
                    let _ = tx.send(p);
                }));
                run_job(&pipeline, &weights, &spec, inputs, &ctx)
            })
        };
        let outcome = run.await;
        heartbeat.abort();
        let _ = reporter.await;

        let outcome = match outcome {
            Ok(r) => r,
            Err(join) => Err(cogview::Error::backend(format!(
                "the worker panicked running the job: {}",
                panic_message(join)
            ))),
        };
        match outcome {
            Ok(pngs) => self.complete(msg, record, pngs).await,
            Err(cogview::Error::Cancelled) if self.stopping.load(Ordering::SeqCst) => {
                // Shutting down: back to the queue for another worker, at once.
                record.status = JobStatus::Queued;
                record.stage = None;
                retry("recording the state", within, || q.set_record(&record)).await?;
                let _ = msg.ack_with(AckKind::Nak(None)).await;
                tracing::info!("job {id}: handed back (shutting down)");
                Ok(Handled::HandedBack)
            }
            Err(cogview::Error::Cancelled) => self.settle_cancelled(msg, record).await,
            Err(e) => {
                tracing::warn!("job {id} failed: {e}");
                record.status = JobStatus::Failed;
                record.stage = None;
                record.error = Some(e.to_string());
                retry("recording the state", within, || q.set_record(&record)).await?;
                self.publish(id, "failed", None).await;
                // Terminated: the same job would fail the same way on any worker.
                retry("acknowledging", within, || async {
                    msg.double_ack_with(AckKind::Term).await.map_err(ack_error)
                })
                .await?;
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                Ok(Handled::Settled)
            }
        }
    }

    /// Stores the results, marks the job done and acknowledges it, in that order.
    async fn complete(
        &self,
        msg: &jetstream::Message,
        mut record: JobRecord,
        pngs: Vec<Vec<u8>>,
    ) -> Result<Handled, QueueError> {
        let q = &self.queue;
        let within = self.config.retry_for;
        let id = record.spec.id.clone();
        let mut keep_alive = {
            let msg = msg.clone();
            let every = (q.config().ack_wait / 3).max(Duration::from_millis(100));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every.min(Duration::from_millis(500))).await;
                    let _ = msg.ack_with(AckKind::Progress).await;
                }
            })
        };
        let result = async {
            if let Some(done) = retry("reading a completion", within, || q.completion(&id)).await? {
                // Another delivery finished while this one ran: nothing is stored again.
                tracing::warn!(
                    "job {id}: completed meanwhile by {}; this result is not stored",
                    done.worker.as_deref().unwrap_or("?")
                );
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            } else {
                record.stage = Some("store".into());
                let mut names = Vec::with_capacity(pngs.len());
                for (k, png) in pngs.into_iter().enumerate() {
                    let name = result_name(&id, k);
                    retry("storing a result", within, || {
                        q.put_object(&name, png.clone())
                    })
                    .await?;
                    names.push(name);
                }
                record.status = JobStatus::Done;
                record.stage = None;
                record.images = names;
                record.updated = cogview_queue::unix_seconds();
                let first = retry("marking the job done", within, || q.mark_done(&record)).await?;
                if first {
                    retry("recording the state", within, || q.set_record(&record)).await?;
                    self.stats.done.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("job {id}: done");
                } else {
                    // Same names, same bytes (same seeds and weights): the store still holds
                    // one object per image.
                    tracing::warn!("job {id}: a second completion detected; counted once");
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                self.publish(&id, "done", None).await;
            }
            acknowledge(msg, within).await?;
            Ok(Handled::Settled)
        }
        .await;
        keep_alive.abort();
        let _ = (&mut keep_alive).await;
        result
    }

    /// Records a job cancelled (asked for before or while it ran) and acknowledges it.
    async fn settle_cancelled(
        &self,
        msg: &jetstream::Message,
        mut record: JobRecord,
    ) -> Result<Handled, QueueError> {
        let within = self.config.retry_for;
        record.status = JobStatus::Cancelled;
        record.stage = None;
        retry("recording the state", within, || {
            self.queue.set_record(&record)
        })
        .await?;
        self.publish(&record.spec.id, "cancelled", None).await;
        acknowledge(msg, within).await?;
        self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        Ok(Handled::Settled)
    }

    async fn publish(&self, id: &str, event: &str, stage: Option<&str>) {
        self.queue
            .publish_progress(
                id,
                &ProgressEvent {
                    event: event.into(),
                    stage: stage.map(str::to_string),
                    step: 0,
                    of: 0,
                },
            )
            .await;
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into()),
        Err(e) => e.to_string(),
    }
}

/// Runs one job on the pipeline: its PNGs (with records), in image order.
pub fn run_job(
    pipeline: &Pipeline,
    weights: &[WeightFile],
    spec: &JobSpec,
    inputs: Option<(Vec<u8>, Vec<u8>)>,
    ctx: &RunContext,
) -> cogview::Result<Vec<Vec<u8>>> {
    // The job's style (the same models; another template and the style's sampling).
    let styled = match &spec.style {
        Some(name) => Some(pipeline.with_style(name.parse()?)),
        None => None,
    };
    let pipeline = styled.as_ref().unwrap_or(pipeline);
    let images: Vec<(usize, u64, cogview::core::Image, Origin)> = match &spec.kind {
        JobKind::Generate => {
            // The job's `rerank` (the whole draw), else the pipeline's own (`coglm.rerank`).
            let images = match spec.rerank {
                Some(k) => {
                    pipeline
                        .generate_reranked(&spec.prompt, k, spec.n, spec.only_first_stage, ctx)?
                        .0
                }
                None => pipeline.generate(&spec.prompt, spec.n, spec.only_first_stage, ctx)?,
            };
            images
                .into_iter()
                .map(|g| {
                    let rerank = g.rerank.clone();
                    (
                        g.index,
                        g.seed,
                        g.image,
                        Origin::Generate {
                            only_first_stage: spec.only_first_stage,
                            rerank,
                        },
                    )
                })
                .collect()
        }
        JobKind::Edit {
            image_sha256,
            mask_description,
        } => {
            let (image, mask) = inputs.ok_or_else(|| {
                cogview::Error::invalid_input("job", "an edit job without its input image")
            })?;
            let image = cogview::image::decode_image(&image, "the job's input image")?;
            let mask = cogview::image::decode_image(&mask, "the job's mask")?;
            let mask = EditMask::from_image(&mask)?;
            pipeline
                .edit(&image, &mask, &spec.prompt, spec.n, ctx)?
                .into_iter()
                .map(|e| {
                    (
                        e.index,
                        e.seed,
                        e.image,
                        Origin::Edit {
                            image_sha256: image_sha256.clone(),
                            mask: mask_description.clone(),
                        },
                    )
                })
                .collect()
        }
    };
    let n = images.len();
    images
        .into_iter()
        .map(|(index, seed, image, origin)| {
            let rec =
                ImageRecord::for_image(pipeline, &spec.prompt, (seed, index, n), origin, weights)?;
            cogview::image::png_bytes(&image, &rec.png_text())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cogview::core::stage1::Style;
    use cogview_queue::JobKind;

    fn default_pipeline(style: Option<Style>) -> Pipeline {
        let mut cfg = cogview::OpenOptions::default()
            .config()
            .expect("the embedded default model");
        cfg.style = style.or(cfg.style);
        Pipeline::from_settings(cogview::Settings::resolve(&cfg, true).unwrap()).unwrap()
    }

    fn spec(style: Option<&str>) -> JobSpec {
        JobSpec {
            id: "style_test".into(),
            kind: JobKind::Generate,
            prompt: "a large blue circle in the center".into(),
            n: 1,
            seed: 5,
            only_first_stage: false,
            rerank: None,
            style: style.map(str::to_string),
        }
    }

    #[test]
    fn a_job_in_another_style_draws_what_a_pipeline_in_that_style_draws() {
        let worker = default_pipeline(None);
        let ctx = RunContext::with_seed(5);
        let png = run_job(&worker, &[], &spec(Some("flat")), None, &ctx).unwrap();
        let got = cogview::image::decode_image(&png[0], "the job's image").unwrap();
        let want = default_pipeline(Some(Style::Flat))
            .generate("a large blue circle in the center", 1, false, &ctx)
            .unwrap();
        assert!(got.pixels == want[0].image.pixels);
        let rec = cogview::pipeline::ImageRecord::from_png_bytes(&png[0], "job".as_ref()).unwrap();
        assert_eq!(rec.settings.style, Style::Flat);
        let e = run_job(&worker, &[], &spec(Some("cubist")), None, &ctx).unwrap_err();
        assert!(e.to_string().contains("unknown style 'cubist'"), "{e}");
    }
}
