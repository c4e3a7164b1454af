//! A bounded load test of `cogview serve` on loopback, against sequential `cogview generate` runs
//! in the same session (docs/server.md has the figures and the command):
//!
//! ```sh
//! cargo build --release -p cogview-cli -p cogview-server --example load_test
//! target/release/examples/load_test --cogview target/release/cogview --requests 200 --concurrency 16
//! # --styles none,flat: request i asks for style i mod 2 (the baseline runs `--style` alike)
//! ```
//!
//! It starts the server as its own process, sends `--requests` OpenAI-route requests from
//! `--concurrency` client threads, and reports latency percentiles, images per second, the
//! answers (200 / 429 / other), the server's job counters (no job lost) and its resident memory
//! over the run; then the same prompts one at a time through the server, and `--baseline-runs`
//! sequential `cogview generate` processes (wall time and peak memory each).

use cogview_server::client;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROMPTS: &[&str] = &[
    "a large blue circle in the center",
    "a small red square at the top",
    "a green triangle on the left",
    "a large yellow circle at the bottom",
    "a purple square on the right",
    "a small orange triangle in the center",
];

struct Args {
    cogview: String,
    requests: usize,
    concurrency: usize,
    sequential: usize,
    baseline_runs: usize,
    queue_size: usize,
    batch_size: usize,
    only_first_stage: bool,
    /// Request `i` asks for style `styles[i % len]` (empty: the server's own).
    styles: Vec<String>,
}

fn parse() -> Args {
    let mut a = Args {
        cogview: "target/release/cogview".into(),
        requests: 200,
        concurrency: 16,
        sequential: 20,
        baseline_runs: 20,
        queue_size: 64,
        batch_size: 8,
        only_first_stage: false,
        styles: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--cogview" => a.cogview = value(),
            "--requests" => a.requests = value().parse().unwrap(),
            "--concurrency" => a.concurrency = value().parse().unwrap(),
            "--sequential" => a.sequential = value().parse().unwrap(),
            "--baseline-runs" => a.baseline_runs = value().parse().unwrap(),
            "--queue-size" => a.queue_size = value().parse().unwrap(),
            "--batch-size" => a.batch_size = value().parse().unwrap(),
            "--only-first-stage" => a.only_first_stage = true,
            "--styles" => a.styles = value().split(',').map(str::to_string).collect(),
            f => panic!("unknown flag {f}"),
        }
    }
    a
}

/// (current, peak) resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Phase {
    latencies: Vec<f64>,
    ok: usize,
    rejected: usize,
    other: usize,
    wall: f64,
    images: usize,
}

fn run_phase(addr: SocketAddr, requests: usize, concurrency: usize, a: &Args, seed0: u64) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = next.clone();
            let results = results.clone();
            let only_first = a.only_first_stage;
            let styles = a.styles.clone();
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= requests {
                    break;
                }
                let mut body = json!({
                    "prompt": PROMPTS[i % PROMPTS.len()],
                    "seed": seed0 + i as u64,
                    "only_first_stage": only_first,
                });
                if !styles.is_empty() {
                    body["style"] = styles[i % styles.len()].clone().into();
                }
                let t = Instant::now();
                let r = client::json(addr, "POST", "/v1/images/generations", None, Some(&body));
                let dt = t.elapsed().as_secs_f64();
                let status = match r {
                    Ok(r) => {
                        if r.status == 200 {
                            let n = r.json()["data"].as_array().map_or(0, |d| d.len());
                            assert_eq!(n, 1, "one image per request");
                        }
                        r.status
                    }
                    Err(_) => 0,
                };
                results.lock().unwrap().push((status, dt));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    let results = results.lock().unwrap();
    let mut latencies: Vec<f64> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, d)| *d)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let ok = latencies.len();
    Phase {
        ok,
        rejected: results.iter().filter(|(s, _)| *s == 429).count(),
        other: results
            .iter()
            .filter(|(s, _)| *s != 200 && *s != 429)
            .count(),
        latencies,
        wall,
        images: ok,
    }
}

fn report(name: &str, p: &Phase) {
    println!(
        "| {name} | {} | {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.1} | {:.2} |",
        p.ok + p.rejected + p.other,
        p.ok,
        p.rejected,
        p.other,
        percentile(&p.latencies, 0.5),
        percentile(&p.latencies, 0.95),
        p.latencies.last().copied().unwrap_or(f64::NAN),
        p.wall,
        p.images as f64 / p.wall,
    );
}

