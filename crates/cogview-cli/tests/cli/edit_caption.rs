//! `cogview edit`, `cogview caption` and `generate --rerank` as a user runs them, with the
//! embedded default model (192 px), and the reranking/captioning contracts through the Rust API
//! on the tiny official-layout folder.

use cogview_backend_tests as common;

use cogview::core::stage1::Style;
use cogview::pipeline::record::{ImageRecord, Origin};
use cogview::pipeline::CaptionOptions;
use cogview::{Pipeline, PipelineConfig, RunContext, Settings};
use std::path::Path;

use common::cogview;

fn ok(args: &[&str]) -> (String, String) {
    let out = cogview(args);
    assert!(
        out.status.success(),
        "cogview {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn fails(args: &[&str]) -> String {
    let out = cogview(args);
    assert_eq!(out.status.code(), Some(1), "cogview {args:?}");
    String::from_utf8(out.stderr).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A 192-px render of one scene (the default model's own domain).
fn scene_png(dir: &Path, caption: &str) -> std::path::PathBuf {
    let scene = cogview_scenes::Scene::parse(caption).unwrap();
    let img = cogview_scenes::render(&scene, 192).unwrap();
    let p = dir.join("input.png");
    cogview::image::save_png(&img, &p, &[]).unwrap();
    p
}

#[test]
fn edit_writes_recorded_images_and_refuses_bad_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let input = scene_png(tmp.path(), "a large red circle in the center");
    let out = tmp.path().join("out");
    let (stdout, _) = ok(&[
        "edit",
        s(&input),
        "a large blue square in the center",
        "--rect",
        "64,64,128,128",
        "-n",
        "2",
        "--seed",
        "5",
        "--out",
        s(&out),
        "--quiet",
    ]);
    let files: Vec<&str> = stdout.lines().collect();
    assert_eq!(files.len(), 2, "{stdout}");
    let rec = ImageRecord::read_png(Path::new(files[1])).unwrap();
    assert_eq!(rec.seed, 6);
    match &rec.origin {
        Origin::Edit { image_sha256, mask } => {
            assert_eq!(image_sha256.len(), 64);
            assert!(mask.contains("left: 64"), "{mask}");
        }
        o => panic!("{o:?}"),
    }
    // The same edit from a mask image: the same pixels.
    let mut m = cogview::Image::new(192, 192, vec![0; 192 * 192 * 3]).unwrap();
    for y in 64..128 {
        for x in 64..128 {
            m.pixels[(y * 192 + x) * 3..(y * 192 + x) * 3 + 3].fill(255);
        }
    }
    let mask = tmp.path().join("mask.png");
    cogview::image::save_png(&m, &mask, &[]).unwrap();
    let out2 = tmp.path().join("out2");
    let (stdout2, _) = ok(&[
        "edit",
        s(&input),
        "a large blue square in the center",
        "--mask",
        s(&mask),
        "--seed",
        "5",
        "--out",
        s(&out2),
        "--quiet",
    ]);
    assert_eq!(
        cogview::image::load_image(stdout2.trim()).unwrap(),
        cogview::image::load_image(files[0]).unwrap()
    );
    // Regenerating an edit asks for the input instead.
    let e = fails(&["regenerate", files[0]]);
    assert!(e.contains("is an edit") && e.contains("--seed 5"), "{e}");
    // No mask, a mask of another size, a rectangle outside the image, a malformed rectangle.
    let e = fails(&["edit", s(&input), "a cat", "--out", s(&out)]);
    assert!(e.contains("--mask") && e.contains("--rect"), "{e}");
    let small = tmp.path().join("small.png");
    cogview::image::save_png(
        &cogview::Image::new(10, 10, vec![255; 300]).unwrap(),
        &small,
        &[],
    )
    .unwrap();
    let e = fails(&[
        "edit",
        s(&input),
        "a cat",
        "--mask",
        s(&small),
        "--out",
        s(&out),
    ]);
    assert!(e.contains("10x10") && e.contains("192x192"), "{e}");
    let e = fails(&[
        "edit",
        s(&input),
        "a cat",
        "--rect",
        "0,0,300,10",
        "--out",
        s(&out),
    ]);
    assert!(e.contains("outside the 192x192 image"), "{e}");
    let bad = cogview(&[
        "edit",
        s(&input),
        "a cat",
        "--rect",
        "1,2,3",
        "--out",
        s(&out),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("give x0,y0,x1,y1"));
}

#[test]
fn caption_writes_text_and_scores_candidates() {
    let tmp = tempfile::tempdir().unwrap();
    let input = scene_png(tmp.path(), "a large red circle in the center");
    let (stdout, stderr) = ok(&["caption", s(&input)]);
    assert!(!stdout.trim().is_empty(), "{stdout}");
    assert!(stderr.contains("mean log-probability"), "{stderr}");
    // Greedy is deterministic; sampling with a seed too.
    assert_eq!(ok(&["caption", s(&input), "-q"]).0, stdout);
    let a = ok(&["caption", s(&input), "--sample", "--seed", "3", "-q"]).0;
    assert_eq!(
        ok(&["caption", s(&input), "--sample", "--seed", "3", "-q"]).0,
        a
    );
    // Scores: one line per caption, best first, each a mean log-probability (negative).
    let (scores, _) = ok(&[
        "caption",
        s(&input),
        "--score",
        "a small green triangle at the top left",
        "--score",
        "a large red circle in the center",
    ]);
    let rows: Vec<(f64, &str)> = scores
        .lines()
        .map(|l| {
            let (v, t) = l.split_once('\t').unwrap();
            (v.parse().unwrap(), t)
        })
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].0 >= rows[1].0 && rows[0].0 < 0.0);
    let e = fails(&["caption", s(&input), "--sample", "--temperature", "0"]);
    assert!(e.contains("--temperature"), "{e}");
}

#[test]
fn generate_with_rerank_keeps_the_best_candidates_and_records_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (stdout, stderr) = ok(&[
        "generate",
        "a small green square at the top left",
        "--rerank",
        "4",
        "-n",
        "2",
        "--seed",
        "10",
        "--out",
        s(&out),
    ]);
    let kept: Vec<&str> = stderr.lines().filter(|l| l.contains("(kept)")).collect();
    assert_eq!(kept.len(), 2, "{stderr}");
    assert_eq!(stderr.matches("candidate seed").count(), 4);
    for f in stdout.lines() {
        let rec = ImageRecord::read_png(Path::new(f)).unwrap();
        match rec.origin {
            Origin::Generate {
                rerank: Some(r), ..
            } => {
                assert_eq!(r.candidates, 4);
                assert!(!r.per_image);
                assert!(kept
                    .iter()
                    .any(|l| l.contains(&format!("seed {}:", rec.seed))));
            }
            o => panic!("{o:?}"),
        }
        // Kept from the pool, the image is plain generation of its seed (the default model's
        // own best-of-4 is off in its record), and regenerate makes it again.
        assert_eq!(rec.settings.coglm.rerank, 1);
        let again = tmp.path().join("again.png");
        let (_, stderr) = ok(&["regenerate", f, "--out", s(&again), "--quiet"]);
        assert!(stderr.contains("identical"), "{stderr}");
    }
    let e = fails(&[
        "generate",
        "a cat",
        "--rerank",
        "1",
        "-n",
        "2",
        "--out",
        s(&out),
    ]);
    assert!(e.contains("cannot keep 2 of 1"), "{e}");
}

