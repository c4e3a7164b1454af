//! The messages: what a job asks for ([`JobSpec`]) and where it stands ([`JobRecord`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// What a job makes. Image `i` of a job uses seed `seed + i`, as `cogview generate` does, so a
/// job's result is the same on every worker with the same weights.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The job's id: the key of its state, results and progress subject. `[a-z0-9_]`, 1-64.
    pub id: String,
    /// Text to image or an edit.
    pub kind: JobKind,
    /// What to draw.
    pub prompt: String,
    /// Images to make.
    pub n: usize,
    /// The base seed.
    pub seed: u64,
    /// Stop after stage 1 (generation only).
    #[serde(default)]
    pub only_first_stage: bool,
    /// Inverse prompting (generation only): draw this many stage-1 candidates and keep the `n`
    /// best by the prompt's likelihood, as `cogview generate --rerank`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank: Option<usize>,
    /// The prompt style by name (`cogview generate --style`: `none`, `mainbody`, `photo`, ...);
    /// `None`: the worker's pipeline's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<String>,
}

/// A job's kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobKind {
    /// Text to image.
    Generate,
    /// Text-guided editing: the input image and the mask (white: redraw) are the objects
    /// `inputs/{id}/image.png` and `inputs/{id}/mask.png` of the result store.
    Edit {
        /// SHA-256 of the uploaded image's bytes (for the records).
        image_sha256: String,
        /// The mask as recorded (`file <sha256>` and/or rectangles).
        mask_description: String,
    },
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// In the stream, waiting for a worker.
    Queued,
    /// A worker is making it.
    Running,
    /// Its images are in the result store.
    Done,
    /// It failed (the error says why); not retried.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// The state's name (`queued`, `running`, …), as in the server's API.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Done | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A job's state, as kept in the state bucket under `job.{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// What was asked.
    pub spec: JobSpec,
    /// Where it is.
    pub status: JobStatus,
    /// While running: `coglm`, `dsr`, `itersr`, `decode`, `store`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Steps done in the stage.
    #[serde(default)]
    pub step: usize,
    /// Steps in the stage.
    #[serde(default)]
    pub of: usize,
    /// The worker that ran (or runs) it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Deliveries of the job message so far (2 or more: a worker died or gave it back).
    #[serde(default)]
    pub attempt: u64,
    /// The result objects, in image order (when done).
    #[serde(default)]
    pub images: Vec<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Submitted, seconds since the Unix epoch.
    pub created: u64,
    /// Last changed, seconds since the Unix epoch.
    pub updated: u64,
}

impl JobRecord {
    /// The state of a job just submitted.
    pub fn queued(spec: JobSpec) -> Self {
        let now = unix_seconds();
        JobRecord {
            spec,
            status: JobStatus::Queued,
            stage: None,
            step: 0,
            of: 0,
            worker: None,
            attempt: 0,
            images: Vec::new(),
            error: None,
            created: now,
            updated: now,
        }
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.spec.id
    }
}

/// A progress event, published on `{prefix}.progress.{id}` (not stored: the state bucket keeps
/// the latest step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// `running`, `progress`, `done`, `failed` or `cancelled`.
    pub event: String,
    /// The stage (for `progress`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// Steps done.
    #[serde(default)]
    pub step: usize,
    /// Steps in all.
    #[serde(default)]
    pub of: usize,
}

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether `id` can name a job: 1-64 characters of `[a-z0-9_]` (it becomes a key, an object
/// name and a subject token).
pub fn valid_job_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A fresh random job id (`job_` and 32 hex digits), for servers (local and queued jobs).
pub fn new_job_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut parts = [0u64; 2];
    for (i, p) in parts.iter_mut().enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u128(nanos);
        h.write_usize(i);
        h.write_u32(std::process::id());
        *p = h.finish();
    }
    format!("job_{:016x}{:016x}", parts[0], parts[1])
}

/// The id of a batch job: a hash of what it asks, so that submitting the same batch again names
/// the same jobs (their finished results are reused, their messages deduplicated).
pub fn batch_job_id(prompt: &str, n: usize, seed: u64, only_first_stage: bool) -> String {
    let mut h = Sha256::new();
    h.update(b"cogview batch job v1\0");
    h.update(prompt.as_bytes());
    h.update([0]);
    h.update((n as u64).to_le_bytes());
    h.update(seed.to_le_bytes());
    h.update([only_first_stage as u8]);
    let d = h.finalize();
    let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("batch_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_keys_and_batch_ids_depend_on_every_field() {
        let a = batch_job_id("a red circle", 1, 7, false);
        assert!(valid_job_id(&a), "{a}");
        assert_eq!(a, batch_job_id("a red circle", 1, 7, false));
        for other in [
            batch_job_id("a red circle ", 1, 7, false),
            batch_job_id("a red circle", 2, 7, false),
            batch_job_id("a red circle", 1, 8, false),
            batch_job_id("a red circle", 1, 7, true),
        ] {
            assert_ne!(a, other);
        }
        let r = new_job_id();
        assert!(valid_job_id(&r), "{r}");
        assert_ne!(r, new_job_id());
        for bad in ["", "Job", "a.b", "a>b", "a b", &"x".repeat(65)] {
            assert!(!valid_job_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn records_round_trip_through_json() {
        let spec = JobSpec {
            id: "job_1".into(),
            kind: JobKind::Edit {
                image_sha256: "ab".into(),
                mask_description: "rect 0,0,8,8".into(),
            },
            prompt: "a blue square".into(),
            n: 2,
            seed: 3,
            only_first_stage: false,
            rerank: None,
            style: Some("flat".into()),
        };
        let mut r = JobRecord::queued(spec);
        r.status = JobStatus::Running;
        r.stage = Some("dsr".into());
        let back: JobRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"status\":\"running\""), "{text}");
        assert!(text.contains("\"type\":\"edit\""), "{text}");
    }
}
