//! The renderer and the scene checker.

use std::time::Instant;

use cogview_core::{Image, Rng};
use cogview_scenes::{
    check, detect, render, single_object_scenes, Accuracy, Cell, CheckError, CheckReport, Colour,
    Object, RenderError, Scene, SceneError, SceneSampler, Shape, Size, Split,
};

/// A 3×3 box blur (the window clipped at the border) followed by uniform integer noise in
/// [-20, 20] per channel, seeded.
fn blur_and_noise(image: &Image, seed: u64) -> Image {
    let (w, h) = (image.width, image.height);
    let src = &image.pixels;
    let row = w * 3;
    // Separable: sums over the horizontal window (with its length), then over the vertical one.
    let mut sums = vec![0u16; src.len()];
    let mut counts = vec![0u16; src.len()];
    for i in 0..src.len() {
        let x = i % row / 3;
        let mut sum = u16::from(src[i]);
        let mut n = 1;
        if x > 0 {
            sum += u16::from(src[i - 3]);
            n += 1;
        }
        if x + 1 < w {
            sum += u16::from(src[i + 3]);
            n += 1;
        }
        sums[i] = sum;
        counts[i] = n;
    }
    let mut rng = Rng::from_seed(seed);
    let mut noise = 0u64;
    let mut pixels = vec![0u8; src.len()];
    for i in 0..src.len() {
        let y = i / row;
        let mut sum = u32::from(sums[i]);
        let mut n = u32::from(counts[i]);
        if y > 0 {
            sum += u32::from(sums[i - row]);
            n += u32::from(counts[i - row]);
        }
        if y + 1 < h {
            sum += u32::from(sums[i + row]);
            n += u32::from(counts[i + row]);
        }
        // One 64-bit draw gives the noise of a pixel's three channels, 21 bits each.
        if i % 3 == 0 {
            noise = rng.next_u64();
        }
        let delta = ((noise >> (21 * (i % 3))) & 0x1F_FFFF) % 41;
        let v = ((sum + n / 2) / n) as i32 + delta as i32 - 20;
        pixels[i] = v.clamp(0, 255) as u8;
    }
    Image::new(w, h, pixels).unwrap()
}

fn pixel(image: &Image, x: usize, y: usize) -> [u8; 3] {
    let i = (y * image.width + x) * 3;
    [image.pixels[i], image.pixels[i + 1], image.pixels[i + 2]]
}

fn multi_object_scenes(seed: u64, count: usize) -> Vec<Scene> {
    let mut sampler = SceneSampler::new(seed, Split::AttributePairs);
    (0..count)
        .map(|i| {
            if i % 2 == 0 {
                sampler.sample_train(2..=3).unwrap()
            } else {
                sampler.sample_heldout(2 + i % 4 / 2).unwrap()
            }
        })
        .collect()
}

#[test]
fn render_puts_the_colour_at_the_cell_centre_and_leaves_other_cells_white() {
    let side = 160;
    for scene in single_object_scenes() {
        let object = scene.objects[0];
        let image = render(&scene, side).unwrap();
        assert_eq!(
            (image.width, image.height, image.pixels.len()),
            (side, side, side * side * 3)
        );
        let (fx, fy) = object.cell.centre();
        let (cx, cy) = ((fx * side as f32) as usize, (fy * side as f32) as usize);
        assert_eq!(pixel(&image, cx, cy), object.colour.rgb(), "{scene}");
        let cell_px = side / 3;
        for y in 0..side {
            for x in 0..side {
                let in_cell = (x / cell_px).min(2) == object.cell.col()
                    && (y / cell_px).min(2) == object.cell.row();
                if !in_cell {
                    assert_eq!(
                        pixel(&image, x, y),
                        [255, 255, 255],
                        "{scene} at ({x}, {y})"
                    );
                }
            }
        }
        // The corners of the object's own cell stay white too: objects fill at most 0.9 of it.
        let (x0, y0) = (object.cell.col() * cell_px, object.cell.row() * cell_px);
        assert_eq!(pixel(&image, x0 + 1, y0 + 1), [255, 255, 255], "{scene}");
    }
}

