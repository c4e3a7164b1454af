//! The plugin ABI from the host's side: libraries that are broken in each way the ABI can be
//! broken give clean errors (never a crash), a plugin written in C runs, panics inside a Rust
//! plugin become errors, and the host's hooks reach the plugin.

use cogview_backend_tests as common;

use cogview::core::backend::{Availability, LoadRequest};
use cogview::core::lm::{LmInput, LogitsRequest};
use cogview::core::sr::{predict_grid, SrInput};
use cogview::plugin_host::{self, load_path};
use cogview::{Compression, Device, Error, Image, TokenGrid};
use common::plugins::{c_fixture, include_dir, rust_plugin};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn message(e: &Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(" | ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn load_err(path: &Path) -> String {
    match load_path(path) {
        Ok(p) => panic!("{} loaded as {p:?}", path.display()),
        Err(e) => message(&e),
    }
}

#[test]
fn the_header_compiles_as_c_and_cpp_with_its_layout_checks() {
    let dir = tempfile::tempdir().unwrap();
    for (file, compiler, std) in [("h.c", "cc", "-std=c11"), ("h.cpp", "c++", "-std=c++11")] {
        let src = dir.path().join(file);
        std::fs::write(&src, "#include \"cogview_plugin.h\"\nint main(void) { return sizeof(cogview_plugin_descriptor_v1) == 80 ? 0 : 1; }\n").unwrap();
        let exe = dir.path().join(format!("{file}.out"));
        let out = Command::new(compiler)
            .args([std, "-Wall", "-Wextra", "-Werror", "-pedantic"])
            .arg("-I")
            .arg(include_dir())
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{compiler}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(Command::new(&exe).status().unwrap().success());
    }
}

#[test]
fn a_descriptor_of_another_major_version_is_refused_naming_both() {
    let lib = c_fixture("wrong-major", &["-DFIXTURE_WRONG_MAJOR"], &[]);
    let m = load_err(&lib);
    assert!(m.contains("plugin ABI v2") && m.contains("ABI v1"), "{m}");
}

#[test]
fn a_library_built_for_abi_v2_only_is_refused_naming_both() {
    let lib = c_fixture("v2-only", &["-DFIXTURE_V2_ONLY"], &[]);
    let m = load_err(&lib);
    assert!(
        m.contains("built for plugin ABI v2") && m.contains("speaks ABI v1"),
        "{m}"
    );
}

#[test]
fn a_truncated_descriptor_is_refused_naming_both_sizes() {
    let lib = c_fixture("truncated", &["-DFIXTURE_TRUNCATED"], &[]);
    let m = load_err(&lib);
    assert!(
        m.contains("struct_size 40") && m.contains("at least 80"),
        "{m}"
    );
}

#[test]
fn a_kind_without_its_vtable_is_refused_at_load_time() {
    let lib = c_fixture("missing-vtable", &["-DFIXTURE_MISSING_VTABLE"], &[]);
    let m = load_err(&lib);
    assert!(
        m.contains("bit 1") && m.contains("cogview_plugin_lm_vtable_v1 is NULL"),
        "{m}"
    );
}

#[test]
fn files_that_are_not_plugins_give_the_loaders_reason() {
    let dir = tempfile::tempdir().unwrap();
    // Not a shared library at all.
    let text = dir.path().join("libcogview_plugin_text.so");
    std::fs::write(&text, "not a library\n".repeat(40)).unwrap();
    let m = load_err(&text);
    assert!(
        m.contains("cannot load plugin") && m.contains("invalid ELF header"),
        "{m}"
    );
    // A shared library without the entry symbol.
    let src = dir.path().join("other.c");
    std::fs::write(&src, "int something_else(void) { return 1; }\n").unwrap();
    let other = dir.path().join("libother.so");
    assert!(Command::new("cc")
        .args(["-shared", "-fPIC"])
        .arg(&src)
        .arg("-o")
        .arg(&other)
        .status()
        .unwrap()
        .success());
    let m = load_err(&other);
    assert!(
        m.contains("not a cogview plugin") && m.contains("cogview_plugin_v1"),
        "{m}"
    );
    // A missing file.
    let m = load_err(&dir.path().join("absent.so"));
    assert!(m.contains("absent.so"), "{m}");
}

#[test]
fn a_plugin_whose_dependency_is_missing_names_the_dependency() {
    // Link the fixture against a library, then take the library away: dlopen fails before
    // score() could run, and the reason must reach the user.
    let dir = tempfile::tempdir().unwrap();
    let dep_src = dir.path().join("dep.c");
    std::fs::write(&dep_src, "int cogview_missing_dep(void) { return 1; }\n").unwrap();
    let dep = dir.path().join("libcogview_missing.so");
    assert!(Command::new("cc")
        .args(["-shared", "-fPIC"])
        .arg(&dep_src)
        .arg("-o")
        .arg(&dep)
        .status()
        .unwrap()
        .success());
    let lib = c_fixture(
        "needs-missing",
        &[],
        &[
            "-Wl,--no-as-needed",
            &format!("-L{}", dir.path().display()),
            "-lcogview_missing",
        ],
    );
    drop(dir);
    let m = load_err(&lib);
    assert!(m.contains("libcogview_missing.so"), "{m}");
}

#[test]
fn a_zero_score_is_reported_with_the_plugins_reason_and_stops_a_pipeline() {
    let lib = c_fixture("zero-score", &["-DFIXTURE_ZERO_SCORE"], &[]);
    let plugin = load_path(&lib).unwrap();
    match plugin.availability(Device::Cpu) {
        Availability::Unusable { reason } => {
            assert_eq!(reason, "fixture: needs an accelerator this machine lacks")
        }
        other => panic!("{other:?}"),
    }
    let e = plugin.backend_for(Device::Cpu).err().expect("refused");
    let m = message(&e);
    assert!(
        m.contains("fixture-c") && m.contains("cannot run on cpu") && m.contains("lacks"),
        "{m}"
    );

    // The same through a pipeline file that names the plugin.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            "model_dir = {:?}\n[image_tokenizer]\nplugin = {:?}\n",
            common::fixtures().join("model-dir"),
            lib
        ),
    )
    .unwrap();
    let c = cogview::PipelineConfig::from_file(&cfg).unwrap();
    let e = cogview::Pipeline::from_settings(cogview::Settings::resolve(&c, false).unwrap())
        .err()
        .expect("refused");
    assert!(
        message(&e).contains("needs an accelerator"),
        "{}",
        message(&e)
    );
}

