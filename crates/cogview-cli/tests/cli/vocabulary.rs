//! Prompts outside a model's declared vocabulary: `generate` and `edit` warn on stderr, naming
//! the unknown words, and still make the image; the embedded default model declares its
//! vocabulary (models/default/vocabulary.txt, written by `cogview train vocabulary`).
//!
//! (Not "a cat": the Fluent set has a `cat` emoji, so the default model was trained on the word.)

use cogview_backend_tests as common;

use common::cogview;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs the command; it must succeed. Returns (stdout, stderr).
fn ok(args: &[&str]) -> (String, String) {
    let out = cogview(args);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "cogview {args:?} failed:\n{err}");
    (String::from_utf8(out.stdout).unwrap(), err)
}

/// Copies a folder, links resolved.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn a_word_the_embedded_model_never_saw_is_named_and_the_image_still_made() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (stdout, stderr) = ok(&[
        "generate",
        "a lighthouse",
        "--seed",
        "3",
        "--out",
        s(&out),
        "--quiet",
    ]);
    assert!(out.join("a-lighthouse-3.png").is_file(), "{stdout}");
    // One line, naming the word, what the model knows and how to load other weights.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("lighthouse"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let w = lines[0];
    assert!(
        w.starts_with("warning: ") && w.contains("\"lighthouse\""),
        "{w}"
    );
    assert!(
        w.contains("circle, square, triangle") && w.contains("emoji"),
        "{w}"
    );
    assert!(w.contains("--model-dir") && w.contains("--config"), "{w}");
    // Only the unknown word: "a" is known.
    assert!(!w.contains("\"a\""), "{w}");

    // The scene grammar and the emoji names draw without a warning.
    for prompt in [
        "a large blue circle in the center and a small red triangle at the top left",
        "cat",
        "grinning face",
        "waving hand, medium skin tone",
    ] {
        let (_, stderr) = ok(&[
            "generate",
            prompt,
            "--only-first-stage",
            "--out",
            s(&out),
            "--quiet",
        ]);
        assert!(!stderr.contains("warning"), "{prompt}: {stderr}");
    }
}

#[test]
fn edit_warns_too() {
    let tmp = tempfile::tempdir().unwrap();
    let scene = cogview_scenes::Scene::parse("a large red circle in the center").unwrap();
    let input = tmp.path().join("input.png");
    cogview::image::save_png(&cogview_scenes::render(&scene, 216).unwrap(), &input, &[]).unwrap();
    let out = tmp.path().join("out");
    let (_, stderr) = ok(&[
        "edit",
        s(&input),
        "a large purple spaceship in the center",
        "--rect",
        "72,72,144,144",
        "--out",
        s(&out),
        "--quiet",
    ]);
    assert!(out
        .join("a-large-purple-spaceship-in-the-center-edit-1234.png")
        .is_file());
    let w = stderr
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        w.contains("\"spaceship\"") && !w.contains("\"purple\""),
        "{w}"
    );
}

#[test]
fn a_model_folder_warns_only_when_its_pipeline_file_declares_a_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let md = common::fixtures().join("model-dir");
    let out = tmp.path().join("out");
    // The fixture folder declares nothing: any prompt, no warning.
    let (_, stderr) = ok(&[
        "generate",
        "a cat",
        "--model-dir",
        s(&md),
        "--only-first-stage",
        "--out",
        s(&out),
        "--quiet",
    ]);
    assert!(!stderr.contains("warning"), "{stderr}");
    // A copy of the folder whose pipeline file declares one: a path relative to `model_dir`,
    // like the stage paths.
    let model = tmp.path().join("model");
    copy_dir(&md, &model);
    std::fs::write(
        model.join("words.txt"),
        "# yellow things\n# a comment\na\nyellow\nstar\n",
    )
    .unwrap();
    let cfg = model.join("pipeline.toml");
    std::fs::write(
        &cfg,
        "model_dir = \".\"\n[text_tokenizer]\nvocabulary = \"words.txt\"\n",
    )
    .unwrap();
    let (_, stderr) = ok(&[
        "generate",
        "a yellow cat and a dog",
        "--config",
        s(&cfg),
        "--only-first-stage",
        "--out",
        s(&out),
        "--quiet",
    ]);
    let w = stderr
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        w.contains("words \"cat\", \"and\", \"dog\"") && w.contains("knows yellow things"),
        "{w}"
    );
    let (_, stderr) = ok(&[
        "generate",
        "a yellow star",
        "--config",
        s(&cfg),
        "--only-first-stage",
        "--out",
        s(&out),
        "--quiet",
    ]);
    assert!(!stderr.contains("warning"), "{stderr}");
    // A declared file that is missing is a configuration error naming the key.
    std::fs::remove_file(model.join("words.txt")).unwrap();
    let o = cogview(&["generate", "a star", "--config", s(&cfg), "--out", s(&out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("text_tokenizer.vocabulary"), "{err}");
}

#[test]
fn the_shipped_vocabulary_is_what_train_vocabulary_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = common::workspace_root();
    let out = tmp.path().join("vocabulary.txt");
    let (stdout, _) = ok(&[
        "train",
        "vocabulary",
        "--out",
        s(&out),
        "--emoji",
        s(&root.join("data/fluent-emoji-flat/icons.json.gz")),
    ]);
    assert_eq!(stdout.trim(), s(&out));
    let written = std::fs::read_to_string(&out).unwrap();
    let shipped = std::fs::read_to_string(root.join("models/default/vocabulary.txt")).unwrap();
    assert!(
        written == shipped,
        "models/default/vocabulary.txt is not what `cogview train vocabulary` writes: regenerate it"
    );
    let pipeline = std::fs::read_to_string(root.join("models/default/pipeline.toml")).unwrap();
    assert!(
        pipeline.contains("vocabulary = \"vocabulary.txt\""),
        "{pipeline}"
    );
}
