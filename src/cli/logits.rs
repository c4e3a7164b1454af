//! `cogview logits`: full-vocabulary logits of every position, for parity work and debugging.

use super::BackendArgs;
use cogview::candle::CoglmModel;
use cogview::core::coglm::{full_logits, CoglmMask};
use cogview::core::lm::AutoregressiveLm;
use cogview::{Error, Result};
use serde::Deserialize;
use std::path::PathBuf;

/// Print the full-vocabulary logits of every position of a CogLM input as JSON.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A SAT checkpoint folder or a safetensors file written by `cogview convert`.
    #[arg(long)]
    model: PathBuf,
    /// JSON: {"tokens": [...], "positions": [...], "text_len": n, "text_bias": 1.4}.
    #[arg(long)]
    input: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
}

/// The input of `cogview logits`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogitsInput {
    pub tokens: Vec<u32>,
    pub positions: Vec<u32>,
    pub text_len: usize,
    #[serde(default)]
    pub text_bias: f32,
}

impl LogitsInput {
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let input: LogitsInput = serde_json::from_str(&text).map_err(|e| {
            Error::invalid_input(
                path.display().to_string(),
                format!("malformed input JSON: {e}"),
            )
        })?;
        let what = path.display().to_string();
        if input.tokens.is_empty() {
            return Err(Error::invalid_input(
                format!("{what}: tokens"),
                "no tokens given",
            ));
        }
        if input.positions.len() != input.tokens.len() {
            return Err(Error::invalid_input(
                format!("{what}: positions"),
                format!(
                    "{} positions for {} tokens; give one position per token",
                    input.positions.len(),
                    input.tokens.len()
                ),
            ));
        }
        if input.text_len > input.tokens.len() {
            return Err(Error::invalid_input(
                format!("{what}: text_len"),
                format!(
                    "text_len {} exceeds the {} tokens",
                    input.text_len,
                    input.tokens.len()
                ),
            ));
        }
        if !input.text_bias.is_finite() {
            return Err(Error::invalid_input(
                format!("{what}: text_bias"),
                "must be a finite number",
            ));
        }
        Ok(input)
    }
}

pub fn run(args: Args) -> Result<()> {
    let input = LogitsInput::read(&args.input)?;
    let model = CoglmModel::load(&args.model, args.backend.load_options())?;
    let vocab = model.spec().vocab_size;
    let mask = CoglmMask {
        text_len: input.text_len,
        text_bias: input.text_bias,
    };
    let logits = full_logits(&model, &input.tokens, &input.positions, mask, vocab)?;
    let rows: Vec<&[f32]> = logits.data.chunks(vocab).collect();
    let out = serde_json::json!({ "logits": rows });
    println!("{out}");
    Ok(())
}
