//! The train / held-out split and the seeded scene samplers.
//!
//! The split is a fixed property of each object, so a scene's side never depends on a seed: an
//! object is *held out* if its (colour, shape) pair is in [`HELDOUT_COLOUR_SHAPE`] or its
//! (shape, cell) pair is in [`HELDOUT_SHAPE_CELL`], and a scene is held out if **any** of its
//! objects is. Training scenes therefore contain held-out words only in combinations seen in
//! training: every colour, shape and position still occurs in training, just never in the
//! held-out combinations.

use std::ops::RangeInclusive;

use cogview_core::Rng;

use crate::grammar::{Cell, Colour, Object, Scene, Shape, MAX_OBJECTS};

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
    /// Whether the object uses a held-out (colour, shape) or (shape, cell) combination.
    pub fn is_heldout(&self) -> bool {
        HELDOUT_COLOUR_SHAPE.contains(&(self.colour, self.shape))
            || HELDOUT_SHAPE_CELL.contains(&(self.shape, self.cell))
    }
}

impl Scene {
    /// Whether any object of the scene is held out ([`Object::is_heldout`]).
    pub fn is_heldout(&self) -> bool {
        self.objects.iter().any(Object::is_heldout)
    }
}

/// Every valid single-object scene (432), in grammar order.
pub fn single_object_scenes() -> Vec<Scene> {
    Object::all()
        .map(|object| Scene {
            objects: vec![object],
        })
        .collect()
}

/// Every held-out single-object scene (112 of the 432), in grammar order.
pub fn heldout_single_object_scenes() -> Vec<Scene> {
    single_object_scenes()
        .into_iter()
        .filter(Scene::is_heldout)
        .collect()
}

/// An object count outside what a sampler can produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("object counts must lie in 1..={MAX_OBJECTS}, not {min}..={max}")]
pub struct ObjectCountError {
    /// The smallest count asked for.
    pub min: usize,
    /// The largest count asked for.
    pub max: usize,
}

/// A seeded sampler of scenes from either side of the split.
///
/// The stream for a seed is fixed: the same seed and the same sequence of calls give the same
/// scenes on every platform. Sampled scenes list their objects in cell reading order, so each
/// image has exactly one caption.
///
/// ```
/// use cogview_scenes::SceneSampler;
/// let mut sampler = SceneSampler::new(7);
/// let train = sampler.sample_train(1..=3).unwrap();
/// assert!(!train.is_heldout());
/// let test = sampler.sample_heldout(2).unwrap();
/// assert!(test.is_heldout() && test.objects.len() == 2);
/// ```
#[derive(Debug, Clone)]
pub struct SceneSampler {
    rng: Rng,
}

impl SceneSampler {
    /// A sampler whose whole stream is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        SceneSampler {
            rng: Rng::from_seed(seed),
        }
    }

    /// A training (not held-out) scene with a uniformly drawn object count from `n_objects`.
    ///
    /// The occupied cells are a uniform choice of distinct cells; each object is uniform over the
    /// non-held-out objects allowed in its cell.
    pub fn sample_train(
        &mut self,
        n_objects: RangeInclusive<usize>,
    ) -> Result<Scene, ObjectCountError> {
        let (min, max) = (*n_objects.start(), *n_objects.end());
        if min < 1 || max > MAX_OBJECTS || min > max {
            return Err(ObjectCountError { min, max });
        }
        let n = min + self.below(max - min + 1);
        let cells = self.distinct_cells(n);
        let objects = cells
            .into_iter()
            .map(|cell| self.pick(cell, |o| !o.is_heldout()))
            .collect();
        Ok(sorted_scene(objects))
    }

    /// A held-out scene with exactly `n_objects` objects.
    ///
    /// The occupied cells are a uniform choice of distinct cells; one of them, chosen uniformly,
    /// holds an object drawn uniformly from the held-out objects allowed there, and the others are
    /// uniform over all objects. Every held-out scene with `n_objects` objects can be drawn.
    pub fn sample_heldout(&mut self, n_objects: usize) -> Result<Scene, ObjectCountError> {
        if !(1..=MAX_OBJECTS).contains(&n_objects) {
            return Err(ObjectCountError {
                min: n_objects,
                max: n_objects,
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
        let mut s = SceneSampler::new(1);
        assert_eq!(
            s.sample_train(0..=2),
            Err(ObjectCountError { min: 0, max: 2 })
        );
        assert!(s.sample_train(1..=4).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 3..=2;
        assert!(s.sample_train(empty).is_err());
        assert!(s.sample_heldout(0).is_err());
        assert!(s.sample_heldout(4).is_err());
    }

    #[test]
    fn below_is_in_range_and_covers_it() {
        let mut s = SceneSampler::new(3);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let x = s.below(5);
            seen[x] = true;
        }
        assert!(seen.iter().all(|&b| b));
    }
}
