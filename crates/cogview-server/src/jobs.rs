//! Jobs and the scheduler: a bounded queue in front of one pipeline, run by one worker thread
//! that batches the stage 1 of concurrent generation requests into shared CogLM batches.

use crate::error::ApiError;
use cogview::core::edit::EditMask;
use cogview::core::stage1::Style;
use cogview::core::Image;
use cogview::core::{CancelToken, Progress, RunContext, TokenGrid};
use cogview::pipeline::record::{ImageRecord, Origin, WeightFile};
use cogview::pipeline::{GeneratedImage, GenerationRequest};
use cogview::Pipeline;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};

/// Sends a job's stage-1 preview.
type PreviewHook = Box<dyn Fn(&[TokenGrid]) + Sync>;

/// What a job makes.
#[derive(Debug, Clone)]
pub enum JobRequest {
    /// Text to image.
    Generate(GenerateSpec),
    /// Text-guided editing of an uploaded image.
    Edit(EditSpec),
    /// A job of the NATS queue submitted through another server, followed here
    /// (`serve --queue`).
    Queued(cogview_queue::JobSpec),
}

/// A generation job.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSpec {
    /// What to draw.
    pub prompt: String,
    /// Images to make; image `i` uses `seed + i`.
    pub n: usize,
    /// The base seed.
    pub seed: u64,
    /// Stop after stage 1.
    pub only_first_stage: bool,
    /// Keep the `n` best of this many stage-1 candidates (runs alone, not batched).
    pub rerank: Option<usize>,
    /// Send the stage-1 images as a preview event.
    pub preview: bool,
    /// The prompt style (the server's unless the request names one).
    pub style: Style,
}

/// An edit job.
#[derive(Debug, Clone)]
pub struct EditSpec {
    /// The text the edited image should fit.
    pub prompt: String,
    /// Images to make.
    pub n: usize,
    /// The base seed.
    pub seed: u64,
    /// The uploaded image.
    pub image: Image,
    /// SHA-256 of the uploaded bytes (for the records).
    pub image_sha256: String,
    /// Where to redraw.
    pub mask: EditMask,
    /// The prompt style (the server's unless the request names one).
    pub style: Style,
    /// The mask as recorded: `file <sha256>` and/or the rectangles.
    pub mask_description: String,
}

impl JobRequest {
    fn prompt(&self) -> &str {
        match self {
            JobRequest::Generate(g) => &g.prompt,
            JobRequest::Edit(e) => &e.prompt,
            JobRequest::Queued(q) => &q.prompt,
        }
    }
    fn n(&self) -> usize {
        match self {
            JobRequest::Generate(g) => g.n,
            JobRequest::Edit(e) => e.n,
            JobRequest::Queued(q) => q.n,
        }
    }
    fn seed(&self) -> u64 {
        match self {
            JobRequest::Generate(g) => g.seed,
            JobRequest::Edit(e) => e.seed,
            JobRequest::Queued(q) => q.seed,
        }
    }
    /// A plain generation, whose stage 1 can share a batch with others.
    /// The style a local job runs in (`None` for a job of the NATS queue: its worker decides).
    fn style(&self) -> Option<Style> {
        match self {
            JobRequest::Generate(g) => Some(g.style),
            JobRequest::Edit(e) => Some(e.style),
            JobRequest::Queued(_) => None,
        }
    }

    fn batchable(&self) -> bool {
        matches!(self, JobRequest::Generate(g) if g.rerank.is_none())
    }
}

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Waiting in the queue.
    Queued,
    /// Being made: `step` of `of` done in `stage` (`coglm` tokens, `dsr` images, `itersr`
    /// passes, `decode` images).
    Running {
        /// `coglm`, `dsr`, `itersr`, `decode`, `rerank` or `starting`.
        stage: &'static str,
        /// Steps done.
        step: usize,
        /// Steps in all.
        of: usize,
    },
    /// Finished; its images can be fetched.
    Done,
    /// Failed.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl Status {
    /// The state's name in the API.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running { .. } => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }
    /// Whether the job has ended (done, failed or cancelled).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }
}

/// An event of a job's stream (the `event:` name and the JSON `data:` of server-sent events).
#[derive(Debug, Clone)]
pub struct JobEvent {
    /// `running`, `progress`, `preview`, `done`, `failed`, `cancelled`.
    pub name: &'static str,
    /// The event's data.
    pub data: serde_json::Value,
}

