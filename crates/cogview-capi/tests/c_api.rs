//! The C API from C and C++: the examples in examples/c/ and a C test of every error path
//! (crates/cogview-capi/tests/c/errors.c), compiled with the system compilers against libcogview.so (and the
//! generator also against libcogview.a), run normally and under AddressSanitizer + LeakSanitizer,
//! which must report nothing.

use cogview_backend_tests as common;
use common::sdk as cogview;

use common::plugins::{cdylib, include_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    common::workspace_root()
}

fn model_dir() -> PathBuf {
    common::fixtures().join("model-dir")
}

/// libcogview.so (built once per test binary) and its folder.
fn library() -> (PathBuf, PathBuf) {
    let lib = cdylib("cogview-capi", "cogview");
    let dir = lib.parent().unwrap().to_path_buf();
    (lib, dir)
}

/// Compiles one example; `asan` adds AddressSanitizer/UBSan (LeakSanitizer is part of ASan).
fn compile(src: &Path, out: &Path, asan: bool, static_link: bool) {
    let (_, libdir) = library();
    let cpp = src.extension().is_some_and(|e| e == "cpp");
    let mut cmd = Command::new(if cpp { "c++" } else { "cc" });
    cmd.arg(if cpp { "-std=c++17" } else { "-std=c11" })
        .args(["-Wall", "-Wextra", "-Werror", "-g"])
        .arg("-I")
        .arg(include_dir())
        .arg(src)
        .arg("-o")
        .arg(out);
    if asan {
        cmd.args(["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]);
    }
    if static_link {
        cmd.arg(libdir.join("libcogview.a"))
            .args(["-lpthread", "-ldl", "-lm"]);
    } else {
        cmd.arg(format!("-L{}", libdir.display()))
            .arg("-lcogview")
            .arg(format!("-Wl,-rpath,{}", libdir.display()));
    }
    cmd.arg("-lpthread");
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "compiling {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn run(exe: &Path, args: &[&str]) -> Output {
    Command::new(exe)
        .args(args)
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=23",
        )
        .env("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        .output()
        .unwrap()
}

fn assert_clean(o: &Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !stderr.contains("Sanitizer") && !stderr.contains("runtime error"),
        "{what} failed ({:?}):\n{stdout}\n{stderr}",
        o.status
    );
    stdout
}

#[test]
fn every_error_path_returns_an_error_object_without_leaks_or_invalid_accesses() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_dir();
    for asan in [false, true] {
        let exe = dir.path().join(format!("errors-{asan}"));
        compile(
            &root().join("crates/cogview-capi/tests/c/errors.c"),
            &exe,
            asan,
            false,
        );
        let out = assert_clean(&run(&exe, &[model.to_str().unwrap()]), "errors.c");
        assert!(out.contains("0 failure(s)"), "{out}");
        assert!(
            out.lines().filter(|l| l.starts_with("ok ")).count() >= 50,
            "{out}"
        );
        for what in ["edit rectangle outside the image", "caption of zero tokens"] {
            assert!(out.contains(&format!("ok   {what}:")), "{what}: {out}");
        }
    }
}

#[test]
fn the_sanitizer_run_does_catch_a_leak() {
    // The check above is only worth something if a leak would be reported.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("leak.c");
    std::fs::write(
        &src,
        "#include \"cogview.h\"\nint main(void) { cogview_pipeline *p = 0;\n  cogview_error *e = cogview_pipeline_new(0, &p);\n  return e ? 0 : 1; /* e is never freed */ }\n",
    )
    .unwrap();
    let exe = dir.path().join("leak");
    compile(&src, &exe, true, false);
    let o = run(&exe, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(23), "{stderr}");
    assert!(
        stderr.contains("LeakSanitizer: detected memory leaks"),
        "{stderr}"
    );
}

