//! `cogview convert`: a SAT checkpoint folder → one safetensors file with its configuration inside.

use super::pipeline_args::output_file;
use cogview::checkpoint::{write_safetensors, Checkpoint, SatFolder};
use cogview::{Error, Result};
use std::collections::HashMap;
use std::path::PathBuf;

/// Convert a SAT checkpoint folder (latest, model_config.json, <iter>/mp_rank_00_model_states.pt)
/// to a safetensors file, dtypes unchanged, with model_config.json stored in its metadata.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The SAT checkpoint folder.
    folder: PathBuf,
    /// The safetensors file to write, or a folder that receives FOLDER-NAME.safetensors.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let sat = SatFolder::open(&args.folder)?;
    let config = sat.config()?;
    let ckpt = Checkpoint::open(&sat.model_file, None)?;
    let mut meta = HashMap::new();
    meta.insert(
        "model_config".to_string(),
        serde_json::to_string(&config.values).map_err(|e| Error::backend_source("", e))?,
    );
    meta.insert(
        "source".to_string(),
        format!(
            "SAT folder {} iteration {}",
            sat.dir.display(),
            sat.iteration
        ),
    );
    meta.insert("format".to_string(), "pt".to_string());
    let name = args
        .folder
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let out = output_file("--output", &args.output, &format!("{name}.safetensors"))?;
    let n = write_safetensors(&ckpt, |_| true, meta, &out)?;
    eprintln!("wrote {n} tensors to {}", out.display());
    Ok(())
}
