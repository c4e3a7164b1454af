//! The scene checker: finds the objects in an image and scores them against a scene.
//!
//! [`detect`] works on an image of any size (not only the renderer's) and is meant for the blurry,
//! noisy output of a generator:
//!
//! 1. A pixel is *ink* when its darkest channel is below [`INK_THRESHOLD`] (every palette colour
//!    has a channel of at most 60, white has none below 255), which puts the boundary of a
//!    blurred edge where the edge was. Background pockets enclosed by ink count as ink, so speckled
//!    objects keep their area.
//! 2. Ink is split into 8-connected components. A component wider or taller than any single object
//!    could be (two objects touching) is cut along the cell boundaries. Pieces smaller than
//!    [`MIN_OBJECT_AREA`] of a cell are specks and ignored; the rest go to the cell holding the
//!    centre of their bounding box, and the pieces of one cell form one object.
//! 3. Colour: each ink pixel votes for the palette colour whose line to white passes nearest to it
//!    (so anti-aliased and faded pixels vote for the colour they were mixed from); the majority wins.
//! 4. Size: the geometric mean of the bounding box's sides, as a fraction of the image's, is small
//!    below [`SIZE_THRESHOLD`] (objects are 0.20 or 0.30).
//! 5. Shape: a triangle has far less area in the top quarter of its box than in the bottom quarter
//!    (the *taper*: 1/7 for a triangle, 1 for the others); otherwise a square fills the corners of
//!    its bounding box and a circle leaves them mostly empty (it fills 0.31 of the four corner
//!    squares of a quarter side each). Corners discriminate better than the overall fill ratio
//!    (1 against π/4), which a one-pixel ragged edge shifts by 10% at small sizes.
//!
//! On clean renders and on renders blurred (3×3 box) with ±20 uniform noise per channel, every
//! single-object scene is classified right at every side from 64 to 480 px; the tests measure it.

use std::fmt;

use cogview_core::Image;

use crate::grammar::{Cell, Colour, Object, Scene, SceneError, Shape, Size};

/// A pixel whose darkest channel is below this is ink (part of an object).
pub const INK_THRESHOLD: u8 = 148;

/// Pieces of ink smaller than this fraction of a cell's area are specks, not objects.
pub const MIN_OBJECT_AREA: f32 = 0.015;

/// Bounding-box sides (geometric mean, as a fraction of the image side) below this are small.
pub const SIZE_THRESHOLD: f32 = 0.25;

/// A shape whose taper (top-quarter area over bottom-quarter area) is below this is a triangle.
pub const TRIANGLE_TAPER: f32 = 0.5;

/// A non-triangle that fills at least this fraction of its bounding box's corners is a square.
///
/// The corners are the four squares whose side is a quarter of the box's shorter side: a square
/// fills them, a circle about 0.31 of them, a triangle 0.375.
pub const SQUARE_CORNER_FILL: f32 = 0.52;

/// Components spanning more than this fraction of the image in either direction hold several
/// objects (one object spans at most 0.30; two in different cells at least 0.53).
const SPLIT_SPAN: f32 = 0.42;

/// An axis-aligned pixel rectangle, half-open: columns `x0..x1`, rows `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelBox {
    /// The first column.
    pub x0: usize,
    /// The first row.
    pub y0: usize,
    /// One past the last column.
    pub x1: usize,
    /// One past the last row.
    pub y1: usize,
}

impl PixelBox {
    /// The width in pixels.
    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }

    /// The height in pixels.
    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }
}

