//! Editing on the official sample (CogView2's `cute_girl.jpg` with the rectangle of
//! `input_comp.txt`) through the tiny official-layout folder (tests/fixtures/model-dir: random
//! weights, 20×20 → 60×60 tokens, 480 px), and editing's bad input.

use cogview_backend_tests as common;

use cogview::core::edit::{EditMask, Region};
use cogview::{Image, Pipeline, PipelineConfig, RunContext, Settings};

fn pipeline() -> Pipeline {
    let cfg = PipelineConfig {
        model_dir: Some(common::fixtures().join("model-dir")),
        ..Default::default()
    };
    Pipeline::from_settings(Settings::resolve(&cfg, true).unwrap()).unwrap()
}

fn cute_girl() -> Image {
    cogview::image::load_image(common::fixtures().join("completion/cute_girl.jpg")).unwrap()
}

/// The first line of the official input_comp.txt: text, image, h0 w0 h1 w1 (fractions).
fn official_rectangle() -> (String, Region) {
    let text =
        std::fs::read_to_string(common::fixtures().join("completion/input_comp.txt")).unwrap();
    let f: Vec<&str> = text.lines().next().unwrap().split('\t').collect();
    let v: Vec<f64> = f[2..6].iter().map(|s| s.parse().unwrap()).collect();
    (
        f[0].to_string(),
        Region::Fraction {
            top: v[0],
            left: v[1],
            bottom: v[2],
            right: v[3],
        },
    )
}

/// Mean absolute difference per channel over the pixels where `select` holds.
fn mean_abs_diff(a: &Image, b: &Image, select: impl Fn(usize, usize) -> bool) -> f64 {
    let (mut sum, mut n) = (0f64, 0usize);
    for y in 0..a.height {
        for x in 0..a.width {
            if select(x, y) {
                for c in 0..3 {
                    let i = (y * a.width + x) * 3 + c;
                    sum += (a.pixels[i] as f64 - b.pixels[i] as f64).abs();
                    n += 1;
                }
            }
        }
    }
    sum / n.max(1) as f64
}

#[test]
fn the_official_sample_keeps_everything_outside_the_mask() {
    // In low-memory mode, which must hold one model at a time while editing too.
    let cfg = PipelineConfig {
        model_dir: Some(common::fixtures().join("model-dir")),
        low_memory: Some(true),
        ..Default::default()
    };
    let p = std::sync::Arc::new(
        Pipeline::from_settings(Settings::resolve(&cfg, true).unwrap()).unwrap(),
    );
    let mut ctx = RunContext::with_seed(7);
    let log = common::ResidencyLog::attach(&p, &mut ctx);
    let img = cute_girl();
    let (_, region) = official_rectangle();
    // The mask is given on the input image (264×322 px); the pipeline brings it to 480×480.
    let mask = EditMask::from_regions(img.width, img.height, &[region]).unwrap();
    let (prepared, full) = p.prepare_edit_input(&img, &mask).unwrap();
    assert_eq!((prepared.width, full.width()), (480, 480));
    let edited = p
        .edit(&img, &mask, "a girl holding a watermelon", 2, &ctx)
        .unwrap();
    assert_eq!(edited.len(), 2);
    log.assert_one_model_at_a_time();
    let vq = p.image_tokenizer().unwrap();
    let c = p.geometry().compression;
    let original_high = vq.encode(&prepared, c).unwrap();
    for e in &edited {
        let st = e.stages.as_ref().unwrap();
        // The crop: 20/14 of the box side reaches 480, so the whole image (as officially).
        assert_eq!((st.crop.top, st.crop.left, st.crop.side), (0, 0, 480));
        // Stage 1: context cells keep their tokens, masked cells are generated.
        let masked: Vec<usize> = (0..400).filter(|&i| st.low_res_mask[i]).collect();
        assert!(!masked.is_empty() && masked.len() < 400);
        for i in 0..400 {
            if !st.low_res_mask[i] {
                assert_eq!(st.low_res.ids[i], st.low_res_input.ids[i], "cell {i}");
            }
        }
        let changed = masked
            .iter()
            .filter(|&&i| st.low_res.ids[i] != st.low_res_input.ids[i])
            .count();
        assert!(
            changed * 2 > masked.len(),
            "only {changed} of {} masked stage-1 cells changed",
            masked.len()
        );
        // Super-resolution: outside the mask every high-resolution token is the input's own.
        let high = st.high_res.as_ref().unwrap();
        let high_mask = st.high_res_mask.as_ref().unwrap();
        for (i, keep) in high_mask.iter().map(|m| !m).enumerate() {
            if keep {
                assert_eq!(high.ids[i], original_high.ids[i], "high cell {i}");
            }
        }
    }
    // Each image has its own seed.
    assert_ne!(
        edited[0].stages.as_ref().unwrap().low_res,
        edited[1].stages.as_ref().unwrap().low_res
    );
}

