//! `cogview generate`, `regenerate`, `super-resolve`, `info` run as a user runs them, on the tiny
//! official-layout folder tests/fixtures/model-dir (random weights: the images are noise).

use cogview_backend_tests as common;

use cogview::pipeline::record::{ImageRecord, Origin};
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Command;

fn model_dir() -> PathBuf {
    common::fixtures().join("model-dir")
}

use common::cogview;

fn ok(args: &[&str]) -> String {
    let out = cogview(args);
    assert!(
        out.status.success(),
        "cogview {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = cogview(args);
    let err = String::from_utf8(out.stderr).unwrap();
    // 1: the request failed; 2: the command line itself is malformed (clap's convention).
    assert!(
        matches!(out.status.code(), Some(1 | 2)),
        "cogview {args:?} should fail cleanly: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The files in `dir` (none if it does not exist).
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A copy of the fixture folder (links resolved) without the named parts.
fn copy_model_dir(to: &Path, without: &[&str]) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.path().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    copy(&model_dir(), to);
    for w in without {
        let p = to.join(w);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
    }
}

fn sha256(path: &Path) -> String {
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn generate_writes_pngs_that_record_how_they_were_made_and_regenerate_reproduces_them() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let md = model_dir();
    let printed = ok(&[
        "generate",
        "a yellow star",
        "--model-dir",
        s(&md),
        "--style",
        "flat",
        "-n",
        "2",
        "--seed",
        "21",
        "--grid",
        "--save-grids",
        "--quiet",
        "--out",
        s(&out),
    ]);
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [
            s(&out.join("a-yellow-star-21.png")),
            s(&out.join("a-yellow-star-22.png")),
            s(&out.join("a-yellow-star-grid-21.png")),
        ]
    );
    let png = out.join("a-yellow-star-22.png");
    let img = cogview::image::load_image(&png).unwrap();
    assert_eq!((img.width, img.height), (480, 480));
    let grid = cogview::image::load_image(out.join("a-yellow-star-grid-21.png")).unwrap();
    assert_eq!((grid.width, grid.height), (960, 480), "two images in a row");
    let first = cogview::image::load_image(out.join("a-yellow-star-21.png")).unwrap();
    for y in [0, 239, 479] {
        let row = &grid.pixels[y * 960 * 3..(y + 1) * 960 * 3];
        assert_eq!(
            &row[..480 * 3],
            &first.pixels[y * 480 * 3..(y + 1) * 480 * 3]
        );
        assert_eq!(&row[480 * 3..], &img.pixels[y * 480 * 3..(y + 1) * 480 * 3]);
    }

    // The record: prompt, style, the image's own seed, effective settings, weight digests.
    let text = cogview::image::read_png_text(&png).unwrap();
    assert!(text.contains(&("prompt".to_string(), "a yellow star".to_string())));
    let rec = ImageRecord::read_png(&png).unwrap();
    assert_eq!(rec.prompt, "a yellow star");
    assert_eq!(rec.query, "a yellow star 平面风格");
    assert_eq!(rec.seed, 22);
    assert_eq!((rec.index, rec.of), (1, 2));
    assert_eq!(
        rec.origin,
        Origin::Generate {
            only_first_stage: false,
            rerank: None,
        }
    );
    assert_eq!(rec.settings.style.name(), "flat");
    assert_eq!(rec.settings.coglm.temperature, 1.1);
    assert_eq!(rec.settings.dsr.as_ref().unwrap().top_k_clusters, 5);
    let roles: Vec<&str> = rec.weights.iter().map(|w| w.role.as_str()).collect();
    for role in [
        "coglm",
        "dsr",
        "itersr",
        "image_tokenizer",
        "text_tokenizer",
        "cluster_labels",
    ] {
        assert!(roles.contains(&role), "{role} in {roles:?}");
    }
    // No private data: file names, sizes and digests, never where the files are.
    let chunk = &text.iter().find(|(k, _)| k == "cogview").unwrap().1;
    for private in [s(&md), s(tmp.path())] {
        assert!(!chunk.contains(private), "{private} in {chunk}");
    }
    for w in &rec.weights {
        assert_eq!(w.path.components().count(), 1, "{}", w.path.display());
        let file = walk_files(&md)
            .into_iter()
            .find(|f| f.file_name() == w.path.file_name() && sha256(f) == w.sha256)
            .unwrap_or_else(|| panic!("{} with its digest in {}", w.path.display(), md.display()));
        assert_eq!(w.bytes, std::fs::metadata(&file).unwrap().len());
    }

    // regenerate: the same pixels, the weights found by their digests in the folder given.
    let again = tmp.path().join("again.png");
    let err = fails(&["regenerate", s(&png), "--out", s(&again), "--quiet"]);
    assert!(err.contains("--weights-dir"), "{err}");
    let r = cogview(&[
        "regenerate",
        s(&png),
        "--weights-dir",
        s(&md),
        "--out",
        s(&again),
        "--quiet",
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("identical"));
    assert_eq!(cogview::image::load_image(&again).unwrap(), img);

    // An image whose pixels were changed is not reproduced, and regenerate says so.
    let mut edited = img.clone();
    edited.pixels[7] ^= 0x40;
    let edited_png = tmp.path().join("edited.png");
    cogview::image::save_png(&edited, &edited_png, &text).unwrap();
    let err = fails(&[
        "regenerate",
        s(&edited_png),
        "--weights-dir",
        s(&md),
        "--quiet",
    ]);
    assert!(
        err.contains("differs") && err.contains("1 of 691200"),
        "{err}"
    );

    // Weights that changed since are refused, naming the file.
    let moved = tmp.path().join("models");
    copy_model_dir(&moved, &[]);
    let labels = moved.join("cluster_label.npy");
    let mut bytes = std::fs::read(&labels).unwrap();
    let n = bytes.len();
    bytes.swap(n - 8, n - 16); // two labels exchanged: still a valid table
    std::fs::write(&labels, bytes).unwrap();
    let err = fails(&["regenerate", s(&png), "--model-dir", s(&moved), "--quiet"]);
    assert!(
        err.contains("cluster_label.npy") && err.contains("--ignore-weight-changes"),
        "{err}"
    );
    // The same folder with the original table reproduces the image.
    std::fs::copy(md.join("cluster_label.npy"), &labels).unwrap();
    let moved_out = tmp.path().join("moved.png");
    ok(&[
        "regenerate",
        s(&png),
        "--model-dir",
        s(&moved),
        "--out",
        s(&moved_out),
        "--quiet",
    ]);
}

#[test]
fn token_grids_round_trip_through_super_resolve_and_detokenize() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let md = model_dir();
    ok(&[
        "generate",
        "two cats",
        "--model-dir",
        s(&md),
        "--seed",
        "8",
        "--save-grids",
        "--quiet",
        "--out",
        s(&out),
    ]);
    let generated = cogview::image::load_image(out.join("two-cats-8.png")).unwrap();
    // Stages 2-3 from the saved 20x20 grid, same text and seed: the same image.
    let sr_out = tmp.path().join("sr");
    ok(&[
        "super-resolve",
        s(&out.join("two-cats-8.low.json")),
        "--prompt",
        "two cats",
        "--model-dir",
        s(&md),
        "--seed",
        "8",
        "--quiet",
        "--out",
        s(&sr_out),
    ]);
    let sr_png = sr_out.join("two-cats-sr-8.png");
    assert_eq!(cogview::image::load_image(&sr_png).unwrap(), generated);
    let rec = ImageRecord::read_png(&sr_png).unwrap();
    assert!(matches!(rec.origin, Origin::SuperResolve { .. }));
    // ...and regenerate reproduces a super-resolved image too.
    ok(&["regenerate", s(&sr_png), "--weights-dir", s(&md), "--quiet"]);
    // The 60x60 grid decodes to the image.
    let decoded = tmp.path().join("decoded.png");
    ok(&[
        "detokenize",
        s(&out.join("two-cats-8.high.json")),
        "--tokenizer",
        s(&md),
        "-o",
        s(&decoded),
    ]);
    assert_eq!(cogview::image::load_image(&decoded).unwrap(), generated);
    // super-resolve also takes an image: encoded at 160 px into a 20x20 grid first.
    let from_image = tmp.path().join("from-image");
    ok(&[
        "super-resolve",
        s(&common::fixtures().join("icetk/images/girl160.png")),
        "--prompt",
        "a photo",
        "--model-dir",
        s(&md),
        "--quiet",
        "--out",
        s(&from_image),
    ]);
    let img = cogview::image::load_image(from_image.join("a-photo-sr-1234.png")).unwrap();
    assert_eq!((img.width, img.height), (480, 480));
}

#[test]
fn dry_run_prints_the_estimate_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let printed = ok(&[
        "generate",
        "x",
        "--model-dir",
        s(&model_dir()),
        "-n",
        "16",
        "--low-memory",
        "--dtype",
        "bf16",
        "--dry-run",
        "--out",
        s(&out),
    ]);
    assert!(!out.exists(), "a dry run writes nothing");
    for needle in [
        "coglm",
        "dsr",
        "itersr",
        "image_tokenizer",
        "234976",
        "358624",
        "350176",
        "bf16",
        "estimated peak memory",
        "low-memory",
    ] {
        assert!(printed.contains(needle), "`{needle}` not in:\n{printed}");
    }
    // Batch 8 (the default) for 16 images.
    let coglm_row = printed.lines().find(|l| l.starts_with("coglm")).unwrap();
    assert!(
        coglm_row.split_whitespace().nth(4) == Some("8"),
        "{coglm_row}"
    );
}

