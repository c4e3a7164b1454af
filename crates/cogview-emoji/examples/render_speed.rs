//! Render speed of the Fluent Emoji set: every entry at each requested size, one thread.
//!
//! ```text
//! cargo run --release -p cogview-emoji --example render_speed -- [ICONS_JSON] [SIZE...]
//! ```
//!
//! Defaults: the committed data (run from the repository root) at 64, 160 and 192 px. Prints one
//! line per size: emoji rendered, total seconds, milliseconds per emoji (the best of two passes).

use cogview_emoji::{EmojiSet, DEFAULT_ICONS_PATH};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut path = DEFAULT_ICONS_PATH.to_string();
    let mut sizes = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.parse::<u32>() {
            Ok(size) => sizes.push(size),
            Err(_) => path = arg,
        }
    }
    if sizes.is_empty() {
        sizes = vec![64, 160, 192];
    }
    let start = Instant::now();
    let set = match EmojiSet::load(&path) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "loaded {} emoji ({} icons, {} aliases; {} train, {} held out) from {path} in {:.3} s",
        set.len(),
        set.icon_count(),
        set.alias_count(),
        set.train().count(),
        set.heldout().count(),
        start.elapsed().as_secs_f64()
    );
    for size in sizes {
        let mut best = f64::INFINITY;
        for _ in 0..2 {
            let start = Instant::now();
            for entry in set.entries() {
                if let Err(e) = set.render(entry, size) {
                    eprintln!("error: {}: {e}", entry.name());
                    return ExitCode::FAILURE;
                }
            }
            best = best.min(start.elapsed().as_secs_f64());
        }
        println!(
            "{size:>4} px: {} emoji in {best:.2} s, {:.3} ms per emoji",
            set.len(),
            best * 1e3 / set.len() as f64
        );
    }
    ExitCode::SUCCESS
}
