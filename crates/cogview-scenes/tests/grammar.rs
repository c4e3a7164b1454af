//! The caption grammar: exact round trips and parse errors that name the bad word.

use cogview_scenes::{
    single_object_scenes, Cell, Colour, Expected, Object, ParseError, Scene, SceneError, Shape,
    Size,
};
use proptest::prelude::*;

#[test]
fn every_single_object_scene_round_trips() {
    let scenes = single_object_scenes();
    assert_eq!(scenes.len(), 432);
    for scene in scenes {
        let caption = scene.caption();
        assert_eq!(Scene::parse(&caption), Ok(scene.clone()), "{caption}");
        assert_eq!(caption.parse::<Scene>().map(|s| s.to_string()), Ok(caption));
    }
}

#[test]
fn the_issue_example_parses_to_the_expected_scene() {
    let caption = "a small yellow triangle at the top left and a large red circle in the center";
    let expected = Scene::new(vec![
        Object {
            size: Size::Small,
            colour: Colour::Yellow,
            shape: Shape::Triangle,
            cell: Cell::TopLeft,
        },
        Object {
            size: Size::Large,
            colour: Colour::Red,
            shape: Shape::Circle,
            cell: Cell::Center,
        },
    ])
    .unwrap();
    assert_eq!(Scene::parse(caption), Ok(expected.clone()));
    assert_eq!(expected.caption(), caption);
}

#[test]
fn every_position_is_written_and_read_as_the_grammar_says() {
    let phrases = [
        (Cell::TopLeft, "at the top left"),
        (Cell::Top, "at the top"),
        (Cell::TopRight, "at the top right"),
        (Cell::Left, "at the left"),
        (Cell::Center, "in the center"),
        (Cell::Right, "at the right"),
        (Cell::BottomLeft, "at the bottom left"),
        (Cell::Bottom, "at the bottom"),
        (Cell::BottomRight, "at the bottom right"),
    ];
    for (cell, place) in phrases {
        let caption = format!("a large black square {place}");
        let scene = Scene::parse(&caption).unwrap();
        assert_eq!(scene.objects[0].cell, cell, "{caption}");
        assert_eq!(scene.caption(), caption);
    }
    // "top" and "bottom" alone are followed by "and" without ambiguity.
    let caption = "a small red circle at the top and a small red circle at the bottom";
    let cells: Vec<Cell> = Scene::parse(caption)
        .unwrap()
        .objects
        .iter()
        .map(|o| o.cell)
        .collect();
    assert_eq!(cells, vec![Cell::Top, Cell::Bottom]);
}

fn unexpected(caption: &str) -> (usize, String, Expected) {
    match Scene::parse(caption) {
        Err(ParseError::UnexpectedWord {
            position,
            found,
            expected,
        }) => (position, found, expected),
        other => panic!("{caption:?} gave {other:?}"),
    }
}

#[test]
fn parse_errors_name_the_bad_word() {
    let cases: &[(&str, usize, &str, Expected)] = &[
        (
            "the small red circle in the center",
            1,
            "the",
            Expected::Article,
        ),
        (
            "A small red circle in the center",
            1,
            "A",
            Expected::Article,
        ),
        ("a tiny red circle in the center", 2, "tiny", Expected::Size),
        (
            "a small pink circle in the center",
            3,
            "pink",
            Expected::Colour,
        ),
        (
            "a small red hexagon in the center",
            4,
            "hexagon",
            Expected::Shape,
        ),
        (
            "a small red circle on the left",
            5,
            "on",
            Expected::Preposition,
        ),
        ("a small red circle at a left", 6, "a", Expected::The),
        (
            "a small red circle at the center",
            7,
            "center",
            Expected::Position,
        ),
        (
            "a small red circle at the middle",
            7,
            "middle",
            Expected::Position,
        ),
        ("a small red circle in the top", 7, "top", Expected::Center),
        (
            "a small red circle at the top lft",
            8,
            "lft",
            Expected::SideOrAnd,
        ),
        (
            "a small red circle at the left right",
            8,
            "right",
            Expected::And,
        ),
        (
            "a small red circle in the center, a",
            7,
            "center,",
            Expected::Center,
        ),
        (
            "a small red circle in the center and a large blue square at the top rigth",
            16,
            "rigth",
            Expected::SideOrAnd,
        ),
        (
            "a small red circle in the center and a large blu square at the top",
            11,
            "blu",
            Expected::Colour,
        ),
        // Spacing must be exact: the empty word marks the doubled or stray space.
        ("a small  red circle in the center", 3, "", Expected::Colour),
        ("a small red circle in the center ", 8, "", Expected::And),
        (
            " a small red circle in the center",
            1,
            "",
            Expected::Article,
        ),
    ];
    for &(caption, position, found, expected) in cases {
        assert_eq!(
            unexpected(caption),
            (position, found.to_string(), expected),
            "{caption:?}"
        );
        let message = Scene::parse(caption).unwrap_err().to_string();
        assert!(
            message.contains(&format!("word {position} ")),
            "{caption:?}: {message}"
        );
        if !found.is_empty() {
            assert!(message.contains(&format!("{found:?}")), "{message}");
        } else {
            assert!(message.contains("space"), "{message}");
        }
    }
    let message = Scene::parse("a small pink circle in the center")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("\"pink\"") && message.contains("\"purple\""),
        "{message}"
    );
}