#[test]
fn only_first_stage_needs_no_super_resolution_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let md = tmp.path().join("models");
    copy_model_dir(&md, &["cogview2-dsr", "cogview2-itersr"]);
    let out = tmp.path().join("out");
    ok(&[
        "generate",
        "a house",
        "--model-dir",
        s(&md),
        "--only-first-stage",
        "--quiet",
        "--out",
        s(&out),
    ]);
    let img = cogview::image::load_image(out.join("a-house-1234.png")).unwrap();
    assert_eq!((img.width, img.height), (480, 480));
    // Without --only-first-stage the missing part is named, with what it is.
    let out2 = tmp.path().join("out2");
    let err = fails(&[
        "generate",
        "a house",
        "--model-dir",
        s(&md),
        "--out",
        s(&out2),
    ]);
    assert!(
        err.contains("cogview2-dsr") && err.contains("direct super-resolution"),
        "{err}"
    );
    assert!(
        files(&out2).is_empty(),
        "nothing written: {:?}",
        files(&out2)
    );
}

#[test]
fn bad_input_is_refused_with_a_reason_and_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let md = model_dir();
    let out = tmp.path().join("out");
    let gen = |extra: &[&str]| -> String {
        let mut args = vec![
            "generate",
            "--model-dir",
            s(&md),
            "--out",
            s(&out),
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let e = fails(&args);
        let written: Vec<_> = files(&out)
            .into_iter()
            .filter(|f| f.ends_with(".png"))
            .collect();
        assert!(written.is_empty(), "{extra:?} left {written:?}");
        e
    };
    let long = "a very long prompt about a cat ".repeat(12);
    let e = gen(&[long.as_str()]);
    assert!(e.contains("tokens long") && e.contains("at most 95"), "{e}");
    let e = gen(&["   "]);
    assert!(e.contains("prompt is empty"), "{e}");
    let e = gen(&["a cat", "--style", "cubist"]);
    assert!(e.contains("cubist") && e.contains("watercolor"), "{e}");
    let e = gen(&["a cat", "-n", "0"]);
    assert!(
        e.contains("--num-images") && e.contains("at least 1"),
        "{e}"
    );
    let e = gen(&["a cat", "--batch-size", "0"]);
    assert!(e.contains("--batch-size"), "{e}");

    // A pipeline file whose model folder does not exist (a file naming no model applies to
    // the embedded default model: tests/cli/output_and_config.rs).
    let missing = tmp.path().join("missing.toml");
    std::fs::write(&missing, "model_dir = \"no-such-folder\"\n").unwrap();
    let e = fails(&[
        "generate",
        "a cat",
        "--config",
        s(&missing),
        "--out",
        s(&out),
    ]);
    assert!(e.contains("no-such-folder"), "{e}");

    // An output folder that cannot be made.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let e = fails(&[
        "generate",
        "a cat",
        "--model-dir",
        s(&md),
        "--out",
        s(&file.join("sub")),
    ]);
    assert!(e.contains("cannot create the output folder"), "{e}");

    // A configuration with an unknown key or a wrong type: the key and the line.
    let cfg = tmp.path().join("p.toml");
    std::fs::write(&cfg, "style = \"flat\"\n\n[dsr]\ntop_k_cluster = 5\n").unwrap();
    let e = fails(&[
        "generate",
        "a cat",
        "--config",
        s(&cfg),
        "--model-dir",
        s(&md),
    ]);
    assert!(e.contains("top_k_cluster") && e.contains("line 4"), "{e}");
    std::fs::write(&cfg, "[coglm]\ntemperature = \"hot\"\n").unwrap();
    let e = fails(&[
        "generate",
        "a cat",
        "--config",
        s(&cfg),
        "--model-dir",
        s(&md),
    ]);
    assert!(
        e.contains("coglm.temperature") && e.contains("line 2"),
        "{e}"
    );
    std::fs::write(&cfg, "[coglm]\ntemperature = -1.0\n").unwrap();
    let e = fails(&[
        "generate",
        "a cat",
        "--config",
        s(&cfg),
        "--model-dir",
        s(&md),
    ]);
    assert!(
        e.contains("coglm.temperature") && e.contains("positive"),
        "{e}"
    );
    std::fs::write(&cfg, "[dsr]\nbackend = \"onnx\"\n").unwrap();
    let e = fails(&[
        "generate",
        "a cat",
        "--config",
        s(&cfg),
        "--model-dir",
        s(&md),
    ]);
    assert!(e.contains("dsr.backend") && e.contains("onnx"), "{e}");

    // Parts that do not belong together: without cluster_label.npy the official 20000-code table
    // is used, which does not fit 512 image codes.
    let other = tmp.path().join("no-labels");
    copy_model_dir(&other, &["cluster_label.npy"]);
    let e = fails(&[
        "generate",
        "a cat",
        "--model-dir",
        s(&other),
        "--out",
        s(&out),
    ]);
    assert!(
        e.contains("20000 codes") && e.contains("512 image codes"),
        "{e}"
    );
    // A missing tokenizer is named with what it is.
    let other = tmp.path().join("no-text");
    copy_model_dir(&other, &["ice_text.model"]);
    let e = fails(&[
        "generate",
        "a cat",
        "--model-dir",
        s(&other),
        "--out",
        s(&out),
    ]);
    assert!(
        e.contains("ice_text.model") && e.contains("text tokenizer"),
        "{e}"
    );
    // Truncated weights.
    let other = tmp.path().join("truncated");
    copy_model_dir(&other, &[]);
    let pt = other.join("cogview2-itersr/2000/mp_rank_00_model_states.pt");
    let bytes = std::fs::read(&pt).unwrap();
    std::fs::write(&pt, &bytes[..bytes.len() / 2]).unwrap();
    let e = fails(&[
        "generate",
        "a cat",
        "--model-dir",
        s(&other),
        "--out",
        s(&out),
    ]);
    assert!(e.contains("mp_rank_00_model_states.pt"), "{e}");
    let e = fails(&["info", s(&other)]);
    assert!(e.contains("1 problem(s)"), "{e}");

    // regenerate on a PNG that cogview did not write.
    let plain = tmp.path().join("plain.png");
    cogview::image::save_png(
        &cogview::Image::new(2, 2, vec![0; 12]).unwrap(),
        &plain,
        &[],
    )
    .unwrap();
    let e = fails(&["regenerate", s(&plain)]);
    assert!(e.contains("no `cogview` text chunk"), "{e}");
}

