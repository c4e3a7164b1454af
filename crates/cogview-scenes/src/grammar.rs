//! The caption grammar: its words, the objects and scenes they describe, and the exact parser.
//!
//! ```text
//! caption  := object ( " and " object ){0,2}
//! object   := "a " size " " colour " " shape " " place
//! place    := "at the " position | "in the center"
//! position := "top left" | "top" | "top right" | "left" | "right"
//!           | "bottom left" | "bottom" | "bottom right"
//! ```
//!
//! Words are separated by exactly one space and the caption has no leading or trailing space, so
//! [`Scene::caption`] and [`Scene::parse`] are exact inverses of each other.

use std::fmt;
use std::str::FromStr;

/// The most objects a scene may hold.
pub const MAX_OBJECTS: usize = 3;

/// How big an object is: the side of its bounding box as a fraction of the canvas side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Size {
    /// Bounding-box side 0.20 of the canvas side.
    Small,
    /// Bounding-box side 0.30 of the canvas side.
    Large,
}

impl Size {
    /// Every size, in grammar order.
    pub const ALL: [Size; 2] = [Size::Small, Size::Large];

    /// The caption word.
    pub fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }

    /// The side of the object's bounding box as a fraction of the canvas side.
    pub fn side_fraction(self) -> f32 {
        match self {
            Size::Small => 0.20,
            Size::Large => 0.30,
        }
    }

    /// The size a caption word names, if any.
    pub fn from_name(word: &str) -> Option<Size> {
        Size::ALL.into_iter().find(|s| s.name() == word)
    }
}

/// An object's fill colour, one of eight sRGB palette colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Colour {
    /// sRGB (220, 40, 40).
    Red,
    /// sRGB (40, 170, 60).
    Green,
    /// sRGB (40, 70, 220).
    Blue,
    /// sRGB (240, 210, 30).
    Yellow,
    /// sRGB (140, 50, 180).
    Purple,
    /// sRGB (245, 130, 20).
    Orange,
    /// sRGB (20, 20, 20).
    Black,
    /// sRGB (30, 200, 210).
    Cyan,
}

impl Colour {
    /// Every colour, in grammar order.
    pub const ALL: [Colour; 8] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Purple,
        Colour::Orange,
        Colour::Black,
        Colour::Cyan,
    ];

    /// The caption word.
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Purple => "purple",
            Colour::Orange => "orange",
            Colour::Black => "black",
            Colour::Cyan => "cyan",
        }
    }

    /// The sRGB value the renderer paints.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 40, 40],
            Colour::Green => [40, 170, 60],
            Colour::Blue => [40, 70, 220],
            Colour::Yellow => [240, 210, 30],
            Colour::Purple => [140, 50, 180],
            Colour::Orange => [245, 130, 20],
            Colour::Black => [20, 20, 20],
            Colour::Cyan => [30, 200, 210],
        }
    }

    /// The colour a caption word names, if any.
    pub fn from_name(word: &str) -> Option<Colour> {
        Colour::ALL.into_iter().find(|c| c.name() == word)
    }
}

/// An object's shape. Every shape fills a square bounding box of the object's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// The disc inscribed in the bounding box.
    Circle,
    /// The bounding box itself.
    Square,
    /// Apex up: the apex at the top middle of the bounding box, the base its bottom edge.
    Triangle,
}

impl Shape {
    /// Every shape, in grammar order.
    pub const ALL: [Shape; 3] = [Shape::Circle, Shape::Square, Shape::Triangle];

    /// The caption word.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
        }
    }

    /// The shape a caption word names, if any.
    pub fn from_name(word: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|s| s.name() == word)
    }
}

/// One cell of the 3×3 grid that divides the canvas; objects are centred in their cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cell {
    /// Row 0, column 0.
    TopLeft,
    /// Row 0, column 1.
    Top,
    /// Row 0, column 2.
    TopRight,
    /// Row 1, column 0.
    Left,
    /// Row 1, column 1; the only cell captioned "in the center" rather than "at the …".
    Center,
    /// Row 1, column 2.
    Right,
    /// Row 2, column 0.
    BottomLeft,
    /// Row 2, column 1.
    Bottom,
    /// Row 2, column 2.
    BottomRight,
}

impl Cell {
    /// Every cell in reading order (row by row, left to right); `Cell::ALL[c.index()] == c`.
    pub const ALL: [Cell; 9] = [
        Cell::TopLeft,
        Cell::Top,
        Cell::TopRight,
        Cell::Left,
        Cell::Center,
        Cell::Right,
        Cell::BottomLeft,
        Cell::Bottom,
        Cell::BottomRight,
    ];

