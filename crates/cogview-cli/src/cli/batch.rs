//! `cogview batch PROMPTS.txt --nats URL --out DIR`: many prompts through the NATS JetStream
//! queue, one progress bar over all of them, PNGs written as they finish; a rerun skips what is
//! done (docs/scale-out.md).

use super::pipeline_args::{prepare_output_dir, slug};
use super::queue_args::{queue_error, QueueArgs};
use cogview::{Error, Result};
use cogview_queue::{batch_job_id, JobKind, JobRecord, JobSpec, JobStatus, Queue};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Generate images for every line of a prompt file through a NATS JetStream queue served by
/// `cogview worker`s. Each prompt uses --seed (image i: seed + i), as `cogview generate` would,
/// and its PNGs are written to DIR/<line>-<prompt>-<seed>.png as they finish. Prompts whose
/// PNGs exist are skipped, and jobs the queue already finished are collected, not run again, so
/// an interrupted batch is resumed by running it again.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One prompt a line (empty lines and lines starting with # are skipped).
    prompts: PathBuf,
    #[command(flatten)]
    queue: QueueArgs,
    /// Output folder.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// The seed of every prompt (image i of a prompt uses seed + i).
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Images per prompt.
    #[arg(short = 'n', long, default_value_t = 1)]
    num_images: usize,
    /// Stop after stage 1.
    #[arg(long)]
    only_first_stage: bool,
    /// Give up waiting after this many seconds without any job finishing (0: wait forever).
    #[arg(long, default_value_t = 0.0)]
    idle_timeout: f64,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

struct Line {
    number: usize,
    spec: JobSpec,
    files: Vec<PathBuf>,
}

fn read_prompts(path: &Path) -> Result<Vec<(usize, String)>> {
    let text = cogview::core::limits::read_text(path)?;
    let prompts: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if prompts.is_empty() {
        return Err(Error::invalid_input(
            "PROMPTS",
            format!("{} has no prompts: write one a line", path.display()),
        ));
    }
    Ok(prompts)
}

pub fn run(args: Args) -> Result<()> {
    if args.num_images == 0 {
        return Err(Error::invalid_input("--num-images", "must be at least 1"));
    }
    let idle_timeout = Duration::try_from_secs_f64(args.idle_timeout).map_err(|_| {
        Error::invalid_input(
            "--idle-timeout",
            format!("{} is not a number of seconds ≥ 0", args.idle_timeout),
        )
    })?;
    let prompts = read_prompts(&args.prompts)?;
    for (n, p) in &prompts {
        cogview::core::limits::PROMPT_BYTES
            .check(p.len() as u64, &format!("line {n} of PROMPTS"))?;
    }
    prepare_output_dir(&args.out)?;
    let lines: Vec<Line> = prompts
        .into_iter()
        .map(|(number, prompt)| {
            let stem = format!("{number:04}-{}", slug(&prompt));
            let files = (0..args.num_images)
                .map(|k| {
                    args.out
                        .join(format!("{stem}-{}.png", args.seed + k as u64))
                })
                .collect();
            Line {
                number,
                spec: JobSpec {
                    id: batch_job_id(&prompt, args.num_images, args.seed, args.only_first_stage),
                    kind: JobKind::Generate,
                    prompt,
                    n: args.num_images,
                    seed: args.seed,
                    only_first_stage: args.only_first_stage,
                    rerank: None,
                    style: None,
                },
                files,
            }
        })
        .collect();
    let queue_config = args.queue.config()?;
    let rt = super::queue_args::runtime()?;
    rt.block_on(run_batch(lines, queue_config, idle_timeout, args.quiet))
}

