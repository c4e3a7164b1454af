//! The windows of Image-Local-Attention's kernel, as index arithmetic every backend shares.
//!
//! For a query at (y, x) of a `H × W` grid over keys on an `h × w` grid with `H = ah·h`,
//! `W = aw·w`: the window is centred at (⌊y/ah⌋, ⌊x/aw⌋); slot p = 0..P−1 (raster order) is the key
//! (cy − ⌊kh/2⌋ + ⌊p/kw⌋, cx − ⌊kw/2⌋ + p mod kw). Keys outside the grid score −10000 in the
//! official kernel and are skipped in the weighted sum, i.e. they get no weight. The causal
//! variant keeps slots 0..=⌊kh·kw/2⌋ (rows above, the left part of the centre row and the centre).

use crate::error::{Error, Result};

/// One local window shape (CogView2: 9×5 high-res self-attention, 5×5 cross-resolution with
/// ratio 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalWindow {
    /// Window height in cells (odd).
    pub kh: usize,
    /// Window width in cells (odd).
    pub kw: usize,
    /// Query/key grid ratio per axis (1 for self-attention, 3 for 60×60 queries over 20×20 keys).
    pub ah: usize,
    /// See `ah`: the ratio along the width.
    pub aw: usize,
    /// Only the first half of the window (up to and including the centre) is visible.
    pub causal: bool,
}

impl LocalWindow {
    /// Slots per query.
    pub fn slots(&self) -> usize {
        if self.causal {
            self.kh * self.kw / 2 + 1
        } else {
            self.kh * self.kw
        }
    }

    /// Checks that the window fits a `query_h × query_w` grid over a `key_h × key_w` one.
    pub fn check(&self, query_h: usize, query_w: usize, key_h: usize, key_w: usize) -> Result<()> {
        if self.kh.is_multiple_of(2) || self.kw.is_multiple_of(2) || self.kh == 0 {
            return Err(Error::invalid_input(
                "window",
                format!("{}x{} must be odd", self.kh, self.kw),
            ));
        }
        if self.ah == 0 || self.aw == 0 || query_h != self.ah * key_h || query_w != self.aw * key_w
        {
            return Err(Error::invalid_input(
                "window",
                format!(
                    "queries {query_h}x{query_w} are not {}x{} times the keys {key_h}x{key_w}",
                    self.ah, self.aw
                ),
            ));
        }
        Ok(())
    }

    /// The flat key index of every slot of query (y, x), `None` outside the key grid.
    pub fn keys(
        &self,
        y: usize,
        x: usize,
        key_h: usize,
        key_w: usize,
    ) -> impl Iterator<Item = Option<usize>> + '_ {
        let (cy, cx) = ((y / self.ah) as isize, (x / self.aw) as isize);
        let (rh, rw) = ((self.kh / 2) as isize, (self.kw / 2) as isize);
        let kw = self.kw;
        (0..self.slots()).map(move |p| {
            let ky = cy - rh + (p / kw) as isize;
            let kx = cx - rw + (p % kw) as isize;
            (ky >= 0 && kx >= 0 && (ky as usize) < key_h && (kx as usize) < key_w)
                .then(|| ky as usize * key_w + kx as usize)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_match_the_kernel_examples_of_the_specification() {
        // High-res 9×5: query (10,10) covers rows 6..14 and columns 8..12.
        let w = LocalWindow {
            kh: 9,
            kw: 5,
            ah: 1,
            aw: 1,
            causal: false,
        };
        let keys: Vec<usize> = w.keys(10, 10, 60, 60).map(|k| k.unwrap()).collect();
        assert_eq!(keys.len(), 45);
        assert_eq!(keys[0], 6 * 60 + 8);
        assert_eq!(keys[44], 14 * 60 + 12);
        assert_eq!(
            keys[22],
            10 * 60 + 10,
            "the centre slot is the query itself"
        );
        // Cross-resolution 5×5 with ratio 3: query (4,7) → low-res centre (1,2).
        let c = LocalWindow {
            kh: 5,
            kw: 5,
            ah: 3,
            aw: 3,
            causal: false,
        };
        let keys: Vec<Option<usize>> = c.keys(4, 7, 20, 20).collect();
        assert_eq!(keys[12], Some(20 + 2));
        assert_eq!(keys[0], None, "row −1 is outside");
        assert_eq!(
            keys.iter().filter(|k| k.is_none()).count(),
            5,
            "only the top row is outside"
        );
        // Causal keeps 23 slots, ending at the centre.
        let causal = LocalWindow { causal: true, ..w };
        let keys: Vec<usize> = causal.keys(10, 10, 60, 60).map(|k| k.unwrap()).collect();
        assert_eq!(keys.len(), 23);
        assert_eq!(*keys.last().unwrap(), 10 * 60 + 10);
        assert!(
            w.check(60, 60, 60, 60).is_ok()
                && c.check(60, 60, 20, 20).is_ok()
                && c.check(60, 60, 30, 30).is_err()
        );
    }
}
