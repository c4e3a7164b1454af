//! Scoring under CogLM: the logits of a whole sequence and how well an image fits a text.

use super::layout::Stage1Layout;
use super::mask::CoglmMask;
use crate::error::{Error, Result};
use crate::lm::{AutoregressiveLm, LmInput, Logits, LogitsRequest};

/// Logits of every position of one sequence under the CogLM mask, over the first `vocab` ids:
/// `[tokens.len(), vocab]`. Used for parity checks and captions.
pub fn full_logits(
    model: &dyn AutoregressiveLm,
    tokens: &[u32],
    positions: &[u32],
    mask: CoglmMask,
    vocab: usize,
) -> Result<Logits> {
    let n = tokens.len();
    if mask.text_len > n {
        return Err(Error::invalid_input(
            "text_len",
            format!("text_len {} exceeds the {n} tokens", mask.text_len),
        ));
    }
    let mut session = model.new_session(1, n.max(1))?;
    session.forward(&LmInput {
        tokens,
        positions,
        bias: &mask.bias_rows(0, n, n),
        logits: LogitsRequest::All { vocab },
    })
}

/// Mean log-probability (natural log, per token) of the image tokens `image` given `text`, in
/// stage 1's layout (`text, <start_of_image>, image`) over the image vocabulary: how well an image
/// fits a caption under CogLM (caption → image retrieval).
pub fn image_log_likelihood(
    model: &dyn AutoregressiveLm,
    layout: &Stage1Layout,
    text: &[u32],
    image: &[u32],
    text_bias: f32,
) -> Result<f64> {
    let spec = model.spec();
    if image.is_empty() {
        return Err(Error::invalid_input("image", "no image tokens to score"));
    }
    crate::lm::check_vocab(image, spec.image_vocab_size)?;
    let (mut tokens, mut positions) = layout.query(text, spec.start_of_image_id)?;
    let t = text.len();
    tokens.extend_from_slice(&image[..image.len() - 1]);
    positions.extend((0..image.len() - 1).map(|j| layout.image_position(j)));
    let mask = CoglmMask {
        text_len: t,
        text_bias,
    };
    let logits = full_logits(model, &tokens, &positions, mask, spec.image_vocab_size)?;
    let total: f64 = image
        .iter()
        .enumerate()
        .map(|(j, &target)| log_softmax_at(logits.row(t + j), target as usize))
        .sum();
    Ok(total / image.len() as f64)
}

/// The natural-log probability of `id` under the softmax of `row`.
pub(crate) fn log_softmax_at(row: &[f32], id: usize) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let lse = row
        .iter()
        .map(|&x| ((x - max) as f64).exp())
        .sum::<f64>()
        .ln()
        + max as f64;
    row[id] as f64 - lse
}
