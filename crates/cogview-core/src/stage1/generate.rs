//! The stage-1 generator: CogLM drawing a token grid from a text, one token per step with the KV
//! cache and cluster sampling, as `cogview2_text2image.py` does. Completion and captions are
//! delegated to [`super::completion`] and [`super::caption`].

use super::caption::{caption, caption_log_likelihood};
use super::completion::Completer;
use super::layout::{Stage1Layout, Stage1Settings};
use super::mask::CoglmMask;
use crate::context::RunContext;
use crate::error::{Error, Result};
use crate::lm::{AutoregressiveLm, LmInput, LmSession, Logits, LogitsRequest};
use crate::rng::Rng;
use crate::sampling::Sampler;
use crate::traits::{GlobalGenerator, Stage1Request};
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
        if !(settings.guidance.is_finite() && settings.guidance >= 0.0) {
            return Err(Error::invalid_input(
                "guidance",
                format!(
                    "{} is not a guidance scale: give 1 for none, more to follow the text more",
                    settings.guidance
                ),
            ));
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

    /// One CogLM batch: every row its own text (all of the same length, so that the rows share
    /// positions and the attention mask) and seed; `requests[r]` is the context of row `r`'s
    /// request and `progress[r]` its (done before this batch, rows of the request in this
    /// batch, total) for progress reports. A request's rows are contiguous. The batch stops when
    /// every request in it is cancelled.
    fn generate_batch(&self, rows: &[BatchRow<'_>]) -> Result<Vec<TokenGrid>> {
        let spec = self.model.spec();
        let layout = &self.settings.layout;
        let text_len = rows[0].text.len();
        let mut contexts = Vec::with_capacity(rows.len());
        let mut positions = Vec::new();
        for r in rows {
            if r.text.len() != text_len {
                return Err(Error::invalid_input(
                    "text",
                    "the rows of one stage-1 batch must have texts of one length",
                ));
            }
            let (context, p) = layout.query(r.text, spec.start_of_image_id)?;
            contexts.push(context);
            positions = p;
        }
        let context_len = contexts[0].len();
        let n_img = layout.image_tokens();
        let batch = rows.len();
        let mask = CoglmMask {
            text_len,
            text_bias: self.settings.text_bias,
        };
        let vocab = spec.image_vocab_size;
        let mut rngs: Vec<Rng> = rows.iter().map(|r| Rng::from_seed(r.seed)).collect();
        let mut session = self.model.new_session(batch, context_len + n_img)?;
        let mut out = vec![Vec::with_capacity(n_img); batch];
        // The first row of each request in the batch reports its progress.
        let reporters: Vec<usize> = (0..batch)
            .filter(|&b| b == 0 || !std::ptr::eq(rows[b].ctx, rows[b - 1].ctx))
            .collect();

        let tokens: Vec<u32> = contexts.concat();
        let bias = mask.bias_rows(0, context_len, context_len);
        let mut logits = session.forward(&LmInput {
            tokens: &tokens,
            positions: &positions,
            bias: &bias,
            logits: LogitsRequest::Last { vocab },
        })?;
        let scale = self.settings.guidance;
        let mut unconditional = if scale != 1.0 {
            Some(Unconditional::start(
                self.model.as_ref(),
                layout,
                spec.start_of_image_id,
                batch,
                vocab,
            )?)
        } else {
            None
        };
        for j in 0..n_img {
            if reporters.iter().all(|&b| rows[b].ctx.cancel.is_cancelled()) {
                return Err(Error::Cancelled);
            }
            if let Some(u) = &unconditional {
                u.guide(&mut logits, scale);
            }
            let next: Vec<u32> = (0..batch)
                .map(|b| self.sampler.sample(logits.row(b), &mut rngs[b]))
                .collect::<Result<_>>()?;
            for (b, &t) in next.iter().enumerate() {
                out[b].push(t);
            }
            for &b in &reporters {
                let (done, in_batch, total) = rows[b].progress;
                rows[b]
                    .ctx
                    .report("coglm", done + (j + 1) * in_batch, total);
            }
            if j + 1 == n_img {
                break;
            }
            if let Some(u) = &mut unconditional {
                u.advance(&next, j)?;
            }
            let q = context_len + j;
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

    fn check_text(&self, text: &TextTokens) -> Result<()> {
        let spec = self.model.spec();
        crate::lm::check_vocab(&text.0, spec.vocab_size)?;
        self.settings
            .layout
            .query(&text.0, spec.start_of_image_id)
            .map(|_| ())
    }
}

/// The unconditional stream of classifier-free guidance: the same image tokens after
/// `<start_of_image>` alone (no text), in a session of its own, one row per batch row.
struct Unconditional<'m> {
    session: Box<dyn LmSession + 'm>,
    layout: Stage1Layout,
    logits: Logits,
    vocab: usize,
}

impl<'m> Unconditional<'m> {
    fn start(
        model: &'m dyn AutoregressiveLm,
        layout: &Stage1Layout,
        start_of_image_id: u32,
        batch: usize,
        vocab: usize,
    ) -> Result<Self> {
        let (context, positions) = layout.query(&[], start_of_image_id)?;
        let mut session = model.new_session(batch, context.len() + layout.image_tokens())?;
        let tokens: Vec<u32> = (0..batch).flat_map(|_| context.iter().copied()).collect();
        let logits = session.forward(&LmInput {
            tokens: &tokens,
            positions: &positions,
            bias: &Self::mask().bias_rows(0, context.len(), context.len()),
            logits: LogitsRequest::Last { vocab },
        })?;
        Ok(Unconditional {
            session,
            layout: *layout,
            logits,
            vocab,
        })
    }

    /// No text keys, so no text bias.
    fn mask() -> CoglmMask {
        CoglmMask {
            text_len: 0,
            text_bias: 0.0,
        }
    }

    /// `conditional ← unconditional + scale · (conditional − unconditional)`, row by row.
    fn guide(&self, conditional: &mut Logits, scale: f32) {
        for (c, &u) in conditional.data.iter_mut().zip(&self.logits.data) {
            *c = u + scale * (*c - u);
        }
    }

    /// Feeds image token `j` of every row (the tokens the guided logits chose).
    fn advance(&mut self, next: &[u32], j: usize) -> Result<()> {
        let q = self.session.cached_len();
        self.logits = self.session.forward(&LmInput {
            tokens: next,
            positions: &[self.layout.image_position(j)],
            bias: &Self::mask().bias_rows(q, 1, q + 1),
            logits: LogitsRequest::Last { vocab: self.vocab },
        })?;
        Ok(())
    }
}

/// One row of a stage-1 batch.
struct BatchRow<'a> {
    text: &'a [u32],
    seed: u64,
    ctx: &'a RunContext,
    /// The request's images done before this batch, its rows in this batch, its images in all.
    progress: (usize, usize, usize),
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
        self.check_text(text)?;
        let n_img = self.settings.layout.image_tokens();
        let total = seeds.len() * n_img;
        let mut grids = Vec::with_capacity(seeds.len());
        for chunk in seeds.chunks(self.settings.max_batch) {
            let done = grids.len() * n_img;
            let rows: Vec<BatchRow> = chunk
                .iter()
                .map(|&seed| BatchRow {
                    text: &text.0,
                    seed,
                    ctx,
                    progress: (done, chunk.len(), total),
                })
                .collect();
            grids.extend(self.generate_batch(&rows)?);
        }
        Ok(grids)
    }

    fn generate_many(&self, requests: &[Stage1Request<'_>]) -> Vec<Result<Vec<TokenGrid>>> {
        let _span = tracing::info_span!("coglm_many", requests = requests.len()).entered();
        let n_img = self.settings.layout.image_tokens();
        let mut results: Vec<Result<Vec<Option<TokenGrid>>>> = requests
            .iter()
            .map(|r| {
                self.check_text(r.text)?;
                Ok(vec![None; r.seeds.len()])
            })
            .collect();
        // Rows (request, image) of the valid requests, grouped by text length: rows of one length
        // share the positions and the attention mask, so they run as one batch.
        let mut lengths: Vec<usize> = requests
            .iter()
            .zip(&results)
            .filter(|(_, res)| res.is_ok())
            .map(|(r, _)| r.text.len())
            .collect();
        lengths.sort_unstable();
        lengths.dedup();
        let mut done = vec![0usize; requests.len()];
        for len in lengths {
            let rows: Vec<(usize, usize)> = requests
                .iter()
                .enumerate()
                .filter(|(i, r)| r.text.len() == len && results[*i].is_ok())
                .flat_map(|(i, r)| (0..r.seeds.len()).map(move |k| (i, k)))
                .collect();
            for chunk in rows.chunks(self.settings.max_batch) {
                // Requests already failed or cancelled drop out of later batches.
                let chunk: Vec<(usize, usize)> = chunk
                    .iter()
                    .copied()
                    .filter(|&(i, _)| results[i].is_ok() && !requests[i].ctx.cancel.is_cancelled())
                    .collect();
                if chunk.is_empty() {
                    continue;
                }
                let batch: Vec<BatchRow> = chunk
                    .iter()
                    .map(|&(i, k)| BatchRow {
                        text: &requests[i].text.0,
                        seed: requests[i].seeds[k],
                        ctx: requests[i].ctx,
                        progress: (
                            done[i] * n_img,
                            chunk.iter().filter(|(j, _)| *j == i).count(),
                            requests[i].seeds.len() * n_img,
                        ),
                    })
                    .collect();
                match self.generate_batch(&batch) {
                    Ok(grids) => {
                        for (&(i, k), g) in chunk.iter().zip(grids) {
                            if let Ok(v) = &mut results[i] {
                                v[k] = Some(g);
                            }
                            done[i] += 1;
                        }
                    }
                    Err(e) => {
                        let message = crate::error::with_causes(&e);
                        let cancelled = matches!(e, Error::Cancelled);
                        for &(i, _) in &chunk {
                            results[i] = Err(if cancelled {
                                Error::Cancelled
                            } else {
                                Error::backend(message.clone())
                            });
                        }
                    }
                }
            }
        }
        results
            .into_iter()
            .zip(requests)
            .map(|(res, r)| {
                let grids = res?;
                if r.ctx.cancel.is_cancelled() {
                    return Err(Error::Cancelled);
                }
                grids
                    .into_iter()
                    .map(|g| g.ok_or(Error::Cancelled))
                    .collect()
            })
            .collect()
    }

    fn with_sampler(&self, sampler: Arc<dyn Sampler>) -> Result<Arc<dyn GlobalGenerator>> {
        Ok(Arc::new(CoglmGenerator {
            model: self.model.clone(),
            sampler,
            settings: self.settings,
        }))
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
