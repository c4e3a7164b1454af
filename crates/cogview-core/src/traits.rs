//! The component traits a pipeline is built from. They are coarse on purpose: a backend (built in or
//! a plugin) owns a whole stage, and only token ids, token grids, logits and image buffers cross.
//!
//! Call order in a text-to-image run: [`TextTokenizer::encode`] → [`GlobalGenerator::generate`]
//! (20×20) → [`LocalSuperResolver::super_resolve`] (60×60) → [`ImageTokenizer::decode`].

use crate::context::RunContext;
use crate::error::Result;
use crate::types::{Image, TextTokens, TokenGrid};

pub use crate::sampling::Sampler;

/// icetk's compression rates: pixels per token side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Compression {
    X4,
    X8,
    X16,
}

impl Compression {
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
    fn encode(&self, text: &str) -> Result<TextTokens>;
    fn decode(&self, ids: &[u32]) -> Result<String>;
}

/// Pixels ↔ image-token grids (icetk's VQ-VAE).
pub trait ImageTokenizer: Send + Sync {
    /// Encodes an image whose sides are multiples of `compression.factor()`.
    fn encode(&self, image: &Image, compression: Compression) -> Result<TokenGrid>;
    /// Decodes a grid to `grid.height * factor` × `grid.width * factor` pixels.
    fn decode(&self, grid: &TokenGrid, compression: Compression) -> Result<Image>;
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
}

/// Stages 2-3: low-resolution grid → high-resolution grid (DSR + ItersR).
pub trait LocalSuperResolver: Send + Sync {
    fn super_resolve(
        &self,
        text: &TextTokens,
        low_res: &[TokenGrid],
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>>;
}
