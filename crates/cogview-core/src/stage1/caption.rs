//! Captions (CogView2's inverse prompt): the image first, then the text, in the layout of
//! `--inverse-prompt`; scoring a given caption and writing one.

use super::layout::Stage1Layout;
use super::mask::CaptionMask;
use super::score::log_softmax_at;
use crate::context::RunContext;
use crate::error::{Error, Result};
use crate::lm::{AutoregressiveLm, LmInput, LmSpec, LogitsRequest};
use crate::rng::Rng;
use crate::sampling::Sampler;
use crate::types::{Caption, CaptionRequest};

/// The inverse-prompt layout (`--inverse-prompt` of `cogview2_text2image.py`): the image at
/// positions 513.. (bidirectional among itself, seeing no text), then the start token and the
/// caption at positions 0.., causal and seeing the whole image; no text bias.
fn caption_prefix(layout: &Stage1Layout, image: &[u32], start: u32) -> (Vec<u32>, Vec<u32>) {
    let mut tokens = image.to_vec();
    tokens.push(start);
    let mut positions: Vec<u32> = (0..image.len()).map(|j| layout.image_position(j)).collect();
    positions.push(0);
    (tokens, positions)
}

fn check_caption_image(spec: &LmSpec, layout: &Stage1Layout, image: &[u32]) -> Result<()> {
    if image.len() != layout.image_tokens() {
        return Err(Error::invalid_input(
            "image",
            format!(
                "{} image tokens; CogLM reads {}x{} grids",
                image.len(),
                layout.grid_height,
                layout.grid_width
            ),
        ));
    }
    crate::lm::check_vocab(image, spec.image_vocab_size)
}

/// The official inverse-prompt score: the mean log-probability (natural log, per token, over the
/// full vocabulary) of `caption` given the stage-1 `image`, read after the `start` token
/// (`<start_of_chinese>` in CogView2's code, for every language). CogView2 computes the mean
/// negative log-likelihood with SAT's `evaluate_perplexity`; this is its negation, so higher is
/// better.
pub fn caption_log_likelihood(
    model: &dyn AutoregressiveLm,
    layout: &Stage1Layout,
    image: &[u32],
    start: u32,
    caption: &[u32],
) -> Result<f64> {
    let spec = model.spec();
    check_caption_image(&spec, layout, image)?;
    if caption.is_empty() {
        return Err(Error::invalid_input(
            "caption",
            "no caption tokens to score",
        ));
    }
    crate::lm::check_vocab(caption, spec.vocab_size)?;
    crate::lm::check_vocab(&[start], spec.vocab_size)?;
    let (mut tokens, mut positions) = caption_prefix(layout, image, start);
    tokens.extend_from_slice(&caption[..caption.len() - 1]);
    positions.extend(1..caption.len() as u32);
    let n = tokens.len();
    let mut session = model.new_session(1, n)?;
    let logits = session.forward(&LmInput {
        tokens: &tokens,
        positions: &positions,
        bias: &CaptionMask {
            image_len: image.len(),
        }
        .bias_rows(0, n, n),
        logits: LogitsRequest::All {
            vocab: spec.vocab_size,
        },
    })?;
    let m = image.len();
    let total: f64 = caption
        .iter()
        .enumerate()
        .map(|(i, &t)| log_softmax_at(logits.row(m + i), t as usize))
        .sum();
    Ok(total / caption.len() as f64)
}

/// Writes a caption for a stage-1 image grid in the inverse-prompt layout, one token at a time
/// with the KV cache.
pub fn caption(
    model: &dyn AutoregressiveLm,
    layout: &Stage1Layout,
    image: &[u32],
    request: &CaptionRequest,
    seed: u64,
    ctx: &RunContext,
) -> Result<Caption> {
    let spec = model.spec();
    check_caption_image(&spec, layout, image)?;
    let vocab = spec.vocab_size;
    let bad_range = request.allowed.is_empty() || request.allowed.end as usize > vocab;
    if bad_range {
        return Err(Error::invalid_input(
            "caption",
            format!(
                "the caption's token range {:?} is not within the {vocab}-id vocabulary",
                request.allowed
            ),
        ));
    }
    if request.max_tokens == 0 {
        return Err(Error::invalid_input("max_tokens", "must be at least 1"));
    }
    let end_ok = request.end.is_none_or(|e| (e as usize) < vocab);
    crate::lm::check_vocab(&[request.start], vocab)?;
    if !end_ok {
        return Err(Error::invalid_input(
            "caption",
            "the end token is outside the vocabulary",
        ));
    }
    let (tokens, positions) = caption_prefix(layout, image, request.start);
    let n0 = tokens.len();
    let mut session = model.new_session(1, n0 + request.max_tokens)?;
    let mut logits = session.forward(&LmInput {
        tokens: &tokens,
        positions: &positions,
        bias: &CaptionMask {
            image_len: image.len(),
        }
        .bias_rows(0, n0, n0),
        logits: LogitsRequest::Last { vocab },
    })?;
    let mut rng = Rng::from_seed(seed);
    let mut ids = Vec::new();
    let mut total = 0f64;
    let mut ended = false;
    for i in 0..request.max_tokens {
        ctx.check_cancelled()?;
        let row = logits.row(0);
        let restricted: Vec<f32> = row
            .iter()
            .enumerate()
            .map(|(id, &x)| {
                let id = id as u32;
                if request.allowed.contains(&id) || request.end == Some(id) {
                    x
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        let next = match &request.sampling {
            None => crate::sampling::argmax(&restricted) as u32,
            Some(s) => s.sample(&restricted, &mut rng)?,
        };
        total += log_softmax_at(row, next as usize);
        ctx.report("caption", i + 1, request.max_tokens);
        if request.end == Some(next) {
            ended = true;
            break;
        }
        ids.push(next);
        if i + 1 == request.max_tokens {
            break;
        }
        let q = session.cached_len();
        logits = session.forward(&LmInput {
            tokens: &[next],
            positions: &[ids.len() as u32],
            bias: &CaptionMask {
                image_len: image.len(),
            }
            .bias_rows(q, 1, q + 1),
            logits: LogitsRequest::Last { vocab },
        })?;
    }
    let count = ids.len() + usize::from(ended);
    Ok(Caption {
        ids,
        mean_log_prob: total / count.max(1) as f64,
        ended,
    })
}