/// A DSR/ItersR model written in C receives the input the core assembled (ABI 1.1) and finds the
/// keys of every high-resolution cell from the header's description of the windows alone.
#[test]
fn a_grid_model_written_in_c_runs_on_the_input_the_core_assembled() {
    let lib = c_fixture("grid", &["-DFIXTURE_GRID"], &[]);
    let backend = load_path(&lib).unwrap().backend_for(Device::Cpu).unwrap();
    let req = LoadRequest::default();
    for (path, grid) in [
        ("dsr", TokenGrid::new(2, 2, vec![3, 5, 7, 11]).unwrap()),
        (
            "itersr",
            TokenGrid::new(
                4,
                4,
                (0..16).map(|i| if i % 3 == 0 { 200 } else { i }).collect(),
            )
            .unwrap(),
        ),
    ] {
        let model = backend.load_grid_predictor(Path::new(path), &req).unwrap();
        let spec = model.spec().unwrap();
        assert_eq!(
            (spec.text_slots, spec.high, spec.image_vocab_size),
            (4, 4, 64)
        );
        let text = [40, 41];
        let logits = predict_grid(model.as_ref(), &text, &grid).unwrap();
        assert_eq!((logits.rows, logits.vocab), (16, 64), "{path}");
        // The same numbers from the core's own description of the input.
        let input = SrInput::new(&spec, &text, &grid).unwrap();
        let n0 = input.level0_len();
        let unmasked = input.bias0.iter().filter(|b| **b == 0.0).count() as f32;
        for q in 0..16 {
            let keys: Vec<usize> = input.level1_keys(q).collect();
            let sum: u32 = keys
                .iter()
                .map(|&k| {
                    if k < n0 {
                        input.tokens0[k]
                    } else {
                        input.tokens1[k - n0]
                    }
                })
                .sum();
            assert_eq!(
                logits.row(q)[..3],
                [keys.len() as f32, sum as f32, unmasked],
                "{path}: cell {q}"
            );
        }
        // Input the model could not have been given never reaches the plugin.
        let mut bad = input.clone();
        bad.tokens1.pop();
        assert!(model.predict(&bad).is_err());
    }
}

/// A plugin that returns NaN logits or a buffer of the wrong size is refused with a typed plugin
/// error naming what it returned, never sampled from.
#[test]
fn nan_logits_and_wrong_sized_buffers_from_a_plugin_are_refused() {
    for (name, define, expect) in [
        ("grid-nan", "-DFIXTURE_GRID_NAN", "NaN"),
        (
            "grid-short",
            "-DFIXTURE_GRID_SHORT",
            "15x64 logits for 16 cells",
        ),
    ] {
        let lib = c_fixture(name, &["-DFIXTURE_GRID", define], &[]);
        let backend = load_path(&lib).unwrap().backend_for(Device::Cpu).unwrap();
        let model = backend
            .load_grid_predictor(Path::new("itersr"), &LoadRequest::default())
            .unwrap();
        let grid = TokenGrid::new(4, 4, (0..16).collect()).unwrap();
        let e = predict_grid(model.as_ref(), &[40, 41], &grid).unwrap_err();
        assert!(matches!(e, Error::Plugin { .. }), "{name}: {e}");
        assert!(e.to_string().contains(expect), "{name}: {e}");
    }
}