#[test]
fn render_draws_the_shapes_where_the_spec_says() {
    let side = 300;
    let one = |shape, size| Scene {
        objects: vec![Object {
            size,
            colour: Colour::Black,
            shape,
            cell: Cell::Center,
        }],
    };
    let black = Colour::Black.rgb();
    let white = [255, 255, 255];
    // Large (90 px box centred at 150): the box spans 105..195.
    let square = render(&one(Shape::Square, Size::Large), side).unwrap();
    assert_eq!(pixel(&square, 106, 106), black);
    assert_eq!(pixel(&square, 193, 193), black);
    assert_eq!(pixel(&square, 103, 150), white);
    assert_eq!(pixel(&square, 196, 150), white);
    let circle = render(&one(Shape::Circle, Size::Large), side).unwrap();
    assert_eq!(pixel(&circle, 106, 150), black);
    assert_eq!(pixel(&circle, 108, 108), white);
    let triangle = render(&one(Shape::Triangle, Size::Large), side).unwrap();
    assert_eq!(pixel(&triangle, 150, 108), black, "apex at the top middle");
    assert_eq!(pixel(&triangle, 120, 108), white);
    assert_eq!(
        pixel(&triangle, 107, 193),
        black,
        "base along the bottom edge"
    );
    assert_eq!(pixel(&triangle, 193, 193), black);
    assert_eq!(pixel(&triangle, 150, 197), white);
    // Small: a 60 px box spanning 120..180.
    let small = render(&one(Shape::Square, Size::Small), side).unwrap();
    assert_eq!(pixel(&small, 121, 121), black);
    assert_eq!(pixel(&small, 118, 150), white);
    // Anti-aliased: a circle's edge has intermediate values.
    assert!(circle.pixels.iter().any(|&v| v > 30 && v < 240));
}

#[test]
fn render_rejects_bad_input_with_typed_errors() {
    let scene = Scene::parse("a small red circle in the center").unwrap();
    assert_eq!(render(&scene, 0), Err(RenderError::Side(0)));
    assert_eq!(render(&scene, 15), Err(RenderError::Side(15)));
    assert_eq!(render(&scene, 100_000), Err(RenderError::Side(100_000)));
    assert!(render(&scene, 16).is_ok());
    let twice = Scene {
        objects: vec![scene.objects[0], scene.objects[0]],
    };
    assert_eq!(
        render(&twice, 64),
        Err(RenderError::InvalidScene(SceneError::SharedCell(
            Cell::Center
        )))
    );
    assert_eq!(
        render(&Scene { objects: vec![] }, 64),
        Err(RenderError::InvalidScene(SceneError::Empty))
    );
}

#[test]
fn checker_is_exact_on_every_clean_single_object_scene() {
    for side in [64, 96, 160, 192] {
        for scene in single_object_scenes() {
            let image = render(&scene, side).unwrap();
            let report = check(&image, &scene).unwrap();
            assert!(report.exact, "{side} px, {scene}:\n{report}");
        }
    }
}

#[test]
fn checker_is_exact_on_random_clean_multi_object_scenes() {
    for (side, count) in [(160, 300), (192, 300), (480, 200)] {
        for scene in multi_object_scenes(side as u64, count) {
            let image = render(&scene, side).unwrap();
            let report = check(&image, &scene).unwrap();
            assert!(report.exact, "{side} px, {scene}:\n{report}");
        }
    }
}