/// An object found in an image, with the measurements it was classified from.
#[derive(Debug, Clone, PartialEq)]
pub struct Detected {
    /// What the object was classified as.
    pub object: Object,
    /// Its bounding box.
    pub bbox: PixelBox,
    /// Its area in pixels (enclosed pockets included): the length of `pixels`.
    pub area_px: usize,
    /// Its pixels, as row-major indices `y · width + x` into the image, ascending within each
    /// piece of ink (enclosed pockets included); [`crate::Mask::from_indices`] makes them a mask.
    pub pixels: Vec<u32>,
    /// Area over bounding-box area: about 1 for a square, π/4 for a circle, 1/2 for a triangle.
    pub fill_ratio: f32,
    /// Area in the top quarter of the box over area in the bottom quarter: about 1/7 for a
    /// triangle, 1 for a circle or square.
    pub taper: f32,
    /// The filled fraction of the four corner squares of the bounding box (each of side a quarter
    /// of the box's shorter side): 1 for a square, about 0.31 for a circle, 0.375 for a triangle.
    pub corner_fill: f32,
    /// The share of its ink pixels that voted for the winning colour.
    pub colour_share: f32,
}

/// Why an image could not be checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The pixel buffer does not hold `width × height × 3` bytes.
    #[error("the pixel buffer holds {len} bytes, which is not 3 bytes per pixel of a {width}x{height} image")]
    PixelBuffer {
        /// The image's width.
        width: usize,
        /// The image's height.
        height: usize,
        /// The buffer's length.
        len: usize,
    },
    /// The image has more than `u32::MAX` pixels.
    #[error("a {width}x{height} image is too large to check (at most 2^32 - 1 pixels)")]
    TooLarge {
        /// The image's width.
        width: usize,
        /// The image's height.
        height: usize,
    },
    /// The expected scene is not valid.
    #[error("the expected scene is invalid: {0}")]
    InvalidScene(#[from] SceneError),
}

/// The objects in `image`, at most one per cell, in cell reading order.
///
/// See the [module documentation](self) for how objects are found and classified.
pub fn detect(image: &Image) -> Result<Vec<Detected>, CheckError> {
    let (w, h) = (image.width, image.height);
    // Pixels are indexed with u32 below.
    if w.checked_mul(h).is_none_or(|n| n > u32::MAX as usize) {
        return Err(CheckError::TooLarge {
            width: w,
            height: h,
        });
    }
    if (w * h).checked_mul(3) != Some(image.pixels.len()) {
        return Err(CheckError::PixelBuffer {
            width: w,
            height: h,
            len: image.pixels.len(),
        });
    }
    if w == 0 || h == 0 {
        return Ok(Vec::new());
    }
    let ink: Vec<bool> = image
        .pixels
        .chunks_exact(3)
        .map(|p| p[0].min(p[1]).min(p[2]) < INK_THRESHOLD)
        .collect();
    let solid = fill_pockets(&ink, w, h);
    let cell_area = (w * h) as f32 / 9.0;
    let min_area = (MIN_OBJECT_AREA * cell_area).max(1.0) as usize;

    let mut per_cell: [Vec<u32>; 9] = Default::default();
    for component in components(&solid, w, h) {
        let bbox = bounding_box(&component, w);
        let split = bbox.width() as f32 > SPLIT_SPAN * w as f32
            || bbox.height() as f32 > SPLIT_SPAN * h as f32;
        if split {
            let mut pieces: [Vec<u32>; 9] = Default::default();
            for &i in &component {
                let i = i as usize;
                pieces[cell_of(i % w, i / w, w, h).index()].push(i as u32);
            }
            for (cell, piece) in pieces.into_iter().enumerate() {
                if piece.len() >= min_area {
                    per_cell[cell].extend(piece);
                }
            }
        } else if component.len() >= min_area {
            // The cell of the box centre, (x0 + x1) / 2 in pixel edges.
            let cell = cell_of((bbox.x0 + bbox.x1) / 2, (bbox.y0 + bbox.y1) / 2, w, h);
            per_cell[cell.index()].extend(component);
        }
    }

    let lines = MixingLines::new();
    Ok(per_cell
        .into_iter()
        .zip(Cell::ALL)
        .filter_map(|(pixels, cell)| classify(image, &ink, &lines, pixels, cell))
        .collect())
}

/// The cell containing pixel (`x`, `y`) of a `w` × `h` image.
fn cell_of(x: usize, y: usize, w: usize, h: usize) -> Cell {
    let col = (x * 3 / w).min(2);
    let row = (y * 3 / h).min(2);
    Cell::ALL[row * 3 + col]
}

