//! Builds the plugin libraries the tests load: the Rust plugins with a nested `cargo build` (a
//! `cargo test` does not produce `cdylib` files), the C fixtures with the system C compiler.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// The folder cargo puts this test binary's profile in (`target/debug`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

static BUILD: Mutex<()> = Mutex::new(());

/// The `cogview` command (crates/cogview-cli), built once per test binary with a nested
/// `cargo build` in the test's profile: only the command's own integration tests get
/// `CARGO_BIN_EXE_cogview` from cargo.
pub fn command() -> PathBuf {
    static COMMAND: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COMMAND
        .get_or_init(|| {
            build("cogview-cli");
            let exe = profile_dir().join(format!("cogview{}", std::env::consts::EXE_SUFFIX));
            assert!(exe.is_file(), "{} was not built", exe.display());
            exe
        })
        .clone()
}

/// Builds `package` (a library with a `cdylib` crate type, or the command) in the test's
/// profile.
///
/// It builds the whole workspace with all targets, not `-p package`: that selection resolves
/// dependency features exactly as the test command (`cargo test --workspace`) does, dev
/// dependencies included, so every dependency is already built and only `package`'s outputs
/// are linked. `-p package` would resolve other features (proptest, a dev dependency, turns on
/// some of `rand`'s) and compile candle, tokenizers and image a second time.
fn build(package: &str) {
    let _lock = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--workspace", "--all-targets"])
        .current_dir(crate::workspace_root());
    if profile_dir().file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "cargo build -p {package} failed");
}

/// Builds a Rust plugin package of this workspace and returns its library.
pub fn rust_plugin(package: &str) -> PathBuf {
    cdylib(package, &package.replace('-', "_"))
}

/// Builds a `cdylib` package of this workspace and returns `lib<lib_name>.so`.
pub fn cdylib(package: &str, lib_name: &str) -> PathBuf {
    build(package);
    let dir = profile_dir();
    let lib = dir.join(format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        lib_name,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(lib.is_file(), "{} was not built", lib.display());
    lib
}

pub fn include_dir() -> PathBuf {
    crate::workspace_root().join("include")
}

/// Compiles `plugins/fixtures-c/fixture.c` with `defines` into `<profile>/test-plugins/<name>/`,
/// as `libcogview_plugin_<name>.so`, with extra linker arguments.
pub fn c_fixture(name: &str, defines: &[&str], link: &[&str]) -> PathBuf {
    let _lock = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let out_dir = profile_dir().join("test-plugins").join(name);
    std::fs::create_dir_all(&out_dir).unwrap();
    let lib = out_dir.join(format!("libcogview_plugin_{}.so", name.replace('-', "_")));
    let src = crate::workspace_root().join("plugins/fixtures-c/fixture.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .args([
            "-std=c11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-shared",
            "-fPIC",
            "-fvisibility=hidden",
        ])
        .arg("-I")
        .arg(include_dir())
        .args(defines)
        .arg(&src)
        .arg("-o")
        .arg(&lib)
        .args(link)
        .output()
        .unwrap_or_else(|e| {
            panic!("the C compiler `{cc}` could not run ({e}); install gcc or clang, or set CC")
        });
    assert!(
        out.status.success(),
        "{cc} failed on {}:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    lib
}