struct JobState {
    status: Status,
    images: Vec<PathBuf>,
    preview: Option<String>,
    error: Option<ApiError>,
    finished: Option<Instant>,
    started: Option<Instant>,
}

/// One job: its request, state, images and event stream.
pub struct Job {
    /// The job's id (random hex).
    pub id: String,
    /// What it makes.
    pub request: JobRequest,
    /// Cancels it.
    pub cancel: CancelToken,
    /// When it was submitted (seconds since the Unix epoch).
    pub created: u64,
    state: Mutex<JobState>,
    /// The event channel; dropped when the job ends (its buffer is freed, readers drain it).
    events: Mutex<Option<broadcast::Sender<JobEvent>>>,
    phase: watch::Sender<&'static str>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl Job {
    fn new(id: String, request: JobRequest) -> Self {
        Job {
            id,
            request,
            cancel: CancelToken::new(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            state: Mutex::new(JobState {
                status: Status::Queued,
                images: Vec::new(),
                preview: None,
                error: None,
                finished: None,
                started: None,
            }),
            events: Mutex::new(Some(broadcast::channel(256).0)),
            phase: watch::channel("queued").0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current state.
    pub fn status(&self) -> Status {
        self.lock().status.clone()
    }

    /// The image files of a finished job.
    pub fn images(&self) -> Vec<PathBuf> {
        self.lock().images.clone()
    }

    /// The error of a failed job.
    pub fn error(&self) -> Option<ApiError> {
        self.lock().error.clone()
    }

    /// Subscribes to the job's events (those after this call); `None` once the job has ended.
    pub fn subscribe(&self) -> Option<broadcast::Receiver<JobEvent>> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|s| s.subscribe())
    }

    /// A receiver of the job's state name, for waiting until it ends.
    pub fn watch(&self) -> watch::Receiver<&'static str> {
        self.phase.subscribe()
    }

