//! Text-guided completion (CogView2's `BaseCompletion`, spec §8): the sequence plan
//! ([`CompletionPlan`]) and the loop that fills the masked cells of a stage-1 grid with the KV
//! cache, driven by [`super::CoglmGenerator`]'s `complete`.

use super::layout::Stage1Settings;
use super::mask::CompletionMask;
use crate::context::RunContext;
use crate::error::{Error, Result};
use crate::lm::{AutoregressiveLm, LmInput, LogitsRequest};
use crate::rng::Rng;
use crate::sampling::Sampler;
use crate::types::{TextTokens, TokenGrid};

/// Where each stage-1 cell goes in the completion sequence (`BaseCompletion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionPlan {
    /// Cells given as bidirectional context, in raster order.
    pub context: Vec<usize>,
    /// The generation segment in raster order: `(cell, given)`; a given cell is a block starter
    /// (the unmasked cell directly left of a masked run, fed without sampling), the others are
    /// generated.
    pub generation: Vec<(usize, bool)>,
}

impl CompletionPlan {
    /// The plan for a `height × width` cell mask (`true` = regenerate).
    pub fn new(mask: &[bool], height: usize, width: usize) -> Result<Self> {
        if mask.len() != height * width {
            return Err(Error::invalid_input(
                "mask",
                format!(
                    "{} mask cells for a {height}x{width} grid ({} needed)",
                    mask.len(),
                    height * width
                ),
            ));
        }
        let mut plan = CompletionPlan {
            context: Vec::new(),
            generation: Vec::new(),
        };
        for i in 0..height {
            for j in 0..width {
                let c = i * width + j;
                if mask[c] {
                    plan.generation.push((c, false));
                } else if j + 1 < width && mask[c + 1] {
                    plan.generation.push((c, true));
                } else {
                    plan.context.push(c);
                }
            }
        }
        Ok(plan)
    }

    /// Cells to generate.
    pub fn masked(&self) -> usize {
        self.generation.iter().filter(|(_, given)| !given).count()
    }
}

/// A stage-1 model, sampler and settings, borrowed for one completion call.
pub(crate) struct Completer<'a> {
    pub model: &'a dyn AutoregressiveLm,
    pub sampler: &'a dyn Sampler,
    pub settings: &'a Stage1Settings,
}

