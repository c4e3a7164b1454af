//! # cogview-scenes
//!
//! The procedural "scenes" dataset that cogview's small default model is trained and evaluated on:
//! one to three flat shapes on a white canvas, captioned by an exact grammar, so that a generated
//! image can be scored automatically against its caption.
//!
//! * [`grammar`]: the words ([`Size`], [`Colour`], [`Shape`], [`Cell`]), [`Object`] and [`Scene`],
//!   [`Scene::caption`] and its exact inverse [`Scene::parse`].
//! * [`render`](mod@render): anti-aliased rendering of a scene at any size.
//! * [`split`]: the fixed train / held-out splits ([`Split`]) and the seeded [`SceneSampler`].
//! * [`check`](mod@check): the scene checker, [`detect`] and [`check()`], and the [`Accuracy`] tally.
//! * [`mask`]: object pixel masks and their intersection over union; [`shape_fidelity`] scores how
//!   closely each correctly detected object follows the ideal render.
//!
//! ## The scenes
//!
//! The canvas is square and white (255, 255, 255), divided into a 3×3 grid. Each object sits
//! centred in its own cell (cell centres at 1/6, 3/6 and 5/6 of the side) and has a square bounding
//! box whose side is 0.20 (`small`) or 0.30 (`large`) of the canvas side, so objects never touch.
//! One object reads `a {size} {colour} {shape} at the {position}`, or `… in the center` for the
//! middle cell; objects are joined by `" and "`:
//!
//! ```text
//! a small yellow triangle at the top left and a large red circle in the center
//! ```
//!
//! | word | values |
//! |------|--------|
//! | size | `small` (0.20), `large` (0.30) |
//! | colour | `red` (220,40,40), `green` (40,170,60), `blue` (40,70,220), `yellow` (240,210,30), `purple` (140,50,180), `orange` (245,130,20), `black` (20,20,20), `cyan` (30,200,210) |
//! | shape | `circle`, `square`, `triangle` (apex up at the top middle of the box, base its bottom edge) |
//! | position | `top left`, `top`, `top right`, `left`, `center`, `right`, `bottom left`, `bottom`, `bottom right` |
//!
//! ## The held-out splits
//!
//! Some scenes are never trained on, so that evaluation can measure generalisation to new
//! combinations of known words. [`Split`] chooses which:
//!
//! * [`Split::Compositions`] (the default; `models/default` is trained on it): every one of the 432
//!   single-object scenes is trained on, and a fixed tenth of the two- and three-object scenes is
//!   held out ([`is_heldout_composition`]: a stable hash of the scene's object set,
//!   [`composition_key`], divisible by [`HELDOUT_COMPOSITION_MODULUS`]). Every object of a held-out
//!   composition is trained on; only the combination is new.
//! * [`Split::AttributePairs`] (the unseen-pair experiment of the first default models): an object
//!   is held out if it uses one of the (colour, shape) pairs in [`HELDOUT_COLOUR_SHAPE`] (red
//!   square, green triangle, blue circle, orange triangle) or one of the (shape, position) pairs
//!   in [`HELDOUT_SHAPE_CELL`] (circle at the top right, square at the bottom left, triangle in
//!   the center), and a scene is held out if **any** of its objects is ([`Scene::is_heldout`]).
//!   Of the 432 single-object scenes, 112 are held out ([`heldout_single_object_scenes`]).
//!
//! [`SceneSampler::sample_train`] only produces scenes that are not held out under the sampler's
//! split, and [`SceneSampler::sample_heldout`] only held-out ones ([`Split::is_heldout`]).
//!
//! ## Example
//!
//! ```
//! use cogview_scenes::{check, render, Accuracy, Scene, SceneSampler, Split};
//!
//! let scene = Scene::parse("a small yellow triangle at the top left and a large red circle in the center")?;
//! assert_eq!(scene.objects.len(), 2);
//! let image = render(&scene, 192)?;
//! let report = check(&image, &scene)?;
//! assert!(report.exact, "{report}");
//!
//! // Score a batch of held-out scenes (here: clean renders, so every one is exact).
//! let mut sampler = SceneSampler::new(42, Split::Compositions);
//! let mut accuracy = Accuracy::default();
//! for _ in 0..10 {
//!     let scene = sampler.sample_heldout(3)?;
//!     accuracy.add(&check(&render(&scene, 160)?, &scene)?);
//! }
//! assert_eq!(accuracy.exact_rate(), Some(1.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod check;
pub mod grammar;
pub mod mask;
pub mod render;
pub mod split;

pub use check::{
    check, detect, Accuracy, CheckError, CheckReport, Detected, ObjectCheck, PixelBox,
};
pub use grammar::{
    Cell, Colour, Expected, Object, ParseError, Scene, SceneError, Shape, Size, MAX_OBJECTS,
};
pub use mask::{object_mask, shape_fidelity, Mask};
pub use render::{render, RenderError};
pub use split::{
    composition_key, heldout_single_object_scenes, is_heldout_composition, object_index,
    single_object_scenes, ObjectCountError, SceneSampler, Split, UnknownSplit,
    HELDOUT_COLOUR_SHAPE, HELDOUT_COMPOSITION_MODULUS, HELDOUT_SHAPE_CELL,
};