/// Ink plus every non-ink pixel that cannot reach the image border through non-ink (4-connected).
pub(crate) fn fill_pockets(ink: &[bool], w: usize, h: usize) -> Vec<bool> {
    let mut outside = vec![false; ink.len()];
    let mut stack: Vec<usize> = Vec::new();
    let seed = |i: usize, outside: &mut [bool], stack: &mut Vec<usize>| {
        if !ink[i] && !outside[i] {
            outside[i] = true;
            stack.push(i);
        }
    };
    for x in 0..w {
        seed(x, &mut outside, &mut stack);
        seed((h - 1) * w + x, &mut outside, &mut stack);
    }
    for y in 0..h {
        seed(y * w, &mut outside, &mut stack);
        seed(y * w + w - 1, &mut outside, &mut stack);
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        if x > 0 {
            seed(i - 1, &mut outside, &mut stack);
        }
        if x + 1 < w {
            seed(i + 1, &mut outside, &mut stack);
        }
        if y > 0 {
            seed(i - w, &mut outside, &mut stack);
        }
        if y + 1 < h {
            seed(i + w, &mut outside, &mut stack);
        }
    }
    outside.into_iter().map(|o| !o).collect()
}

/// The 8-connected components of `mask`, each as its pixel indices.
fn components(mask: &[bool], w: usize, h: usize) -> Vec<Vec<u32>> {
    let mut seen = vec![false; mask.len()];
    let mut out = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        let mut pixels = vec![start as u32];
        let mut next = 0;
        while next < pixels.len() {
            let i = pixels[next] as usize;
            next += 1;
            let (x, y) = (i % w, i / w);
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let j = ny * w + nx;
                    if mask[j] && !seen[j] {
                        seen[j] = true;
                        pixels.push(j as u32);
                    }
                }
            }
        }
        out.push(pixels);
    }
    out
}

/// The bounding box of a non-empty pixel list.
fn bounding_box(pixels: &[u32], w: usize) -> PixelBox {
    let mut b = PixelBox {
        x0: usize::MAX,
        y0: usize::MAX,
        x1: 0,
        y1: 0,
    };
    for &i in pixels {
        let (x, y) = (i as usize % w, i as usize / w);
        b.x0 = b.x0.min(x);
        b.y0 = b.y0.min(y);
        b.x1 = b.x1.max(x + 1);
        b.y1 = b.y1.max(y + 1);
    }
    b
}

/// The palette as lines from white: each colour's offset from white and its inverse squared length.
struct MixingLines([(Colour, [f32; 3], f32); 8]);

impl MixingLines {
    fn new() -> Self {
        MixingLines(Colour::ALL.map(|colour| {
            let d = colour.rgb().map(|c| f32::from(c) - 255.0);
            (colour, d, 1.0 / (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]))
        }))
    }

    /// The palette colour whose mixing line with white passes nearest to `rgb`.
    fn nearest(&self, rgb: &[u8]) -> Colour {
        let v = [
            f32::from(rgb[0]) - 255.0,
            f32::from(rgb[1]) - 255.0,
            f32::from(rgb[2]) - 255.0,
        ];
        let mut best = (f32::INFINITY, Colour::Black);
        for &(colour, d, inv_dd) in &self.0 {
            let t = ((v[0] * d[0] + v[1] * d[1] + v[2] * d[2]) * inv_dd).clamp(0.0, 1.0);
            let (r0, r1, r2) = (v[0] - t * d[0], v[1] - t * d[1], v[2] - t * d[2]);
            let r = r0 * r0 + r1 * r1 + r2 * r2;
            if r < best.0 {
                best = (r, colour);
            }
        }
        best.1
    }
}