#[test]
fn info_describes_the_official_layout() {
    let printed = ok(&["info", s(&model_dir()), "--verify"]);
    for needle in [
        "model folder (official CogView2 layout)",
        "CogLM checkpoint (BaseModel)",
        "DSR checkpoint (DsrModel: 20x20 to 60x60 tokens)",
        "ItersR checkpoint (ItersrModel: refines 60x60 tokens)",
        "icetk image tokenizer",
        "icetk text tokenizer",
        "clusters: 32",
        "f16 ×36",
        "every tensor read back",
    ] {
        assert!(printed.contains(needle), "`{needle}` not in:\n{printed}");
    }
    // One flipped byte inside a tensor record is caught by --verify (the CRC-32 of the record).
    let tmp = tempfile::tempdir().unwrap();
    let pt = tmp.path().join("ice_image.pt");
    let mut bytes = std::fs::read(model_dir().join("ice_image.pt")).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&pt, bytes).unwrap();
    std::fs::copy(
        model_dir().join("vq_config.json"),
        tmp.path().join("vq_config.json"),
    )
    .unwrap();
    // Without --verify only headers are read (instant on 40 GB of weights)...
    ok(&["info", s(&pt)]);
    // ...with it every record's checksum.
    let e = fails(&["info", s(&pt), "--verify"]);
    assert!(e.contains("problem(s)"), "{e}");
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn ctrl_c_cancels_cleanly_and_writes_nothing() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cogview"))
        .args([
            "generate",
            "a cat",
            "--model-dir",
            s(&model_dir()),
            "-n",
            "4",
            "--out",
            s(&out),
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    // Wait for the first progress line, then press Ctrl-C.
    loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no progress");
        if line.contains("stage 1") {
            break;
        }
    }
    // SAFETY: sends SIGINT to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("cancelling after the current step"), "{rest}");
    assert!(rest.contains("no images were written"), "{rest}");
    let written: Vec<_> = files(&out)
        .into_iter()
        .filter(|f| f.ends_with(".png"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
}

#[test]
fn eval_reports_generated_and_reference_rows() {
    let out = ok(&[
        "eval",
        "--model-dir",
        s(&model_dir()),
        "--objects",
        "1",
        "--count",
        "2",
        "--emoji",
        "3",
        "--candidates",
        "4",
        "--named-emoji",
        "0",
        "--emoji-data",
        s(&common::workspace_root().join("data/fluent-emoji-flat/icons.json.gz")),
        "--split",
        "attribute-pairs",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // --named-emoji 0 skips naming generated emoji (the fixture draws noise).
    assert!(v["emoji_naming"].is_null(), "{v}");
    let fidelity: Vec<&str> = v["scenes"][0]["shape_fidelity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        fidelity,
        [
            "generated (final)",
            "generated (stage 1)",
            "ceiling: VQ round trip"
        ]
    );
    let r = &v["emoji_retrieval"];
    assert_eq!(
        (r["captions"].as_u64(), r["candidates"].as_u64()),
        (Some(3), Some(4))
    );
    let rank = r["mean_rank"].as_f64().unwrap();
    assert!((1.0..=4.0).contains(&rank), "{rank}");
    assert_eq!(r["chance_at_1"].as_f64(), Some(0.25));
    let v = &v["scenes"];
    let rows = v[0]["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "generated (final)",
            "  colour×shape pair",
            "  shape×cell pair only",
            "generated (stage 1)",
            "  colour×shape pair",
            "  shape×cell pair only",
            "ceiling: VQ round trip",
            "floor: wrong caption"
        ]
    );
    // The two held-out kinds split each stage's images between them.
    for i in [1, 4] {
        assert_eq!(
            rows[i]["scenes"].as_u64().unwrap() + rows[i + 1]["scenes"].as_u64().unwrap(),
            2
        );
    }
    assert!([0, 3, 6, 7].iter().all(|&i| rows[i]["scenes"] == 2));
    assert!(v[0]["seconds_per_image"].as_f64().unwrap() > 0.0);
    assert_eq!(v[0]["set"]["split"], "attribute-pairs");
    // Scenes have 1 to 3 objects.
    let e = fails(&["eval", "--model-dir", s(&model_dir()), "--objects", "4"]);
    assert!(e.contains("1 to 3"), "{e}");
    // The default split, compositions, holds no single object out: no rows by held-out kind,
    // and the two-object prompts are held-out compositions.
    let out = ok(&[
        "eval",
        "--model-dir",
        s(&model_dir()),
        "--objects",
        "1",
        "--objects",
        "2",
        "--count",
        "2",
        "--emoji",
        "0",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for set in v["scenes"].as_array().unwrap() {
        assert_eq!(set["set"]["split"], "compositions");
        let names: Vec<&str> = set["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "generated (final)",
                "generated (stage 1)",
                "ceiling: VQ round trip",
                "floor: wrong caption"
            ]
        );
    }
    let out = ok(&[
        "eval",
        "--model-dir",
        s(&model_dir()),
        "--objects",
        "2",
        "--count",
        "2",
        "--emoji",
        "0",
    ]);
    assert!(
        out.contains("held-out compositions: scenes with 2 object(s)"),
        "{out}"
    );
    let e = fails(&["eval", "--model-dir", s(&model_dir()), "--split", "pairs"]);
    assert!(
        e.contains("compositions") && e.contains("attribute-pairs"),
        "{e}"
    );
}

#[test]
fn eval_reports_shape_fidelity_and_generated_emoji_a_person_can_name() {
    // The embedded model: two single-object prompts, two trained and two held-out emoji.
    let emoji_data = common::workspace_root().join("data/fluent-emoji-flat/icons.json.gz");
    let out = ok(&[
        "eval",
        "--objects",
        "1",
        "--count",
        "2",
        "--emoji",
        "2",
        "--candidates",
        "4",
        "--emoji-data",
        s(&emoji_data),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["scenes"][0]["shape_fidelity"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "generated (final)",
            "generated (stage 1)",
            "ceiling: VQ round trip"
        ]
    );
    for r in rows {
        // At most one correctly detected object per one-object prompt.
        let n = r["objects"].as_u64().unwrap();
        assert!(n <= 2, "{r}");
        if n == 0 {
            assert!(r["median"].is_null(), "{r}");
            continue;
        }
        let q = |k: &str| r[k].as_f64().unwrap();
        assert!(
            0.0 <= q("q1") && q("q1") <= q("median") && q("median") <= q("q3") && q("q3") <= 1.0,
            "{r}"
        );
    }
    // The ceiling's round trips of clean renders are found and overlap their ideal closely.
    assert_eq!(rows[2]["objects"], 2, "{rows:?}");
    assert!(rows[2]["median"].as_f64().unwrap() > 0.8, "{rows:?}");

    let n = &v["emoji_naming"];
    assert_eq!(
        (n["candidates"].as_u64(), n["thumbnail_side"].as_u64()),
        (Some(20), Some(16))
    );
    assert_eq!(
        (n["chance_at_1"].as_f64(), n["chance_at_5"].as_f64()),
        (Some(0.05), Some(0.25))
    );
    let rows = n["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "generated: trained emoji",
            "generated: held-out skin tones",
            "ceiling: VQ round trip, trained",
            "ceiling: VQ round trip, held-out"
        ]
    );
    for r in rows {
        assert_eq!(r["emoji"], 2, "{r}");
        let (r1, r5) = (
            r["recall_at_1"].as_f64().unwrap(),
            r["recall_at_5"].as_f64().unwrap(),
        );
        assert!([0.0, 0.5, 1.0].contains(&r1) && r5 >= r1, "{r}");
        assert!(
            (1.0..=20.0).contains(&r["mean_rank"].as_f64().unwrap()),
            "{r}"
        );
    }
    assert!(n["seconds_per_image"].as_f64().unwrap() > 0.0);
    // The CogLM retrieval is unchanged beside it.
    assert_eq!(v["emoji_retrieval"]["captions"], 2);

    // The text report prints the new rows; --named-emoji alone runs the naming only.
    let out = ok(&[
        "eval",
        "--objects",
        "1",
        "--count",
        "1",
        "--emoji",
        "0",
        "--named-emoji",
        "1",
        "--emoji-data",
        s(&emoji_data),
    ]);
    for line in [
        "shape fidelity: IoU of each correctly detected object with the ideal render",
        "  generated (final) ",
        "  ceiling: VQ round trip ",
        "generated emoji a person can name: the true render among 20",
        "  generated: trained emoji ",
        "  generated: held-out skin tones ",
        "  ceiling: VQ round trip, held-out ",
        "  chance ",
    ] {
        assert!(out.contains(line), "no {line:?} in\n{out}");
    }
    assert!(!out.contains("caption → image"), "{out}");
}

#[test]
fn eval_with_reranking_adds_the_checkers_best_candidate_which_is_never_worse() {
    // The embedded model (it draws scenes): 3 one-object prompts, best of 3 candidates.
    let out = ok(&[
        "eval",
        "--objects",
        "1",
        "--count",
        "3",
        "--emoji",
        "0",
        "--rerank",
        "3",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["scenes"][0]["rows"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
    };
    let (picked, best) = (row("generated (stage 1)"), row("stage 1 checker's best"));
    assert_eq!(best["scenes"], 3);
    // The checker's best maximises (exact, right attributes) per prompt among the candidates the
    // reranker chose from, so it is at least as exact and has at least as many right attributes.
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    assert!(f(best, "exact") >= f(picked, "exact"), "{rows:?}");
    let attrs = |r: &serde_json::Value| {
        ["colour", "shape", "size", "cell"]
            .iter()
            .map(|k| f(r, k))
            .sum::<f64>()
    };
    assert!(attrs(best) >= attrs(picked) - 1e-9, "{rows:?}");
    // One prompt, with `extra` flags.
    let one = |extra: &[&'static str]| {
        let mut a = vec!["eval", "--objects", "1", "--count", "1", "--emoji", "0"];
        a.extend_from_slice(extra);
        a
    };
    // Without reranking (`--rerank 1`; the default model's own is 4) there are no candidates
    // to compare, and no such row; with no --rerank, the model's own: each the best of 4.
    for (extra, rerank) in [(&["--rerank", "1", "--json"][..], 1), (&["--json"][..], 4)] {
        let out = ok(&one(extra));
        assert_eq!(out.contains("checker's best"), rerank > 1, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["scenes"][0]["rerank"], rerank);
    }
    // No candidates at all is refused, not run as plain generation.
    let e = fails(&one(&["--rerank", "0"]));
    assert!(
        e.contains("--rerank") && e.contains("0 candidates") && e.contains("pass 1"),
        "{e}"
    );
}

#[test]
fn with_no_model_given_the_embedded_default_model_draws_the_readme_prompt() {
    // The README's main command, eight images: every image must be exactly the scene the
    // prompt describes, by the scene checker (independent of the model: it reads pixels).
    let prompt = "a large blue circle in the center";
    let scene = cogview_scenes::Scene::parse(prompt).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let printed = ok(&[
        "generate",
        prompt,
        "-n",
        "8",
        "--seed",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    let pngs: Vec<PathBuf> = printed.lines().map(PathBuf::from).collect();
    assert_eq!(pngs.len(), 8, "{printed}");
    let mut seeds = Vec::new();
    for png in &pngs {
        let img = cogview::image::load_image(png).unwrap();
        assert_eq!((img.width, img.height), (216, 216));
        let report = cogview_scenes::check(&img, &scene).unwrap();
        assert!(report.exact, "{}: {report}", png.display());
        assert!(report.extra.is_empty(), "{}: {report}", png.display());
        // With the default model each image is the best of 4 stage-1 candidates of its own
        // seed (1..=8) by the inverse-prompt score, and its record says so.
        let rec = ImageRecord::read_png(png).unwrap();
        assert_eq!(rec.settings.coglm.rerank, 4);
        match &rec.origin {
            Origin::Generate {
                rerank: Some(r), ..
            } => assert_eq!(r.candidates, 4),
            o => panic!("{o:?}"),
        }
        seeds.push(rec.seed);
    }
    assert_eq!(seeds, (1..=8).collect::<Vec<u64>>());
    // The record names the embedded weights, and regenerate finds them and makes the reranked
    // image again from its seed.
    let text = cogview::image::read_png_text(&pngs[0]).unwrap();
    let record = &text.iter().find(|(k, _)| k == "cogview").unwrap().1;
    assert!(record.contains("coglm.safetensors"), "{record}");
    let again = tmp.path().join("again.png");
    let r = cogview(&["regenerate", s(&pngs[0]), "--out", s(&again), "--quiet"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        cogview::image::load_image(&again).unwrap(),
        cogview::image::load_image(&pngs[0]).unwrap()
    );
}

#[test]
fn train_warm_starts_from_a_models_weights_and_resumes_only_under_its_split() {
    let tmp = tempfile::tempdir().unwrap();
    let m = common::workspace_root().join("models/default");
    let out = tmp.path().join("coglm");
    let (vq, tok, init) = (
        m.join("ice_image.safetensors"),
        m.join("ice_text.model"),
        m.join("coglm.safetensors"),
    );
    let run = |steps: &str, split: &str| {
        cogview(&[
            "train",
            "coglm",
            "--vq",
            s(&vq),
            "--tokenizer",
            s(&tok),
            "--grid",
            "9",
            "--out",
            s(&out),
            "--steps",
            steps,
            "--batch",
            "1",
            "--emoji",
            "none",
            "--init-from",
            s(&init),
            "--split",
            split,
            "--log-every",
            "1",
        ])
    };
    // A model's weights file (not a training state) starts the run: the first loss is the
    // trained model's (a fresh CogLM starts near ln(vocabulary) ≈ 7).
    let first = run("1", "compositions");
    let err = String::from_utf8_lossy(&first.stderr).to_string();
    assert!(first.status.success(), "{err}");
    let loss: f64 = err
        .split("loss ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no loss in {err}"));
    assert!(loss < 3.0, "{err}");
    assert!(out.join("state.safetensors").is_file());
    // The state records its split: resuming under the other one is refused, naming the one to
    // pass; under its own it resumes.
    let e = run("2", "attribute-pairs");
    let msg = String::from_utf8_lossy(&e.stderr);
    assert_eq!(e.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("--split") && msg.contains("pass --split compositions"),
        "{msg}"
    );
    let resumed = run("2", "compositions");
    let msg = String::from_utf8_lossy(&resumed.stderr);
    assert!(
        resumed.status.success() && msg.contains("step 2/2"),
        "{msg}"
    );
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn record_paths_keeps_full_paths_and_regenerate_then_needs_no_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let md = model_dir();
    ok(&[
        "generate",
        "a red square",
        "--model-dir",
        s(&md),
        "--only-first-stage",
        "--seed",
        "3",
        "--record-paths",
        "--quiet",
        "--out",
        s(&out),
    ]);
    let png = out.join("a-red-square-3.png");
    let rec = ImageRecord::read_png(&png).unwrap();
    for w in &rec.weights {
        assert!(
            w.path.is_absolute() && w.path.is_file(),
            "{}",
            w.path.display()
        );
        assert_eq!(w.sha256, sha256(&w.path));
    }
    let r = cogview(&["regenerate", s(&png), "--quiet"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stderr).contains("identical"));
    // The reproduction's own record leaves the paths out again unless asked.
    let again = ImageRecord::read_png(&out.join("a-red-square-3.regenerated.png")).unwrap();
    assert!(again
        .weights
        .iter()
        .all(|w| w.path.components().count() == 1));
}