    /// The position words of the caption ("top left", …, "center").
    pub fn name(self) -> &'static str {
        match self {
            Cell::TopLeft => "top left",
            Cell::Top => "top",
            Cell::TopRight => "top right",
            Cell::Left => "left",
            Cell::Center => "center",
            Cell::Right => "right",
            Cell::BottomLeft => "bottom left",
            Cell::Bottom => "bottom",
            Cell::BottomRight => "bottom right",
        }
    }

    /// The cell's place in reading order, 0 to 8.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The grid row, 0 (top) to 2 (bottom).
    pub fn row(self) -> usize {
        self.index() / 3
    }

    /// The grid column, 0 (left) to 2 (right).
    pub fn col(self) -> usize {
        self.index() % 3
    }

    /// The cell at `row`, `col`, or `None` outside the 3×3 grid.
    pub fn from_row_col(row: usize, col: usize) -> Option<Cell> {
        (row < 3 && col < 3).then(|| Cell::ALL[row * 3 + col])
    }

    /// The cell's centre as fractions (x, y) of the canvas width and height: 1/6, 3/6 or 5/6 each.
    pub fn centre(self) -> (f32, f32) {
        (
            (2 * self.col() + 1) as f32 / 6.0,
            (2 * self.row() + 1) as f32 / 6.0,
        )
    }

    /// The cell whose name is `name` ("top left", …, "center"), if any.
    pub fn from_name(name: &str) -> Option<Cell> {
        Cell::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// One object of a scene: what it looks like and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Object {
    /// Its size.
    pub size: Size,
    /// Its fill colour.
    pub colour: Colour,
    /// Its shape.
    pub shape: Shape,
    /// The grid cell it is centred in.
    pub cell: Cell,
}

impl Object {
    /// Every possible object (2 sizes × 8 colours × 3 shapes × 9 cells = 432), in grammar order.
    pub fn all() -> impl Iterator<Item = Object> {
        Cell::ALL.into_iter().flat_map(|cell| {
            Size::ALL.into_iter().flat_map(move |size| {
                Colour::ALL.into_iter().flat_map(move |colour| {
                    Shape::ALL.into_iter().map(move |shape| Object {
                        size,
                        colour,
                        shape,
                        cell,
                    })
                })
            })
        })
    }
}

/// Writes the object's phrase, e.g. "a small red circle in the center".
impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = if self.cell == Cell::Center {
            "in the"
        } else {
            "at the"
        };
        write!(
            f,
            "a {} {} {} {place} {}",
            self.size.name(),
            self.colour.name(),
            self.shape.name(),
            self.cell.name()
        )
    }
}

/// Why a list of objects is not a valid scene.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SceneError {
    /// The scene has no objects.
    #[error("a scene needs at least one object")]
    Empty,
    /// The scene has more than [`MAX_OBJECTS`] objects.
    #[error("a scene holds at most {MAX_OBJECTS} objects, this one has {0}")]
    TooManyObjects(usize),
    /// Two objects are in the same cell.
    #[error("two objects share the {} cell; each object needs its own cell", .0.name())]
    SharedCell(Cell),
}

/// A scene: one to three objects, each in its own cell, on a white canvas.
///
/// The order of `objects` is the order of the caption. The fields are public, so a `Scene` may be
/// invalid; [`Scene::new`] and [`Scene::parse`] only produce valid ones, and [`Scene::validate`]
/// checks any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scene {
    /// The objects, in caption order.
    pub objects: Vec<Object>,
}

impl Scene {
    /// A scene of these objects, if they form a valid one (see [`Scene::validate`]).
    pub fn new(objects: Vec<Object>) -> Result<Scene, SceneError> {
        let scene = Scene { objects };
        scene.validate()?;
        Ok(scene)
    }

    /// Checks that the scene has 1 to [`MAX_OBJECTS`] objects in distinct cells.
    pub fn validate(&self) -> Result<(), SceneError> {
        match self.objects.len() {
            0 => return Err(SceneError::Empty),
            n if n > MAX_OBJECTS => return Err(SceneError::TooManyObjects(n)),
            _ => {}
        }
        let mut used = [false; 9];
        for object in &self.objects {
            let seen = &mut used[object.cell.index()];
            if *seen {
                return Err(SceneError::SharedCell(object.cell));
            }
            *seen = true;
        }
        Ok(())
    }

