//! The input of DSR and ItersR, assembled once here for every backend.
//!
//! Both models run two levels through one transformer. Level 0 is the text, left-padded to
//! `text_slots`, and for DSR the low-resolution grid after it; it attends densely under an additive
//! bias. Level 1 is the high-resolution grid; each of its cells attends locally, with
//! Image-Local-Attention's semantics, to a set of level-0 keys (DSR: a `k2 × k2` window of the
//! low-resolution grid around `(y / r, x / r)`; ItersR: the text that is not padding) and to the
//! `(2k − 1) × k` window of its own grid, under one softmax. Keys outside a grid get no weight.
//!
//! [`SrInput::dsr`] and [`SrInput::itersr`] build that input from a model's [`SrSpec`], the text
//! and the grid, with the checks that give the typed errors; a backend receives the result
//! ([`super::GridPredictor::predict`]) and only runs the network.

use crate::error::{Error, Result};
use crate::lm::check_vocab;
use crate::local_window::LocalWindow;
use crate::types::TokenGrid;
use std::ops::Range;

/// Which super-resolution model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrKind {
    /// Direct super-resolution: one pass from the low-resolution grid to the high-resolution one.
    Dsr,
    /// Iterative super-resolution: re-samples masked cells of the high-resolution grid (LoPAR).
    Itersr,
}

/// The position id of DSR's first low-resolution cell: cell `j` of the low-resolution grid sits at
/// position `513 + j` (the official `sr_pipeline`), whatever the text's length.
pub const LOW_RES_FIRST_POSITION: u32 = 513;

/// What the core needs to know about a loaded DSR or ItersR model to assemble its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrSpec {
    /// DSR or ItersR: what level 1 sees of level 0.
    pub kind: SrKind,
    /// Text slots at the start of level 0 (DSR 96, ItersR 16).
    pub text_slots: usize,
    /// DSR: side of the low-resolution grid (20); ItersR: 0.
    pub low: usize,
    /// Side of the high-resolution grid (60).
    pub high: usize,
    /// `kernel_size` (5): the high-resolution window is `(2k − 1) × k`.
    pub kernel_size: usize,
    /// `kernel_size2` (5): DSR's cross-resolution window is `k2 × k2`.
    pub kernel_size2: usize,
    /// Rows of the word embedding: every input id is below this.
    pub vocab_size: usize,
    /// Ids `0..image_vocab_size` are image codes; the logits cover them.
    pub image_vocab_size: usize,
    /// Rows of the position embedding: every level-0 position is below this.
    pub max_positions: usize,
    /// `<start_of_image>` (150000 in icetk): DSR's high-resolution placeholder and ItersR's mask.
    pub start_of_image_id: u32,
}

impl SrSpec {
    /// The window of a high-resolution cell over its own grid: `(2k − 1) × k`, centred.
    pub fn own_window(&self) -> LocalWindow {
        LocalWindow {
            kh: 2 * self.kernel_size - 1,
            kw: self.kernel_size,
            ah: 1,
            aw: 1,
            causal: false,
        }
    }

    /// DSR's window of a high-resolution cell over the low-resolution grid: `k2 × k2` around the
    /// low-resolution cell that covers it.
    pub fn cross_window(&self) -> LocalWindow {
        let r = self.high / self.low.max(1);
        LocalWindow {
            kh: self.kernel_size2,
            kw: self.kernel_size2,
            ah: r,
            aw: r,
            causal: false,
        }
    }

    /// Rows of level 0: the text slots, and DSR's low-resolution grid.
    pub fn level0_len(&self) -> usize {
        match self.kind {
            SrKind::Dsr => self.text_slots + self.low * self.low,
            SrKind::Itersr => self.text_slots,
        }
    }

