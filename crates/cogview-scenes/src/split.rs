//! The train / held-out splits and the seeded scene samplers.
//!
//! Two splits exist ([`Split`]); both are fixed properties of each scene, so a scene's side never
//! depends on a seed.
//!
//! * [`Split::Compositions`] (the default, and what `models/default` is trained on): every single
//!   object is trained on, and a fixed tenth of the two- and three-object scenes is held out
//!   ([`is_heldout_composition`]): a scene is held out if it has at least two objects and the
//!   [`composition_key`] of its object set is divisible by [`HELDOUT_COMPOSITION_MODULUS`]. Every
//!   object of a held-out composition occurs in training; only the combination is new.
//! * [`Split::AttributePairs`] (the experiment of the first default models): an object is *held
//!   out* if its (colour, shape) pair is in [`HELDOUT_COLOUR_SHAPE`] or its (shape, cell) pair is
//!   in [`HELDOUT_SHAPE_CELL`], and a scene is held out if **any** of its objects is
//!   ([`Scene::is_heldout`]). Training scenes therefore contain held-out words only in
//!   combinations seen in training: every colour, shape and position still occurs in training,
//!   just never in the held-out combinations.

use std::ops::RangeInclusive;

use cogview_core::Rng;

use crate::grammar::{Cell, Colour, Object, Scene, Shape, Size, MAX_OBJECTS};

/// The (colour, shape) pairs never trained on. Each colour appears at most once and each shape at
/// most twice.
pub const HELDOUT_COLOUR_SHAPE: [(Colour, Shape); 4] = [
    (Colour::Red, Shape::Square),
    (Colour::Green, Shape::Triangle),
    (Colour::Blue, Shape::Circle),
    (Colour::Orange, Shape::Triangle),
];

/// The (shape, cell) pairs never trained on: one cell per shape.
pub const HELDOUT_SHAPE_CELL: [(Shape, Cell); 3] = [
    (Shape::Circle, Cell::TopRight),
    (Shape::Square, Cell::BottomLeft),
    (Shape::Triangle, Cell::Center),
];

impl Object {
    /// Whether the object uses a held-out (colour, shape) or (shape, cell) combination: the
    /// held-out objects of [`Split::AttributePairs`] (no object is held out under
    /// [`Split::Compositions`]).
    pub fn is_heldout(&self) -> bool {
        HELDOUT_COLOUR_SHAPE.contains(&(self.colour, self.shape))
            || HELDOUT_SHAPE_CELL.contains(&(self.shape, self.cell))
    }
}

impl Scene {
    /// Whether any object of the scene is held out ([`Object::is_heldout`]): the held-out scenes
    /// of [`Split::AttributePairs`]. For either split, see [`Split::is_heldout`].
    pub fn is_heldout(&self) -> bool {
        self.objects.iter().any(Object::is_heldout)
    }
}

/// Which scenes are held out of training (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Split {
    /// Every single object trained on; a fixed tenth of the two- and three-object scenes held out
    /// ([`is_heldout_composition`]). The default, and the split of `models/default`.
    #[default]
    Compositions,
    /// Four (colour, shape) and three (shape, cell) pairs held out in every scene that has them
    /// ([`Scene::is_heldout`]): the unseen-pair experiment of the first default models.
    AttributePairs,
}

impl Split {
    /// Both splits, the default first.
    pub const ALL: [Split; 2] = [Split::Compositions, Split::AttributePairs];