#[test]
fn checker_stays_exact_under_blur_and_noise() {
    let mut singles = Accuracy::default();
    for side in [160, 192] {
        for (i, scene) in single_object_scenes().into_iter().enumerate() {
            let image = blur_and_noise(&render(&scene, side).unwrap(), (side * 1000 + i) as u64);
            singles.add(&check(&image, &scene).unwrap());
        }
    }
    let mut multis = Accuracy::default();
    for (side, count) in [(160, 200), (192, 200), (480, 40)] {
        for (i, scene) in multi_object_scenes(side as u64 + 7, count)
            .into_iter()
            .enumerate()
        {
            let image = blur_and_noise(&render(&scene, side).unwrap(), (side * 1000 + i) as u64);
            multis.add(&check(&image, &scene).unwrap());
        }
    }
    println!("blur + noise, single objects at 160/192 px: {singles}");
    println!("blur + noise, 2-3 objects at 160/192/480 px: {multis}");
    assert!(singles.exact_rate().unwrap() >= 0.99, "{singles}");
    assert!(multis.exact_rate().unwrap() >= 0.99, "{multis}");
}

/// Renders `shown`, checks it against `expected`, and returns the one object check.
fn check_one(shown: Object, expected: Object) -> CheckReport {
    let image = render(&Scene::new(vec![shown]).unwrap(), 160).unwrap();
    check(&image, &Scene::new(vec![expected]).unwrap()).unwrap()
}

#[test]
fn checker_names_the_attribute_that_differs() {
    let base = Object {
        size: Size::Large,
        colour: Colour::Green,
        shape: Shape::Square,
        cell: Cell::Top,
    };
    let flags = |r: &CheckReport| {
        let o = &r.objects[0];
        (o.colour, o.shape, o.size, o.cell)
    };
    let r = check_one(
        base,
        Object {
            colour: Colour::Cyan,
            ..base
        },
    );
    assert_eq!(flags(&r), (false, true, true, true));
    assert!(!r.exact && r.extra.is_empty());
    assert!(r.to_string().contains("found colour green"), "{r}");
    let r = check_one(
        base,
        Object {
            shape: Shape::Circle,
            ..base
        },
    );
    assert_eq!(flags(&r), (true, false, true, true));
    assert!(r.to_string().contains("found shape square"), "{r}");
    let r = check_one(
        base,
        Object {
            size: Size::Small,
            ..base
        },
    );
    assert_eq!(flags(&r), (true, true, false, true));
    // Another cell: matched by colour, so only the cell is wrong.
    let r = check_one(
        base,
        Object {
            cell: Cell::BottomRight,
            ..base
        },
    );
    assert_eq!(flags(&r), (true, true, true, false));
    assert!(r.extra.is_empty(), "{r}");
    // Another cell and another colour: nothing matches; the detection is extra.
    let r = check_one(
        base,
        Object {
            cell: Cell::Left,
            colour: Colour::Red,
            ..base
        },
    );
    assert!(r.objects[0].detected.is_none() && r.extra.len() == 1);
    assert_eq!(flags(&r), (false, false, false, false));
    assert!(r.to_string().contains("missing"), "{r}");
}

#[test]
fn every_single_attribute_change_is_caught_for_every_object() {
    for scene in single_object_scenes() {
        let shown = scene.objects[0];
        let detected = detect(&render(&scene, 160).unwrap()).unwrap();
        let mut wrong: Vec<(Object, usize)> = Vec::new();
        wrong.extend(
            Colour::ALL
                .iter()
                .filter(|&&c| c != shown.colour)
                .map(|&colour| (Object { colour, ..shown }, 0)),
        );
        wrong.extend(
            Shape::ALL
                .iter()
                .filter(|&&s| s != shown.shape)
                .map(|&shape| (Object { shape, ..shown }, 1)),
        );
        wrong.extend(
            Size::ALL
                .iter()
                .filter(|&&s| s != shown.size)
                .map(|&size| (Object { size, ..shown }, 2)),
        );
        wrong.extend(
            Cell::ALL
                .iter()
                .filter(|&&c| c != shown.cell)
                .map(|&cell| (Object { cell, ..shown }, 3)),
        );
        for (expected, attribute) in wrong {
            let report = CheckReport::new(&Scene::new(vec![expected]).unwrap(), detected.clone());
            let o = &report.objects[0];
            let got = [o.colour, o.shape, o.size, o.cell];
            let mut want = [true; 4];
            want[attribute] = false;
            assert_eq!(got, want, "{shown} shown, {expected} expected");
            assert!(!report.exact);
        }
    }
}

