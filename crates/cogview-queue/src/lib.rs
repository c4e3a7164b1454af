//! # cogview-queue
//!
//! cogview's job queue on NATS JetStream, shared by `cogview worker` (which runs jobs),
//! `cogview batch` and `cogview serve --queue` (which submit and watch them). docs/scale-out.md
//! describes the design; in short, for the prefix `cogview`:
//!
//! | what | NATS object | name |
//! |---|---|---|
//! | job messages ([`JobSpec`] JSON) | work-queue stream, file storage | `COGVIEW_JOBS`, subject `cogview.jobs` |
//! | the workers' shared cursor | durable pull consumer, explicit acks | `cogview-workers` |
//! | job state ([`JobRecord`] JSON) | key-value bucket | `cogview_jobs`, keys `job.{id}` |
//! | completion markers (created once) | same bucket | `done.{id}` |
//! | cancellation requests | same bucket | `cancel.{id}` |
//! | result PNGs, edit inputs | object store | `cogview_results`: `{id}/{k}.png`, `inputs/{id}/…` |
//! | progress events ([`ProgressEvent`]) | core subject (not stored) | `cogview.progress.{id}` |
//!
//! A job message leaves the stream only when a worker acknowledges it, which it does after the
//! results are stored and the completion marker is created; a worker that dies leaves it
//! unacknowledged and the broker delivers it again after the ack wait. The marker is created with
//! `create` (which fails when the key exists), so a second completion of the same job is detected
//! and its results are not stored again.

mod error;
mod job;

pub use error::QueueError;
pub use job::{
    batch_job_id, new_job_id, unix_seconds, valid_job_id, JobKind, JobRecord, JobSpec, JobStatus,
    ProgressEvent,
};

use async_nats::jetstream::{self, consumer::pull, kv, object_store, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Where the queue is and how it behaves.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The broker, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Prefix of every stream, bucket and subject name (`[a-z0-9_-]`), so that several
    /// deployments can share a broker.
    pub prefix: String,
    /// How long a delivered job may go without an acknowledgement or a heartbeat before the
    /// broker gives it to another worker. Workers send a heartbeat every third of this.
    pub ack_wait: Duration,
    /// Deliveries of one job before the broker gives up on it (a job that kills its worker every
    /// time must not kill them all).
    pub max_deliver: i64,
    /// How long connecting may take.
    pub connect_timeout: Duration,
}

impl QueueConfig {
    /// The defaults for a broker at `url`: prefix `cogview`, ack wait 30 s, 5 deliveries.
    pub fn new(url: impl Into<String>) -> Self {
        QueueConfig {
            url: url.into(),
            prefix: "cogview".into(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 5,
            connect_timeout: Duration::from_secs(5),
        }
    }

    fn check(&self) -> Result<(), QueueError> {
        if self.prefix.is_empty()
            || self.prefix.len() > 32
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(QueueError::Setting {
                setting: "--queue-prefix",
                reason: format!(
                    "{:?} is not 1-32 characters of a-z, 0-9, '_' and '-'",
                    self.prefix
                ),
            });
        }
        if self.ack_wait < Duration::from_millis(300) {
            return Err(QueueError::Setting {
                setting: "--ack-wait",
                reason: format!(
                    "{:?} is too short for heartbeats to arrive; use at least 0.3 s (30 s is the default)",
                    self.ack_wait
                ),
            });
        }
        if self.max_deliver < 1 {
            return Err(QueueError::Setting {
                setting: "--max-deliver",
                reason: format!("{} must be at least 1", self.max_deliver),
            });
        }
        Ok(())
    }
}

/// The names of the queue's streams, buckets and subjects for a prefix.
#[derive(Debug, Clone)]
pub struct Names {
    /// The job stream.
    pub stream: String,
    /// The job subject.
    pub subject: String,
    /// The workers' durable consumer.
    pub consumer: String,
    /// The state bucket.
    pub states: String,
    /// The result object store.
    pub results: String,
    /// Progress subjects are `{progress}.{id}`.
    pub progress: String,
}

impl Names {
    /// The names for `prefix`.
    pub fn new(prefix: &str) -> Self {
        Names {
            stream: format!("{}_JOBS", prefix.to_uppercase()),
            subject: format!("{prefix}.jobs"),
            consumer: format!("{prefix}-workers"),
            states: format!("{prefix}_jobs"),
            results: format!("{prefix}_results"),
            progress: format!("{prefix}.progress"),
        }
    }
}