    /// The split's name on the command line and in training states: `compositions` or
    /// `attribute-pairs`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Compositions => "compositions",
            Split::AttributePairs => "attribute-pairs",
        }
    }

    /// The split called `name` ([`Split::name`]).
    pub fn from_name(name: &str) -> Option<Split> {
        Split::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether `scene` is held out of training under this split.
    pub fn is_heldout(self, scene: &Scene) -> bool {
        match self {
            Split::Compositions => is_heldout_composition(scene),
            Split::AttributePairs => scene.is_heldout(),
        }
    }

    /// The fewest objects a held-out scene of this split has (2 for compositions).
    pub fn min_heldout_objects(self) -> usize {
        match self {
            Split::Compositions => 2,
            Split::AttributePairs => 1,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A split name that is not one of [`Split::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown split {0:?}: give `compositions` or `attribute-pairs`")]
pub struct UnknownSplit(pub String);

impl std::str::FromStr for Split {
    type Err = UnknownSplit;
    fn from_str(s: &str) -> Result<Split, UnknownSplit> {
        Split::from_name(s).ok_or_else(|| UnknownSplit(s.to_string()))
    }
}

/// Under [`Split::Compositions`], a scene with at least two objects is held out when its
/// [`composition_key`] is a multiple of this: about a tenth of the two- and three-object scenes.
pub const HELDOUT_COMPOSITION_MODULUS: u64 = 10;

/// The object's place in [`Object::all`] (0..432): `cell · 48 + size · 24 + colour · 3 + shape`,
/// each word by its place in its `ALL` list.
pub fn object_index(o: &Object) -> usize {
    let at = |i: Option<usize>| i.expect("every word is in its ALL list");
    o.cell.index() * 48
        + at(Size::ALL.iter().position(|s| *s == o.size)) * 24
        + at(Colour::ALL.iter().position(|c| *c == o.colour)) * 3
        + at(Shape::ALL.iter().position(|s| *s == o.shape))
}

/// The split's fixed hash of a scene's *set* of objects (the order of the objects in the caption
/// does not matter): the [`object_index`]es in increasing order, folded with SplitMix64's
/// finaliser, `h ← mix(h · 512 + index + 1)` from `h = 0`. This definition is part of the
/// split: changing it changes which compositions are held out.
pub fn composition_key(scene: &Scene) -> u64 {
    let mut indices: Vec<u64> = scene
        .objects
        .iter()
        .map(|o| object_index(o) as u64)
        .collect();
    indices.sort_unstable();
    indices.into_iter().fold(0u64, |h, i| {
        splitmix64(h.wrapping_mul(512).wrapping_add(i + 1))
    })
}

/// Whether the scene is a held-out composition of [`Split::Compositions`]: two or more objects and
/// a [`composition_key`] divisible by [`HELDOUT_COMPOSITION_MODULUS`]. Single objects are never
/// held out.
pub fn is_heldout_composition(scene: &Scene) -> bool {
    scene.objects.len() >= 2 && composition_key(scene).is_multiple_of(HELDOUT_COMPOSITION_MODULUS)
}

/// SplitMix64's output function (Steele, Lea and Flood 2014).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Every valid single-object scene (432), in grammar order.
pub fn single_object_scenes() -> Vec<Scene> {
    Object::all()
        .map(|object| Scene {
            objects: vec![object],
        })
        .collect()
}

/// Every held-out single-object scene of [`Split::AttributePairs`] (112 of the 432), in grammar
/// order ([`Split::Compositions`] holds no single object out).
pub fn heldout_single_object_scenes() -> Vec<Scene> {
    single_object_scenes()
        .into_iter()
        .filter(Scene::is_heldout)
        .collect()
}

/// An object count outside what a sampler can produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("object counts must lie in {lowest}..={MAX_OBJECTS}{}, not {min}..={max}", if *lowest > 1 { " for held-out compositions" } else { "" })]
pub struct ObjectCountError {
    /// The smallest count asked for.
    pub min: usize,
    /// The largest count asked for.
    pub max: usize,
    /// The smallest count the sampler can give: 1, or 2 for held-out scenes of
    /// [`Split::Compositions`].
    pub lowest: usize,
}

/// A seeded sampler of scenes from either side of a [`Split`].
///
/// The stream for a seed and split is fixed: the same seed, split and sequence of calls give the
/// same scenes on every platform. Sampled scenes list their objects in cell reading order, so each
/// image has exactly one caption.
///
/// ```
/// use cogview_scenes::{SceneSampler, Split};
/// let mut sampler = SceneSampler::new(7, Split::Compositions);
/// let train = sampler.sample_train(1..=3).unwrap();
/// assert!(!Split::Compositions.is_heldout(&train));
/// let test = sampler.sample_heldout(2).unwrap();
/// assert!(Split::Compositions.is_heldout(&test) && test.objects.len() == 2);
///
/// let mut pairs = SceneSampler::new(7, Split::AttributePairs);
/// assert!(!pairs.sample_train(1..=3).unwrap().is_heldout());
/// assert!(pairs.sample_heldout(1).unwrap().is_heldout());
/// ```
#[derive(Debug, Clone)]
pub struct SceneSampler {
    rng: Rng,
    split: Split,
}

impl SceneSampler {
    /// A sampler of `split` whose whole stream is determined by `seed`.
    pub fn new(seed: u64, split: Split) -> Self {
        SceneSampler {
            rng: Rng::from_seed(seed),
            split,
        }
    }

    /// The split it samples.
    pub fn split(&self) -> Split {
        self.split
    }

    /// A training (not held-out) scene with a uniformly drawn object count from `n_objects`.
    ///
    /// The occupied cells are a uniform choice of distinct cells. Under
    /// [`Split::AttributePairs`], each object is uniform over the non-held-out objects allowed in
    /// its cell; under [`Split::Compositions`], the scene is uniform over the scenes of that count
    /// that are not held out (uniform draws, the held-out ones redrawn).
    pub fn sample_train(
        &mut self,
        n_objects: RangeInclusive<usize>,
    ) -> Result<Scene, ObjectCountError> {
        let (min, max) = (*n_objects.start(), *n_objects.end());
        if min < 1 || max > MAX_OBJECTS || min > max {
            return Err(ObjectCountError {
                min,
                max,
                lowest: 1,
            });
        }
        let n = min + self.below(max - min + 1);
        Ok(match self.split {
            Split::AttributePairs => {
                let cells = self.distinct_cells(n);
                let objects = cells
                    .into_iter()
                    .map(|cell| self.pick(cell, |o| !o.is_heldout()))
                    .collect();
                sorted_scene(objects)
            }
            Split::Compositions => loop {
                let scene = self.uniform_scene(n);
                if !is_heldout_composition(&scene) {
                    break scene;
                }
            },
        })
    }

    /// A held-out scene with exactly `n_objects` objects (at least
    /// [`Split::min_heldout_objects`]).
    ///
    /// Under [`Split::AttributePairs`], the occupied cells are a uniform choice of distinct
    /// cells; one of them, chosen uniformly, holds an object drawn uniformly from the held-out
    /// objects allowed there, and the others are uniform over all objects. Under
    /// [`Split::Compositions`], the scene is uniform over the held-out compositions of that count
    /// (uniform draws, the others redrawn). Every held-out scene with `n_objects` objects can be
    /// drawn.
    pub fn sample_heldout(&mut self, n_objects: usize) -> Result<Scene, ObjectCountError> {
        let lowest = self.split.min_heldout_objects();
        if !(lowest..=MAX_OBJECTS).contains(&n_objects) {
            return Err(ObjectCountError {
                min: n_objects,
                max: n_objects,
                lowest,
            });
        }
        if self.split == Split::Compositions {
            return Ok(loop {
                let scene = self.uniform_scene(n_objects);
                if is_heldout_composition(&scene) {
                    break scene;
                }
            });
        }
        let cells = self.distinct_cells(n_objects);
        let witness = self.below(n_objects);
        let objects = cells
            .into_iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == witness {
                    self.pick(cell, Object::is_heldout)
                } else {
                    self.pick(cell, |_| true)
                }
            })
            .collect();
        Ok(sorted_scene(objects))
    }

    /// A uniform scene of `n` objects: distinct cells, each object uniform over the 48 of its
    /// cell.
    fn uniform_scene(&mut self, n: usize) -> Scene {
        let cells = self.distinct_cells(n);
        let objects = cells
            .into_iter()
            .map(|cell| {
                let i = self.below(48);
                Object {
                    size: Size::ALL[i / 24],
                    colour: Colour::ALL[i / 3 % 8],
                    shape: Shape::ALL[i % 3],
                    cell,
                }
            })
            .collect();
        sorted_scene(objects)
    }

    /// A uniform integer in `0..k` (`k >= 1`), by Lemire's multiply-shift.
    fn below(&mut self, k: usize) -> usize {
        ((u128::from(self.rng.next_u64()) * k as u128) >> 64) as usize
    }

    /// `n` distinct cells, a uniform choice (partial Fisher–Yates shuffle).
    fn distinct_cells(&mut self, n: usize) -> Vec<Cell> {
        let mut cells = Cell::ALL;
        for i in 0..n {
            let j = i + self.below(cells.len() - i);
            cells.swap(i, j);
        }
        cells[..n].to_vec()
    }

    /// A uniform choice among the objects in `cell` that satisfy `keep`. Every cell has both
    /// held-out objects (the held-out colour-shape pairs) and training ones, so the candidate list
    /// is never empty for the filters used here.
    fn pick(&mut self, cell: Cell, keep: impl Fn(&Object) -> bool) -> Object {
        let candidates: Vec<Object> = Object::all()
            .filter(|o| o.cell == cell && keep(o))
            .collect();
        let i = self.below(candidates.len());
        candidates[i]
    }
}

fn sorted_scene(mut objects: Vec<Object>) -> Scene {
    objects.sort_by_key(|o| o.cell);
    Scene { objects }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lists_follow_the_documented_limits() {
        for colour in Colour::ALL {
            let n = HELDOUT_COLOUR_SHAPE
                .iter()
                .filter(|(c, _)| *c == colour)
                .count();
            assert!(n <= 1, "{colour:?} held out {n} times");
        }
        for shape in Shape::ALL {
            let n = HELDOUT_COLOUR_SHAPE
                .iter()
                .filter(|(_, s)| *s == shape)
                .count();
            assert!(n <= 2, "{shape:?} held out with {n} colours");
            let n = HELDOUT_SHAPE_CELL
                .iter()
                .filter(|(s, _)| *s == shape)
                .count();
            assert_eq!(n, 1, "{shape:?} held out at {n} cells");
        }
        // 4 pairs × 2 sizes × 9 cells + 3 (shape, cell) × 8 colours × 2 sizes − 4 overlaps × 2 sizes.
        assert_eq!(heldout_single_object_scenes().len(), 72 + 48 - 8);
    }

    #[test]
    fn bad_object_counts_are_errors() {
        let mut s = SceneSampler::new(1, Split::AttributePairs);
        assert_eq!(
            s.sample_train(0..=2),
            Err(ObjectCountError {
                min: 0,
                max: 2,
                lowest: 1
            })
        );
        assert!(s.sample_train(1..=4).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 3..=2;
        assert!(s.sample_train(empty).is_err());
        assert!(s.sample_heldout(0).is_err());
        assert!(s.sample_heldout(4).is_err());
        // Under the compositions split no single object is held out.
        let mut s = SceneSampler::new(1, Split::Compositions);
        let e = s.sample_heldout(1).unwrap_err();
        assert_eq!(e.lowest, 2);
        assert!(
            e.to_string().contains("2..=3 for held-out compositions"),
            "{e}"
        );
        assert!(s.sample_heldout(4).is_err());
        assert!(s.sample_train(1..=1).is_ok() && s.sample_train(0..=1).is_err());
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut s = SceneSampler::new(3, Split::Compositions);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let x = s.below(5);
            seen[x] = true;
        }
        assert!(seen.iter().all(|&b| b));
    }
}