#[test]
fn an_empty_mask_returns_the_input_and_a_full_mask_equals_generation() {
    let p = pipeline();
    let img = cute_girl();
    let ctx = RunContext::with_seed(3);
    let empty = EditMask::empty(img.width, img.height).unwrap();
    let out = p.edit(&img, &empty, "a girl", 1, &ctx).unwrap();
    let (prepared, _) = p.prepare_edit_input(&img, &empty).unwrap();
    assert!(out[0].stages.is_none());
    assert_eq!(out[0].image, prepared);

    let full = EditMask::full(img.width, img.height).unwrap();
    let edited = p.edit(&img, &full, "a girl", 1, &ctx).unwrap();
    let generated = p.generate("a girl", 1, false, &ctx).unwrap();
    let vq = p.image_tokenizer().unwrap();
    let c = p.geometry().compression;
    for (e, g) in edited.iter().zip(&generated) {
        let st = e.stages.as_ref().unwrap();
        assert_eq!(st.low_res, g.low_res, "stage 1, seed {}", e.seed);
        assert_eq!(
            st.high_res.as_ref(),
            g.high_res.as_ref(),
            "stages 2-3, seed {}",
            e.seed
        );
        // The edit's last step is the official VQ round trip of the pasted image.
        let round_trip = vq.decode(&vq.encode(&g.image, c).unwrap(), c).unwrap();
        assert_eq!(e.image, round_trip);
    }
}

#[test]
fn small_crops_are_completed_at_stage_1_and_several_regions_combine() {
    let p = pipeline();
    let img = cute_girl();
    // Two small rectangles far apart: one crop square holds both (their bounding box).
    let regions = [
        Region::Pixels {
            left: 20,
            top: 30,
            right: 40,
            bottom: 50,
        },
        Region::Pixels {
            left: 60,
            top: 60,
            right: 70,
            bottom: 75,
        },
    ];
    let mask = EditMask::from_regions(img.width, img.height, &regions).unwrap();
    let e = &p
        .edit(&img, &mask, "a flower", 1, &RunContext::with_seed(1))
        .unwrap()[0];
    let st = e.stages.as_ref().unwrap();
    // 264 px wide → 480: the box is about 91 × 82 px, so the square is 130 px ≤ 160: decoded
    // from stage 1, no super-resolution (as the official code does for small crops).
    assert!(st.crop.side <= 160, "{:?}", st.crop);
    assert!(st.high_res.is_none());
    // Stage-1 context cells keep their tokens; the pasted square is the decoded crop.
    for i in 0..400 {
        if !st.low_res_mask[i] {
            assert_eq!(st.low_res.ids[i], st.low_res_input.ids[i]);
        }
    }
    assert_eq!(st.crop_image.width, st.crop.side);
    assert!(st.low_res_mask.iter().filter(|m| **m).count() >= 2);
}

