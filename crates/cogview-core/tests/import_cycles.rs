//! No file of any crate in the repository may take part in an import cycle
//! (`tools/check_import_cycles.py`; its docstring says what counts as an import). The script's
//! own detection is checked first on two small crates written here, one with a cycle and one
//! without.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the checker on `root`; `None` when this machine has no `python3`.
fn check(root: &Path) -> Output {
    let script = repo_root().join("tools/check_import_cycles.py");
    Command::new("python3")
        .arg(&script)
        .arg(root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {script:?} (python3 is required): {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes a one-crate package: `files` are (path under src/, contents).
fn write_crate(root: &Path, files: &[(&str, &str)]) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    for (path, contents) in files {
        let p = root.join("src").join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
    }
}

#[test]
fn the_checker_finds_a_cycle_and_follows_re_exports() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("import-cycles");
    // a.rs and b.rs name each other's items: a cycle, reported with the lines that close it.
    let cyclic = tmp.join("cyclic");
    write_crate(
        &cyclic,
        &[
            ("lib.rs", "mod a;\nmod b;\n"),
            ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
            (
                "b.rs",
                "// crate::a in a comment is no import\npub struct B;\npub fn f(a: super::a::A) -> super::a::A { a }\n",
            ),
        ],
    );
    let o = check(&cyclic);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("src/a.rs:1 uses") && out.contains("src/b.rs:3 uses"),
        "{out}"
    );

    // A facade that declares modules and re-exports their items is no part of a cycle: a child
    // naming `crate::Item` depends on the file that defines it, not on lib.rs. A `mod.rs` that
    // only re-exports is the same.
    let clean = tmp.join("clean");
    write_crate(
        &clean,
        &[
            (
                "lib.rs",
                "mod a;\nmod b;\npub mod stage;\npub use a::A;\npub use b::B;\n",
            ),
            (
                "a.rs",
                "pub struct A;\nimpl A { pub fn b() -> crate::B { crate::B } }\n",
            ),
            ("b.rs", "pub struct B;\n"),
            (
                "stage/mod.rs",
                "mod x;\nmod y;\npub use x::X;\npub use y::Y;\n",
            ),
            ("stage/x.rs", "use super::Y;\npub struct X(pub Y);\n"),
            ("stage/y.rs", "pub struct Y(pub crate::A);\n"),
        ],
    );
    let o = check(&clean);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // …but a lib.rs that defines an item its child uses while using the child is a cycle.
    write_crate(
        &clean,
        &[
            ("lib.rs", "mod a;\npub use a::A;\npub struct Root;\n"),
            ("a.rs", "pub struct A(pub crate::Root);\n"),
        ],
    );
    let o = check(&clean);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[test]
fn no_file_level_import_cycle_in_any_crate() {
    let o = check(&repo_root());
    assert!(o.status.success(), "{}", text(&o));
}
