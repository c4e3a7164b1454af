//! The `cogview` command.

mod cli;

use clap::Parser;

/// Keeps large buffers in the heap instead of fresh `mmap`s. glibc maps every allocation above
/// its threshold (at most 32 MiB) anew and unmaps it on free, so each activation tensor of the
/// image and super-resolution models would be page-faulted and zeroed by the kernel again on
/// every layer; reusing heap memory avoids that.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only changes glibc's allocation thresholds; it is called once, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// After a stage's weights are dropped (low-memory mode), give the freed heap back to the system:
/// with the thresholds above glibc would otherwise keep it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() {}

fn main() {
    tune_allocator();
    cogview::pipeline::set_memory_release_hook(return_freed_memory);
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COGVIEW_LOG").unwrap_or_else(|_| {
                // The commands print the vocabulary warning themselves, as one plain line.
                format!("warn,{}=off", cogview::pipeline::VOCABULARY_WARNING_TARGET).into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = cli::run(args) {
        if matches!(e, cogview::Error::Cancelled) {
            eprintln!("cancelled: no images were written");
            std::process::exit(130);
        }
        let message = e.to_string();
        eprintln!("error: {message}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                eprintln!("  caused by: {text}");
            }
            source = s.source();
        }
        std::process::exit(1);
    }
}