    /// The caption: the objects' phrases joined by " and ".
    ///
    /// ```
    /// use cogview_scenes::{Cell, Colour, Object, Scene, Shape, Size};
    /// let scene = Scene::new(vec![Object {
    ///     size: Size::Small,
    ///     colour: Colour::Red,
    ///     shape: Shape::Circle,
    ///     cell: Cell::Center,
    /// }])
    /// .unwrap();
    /// assert_eq!(scene.caption(), "a small red circle in the center");
    /// ```
    pub fn caption(&self) -> String {
        self.to_string()
    }

    /// The scene a caption describes: the exact inverse of [`Scene::caption`].
    ///
    /// Only captions that [`Scene::caption`] could have written are accepted (single spaces, lower
    /// case, no punctuation); the error names the first word that does not fit.
    ///
    /// ```
    /// use cogview_scenes::{ParseError, Scene};
    /// let caption = "a small yellow triangle at the top left and a large red circle in the center";
    /// assert_eq!(Scene::parse(caption).unwrap().caption(), caption);
    /// let err = Scene::parse("a small pink circle in the center").unwrap_err();
    /// assert!(matches!(err, ParseError::UnexpectedWord { position: 3, ref found, .. } if found == "pink"));
    /// ```
    pub fn parse(caption: &str) -> Result<Scene, ParseError> {
        if caption.is_empty() {
            return Err(ParseError::Empty);
        }
        let mut words = Words {
            words: caption.split(' ').collect(),
            next: 0,
        };
        let mut objects = Vec::new();
        loop {
            let (object, follow) = parse_object(&mut words)?;
            objects.push(object);
            if words.at_end() {
                break;
            }
            words.expect(follow, |w| (w == "and").then_some(()))?;
        }
        Ok(Scene::new(objects)?)
    }
}

/// Writes the caption (see [`Scene::caption`]).
impl fmt::Display for Scene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, object) in self.objects.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            write!(f, "{object}")?;
        }
        Ok(())
    }
}

/// Parses a caption (see [`Scene::parse`]).
impl FromStr for Scene {
    type Err = ParseError;

    fn from_str(caption: &str) -> Result<Scene, ParseError> {
        Scene::parse(caption)
    }
}

/// What the parser expected where a caption went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    /// The article "a" that starts every object.
    Article,
    /// A size word.
    Size,
    /// A colour word.
    Colour,
    /// A shape word.
    Shape,
    /// "at" (followed by a position) or "in" (followed by "the center").
    Preposition,
    /// "the".
    The,
    /// A position word after "at the": "top", "left", "right" or "bottom".
    Position,
    /// "center", the only position after "in the".
    Center,
    /// After "top" or "bottom": "left", "right", "and", or the end of the caption.
    SideOrAnd,
    /// After a complete object: "and" or the end of the caption.
    And,
}

fn word_list(words: impl Iterator<Item = &'static str>) -> String {
    let words: Vec<String> = words.map(|w| format!("\"{w}\"")).collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => words.concat(),
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Article => f.write_str("the article \"a\""),
            Expected::Size => write!(
                f,
                "a size ({})",
                word_list(Size::ALL.into_iter().map(Size::name))
            ),
            Expected::Colour => write!(
                f,
                "a colour ({})",
                word_list(Colour::ALL.into_iter().map(Colour::name))
            ),
            Expected::Shape => write!(
                f,
                "a shape ({})",
                word_list(Shape::ALL.into_iter().map(Shape::name))
            ),
            Expected::Preposition => f.write_str("\"at\" or \"in\""),
            Expected::The => f.write_str("\"the\""),
            Expected::Position => f.write_str(
                "a position after \"at the\" (\"top\", \"left\", \"right\" or \"bottom\"; the middle cell is \"in the center\")",
            ),
            Expected::Center => f.write_str("\"center\", the only position after \"in the\""),
            Expected::SideOrAnd => {
                f.write_str("\"left\", \"right\", \"and\" or the end of the caption")
            }
            Expected::And => f.write_str("\"and\" or the end of the caption"),
        }
    }
}

/// Why a caption is not one the grammar can write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The caption is the empty string.
    #[error("the caption is empty")]
    Empty,
    /// A word does not fit the grammar where it stands.
    #[error("word {position} is {}, expected {expected}", show_word(found))]
    UnexpectedWord {
        /// The word's place in the caption, counting from 1.
        position: usize,
        /// The word as written; empty where the caption has a doubled, leading or trailing space.
        found: String,
        /// What would have fitted.
        expected: Expected,
    },
    /// The caption stops in the middle of an object.
    #[error("the caption ends after word {words}, expected {expected}")]
    UnexpectedEnd {
        /// How many words the caption has.
        words: usize,
        /// What should have come next.
        expected: Expected,
    },
    /// The caption is well formed but describes no valid scene (too many objects, a shared cell).
    #[error("the caption describes an invalid scene: {0}")]
    InvalidScene(#[from] SceneError),
}