impl Completer<'_> {
    /// Regenerates the cells of `mask` (row-major, `true` = regenerate) of the stage-1 grid
    /// `image` given `text`, one grid per seed, in batches of `settings.max_batch`.
    pub fn complete(
        &self,
        text: &TextTokens,
        image: &TokenGrid,
        mask: &[bool],
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>> {
        let layout = &self.settings.layout;
        let _span = tracing::info_span!("completion", images = seeds.len()).entered();
        if image.height != layout.grid_height || image.width != layout.grid_width {
            return Err(Error::invalid_input(
                "grid",
                format!(
                    "CogLM completes {}x{} grids, not {}x{}",
                    layout.grid_height, layout.grid_width, image.height, image.width
                ),
            ));
        }
        let spec = self.model.spec();
        crate::lm::check_vocab(&text.0, spec.vocab_size)?;
        crate::lm::check_vocab(&image.ids, spec.image_vocab_size)?;
        layout.query(&text.0, spec.start_of_image_id)?;
        let plan = CompletionPlan::new(mask, image.height, image.width)?;
        if plan.masked() == 0 {
            return Ok(vec![image.clone(); seeds.len()]);
        }
        let total = seeds.len() * plan.masked();
        let mut grids = Vec::with_capacity(seeds.len());
        for chunk in seeds.chunks(self.settings.max_batch) {
            let done = grids.len() * plan.masked();
            grids.extend(self.complete_batch(&text.0, image, &plan, chunk, ctx, (done, total))?);
        }
        Ok(grids)
    }

    /// Text-guided completion of one stage-1 grid (`BaseCompletion`, spec §8): the cells of
    /// `mask` are generated in raster order given the text, the context cells (bidirectional)
    /// and the block starters, with the KV cache and the stage-1 sampler; other cells keep their
    /// tokens. One grid per seed; a mask with no cell returns the input for every seed.
    fn complete_batch(
        &self,
        text: &[u32],
        image: &TokenGrid,
        plan: &CompletionPlan,
        seeds: &[u64],
        ctx: &RunContext,
        (done, total): (usize, usize),
    ) -> Result<Vec<TokenGrid>> {
        let spec = self.model.spec();
        let layout = &self.settings.layout;
        let (mut prefix, mut positions) = layout.query(text, spec.start_of_image_id)?;
        for &c in &plan.context {
            prefix.push(image.ids[c]);
            positions.push(layout.image_position(c));
        }
        let mask = CompletionMask {
            text_len: text.len(),
            context_end: prefix.len(),
            text_bias: self.settings.text_bias,
        };
        let batch = seeds.len();
        let vocab = spec.image_vocab_size;
        let mut rngs: Vec<Rng> = seeds.iter().map(|&s| Rng::from_seed(s)).collect();
        let capacity = prefix.len() + plan.generation.len();
        let mut session = self.model.new_session(batch, capacity)?;
        let tokens: Vec<u32> = (0..batch).flat_map(|_| prefix.iter().copied()).collect();
        let mut logits = session.forward(&LmInput {
            tokens: &tokens,
            positions: &positions,
            bias: &mask.bias_rows(0, prefix.len(), prefix.len()),
            logits: LogitsRequest::Last { vocab },
        })?;
        let mut out: Vec<Vec<u32>> = vec![image.ids.clone(); batch];
        // Tokens appended but not yet run: `[batch][n]` and their positions.
        let mut pending: Vec<Vec<u32>> = vec![Vec::new(); batch];
        let mut pending_pos: Vec<u32> = Vec::new();
        let mut generated = 0;
        for &(cell, given) in &plan.generation {
            if given {
                for p in pending.iter_mut() {
                    p.push(image.ids[cell]);
                }
                pending_pos.push(layout.image_position(cell));
                continue;
            }
            ctx.check_cancelled()?;
            if !pending_pos.is_empty() {
                let q = session.cached_len();
                let n = pending_pos.len();
                let flat: Vec<u32> = pending.iter().flatten().copied().collect();
                logits = session.forward(&LmInput {
                    tokens: &flat,
                    positions: &pending_pos,
                    bias: &mask.bias_rows(q, n, q + n),
                    logits: LogitsRequest::Last { vocab },
                })?;
                pending.iter_mut().for_each(Vec::clear);
                pending_pos.clear();
            }
            for b in 0..batch {
                let t = self.sampler.sample(logits.row(b), &mut rngs[b])?;
                out[b][cell] = t;
                pending[b].push(t);
            }
            pending_pos.push(layout.image_position(cell));
            generated += 1;
            ctx.report("coglm", done + generated * batch, total);
        }
        out.into_iter()
            .map(|ids| TokenGrid::new(image.height, image.width, ids))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_puts_block_starters_before_each_masked_run() {
        // 3x4 grid, masked: (0,1) (0,2), (1,0), (2,3).
        let mut mask = vec![false; 12];
        for c in [1, 2, 4, 11] {
            mask[c] = true;
        }
        let p = CompletionPlan::new(&mask, 3, 4).unwrap();
        // Cell 0 starts the run in row 0; row 1's run starts at column 0 (no starter); cell 10
        // starts the run at (2,3).
        assert_eq!(p.context, vec![3, 5, 6, 7, 8, 9]);
        assert_eq!(
            p.generation,
            vec![
                (0, true),
                (1, false),
                (2, false),
                (4, false),
                (10, true),
                (11, false)
            ]
        );
        assert_eq!(p.masked(), 4);
        assert!(CompletionPlan::new(&mask, 4, 4).is_err());
    }
}
