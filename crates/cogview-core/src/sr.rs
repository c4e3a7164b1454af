//! Stages 2-3 as CogView2 runs them: DSR predicts every high-resolution cell in one pass and each
//! cell is drawn with cluster sampling; then ItersR re-masks and re-samples cells in the LoPAR
//! order (top-k per iteration). The core assembles each pass's input ([`SrInput`]: the padded
//! text, the positions, the bias, the local windows); backends only run the network on it
//! ([`GridPredictor`]). The sampling, the schedule and the masks live here.

mod input;

pub use input::{SrExtra, SrInput, SrKind, SrSpec, LOW_RES_FIRST_POSITION};

use crate::context::RunContext;
use crate::error::{Error, Result};
use crate::lm::Logits;
use crate::lopar::Lopar;
use crate::rng::Rng;
use crate::sampling::{Sampler, TopKSampler};
use crate::traits::LocalSuperResolver;
use crate::types::{TextTokens, TokenGrid};
use std::sync::Arc;

/// A DSR or ItersR model: predicts, for every cell of its high-resolution grid, logits over the
/// image vocabulary. The core assembles the input from the model's [`SrSpec`]
/// ([`SrInput::new`], or [`predict_grid`] for both steps).
pub trait GridPredictor: Send + Sync {
    /// What the model is, for assembling its input. May load the model (a lazily loaded stage),
    /// hence the `Result`.
    fn spec(&self) -> Result<SrSpec>;

    /// Runs the network on an assembled input (built for this model's [`SrSpec`]; backends check
    /// it with [`SrInput::check`] when it comes from elsewhere). Returns `[high², image_vocab]`.
    fn predict(&self, input: &SrInput) -> Result<Logits>;

    /// Drops the weights if the predictor can load them again on its next call (a pipeline in
    /// low-memory mode); a predictor that owns its weights for good ignores this.
    fn release(&self) {}
}

/// Assembles the input of `model` from the text and a grid and runs it: DSR from the
/// low-resolution grid (placeholder `<start_of_image>`), ItersR from the current high-resolution
/// grid with the cells to re-sample set to the mask id.
pub fn predict_grid(model: &dyn GridPredictor, text: &[u32], grid: &TokenGrid) -> Result<Logits> {
    let spec = model.spec()?;
    model.predict(&SrInput::new(&spec, text, grid)?)
}