fn show_word(word: &str) -> String {
    if word.is_empty() {
        "empty (a doubled, leading or trailing space)".to_string()
    } else {
        format!("{word:?}")
    }
}

/// A cursor over a caption's words.
struct Words<'a> {
    words: Vec<&'a str>,
    next: usize,
}

impl Words<'_> {
    fn at_end(&self) -> bool {
        self.next >= self.words.len()
    }

    /// The next word if it is one that `accept` maps to a value; otherwise the error that says
    /// the word (or the end) did not fit `expected`.
    fn expect<T>(
        &mut self,
        expected: Expected,
        accept: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ParseError> {
        let Some(&word) = self.words.get(self.next) else {
            return Err(ParseError::UnexpectedEnd {
                words: self.words.len(),
                expected,
            });
        };
        match accept(word) {
            Some(value) => {
                self.next += 1;
                Ok(value)
            }
            None => Err(ParseError::UnexpectedWord {
                position: self.next + 1,
                found: word.to_string(),
                expected,
            }),
        }
    }

    /// Consumes the next word if it equals `word`.
    fn take_if(&mut self, word: &str) -> bool {
        let hit = self.words.get(self.next) == Some(&word);
        if hit {
            self.next += 1;
        }
        hit
    }
}

/// The first word after "at the".
enum Anchor {
    Top,
    Bottom,
    Left,
    Right,
}

/// Parses one object phrase; also returns what may follow it.
fn parse_object(words: &mut Words<'_>) -> Result<(Object, Expected), ParseError> {
    words.expect(Expected::Article, |w| (w == "a").then_some(()))?;
    let size = words.expect(Expected::Size, Size::from_name)?;
    let colour = words.expect(Expected::Colour, Colour::from_name)?;
    let shape = words.expect(Expected::Shape, Shape::from_name)?;
    let at = words.expect(Expected::Preposition, |w| match w {
        "at" => Some(true),
        "in" => Some(false),
        _ => None,
    })?;
    words.expect(Expected::The, |w| (w == "the").then_some(()))?;
    let (cell, follow) = if at {
        let anchor = words.expect(Expected::Position, |w| match w {
            "top" => Some(Anchor::Top),
            "bottom" => Some(Anchor::Bottom),
            "left" => Some(Anchor::Left),
            "right" => Some(Anchor::Right),
            _ => None,
        })?;
        match anchor {
            Anchor::Left => (Cell::Left, Expected::And),
            Anchor::Right => (Cell::Right, Expected::And),
            Anchor::Top | Anchor::Bottom => {
                let top = matches!(anchor, Anchor::Top);
                if words.take_if("left") {
                    let cell = if top { Cell::TopLeft } else { Cell::BottomLeft };
                    (cell, Expected::And)
                } else if words.take_if("right") {
                    let cell = if top {
                        Cell::TopRight
                    } else {
                        Cell::BottomRight
                    };
                    (cell, Expected::And)
                } else {
                    let cell = if top { Cell::Top } else { Cell::Bottom };
                    (cell, Expected::SideOrAnd)
                }
            }
        }
    } else {
        words.expect(Expected::Center, |w| (w == "center").then_some(()))?;
        (Cell::Center, Expected::And)
    };
    Ok((
        Object {
            size,
            colour,
            shape,
            cell,
        },
        follow,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_cells_are_in_reading_order() {
        for (i, cell) in Cell::ALL.into_iter().enumerate() {
            assert_eq!(cell.index(), i);
            assert_eq!(Cell::from_row_col(cell.row(), cell.col()), Some(cell));
            assert_eq!(Cell::from_name(cell.name()), Some(cell));
        }
        assert_eq!(Cell::from_row_col(3, 0), None);
        assert_eq!(Cell::BottomRight.centre(), (5.0 / 6.0, 5.0 / 6.0));
        for c in Colour::ALL {
            assert_eq!(Colour::from_name(c.name()), Some(c));
        }
        for s in Shape::ALL {
            assert_eq!(Shape::from_name(s.name()), Some(s));
        }
        for s in Size::ALL {
            assert_eq!(Size::from_name(s.name()), Some(s));
        }
        assert_eq!(Object::all().count(), 432);
    }

    #[test]
    fn expected_lists_read_naturally() {
        assert_eq!(
            Expected::Size.to_string(),
            "a size (\"small\" or \"large\")"
        );
        assert_eq!(
            Expected::Shape.to_string(),
            "a shape (\"circle\", \"square\" or \"triangle\")"
        );
    }
}