/// The filled fraction of the four corner squares of `bbox`, each of side a quarter of the box's
/// shorter side. The squares' inner edges fall between pixels, so the pixels they cut count in part.
fn corner_fill(pixels: &[u32], w: usize, bbox: &PixelBox) -> f32 {
    let (bw, bh) = (bbox.width(), bbox.height());
    let k = 0.25 * bw.min(bh) as f32;
    // How much of the pixel `d` pixels in from an edge lies within `k` of it (nearer edge).
    let weight = |d_low: usize, d_high: usize| (k - d_low.min(d_high) as f32).clamp(0.0, 1.0);
    let wx = |x: usize| weight(x - bbox.x0, bbox.x1 - 1 - x);
    let wy = |y: usize| weight(y - bbox.y0, bbox.y1 - 1 - y);
    let filled: f32 = pixels
        .iter()
        .map(|&i| wx(i as usize % w) * wy(i as usize / w))
        .sum();
    let area: f32 =
        (bbox.x0..bbox.x1).map(wx).sum::<f32>() * (bbox.y0..bbox.y1).map(wy).sum::<f32>();
    filled / area
}

/// Classifies the pixels assigned to `cell` as one object, if they hold any ink.
fn classify(
    image: &Image,
    ink: &[bool],
    lines: &MixingLines,
    pixels: Vec<u32>,
    cell: Cell,
) -> Option<Detected> {
    let (w, h) = (image.width, image.height);
    let mut votes = [0usize; 8];
    for &i in &pixels {
        let i = i as usize;
        if ink[i] {
            votes[lines.nearest(&image.pixels[3 * i..3 * i + 3]) as usize] += 1;
        }
    }
    let total: usize = votes.iter().sum();
    if total == 0 {
        return None;
    }
    // The most votes; ties go to the colour listed first.
    let (best, &best_votes) = votes
        .iter()
        .enumerate()
        .max_by_key(|&(k, v)| (*v, std::cmp::Reverse(k)))?;
    let colour = Colour::ALL[best];

    let bbox = bounding_box(&pixels, w);
    let (bw, bh) = (bbox.width() as f32, bbox.height() as f32);
    let fill_ratio = pixels.len() as f32 / (bw * bh);
    let (mut top, mut bottom) = (0usize, 0usize);
    for &i in &pixels {
        let depth = ((i as usize / w - bbox.y0) as f32 + 0.5) / bh;
        if depth < 0.25 {
            top += 1;
        } else if depth > 0.75 {
            bottom += 1;
        }
    }
    let taper = top as f32 / bottom.max(1) as f32;
    let corner_fill = corner_fill(&pixels, w, &bbox);
    let shape = if taper < TRIANGLE_TAPER {
        Shape::Triangle
    } else if corner_fill >= SQUARE_CORNER_FILL {
        Shape::Square
    } else {
        Shape::Circle
    };
    let side = ((bw / w as f32) * (bh / h as f32)).sqrt();
    let size = if side < SIZE_THRESHOLD {
        Size::Small
    } else {
        Size::Large
    };
    Some(Detected {
        object: Object {
            size,
            colour,
            shape,
            cell,
        },
        bbox,
        area_px: pixels.len(),
        pixels,
        fill_ratio,
        taper,
        corner_fill,
        colour_share: best_votes as f32 / total as f32,
    })
}

/// How one expected object fared.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectCheck {
    /// The object the scene asked for.
    pub expected: Object,
    /// The detection matched to it: the one in its cell, else the nearest one of its colour that
    /// no other expected object took; `None` if there was none.
    pub detected: Option<Detected>,
    /// Whether the matched detection has the expected colour.
    pub colour: bool,
    /// Whether the matched detection has the expected shape.
    pub shape: bool,
    /// Whether the matched detection has the expected size.
    pub size: bool,
    /// Whether the matched detection is in the expected cell.
    pub cell: bool,
}

impl ObjectCheck {
    fn new(expected: Object, detected: Option<Detected>) -> Self {
        let got = detected.as_ref().map(|d| d.object);
        ObjectCheck {
            expected,
            colour: got.is_some_and(|g| g.colour == expected.colour),
            shape: got.is_some_and(|g| g.shape == expected.shape),
            size: got.is_some_and(|g| g.size == expected.size),
            cell: got.is_some_and(|g| g.cell == expected.cell),
            detected,
        }
    }

