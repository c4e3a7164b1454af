//! The backend-facing interface of an autoregressive transformer (CogLM), and the input checks every
//! backend shares. A backend implements [`AutoregressiveLm`]; the core drives it (see [`crate::stage1`]).

use crate::error::{Error, Result};

/// What the core needs to know about a loaded autoregressive model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmSpec {
    /// Rows of the word embedding (= the full output vocabulary).
    pub vocab_size: usize,
    /// Rows of the position embedding.
    pub max_positions: usize,
    /// Ids `0..image_vocab_size` are image codes; stage-1 logits are restricted to them.
    pub image_vocab_size: usize,
    /// The `<start_of_image>` id (150000 in icetk).
    pub start_of_image_id: u32,
}

/// Which logits a forward call returns, over the first `vocab` ids of the tied output head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsRequest {
    /// The last position of every batch row: `[batch, vocab]`.
    Last {
        /// Logits over ids `0..vocab`.
        vocab: usize,
    },
    /// Every new position of every row: `[batch, n, vocab]`.
    All {
        /// Logits over ids `0..vocab`.
        vocab: usize,
    },
}

impl LogitsRequest {
    /// The number of ids the logits cover.
    pub fn vocab(self) -> usize {
        match self {
            LogitsRequest::Last { vocab } | LogitsRequest::All { vocab } => vocab,
        }
    }
}

/// One forward call: `n` new tokens for every one of the session's `batch` rows.
#[derive(Debug, Clone, Copy)]
pub struct LmInput<'a> {
    /// `[batch, n]` row-major.
    pub tokens: &'a [u32],
    /// `[n]` position ids, shared by the rows.
    pub positions: &'a [u32],
    /// `[n, cached + n]` additive attention bias, shared by the rows: 0 or the text bias where a query
    /// may look, `-inf` where it may not (see [`crate::stage1::CoglmMask`]).
    pub bias: &'a [f32],
    /// Which logits to return.
    pub logits: LogitsRequest,
}

/// Logits returned by a forward call, row-major `[rows, vocab]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Logits {
    /// Rows (batch rows, or batch rows × new positions).
    pub rows: usize,
    /// Logits per row.
    pub vocab: usize,
    /// `rows * vocab` values, row-major.
    pub data: Vec<f32>,
}

impl Logits {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.vocab..(i + 1) * self.vocab]
    }
}

/// A loaded model. Shared, read-only; sessions hold the per-run KV cache.
pub trait AutoregressiveLm: Send + Sync {
    /// Vocabulary, positions and special ids of the model.
    fn spec(&self) -> LmSpec;
    /// A session for `batch` rows whose cache holds up to `capacity` positions.
    fn new_session(&self, batch: usize, capacity: usize) -> Result<Box<dyn LmSession + '_>>;
}

/// Per-run state: the KV cache of every layer.
pub trait LmSession {
    /// Rows of the batch.
    fn batch(&self) -> usize;
    /// Positions already in the cache.
    fn cached_len(&self) -> usize;
    /// Positions the cache can hold.
    fn capacity(&self) -> usize;
    /// Runs the new tokens through the model, appends their keys and values to the cache and returns
    /// the requested logits.
    fn forward(&mut self, input: &LmInput) -> Result<Logits>;
}

/// `Err(TokenOutOfVocab)` for the first id that is not below `vocab_size`.
pub fn check_vocab(ids: &[u32], vocab_size: usize) -> Result<()> {
    match ids.iter().position(|&t| t as usize >= vocab_size) {
        Some(index) => Err(Error::TokenOutOfVocab {
            token: ids[index],
            index,
            vocab_size,
        }),
        None => Ok(()),
    }
}

/// The checks every backend applies before running a forward call.
pub fn validate_input(
    spec: &LmSpec,
    batch: usize,
    cached: usize,
    capacity: usize,
    input: &LmInput,
) -> Result<usize> {
    let n = input.positions.len();
    if n == 0 {
        return Err(Error::invalid_input("positions", "no tokens given"));
    }
    if input.tokens.len() != batch * n {
        return Err(Error::invalid_input(
            "tokens",
            format!(
                "{} tokens for {batch} row(s) of {n} positions ({} needed)",
                input.tokens.len(),
                batch * n
            ),
        ));
    }
    if cached + n > capacity {
        return Err(Error::invalid_input(
            "tokens",
            format!(
                "{} positions exceed the session's capacity of {capacity}",
                cached + n
            ),
        ));
    }
    if input.bias.len() != n * (cached + n) {
        return Err(Error::invalid_input(
            "bias",
            format!(
                "{} bias entries for {n} queries over {} keys ({} needed)",
                input.bias.len(),
                cached + n,
                n * (cached + n)
            ),
        ));
    }
    check_vocab(input.tokens, spec.vocab_size)?;
    if let Some((i, &p)) = input
        .positions
        .iter()
        .enumerate()
        .find(|(_, &p)| p as usize >= spec.max_positions)
    {
        return Err(Error::invalid_input(
            "positions",
            format!(
                "position id {p} at index {i} is outside the model's {} positions",
                spec.max_positions
            ),
        ));
    }
    let v = input.logits.vocab();
    if v == 0 || v > spec.vocab_size {
        return Err(Error::invalid_input(
            "logits",
            format!(
                "cannot return {v} logits of a {}-id vocabulary",
                spec.vocab_size
            ),
        ));
    }
    for (q, row) in input.bias.chunks(cached + n).enumerate() {
        if row.iter().all(|b| *b == f32::NEG_INFINITY) {
            return Err(Error::invalid_input(
                "bias",
                format!("query {q} may not attend to any key"),
            ));
        }
        if row.iter().any(|b| b.is_nan()) {
            return Err(Error::invalid_input(
                "bias",
                format!("query {q} has a NaN bias"),
            ));
        }
    }
    Ok(n)
}