#[test]
fn the_c_generator_writes_the_images_the_rust_pipeline_makes() {
    // With no model given, the C API uses the default model built into the library.
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("generate");
    compile(&root().join("examples/c/generate.c"), &exe, true, false);
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let o = run(
        &exe,
        &[
            "a red circle",
            "-n",
            "2",
            "--seed",
            "40",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    let stdout = assert_clean(&o, "generate.c");
    assert!(
        stdout.contains("image-40.png") && stdout.contains("image-41.png"),
        "{stdout}"
    );
    // The same images from Rust, with the same embedded model.
    let cfg = cogview::OpenOptions::default().config().unwrap();
    let p =
        cogview::Pipeline::from_settings(cogview::Settings::resolve(&cfg, true).unwrap()).unwrap();
    let want = p
        .generate(
            "a red circle",
            2,
            false,
            &cogview::RunContext::with_seed(40),
        )
        .unwrap();
    for g in &want {
        let got =
            cogview::image::load_image(out_dir.join(format!("image-{}.png", g.seed))).unwrap();
        assert_eq!(got, g.image, "seed {}", g.seed);
    }
}

#[test]
fn the_c_editor_writes_the_edits_and_captions_the_rust_pipeline_makes() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("edit");
    compile(&root().join("examples/c/edit.c"), &exe, true, false);
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let prompt = "a large blue square in the center";
    let o = run(
        &exe,
        &[
            prompt,
            "-n",
            "2",
            "--seed",
            "7",
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    let stdout = assert_clean(&o, "edit.c");
    // The same edits, caption and scores from Rust with the same embedded model.
    let cfg = cogview::OpenOptions::default().config().unwrap();
    let p =
        cogview::Pipeline::from_settings(cogview::Settings::resolve(&cfg, true).unwrap()).unwrap();
    let input = cogview::image::load_image(out_dir.join("input.png")).unwrap();
    let mask = cogview::core::edit::EditMask::from_regions(
        input.width,
        input.height,
        &[cogview::core::edit::Region::Fraction {
            left: 1.0 / 3.0,
            top: 1.0 / 3.0,
            right: 2.0 / 3.0,
            bottom: 2.0 / 3.0,
        }],
    )
    .unwrap();
    let ctx = cogview::RunContext::with_seed(7);
    let want = p.edit(&input, &mask, prompt, 2, &ctx).unwrap();
    for e in &want {
        let got = cogview::image::load_image(out_dir.join(format!("edit-{}.png", e.seed))).unwrap();
        assert_eq!(got, e.image, "seed {}", e.seed);
    }
    let caption = p
        .caption(
            &input,
            &cogview::pipeline::CaptionOptions {
                max_tokens: 32,
                sampling: None,
                seed: 0,
            },
            &ctx,
        )
        .unwrap();
    assert!(
        stdout.contains(&format!("caption: {}\n", caption.text.trim())),
        "{stdout}\nwant caption {:?}",
        caption.text
    );
    let grid = p.encode_image(&input).unwrap();
    for text in [
        "a large red circle in the center",
        "a small green square at the top left",
    ] {
        let s = p.caption_score(&grid, text).unwrap();
        assert!(
            stdout.contains(&format!("score {s:.4}: {text}")),
            "{stdout}\nwant {s:.4} {text}"
        );
    }
}

#[test]
fn the_generator_links_statically_too() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("generate-static");
    compile(&root().join("examples/c/generate.c"), &exe, false, true);
    // No libcogview.so is needed at run time.
    let ldd = Command::new("ldd").arg(&exe).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&ldd.stdout).contains("libcogview"),
        "{}",
        String::from_utf8_lossy(&ldd.stdout)
    );
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let o = run(
        &exe,
        &[
            "a blue square",
            "--out",
            out_dir.to_str().unwrap(),
            "--model-dir",
            model_dir().to_str().unwrap(),
        ],
    );
    assert_clean(&o, "generate (static)");
    assert!(out_dir.join("image-0.png").is_file());
}

#[test]
fn progress_callbacks_and_cancellation_from_another_thread_work_under_the_sanitizers() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("progress_cancel");
    compile(
        &root().join("examples/c/progress_cancel.c"),
        &exe,
        true,
        false,
    );
    let o = run(&exe, &[]);
    let out = assert_clean(&o, "progress_cancel.c");
    assert!(out.contains("cancelled from a second thread"), "{out}");
    assert!(
        out.contains("the progress callback cancelled the run after 2 report(s)"),
        "{out}"
    );
    assert!(out.contains("generated 1 image(s) after reset"), "{out}");
}

#[test]
fn the_cpp_wrapper_generates_and_turns_errors_into_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("raii");
    compile(&root().join("examples/c/raii.cpp"), &exe, true, false);
    let o = run(&exe, &[]);
    let out = assert_clean(&o, "raii.cpp");
    assert!(out.contains("image 1: 216x216, seed 6"), "{out}");
    assert!(out.contains("empty prompt refused (code 2)"), "{out}");
}

#[test]
fn one_pipeline_serves_several_threads_with_the_same_results_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("threads");
    compile(
        &root().join("crates/cogview-capi/tests/c/threads.c"),
        &exe,
        true,
        false,
    );
    let o = run(&exe, &[]);
    let out = assert_clean(&o, "threads.c");
    assert_eq!(out.matches("identical").count(), 3, "{out}");
}
