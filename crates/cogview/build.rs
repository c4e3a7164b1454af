//! Embeds the default model (models/default/, once trained) into the `cogview` library, so that
//! `cogview generate "..."` works on a fresh machine with no download. Without the folder the list
//! is empty and the commands ask for --model-dir.

use std::io::Write;
use std::path::Path;

fn main() {
    // The manifest folder of *this* build, read at run time: `env!` would bake in the folder the
    // build script was compiled in, and cargo reuses a compiled build script across checkouts
    // that share a target folder (it then embedded another checkout's model).
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    // The model folder is at the workspace root (models/default), two levels above this crate.
    let models = Path::new(&manifest).join("../../models");
    let dir = models.join("default");
    // The whole models/ folder is watched (it exists, unlike models/default before training):
    // a missing path would make cargo rerun this script, and rebuild the crate, every time.
    println!("cargo:rerun-if-changed={}", models.display());
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_model.rs");
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    if dir.join("pipeline.toml").is_file() {
        for e in std::fs::read_dir(&dir).expect("models/default is readable") {
            let p = e.expect("a directory entry").path();
            if p.is_file() && p.file_name().is_some_and(|n| n != "README.md") {
                println!("cargo:rerun-if-changed={}", p.display());
                files.push(p);
            }
        }
    }
    files.sort();
    // FNV-1a over names and contents: the identity of this model in the extraction cache.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for p in &files {
        feed(p.file_name().unwrap().to_string_lossy().as_bytes());
        feed(&std::fs::read(p).expect("a readable model file"));
    }
    let mut f = std::fs::File::create(&out).expect("OUT_DIR is writable");
    writeln!(
        f,
        "/// Identity of the embedded default model (empty without one)."
    )
    .unwrap();
    writeln!(
        f,
        "pub const ID: &str = \"{}\";",
        if files.is_empty() {
            String::new()
        } else {
            format!("{h:016x}")
        }
    )
    .unwrap();
    writeln!(f, "/// The files of models/default: (name, bytes).").unwrap();
    writeln!(f, "pub const FILES: &[(&str, &[u8])] = &[").unwrap();
    for p in &files {
        writeln!(
            f,
            "    ({:?}, include_bytes!({:?})),",
            p.file_name().unwrap().to_string_lossy(),
            p.display().to_string()
        )
        .unwrap();
    }
    writeln!(f, "];").unwrap();
}