    fn emit(&self, name: &'static str, data: serde_json::Value) {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = events.as_ref() {
            let _ = s.send(JobEvent { name, data });
        }
    }

    fn set_running(&self) {
        let mut s = self.lock();
        if s.status != Status::Queued {
            return;
        }
        s.status = Status::Running {
            stage: "starting",
            step: 0,
            of: 0,
        };
        s.started = Some(Instant::now());
        drop(s);
        self.phase.send_replace("running");
        self.emit("running", serde_json::json!({"id": self.id}));
    }

    fn progress(&self, p: Progress) {
        let mut s = self.lock();
        if !matches!(s.status, Status::Running { .. }) {
            return;
        }
        s.status = Status::Running {
            stage: p.stage,
            step: p.step,
            of: p.total,
        };
        drop(s);
        self.emit(
            "progress",
            serde_json::json!({"stage": p.stage, "step": p.step, "of": p.total}),
        );
    }

    fn set_preview(&self, png_base64: String) {
        let mut s = self.lock();
        if s.status.is_terminal() {
            return;
        }
        s.preview = Some(png_base64.clone());
        drop(s);
        self.emit("preview", serde_json::json!({"png_base64": png_base64}));
    }

    /// Ends the job (once: later calls are ignored and return false).
    fn finish(&self, status: Status, images: Vec<PathBuf>, error: Option<ApiError>) -> bool {
        let mut s = self.lock();
        if s.status.is_terminal() {
            return false;
        }
        s.status = status.clone();
        s.images = images;
        s.error = error.clone();
        s.finished = Some(Instant::now());
        let n = s.images.len();
        drop(s);
        match status {
            Status::Done => self.emit(
                "done",
                serde_json::json!({
                    "images": (0..n).map(|k| format!("/v1/jobs/{}/images/{k}.png", self.id)).collect::<Vec<_>>()
                }),
            ),
            Status::Failed => self.emit(
                "failed",
                error.map_or(serde_json::Value::Null, |e| e.body()),
            ),
            _ => self.emit("cancelled", serde_json::json!({"id": self.id})),
        }
        self.phase.send_replace(status.name());
        // The end: readers get the buffered events, then the end of the stream.
        self.events.lock().unwrap_or_else(|p| p.into_inner()).take();
        true
    }

    /// The job as the API shows it.
    pub fn to_json(&self, queue_position: Option<usize>) -> serde_json::Value {
        let s = self.lock();
        let mut v = serde_json::json!({
            "id": self.id,
            "object": "cogview.job",
            "kind": match &self.request {
                JobRequest::Generate(_) => "generate",
                JobRequest::Edit(_) => "edit",
                JobRequest::Queued(q) => match q.kind {
                    cogview_queue::JobKind::Generate => "generate",
                    cogview_queue::JobKind::Edit { .. } => "edit",
                },
            },
            "status": s.status.name(),
            "created": self.created,
            "prompt": self.request.prompt(),
            "n": self.request.n(),
            "seed": self.request.seed(),
        });
        let o = v.as_object_mut().expect("an object");
        match &s.status {
            Status::Queued => {
                if let Some(p) = queue_position {
                    o.insert("queue_position".into(), p.into());
                }
            }
            Status::Running { stage, step, of } => {
                o.insert("stage".into(), (*stage).into());
                o.insert("step".into(), (*step).into());
                o.insert("of".into(), (*of).into());
            }
            Status::Done => {
                let urls: Vec<String> = (0..s.images.len())
                    .map(|k| format!("/v1/jobs/{}/images/{k}.png", self.id))
                    .collect();
                o.insert("images".into(), urls.into());
            }
            Status::Failed => {
                if let Some(e) = &s.error {
                    o.insert("error".into(), e.body()["error"].clone());
                }
            }
            Status::Cancelled => {}
        }
        let (only_first_stage, rerank) = match &self.request {
            JobRequest::Generate(g) => (Some(g.only_first_stage), g.rerank),
            JobRequest::Queued(q) if q.kind == cogview_queue::JobKind::Generate => {
                (Some(q.only_first_stage), q.rerank)
            }
            _ => (None, None),
        };
        if let Some(f) = only_first_stage {
            o.insert("only_first_stage".into(), f.into());
        }
        if let Some(r) = rerank {
            o.insert("rerank".into(), r.into());
        }
        let style = match &self.request {
            JobRequest::Queued(q) => q.style.clone(),
            r => r.style().map(|st| st.name().to_string()),
        };
        if let Some(st) = style {
            o.insert("style".into(), st.into());
        }
        if s.preview.is_some() {
            o.insert("has_preview".into(), true.into());
        }
        v
    }
}

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Jobs that may wait in the queue (running ones not counted).
    pub queue_size: usize,
    /// Images whose stage 1 runs in one CogLM batch.
    pub batch_size: usize,
    /// How long a finished job and its images are kept.
    pub job_ttl: Duration,
    /// Where the images are written (a folder the scheduler owns and removes).
    pub image_dir: PathBuf,
}

/// Counters, for the health route and the load test.
#[derive(Debug, Default)]
pub struct Stats {
    /// Jobs accepted.
    pub submitted: AtomicU64,
    /// Jobs done.
    pub done: AtomicU64,
    /// Jobs failed.
    pub failed: AtomicU64,
    /// Jobs cancelled.
    pub cancelled: AtomicU64,
    /// Requests refused with 429.
    pub rejected: AtomicU64,
    /// Stage-1 batches run.
    pub batches: AtomicU64,
    /// Jobs that ran in those batches.
    pub batched_jobs: AtomicU64,
    /// The largest number of jobs in one batch.
    pub largest_batch: AtomicU64,
}

struct Queue {
    jobs: VecDeque<Arc<Job>>,
    shutdown: bool,
}

/// One pipeline, a bounded queue and the worker thread that runs it.
pub struct Scheduler {
    pipeline: Arc<Pipeline>,
    weights: Vec<WeightFile>,
    config: SchedulerConfig,
    queue: Mutex<Queue>,
    wake: Condvar,
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    running: Mutex<Vec<Arc<Job>>>,
    /// Mean seconds per job (exponential average), for Retry-After.
    mean_job_seconds: Mutex<f64>,
    /// The counters.
    pub stats: Stats,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// `serve --queue`: jobs go to the NATS queue and are followed there.
    remote: Option<cogview_queue::Queue>,
    /// Queue mode: jobs submitted or followed and not yet ended.
    relaying: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// PNG bytes of an image without text chunks (previews).
pub fn png_bytes(img: &Image) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    let ok = image::codecs::png::PngEncoder::new(&mut out).write_image(
        &img.pixels,
        img.width as u32,
        img.height as u32,
        image::ExtendedColorType::Rgb8,
    );
    debug_assert!(ok.is_ok());
    out
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}

