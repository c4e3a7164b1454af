//! Text-guided editing (CogView2's completion, spec §8), with any mask: what to regenerate and
//! the square crop around it. The stage-1 sequence CogLM fills in is in [`crate::stage1`].
//!
//! The official pipeline (`cogview2_completion.py`, `comp_pipeline/`) takes one rectangle; here a
//! mask is any set of pixels ([`EditMask`]), built from a mask image, rectangles in pixels or
//! fractions, or several of them. Everything after the mask follows the official algorithm:
//!
//! 1. the square crop around the mask's bounding box, 20/14 of its longer side
//!    ([`surrounding_square`], `PatchCompletion._surrounding_box_crop`);
//! 2. the crop's stage-1 grid and the mask brought to that grid by nearest sampling
//!    ([`EditMask::resize_nearest`], `F.interpolate(..., size=20) >= 0.5`);
//! 3. the completion sequence ([`crate::stage1::CompletionPlan`], `BaseCompletion`): context
//!    cells first (bidirectional), then in raster order each masked run preceded by its "block
//!    starter" (the unmasked cell just left of it), masked cells generated one at a time with the
//!    KV cache ([`crate::GlobalGenerator::complete`] of [`crate::stage1::CoglmGenerator`]) under
//!    [`crate::stage1::CompletionMask`];
//! 4. DSR, the original high-resolution tokens put back outside the mask, ItersR with the mask
//!    (only masked cells are re-sampled), decoding, pasting and the final VQ round trip (the
//!    pipeline).

use crate::error::{Error, Result};
use crate::types::Image;

/// Pixels to regenerate (`true`) on a `width × height` image, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditMask {
    width: usize,
    height: usize,
    cells: Vec<bool>,
}

/// A rectangle to regenerate.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Region {
    /// Pixel columns `left..right` and rows `top..bottom` (ends excluded) of the input image.
    Pixels {
        /// First column.
        left: usize,
        /// First row.
        top: usize,
        /// Column after the last.
        right: usize,
        /// Row after the last.
        bottom: usize,
    },
    /// Fractions of the image's width and height in `[0, 1]`. Rows `int(H·top)..int(H·bottom)`
    /// and columns `int(W·left)..int(W·right)`, as the official `cord2mask` computes them (its
    /// arguments are `h0, w0, h1, w1` = `top, left, bottom, right`).
    Fraction {
        /// Left edge, as a fraction of the width.
        left: f64,
        /// Top edge, as a fraction of the height.
        top: f64,
        /// Right edge, as a fraction of the width.
        right: f64,
        /// Bottom edge, as a fraction of the height.
        bottom: f64,
    },
}

/// Luminance at or above this (of 255) marks a pixel of a mask image for regeneration.
pub const MASK_THRESHOLD: u8 = 128;

