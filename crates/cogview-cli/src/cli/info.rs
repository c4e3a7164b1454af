//! `cogview info PATH`.

use cogview::{Error, Result};
use std::path::PathBuf;

/// Describe a model folder, checkpoint folder or file: kind, sizes, dtypes, tensor count and the
/// problems found.
#[derive(Debug, clap::Args)]
pub struct Args {
    path: PathBuf,
    /// Also read every tensor (checks each record's CRC-32 in torch files; reads all the bytes).
    #[arg(long)]
    verify: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let d = cogview::pipeline::info::describe(&args.path, args.verify)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&d).map_err(|e| Error::backend_source("", e))?
        );
    } else {
        print!("{d}");
    }
    let problems = d.all_problems();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "path",
            format!(
                "{} problem(s) found in {}",
                problems.len(),
                args.path.display()
            ),
        ))
    }
}