async fn run_batch(
    lines: Vec<Line>,
    config: cogview_queue::QueueConfig,
    idle_timeout: Duration,
    quiet: bool,
) -> Result<()> {
    let total = lines.len();
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let b = indicatif::ProgressBar::new(total as u64);
        b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} prompts · {elapsed} · eta {eta} · {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    };
    let (already, todo): (Vec<Line>, Vec<Line>) = lines
        .into_iter()
        .partition(|l| l.files.iter().all(|f| f.is_file()));
    bar.inc(already.len() as u64);
    if todo.is_empty() {
        bar.finish_and_clear();
        eprintln!("all {total} prompts already have their images in the output folder");
        return Ok(());
    }
    let queue = Queue::connect(config).await.map_err(queue_error)?;
    // Jobs the queue already finished are collected; the others are submitted.
    let mut waiting: HashMap<String, Line> = HashMap::new();
    let (mut collected, mut failed, mut submitted) = (0usize, Vec::new(), 0usize);
    for line in todo {
        let id = line.spec.id.clone();
        if let Some(done) = queue.completion(&id).await.map_err(queue_error)? {
            collect(&queue, &line, &done).await?;
            collected += 1;
            bar.inc(1);
            continue;
        }
        match queue.record(&id).await.map_err(queue_error)? {
            // Still in the stream from an earlier run: wait for it rather than run it twice.
            Some(r) if matches!(r.status, JobStatus::Queued | JobStatus::Running) => {}
            _ => {
                queue.submit(&line.spec, None).await.map_err(queue_error)?;
                submitted += 1;
            }
        }
        waiting.insert(id, line);
    }
    bar.set_message(format!(
        "{submitted} submitted, {collected} collected from earlier runs"
    ));
    let mut last_finish = Instant::now();
    while !waiting.is_empty() {
        // A watch of every job's state; made again if the broker drops it (a restart).
        let mut watch = match queue.watch_records().await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("{e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        // The watch's first pass shows the current states; a periodic look at the remaining
        // jobs' completion markers covers anything a dropped watch missed.
        let mut sweep = tokio::time::interval(Duration::from_secs(5));
        loop {
            let record: Option<JobRecord> = tokio::select! {
                next = watch.next() => match next {
                    Some(Ok(r)) => Some(r),
                    Some(Err(e)) => { tracing::warn!("{e}"); None }
                    None => break,
                },
                _ = sweep.tick() => {
                    let ids: Vec<String> = waiting.keys().cloned().collect();
                    for id in ids {
                        if let Ok(Some(done)) = queue.completion(&id).await {
                            finish(&queue, &mut waiting, &done, &bar, &mut failed).await?;
                            last_finish = Instant::now();
                        }
                    }
                    if !idle_timeout.is_zero() && last_finish.elapsed() > idle_timeout {
                        bar.abandon();
                        return Err(Error::backend(format!(
                            "no job finished for {idle_timeout:?}; {} prompts are still waiting \
                             (are workers running: cogview worker --nats …?). Run the same \
                             command again to resume",
                            waiting.len()
                        )));
                    }
                    None
                }
            };
            if let Some(r) = record {
                if waiting.contains_key(r.id()) && r.status.is_terminal() {
                    finish(&queue, &mut waiting, &r, &bar, &mut failed).await?;
                    last_finish = Instant::now();
                }
            }
            if waiting.is_empty() {
                break;
            }
        }
    }
    bar.finish();
    if !failed.is_empty() {
        for (n, e) in &failed {
            eprintln!("line {n}: {e}");
        }
        return Err(Error::backend(format!(
            "{} of {total} prompts failed (above); the others' images are in the output folder",
            failed.len()
        )));
    }
    eprintln!("{total} prompts: images in the output folder");
    Ok(())
}

async fn finish(
    queue: &Queue,
    waiting: &mut HashMap<String, Line>,
    record: &JobRecord,
    bar: &indicatif::ProgressBar,
    failed: &mut Vec<(usize, String)>,
) -> Result<()> {
    let Some(line) = waiting.remove(record.id()) else {
        return Ok(());
    };
    match record.status {
        JobStatus::Done => collect(queue, &line, record).await?,
        JobStatus::Failed => failed.push((
            line.number,
            record.error.clone().unwrap_or_else(|| "failed".into()),
        )),
        _ => failed.push((line.number, "cancelled".into())),
    }
    bar.inc(1);
    Ok(())
}

/// Writes a finished job's PNGs (each written whole, then renamed into place).
async fn collect(queue: &Queue, line: &Line, record: &JobRecord) -> Result<()> {
    if record.images.len() != line.files.len() {
        return Err(Error::backend(format!(
            "job {} of line {} has {} images, {} expected",
            record.id(),
            line.number,
            record.images.len(),
            line.files.len()
        )));
    }
    for (name, path) in record.images.iter().zip(&line.files) {
        let bytes = queue.object(name).await.map_err(queue_error)?;
        cogview::core::output::write_file(path, &bytes)?;
    }
    Ok(())
}