impl Scheduler {
    /// The state both kinds of scheduler start from (the image folder created).
    fn new(
        pipeline: Arc<Pipeline>,
        weights: Vec<WeightFile>,
        config: SchedulerConfig,
        remote: Option<cogview_queue::Queue>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.image_dir)?;
        Ok(Scheduler {
            pipeline,
            weights,
            config,
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
            jobs: Mutex::new(HashMap::new()),
            running: Mutex::new(Vec::new()),
            mean_job_seconds: Mutex::new(1.0),
            stats: Stats::default(),
            worker: Mutex::new(None),
            remote,
            relaying: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// A scheduler for `pipeline`; `weights` go into every image's record. Starts the worker.
    pub fn start(
        pipeline: Arc<Pipeline>,
        weights: Vec<WeightFile>,
        config: SchedulerConfig,
    ) -> std::io::Result<Arc<Self>> {
        let s = Arc::new(Scheduler::new(pipeline, weights, config, None)?);
        let worker = s.clone();
        let handle = std::thread::Builder::new()
            .name("cogview-worker".into())
            .spawn(move || worker.work())?;
        *s.worker.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(s)
    }

    /// A scheduler for `serve --queue`: jobs are submitted to `queue` and followed there (their
    /// state, progress and images come from the workers through NATS); `pipeline` only checks
    /// requests (its stages load lazily and never run here).
    pub fn start_remote(
        pipeline: Arc<Pipeline>,
        queue: cogview_queue::Queue,
        config: SchedulerConfig,
    ) -> std::io::Result<Arc<Self>> {
        Ok(Arc::new(Scheduler::new(
            pipeline,
            Vec::new(),
            config,
            Some(queue),
        )?))
    }

    /// The NATS queue, in `serve --queue` mode.
    pub fn remote(&self) -> Option<&cogview_queue::Queue> {
        self.remote.as_ref()
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The settings.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Jobs waiting and jobs running.
    pub fn load(&self) -> (usize, usize) {
        if self.remote.is_some() {
            // This server's jobs in the NATS queue, waiting or running (not told apart here).
            return (self.relaying.load(Ordering::Relaxed), 0);
        }
        let queued = self.queue().jobs.len();
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner()).len();
        (queued, running)
    }

    /// Jobs known (waiting, running, or finished and not yet expired).
    pub fn job_count(&self) -> usize {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Queues a job: its id and position (0: next to run), or 429 when the queue is full and
    /// 503 when the server is shutting down.
    pub fn submit(self: &Arc<Self>, request: JobRequest) -> Result<(Arc<Job>, usize), ApiError> {
        let job = Arc::new(Job::new(cogview_queue::new_job_id(), request));
        let mut q = self.queue();
        if q.shutdown {
            return Err(ApiError::shutting_down());
        }
        let waiting = if self.remote.is_some() {
            self.relaying.load(Ordering::Relaxed)
        } else {
            q.jobs.len()
        };
        if waiting >= self.config.queue_size {
            drop(q);
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            let mean = *self
                .mean_job_seconds
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let rounds = waiting.div_ceil(self.config.batch_size.max(1)) + 1;
            let retry = (mean * rounds as f64).ceil().max(1.0) as u64;
            return Err(ApiError::queue_full(self.config.queue_size, retry));
        }
        let position = if self.remote.is_some() {
            0
        } else {
            q.jobs.push_back(job.clone());
            q.jobs.len() - 1
        };
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.id.clone(), job.clone());
        drop(q);
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        if self.remote.is_some() {
            self.relaying.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(self.clone().relay(job.clone(), true));
        } else {
            self.wake.notify_all();
        }
        Ok((job, position))
    }

    /// Queue mode: submits the job to NATS (when `submit`) and follows it there until it ends,
    /// mirroring its state and progress into the local job and fetching its images.
    async fn relay(self: Arc<Self>, job: Arc<Job>, submit: bool) {
        let Some(q) = self.remote.clone() else {
            return;
        };
        let id = job.id.clone();
        let started = Instant::now();
        if submit && job.status().is_terminal() {
            // Cancelled before it reached the queue: nothing to submit.
            self.relaying.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        if submit {
            let submitted = match remote_spec(&job) {
                Ok((spec, inputs)) => q.submit(&spec, inputs).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = submitted {
                self.fail(&job, ApiError::from_queue(&e));
                self.relaying.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
        let mut events = q.subscribe_progress(&id).await.ok();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                ev = next_event(&mut events) => {
                    if ev.event == "progress" {
                        job.set_running();
                        job.progress(Progress {
                            stage: stage_name(ev.stage.as_deref()),
                            step: ev.step,
                            total: ev.of,
                        });
                    }
                }
                _ = tick.tick() => {
                    if self.queue().shutdown {
                        break;
                    }
                    if job.status().is_terminal() {
                        // Cancelled here: ask the workers to drop it.
                        if let Err(e) = q.cancel(&id).await {
                            tracing::warn!("job {id}: could not pass on the cancellation: {e}");
                        }
                        break;
                    }
                    match q.record(&id).await {
                        Ok(Some(r)) => {
                            if self.apply_record(&job, &r).await {
                                break;
                            }
                        }
                        Ok(None) => {}
                        // The broker restarting: keep following.
                        Err(e) => tracing::warn!("job {id}: {e}"),
                    }
                }
            }
        }
        let mut mean = self
            .mean_job_seconds
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *mean = 0.8 * *mean + 0.2 * started.elapsed().as_secs_f64();
        drop(mean);
        if submit {
            self.relaying.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Mirrors a NATS job state into the local job; true when the job has ended.
    async fn apply_record(&self, job: &Arc<Job>, r: &cogview_queue::JobRecord) -> bool {
        use cogview_queue::JobStatus as S;
        match r.status {
            S::Queued => false,
            S::Running => {
                job.set_running();
                if let Some(stage) = r.stage.as_deref() {
                    job.progress(Progress {
                        stage: stage_name(Some(stage)),
                        step: r.step,
                        total: r.of,
                    });
                }
                false
            }
            S::Done => {
                self.collect(job, r).await;
                true
            }
            S::Failed => {
                let message = r
                    .error
                    .clone()
                    .unwrap_or_else(|| "the worker failed".into());
                self.fail(
                    job,
                    ApiError::from_pipeline(&cogview::Error::backend(message)),
                );
                true
            }
            S::Cancelled => {
                if job.finish(Status::Cancelled, Vec::new(), None) {
                    self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
        }
    }

    /// Fetches a finished NATS job's images into the image folder and ends the local job.
    async fn collect(&self, job: &Arc<Job>, r: &cogview_queue::JobRecord) {
        let Some(q) = self.remote.as_ref() else {
            return;
        };
        let dir = self.config.image_dir.join(&job.id);
        let mut paths = Vec::with_capacity(r.images.len());
        for (k, name) in r.images.iter().enumerate() {
            let bytes = match q.object(name).await {
                Ok(b) => b,
                Err(e) => return self.fail(job, ApiError::from_queue(&e)),
            };
            let path = dir.join(format!("{k}.png"));
            let written = std::fs::create_dir_all(&dir)
                .map_err(|e| cogview::Error::io(&dir, e))
                .and_then(|()| cogview::core::output::write_file(&path, &bytes));
            if let Err(e) = written {
                let _ = std::fs::remove_dir_all(&dir);
                return self.fail(job, ApiError::from_pipeline(&e));
            }
            paths.push(path);
        }
        job.set_running();
        if job.finish(Status::Done, paths, None) {
            self.stats.done.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// Queue mode: a job this server does not know (submitted through another server) looked
    /// up in NATS and followed from now on. `None` when NATS has no such job either.
    pub async fn adopt(self: &Arc<Self>, id: &str) -> Option<Arc<Job>> {
        let q = self.remote.as_ref()?;
        if !cogview_queue::valid_job_id(id) {
            return None;
        }
        let r = q.record(id).await.ok()??;
        let mut job = Job::new(id.to_string(), JobRequest::Queued(r.spec.clone()));
        job.created = r.created;
        let job = Arc::new(job);
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(existing) = jobs.get(id) {
                return Some(existing.clone());
            }
            jobs.insert(id.to_string(), job.clone());
        }
        if !self.apply_record(&job, &r).await {
            tokio::spawn(self.clone().relay(job.clone(), false));
        }
        Some(job)
    }

    /// A job by id.
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// The position of a queued job (0: next), `None` when it is not waiting.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.queue().jobs.iter().position(|j| j.id == id)
    }

    /// Cancels a job: a queued one leaves the queue, a running one stops at its next step (and
    /// is reported cancelled at once). False when it had already ended.
    pub fn cancel(&self, job: &Arc<Job>) -> bool {
        job.cancel.cancel();
        self.queue().jobs.retain(|j| j.id != job.id);
        let ended = job.finish(Status::Cancelled, Vec::new(), None);
        if ended {
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        }
        ended
    }

    /// Removes finished jobs older than the TTL and their images; returns how many.
    pub fn expire(&self) -> usize {
        let ttl = self.config.job_ttl;
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let old: Vec<String> = jobs
            .values()
            .filter(|j| j.lock().finished.is_some_and(|f| f.elapsed() >= ttl))
            .map(|j| j.id.clone())
            .collect();
        for id in &old {
            jobs.remove(id);
            let _ = std::fs::remove_dir_all(self.config.image_dir.join(id));
        }
        old.len()
    }

    /// Stops: no new jobs, queued jobs cancelled, running jobs given `grace` to finish and then
    /// cancelled; waits for the worker and removes the image folder. Blocking.
    pub fn shutdown(&self, grace: Duration) {
        if self.remote.is_some() {
            // The jobs live on in the NATS queue (the workers finish them; another server can
            // follow them): only this server's mirrors stop.
            self.queue().shutdown = true;
            let _ = std::fs::remove_dir_all(&self.config.image_dir);
            return;
        }
        let queued: Vec<Arc<Job>> = {
            let mut q = self.queue();
            q.shutdown = true;
            q.jobs.drain(..).collect()
        };
        for j in queued {
            j.cancel.cancel();
            if j.finish(Status::Cancelled, Vec::new(), None) {
                self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.wake.notify_all();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.load().1 > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        for j in self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            j.cancel.cancel();
        }
        if let Some(h) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_dir_all(&self.config.image_dir);
    }

    /// The next jobs to run: the first waiting job and, when it is a plain generation, other
    /// waiting plain generations in its style while their images fit the batch size. `None` at
    /// shutdown.
    fn next_jobs(&self) -> Option<Vec<Arc<Job>>> {
        let mut q = self.queue();
        loop {
            if let Some(first) = q.jobs.pop_front() {
                let mut taken = vec![first];
                if taken[0].request.batchable() {
                    let mut images = taken[0].request.n();
                    let mut i = 0;
                    while i < q.jobs.len() {
                        let r = &q.jobs[i].request;
                        if r.batchable()
                            && r.style() == taken[0].request.style()
                            && images + r.n() <= self.config.batch_size
                        {
                            images += r.n();
                            taken.push(q.jobs.remove(i).expect("in range"));
                        } else {
                            i += 1;
                        }
                    }
                }
                *self.running.lock().unwrap_or_else(|p| p.into_inner()) = taken.clone();
                return Some(taken);
            }
            if q.shutdown {
                return None;
            }
            q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn work(self: Arc<Self>) {
        while let Some(jobs) = self.next_jobs() {
            let started = Instant::now();
            for j in &jobs {
                j.set_running();
            }
            let count = jobs.len();
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if jobs[0].request.batchable() {
                    self.run_batch(&jobs);
                } else {
                    self.run_alone(&jobs[0]);
                }
            }));
            if let Err(p) = run {
                let message = panic_message(p.as_ref());
                tracing::error!("the worker panicked: {message}");
                for j in &jobs {
                    self.fail(
                        j,
                        ApiError {
                            code: Some("worker_panic"),
                            ..ApiError::from_pipeline(&cogview::Error::backend(message.clone()))
                        },
                    );
                }
            }
            self.running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            let per_job = started.elapsed().as_secs_f64() / count as f64;
            let mut mean = self
                .mean_job_seconds
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *mean = 0.8 * *mean + 0.2 * per_job;
        }
    }

    fn context(&self, job: &Arc<Job>) -> RunContext {
        let mut ctx = RunContext::with_seed(job.request.seed());
        ctx.cancel = job.cancel.clone();
        let j = job.clone();
        ctx.progress = Some(Arc::new(move |p: Progress| j.progress(p)));
        ctx
    }

    fn run_batch(&self, jobs: &[Arc<Job>]) {
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .batched_jobs
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        self.stats
            .largest_batch
            .fetch_max(jobs.len() as u64, Ordering::Relaxed);
        let specs: Vec<&GenerateSpec> = jobs
            .iter()
            .map(|j| match &j.request {
                JobRequest::Generate(g) => g,
                JobRequest::Edit(_) | JobRequest::Queued(_) => {
                    unreachable!("only plain generations are batched")
                }
            })
            .collect();
        let ctxs: Vec<RunContext> = jobs.iter().map(|j| self.context(j)).collect();
        let hooks: Vec<PreviewHook> = jobs
            .iter()
            .map(|j| {
                let j = j.clone();
                let pipeline = self.pipeline.clone();
                Box::new(move |grids: &[TokenGrid]| {
                    if let Some(png) = preview(&pipeline, grids) {
                        j.set_preview(png);
                    }
                }) as PreviewHook
            })
            .collect();
        let requests: Vec<GenerationRequest> = specs
            .iter()
            .zip(&ctxs)
            .zip(&hooks)
            .map(|((g, ctx), hook)| GenerationRequest {
                prompt: &g.prompt,
                num_images: g.n,
                only_first_stage: g.only_first_stage,
                ctx,
                on_stage1: g.preview.then_some(hook.as_ref()),
            })
            .collect();
        // next_jobs batches jobs of one style.
        let pipeline = self.styled(&jobs[0]);
        pipeline.generate_many(&requests, |i, result| {
            let only_first_stage = specs[i].only_first_stage;
            self.complete(&jobs[i], result, |img| Origin::Generate {
                only_first_stage,
                rerank: img.rerank.clone(),
            });
        });
    }

    /// The pipeline in the job's style (sharing the loaded models).
    fn styled(&self, job: &Job) -> Pipeline {
        let style = job.request.style().unwrap_or(self.pipeline.style());
        self.pipeline.with_style(style)
    }

    fn run_alone(&self, job: &Arc<Job>) {
        let ctx = self.context(job);
        let pipeline = self.styled(job);
        match &job.request {
            JobRequest::Generate(g) => {
                let k = g.rerank.unwrap_or(g.n);
                let result =
                    pipeline.generate_reranked(&g.prompt, k, g.n, g.only_first_stage, &ctx);
                match result {
                    Ok((images, _)) => {
                        let only_first_stage = g.only_first_stage;
                        self.complete(job, Ok(images), |img| Origin::Generate {
                            only_first_stage,
                            rerank: img.rerank.clone(),
                        })
                    }
                    Err(e) => self.complete(job, Err(e), |_| unreachable!()),
                }
            }
            JobRequest::Queued(_) => self.fail(
                job,
                ApiError::from_pipeline(&cogview::Error::backend(
                    "a job of the NATS queue runs on a worker, not in this server",
                )),
            ),
            JobRequest::Edit(e) => {
                let result = pipeline
                    .edit(&e.image, &e.mask, &e.prompt, e.n, &ctx)
                    .map(|edited| {
                        edited
                            .into_iter()
                            .map(|x| (x.index, x.seed, x.image))
                            .collect::<Vec<_>>()
                    });
                let origin = Origin::Edit {
                    image_sha256: e.image_sha256.clone(),
                    mask: e.mask_description.clone(),
                };
                self.write(job, result, |_| origin.clone());
            }
        }
    }

    fn complete(
        &self,
        job: &Arc<Job>,
        result: cogview::Result<Vec<GeneratedImage>>,
        origin: impl Fn(&GeneratedImage) -> Origin,
    ) {
        let result = result.map(|images| {
            images
                .into_iter()
                .map(|img| {
                    let o = origin(&img);
                    (img.index, img.seed, img.image, o)
                })
                .collect::<Vec<_>>()
        });
        match result {
            Ok(v) => {
                let origins: Vec<Origin> = v.iter().map(|x| x.3.clone()).collect();
                let images = v.into_iter().map(|(i, s, img, _)| (i, s, img)).collect();
                self.write(job, Ok(images), |k| origins[k].clone());
            }
            Err(e) => self.write(job, Err(e), |_| unreachable!()),
        }
    }

    /// Writes a job's images with their records (or records its failure).
    fn write(
        &self,
        job: &Arc<Job>,
        result: cogview::Result<Vec<(usize, u64, Image)>>,
        origin: impl Fn(usize) -> Origin,
    ) {
        let images = match result {
            Ok(images) => images,
            Err(cogview::Error::Cancelled) => {
                if job.finish(Status::Cancelled, Vec::new(), None) {
                    self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            Err(e) => return self.fail(job, ApiError::from_pipeline(&e)),
        };
        if job.status().is_terminal() {
            return; // cancelled meanwhile
        }
        let dir = self.config.image_dir.join(&job.id);
        let pipeline = self.styled(job);
        let write = || -> cogview::Result<Vec<PathBuf>> {
            std::fs::create_dir_all(&dir).map_err(|e| cogview::Error::io(&dir, e))?;
            let n = images.len();
            let mut paths = Vec::with_capacity(n);
            for (k, (index, seed, image)) in images.iter().enumerate() {
                let rec = ImageRecord::for_image(
                    &pipeline,
                    job.request.prompt(),
                    (*seed, *index, n),
                    origin(k),
                    &self.weights,
                )?;
                let path = dir.join(format!("{k}.png"));
                cogview::image::save_png(image, &path, &rec.png_text())?;
                paths.push(path);
            }
            Ok(paths)
        };
        match write() {
            Ok(paths) => {
                if job.finish(Status::Done, paths, None) {
                    self.stats.done.fetch_add(1, Ordering::Relaxed);
                } else {
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                self.fail(job, ApiError::from_pipeline(&e));
            }
        }
    }

    fn fail(&self, job: &Arc<Job>, e: ApiError) {
        if job.finish(Status::Failed, Vec::new(), Some(e)) {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The stage-1 grids decoded and tiled (three per row) as a base64 PNG.
fn preview(pipeline: &Pipeline, grids: &[TokenGrid]) -> Option<String> {
    use base64::Engine;
    let vq = pipeline.image_tokenizer().ok()?;
    let c = pipeline.geometry().compression;
    let images: Vec<Image> = grids
        .iter()
        .map(|g| vq.decode(g, c))
        .collect::<cogview::Result<_>>()
        .ok()?;
    let tiled = cogview::image::tile(&images, 3).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(png_bytes(&tiled)))
}

/// A job as the NATS queue carries it, with an edit's inputs as PNG bytes.
type RemoteJob = (cogview_queue::JobSpec, Option<(Vec<u8>, Vec<u8>)>);

fn remote_spec(job: &Job) -> Result<RemoteJob, cogview_queue::QueueError> {
    use cogview_queue::{JobKind, JobSpec};
    Ok(match &job.request {
        JobRequest::Generate(g) => (
            JobSpec {
                id: job.id.clone(),
                kind: JobKind::Generate,
                prompt: g.prompt.clone(),
                n: g.n,
                seed: g.seed,
                only_first_stage: g.only_first_stage,
                rerank: g.rerank,
                style: Some(g.style.name().to_string()),
            },
            None,
        ),
        JobRequest::Edit(e) => {
            // The mask as a picture: white is redrawn (what EditMask::from_image reads back).
            let cells: Vec<u8> = e
                .mask
                .cells()
                .iter()
                .flat_map(|&c| [if c { 255 } else { 0 }; 3])
                .collect();
            let mask = Image::new(e.mask.width(), e.mask.height(), cells).map_err(|err| {
                cogview_queue::QueueError::Message {
                    what: format!("the mask of job {}", job.id),
                    reason: err.to_string(),
                }
            })?;
            (
                JobSpec {
                    id: job.id.clone(),
                    kind: JobKind::Edit {
                        image_sha256: e.image_sha256.clone(),
                        mask_description: e.mask_description.clone(),
                    },
                    prompt: e.prompt.clone(),
                    n: e.n,
                    seed: e.seed,
                    only_first_stage: false,
                    rerank: None,
                    style: Some(e.style.name().to_string()),
                },
                Some((png_bytes(&e.image), png_bytes(&mask))),
            )
        }
        JobRequest::Queued(spec) => (spec.clone(), None),
    })
}

/// The next progress event, or never when there is no subscription.
async fn next_event(
    events: &mut Option<impl futures_util::Stream<Item = cogview_queue::ProgressEvent> + Unpin>,
) -> cogview_queue::ProgressEvent {
    use futures_util::StreamExt;
    match events {
        Some(s) => match s.next().await {
            Some(e) => e,
            None => {
                *events = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// The stage names the API reports (`Progress` carries static names).
fn stage_name(stage: Option<&str>) -> &'static str {
    match stage {
        Some("coglm") => "coglm",
        Some("dsr") => "dsr",
        Some("itersr") => "itersr",
        Some("decode") => "decode",
        Some("rerank") => "rerank",
        Some("store") => "store",
        Some("load") => "load",
        _ => "starting",
    }
}
