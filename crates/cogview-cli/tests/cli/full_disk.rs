//! A full disk: every output (PNGs, token-grid files, converted checkpoints) fails with a clear
//! error and leaves no half-written file (cogview_core::output). On a small tmpfs, mounted as root
//! (see cogview_backend_tests::full_disk for where it runs).

use cogview::core::grid_file::GridFile;
use cogview::TokenGrid;
use cogview_backend_tests as common;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn fails(args: &[&str]) -> String {
    let out = common::cogview(args);
    assert_eq!(out.status.code(), Some(1), "cogview {args:?}");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn a_full_disk_is_a_clear_error_and_leaves_no_partial_file() {
    let Some(disk) = common::full_disk::small_disk(1 << 20) else {
        return;
    };
    disk.fill_leaving(0);
    let out = disk.path();

    // A PNG (the embedded default model's first stage) and its token grids.
    let e = fails(&[
        "generate",
        "a red square",
        "--only-first-stage",
        "--seed",
        "1",
        "--save-grids",
        "--quiet",
        "--out",
        s(out),
    ]);
    assert!(e.contains("no space left"), "{e}");
    assert_eq!(disk.files(), Vec::<String>::new());

    // A converted checkpoint.
    let e = fails(&[
        "convert",
        s(&common::coglm_fixture("tiny-f32")),
        "-o",
        s(&out.join("c.safetensors")),
    ]);
    assert!(
        e.contains("no space left") && e.contains("c.safetensors"),
        "{e}"
    );
    assert_eq!(disk.files(), Vec::<String>::new());

    // A token-grid file.
    let g = GridFile {
        grid: TokenGrid::new(100, 100, vec![12345; 10_000]).unwrap(),
        compression: None,
        tokenizer_sha256: None,
    };
    let e = g.write(out.join("g.json")).unwrap_err().to_string();
    assert!(e.contains("no space left") && e.contains("g.json"), "{e}");
    assert_eq!(disk.files(), Vec::<String>::new());
}
