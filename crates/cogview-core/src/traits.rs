//! The component traits a pipeline is built from. They are coarse on purpose: a backend (built in or
//! a plugin) owns a whole stage, and only token ids, token grids, logits and image buffers cross.
//!
//! Call order in a text-to-image run: [`TextTokenizer::encode`] → [`GlobalGenerator::generate`]
//! (20×20) → [`LocalSuperResolver::super_resolve`] (60×60) → [`ImageTokenizer::decode`].

use crate::context::RunContext;
use crate::error::Result;
use crate::types::{Caption, CaptionRequest, Image, TextTokens, TokenGrid};

pub use crate::sampling::Sampler;

/// icetk's compression rates: pixels per token side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Compression {
    /// 4 pixels per token side (icetk's `compress_rate=4`).
    X4,
    /// 8 pixels per token side: CogView2's.
    X8,
    /// 16 pixels per token side.
    X16,
}

impl Compression {
    /// Pixels per token side.
    pub fn factor(self) -> usize {
        match self {
            Compression::X4 => 4,
            Compression::X8 => 8,
            Compression::X16 => 16,
        }
    }
}

/// Text ↔ token ids.
pub trait TextTokenizer: Send + Sync {
    /// The token ids of `text`.
    fn encode(&self, text: &str) -> Result<TextTokens>;
    /// The text of `ids`.
    fn decode(&self, ids: &[u32]) -> Result<String>;
}

/// Pixels ↔ image-token grids (icetk's VQ-VAE).
pub trait ImageTokenizer: Send + Sync {
    /// Encodes an image whose sides are multiples of `compression.factor()`.
    fn encode(&self, image: &Image, compression: Compression) -> Result<TokenGrid>;
    /// Decodes a grid to `grid.height * factor` × `grid.width * factor` pixels.
    fn decode(&self, grid: &TokenGrid, compression: Compression) -> Result<Image>;
}

/// One request of [`GlobalGenerator::generate_many`].
#[derive(Debug, Clone, Copy)]
pub struct Stage1Request<'a> {
    /// The query text, as for [`GlobalGenerator::generate`].
    pub text: &'a TextTokens,
    /// One grid per seed.
    pub seeds: &'a [u64],
    /// The request's own progress callback and cancellation (its seed field is not used).
    pub ctx: &'a RunContext,
}

/// Stage 1: text → low-resolution token grid (CogLM).
pub trait GlobalGenerator: Send + Sync {
    /// Generates one grid per seed. `text` is the query text (prompt plus style template) without the
    /// start-of-image token, which the generator appends.
    fn generate(
        &self,
        text: &TextTokens,
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>>;

    /// Stage 1 for several requests at once (a server's concurrent requests): every request
    /// its own text, seeds and context (progress and cancellation). Gives for each request what
    /// [`GlobalGenerator::generate`] gives for it alone, grid for grid. The default runs the
    /// requests one after the other; CogLM batches rows of different requests together.
    fn generate_many(&self, requests: &[Stage1Request<'_>]) -> Vec<Result<Vec<TokenGrid>>> {
        requests
            .iter()
            .map(|r| self.generate(r.text, r.seeds, r.ctx))
            .collect()
    }

    /// The same generator, sharing its weights, drawing with `sampler` instead of its own (a
    /// request in another style: each style has its own stage-1 temperature). The default
    /// refuses: only generators whose sampling is separate from their model can.
    fn with_sampler(
        &self,
        sampler: std::sync::Arc<dyn Sampler>,
    ) -> Result<std::sync::Arc<dyn GlobalGenerator>> {
        let _ = sampler;
        Err(unsupported("change its sampling (another style)"))
    }

    /// Text-guided completion: regenerates the cells of `mask` (row-major, `true` = regenerate)
    /// of the stage-1 grid `image` given `text` (as for [`GlobalGenerator::generate`]), one grid
    /// per seed. The default refuses: only generators that are language models can edit.
    fn complete(
        &self,
        text: &TextTokens,
        image: &TokenGrid,
        mask: &[bool],
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>> {
        let _ = (text, image, mask, seeds, ctx);
        Err(unsupported("edit images (text-guided completion)"))
    }

    /// The mean log-probability of `caption` given the stage-1 grid `image`, after the `start`
    /// token (CogView2's inverse-prompt score).
    fn caption_log_likelihood(
        &self,
        image: &TokenGrid,
        start: u32,
        caption: &[u32],
    ) -> Result<f64> {
        let _ = (image, start, caption);
        Err(unsupported("score captions"))
    }

    /// Writes a caption for the stage-1 grid `image`.
    fn caption(
        &self,
        image: &TokenGrid,
        request: &CaptionRequest,
        seed: u64,
        ctx: &RunContext,
    ) -> Result<Caption> {
        let _ = (image, request, seed, ctx);
        Err(unsupported("write captions"))
    }
}

fn unsupported(what: &str) -> crate::error::Error {
    crate::error::Error::invalid_input(
        "pipeline",
        format!("this pipeline's stage-1 generator cannot {what}; use a CogLM generator"),
    )
}

/// Stages 2-3: low-resolution grid → high-resolution grid (DSR + ItersR).
pub trait LocalSuperResolver: Send + Sync {
    /// Super-resolves each stage-1 grid of `low_res` (one per seed) given `text`.
    fn super_resolve(
        &self,
        text: &TextTokens,
        low_res: &[TokenGrid],
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>>;

    /// Super-resolution for editing: DSR on each completed `low_res` grid, then the cells outside
    /// `high_mask` set back to `original_high` (the input's own high-resolution tokens), then
    /// ItersR re-sampling only cells inside `high_mask`. One grid per seed, with the same
    /// per-stage seeds as [`LocalSuperResolver::super_resolve`].
    fn super_resolve_masked(
        &self,
        text: &TextTokens,
        low_res: &[TokenGrid],
        original_high: &TokenGrid,
        high_mask: &[bool],
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>> {
        let _ = (text, low_res, original_high, high_mask, seeds, ctx);
        Err(crate::error::Error::invalid_input(
            "pipeline",
            "this pipeline's super-resolver cannot keep cells outside a mask; use CogView2's DSR + ItersR",
        ))
    }
}
