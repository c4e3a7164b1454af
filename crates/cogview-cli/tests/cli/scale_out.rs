//! `cogview worker` and `cogview batch` on a real NATS JetStream broker (Debian's
//! `nats-server`, started here on a loopback port in a temporary folder): a worker killed in the
//! middle of a job loses nothing, a worker started late picks up waiting work, a batch is
//! resumed by running it again, a redelivered finished job is not stored twice, and a broker
//! restarted mid-run keeps everything acknowledged. Results are compared pixel for pixel with
//! the same prompts and seeds run in one process.

use cogview::pipeline::Settings;
use cogview::{Pipeline, RunContext};
use cogview_queue::{result_name, JobKind, JobRecord, JobSpec, JobStatus, Queue, QueueConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The prompts the tests submit: scenes of the built-in model's grammar.
const PROMPTS: &[&str] = &[
    "a large blue circle in the center",
    "a small red square",
    "a green triangle on the left",
    "a yellow circle at the top",
    "a large purple square at the bottom right",
    "a small orange triangle in the center",
];

fn nats_server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("COGVIEW_NATS_SERVER") {
        return p.into();
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin"])
    {
        let p = Path::new(dir).join("nats-server");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "nats-server is not installed: `apt-get install nats-server` (Debian; .ci/run installs it) \
         or set COGVIEW_NATS_SERVER to its path"
    );
}

/// A JetStream broker on a loopback port, storing in a folder that outlives restarts.
struct Broker {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    log: PathBuf,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut b = Broker {
            child: None,
            port,
            store: dir.join("jetstream"),
            log: dir.join("nats-server.log"),
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(nats_server_binary())
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.store)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "nats-server did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: the broker gets no chance to flush or say goodbye.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `cogview worker` process; killed when dropped.
struct WorkerProcess {
    child: Child,
    name: String,
    log: PathBuf,
}

impl WorkerProcess {
    fn start(url: &str, name: &str, dir: &Path) -> WorkerProcess {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_cogview"))
            .args(["worker", "--nats", url, "--name", name, "--retry-for", "60"])
            .env("COGVIEW_LOG", "warn,cogview_worker=info")
            .env("RAYON_NUM_THREADS", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        WorkerProcess {
            child,
            name: name.into(),
            log,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The queue with a short ack wait (2 s), so that a dead worker's job comes back quickly. The
/// first connection creates the consumer, so the tests connect before any worker starts.
async fn connect(url: &str) -> Queue {
    let mut c = QueueConfig::new(url);
    c.ack_wait = Duration::from_secs(2);
    Queue::connect(c).await.expect("the queue")
}

fn spec(i: usize) -> JobSpec {
    JobSpec {
        id: format!("test_job_{i:03}"),
        kind: JobKind::Generate,
        prompt: PROMPTS[i % PROMPTS.len()].into(),
        n: 1,
        seed: 100 + i as u64,
        only_first_stage: false,
        rerank: None,
        style: None,
    }
}

async fn records(q: &Queue, ids: &[String]) -> BTreeMap<String, JobRecord> {
    let mut out = BTreeMap::new();
    for id in ids {
        if let Some(r) = q.record(id).await.unwrap() {
            out.insert(id.clone(), r);
        }
    }
    out
}

/// Waits until every job is done (failing on a failed one), for at most `within`.
async fn wait_done(q: &Queue, ids: &[String], within: Duration, logs: &dyn Fn() -> String) {
    let t = Instant::now();
    loop {
        let mut done = 0;
        for id in ids {
            if q.completion(id).await.ok().flatten().is_some() {
                done += 1;
            } else if let Ok(Some(r)) = q.record(id).await {
                assert_ne!(
                    r.status,
                    JobStatus::Failed,
                    "job {id} failed: {:?}\n{}",
                    r.error,
                    logs()
                );
            }
        }
        if done == ids.len() {
            return;
        }
        assert!(
            t.elapsed() < within,
            "{done} of {} jobs done after {within:?}\n{}",
            ids.len(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the stream holds no job message (every one acknowledged). A message whose
/// acknowledgement was lost (the broker died as it arrived) is delivered again after the ack
/// wait and settled as a duplicate, so this can trail the last completion by a few seconds.
async fn wait_all_acknowledged(q: &Queue, logs: &dyn Fn() -> String) {
    let t = Instant::now();
    loop {
        let pending = q.pending_jobs().await.unwrap();
        if pending == 0 {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{pending} jobs still unacknowledged\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pixels of a PNG.
fn pixels(png: &[u8]) -> Vec<u8> {
    cogview::image::decode_image(png, "a result")
        .unwrap()
        .pixels
}

/// The same jobs run in this process on the embedded default model, one at a time.
fn single_process_pixels(specs: &[JobSpec]) -> Vec<Vec<u8>> {
    let cfg = cogview::OpenOptions::default().config().unwrap();
    let pipeline = Pipeline::from_settings(Settings::resolve(&cfg, true).unwrap()).unwrap();
    specs
        .iter()
        .map(|s| {
            let ctx = RunContext::with_seed(s.seed);
            let images = pipeline
                .generate(&s.prompt, s.n, s.only_first_stage, &ctx)
                .unwrap();
            images[0].image.pixels.clone()
        })
        .collect()
}

/// Every result object of the jobs exists exactly once and nothing else is stored.
async fn assert_results_exactly_once(q: &Queue, ids: &[String]) {
    let names = q.object_names().await.unwrap();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "an object listed twice: {names:?}"
    );
    let expected: BTreeSet<String> = ids.iter().map(|id| result_name(id, 0)).collect();
    let got: BTreeSet<String> = names.into_iter().collect();
    assert_eq!(
        got, expected,
        "the result store holds exactly one PNG per job"
    );
}

#[test]
fn thirty_jobs_on_three_workers_survive_a_worker_killed_mid_job() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let rt = runtime();
    let q = rt.block_on(connect(&broker.url()));
    let specs: Vec<JobSpec> = (0..30).map(spec).collect();
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    let mut workers: Vec<Option<WorkerProcess>> = (1..=3)
        .map(|k| {
            Some(WorkerProcess::start(
                &broker.url(),
                &format!("w{k}"),
                dir.path(),
            ))
        })
        .collect();
    rt.block_on(async {
        for s in &specs {
            q.submit(s, None).await.unwrap();
        }
    });
    // Wait until w1 is in the middle of a job, then SIGKILL it.
    let victim_job = rt.block_on(async {
        let t = Instant::now();
        loop {
            let rs = records(&q, &ids).await;
            if let Some(r) = rs.values().find(|r| {
                r.status == JobStatus::Running
                    && r.worker.as_deref() == Some("w1")
                    // In the second half of CogLM (the state is written at most every 0.25 s,
                    // so a later stage could already be over), a few jobs into the run.
                    && r.stage.as_deref() == Some("coglm")
                    && 2 * r.step >= r.of
                    && r.step < r.of
                    && rs.values().filter(|r| r.status == JobStatus::Done).count() >= 3
            }) {
                break r.spec.id.clone();
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "w1 never ran a job: {}",
                workers[0].as_ref().unwrap().log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let at_kill = rt.block_on(q.record(&victim_job)).unwrap().unwrap();
    let mut w1 = workers[0].take().unwrap();
    w1.child.kill().unwrap();
    w1.child.wait().unwrap();
    let done_at_kill = rt.block_on(async {
        let mut n = 0;
        for id in &ids {
            n += q.completion(id).await.unwrap().is_some() as usize;
        }
        n
    });
    // What the run looked like (`--nocapture` shows it; docs/scale-out.md quotes one).
    eprintln!(
        "SIGKILLed w1 while it ran {victim_job} (stage {} step {}/{}, delivery {}); {done_at_kill} of 30 jobs done",
        at_kill.stage.as_deref().unwrap_or("?"),
        at_kill.step,
        at_kill.of,
        at_kill.attempt
    );
    assert!(
        rt.block_on(q.completion(&victim_job)).unwrap().is_none(),
        "the killed worker's job was not finished when it died"
    );
    let logs = || {
        workers
            .iter()
            .flatten()
            .map(|w| format!("--- {}\n{}", w.name, w.log_text()))
            .collect::<String>()
    };
    rt.block_on(wait_done(&q, &ids, Duration::from_secs(400), &logs));

    rt.block_on(async {
        assert_results_exactly_once(&q, &ids).await;
        let rs = records(&q, &ids).await;
        for (id, r) in &rs {
            assert_eq!(r.status, JobStatus::Done, "{id}: {r:?}");
            assert_eq!(r.images, vec![result_name(id, 0)]);
        }
        let v = &rs[&victim_job];
        let by_worker = rs.values().fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.worker.clone().unwrap_or_default()).or_insert(0) += 1;
            m
        });
        eprintln!(
            "after: 30 of 30 done; {victim_job} finished by {} at delivery {}; jobs per worker {by_worker:?}; {} result objects",
            v.worker.as_deref().unwrap_or("?"),
            v.attempt,
            q.object_names().await.unwrap().len()
        );
        assert!(
            v.attempt >= 2,
            "the killed worker's job was delivered again: {v:?}"
        );
        assert_ne!(v.worker.as_deref(), Some("w1"), "{v:?}");
        wait_all_acknowledged(&q, &logs).await;
    });
    // Pixel for pixel what one process makes for the same prompts and seeds.
    let stored: Vec<Vec<u8>> = rt.block_on(async {
        let mut v = Vec::new();
        for id in &ids {
            v.push(pixels(&q.object(&result_name(id, 0)).await.unwrap()));
        }
        v
    });
    let reference = single_process_pixels(&specs);
    for (i, (got, want)) in stored.iter().zip(&reference).enumerate() {
        assert!(
            got == want,
            "job {i} ({}) differs from the single-process image",
            ids[i]
        );
    }
    // The records name the prompt and seed (cogview regenerate can reproduce them).
    let png = rt.block_on(q.object(&result_name(&victim_job, 0))).unwrap();
    let text = cogview::image::png_text_from_bytes(&png, "result").unwrap();
    let all: String = text.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let victim = specs.iter().find(|s| s.id == victim_job).unwrap();
    assert!(
        all.contains(&victim.prompt) && all.contains(&victim.seed.to_string()),
        "{all}"
    );
    drop(broker);
}

#[test]
fn a_batch_waits_for_a_late_worker_resumes_when_run_again_and_a_redelivered_job_is_not_stored_twice(
) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let rt = runtime();
    let q = rt.block_on(connect(&broker.url()));
    let prompts = dir.path().join("prompts.txt");
    std::fs::write(
        &prompts,
        format!(
            "# four prompts\n{}\n\n{}\n{}\n{}\n",
            PROMPTS[0], PROMPTS[1], PROMPTS[2], PROMPTS[3]
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let batch = |out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_cogview"))
            .arg("batch")
            .arg(&prompts)
            .args([
                "--nats",
                &broker.url(),
                "--seed",
                "7",
                "-q",
                "--idle-timeout",
                "120",
                "--out",
            ])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // No worker yet: the batch submits and waits.
    let first = batch(&out);
    let t = Instant::now();
    while rt.block_on(q.pending_jobs()).unwrap() < 4 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the batch did not submit its 4 prompts"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        rt.block_on(q.pending_jobs()).unwrap(),
        4,
        "nothing ran without a worker"
    );
    // A worker started late takes the waiting jobs.
    let worker = WorkerProcess::start(&broker.url(), "late", dir.path());
    let done = first.wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&done.stderr),
        worker.log_text()
    );
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "0002-a-large-blue-circle-in-the-center-7.png",
            "0004-a-small-red-square-7.png",
            "0005-a-green-triangle-on-the-left-7.png",
            "0006-a-yellow-circle-at-the-top-7.png"
        ]
    );
    // The batch's PNGs are what `cogview generate PROMPT --seed 7` writes, pixel for pixel.
    let reference = single_process_pixels(
        &(0..4)
            .map(|i| JobSpec { seed: 7, ..spec(i) })
            .collect::<Vec<_>>(),
    );
    for (f, want) in files.iter().zip(&reference) {
        assert!(pixels(&std::fs::read(out.join(f)).unwrap()) == *want, "{f}");
    }
    // Run again: nothing is submitted or run; into a new folder: collected from the store.
    let again = batch(&out).wait_with_output().unwrap();
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already have their images"));
    std::fs::remove_file(out.join(&files[1])).unwrap();
    let resumed = batch(&out).wait_with_output().unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(
        out.join(&files[1]).is_file(),
        "the missing PNG is collected again"
    );
    let ids: Vec<String> = rt.block_on(async {
        let mut ids = Vec::new();
        for n in q.object_names().await.unwrap() {
            ids.push(n.split('/').next().unwrap().to_string());
        }
        ids
    });
    assert_eq!(ids.len(), 4, "{ids:?}");
    rt.block_on(assert_results_exactly_once(&q, &ids));

    // A finished job's message delivered again (as after a worker died between storing and
    // acknowledging): detected, acknowledged, not run and not stored again.
    let before = rt.block_on(q.object_names()).unwrap();
    let record = rt.block_on(q.record(&ids[0])).unwrap().unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(q.client().clone());
        js.publish(
            q.names().subject.clone(),
            serde_json::to_vec(&record.spec).unwrap().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        let t = Instant::now();
        while q.pending_jobs().await.unwrap() > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the redelivered job was not acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(rt.block_on(q.object_names()).unwrap(), before);
    let log = worker.log_text();
    assert!(
        log.contains(&format!("job {}: delivery", ids[0])) && log.contains("already completed"),
        "{log}"
    );
    assert_eq!(
        rt.block_on(q.record(&ids[0])).unwrap().unwrap().status,
        JobStatus::Done
    );
}

#[test]
fn a_broker_killed_and_restarted_mid_run_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path());
    let rt = runtime();
    let specs: Vec<JobSpec> = (0..10)
        .map(|i| JobSpec {
            id: format!("restart_{i:02}"),
            ..spec(i)
        })
        .collect();
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    let q = rt.block_on(connect(&broker.url()));
    rt.block_on(async {
        for s in &specs {
            q.submit(s, None).await.unwrap();
        }
    });
    let worker = WorkerProcess::start(&broker.url(), "survivor", dir.path());
    // Let a few finish, note what was acknowledged, then SIGKILL the broker.
    let finished_before: Vec<(String, Vec<u8>)> = rt.block_on(async {
        let t = Instant::now();
        loop {
            let mut done = Vec::new();
            for id in &ids {
                if q.completion(id).await.unwrap().is_some() {
                    done.push(id.clone());
                }
            }
            if done.len() >= 3 {
                let mut out = Vec::new();
                for id in done {
                    let png = q.object(&result_name(&id, 0)).await.unwrap();
                    out.push((id, png));
                }
                return out;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "{}",
                worker.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    broker.kill();
    std::thread::sleep(Duration::from_secs(1));
    broker.spawn();
    // The same clients carry on once they have reconnected.
    let q = rt.block_on(connect(&broker.url()));
    rt.block_on(wait_done(&q, &ids, Duration::from_secs(300), &|| {
        format!("{}\n--- broker\n{}", worker.log_text(), broker.log_text())
    }));
    rt.block_on(async {
        for (id, png) in &finished_before {
            assert_eq!(
                &q.object(&result_name(id, 0)).await.unwrap(),
                png,
                "{id} kept as stored"
            );
        }
        assert_results_exactly_once(&q, &ids).await;
        wait_all_acknowledged(&q, &|| worker.log_text()).await;
    });
    let reference = single_process_pixels(&specs);
    for (id, want) in ids.iter().zip(&reference) {
        let got = pixels(&rt.block_on(q.object(&result_name(id, 0))).unwrap());
        assert!(got == *want, "{id}");
    }
}

#[test]
fn servers_with_queue_submit_to_the_workers_and_follow_each_others_jobs() {
    use cogview_server::client;
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let rt = runtime();
    let q = rt.block_on(connect(&broker.url()));
    let worker = WorkerProcess::start(&broker.url(), "behind-servers", dir.path());
    let url = broker.url();
    let images_a = dir.path().join("images-a");
    let images_b = dir.path().join("images-b");
    let (mut a, addr_a) = super::serve::serve(&[
        "--bind",
        "127.0.0.1:0",
        "--shutdown-grace",
        "0",
        "--queue",
        &url,
        "--image-dir",
        images_a.to_str().unwrap(),
    ]);
    let (mut b, addr_b) = super::serve::serve(&[
        "--bind",
        "127.0.0.1:0",
        "--shutdown-grace",
        "0",
        "--queue",
        &url,
        "--image-dir",
        images_b.to_str().unwrap(),
    ]);

    // The OpenAI route on server A: the image comes from the worker, as one process makes it.
    let r = client::json(
        addr_a,
        "POST",
        "/v1/images/generations",
        None,
        Some(&json!({"prompt": PROMPTS[0], "seed": 11})),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}\n{}", r.text(), worker.log_text());
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(r.json()["data"][0]["b64_json"].as_str().unwrap())
        .unwrap();
    let reference = single_process_pixels(&[JobSpec {
        seed: 11,
        ..spec(0)
    }]);
    assert!(
        pixels(&png) == reference[0],
        "the served image is the single-process one"
    );

    // An asynchronous job submitted to A, followed on B (which never saw it submitted).
    let r = client::json(
        addr_a,
        "POST",
        "/v1/jobs",
        None,
        Some(&json!({"prompt": PROMPTS[1], "seed": 12})),
    )
    .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let mut events =
        client::EventStream::open(addr_a, &format!("/v1/jobs/{id}/events"), None).unwrap();
    let mut names = Vec::new();
    while let Some((name, _)) = events.next_event().unwrap() {
        names.push(name);
    }
    assert_eq!(names.last().map(String::as_str), Some("done"), "{names:?}");
    assert!(
        names.iter().any(|n| n == "progress"),
        "progress relayed from the worker: {names:?}"
    );
    let on_b = client::json(addr_b, "GET", &format!("/v1/jobs/{id}"), None, None).unwrap();
    assert_eq!(on_b.status, 200, "{}", on_b.text());
    assert_eq!(on_b.json()["status"], "done", "{}", on_b.text());
    assert_eq!(on_b.json()["prompt"], PROMPTS[1]);
    let img = client::request(
        addr_b,
        "GET",
        &format!("/v1/jobs/{id}/images/0.png"),
        &[],
        &[],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(img.status, 200);
    assert_eq!(
        img.body,
        rt.block_on(q.object(&result_name(&id, 0))).unwrap()
    );
    let health = client::json(addr_b, "GET", "/health", None, None)
        .unwrap()
        .json();
    assert_eq!(health["queue"]["prefix"], "cogview", "{health}");

    // Cancelled on A while queued behind a long job: the worker skips it.
    let long = client::json(
        addr_a,
        "POST",
        "/v1/jobs",
        None,
        Some(&json!({"prompt": PROMPTS[2], "n": 6, "seed": 1})),
    )
    .unwrap();
    assert_eq!(long.status, 202);
    // The worker busy with it (submissions are asynchronous, so the next job could otherwise
    // reach the stream first).
    let long_id = long.json()["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    while !rt
        .block_on(q.record(&long_id))
        .unwrap()
        .is_some_and(|r| r.status == JobStatus::Running)
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{}",
            worker.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = client::json(
        addr_a,
        "POST",
        "/v1/jobs",
        None,
        Some(&json!({"prompt": PROMPTS[3], "seed": 13})),
    )
    .unwrap();
    let cancelled = r.json()["id"].as_str().unwrap().to_string();
    // Queued in NATS behind the running job.
    let t = Instant::now();
    while rt.block_on(q.record(&cancelled)).unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the job never reached the queue"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let c = client::json(
        addr_a,
        "DELETE",
        &format!("/v1/jobs/{cancelled}"),
        None,
        None,
    )
    .unwrap();
    assert_eq!(c.status, 200, "{}", c.text());
    let t = Instant::now();
    loop {
        let r = rt.block_on(q.record(&cancelled)).unwrap().unwrap();
        if r.status == JobStatus::Cancelled {
            break;
        }
        assert_ne!(r.status, JobStatus::Done, "the cancelled job ran");
        assert!(t.elapsed() < Duration::from_secs(120), "{r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(rt.block_on(q.object(&result_name(&cancelled, 0))).is_err());
    for c in [&mut a, &mut b] {
        c.kill().unwrap();
        c.wait().unwrap();
    }
}