impl EditMask {
    /// A `width × height` mask from its cells (row-major, `true` = regenerate).
    pub fn new(width: usize, height: usize, cells: Vec<bool>) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::invalid_input("mask", "the mask has no pixels"));
        }
        if cells.len() != width * height {
            return Err(Error::invalid_input(
                "mask",
                format!(
                    "{} values for a {width}x{height} mask ({} needed)",
                    cells.len(),
                    width * height
                ),
            ));
        }
        Ok(EditMask {
            width,
            height,
            cells,
        })
    }

    /// Nothing to regenerate.
    pub fn empty(width: usize, height: usize) -> Result<Self> {
        Self::new(width, height, vec![false; width * height])
    }

    /// Everything regenerated (editing then equals generation, up to the final VQ round trip).
    pub fn full(width: usize, height: usize) -> Result<Self> {
        Self::new(width, height, vec![true; width * height])
    }

    /// A mask image: white regenerates, black keeps. Pixels are thresholded on their luminance
    /// `(299 R + 587 G + 114 B) / 1000` at [`MASK_THRESHOLD`], so grey anti-aliased edges split
    /// at mid-grey; any other colour counts by its luminance.
    pub fn from_image(mask: &Image) -> Result<Self> {
        let cells = mask
            .pixels
            .chunks_exact(3)
            .map(|p| {
                let l = (299 * p[0] as u32 + 587 * p[1] as u32 + 114 * p[2] as u32) / 1000;
                l >= MASK_THRESHOLD as u32
            })
            .collect();
        Self::new(mask.width, mask.height, cells)
    }

    /// The union of `regions` on a `width × height` image.
    pub fn from_regions(width: usize, height: usize, regions: &[Region]) -> Result<Self> {
        let mut m = Self::empty(width, height)?;
        for r in regions {
            m.add(*r)?;
        }
        Ok(m)
    }

    /// Adds a rectangle to the mask (a union). Errors name the rectangle and the image size.
    pub fn add(&mut self, region: Region) -> Result<()> {
        let (w, h) = (self.width, self.height);
        let (left, top, right, bottom) = match region {
            Region::Pixels {
                left,
                top,
                right,
                bottom,
            } => {
                if right > w || bottom > h {
                    return Err(Error::invalid_input(
                        "mask",
                        format!(
                            "the rectangle x {left}..{right}, y {top}..{bottom} reaches outside the {w}x{h} image"
                        ),
                    ));
                }
                (left, top, right, bottom)
            }
            Region::Fraction {
                left,
                top,
                right,
                bottom,
            } => {
                for (name, v) in [
                    ("left", left),
                    ("top", top),
                    ("right", right),
                    ("bottom", bottom),
                ] {
                    if !(0.0..=1.0).contains(&v) {
                        return Err(Error::invalid_input(
                            "mask",
                            format!("the rectangle's {name} fraction {v} is not within [0, 1]"),
                        ));
                    }
                }
                let at = |f: f64, n: usize| (f * n as f64) as usize;
                (at(left, w), at(top, h), at(right, w), at(bottom, h))
            }
        };
        if left >= right || top >= bottom {
            return Err(Error::invalid_input(
                "mask",
                format!(
                    "the rectangle x {left}..{right}, y {top}..{bottom} (pixels, ends excluded) is empty; give left < right and top < bottom"
                ),
            ));
        }
        for y in top..bottom {
            self.cells[y * w + left..y * w + right].fill(true);
        }
        Ok(())
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// The cells, row-major.
    pub fn cells(&self) -> &[bool] {
        &self.cells
    }
    /// Whether pixel (`x`, `y`) is to be regenerated.
    pub fn get(&self, x: usize, y: usize) -> bool {
        self.cells[y * self.width + x]
    }
    /// Pixels to regenerate.
    pub fn count(&self) -> usize {
        self.cells.iter().filter(|c| **c).count()
    }
    /// Whether no pixel is to be regenerated.
    pub fn is_empty(&self) -> bool {
        !self.cells.iter().any(|c| *c)
    }

    /// The smallest box holding every marked pixel: `(top, left, bottom, right)`, ends excluded.
    pub fn bounding_box(&self) -> Option<(usize, usize, usize, usize)> {
        let mut b: Option<(usize, usize, usize, usize)> = None;
        for (i, _) in self.cells.iter().enumerate().filter(|(_, c)| **c) {
            let (y, x) = (i / self.width, i % self.width);
            b = Some(match b {
                None => (y, x, y + 1, x + 1),
                Some((t, l, bt, r)) => (t.min(y), l.min(x), bt.max(y + 1), r.max(x + 1)),
            });
        }
        b
    }

    /// The `side × side` square at (`top`, `left`).
    pub fn crop(&self, top: usize, left: usize, side: usize) -> Result<Self> {
        if top + side > self.height || left + side > self.width {
            return Err(Error::invalid_input(
                "crop",
                format!(
                    "a {side}-pixel square at ({left}, {top}) does not fit the {}x{} mask",
                    self.width, self.height
                ),
            ));
        }
        let cells = (top..top + side)
            .flat_map(|y| self.cells[y * self.width + left..y * self.width + left + side].to_vec())
            .collect();
        Self::new(side, side, cells)
    }

    /// Nearest-neighbour resampling as PyTorch's `F.interpolate(mode="nearest")`: output pixel
    /// `i` takes input pixel `floor(i · in / out)`. (`>= 0.5` on the resampled 0/1 mask, as the
    /// official code writes, changes nothing.)
    pub fn resize_nearest(&self, width: usize, height: usize) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::invalid_input(
                "mask",
                "cannot resize a mask to nothing",
            ));
        }
        let sx = self.width as f32 / width as f32;
        let sy = self.height as f32 / height as f32;
        let src = |i: usize, s: f32, n: usize| ((i as f32 * s).floor() as usize).min(n - 1);
        let mut cells = Vec::with_capacity(width * height);
        for y in 0..height {
            let sy = src(y, sy, self.height);
            for x in 0..width {
                cells.push(self.cells[sy * self.width + src(x, sx, self.width)]);
            }
        }
        Self::new(width, height, cells)
    }
}

/// A square of an image: rows `top..top+side`, columns `left..left+side`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Square {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Side in pixels.
    pub side: usize,
}

