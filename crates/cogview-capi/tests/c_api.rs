//! The C API from C and C++: the examples in examples/c/ and a C test of every error path
//! (crates/cogview-capi/tests/c/errors.c), compiled with the system compilers against
//! libcogview.so (with `COGVIEW_SHARED`; the generator also against libcogview.a, without it),
//! run normally and under AddressSanitizer + LeakSanitizer, which must report nothing. And the
//! headers themselves: the error codes of include/cogview_error.h equal `cogview::ErrorCode`, and
//! the export macros expand as documented.

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

/// Compiles one example; `asan` adds AddressSanitizer/UBSan (LeakSanitizer is part of ASan). A
/// program linked with the shared library defines `COGVIEW_SHARED`, as include/cogview.h asks.
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
    if !static_link {
        cmd.arg("-DCOGVIEW_SHARED");
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

/// The embedded default model's pipeline, as the C API opens it with no model given.
fn default_pipeline() -> cogview::Pipeline {
    let cfg = cogview::OpenOptions::default().config().unwrap();
    cogview::Pipeline::from_settings(cogview::Settings::resolve(&cfg, true).unwrap()).unwrap()
}

#[test]
fn the_c_generator_writes_the_images_the_rust_pipeline_makes() {
    // With no model given, the C API uses the default model built into the library.
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("generate");
    compile(&root().join("examples/c/generate.c"), &exe, true, false);
    let out_dir = dir.path().join("out");
    // The example creates its output folder itself (a missing `out/` once failed).
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
    // The same images from Rust, with the same embedded model (which keeps the best 2 of 4 × 2
    // stage-1 candidates, seeds 40..=47: each file is named by its image's own seed).
    let want = default_pipeline()
        .generate(
            "a red circle",
            2,
            false,
            &cogview::RunContext::with_seed(40),
        )
        .unwrap();
    for g in &want {
        assert!(
            stdout.contains(&format!("image-{}.png", g.seed)),
            "{stdout}"
        );
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
    // The example creates its output folder itself (a missing `out/` once failed).
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
    // The example creates its output folder itself (a missing `out/` once failed).
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
    let want = default_pipeline()
        .generate(
            "a large yellow triangle at the bottom",
            2,
            false,
            &cogview::RunContext::with_seed(5),
        )
        .unwrap();
    assert!(
        out.contains(&format!("image 1: 216x216, seed {}", want[1].seed)),
        "{out}"
    );
    assert!(out.contains("empty prompt refused (code 1)"), "{out}");
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

/// `#define COGVIEW_ERR_<NAME> <value>` lines of a header.
fn error_defines(header: &str) -> Vec<(String, i32)> {
    let text = std::fs::read_to_string(root().join("include").join(header)).unwrap();
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            if w.next() != Some("#define") {
                return None;
            }
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .filter(|(name, _)| name.contains("_ERR_"))
        .map(|(name, value)| {
            let v = value
                .parse()
                .unwrap_or_else(|_| panic!("{header}: {name} is {value}"));
            (name, v)
        })
        .collect()
}

#[test]
fn both_headers_share_one_error_table_equal_to_the_rust_one() {
    use cogview::ErrorCode;
    let table = error_defines("cogview_error.h");
    let want: Vec<(String, i32)> = ErrorCode::ALL
        .iter()
        .map(|c| (format!("COGVIEW_ERR_{}", c.name()), c.value()))
        .collect();
    assert_eq!(
        table, want,
        "include/cogview_error.h against cogview_core::ErrorCode"
    );
    // The two API headers define no codes of their own; they include the table.
    for header in ["cogview.h", "cogview_plugin.h"] {
        assert_eq!(
            error_defines(header),
            vec![],
            "{header} defines error codes"
        );
        let text = std::fs::read_to_string(root().join("include").join(header)).unwrap();
        assert!(
            text.contains("#include \"cogview_error.h\""),
            "{header} does not include cogview_error.h"
        );
    }
    // The plugin ABI's Rust constants are the same table.
    use cogview_plugin_abi::ffi;
    for (konst, code) in [
        (ffi::ERR_INVALID_INPUT, ErrorCode::InvalidInput),
        (ffi::ERR_TOKEN_OUT_OF_VOCAB, ErrorCode::TokenOutOfVocab),
        (ffi::ERR_IO, ErrorCode::Io),
        (ffi::ERR_INVALID_WEIGHTS, ErrorCode::InvalidWeights),
        (ffi::ERR_CONFIG, ErrorCode::Config),
        (ffi::ERR_BACKEND, ErrorCode::Backend),
        (ffi::ERR_CANCELLED, ErrorCode::Cancelled),
        (ffi::ERR_UNSUPPORTED, ErrorCode::Unsupported),
        (ffi::ERR_PANIC, ErrorCode::Panic),
        (ffi::ERR_ABI, ErrorCode::Abi),
        (ffi::ERR_TEXT_TOO_LONG, ErrorCode::TextTooLong),
    ] {
        assert_eq!(konst, code.value(), "{code}");
        assert!(ErrorCode::PLUGIN_ABI.contains(&konst));
    }

    // And as a compiler sees them: one program including both headers (no clash) prints every
    // code.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("codes.c");
    let mut c = String::from(
        "#include \"cogview.h\"\n#include \"cogview_plugin.h\"\n#include <stdio.h>\nint main(void) {\n",
    );
    for (name, _) in &want {
        c.push_str(&format!("    printf(\"{name}=%d\\n\", {name});\n"));
    }
    c.push_str("    return 0;\n}\n");
    std::fs::write(&src, c).unwrap();
    let exe = dir.path().join("codes");
    compile(&src, &exe, false, true);
    let out = assert_clean(&run(&exe, &[]), "codes.c");
    let printed: Vec<String> = out.lines().map(str::to_string).collect();
    let want_lines: Vec<String> = want.iter().map(|(n, v)| format!("{n}={v}")).collect();
    assert_eq!(printed, want_lines);
}

/// What `COGVIEW_API` expands to with `defines`.
fn api_macro(defines: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("api.c");
    std::fs::write(
        &src,
        "#include \"cogview.h\"\nCOGVIEW_API_IS: COGVIEW_API\n",
    )
    .unwrap();
    let o = Command::new("cc")
        .args(["-E", "-P"])
        .args(defines)
        .arg("-I")
        .arg(include_dir())
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("COGVIEW_API_IS:"))
        .unwrap_or_else(|| panic!("{text}"));
    line["COGVIEW_API_IS:".len()..].trim().to_string()
}

#[test]
fn the_export_macro_decorates_only_with_cogview_shared() {
    // The static library: plain declarations.
    assert_eq!(api_macro(&[]), "");
    // The shared library (here: not Windows): default visibility, as when building it.
    assert_eq!(
        api_macro(&["-DCOGVIEW_SHARED"]),
        "__attribute__((visibility(\"default\")))"
    );
    assert_eq!(
        api_macro(&["-DCOGVIEW_SHARED", "-DCOGVIEW_BUILD"]),
        "__attribute__((visibility(\"default\")))"
    );
    // On Windows the same header gives dllimport / dllexport (checked textually: no Windows
    // compiler here).
    let h = std::fs::read_to_string(root().join("include/cogview.h")).unwrap();
    assert!(
        h.contains("__declspec(dllimport)") && h.contains("__declspec(dllexport)"),
        "cogview.h"
    );
}

/// Runs `exe` under a valgrind tool; the tool's own error count must be 0 (`--error-exitcode`).
fn valgrind(tool: &[&str], exe: &Path, args: &[&str]) -> Output {
    Command::new("valgrind")
        .args(tool)
        .args(["--error-exitcode=1", "--quiet"])
        .arg("--fair-sched=yes")
        .arg(exe)
        .args(args)
        // Valgrind runs one thread at a time: rayon's spinning workers only slow it down.
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .expect("valgrind is installed (apt-get install valgrind)")
}

/// Every error path of the C API (crates/cogview-capi/tests/c/errors.c: 59 checks, a pipeline on
/// the fixture model, generation, editing, captions) under valgrind's memcheck: invalid accesses,
/// uses of uninitialised memory, definite leaks — the checker that needs no recompilation, on the
/// same library users link. Slow (minutes), so ignored by default; the README's test command runs
/// it. (The examples' threads and cancellation run under AddressSanitizer above.)
#[test]
#[ignore = "minutes under valgrind; run by the README's test command (--include-ignored)"]
fn the_c_error_paths_run_clean_under_valgrind_memcheck() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_dir();
    let memcheck = [
        "--tool=memcheck",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
    ];
    let errors = dir.path().join("errors");
    compile(
        &root().join("crates/cogview-capi/tests/c/errors.c"),
        &errors,
        false,
        false,
    );
    let o = valgrind(&memcheck, &errors, &[model.to_str().unwrap()]);
    let out = assert_clean(&o, "errors.c under memcheck");
    assert!(out.contains("0 failure(s)"), "{out}");
}

/// The checks above are worth something only if valgrind reports what it should: a definite leak
/// and a read past an allocation fail the run.
#[test]
#[ignore = "runs valgrind; run by the README's test command (--include-ignored)"]
fn valgrind_does_catch_a_leak_and_an_invalid_read() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("bad.c");
    std::fs::write(
        &src,
        "#include \"cogview.h\"\n#include <stdlib.h>\nint main(int argc, char **argv) { (void)argv;\n  cogview_pipeline *p = 0;\n  cogview_error *e = cogview_pipeline_new(0, &p);\n  (void)e; /* never freed */\n  char *b = malloc(4); int r = argc > 5 ? 0 : b[4]; free(b); return r & 0; }\n",
    )
    .unwrap();
    let exe = dir.path().join("bad");
    compile(&src, &exe, false, false);
    let o = valgrind(
        &[
            "--tool=memcheck",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ],
        &exe,
        &[],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Invalid read") && stderr.contains("definitely lost"),
        "{stderr}"
    );
}