fn main() {
    let a = parse();
    let images = tempfile::tempdir().unwrap();
    let mut server = Command::new(&a.cogview)
        .args(["serve", "--bind", "127.0.0.1:0", "--queue-size"])
        .arg(a.queue_size.to_string())
        .arg("--batch-size")
        .arg(a.batch_size.to_string())
        .arg("--image-dir")
        .arg(images.path().join("images"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the cogview binary (--cogview)");
    let pid = server.id();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("the server's address").unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let (rss_loaded, _) = rss_mib(pid).unwrap();

    // Warm-up: one request (first-use allocations).
    let warm = run_phase(addr, 1, 1, &a, 1_000_000);
    assert_eq!(warm.ok, 1);
    let (rss_warm, _) = rss_mib(pid).unwrap();

    // Resident memory sampled every 100 ms during the concurrent phase.
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let samples = samples.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                if let Some((rss, _)) = rss_mib(pid) {
                    samples
                        .lock()
                        .unwrap()
                        .push((t.elapsed().as_secs_f64(), rss));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let concurrent = run_phase(addr, a.requests, a.concurrency, &a, 0);
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    let health = client::json(addr, "GET", "/health", None, None)
        .unwrap()
        .json();
    let sequential = run_phase(addr, a.sequential, 1, &a, 0);
    let (_, server_peak) = rss_mib(pid).unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = server.wait().unwrap();

    // Sequential `cogview generate` processes, one image each.
    let out = tempfile::tempdir().unwrap();
    let mut cli_times = Vec::new();
    let mut cli_peak: f64 = 0.0;
    for i in 0..a.baseline_runs {
        let t = Instant::now();
        let mut cmd = Command::new(&a.cogview);
        cmd.args(["generate", PROMPTS[i % PROMPTS.len()], "-q", "--seed"])
            .arg(i.to_string())
            .arg("--out")
            .arg(out.path());
        if a.only_first_stage {
            cmd.arg("--only-first-stage");
        }
        if !a.styles.is_empty() {
            cmd.args(["--style", &a.styles[i % a.styles.len()]]);
        }
        let mut child = cmd.stdout(Stdio::null()).spawn().unwrap();
        let cpid = child.id();
        let mut peak: f64 = 0.0;
        loop {
            if let Some((_, hwm)) = rss_mib(cpid) {
                peak = peak.max(hwm);
            }
            if let Some(s) = child.try_wait().unwrap() {
                assert!(s.success());
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        cli_times.push(t.elapsed().as_secs_f64());
        cli_peak = cli_peak.max(peak);
    }
    let cli_total: f64 = cli_times.iter().sum();
    cli_times.sort_by(f64::total_cmp);

    println!(
        "load test: {} requests, concurrency {}, batch size {}, queue {}, {}",
        a.requests,
        a.concurrency,
        a.batch_size,
        a.queue_size,
        if a.only_first_stage {
            "first stage only"
        } else {
            "all stages"
        }
    );
    if !a.styles.is_empty() {
        println!("styles, request by request: {}", a.styles.join(", "));
    }
    println!();
    println!(
        "| phase | requests | 200 | 429 | other | p50 s | p95 s | max s | wall s | images/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    report(
        &format!("server, {} concurrent", a.concurrency),
        &concurrent,
    );
    report("server, one at a time", &sequential);
    println!(
        "| `cogview generate` × {} (sequential processes) | {} | {} | – | – | {:.3} | {:.3} | {:.3} | {:.1} | {:.2} |",
        a.baseline_runs,
        a.baseline_runs,
        a.baseline_runs,
        percentile(&cli_times, 0.5),
        percentile(&cli_times, 0.95),
        cli_times.last().copied().unwrap_or(f64::NAN),
        cli_total,
        a.baseline_runs as f64 / cli_total
    );
    println!();
    let h = |k: &str| health[k].as_u64().unwrap_or(0);
    let lost = h("submitted") - h("done") - h("failed") - h("cancelled");
    println!(
        "server jobs after the concurrent phase: submitted {}, done {}, failed {}, cancelled {}, rejected (429) {}; lost {lost}; stage-1 batches {} for {} jobs (largest {})",
        h("submitted"), h("done"), h("failed"), h("cancelled"), h("rejected"), h("batches"), h("batched_jobs"), h("largest_batch")
    );
    let samples = samples.lock().unwrap();
    let quart = |q: f64| {
        let i = ((samples.len().max(1) - 1) as f64 * q) as usize;
        samples.get(i).map_or(f64::NAN, |s| s.1)
    };
    println!(
        "server RSS MiB: loaded {rss_loaded:.0}, after warm-up {rss_warm:.0}; during the run at 0/25/50/75/100 %: {:.0} / {:.0} / {:.0} / {:.0} / {:.0}; peak (VmHWM) {server_peak:.0}",
        quart(0.0), quart(0.25), quart(0.5), quart(0.75), quart(1.0)
    );
    println!("`cogview generate` peak RSS MiB (max over the runs): {cli_peak:.0}");
    println!("server exit after SIGTERM: {exit}");
    assert_eq!(
        concurrent.other, 0,
        "every request answered with 200 or 429"
    );
    assert_eq!(lost, 0, "no job lost");
    assert_eq!(
        h("done") as usize,
        concurrent.ok + 1,
        "every 200 is a done job"
    );
}