/// A plugin whose grid vtable is ABI 1.0's (no spec, no forward) cannot serve DSR/ItersR to a 1.1
/// host, and says so; its other models still load.
#[test]
fn a_grid_model_of_abi_1_0_is_refused_naming_the_versions() {
    let lib = c_fixture("grid-v10", &["-DFIXTURE_GRID_V10"], &[]);
    let backend = load_path(&lib).unwrap().backend_for(Device::Cpu).unwrap();
    let req = LoadRequest::default();
    let m = match backend.load_grid_predictor(Path::new("dsr"), &req) {
        Ok(_) => panic!("a 1.0 grid vtable was accepted"),
        Err(e) => message(&e),
    };
    assert!(
        m.contains("ABI 1.0") && m.contains("1.1") && m.contains("forward"),
        "{m}"
    );
    assert!(backend
        .load_image_tokenizer(Path::new("unused"), &req)
        .is_ok());
}

#[test]
fn a_plugin_written_in_c_encodes_and_decodes_through_the_host() {
    let lib = c_fixture("working", &[], &[]);
    let plugin = load_path(&lib).unwrap();
    assert_eq!(plugin.name(), "fixture-c");
    // Loading the same file again gives the same plugin (never unloaded, never loaded twice).
    assert!(std::ptr::eq(plugin, load_path(&lib).unwrap()));
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(maps.contains(&*std::fs::canonicalize(&lib).unwrap().to_string_lossy()));

    let backend = plugin.backend_for(Device::Cpu).unwrap();
    let tok = backend
        .load_image_tokenizer(Path::new("unused"), &LoadRequest::default())
        .unwrap();
    // A 16x8 image: left block grey 30, right block grey 200 with one pixel of 0.
    let (w, h) = (16, 8);
    let mut px = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let v = if x < 8 {
                30
            } else if (x, y) == (9, 1) {
                0
            } else {
                200
            };
            px.extend_from_slice(&[v, v, v]);
        }
    }
    let image = Image::new(w, h, px).unwrap();
    let grid = tok.encode(&image, Compression::X8).unwrap();
    // Hand-computed block means: 30, and (63 * 200 + 0) / 64 = 196 (integer division).
    assert_eq!(
        (grid.height, grid.width, grid.ids.clone()),
        (1, 2, vec![30, 196])
    );
    let decoded = tok
        .decode(&TokenGrid::new(1, 2, vec![7, 9]).unwrap(), Compression::X4)
        .unwrap();
    assert_eq!((decoded.width, decoded.height), (8, 4));
    assert_eq!(&decoded.pixels[..3], &[7, 7, 7]);
    assert_eq!(&decoded.pixels[decoded.pixels.len() - 3..], &[9, 9, 9]);
    // The plugin's own errors arrive typed: an id it cannot paint.
    let e = tok
        .decode(&TokenGrid::new(1, 1, vec![300]).unwrap(), Compression::X4)
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidInput { field, .. } if field == "grid"),
        "{e:?}"
    );
    // Sizes the host can check never reach the plugin.
    let e = tok
        .encode(
            &Image::new(12, 8, vec![0; 12 * 8 * 3]).unwrap(),
            Compression::X8,
        )
        .unwrap_err();
    assert!(e.to_string().contains("multiples of 8"), "{e}");
    // Options it does not take are a configuration error naming the key.
    let mut req = LoadRequest::default();
    req.options_toml = "threads = 2\n".into();
    let e = backend
        .load_image_tokenizer(Path::new("unused"), &req)
        .err()
        .unwrap();
    assert!(
        matches!(&e, Error::Config { key, .. } if key == "options"),
        "{e:?}"
    );
    // It provides no CogLM.
    let e = backend
        .load_lm(Path::new("unused"), &LoadRequest::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("does not provide a CogLM"), "{e}");
}