/// A connection to the queue: the stream, the state bucket and the result store (created on
/// first use, with the settings of [`QueueConfig`]).
#[derive(Clone)]
pub struct Queue {
    client: async_nats::Client,
    js: jetstream::Context,
    names: Names,
    config: QueueConfig,
    states: kv::Store,
    results: object_store::ObjectStore,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("url", &self.config.url)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

fn state_key(id: &str) -> String {
    format!("job.{id}")
}
fn done_key(id: &str) -> String {
    format!("done.{id}")
}
fn cancel_key(id: &str) -> String {
    format!("cancel.{id}")
}

/// The object name of a job's image `k`.
pub fn result_name(id: &str, k: usize) -> String {
    format!("{id}/{k}.png")
}

/// The object names of an edit job's input image and mask.
pub fn input_names(id: &str) -> (String, String) {
    (
        format!("inputs/{id}/image.png"),
        format!("inputs/{id}/mask.png"),
    )
}

impl Queue {
    /// Connects and makes sure the stream, the consumer and the buckets exist.
    pub async fn connect(config: QueueConfig) -> Result<Queue, QueueError> {
        config.check()?;
        let names = Names::new(&config.prefix);
        let connect = async_nats::ConnectOptions::new()
            .name("cogview")
            .connection_timeout(config.connect_timeout)
            .connect(config.url.as_str());
        let client = match tokio::time::timeout(config.connect_timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(QueueError::Connect {
                    url: config.url.clone(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {
                return Err(QueueError::Connect {
                    url: config.url.clone(),
                    reason: format!("no answer within {:?}", config.connect_timeout),
                })
            }
        };
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(stream::Config {
                name: names.stream.clone(),
                subjects: vec![names.subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                // Submissions carry the job id as Nats-Msg-Id: the same job submitted twice
                // within this window is stored once.
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                QueueError::broker(
                    format!(
                        "creating the job stream {} (is JetStream enabled: nats-server -js?)",
                        names.stream
                    ),
                    e,
                )
            })?;
        stream
            .get_or_create_consumer(
                &names.consumer,
                pull::Config {
                    durable_name: Some(names.consumer.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: config.ack_wait,
                    max_deliver: config.max_deliver,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                QueueError::broker(format!("creating the consumer {}", names.consumer), e)
            })?;
        let states = match js.get_key_value(&names.states).await {
            Ok(s) => s,
            Err(_) => {
                // The bucket's stream made directly, as the client's create_key_value would: that
                // call first reads the account's info, whose nats-server 2.9 form this client
                // version does not parse (it expects 2.10's reserved_memory field).
                js.get_or_create_stream(stream::Config {
                    name: format!("KV_{}", names.states),
                    subjects: vec![format!("$KV.{}.>", names.states)],
                    max_messages_per_subject: 1,
                    storage: stream::StorageType::File,
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    num_replicas: 1,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    QueueError::broker(format!("creating the state bucket {}", names.states), e)
                })?;
                js.get_key_value(&names.states).await.map_err(|e| {
                    QueueError::broker(format!("opening the state bucket {}", names.states), e)
                })?
            }
        };
        let results = match js.get_object_store(&names.results).await {
            Ok(s) => s,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: names.results.clone(),
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    QueueError::broker(format!("creating the result store {}", names.results), e)
                })?,
        };
        Ok(Queue {
            client,
            js,
            names,
            config,
            states,
            results,
        })
    }

    /// The names in use.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The settings.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// The underlying client (for progress subscriptions).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The workers' consumer.
    pub async fn consumer(&self) -> Result<jetstream::consumer::PullConsumer, QueueError> {
        self.js
            .get_consumer_from_stream(&self.names.consumer, &self.names.stream)
            .await
            .map_err(|e| {
                QueueError::broker(format!("opening the consumer {}", self.names.consumer), e)
            })
    }

    /// Submits a job: stores an edit's inputs (image and mask PNG bytes), records it queued and
    /// publishes its message (deduplicated by id within two minutes). Waits for the broker's
    /// acknowledgement, so a submitted job survives a broker restart.
    pub async fn submit(
        &self,
        spec: &JobSpec,
        inputs: Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<JobRecord, QueueError> {
        check_spec(spec)?;
        if let Some((image, mask)) = inputs {
            let (image_name, mask_name) = input_names(&spec.id);
            self.put_object(&image_name, image).await?;
            self.put_object(&mask_name, mask).await?;
        } else if matches!(spec.kind, JobKind::Edit { .. }) {
            return Err(QueueError::Message {
                what: format!("edit job {}", spec.id),
                reason: "an edit needs its image and mask".into(),
            });
        }
        let record = JobRecord::queued(spec.clone());
        self.set_record(&record).await?;
        let payload = serde_json::to_vec(spec).map_err(|e| QueueError::Message {
            what: format!("job {}", spec.id),
            reason: e.to_string(),
        })?;
        let ack = self
            .js
            .send_publish(
                self.names.subject.clone(),
                jetstream::message::PublishMessage::build()
                    .message_id(spec.id.as_str())
                    .payload(payload.into()),
            )
            .await
            .map_err(|e| QueueError::broker(format!("submitting job {}", spec.id), e))?;
        ack.await.map_err(|e| {
            QueueError::broker(format!("the broker's receipt of job {}", spec.id), e)
        })?;
        Ok(record)
    }

    /// A job's state, `None` when the bucket has no such job.
    pub async fn record(&self, id: &str) -> Result<Option<JobRecord>, QueueError> {
        let value = self
            .states
            .get(state_key(id))
            .await
            .map_err(|e| QueueError::broker(format!("reading the state of job {id}"), e))?;
        value
            .map(|v| parse_record(&v, &format!("the state of job {id}")))
            .transpose()
    }

    /// Writes a job's state (its `updated` time set to now).
    pub async fn set_record(&self, record: &JobRecord) -> Result<(), QueueError> {
        let mut r = record.clone();
        r.updated = unix_seconds();
        let bytes = serde_json::to_vec(&r).map_err(|e| QueueError::Message {
            what: format!("the state of job {}", r.id()),
            reason: e.to_string(),
        })?;
        self.states
            .put(state_key(r.id()), bytes.into())
            .await
            .map_err(|e| QueueError::broker(format!("writing the state of job {}", r.id()), e))?;
        Ok(())
    }

    /// Creates a job's completion marker with its final record: `false` when the marker already
    /// existed (another delivery of the job completed first).
    pub async fn mark_done(&self, record: &JobRecord) -> Result<bool, QueueError> {
        let bytes = serde_json::to_vec(record).map_err(|e| QueueError::Message {
            what: format!("the record of job {}", record.id()),
            reason: e.to_string(),
        })?;
        match self
            .states
            .create(done_key(record.id()), bytes.into())
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(QueueError::broker(
                format!("marking job {} done", record.id()),
                e,
            )),
        }
    }

    /// The final record of a completed job (from its marker), `None` while it is not done.
    pub async fn completion(&self, id: &str) -> Result<Option<JobRecord>, QueueError> {
        let value =
            self.states.get(done_key(id)).await.map_err(|e| {
                QueueError::broker(format!("reading the completion of job {id}"), e)
            })?;
        value
            .map(|v| parse_record(&v, &format!("the completion of job {id}")))
            .transpose()
    }

    /// Asks for a job to be cancelled: a queued job is skipped by the worker that gets it, a
    /// running one stops at its next step. `false` when the job had already ended.
    pub async fn cancel(&self, id: &str) -> Result<bool, QueueError> {
        if let Some(r) = self.record(id).await? {
            if r.status.is_terminal() {
                return Ok(false);
            }
        }
        match self
            .states
            .create(cancel_key(id), Bytes::from_static(b"1"))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => Ok(true),
            Err(e) => Err(QueueError::broker(format!("cancelling job {id}"), e)),
        }
    }

    /// Whether a job's cancellation was asked for.
    pub async fn cancel_requested(&self, id: &str) -> Result<bool, QueueError> {
        self.states
            .get(cancel_key(id))
            .await
            .map(|v| v.is_some())
            .map_err(|e| QueueError::broker(format!("reading the cancellation of job {id}"), e))
    }

    /// Stores an object (a result PNG or an edit input) under `name`.
    pub async fn put_object(&self, name: &str, bytes: Vec<u8>) -> Result<(), QueueError> {
        let mut reader = std::io::Cursor::new(bytes);
        self.results
            .put(name, &mut reader)
            .await
            .map_err(|e| QueueError::broker(format!("storing {name}"), e))?;
        Ok(())
    }

    /// An object's bytes.
    pub async fn object(&self, name: &str) -> Result<Vec<u8>, QueueError> {
        let mut object = self
            .results
            .get(name)
            .await
            .map_err(|e| QueueError::broker(format!("reading {name}"), e))?;
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| QueueError::broker(format!("reading {name}"), e))?;
        Ok(bytes)
    }

    /// The names of every object in the result store (a listing, for tests and audits).
    pub async fn object_names(&self) -> Result<Vec<String>, QueueError> {
        let mut list = self
            .results
            .list()
            .await
            .map_err(|e| QueueError::broker("listing the result store", e))?;
        let mut names = Vec::new();
        while let Some(info) = list.next().await {
            let info = info.map_err(|e| QueueError::broker("listing the result store", e))?;
            if !info.deleted {
                names.push(info.name);
            }
        }
        Ok(names)
    }

    /// Publishes a progress event on the job's subject (best effort: events are not stored).
    pub async fn publish_progress(&self, id: &str, event: &ProgressEvent) {
        if let Ok(bytes) = serde_json::to_vec(event) {
            let _ = self
                .client
                .publish(format!("{}.{id}", self.names.progress), bytes.into())
                .await;
        }
    }

    /// Subscribes to a job's progress events.
    pub async fn subscribe_progress(
        &self,
        id: &str,
    ) -> Result<impl futures_util::Stream<Item = ProgressEvent> + Unpin, QueueError> {
        let sub = self
            .client
            .subscribe(format!("{}.{id}", self.names.progress))
            .await
            .map_err(|e| QueueError::broker(format!("subscribing to job {id}'s progress"), e))?;
        Ok(
            sub.filter_map(|m| {
                futures_util::future::ready(serde_json::from_slice(&m.payload).ok())
            }),
        )
    }

    /// Every job state as it changes, beginning with the current ones (a watch on `job.*`).
    pub async fn watch_records(
        &self,
    ) -> Result<impl futures_util::Stream<Item = Result<JobRecord, QueueError>> + Unpin, QueueError>
    {
        let watch = self
            .states
            .watch_with_history("job.*")
            .await
            .map_err(|e| QueueError::broker("watching job states", e))?;
        Ok(watch.filter_map(|entry| {
            futures_util::future::ready(match entry {
                Ok(e) if e.operation == kv::Operation::Put => {
                    Some(parse_record(&e.value, &format!("state {}", e.key)))
                }
                Ok(_) => None,
                Err(e) => Some(Err(QueueError::broker("watching job states", e))),
            })
        }))
    }

    /// Jobs the workers' consumer has yet to deliver or to see acknowledged (waiting or
    /// running). Read from the consumer, not from the stream's message count: after a broker is
    /// killed (SIGKILL), nats-server 2.9 can bring back the stream copy of a message whose
    /// acknowledgement it had already recorded in the consumer, below the consumer's ack floor,
    /// where it is never delivered again.
    pub async fn pending_jobs(&self) -> Result<u64, QueueError> {
        let mut c = self.consumer().await?;
        let info = c
            .info()
            .await
            .map_err(|e| QueueError::broker("reading the workers' consumer", e))?;
        Ok(info.num_pending + info.num_ack_pending as u64)
    }
}

fn parse_record(bytes: &[u8], what: &str) -> Result<JobRecord, QueueError> {
    serde_json::from_slice(bytes).map_err(|e| QueueError::Message {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// Parses a job message.
pub fn parse_spec(bytes: &[u8]) -> Result<JobSpec, QueueError> {
    let spec: JobSpec = serde_json::from_slice(bytes).map_err(|e| QueueError::Message {
        what: "a job message".into(),
        reason: e.to_string(),
    })?;
    check_spec(&spec)?;
    Ok(spec)
}

fn check_spec(spec: &JobSpec) -> Result<(), QueueError> {
    if !valid_job_id(&spec.id) {
        return Err(QueueError::Message {
            what: format!("job id {:?}", spec.id),
            reason: "ids are 1-64 characters of a-z, 0-9 and '_'".into(),
        });
    }
    if spec.rerank.is_some_and(|k| k < spec.n) {
        return Err(QueueError::Message {
            what: format!("job {}", spec.id),
            reason: "rerank (the candidates) must be at least n".into(),
        });
    }
    if spec.n == 0 {
        return Err(QueueError::Message {
            what: format!("job {}", spec.id),
            reason: "n must be at least 1".into(),
        });
    }
    Ok(())
}