#[test]
fn missing_and_extra_objects_break_exactness() {
    let two =
        Scene::parse("a small red circle at the top left and a large blue triangle at the bottom")
            .unwrap();
    let one = Scene::parse("a small red circle at the top left").unwrap();
    // The image has an object the caption does not mention.
    let r = check(&render(&two, 192).unwrap(), &one).unwrap();
    assert!(r.objects[0].is_exact() && !r.exact);
    assert_eq!(r.extra.len(), 1);
    assert_eq!(r.extra[0].object, two.objects[1]);
    // The image lacks an object the caption mentions.
    let r = check(&render(&one, 192).unwrap(), &two).unwrap();
    assert!(r.objects[0].is_exact() && r.objects[1].detected.is_none() && !r.exact);
    // Swapped colours between two objects: both matched by cell, both colours wrong.
    let swapped =
        Scene::parse("a small blue circle at the top left and a large red triangle at the bottom")
            .unwrap();
    let r = check(&render(&two, 192).unwrap(), &swapped).unwrap();
    assert!(r
        .objects
        .iter()
        .all(|o| !o.colour && o.shape && o.size && o.cell));
}

#[test]
fn touching_objects_are_separated_by_cell() {
    // Two 0.34-side squares centred in the left and centre cells overlap at the cell boundary.
    let side = 150;
    let mut pixels = vec![255u8; side * side * 3];
    let mut paint = |cx: f32, colour: Colour| {
        let half = 0.17 * side as f32;
        let cy = 0.5 * side as f32;
        for y in 0..side {
            for x in 0..side {
                let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                if (px - cx).abs() < half && (py - cy).abs() < half {
                    pixels[(y * side + x) * 3..][..3].copy_from_slice(&colour.rgb());
                }
            }
        }
    };
    paint(side as f32 / 6.0, Colour::Red);
    paint(side as f32 / 2.0, Colour::Purple);
    let image = Image::new(side, side, pixels).unwrap();
    let found: Vec<Object> = detect(&image).unwrap().iter().map(|d| d.object).collect();
    let expected =
        Scene::parse("a large red square at the left and a large purple square in the center")
            .unwrap();
    assert_eq!(found, expected.objects);
}