fn fixture_pipeline() -> Pipeline {
    let cfg = PipelineConfig {
        model_dir: Some(common::fixtures().join("model-dir")),
        ..Default::default()
    };
    Pipeline::from_settings(Settings::resolve(&cfg, false).unwrap()).unwrap()
}

#[test]
fn reranking_keeps_the_highest_inverse_prompt_scores_and_each_image_regenerates_alone() {
    let p = fixture_pipeline();
    let ctx = RunContext::with_seed(20);
    let (kept, ranked) = p
        .generate_reranked("a red circle", 5, 2, true, &ctx)
        .unwrap();
    assert_eq!(ranked.len(), 5);
    let all = p.generate("a red circle", 5, true, &ctx).unwrap();
    for (c, g) in ranked.iter().zip(&all) {
        assert_eq!(c.seed, g.seed);
        let want = p.caption_score(&g.low_res, "a red circle").unwrap();
        assert!((c.score - want).abs() < 1e-9, "{} vs {want}", c.score);
    }
    let mut scores: Vec<f64> = ranked.iter().map(|c| c.score).collect();
    scores.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(kept.len(), 2);
    for (k, img) in kept.iter().enumerate() {
        let c = ranked.iter().find(|c| c.seed == img.seed).unwrap();
        assert!(c.kept);
        assert_eq!(c.score, scores[k], "kept in score order");
        let alone = &all[(img.seed - 20) as usize];
        assert_eq!(alone.image, img.image);
    }
}

