//! Pixel masks of objects and how well two of them agree (intersection over union): how faithfully
//! a drawn object follows the shape of the ideal render ([`shape_fidelity`]).
//!
//! A mask marks an object's pixels the way the checker sees them ([`Mask::ink`]): a pixel is ink
//! when its darkest channel is below [`crate::check::INK_THRESHOLD`], and background pockets
//! enclosed by ink count as ink. The ideal mask of an object ([`object_mask`]) is that of its
//! clean render, so a clean render's detected objects overlap their ideal masks exactly (IoU 1).

use cogview_core::Image;

use crate::check::{fill_pockets, CheckError, CheckReport, INK_THRESHOLD};
use crate::grammar::{Object, Scene};
use crate::render::{render, RenderError};

/// A set of pixels of a `width` × `height` image.
#[derive(Clone, PartialEq, Eq)]
pub struct Mask {
    width: usize,
    height: usize,
    bits: Vec<bool>,
}

/// Writes the size and the number of pixels set (not every pixel).
impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Mask({}x{}, {} set)",
            self.width,
            self.height,
            self.count()
        )
    }
}

impl Mask {
    /// A mask with no pixel set.
    pub fn empty(width: usize, height: usize) -> Mask {
        Mask {
            width,
            height,
            bits: vec![false; width * height],
        }
    }

    /// The pixels (`x`, `y`) for which `inside` is true.
    pub fn from_fn(width: usize, height: usize, inside: impl Fn(usize, usize) -> bool) -> Mask {
        let mut bits = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                bits.push(inside(x, y));
            }
        }
        Mask {
            width,
            height,
            bits,
        }
    }

    /// The pixels at row-major indices `y · width + x` (as in [`crate::Detected::pixels`]).
    ///
    /// # Panics
    ///
    /// If an index is outside the image.
    pub fn from_indices(width: usize, height: usize, indices: &[u32]) -> Mask {
        let mut m = Mask::empty(width, height);
        for &i in indices {
            let i = i as usize;
            assert!(
                i < m.bits.len(),
                "pixel index {i} outside a {width}x{height} mask"
            );
            m.bits[i] = true;
        }
        m
    }

    /// The ink of `image` as the checker sees it: pixels whose darkest channel is below
    /// [`INK_THRESHOLD`], plus the background pockets they enclose.
    pub fn ink(image: &Image) -> Result<Mask, CheckError> {
        let (w, h) = (image.width, image.height);
        if w.checked_mul(h).and_then(|n| n.checked_mul(3)) != Some(image.pixels.len()) {
            return Err(CheckError::PixelBuffer {
                width: w,
                height: h,
                len: image.pixels.len(),
            });
        }
        if w == 0 || h == 0 {
            return Ok(Mask::empty(w, h));
        }
        let ink: Vec<bool> = image
            .pixels
            .chunks_exact(3)
            .map(|p| p[0].min(p[1]).min(p[2]) < INK_THRESHOLD)
            .collect();
        Ok(Mask {
            width: w,
            height: h,
            bits: fill_pockets(&ink, w, h),
        })
    }

    /// The width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Whether pixel (`x`, `y`) is set (false outside the mask).
    pub fn contains(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.height && self.bits[y * self.width + x]
    }

    /// The number of pixels set.
    pub fn count(&self) -> usize {
        self.bits.iter().filter(|&&b| b).count()
    }

    /// The number of pixels set in both masks.
    ///
    /// # Panics
    ///
    /// If the masks differ in size.
    pub fn intersection(&self, other: &Mask) -> usize {
        self.same_size(other);
        self.bits
            .iter()
            .zip(&other.bits)
            .filter(|(a, b)| **a && **b)
            .count()
    }

    /// The number of pixels set in either mask.
    ///
    /// # Panics
    ///
    /// If the masks differ in size.
    pub fn union(&self, other: &Mask) -> usize {
        self.same_size(other);
        self.bits
            .iter()
            .zip(&other.bits)
            .filter(|(a, b)| **a || **b)
            .count()
    }

    /// Intersection over union, in [0, 1]: 1 for the same pixels, 0 for disjoint ones; `None`
    /// when both masks are empty.
    ///
    /// ```
    /// use cogview_scenes::Mask;
    /// // Two 2×2 squares, the second one pixel to the right: 2 pixels shared of 6.
    /// let a = Mask::from_fn(4, 4, |x, y| x < 2 && y < 2);
    /// let b = Mask::from_fn(4, 4, |x, y| (1..3).contains(&x) && y < 2);
    /// assert_eq!(a.iou(&b), Some(2.0 / 6.0));
    /// ```
    ///
    /// # Panics
    ///
    /// If the masks differ in size.
    pub fn iou(&self, other: &Mask) -> Option<f64> {
        let union = self.union(other);
        (union > 0).then(|| self.intersection(other) as f64 / union as f64)
    }

    fn same_size(&self, other: &Mask) {
        assert!(
            (self.width, self.height) == (other.width, other.height),
            "masks of different sizes: {}x{} and {}x{}",
            self.width,
            self.height,
            other.width,
            other.height
        );
    }
}

