//! `cogview logits`: full-vocabulary logits of every position, for parity work and debugging.

use super::backend_args::BackendArgs;
use cogview::candle::CoglmModel;
use cogview::core::lm::AutoregressiveLm;
use cogview::core::stage1::{full_logits, CoglmMask};
use cogview::{Error, Result};
use serde::Deserialize;
use std::path::PathBuf;

/// Print logits as JSON: for CogLM, the full-vocabulary logits of every position; for DSR and
/// ItersR (input with a "kind"), the image-vocabulary logits of every high-resolution cell.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A SAT checkpoint folder (coglm, cogview2-dsr, cogview2-itersr) or a safetensors file
    /// written by `cogview convert`.
    #[arg(long)]
    model: PathBuf,
    /// CogLM: {"tokens": [...], "positions": [...], "text_len": n, "text_bias": 1.4}.
    /// DSR: {"kind": "dsr", "text": [...], "low_res": [h·w ids], "placeholder": id, "image_vocab": n}.
    /// ItersR: {"kind": "itersr", "text": [...], "tokens": [H·W ids], "image_vocab": n}.
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

/// The input of `cogview logits` for a super-resolution model.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SrLogitsInput {
    Dsr {
        text: Vec<u32>,
        low_res: Vec<u32>,
        placeholder: u32,
        image_vocab: usize,
        /// Informational fields of the parity fixtures are accepted and ignored.
        #[serde(flatten)]
        _rest: serde_json::Map<String, serde_json::Value>,
    },
    Itersr {
        text: Vec<u32>,
        tokens: Vec<u32>,
        image_vocab: usize,
        #[serde(flatten)]
        _rest: serde_json::Map<String, serde_json::Value>,
    },
}

fn run_sr(args: &Args, value: serde_json::Value) -> Result<()> {
    let what = args.input.display().to_string();
    let input: SrLogitsInput = serde_json::from_value(value)
        .map_err(|e| Error::invalid_input(&what, format!("malformed input JSON: {e}")))?;
    let model = cogview::candle::SrModel::load(&args.model, args.backend.load_options())?;
    let have = model.config().backbone.image_vocab_size;
    let image_vocab = match &input {
        SrLogitsInput::Dsr { image_vocab, .. } | SrLogitsInput::Itersr { image_vocab, .. } => {
            *image_vocab
        }
    };
    if image_vocab != have {
        return Err(Error::invalid_input(
            format!("{what}: image_vocab"),
            format!("{image_vocab} does not match the model's image vocabulary of {have}"),
        ));
    }
    let logits = match &input {
        SrLogitsInput::Dsr {
            text,
            low_res,
            placeholder,
            ..
        } => model.dsr_logits(text, low_res, *placeholder)?,
        SrLogitsInput::Itersr { text, tokens, .. } => model.itersr_logits(text, tokens)?,
    };
    let rows: Vec<Vec<f32>> = logits.to_vec2().map_err(|e| Error::backend_source("", e))?;
    println!("{}", serde_json::json!({ "logits": rows }));
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    let text = std::fs::read_to_string(&args.input).map_err(|e| Error::io(&args.input, e))?;
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
        if value.get("kind").is_some() {
            return run_sr(&args, value);
        }
    }
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
