//! ItersR's LoPAR schedule (`iterative_sr.py`): a hand-designed 6×6 table tiled over the
//! high-resolution grid. In iteration k (1-based) every cell whose table value is ≥ k is masked
//! and re-sampled; cells with values ≤ 0 keep their DSR token. Cells masked together are never
//! adjacent in the same window, so one forward pass samples them all.

use crate::error::{Error, Result};

/// The official table `M` (rows × columns).
pub const OFFICIAL_TABLE: [[i8; 6]; 6] = [
    [-1, 0, 1, 2, 3, 4],
    [0, -1, 2, -1, -2, 5],
    [1, -2, 3, 4, 5, 6],
    [2, 3, 4, 5, -1, 1],
    [3, -1, -2, 0, -1, 2],
    [4, 5, 6, 1, 3, -2],
];

/// The official top-k of each iteration (k = 40, 40, 40, 20, 20, 10).
pub const OFFICIAL_TOP_K: [usize; 6] = [40, 40, 40, 20, 20, 10];

/// A LoPAR schedule: the tiled table and the per-iteration top-k.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lopar {
    /// The table, row-major, `table.len()` rows of equal length.
    pub table: Vec<Vec<i8>>,
    /// Top-k for iterations 1..=top_k.len() (the number of iterations).
    pub top_k: Vec<usize>,
}

impl Default for Lopar {
    fn default() -> Self {
        Lopar {
            table: OFFICIAL_TABLE.iter().map(|r| r.to_vec()).collect(),
            top_k: OFFICIAL_TOP_K.to_vec(),
        }
    }
}

impl Lopar {
    /// Checks that the table is a non-empty rectangle and that every pass has a positive top-k
    /// (no passes at all is valid: ItersR then returns DSR's grid unchanged).
    pub fn validate(&self) -> Result<()> {
        let w = self.table.first().map(|r| r.len()).unwrap_or(0);
        if w == 0 || self.table.iter().any(|r| r.len() != w) {
            return Err(Error::config(
                "lopar",
                "table",
                "must be a non-empty rectangle",
            ));
        }
        if self.top_k.contains(&0) {
            return Err(Error::config(
                "lopar",
                "top_k",
                "needs a positive k for every iteration",
            ));
        }
        Ok(())
    }

    /// The number of re-masking passes (official 6).
    pub fn iterations(&self) -> usize {
        self.top_k.len()
    }

    /// The table value of cell (r, c) of the tiled grid.
    pub fn value(&self, r: usize, c: usize) -> i8 {
        let row = &self.table[r % self.table.len()];
        row[c % row.len()]
    }

    /// Cells re-sampled in iteration `k` (1-based) on an `h × w` grid, row-major; when an input
    /// mask is given (editing), only cells it marks are ever re-sampled.
    pub fn mask(
        &self,
        k: usize,
        h: usize,
        w: usize,
        input_mask: Option<&[bool]>,
    ) -> Result<Vec<bool>> {
        if k == 0 || k > self.iterations() {
            return Err(Error::invalid_input(
                "iteration",
                format!("{k} is not in 1..={}", self.iterations()),
            ));
        }
        if let Some(m) = input_mask {
            if m.len() != h * w {
                return Err(Error::invalid_input(
                    "mask",
                    format!(
                        "the mask has {} cells but the grid is {h}x{w} ({} cells)",
                        m.len(),
                        h * w
                    ),
                ));
            }
        }
        Ok((0..h * w)
            .map(|i| self.value(i / w, i % w) as i64 >= k as i64 && input_mask.is_none_or(|m| m[i]))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_counts_on_a_60x60_grid() {
        // The specification counts 23, 19, 15, 10, 6, 2 cells per 6×6 window, ×100 windows.
        let l = Lopar::default();
        let counts: Vec<usize> = (1..=6)
            .map(|k| {
                l.mask(k, 60, 60, None)
                    .unwrap()
                    .iter()
                    .filter(|m| **m)
                    .count()
            })
            .collect();
        assert_eq!(counts, vec![2300, 1900, 1500, 1000, 600, 200]);
        // 13 of 36 cells (≤ 0) are never re-sampled.
        let never = (0..3600).filter(|i| l.value(i / 60, i % 60) <= 0).count();
        assert_eq!(never, 1300);
    }

    #[test]
    fn no_two_cells_masked_together_are_neighbours_in_their_row() {
        let l = Lopar::default();
        for k in 1..=6 {
            let m = l.mask(k, 60, 60, None).unwrap();
            // Cells with the same value are the ones fixed together; check the exact-value sets.
            let exact: Vec<bool> = (0..3600)
                .map(|i| l.value(i / 60, i % 60) as usize == k)
                .collect();
            for r in 0..60 {
                for c in 0..59 {
                    assert!(
                        !(exact[r * 60 + c] && exact[r * 60 + c + 1]),
                        "k{k} r{r} c{c}"
                    );
                }
            }
            assert!(m.iter().filter(|x| **x).count() >= exact.iter().filter(|x| **x).count());
        }
    }

    #[test]
    fn an_input_mask_limits_resampling_and_bad_masks_are_errors() {
        let l = Lopar::default();
        let only_first_row: Vec<bool> = (0..3600).map(|i| i < 60).collect();
        let m = l.mask(1, 60, 60, Some(&only_first_row)).unwrap();
        assert!(m[60..].iter().all(|x| !x));
        assert!(m[..60].iter().any(|x| *x));
        assert!(l
            .mask(1, 60, 60, Some(&[true; 10]))
            .unwrap_err()
            .to_string()
            .contains("10 cells"));
        assert!(l.mask(7, 60, 60, None).is_err());
        assert!(Lopar {
            table: vec![],
            top_k: vec![1]
        }
        .validate()
        .is_err());
    }
}