    /// Whether all four attributes matched.
    pub fn is_exact(&self) -> bool {
        self.colour && self.shape && self.size && self.cell
    }
}

/// Writes "ok", "missing", or the attributes that differ, after the expected object's phrase.
impl fmt::Display for ObjectCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.expected)?;
        let Some(found) = self.detected.as_ref().map(|d| d.object) else {
            return f.write_str("missing");
        };
        if self.is_exact() {
            return f.write_str("ok");
        }
        let mut wrong = Vec::new();
        if !self.colour {
            wrong.push(format!("colour {}", found.colour.name()));
        }
        if !self.shape {
            wrong.push(format!("shape {}", found.shape.name()));
        }
        if !self.size {
            wrong.push(format!("size {}", found.size.name()));
        }
        if !self.cell {
            wrong.push(format!("cell {}", found.cell.name()));
        }
        write!(f, "found {}", wrong.join(", "))
    }
}

/// The result of checking an image against a scene.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// One entry per expected object, in the scene's order.
    pub objects: Vec<ObjectCheck>,
    /// Detections matched to no expected object.
    pub extra: Vec<Detected>,
    /// Every expected object matched on all four attributes and nothing extra was detected.
    pub exact: bool,
}

impl CheckReport {
    /// Scores `detected` (as returned by [`detect`]) against `expected`.
    ///
    /// Each expected object, in order, takes the unclaimed detection in its cell; those left then
    /// take the unclaimed detection of their colour in the nearest cell (Chebyshev distance, ties
    /// to reading order). Unclaimed detections are extra.
    pub fn new(expected: &Scene, detected: Vec<Detected>) -> CheckReport {
        let mut claimed = vec![false; detected.len()];
        let mut matches: Vec<Option<usize>> = vec![None; expected.objects.len()];
        for (m, e) in matches.iter_mut().zip(&expected.objects) {
            *m = (0..detected.len()).find(|&j| !claimed[j] && detected[j].object.cell == e.cell);
            if let Some(j) = *m {
                claimed[j] = true;
            }
        }
        for (m, e) in matches.iter_mut().zip(&expected.objects) {
            if m.is_some() {
                continue;
            }
            *m = detected
                .iter()
                .enumerate()
                .filter(|(j, d)| !claimed[*j] && d.object.colour == e.colour)
                .min_by_key(|(j, d)| (cell_distance(d.object.cell, e.cell), *j))
                .map(|(j, _)| j);
            if let Some(j) = *m {
                claimed[j] = true;
            }
        }
        let mut slots: Vec<Option<Detected>> = detected.into_iter().map(Some).collect();
        let objects: Vec<ObjectCheck> = matches
            .iter()
            .zip(&expected.objects)
            .map(|(m, e)| ObjectCheck::new(*e, m.and_then(|j| slots[j].take())))
            .collect();
        let extra: Vec<Detected> = slots.into_iter().flatten().collect();
        let exact = extra.is_empty() && objects.iter().all(ObjectCheck::is_exact);
        CheckReport {
            objects,
            extra,
            exact,
        }
    }
}

/// Writes one line per expected object, then one per extra detection.
impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, object) in self.objects.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{object}")?;
        }
        for d in &self.extra {
            write!(f, "\nextra: {}", d.object)?;
        }
        Ok(())
    }
}

fn cell_distance(a: Cell, b: Cell) -> usize {
    a.row().abs_diff(b.row()).max(a.col().abs_diff(b.col()))
}

/// Detects the objects in `image` and scores them against `expected` (see [`CheckReport::new`]).
///
/// ```
/// use cogview_scenes::{check, render, Scene};
/// let scene = Scene::parse("a small yellow triangle at the top left and a large red circle in the center").unwrap();
/// let image = render(&scene, 160).unwrap();
/// assert!(check(&image, &scene).unwrap().exact);
/// let other = Scene::parse("a small yellow triangle at the top left and a large red square in the center").unwrap();
/// let report = check(&image, &other).unwrap();
/// assert!(!report.exact && !report.objects[1].shape && report.objects[1].colour);
/// ```
pub fn check(image: &Image, expected: &Scene) -> Result<CheckReport, CheckError> {
    expected.validate()?;
    Ok(CheckReport::new(expected, detect(image)?))
}

