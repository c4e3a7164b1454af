//! The stage-1 generator: CogLM drawing a token grid from a text, one token per step with the KV
//! cache and cluster sampling, as `cogview2_text2image.py` does. Completion and captions are
//! delegated to [`super::completion`] and [`super::caption`].

use super::caption::{caption, caption_log_likelihood};
use super::completion::Completer;
use super::layout::Stage1Settings;
use super::mask::CoglmMask;
use crate::context::RunContext;
use crate::error::{Error, Result};
use crate::lm::{AutoregressiveLm, LmInput, LogitsRequest};
use crate::rng::Rng;
use crate::sampling::Sampler;
use crate::traits::GlobalGenerator;
use crate::types::{Caption, CaptionRequest, TextTokens, TokenGrid};
use std::sync::Arc;

/// CogLM as a [`GlobalGenerator`]: prefill the context, then one token per step with the KV cache,
/// each image sampled from its own seeded generator.
pub struct CoglmGenerator {
    /// The transformer.
    pub model: Arc<dyn AutoregressiveLm>,
    /// The stage-1 sampler (cluster sampling in the official recipe).
    pub sampler: Arc<dyn Sampler>,
    /// Layout, text bias and batch size.
    pub settings: Stage1Settings,
}

impl CoglmGenerator {
    /// Checks that the layout fits the model's positions and vocabulary.
    pub fn new(
        model: Arc<dyn AutoregressiveLm>,
        sampler: Arc<dyn Sampler>,
        settings: Stage1Settings,
    ) -> Result<Self> {
        let spec = model.spec();
        settings.layout.check_fits(spec.max_positions)?;
        if settings.max_batch == 0 {
            return Err(Error::invalid_input("max_batch", "must be at least 1"));
        }
        if spec.image_vocab_size == 0 || spec.image_vocab_size > spec.vocab_size {
            return Err(Error::config(
                "model",
                "image_vocab_size",
                format!(
                    "{} is not within the vocabulary of {}",
                    spec.image_vocab_size, spec.vocab_size
                ),
            ));
        }
        Ok(CoglmGenerator {
            model,
            sampler,
            settings,
        })
    }

    fn generate_batch(
        &self,
        text: &[u32],
        seeds: &[u64],
        ctx: &RunContext,
        done: usize,
        total: usize,
    ) -> Result<Vec<TokenGrid>> {
        let spec = self.model.spec();
        let layout = &self.settings.layout;
        let (context, positions) = layout.query(text, spec.start_of_image_id)?;
        let n_img = layout.image_tokens();
        let batch = seeds.len();
        let mask = CoglmMask {
            text_len: text.len(),
            text_bias: self.settings.text_bias,
        };
        let vocab = spec.image_vocab_size;
        let mut rngs: Vec<Rng> = seeds.iter().map(|&s| Rng::from_seed(s)).collect();
        let mut session = self.model.new_session(batch, context.len() + n_img)?;
        let mut out = vec![Vec::with_capacity(n_img); batch];

        let tokens: Vec<u32> = (0..batch).flat_map(|_| context.iter().copied()).collect();
        let bias = mask.bias_rows(0, context.len(), context.len());
        let mut logits = session.forward(&LmInput {
            tokens: &tokens,
            positions: &positions,
            bias: &bias,
            logits: LogitsRequest::Last { vocab },
        })?;
        for j in 0..n_img {
            ctx.check_cancelled()?;
            let next: Vec<u32> = (0..batch)
                .map(|b| self.sampler.sample(logits.row(b), &mut rngs[b]))
                .collect::<Result<_>>()?;
            for (b, &t) in next.iter().enumerate() {
                out[b].push(t);
            }
            ctx.report("coglm", done + (j + 1) * batch, total);
            if j + 1 == n_img {
                break;
            }
            let q = context.len() + j;
            logits = session.forward(&LmInput {
                tokens: &next,
                positions: &[layout.image_position(j)],
                bias: &mask.bias_rows(q, 1, q + 1),
                logits: LogitsRequest::Last { vocab },
            })?;
        }
        out.into_iter()
            .map(|ids| TokenGrid::new(layout.grid_height, layout.grid_width, ids))
            .collect()
    }
}

impl GlobalGenerator for CoglmGenerator {
    fn generate(
        &self,
        text: &TextTokens,
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>> {
        let _span =
            tracing::info_span!("coglm", images = seeds.len(), text_len = text.len()).entered();
        let spec = self.model.spec();
        crate::lm::check_vocab(&text.0, spec.vocab_size)?;
        self.settings
            .layout
            .query(&text.0, spec.start_of_image_id)?;
        let total = seeds.len() * self.settings.layout.image_tokens();
        let mut grids = Vec::with_capacity(seeds.len());
        for chunk in seeds.chunks(self.settings.max_batch) {
            grids.extend(self.generate_batch(
                &text.0,
                chunk,
                ctx,
                grids.len() * self.settings.layout.image_tokens(),
                total,
            )?);
        }
        Ok(grids)
    }

    fn complete(
        &self,
        text: &TextTokens,
        image: &TokenGrid,
        mask: &[bool],
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>> {
        Completer {
            model: self.model.as_ref(),
            sampler: self.sampler.as_ref(),
            settings: &self.settings,
        }
        .complete(text, image, mask, seeds, ctx)
    }

    fn caption_log_likelihood(
        &self,
        image: &TokenGrid,
        start: u32,
        caption: &[u32],
    ) -> Result<f64> {
        caption_log_likelihood(
            self.model.as_ref(),
            &self.settings.layout,
            &image.ids,
            start,
            caption,
        )
    }

    fn caption(
        &self,
        image: &TokenGrid,
        request: &CaptionRequest,
        seed: u64,
        ctx: &RunContext,
    ) -> Result<Caption> {
        caption(
            self.model.as_ref(),
            &self.settings.layout,
            &image.ids,
            request,
            seed,
            ctx,
        )
    }
}