#[test]
fn a_greedy_caption_scores_as_written_and_stays_in_the_text_vocabulary() {
    let p = fixture_pipeline();
    let img =
        cogview::image::load_image(common::fixtures().join("completion/cute_girl.jpg")).unwrap();
    let options = CaptionOptions {
        max_tokens: 6,
        sampling: None,
        seed: 0,
    };
    let w = p
        .caption(&img, &options, &RunContext::with_seed(0))
        .unwrap();
    // The official model has no end of caption: the caption runs to max_tokens.
    assert_eq!(w.caption.ids.len(), 6);
    assert!(!w.caption.ended);
    assert!(
        w.caption.ids.iter().all(|&id| (512..5512).contains(&id)),
        "{:?}",
        w.caption.ids
    );
    // The KV-cache path's mean log-probability equals a full forward's score of the same ids.
    let grid = p.encode_image(&img).unwrap();
    let decoded = p.text_tokenizer().decode(&w.caption.ids).unwrap();
    assert_eq!(decoded, w.text);
    let full = p.caption_log_likelihood(&grid, &w.caption.ids).unwrap();
    assert!(
        (full - w.caption.mean_log_prob).abs() < 1e-4,
        "{full} vs {}",
        w.caption.mean_log_prob
    );
}

/// The fixture folder's pipeline (all three stages) built from `cfg` in `style`.
fn built_in_style(cfg: &PipelineConfig, style: Style) -> Pipeline {
    let cfg = PipelineConfig {
        style: Some(style),
        ..cfg.clone()
    };
    Pipeline::from_settings(Settings::resolve(&cfg, true).unwrap()).unwrap()
}

#[test]
fn a_restyled_pipeline_makes_what_a_pipeline_built_in_that_style_makes() {
    let cfg = PipelineConfig {
        model_dir: Some(common::fixtures().join("model-dir")),
        ..Default::default()
    };
    let mut explicit = cfg.clone();
    explicit.coglm.temperature = Some(0.9);
    let base = built_in_style(&cfg, Style::Mainbody);
    let images = |p: &Pipeline| {
        let out = p
            .generate("a red circle", 1, false, &RunContext::with_seed(31))
            .unwrap();
        out.into_iter()
            .map(|g| (g.low_res, g.high_res, g.image))
            .collect::<Vec<_>>()
    };
    let mainbody = images(&base);
    // Flat changes stage 1's temperature (1.1) and DSR's cluster sampling (5 clusters, 0.4);
    // Chinese the temperature alone (1.12); None only the template.
    for style in [Style::Flat, Style::Chinese, Style::None] {
        let restyled = base.with_style(style);
        let built = built_in_style(&cfg, style);
        assert_eq!(restyled.style(), style);
        assert_eq!(restyled.settings(), built.settings(), "{style:?}");
        let got = images(&restyled);
        assert!(
            got == images(&built),
            "{style:?}: the restyled pipeline's images differ"
        );
        assert!(got != mainbody, "{style:?} draws what mainbody draws");
        // A value the pipeline file sets stays.
        let restyled = built_in_style(&explicit, Style::Mainbody).with_style(style);
        assert_eq!(
            restyled.settings(),
            built_in_style(&explicit, style).settings()
        );
        assert_eq!(restyled.settings().unwrap().coglm.temperature, 0.9);
    }
    // The restyled pipeline shares the loaded models (none loads twice).
    assert_eq!(
        base.with_style(Style::Flat).loaded_components(),
        base.loaded_components()
    );
    // Back to its own style: the same images.
    assert!(images(&base.with_style(Style::Flat).with_style(Style::Mainbody)) == mainbody);
}