    /// Checks that the numbers fit together (a spec from a plugin is checked before use).
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid_input("sr spec", reason));
        if self.text_slots == 0 || self.high == 0 || self.kernel_size == 0 {
            return bad(format!(
                "text slots {}, grid side {} and kernel size {} must be positive",
                self.text_slots, self.high, self.kernel_size
            ));
        }
        if self.image_vocab_size == 0 || self.image_vocab_size > self.vocab_size {
            return bad(format!(
                "image vocabulary {} does not fit the vocabulary {}",
                self.image_vocab_size, self.vocab_size
            ));
        }
        self.own_window()
            .check(self.high, self.high, self.high, self.high)?;
        match self.kind {
            SrKind::Dsr => {
                if self.low == 0 || !self.high.is_multiple_of(self.low) {
                    return bad(format!(
                        "the {0}x{0} grid is not a multiple of the {1}x{1} grid",
                        self.high, self.low
                    ));
                }
                self.cross_window()
                    .check(self.high, self.high, self.low, self.low)?;
                let last = LOW_RES_FIRST_POSITION as usize + self.low * self.low;
                if last > self.max_positions || self.text_slots > self.max_positions {
                    return bad(format!(
                        "positions up to {} do not fit {} position embeddings",
                        last.max(self.text_slots) - 1,
                        self.max_positions
                    ));
                }
            }
            SrKind::Itersr => {
                if self.text_slots > self.max_positions {
                    return bad(format!(
                        "{} text slots do not fit {} position embeddings",
                        self.text_slots, self.max_positions
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The level-0 keys a high-resolution cell sees besides its own window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrExtra {
    /// DSR: a window over the low-resolution grid, whose `side × side` cells are level-0 rows
    /// `offset..offset + side²` (after the text slots).
    LowWindow {
        /// The level-0 row of low-resolution cell 0.
        offset: usize,
        /// The low-resolution grid's side.
        side: usize,
        /// Each level-1 cell's window over the low-resolution grid.
        window: LocalWindow,
    },
    /// ItersR: every level-0 row whose flag is set (the text that is not padding).
    Visible(Vec<bool>),
}

/// One DSR or ItersR pass, assembled: everything a backend needs besides its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct SrInput {
    /// Level 0: `[0; pad] ++ text` (`text_slots` ids), then for DSR the low-resolution grid.
    pub tokens0: Vec<u32>,
    /// Level 0's position ids: 0 for the padding, `0..text.len()` for the text, then for DSR
    /// [`LOW_RES_FIRST_POSITION`]` + j` for low-resolution cell `j`.
    pub positions0: Vec<u32>,
    /// `[n0, n0]` additive attention bias of level 0, row-major: 0 where a query may look, `-inf`
    /// where it may not. Nobody looks at the padding; the text looks at the text; DSR's
    /// low-resolution cells look at the text and at each other.
    pub bias0: Vec<f32>,
    /// Level 1: the high-resolution grid's input ids, `high × high` row-major (DSR: all the
    /// placeholder; ItersR: the current grid, cells to re-sample set to the mask id). Level 1's
    /// positions are `0..high²` of the extra position embedding.
    pub tokens1: Vec<u32>,
    /// Side of the high-resolution grid.
    pub high: usize,
    /// Each high-resolution cell's window over its own grid.
    pub own_window: LocalWindow,
    /// The level-0 keys each high-resolution cell sees.
    pub extra: SrExtra,
}

impl SrInput {
    /// DSR: the input from the text (without padding or `<start_of_image>`; 1 to `text_slots − 1`
    /// tokens) and the low-resolution grid (`low²` image codes); every high-resolution input is
    /// `placeholder` (`<start_of_image>` officially).
    pub fn dsr(spec: &SrSpec, text: &[u32], low_res: &[u32], placeholder: u32) -> Result<Self> {
        if spec.kind != SrKind::Dsr {
            return Err(Error::invalid_input(
                "model",
                "this is an ItersR checkpoint; DSR needs the cogview2-dsr model",
            ));
        }
        if text.is_empty() || text.len() >= spec.text_slots {
            return Err(Error::TextTooLong {
                tokens: text.len(),
                max: spec.text_slots.saturating_sub(1),
                what: format!(
                    "DSR (its text needs 1 to {} tokens and one pad)",
                    spec.text_slots.saturating_sub(1)
                ),
            });
        }
        let cells = spec.low * spec.low;
        if low_res.len() != cells {
            return Err(Error::invalid_input(
                "low_res",
                format!(
                    "{} ids for a {}x{} grid ({cells} needed)",
                    low_res.len(),
                    spec.low,
                    spec.low,
                ),
            ));
        }
        check_vocab(low_res, spec.image_vocab_size)?;
        check_vocab(text, spec.vocab_size)?;
        check_vocab(&[placeholder], spec.vocab_size)?;
        let slots = spec.text_slots;
        let n_pad = slots - text.len();
        let mut tokens0 = vec![0u32; n_pad];
        tokens0.extend_from_slice(text);
        tokens0.extend_from_slice(low_res);
        let mut positions0 = vec![0u32; n_pad];
        positions0.extend(0..text.len() as u32);
        positions0.extend((0..cells as u32).map(|j| LOW_RES_FIRST_POSITION + j));
        let n0 = tokens0.len();
        let bias0 = (0..n0)
            .flat_map(|r| {
                (0..n0).map(move |k| {
                    if k >= n_pad && (k < slots || r >= slots) {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        Ok(SrInput {
            tokens0,
            positions0,
            bias0,
            tokens1: vec![placeholder; spec.high * spec.high],
            high: spec.high,
            own_window: spec.own_window(),
            extra: SrExtra::LowWindow {
                offset: slots,
                side: spec.low,
                window: spec.cross_window(),
            },
        })
    }

    /// ItersR, one pass: the input from the text and the current high-resolution grid (`high²`
    /// ids, the cells to re-sample already set to the mask id). Like the official code, only the
    /// first `text_slots` text tokens are used.
    pub fn itersr(spec: &SrSpec, text: &[u32], grid: &[u32]) -> Result<Self> {
        if spec.kind != SrKind::Itersr {
            return Err(Error::invalid_input(
                "model",
                "this is a DSR checkpoint; ItersR needs the cogview2-itersr model",
            ));
        }
        if text.is_empty() {
            return Err(Error::invalid_input(
                "text",
                "ItersR needs at least one text token",
            ));
        }
        let cells = spec.high * spec.high;
        if grid.len() != cells {
            return Err(Error::invalid_input(
                "tokens",
                format!(
                    "{} ids for a {}x{} grid ({cells} needed)",
                    grid.len(),
                    spec.high,
                    spec.high,
                ),
            ));
        }
        let slots = spec.text_slots;
        let text = if text.len() > slots {
            tracing::info!(
                tokens = text.len(),
                kept = slots,
                "ItersR sees only the first text tokens, as the official model"
            );
            &text[..slots]
        } else {
            text
        };
        check_vocab(text, spec.vocab_size)?;
        check_vocab(grid, spec.vocab_size)?;
        let n_pad = slots - text.len();
        let mut tokens0 = vec![0u32; n_pad];
        tokens0.extend_from_slice(text);
        let mut positions0 = vec![0u32; n_pad];
        positions0.extend(0..text.len() as u32);
        let n0 = tokens0.len();
        let bias0 = (0..n0)
            .flat_map(|_| (0..n0).map(move |k| if k >= n_pad { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        Ok(SrInput {
            tokens0,
            positions0,
            bias0,
            tokens1: grid.to_vec(),
            high: spec.high,
            own_window: spec.own_window(),
            extra: SrExtra::Visible((0..n0).map(|k| k >= n_pad).collect()),
        })
    }

    /// The input of the model `spec` describes: DSR from the low-resolution `grid` (placeholder
    /// `<start_of_image>`), ItersR from the current high-resolution `grid`.
    pub fn new(spec: &SrSpec, text: &[u32], grid: &TokenGrid) -> Result<Self> {
        match spec.kind {
            SrKind::Dsr => Self::dsr(spec, text, &grid.ids, spec.start_of_image_id),
            SrKind::Itersr => Self::itersr(spec, text, &grid.ids),
        }
    }

    /// DSR when level 1 looks at a low-resolution window, ItersR when it looks at the text.
    pub fn kind(&self) -> SrKind {
        match self.extra {
            SrExtra::LowWindow { .. } => SrKind::Dsr,
            SrExtra::Visible(_) => SrKind::Itersr,
        }
    }

    /// Rows of level 0.
    pub fn level0_len(&self) -> usize {
        self.tokens0.len()
    }

    /// Rows of level 1 (`high²`).
    pub fn level1_len(&self) -> usize {
        self.tokens1.len()
    }

    /// Checks that an input someone else assembled (a host across the plugin ABI) is one the model
    /// `spec` describes could have been given: the shapes, the windows, the id and position
    /// ranges. Backends call it before running.
    pub fn check(&self, spec: &SrSpec) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid_input("sr input", reason));
        if self.kind() != spec.kind {
            return bad(format!(
                "a {:?} input for a {:?} model",
                self.kind(),
                spec.kind
            ));
        }
        let n0 = self.tokens0.len();
        if n0 != spec.level0_len() {
            return bad(format!(
                "{n0} level-0 tokens; the model takes {}",
                spec.level0_len()
            ));
        }
        if self.positions0.len() != n0 || self.bias0.len() != n0 * n0 {
            return bad(format!(
                "{} positions and {} bias values for {n0} level-0 tokens ({n0} and {} needed)",
                self.positions0.len(),
                self.bias0.len(),
                n0 * n0
            ));
        }
        if self.high != spec.high || self.tokens1.len() != spec.high * spec.high {
            return bad(format!(
                "{} level-1 tokens on a {}x{} grid; the model's grid is {}x{}",
                self.tokens1.len(),
                self.high,
                self.high,
                spec.high,
                spec.high
            ));
        }
        if self.own_window != spec.own_window() {
            return bad(format!(
                "the own window {:?} is not the model's {:?}",
                self.own_window,
                spec.own_window()
            ));
        }
        match &self.extra {
            SrExtra::LowWindow {
                offset,
                side,
                window,
            } => {
                if (*offset, *side, *window) != (spec.text_slots, spec.low, spec.cross_window()) {
                    return bad(format!(
                        "the low-resolution window {window:?} over {side}x{side} cells at row \
                         {offset} is not the model's {:?} over {}x{} cells at row {}",
                        spec.cross_window(),
                        spec.low,
                        spec.low,
                        spec.text_slots
                    ));
                }
            }
            SrExtra::Visible(v) => {
                if v.len() != n0 {
                    return bad(format!(
                        "{} visibility flags for {n0} level-0 tokens",
                        v.len()
                    ));
                }
            }
        }
        check_vocab(&self.tokens0, spec.vocab_size)?;
        check_vocab(&self.tokens1, spec.vocab_size)?;
        if let Some(p) = self
            .positions0
            .iter()
            .find(|&&p| p as usize >= spec.max_positions)
        {
            return bad(format!(
                "position {p} is beyond the model's {} positions",
                spec.max_positions
            ));
        }
        Ok(())
    }

    /// The keys high-resolution cell `q` (row-major) attends to, as indices into the keys of both
    /// levels concatenated (`0..n0` level 0, `n0..n0 + high²` level 1): first the level-0 ones
    /// (its low-resolution window, or the visible text), then its own window, each in the
    /// kernel's slot order. Slots outside a grid are left out.
    pub fn level1_keys(&self, q: usize) -> Box<dyn Iterator<Item = usize> + '_> {
        let (y, x) = (q / self.high, q % self.high);
        let n0 = self.tokens0.len();
        let own = self
            .own_window
            .keys(y, x, self.high, self.high)
            .flatten()
            .map(move |r| n0 + r);
        match &self.extra {
            SrExtra::LowWindow {
                offset,
                side,
                window,
            } => Box::new(
                window
                    .keys(y, x, *side, *side)
                    .flatten()
                    .map(move |r| offset + r)
                    .chain(own),
            ),
            SrExtra::Visible(v) => Box::new(
                v.iter()
                    .enumerate()
                    .filter(|(_, v)| **v)
                    .map(|(k, _)| k)
                    .chain(own),
            ),
        }
    }

    /// The keys the high-resolution cells of grid rows `rows` can reach, as a range of level-0
    /// rows and a range of level-1 rows (cells); a backend that attends block by block needs no
    /// others.
    pub fn level1_reach(&self, rows: Range<usize>) -> (Range<usize>, Range<usize>) {
        // The grid rows a window reaches from query rows `rows`, over a key grid `key_rows` high.
        let span = |w: &LocalWindow, key_rows: usize| {
            let reach = w.kh / 2;
            let lo = (rows.start / w.ah).saturating_sub(reach);
            let hi = (rows.end.saturating_sub(1) / w.ah + reach + 1).min(key_rows);
            (lo, hi.max(lo))
        };
        let (lo, hi) = span(&self.own_window, self.high);
        let level1 = lo * self.high..hi * self.high;
        let level0 = match &self.extra {
            SrExtra::LowWindow {
                offset,
                side,
                window,
            } => {
                let (lo, hi) = span(window, *side);
                offset + lo * side..offset + hi * side
            }
            SrExtra::Visible(_) => 0..self.tokens0.len(),
        };
        (level0, level1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

    /// A tiny DSR: 4 text slots, a 2×2 low-resolution grid, a 4×4 high-resolution grid (ratio 2),
    /// kernel 3 (own window 5×3), kernel2 3.
    fn dsr_spec() -> SrSpec {
        SrSpec {
            kind: SrKind::Dsr,
            text_slots: 4,
            low: 2,
            high: 4,
            kernel_size: 3,
            kernel_size2: 3,
            vocab_size: 100,
            image_vocab_size: 50,
            max_positions: 1024,
            start_of_image_id: 99,
        }
    }

    fn itersr_spec() -> SrSpec {
        SrSpec {
            kind: SrKind::Itersr,
            text_slots: 3,
            low: 0,
            ..dsr_spec()
        }
    }

    #[test]
    fn dsr_input_is_the_padded_text_then_the_low_grid_with_positions_513_on() {
        let spec = dsr_spec();
        spec.validate().unwrap();
        let i = SrInput::dsr(&spec, &[70, 71], &[1, 2, 3, 4], 99).unwrap();
        assert_eq!(i.tokens0, vec![0, 0, 70, 71, 1, 2, 3, 4]);
        assert_eq!(i.positions0, vec![0, 0, 0, 1, 513, 514, 515, 516]);
        assert_eq!(i.tokens1, vec![99; 16]);
        assert_eq!(i.high, 4);
        assert_eq!(
            i.own_window,
            LocalWindow {
                kh: 5,
                kw: 3,
                ah: 1,
                aw: 1,
                causal: false
            }
        );
        assert_eq!(
            i.extra,
            SrExtra::LowWindow {
                offset: 4,
                side: 2,
                window: LocalWindow {
                    kh: 3,
                    kw: 3,
                    ah: 2,
                    aw: 2,
                    causal: false
                }
            }
        );
        assert_eq!(i.kind(), SrKind::Dsr);
        // Rows 0-3 (text slots): the two text tokens only. Rows 4-7 (low-res cells): the text
        // and every low-res cell. Nobody sees the padding (columns 0-1).
        let text_row = [NEG, NEG, 0.0, 0.0, NEG, NEG, NEG, NEG];
        let low_row = [NEG, NEG, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        for r in 0..8 {
            let want = if r < 4 { &text_row } else { &low_row };
            assert_eq!(&i.bias0[r * 8..(r + 1) * 8], want, "bias row {r}");
        }
        i.check(&spec).unwrap();
    }

    #[test]
    fn itersr_input_is_the_padded_text_with_the_grid_as_level_1() {
        let spec = itersr_spec();
        spec.validate().unwrap();
        let grid: Vec<u32> = (0..16).map(|c| if c % 3 == 0 { 99 } else { c }).collect();
        let i = SrInput::itersr(&spec, &[70], &grid).unwrap();
        assert_eq!(i.tokens0, vec![0, 0, 70]);
        assert_eq!(i.positions0, vec![0, 0, 0]);
        assert_eq!(i.tokens1, grid);
        for r in 0..3 {
            assert_eq!(
                &i.bias0[r * 3..(r + 1) * 3],
                &[NEG, NEG, 0.0],
                "bias row {r}"
            );
        }
        assert_eq!(i.extra, SrExtra::Visible(vec![false, false, true]));
        assert_eq!(i.kind(), SrKind::Itersr);
        i.check(&spec).unwrap();
        // Longer text than the slots: the first `text_slots` tokens, no padding.
        let i = SrInput::itersr(&spec, &[70, 71, 72, 73, 74], &grid).unwrap();
        assert_eq!(i.tokens0, vec![70, 71, 72]);
        assert_eq!(i.positions0, vec![0, 1, 2]);
        assert!(i.bias0.iter().all(|b| *b == 0.0));
        assert_eq!(i.extra, SrExtra::Visible(vec![true; 3]));
    }

    #[test]
    fn level_1_keys_are_the_low_window_or_the_visible_text_then_the_own_window() {
        // DSR, cell (1, 2) of the 4×4 grid → low-res centre (0, 1): the 3×3 window's rows −1..1,
        // columns 0..2 of the 2×2 grid keep (0,0), (0,1), (1,0), (1,1) = level-0 rows 4..8; the
        // own 5×3 window: rows −1..3, columns 1..3, i.e. rows 0..3 × columns 1..3 → 12 cells.
        let spec = dsr_spec();
        let i = SrInput::dsr(&spec, &[70], &[1, 2, 3, 4], 99).unwrap();
        let keys: Vec<usize> = i.level1_keys(4 + 2).collect();
        let own: Vec<usize> = (0..4)
            .flat_map(|y| (1..4).map(move |x| 8 + y * 4 + x))
            .collect();
        assert_eq!(keys[..4], [4, 5, 6, 7]);
        assert_eq!(keys[4..], own[..]);
        // ItersR, cell 0: the visible text (row 2), then rows 0..2 × columns 0..1 of its grid.
        let spec = itersr_spec();
        let i = SrInput::itersr(&spec, &[70], &[5; 16]).unwrap();
        let keys: Vec<usize> = i.level1_keys(0).collect();
        assert_eq!(keys, vec![2, 3, 4, 7, 8, 11, 12]);
    }

    #[test]
    fn level_1_reach_covers_every_key_of_the_rows() {
        for i in [
            SrInput::dsr(&dsr_spec(), &[70], &[1, 2, 3, 4], 99).unwrap(),
            SrInput::itersr(&itersr_spec(), &[70], &[5; 16]).unwrap(),
        ] {
            let n0 = i.level0_len();
            for r0 in 0..4 {
                for r1 in r0 + 1..=4 {
                    let (e, k) = i.level1_reach(r0..r1);
                    for q in r0 * 4..r1 * 4 {
                        for key in i.level1_keys(q) {
                            let inside = if key < n0 {
                                e.contains(&key)
                            } else {
                                k.contains(&(key - n0))
                            };
                            assert!(
                                inside,
                                "{:?} rows {r0}..{r1}: key {key} outside {e:?} / {k:?}",
                                i.kind()
                            );
                        }
                    }
                }
            }
        }
        // The exact ranges of the tch blocks: DSR rows 0..2 reach low-res rows 0..2 (all of them,
        // rows 4..8 of level 0) and own rows 0..4.
        let i = SrInput::dsr(&dsr_spec(), &[70], &[1, 2, 3, 4], 99).unwrap();
        assert_eq!(i.level1_reach(0..1), (4..8, 0..12));
        assert_eq!(i.level1_reach(3..4), (4..8, 4..16));
    }

    #[test]
    fn bad_inputs_give_the_typed_errors() {
        let dsr = dsr_spec();
        let it = itersr_spec();
        let e = SrInput::dsr(&dsr, &[70; 4], &[1; 4], 99).unwrap_err();
        assert!(
            matches!(e, Error::TextTooLong { tokens: 4, max: 3, ref what } if what.contains("1 to 3 tokens")),
            "{e}"
        );
        assert!(matches!(
            SrInput::dsr(&dsr, &[], &[1; 4], 99),
            Err(Error::TextTooLong { tokens: 0, .. })
        ));
        let e = SrInput::dsr(&dsr, &[70], &[1; 3], 99).unwrap_err();
        assert!(e.to_string().contains("3 ids for a 2x2 grid"), "{e}");
        assert!(matches!(
            SrInput::dsr(&dsr, &[70], &[1, 2, 60, 4], 99),
            Err(Error::TokenOutOfVocab {
                token: 60,
                index: 2,
                vocab_size: 50
            })
        ));
        assert!(matches!(
            SrInput::dsr(&dsr, &[170], &[1; 4], 99),
            Err(Error::TokenOutOfVocab { token: 170, .. })
        ));
        assert!(matches!(
            SrInput::dsr(&dsr, &[70], &[1; 4], 100),
            Err(Error::TokenOutOfVocab { token: 100, .. })
        ));
        let e = SrInput::dsr(&it, &[70], &[1; 4], 99).unwrap_err();
        assert!(e.to_string().contains("ItersR checkpoint"), "{e}");
        let e = SrInput::itersr(&dsr, &[70], &[1; 16]).unwrap_err();
        assert!(e.to_string().contains("DSR checkpoint"), "{e}");
        let e = SrInput::itersr(&it, &[], &[1; 16]).unwrap_err();
        assert!(e.to_string().contains("at least one text token"), "{e}");
        let e = SrInput::itersr(&it, &[70], &[1; 15]).unwrap_err();
        assert!(e.to_string().contains("15 ids for a 4x4 grid"), "{e}");
        assert!(matches!(
            SrInput::itersr(&it, &[70], &[100; 16]),
            Err(Error::TokenOutOfVocab { token: 100, .. })
        ));
    }

    #[test]
    fn check_refuses_inputs_the_model_could_not_have_been_given() {
        let spec = dsr_spec();
        let good = SrInput::dsr(&spec, &[70], &[1; 4], 99).unwrap();
        let mut i = good.clone();
        i.bias0.pop();
        assert!(i.check(&spec).is_err());
        let mut i = good.clone();
        i.positions0[7] = 1024;
        assert!(i.check(&spec).unwrap_err().to_string().contains("1024"));
        let mut i = good.clone();
        i.extra = SrExtra::LowWindow {
            offset: 3,
            side: 2,
            window: spec.cross_window(),
        };
        assert!(i.check(&spec).is_err());
        let mut i = good.clone();
        i.tokens1.pop();
        assert!(i.check(&spec).is_err());
        assert!(good.check(&itersr_spec()).is_err());
        let mut bad = spec.clone();
        bad.high = 5;
        assert!(bad.validate().is_err());
    }
}