/// The ideal pixels of `object` on a `side_px` canvas: the [`Mask::ink`] of its clean
/// [`render`]. Objects never overlap, so this is also its part of the render of any scene
/// holding it.
pub fn object_mask(object: &Object, side_px: usize) -> Result<Mask, RenderError> {
    let image = render(&Scene::new(vec![*object])?, side_px)?;
    Ok(Mask::ink(&image).expect("a render holds 3 bytes per pixel"))
}

/// The shape fidelity of each correctly detected object of `report` (the checker's verdict on a
/// `side_px` × `side_px` image): the IoU of the detected object's pixels with its
/// [`object_mask`]. An object counts as correctly detected when it matched on colour, shape, size
/// and cell ([`crate::ObjectCheck::is_exact`]); the others give no value.
///
/// ```
/// use cogview_scenes::{check, render, shape_fidelity, Scene};
/// let scene = Scene::parse("a small red triangle at the top and a large blue circle at the left")?;
/// let report = check(&render(&scene, 120)?, &scene)?;
/// // A clean render is its own ideal.
/// assert_eq!(shape_fidelity(&report, 120)?, [1.0, 1.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn shape_fidelity(report: &CheckReport, side_px: usize) -> Result<Vec<f64>, RenderError> {
    let mut out = Vec::new();
    for o in &report.objects {
        let Some(d) = o.detected.as_ref().filter(|_| o.is_exact()) else {
            continue;
        };
        let ideal = object_mask(&o.expected, side_px)?;
        let drawn = Mask::from_indices(side_px, side_px, &d.pixels);
        // The detection has at least one pixel, so the union is never empty.
        out.push(drawn.iou(&ideal).unwrap_or(0.0));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::check;

    fn square(w: usize, x0: usize, y0: usize, s: usize) -> Mask {
        Mask::from_fn(w, w, |x, y| {
            (x0..x0 + s).contains(&x) && (y0..y0 + s).contains(&y)
        })
    }

    #[test]
    fn hand_computed_overlaps() {
        let a = square(4, 0, 0, 2);
        assert_eq!(a.count(), 4);
        assert_eq!(a.iou(&a), Some(1.0));
        // One pixel right: 2 shared of 6.
        assert_eq!(a.iou(&square(4, 1, 0, 2)), Some(2.0 / 6.0));
        // One pixel right and down: 1 shared of 7.
        assert_eq!(a.iou(&square(4, 1, 1, 2)), Some(1.0 / 7.0));
        // Disjoint.
        assert_eq!(a.iou(&square(4, 2, 2, 2)), Some(0.0));
        // A square inside a bigger one: the smaller's area over the bigger's.
        assert_eq!(
            square(8, 2, 2, 2).iou(&square(8, 0, 0, 4)),
            Some(4.0 / 16.0)
        );
        assert_eq!(Mask::empty(3, 3).iou(&Mask::empty(3, 3)), None);
        assert_eq!(Mask::empty(3, 3).iou(&square(3, 0, 0, 1)), Some(0.0));
        let m = Mask::from_indices(3, 2, &[0, 4, 5]);
        assert!(m.contains(0, 0) && m.contains(1, 1) && m.contains(2, 1) && !m.contains(1, 0));
        assert!(!m.contains(3, 0) && !m.contains(0, 2));
        assert_eq!(format!("{m:?}"), "Mask(3x2, 3 set)");
    }

    #[test]
    #[should_panic(expected = "different sizes")]
    fn masks_of_different_sizes_are_refused() {
        Mask::empty(2, 2).iou(&Mask::empty(2, 3));
    }

    /// `image` moved `dx` pixels right and `dy` down, white coming in.
    fn shifted(image: &Image, dx: usize, dy: usize) -> Image {
        let w = image.width;
        let mut out = vec![255u8; image.pixels.len()];
        for y in dy..image.height {
            for x in dx..w {
                let (to, from) = ((y * w + x) * 3, ((y - dy) * w + x - dx) * 3);
                out[to..to + 3].copy_from_slice(&image.pixels[from..from + 3]);
            }
        }
        Image {
            width: w,
            height: image.height,
            pixels: out,
        }
    }

    #[test]
    fn a_rendered_square_against_itself_shifted_by_k_pixels() {
        // At 100 px a large square in the centre covers columns and rows 35..65 exactly: 30×30
        // pixels, no anti-aliased edge.
        let scene = Scene::parse("a large red square in the center").unwrap();
        let object = scene.objects[0];
        let ideal = object_mask(&object, 100).unwrap();
        assert_eq!(ideal, square(100, 35, 35, 30));
        let image = render(&scene, 100).unwrap();
        for k in [0usize, 1, 2, 5, 10, 29] {
            // Shifted sideways: 30·(30−k) shared of 30·(30+k).
            let side = Mask::ink(&shifted(&image, k, 0)).unwrap();
            let want = (30 - k) as f64 / (30 + k) as f64;
            assert!((side.iou(&ideal).unwrap() - want).abs() < 1e-12, "k = {k}");
            // Diagonally: (30−k)² shared of 2·900 − (30−k)².
            let diag = Mask::ink(&shifted(&image, k, k)).unwrap();
            let shared = ((30 - k) * (30 - k)) as f64;
            let want = shared / (1800.0 - shared);
            assert!((diag.iou(&ideal).unwrap() - want).abs() < 1e-12, "k = {k}");
        }
        assert_eq!(
            Mask::ink(&shifted(&image, 30, 0)).unwrap().iou(&ideal),
            Some(0.0)
        );
    }

    #[test]
    fn the_fidelity_of_a_shifted_object_is_that_of_its_pixels() {
        // Shifted by 3 px the square is still found, in its cell, with its attributes: its
        // fidelity is the IoU of the shift.
        let scene = Scene::parse("a large red square in the center").unwrap();
        let image = shifted(&render(&scene, 100).unwrap(), 3, 0);
        let report = check(&image, &scene).unwrap();
        assert!(report.exact, "{report}");
        assert_eq!(shape_fidelity(&report, 100).unwrap(), [27.0 / 33.0]);
        // An object with a wrong attribute gives no value.
        let other = Scene::parse("a large red circle in the center").unwrap();
        let report = check(&image, &other).unwrap();
        assert!(shape_fidelity(&report, 100).unwrap().is_empty());
    }

    #[test]
    fn a_clean_render_is_its_own_ideal_for_every_shape_size_and_side() {
        let mut sampler = crate::SceneSampler::new(5, crate::Split::Compositions);
        for side in [64, 99, 160, 216] {
            for n in 1..=3 {
                let scene = sampler.sample_train(n..=n).unwrap();
                let report = check(&render(&scene, side).unwrap(), &scene).unwrap();
                assert!(report.exact, "{scene} at {side}: {report}");
                assert_eq!(shape_fidelity(&report, side).unwrap(), vec![1.0; n]);
            }
        }
        // Every single object, at the default model's size.
        for scene in crate::split::single_object_scenes() {
            let report = check(&render(&scene, 216).unwrap(), &scene).unwrap();
            assert_eq!(shape_fidelity(&report, 216).unwrap(), [1.0], "{scene}");
        }
    }
}