#[test]
fn panics_inside_a_plugin_become_errors_and_poison_the_handle() {
    let lib = rust_plugin("cogview-plugin-fixture-panicking");
    let backend = load_path(&lib).unwrap().backend_for(Device::Cpu).unwrap();
    let req = LoadRequest::default();

    // forward: a string payload.
    let lm = backend.load_lm(Path::new("lm"), &req).unwrap();
    let mut s = lm.new_session(1, 4).unwrap();
    let e = s
        .forward(&LmInput {
            tokens: &[1],
            positions: &[0],
            bias: &[0.0],
            logits: LogitsRequest::Last { vocab: 8 },
        })
        .unwrap_err();
    assert!(
        message(&e).contains("panicked") && message(&e).contains("fixture panic in forward"),
        "{}",
        message(&e)
    );
    // The session is not used again.
    let e = s
        .forward(&LmInput {
            tokens: &[1],
            positions: &[0],
            bias: &[0.0],
            logits: LogitsRequest::Last { vocab: 8 },
        })
        .unwrap_err();
    assert!(e.to_string().contains("start a new session"), "{e}");
    // Bad input is refused by the host before the plugin runs.
    let mut s2 = lm.new_session(1, 4).unwrap();
    let e = s2
        .forward(&LmInput {
            tokens: &[99],
            positions: &[0],
            bias: &[0.0],
            logits: LogitsRequest::Last { vocab: 8 },
        })
        .unwrap_err();
    assert!(
        matches!(e, Error::TokenOutOfVocab { token: 99, .. }),
        "{e:?}"
    );

    // predict: the handle is poisoned after the first panic.
    let grid = backend.load_grid_predictor(Path::new("sr"), &req).unwrap();
    let g = TokenGrid::new(1, 1, vec![0]).unwrap();
    let e1 = predict_grid(grid.as_ref(), &[1], &g).unwrap_err();
    assert!(
        message(&e1).contains("fixture panic in predict"),
        "{}",
        message(&e1)
    );
    let e2 = predict_grid(grid.as_ref(), &[1], &g).unwrap_err();
    assert!(
        message(&e2).contains("earlier call on this handle panicked"),
        "{}",
        message(&e2)
    );

    // encode: a non-string payload. The handle refuses further calls, even ones that would
    // work; a model loaded afresh works.
    let tok = backend.load_image_tokenizer(Path::new("vq"), &req).unwrap();
    let one = TokenGrid::new(1, 1, vec![5]).unwrap();
    assert_eq!(
        tok.decode(&one, Compression::X4).unwrap().pixels,
        vec![5; 48]
    );
    let e = tok
        .encode(&Image::new(8, 8, vec![0; 192]).unwrap(), Compression::X8)
        .unwrap_err();
    assert!(
        message(&e).contains("non-string panic payload"),
        "{}",
        message(&e)
    );
    assert!(tok.decode(&one, Compression::X4).is_err());
    let fresh = backend.load_image_tokenizer(Path::new("vq"), &req).unwrap();
    assert_eq!(
        fresh.decode(&one, Compression::X4).unwrap().pixels,
        vec![5; 48]
    );

    // A panic inside load.
    let e = backend
        .load_lm(Path::new("x/panic-at-load"), &req)
        .err()
        .unwrap();
    assert!(
        message(&e).contains("fixture panic in load"),
        "{}",
        message(&e)
    );
}

#[test]
fn load_hooks_report_progress_and_cancel_inside_the_plugin() {
    let lib = rust_plugin("cogview-plugin-fixture-panicking");
    let backend = load_path(&lib).unwrap().backend_for(Device::Cpu).unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let mut req = LoadRequest::default();
    let s = seen.clone();
    req.progress = Some(Arc::new(move |p| {
        assert_eq!(p.stage, "load");
        s.fetch_add(1, Ordering::SeqCst);
    }));
    backend.load_lm(Path::new("lm"), &req).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the fixture reports once");
    req.cancel.cancel();
    let e = backend.load_lm(Path::new("lm"), &req).err().unwrap();
    assert!(matches!(e, Error::Cancelled), "{e:?}");
}

#[test]
fn plugin_log_lines_reach_the_hosts_tracing() {
    use std::sync::Mutex;
    use tracing_subscriber::layer::SubscriberExt;
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let s2 = sink.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(move || s2.clone()),
    );
    let lib = rust_plugin("cogview-plugin-fixture-panicking");
    tracing::subscriber::with_default(subscriber, || {
        let backend = load_path(&lib).unwrap().backend_for(Device::Cpu).unwrap();
        backend
            .load_lm(Path::new("logged-path"), &LoadRequest::default())
            .unwrap();
    });
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("fixture loads a CogLM") && text.contains("logged-path"),
        "{text}"
    );
}

#[test]
fn backends_are_found_by_name_in_the_plugin_path() {
    let lib = c_fixture("working", &[], &[]);
    // search_dirs reads COGVIEW_PLUGIN_PATH; find() is checked by name through the file name.
    let name = plugin_host::library_file_name("fixture-c");
    assert_eq!(name, "libcogview_plugin_fixture_c.so");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&lib, dir.path().join(&name)).unwrap();
    // Only this test reads COGVIEW_PLUGIN_PATH.
    std::env::set_var("COGVIEW_PLUGIN_PATH", dir.path());
    let p = plugin_host::find("fixture-c").unwrap();
    assert_eq!(p.name(), "fixture-c");
    let e = plugin_host::find("no-such-backend").unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("libcogview_plugin_no_such_backend.so")
            && m.contains(&dir.path().display().to_string()),
        "{m}"
    );
}