#[test]
fn specks_blank_and_malformed_images() {
    let side = 96;
    let white = Image::new(side, side, vec![255; side * side * 3]).unwrap();
    assert!(detect(&white).unwrap().is_empty());
    // A few dark specks and a stray line one pixel wide are no objects.
    let mut specks = white.clone();
    for &(x, y) in &[(5usize, 5usize), (50, 70), (90, 10), (91, 10), (91, 11)] {
        specks.pixels[(y * side + x) * 3..][..3].copy_from_slice(&[0, 0, 0]);
    }
    assert!(detect(&specks).unwrap().is_empty());
    let scene = Scene::parse("a small red circle in the center").unwrap();
    let r = check(&white, &scene).unwrap();
    assert!(!r.exact && r.objects[0].detected.is_none());
    // Non-square images and odd sizes work: a 2:1 stretch keeps cells and attributes.
    let square = render(
        &Scene::parse("a large orange square at the bottom right").unwrap(),
        90,
    )
    .unwrap();
    let mut wide = Vec::with_capacity(180 * 90 * 3);
    for y in 0..90 {
        for x in 0..180 {
            wide.extend_from_slice(&pixel(&square, x / 2, y));
        }
    }
    let wide = Image::new(180, 90, wide).unwrap();
    let found = detect(&wide).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].object.cell, Cell::BottomRight);
    assert_eq!(found[0].object.colour, Colour::Orange);
    assert_eq!(found[0].object.size, Size::Large);
    // Degenerate images are answered, not panicked on.
    assert!(detect(&Image {
        width: 0,
        height: 0,
        pixels: vec![]
    })
    .unwrap()
    .is_empty());
    assert!(detect(&Image {
        width: 1,
        height: 1,
        pixels: vec![0, 0, 0]
    })
    .is_ok());
    assert!(detect(&Image {
        width: 3,
        height: 1,
        pixels: vec![0; 9]
    })
    .is_ok());
    let bad = Image {
        width: 10,
        height: 10,
        pixels: vec![0; 299],
    };
    assert_eq!(
        detect(&bad),
        Err(CheckError::PixelBuffer {
            width: 10,
            height: 10,
            len: 299
        })
    );
    for (width, height) in [(usize::MAX, 2), (1 << 16, 1 << 16)] {
        let huge = Image {
            width,
            height,
            pixels: vec![],
        };
        assert_eq!(detect(&huge), Err(CheckError::TooLarge { width, height }));
    }
    assert_eq!(
        check(&white, &Scene { objects: vec![] }),
        Err(CheckError::InvalidScene(SceneError::Empty))
    );
}

#[test]
fn accuracy_sums_reports() {
    let mut acc = Accuracy::default();
    assert_eq!(acc.exact_rate(), None);
    assert_eq!(acc.colour_accuracy(), None);
    let two =
        Scene::parse("a small red circle at the top left and a large blue triangle at the bottom")
            .unwrap();
    let image = render(&two, 160).unwrap();
    acc.add(&check(&image, &two).unwrap());
    let wrong =
        Scene::parse("a small red square at the top left and a large blue triangle at the bottom")
            .unwrap();
    acc.add(&check(&image, &wrong).unwrap());
    assert_eq!(
        (acc.scenes, acc.exact_scenes, acc.objects, acc.exact_objects),
        (2, 1, 4, 3)
    );
    assert_eq!(acc.exact_rate(), Some(0.5));
    assert_eq!(acc.shape_accuracy(), Some(0.75));
    assert_eq!(acc.colour_accuracy(), Some(1.0));
    assert_eq!(acc.size_accuracy(), Some(1.0));
    assert_eq!(acc.cell_accuracy(), Some(1.0));
    assert_eq!(acc.object_accuracy(), Some(0.75));
    let mut merged = acc;
    merged.merge(&acc);
    assert_eq!(merged.scenes, 4);
    assert_eq!(merged.exact_rate(), Some(0.5));
    let reports = [check(&image, &two).unwrap(), check(&image, &wrong).unwrap()];
    assert_eq!(reports.iter().collect::<Accuracy>(), acc);
    assert!(acc
        .to_string()
        .starts_with("exact 50.0% of 2 scenes; colour 100.0%, shape 75.0%"));
}

/// The checker must take well under 5 ms per 192 px image in release builds.
#[test]
fn checker_speed_at_192_px() {
    let scenes = multi_object_scenes(3, 200);
    let images: Vec<(Image, &Scene)> = scenes
        .iter()
        .map(|s| (blur_and_noise(&render(s, 192).unwrap(), 1), s))
        .collect();
    let start = Instant::now();
    let mut exact = 0;
    for (image, scene) in &images {
        exact += usize::from(check(image, scene).unwrap().exact);
    }
    let per_image = start.elapsed() / images.len() as u32;
    println!(
        "check: {per_image:?} per 192 px image ({exact}/{} exact)",
        images.len()
    );
    if !cfg!(debug_assertions) {
        assert!(per_image.as_micros() < 2500, "{per_image:?} per image");
    }
}
