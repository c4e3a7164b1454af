//! Progress of a run on the terminal: a bar per stage on an interactive terminal, plain log lines
//! otherwise (pipes, CI logs), nothing with `--quiet`. And Ctrl-C: the first press cancels after
//! the current step, the second ends the process at once.

use cogview::core::context::{Progress, ProgressFn};
use cogview::CancelToken;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

fn unit(stage: &str) -> &'static str {
    match stage {
        "coglm" | "caption" => "tokens",
        "rerank" => "candidates",
        "itersr" => "passes",
        _ => "images",
    }
}

fn label(stage: &str) -> &'static str {
    match stage {
        "coglm" => "stage 1 (CogLM)",
        "dsr" => "stage 2 (DSR)",
        "itersr" => "stage 3 (ItersR)",
        "decode" => "decoding",
        "caption" => "caption (CogLM)",
        "rerank" => "inverse-prompt scores",
        _ => "working",
    }
}

struct Bars {
    stage: Option<&'static str>,
    bar: Option<ProgressBar>,
    last_logged: usize,
}

/// The progress callback for a run.
pub fn reporter(quiet: bool) -> Option<ProgressFn> {
    if quiet {
        return None;
    }
    let terminal = std::io::stderr().is_terminal();
    let state = Arc::new(Mutex::new(Bars {
        stage: None,
        bar: None,
        last_logged: 0,
    }));
    Some(Arc::new(move |p: Progress| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        if s.stage != Some(p.stage) {
            if let Some(b) = s.bar.take() {
                b.finish();
            }
            s.stage = Some(p.stage);
            s.last_logged = 0;
            if terminal {
                let bar = ProgressBar::with_draw_target(
                    Some(p.total as u64),
                    ProgressDrawTarget::stderr(),
                );
                bar.set_style(
                    ProgressStyle::with_template(&format!(
                        "{{prefix:<17}} [{{bar:30}}] {{pos}}/{{len}} {} {{elapsed}} (eta {{eta}})",
                        unit(p.stage)
                    ))
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(label(p.stage));
                s.bar = Some(bar);
            }
        }
        if let Some(b) = &s.bar {
            b.set_length(p.total as u64);
            b.set_position(p.step as u64);
            if p.step == p.total {
                b.finish();
            }
        } else {
            // Plain lines: about every 10 % and at the end.
            let tenth = (p.total / 10).max(1);
            if p.step == p.total || p.step >= s.last_logged + tenth {
                s.last_logged = p.step;
                eprintln!(
                    "{}: {}/{} {}",
                    label(p.stage),
                    p.step,
                    p.total,
                    unit(p.stage)
                );
            }
        }
    }))
}

/// Installs the Ctrl-C handler for `token`.
pub fn cancel_on_ctrl_c(token: &CancelToken) {
    let token = token.clone();
    let result = ctrlc::set_handler(move || {
        if token.is_cancelled() {
            eprintln!("\nstopped");
            std::process::exit(130);
        }
        token.cancel();
        eprintln!("\ncancelling after the current step (press Ctrl-C again to stop at once)");
    });
    if let Err(e) = result {
        tracing::warn!("Ctrl-C will not cancel cleanly: {e}");
    }
}