/// With a trained image tokenizer (the embedded default model), outside the mask the edit is the
/// input through the VQ round trip: far from the mask it differs from `decode(encode(input))`
/// by a small fraction of what the regenerated region does.
#[test]
fn with_the_default_model_pixels_outside_the_mask_are_the_round_trip() {
    let cfg = cogview::OpenOptions::default().config().unwrap();
    let p = Pipeline::from_settings(Settings::resolve(&cfg, true).unwrap()).unwrap();
    let img = cute_girl();
    let (_, region) = official_rectangle();
    let mask = EditMask::from_regions(img.width, img.height, &[region]).unwrap();
    let (prepared, full) = p.prepare_edit_input(&img, &mask).unwrap();
    let side = prepared.width;
    let vq = p.image_tokenizer().unwrap();
    let c = p.geometry().compression;
    let round_trip = vq.decode(&vq.encode(&prepared, c).unwrap(), c).unwrap();
    let margin = 2 * c.factor();
    let near = |x: usize, y: usize| {
        let (x0, y0) = (x.saturating_sub(margin), y.saturating_sub(margin));
        (y0..(y + margin + 1).min(side))
            .any(|yy| (x0..(x + margin + 1).min(side)).any(|xx| full.get(xx, yy)))
    };
    let edited = p
        .edit(
            &img,
            &mask,
            "a large blue circle in the center",
            3,
            &RunContext::with_seed(5),
        )
        .unwrap();
    for e in &edited {
        let outside = mean_abs_diff(&e.image, &round_trip, |x, y| !near(x, y));
        let inside = mean_abs_diff(&e.image, &round_trip, |x, y| full.get(x, y));
        let input_vs_round_trip = mean_abs_diff(&prepared, &round_trip, |x, y| !near(x, y));
        eprintln!(
            "seed {}: mean |edit - round trip| outside the mask {outside:.2}, inside {inside:.2} (input vs its round trip outside: {input_vs_round_trip:.2})",
            e.seed
        );
        assert!(
            outside < 0.25 * inside,
            "outside {outside}, inside {inside}"
        );
    }
}

#[test]
fn bad_masks_and_images_are_typed_errors() {
    let p = pipeline();
    let img = cute_girl();
    let ctx = RunContext::with_seed(1);
    // A mask of another size than the image: an error naming both sizes.
    let wrong = EditMask::full(100, 100).unwrap();
    let e = p.edit(&img, &wrong, "a girl", 1, &ctx).unwrap_err();
    assert!(
        e.to_string().contains("100x100") && e.to_string().contains("264x322"),
        "{e}"
    );
    // An image smaller than one token.
    let tiny = Image::new(5, 5, vec![0; 75]).unwrap();
    let e = p
        .edit(&tiny, &EditMask::full(5, 5).unwrap(), "a girl", 1, &ctx)
        .unwrap_err();
    assert!(e.to_string().contains("smaller than one token"), "{e}");
    // A rectangle outside the image, an inverted one, and fractions beyond [0, 1].
    let mut m = EditMask::empty(img.width, img.height).unwrap();
    assert!(m
        .add(Region::Pixels {
            left: 0,
            top: 0,
            right: 300,
            bottom: 10
        })
        .is_err());
    assert!(m
        .add(Region::Pixels {
            left: 50,
            top: 10,
            right: 40,
            bottom: 20
        })
        .is_err());
    assert!(m
        .add(Region::Fraction {
            left: 0.0,
            top: 0.0,
            right: 1.5,
            bottom: 1.0
        })
        .is_err());
    // A non-binary mask image is thresholded at mid-grey (documented), not refused.
    let grey = Image::new(2, 1, vec![200, 200, 200, 60, 60, 60]).unwrap();
    assert_eq!(EditMask::from_image(&grey).unwrap().cells(), &[true, false]);
    // Zero images, an empty prompt.
    let full = EditMask::full(img.width, img.height).unwrap();
    assert!(p.edit(&img, &full, "a girl", 0, &ctx).is_err());
    assert!(p.edit(&img, &full, "  ", 1, &ctx).is_err());
}