/// Counts over many [`CheckReport`]s: per-attribute accuracy and the exact-scene rate.
///
/// Attribute accuracies are over expected objects; an object with no matched detection counts as
/// wrong on every attribute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Accuracy {
    /// Reports added.
    pub scenes: usize,
    /// Reports that were exact.
    pub exact_scenes: usize,
    /// Expected objects.
    pub objects: usize,
    /// Expected objects matched on all four attributes.
    pub exact_objects: usize,
    /// Expected objects whose colour matched.
    pub colour: usize,
    /// Expected objects whose shape matched.
    pub shape: usize,
    /// Expected objects whose size matched.
    pub size: usize,
    /// Expected objects whose cell matched.
    pub cell: usize,
    /// Extra detections.
    pub extra: usize,
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl Accuracy {
    /// Adds one report.
    pub fn add(&mut self, report: &CheckReport) {
        self.scenes += 1;
        self.exact_scenes += usize::from(report.exact);
        self.extra += report.extra.len();
        for o in &report.objects {
            self.objects += 1;
            self.exact_objects += usize::from(o.is_exact());
            self.colour += usize::from(o.colour);
            self.shape += usize::from(o.shape);
            self.size += usize::from(o.size);
            self.cell += usize::from(o.cell);
        }
    }

    /// Adds another tally (for example one from a parallel worker).
    pub fn merge(&mut self, other: &Accuracy) {
        self.scenes += other.scenes;
        self.exact_scenes += other.exact_scenes;
        self.objects += other.objects;
        self.exact_objects += other.exact_objects;
        self.colour += other.colour;
        self.shape += other.shape;
        self.size += other.size;
        self.cell += other.cell;
        self.extra += other.extra;
    }

    /// The fraction of scenes checked exact; `None` before any report.
    pub fn exact_rate(&self) -> Option<f64> {
        ratio(self.exact_scenes, self.scenes)
    }

    /// The fraction of objects matched on all four attributes; `None` before any object.
    pub fn object_accuracy(&self) -> Option<f64> {
        ratio(self.exact_objects, self.objects)
    }

    /// The fraction of objects with the right colour; `None` before any object.
    pub fn colour_accuracy(&self) -> Option<f64> {
        ratio(self.colour, self.objects)
    }

    /// The fraction of objects with the right shape; `None` before any object.
    pub fn shape_accuracy(&self) -> Option<f64> {
        ratio(self.shape, self.objects)
    }

    /// The fraction of objects with the right size; `None` before any object.
    pub fn size_accuracy(&self) -> Option<f64> {
        ratio(self.size, self.objects)
    }

    /// The fraction of objects in the right cell; `None` before any object.
    pub fn cell_accuracy(&self) -> Option<f64> {
        ratio(self.cell, self.objects)
    }
}

impl<'a> Extend<&'a CheckReport> for Accuracy {
    fn extend<I: IntoIterator<Item = &'a CheckReport>>(&mut self, reports: I) {
        for report in reports {
            self.add(report);
        }
    }
}

impl<'a> FromIterator<&'a CheckReport> for Accuracy {
    fn from_iter<I: IntoIterator<Item = &'a CheckReport>>(reports: I) -> Self {
        let mut acc = Accuracy::default();
        acc.extend(reports);
        acc
    }
}

/// Writes e.g. "exact 97.0% of 100 scenes; colour 99.0%, shape 98.5%, size 100.0%, cell 100.0% of
/// 200 objects; 1 extra".
impl fmt::Display for Accuracy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.1}%", 100.0 * r));
        write!(
            f,
            "exact {} of {} scenes; colour {}, shape {}, size {}, cell {} of {} objects; {} extra",
            pct(self.exact_rate()),
            self.scenes,
            pct(self.colour_accuracy()),
            pct(self.shape_accuracy()),
            pct(self.size_accuracy()),
            pct(self.cell_accuracy()),
            self.objects,
            self.extra
        )
    }
}