/// Seeds of the stages of one image, derived from the image's seed so that each stage has its
/// own stream (stage 1 uses the seed itself).
pub fn stage_seed(seed: u64, stage: u64) -> u64 {
    seed ^ stage.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The stage numbers [`stage_seed`] mixes in for DSR and ItersR.
pub const DSR_STAGE: u64 = 2;
/// See [`DSR_STAGE`].
pub const ITERSR_STAGE: u64 = 3;

/// DSR + ItersR with the official recipe. Cloning shares the models.
#[derive(Clone)]
pub struct SuperResolution {
    /// Stage 2: 20×20 → 60×60 in one pass.
    pub dsr: Arc<dyn GridPredictor>,
    /// Stage 3: the LoPAR re-sampling passes over 60×60.
    pub itersr: Arc<dyn GridPredictor>,
    /// DSR's per-cell sampler (official: cluster sampling, temperature 1, top 100 clusters, inner 0.89).
    pub dsr_sampler: Arc<dyn Sampler>,
    /// ItersR's re-masking table (official: 6 passes).
    pub lopar: Lopar,
    /// ItersR's temperature (official 1.0).
    pub itersr_temperature: f32,
    /// The id ItersR's masked cells hold (`<start_of_image>`, 150000 officially).
    pub mask_id: u32,
    /// Side of the high-resolution grid (official 60).
    pub high_side: usize,
}

fn sample_rows(
    logits: &Logits,
    cells: impl Iterator<Item = usize>,
    sampler: &dyn Sampler,
    rng: &mut Rng,
    out: &mut [u32],
) -> Result<()> {
    for c in cells {
        out[c] = sampler.sample(logits.row(c), rng)?;
    }
    Ok(())
}

impl SuperResolution {
    /// The official recipe: DSR cluster sampling (temperature 1, top 100 clusters, inner 0.89)
    /// with `labels`, ItersR temperature 1 with the official LoPAR table and top-k, mask id
    /// `<start_of_image>`, a 60×60 grid.
    pub fn official(
        dsr: Arc<dyn GridPredictor>,
        itersr: Arc<dyn GridPredictor>,
        labels: Arc<crate::sampling::ClusterLabels>,
        start_of_image_id: u32,
    ) -> Self {
        SuperResolution {
            dsr,
            itersr,
            dsr_sampler: Arc::new(crate::sampling::ClusterSampler {
                labels,
                temperature: 1.0,
                top_k_clusters: 100,
                inner_temperature: 0.89,
            }),
            lopar: Lopar::default(),
            itersr_temperature: 1.0,
            mask_id: start_of_image_id,
            high_side: 60,
        }
    }

    fn check_logits(&self, logits: &Logits, what: &str) -> Result<()> {
        if logits.rows != self.high_side * self.high_side {
            return Err(Error::backend(format!(
                "{what} returned {} cells for a {}x{} grid",
                logits.rows, self.high_side, self.high_side
            )));
        }
        Ok(())
    }

    /// DSR: the high-resolution grid of one image.
    pub fn direct(&self, text: &[u32], low_res: &TokenGrid, rng: &mut Rng) -> Result<TokenGrid> {
        let _span = tracing::info_span!("dsr").entered();
        let logits = predict_grid(self.dsr.as_ref(), text, low_res)?;
        self.check_logits(&logits, "DSR")?;
        let mut ids = vec![0u32; logits.rows];
        sample_rows(
            &logits,
            0..logits.rows,
            self.dsr_sampler.as_ref(),
            rng,
            &mut ids,
        )?;
        TokenGrid::new(self.high_side, self.high_side, ids)
    }

    /// ItersR: refines `grid` in the LoPAR order. With `input_mask`, only the cells it marks are
    /// ever re-sampled (editing); all others keep their tokens.
    pub fn refine(
        &self,
        text: &[u32],
        grid: &TokenGrid,
        input_mask: Option<&[bool]>,
        rng: &mut Rng,
        ctx: &RunContext,
    ) -> Result<TokenGrid> {
        let _span = tracing::info_span!("itersr").entered();
        self.lopar.validate()?;
        let (h, w) = (grid.height, grid.width);
        if h != self.high_side || w != self.high_side {
            return Err(Error::invalid_input(
                "grid",
                format!("ItersR refines {0}x{0} grids, not {h}x{w}", self.high_side),
            ));
        }
        let mut ids = grid.ids.clone();
        let iters = self.lopar.iterations();
        for k in 1..=iters {
            ctx.check_cancelled()?;
            let mask = self.lopar.mask(k, h, w, input_mask)?;
            if !mask.iter().any(|m| *m) {
                ctx.report("itersr", k, iters);
                continue;
            }
            let masked = TokenGrid::new(
                h,
                w,
                ids.iter()
                    .zip(&mask)
                    .map(|(&t, &m)| if m { self.mask_id } else { t })
                    .collect(),
            )?;
            let logits = predict_grid(self.itersr.as_ref(), text, &masked)?;
            self.check_logits(&logits, "ItersR")?;
            let sampler = TopKSampler {
                temperature: self.itersr_temperature,
                top_k: self.lopar.top_k[k - 1],
            };
            // Only masked cells take a new token: a <start_of_image> id inside the text or the grid
            // is never mistaken for a mask (the official code tests `tokens == 150000`).
            sample_rows(
                &logits,
                (0..h * w).filter(|&c| mask[c]),
                &sampler,
                rng,
                &mut ids,
            )?;
            ctx.report("itersr", k, iters);
        }
        TokenGrid::new(h, w, ids)
    }
}

fn check_seeds(low_res: &[TokenGrid], seeds: &[u64]) -> Result<()> {
    if low_res.len() != seeds.len() {
        return Err(Error::invalid_input(
            "seeds",
            format!("{} seeds for {} grids", seeds.len(), low_res.len()),
        ));
    }
    Ok(())
}

/// `ctx` with its progress shifted by `done` steps of `total` (one image of several).
fn offset_progress(ctx: &RunContext, done: usize, total: usize) -> RunContext {
    RunContext {
        progress: ctx.progress.clone().map(|p| {
            std::sync::Arc::new(move |pr: crate::context::Progress| {
                p(crate::context::Progress {
                    stage: pr.stage,
                    step: done + pr.step,
                    total,
                })
            }) as crate::context::ProgressFn
        }),
        ..ctx.clone()
    }
}

impl LocalSuperResolver for SuperResolution {
    /// Runs DSR over every image, then ItersR over every image, releasing each model's weights
    /// after its pass over the batch (see [`GridPredictor::release`]), so a low-memory pipeline
    /// holds one model at a time. Each image's stages draw from their own seeded streams, so the
    /// order does not change the result.
    fn super_resolve(
        &self,
        text: &TextTokens,
        low_res: &[TokenGrid],
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>> {
        check_seeds(low_res, seeds)?;
        // Every image is processed (the official code drops images beyond a multiple of 4).
        let mut high = Vec::with_capacity(low_res.len());
        for (i, (g, &seed)) in low_res.iter().zip(seeds).enumerate() {
            ctx.check_cancelled()?;
            let mut rng = Rng::from_seed(stage_seed(seed, DSR_STAGE));
            high.push(self.direct(&text.0, g, &mut rng)?);
            ctx.report("dsr", i + 1, low_res.len());
        }
        self.dsr.release();
        let iters = self.lopar.iterations();
        let total = iters * low_res.len();
        let mut out = Vec::with_capacity(low_res.len());
        for (i, (g, &seed)) in high.iter().zip(seeds).enumerate() {
            let mut rng = Rng::from_seed(stage_seed(seed, ITERSR_STAGE));
            let image_ctx = offset_progress(ctx, i * iters, total);
            out.push(self.refine(&text.0, g, None, &mut rng, &image_ctx)?);
        }
        self.itersr.release();
        Ok(out)
    }

    /// The editing path of `PatchCompletion` (spec §8, steps 1-4 after completion).
    fn super_resolve_masked(
        &self,
        text: &TextTokens,
        low_res: &[TokenGrid],
        original_high: &TokenGrid,
        high_mask: &[bool],
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>> {
        check_seeds(low_res, seeds)?;
        let side = self.high_side;
        if original_high.height != side || original_high.width != side {
            return Err(Error::invalid_input(
                "grid",
                format!(
                    "the original high-resolution grid is {}x{}, not {side}x{side}",
                    original_high.height, original_high.width
                ),
            ));
        }
        if high_mask.len() != side * side {
            return Err(Error::invalid_input(
                "mask",
                format!(
                    "{} mask cells for the {side}x{side} grid ({} needed)",
                    high_mask.len(),
                    side * side
                ),
            ));
        }
        let mut high = Vec::with_capacity(low_res.len());
        for (i, (g, &seed)) in low_res.iter().zip(seeds).enumerate() {
            ctx.check_cancelled()?;
            let mut rng = Rng::from_seed(stage_seed(seed, DSR_STAGE));
            let mut h = self.direct(&text.0, g, &mut rng)?;
            for (c, keep) in high_mask.iter().map(|m| !m).enumerate() {
                if keep {
                    h.ids[c] = original_high.ids[c];
                }
            }
            high.push(h);
            ctx.report("dsr", i + 1, low_res.len());
        }
        self.dsr.release();
        let mut out = Vec::with_capacity(low_res.len());
        let iters = self.lopar.iterations();
        let total = iters * low_res.len();
        for (i, (g, &seed)) in high.iter().zip(seeds).enumerate() {
            let mut rng = Rng::from_seed(stage_seed(seed, ITERSR_STAGE));
            let image_ctx = offset_progress(ctx, i * iters, total);
            out.push(self.refine(&text.0, g, Some(high_mask), &mut rng, &image_ctx)?);
        }
        self.itersr.release();
        Ok(out)
    }
}