#[test]
fn truncated_empty_and_invalid_captions_are_typed_errors() {
    assert_eq!(Scene::parse(""), Err(ParseError::Empty));
    assert_eq!(
        Scene::parse("a small red"),
        Err(ParseError::UnexpectedEnd {
            words: 3,
            expected: Expected::Shape
        })
    );
    assert_eq!(
        Scene::parse("a small red circle at the left and"),
        Err(ParseError::UnexpectedEnd {
            words: 8,
            expected: Expected::Article
        })
    );
    assert_eq!(
        Scene::parse("a small red circle at the"),
        Err(ParseError::UnexpectedEnd {
            words: 6,
            expected: Expected::Position
        })
    );
    assert_eq!(
        Scene::parse("a small red circle at the left and a large blue square at the left"),
        Err(ParseError::InvalidScene(SceneError::SharedCell(Cell::Left)))
    );
    let four = [
        "a small red circle at the left",
        "a small red circle at the right",
        "a small red circle at the top",
        "a small red circle at the bottom",
    ]
    .join(" and ");
    assert_eq!(
        Scene::parse(&four),
        Err(ParseError::InvalidScene(SceneError::TooManyObjects(4)))
    );
}

#[test]
fn validate_checks_count_and_distinct_cells() {
    let object = |cell| Object {
        size: Size::Small,
        colour: Colour::Cyan,
        shape: Shape::Square,
        cell,
    };
    assert_eq!(Scene::new(vec![]), Err(SceneError::Empty));
    assert_eq!(
        Scene::new(vec![
            object(Cell::Top),
            object(Cell::Left),
            object(Cell::Top)
        ]),
        Err(SceneError::SharedCell(Cell::Top))
    );
    assert_eq!(
        Scene::new(Cell::ALL[..4].iter().map(|&c| object(c)).collect()),
        Err(SceneError::TooManyObjects(4))
    );
    assert!(Scene::new(Cell::ALL[..3].iter().map(|&c| object(c)).collect()).is_ok());
}

fn object_strategy() -> impl Strategy<Value = (Size, Colour, Shape)> {
    (
        prop::sample::select(Size::ALL.to_vec()),
        prop::sample::select(Colour::ALL.to_vec()),
        prop::sample::select(Shape::ALL.to_vec()),
    )
}

/// Valid scenes of 1 to 3 objects in distinct cells, in any order.
fn scene_strategy() -> impl Strategy<Value = Scene> {
    (1usize..=3)
        .prop_flat_map(|n| {
            (
                prop::sample::subsequence(Cell::ALL.to_vec(), n).prop_shuffle(),
                prop::collection::vec(object_strategy(), n),
            )
        })
        .prop_map(|(cells, looks)| Scene {
            objects: cells
                .into_iter()
                .zip(looks)
                .map(|(cell, (size, colour, shape))| Object {
                    size,
                    colour,
                    shape,
                    cell,
                })
                .collect(),
        })
}

const VOCABULARY: &[&str] = &[
    "a", "and", "at", "in", "the", "small", "large", "red", "cyan", "circle", "square", "triangle",
    "top", "bottom", "left", "right", "center", "",
];

proptest! {
    #[test]
    fn random_scenes_round_trip(scene in scene_strategy()) {
        prop_assert!(scene.validate().is_ok());
        let caption = scene.caption();
        prop_assert_eq!(Scene::parse(&caption), Ok(scene));
    }

    /// Whatever the parser accepts, the caption writes back word for word: captions edited by
    /// deleting, inserting or replacing grammar words are either rejected or exact.
    #[test]
    fn accepted_edited_captions_are_exact_captions(
        scene in scene_strategy(),
        edits in prop::collection::vec(
            (0u8..3, any::<prop::sample::Index>(), prop::sample::select(VOCABULARY.to_vec())),
            1..4,
        )
    ) {
        let caption = scene.caption();
        let mut words: Vec<&str> = caption.split(' ').collect();
        for (kind, at, word) in edits {
            let i = at.index(words.len() + 1);
            match kind {
                0 if i < words.len() => { words.remove(i); }
                1 => words.insert(i, word),
                _ if i < words.len() => words[i] = word,
                _ => words.push(word),
            }
        }
        let edited = words.join(" ");
        if let Ok(parsed) = Scene::parse(&edited) {
            prop_assert!(parsed.validate().is_ok());
            prop_assert_eq!(parsed.caption(), edited);
        }
    }

    /// Replacing one word of a valid caption by a non-word is reported at that word.
    #[test]
    fn a_corrupted_word_is_the_one_reported(scene in scene_strategy(), pick in any::<prop::sample::Index>()) {
        let caption = scene.caption();
        let mut words: Vec<&str> = caption.split(' ').collect();
        let i = pick.index(words.len());
        words[i] = "blorp";
        let corrupted = words.join(" ");
        match Scene::parse(&corrupted) {
            Err(ParseError::UnexpectedWord { position, found, .. }) => {
                prop_assert_eq!(position, i + 1);
                prop_assert_eq!(found, "blorp");
            }
            other => prop_assert!(false, "{:?} gave {:?}", corrupted, other),
        }
    }
}