/// The official crop around a mask on a square image (`_surrounding_box_crop`): a square of side
/// `int(longer box side · 20 / 14)` centred on the mask's bounding box and moved inside the
/// image; the whole image when that side reaches the image's. `None` for an empty mask.
pub fn surrounding_square(mask: &EditMask) -> Result<Option<Square>> {
    let s = mask.width();
    if mask.height() != s {
        return Err(Error::invalid_input(
            "mask",
            format!(
                "the crop rule works on square images, not {}x{}",
                mask.width(),
                mask.height()
            ),
        ));
    }
    let Some((t, l, b, r)) = mask.bounding_box() else {
        return Ok(None);
    };
    // The official code works with inclusive maxima h1 = b - 1, w1 = r - 1.
    let (h0, w0, h1, w1) = (t as f64, l as f64, (b - 1) as f64, (r - 1) as f64);
    let (hc, wc) = ((h0 + h1) / 2.0, (w0 + w1) / 2.0);
    let lenh = ((h1 - h0 + 1.0) * 20.0 / 14.0) as i64;
    let lenw = ((w1 - w0 + 1.0) * 20.0 / 14.0) as i64;
    let lenm = lenh.max(lenw);
    let n = s as i64;
    if lenm >= n {
        return Ok(Some(Square {
            top: 0,
            left: 0,
            side: s,
        }));
    }
    let place = |c: f64| {
        // Python's int() truncates toward zero, as `as` does.
        let mut start = (c - lenm as f64 / 2.0) as i64;
        if start < 0 {
            start = 0;
        }
        if (c + lenm as f64 / 2.0) as i64 >= n {
            start = n - lenm;
        }
        start as usize
    };
    Ok(Some(Square {
        top: place(hc),
        left: place(wc),
        side: lenm as usize,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_rectangle_of_input_comp_txt() {
        // cord2mask(0.4, 0.2, 1, 0.9) on 480: rows 192..480, columns 96..432.
        let m = EditMask::from_regions(
            480,
            480,
            &[Region::Fraction {
                left: 0.2,
                top: 0.4,
                right: 0.9,
                bottom: 1.0,
            }],
        )
        .unwrap();
        assert_eq!(m.bounding_box(), Some((192, 96, 480, 432)));
        assert_eq!(m.count(), 288 * 336);
        // Box 288 x 336 -> int(336 * 20 / 14) = 480 >= 480: the whole image.
        assert_eq!(
            surrounding_square(&m).unwrap(),
            Some(Square {
                top: 0,
                left: 0,
                side: 480
            })
        );
        // The 20x20 mask: rows 8..20, columns 4..18.
        let small = m.resize_nearest(20, 20).unwrap();
        for r in 0..20 {
            for c in 0..20 {
                assert_eq!(small.get(c, r), r >= 8 && (4..18).contains(&c), "{r} {c}");
            }
        }
    }

    #[test]
    fn crop_square_is_centred_and_clamped_like_the_official_code() {
        // Box rows 100..170 (70 px), columns 200..240: side int(70 * 20 / 14) = 100,
        // hc = 134.5 -> top int(84.5) = 84; wc = 219.5 -> left 169.
        let m = EditMask::from_regions(
            480,
            480,
            &[Region::Pixels {
                left: 200,
                top: 100,
                right: 240,
                bottom: 170,
            }],
        )
        .unwrap();
        assert_eq!(
            surrounding_square(&m).unwrap(),
            Some(Square {
                top: 84,
                left: 169,
                side: 100
            })
        );
        // Near the bottom-right corner the square moves inside the image.
        let m = EditMask::from_regions(
            480,
            480,
            &[Region::Pixels {
                left: 440,
                top: 0,
                right: 480,
                bottom: 40,
            }],
        )
        .unwrap();
        // side int(40 * 20 / 14) = 57; top: int(19.5 - 28.5) = -9 -> 0; left: 480 - 57.
        assert_eq!(
            surrounding_square(&m).unwrap(),
            Some(Square {
                top: 0,
                left: 423,
                side: 57
            })
        );
        assert_eq!(
            surrounding_square(&EditMask::empty(8, 8).unwrap()).unwrap(),
            None
        );
    }

    #[test]
    fn mask_images_threshold_on_luminance_and_bad_rectangles_are_errors() {
        let img = Image::new(3, 1, vec![255, 255, 255, 127, 127, 127, 0, 255, 0]).unwrap();
        // white yes, dark grey no, pure green (luminance 149) yes.
        assert_eq!(
            EditMask::from_image(&img).unwrap().cells(),
            &[true, false, true]
        );
        let mut m = EditMask::empty(10, 10).unwrap();
        let e = m
            .add(Region::Pixels {
                left: 2,
                top: 2,
                right: 11,
                bottom: 5,
            })
            .unwrap_err();
        assert!(e.to_string().contains("outside the 10x10 image"), "{e}");
        let e = m
            .add(Region::Fraction {
                left: 0.5,
                top: 0.0,
                right: 0.5,
                bottom: 1.0,
            })
            .unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        let e = m
            .add(Region::Fraction {
                left: -0.1,
                top: 0.0,
                right: 0.5,
                bottom: 1.0,
            })
            .unwrap_err();
        assert!(e.to_string().contains("not within [0, 1]"), "{e}");
        assert!(EditMask::new(2, 2, vec![true; 3]).is_err());
    }

    #[test]
    fn nearest_resize_follows_torch() {
        // torch: F.interpolate(x[None,None], size=3, mode="nearest") of a length-7 row picks
        // floor(i * 7/3) = 0, 2, 4.
        let m = EditMask::new(7, 1, vec![true, false, false, true, true, false, false]).unwrap();
        let r = m.resize_nearest(3, 1).unwrap();
        assert_eq!(r.cells(), &[true, false, true]);
    }
}
