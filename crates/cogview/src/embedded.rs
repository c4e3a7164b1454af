//! The default model built into the library (models/default/ at build time), unpacked once into
//! the cache folder so that the loaders can map its files.

use cogview_core::{Error, Result};
use std::path::{Path, PathBuf};

mod files {
    include!(concat!(env!("OUT_DIR"), "/embedded_model.rs"));
}

/// Whether this build carries the default model.
pub fn available() -> bool {
    !files::FILES.is_empty()
}

/// The cache folder: `$COGVIEW_CACHE_DIR`, else `$XDG_CACHE_HOME/cogview`, else
/// `~/.cache/cogview`, else the system temporary folder.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("COGVIEW_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("cogview")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/cogview")))
        .unwrap_or_else(|| std::env::temp_dir().join("cogview"))
}

/// Writes `files` into `root/default-model-<id>/` once (into a temporary folder renamed into
/// place, so a crash leaves no half-written model) and returns the folder.
pub fn unpack(files: &[(&str, &[u8])], id: &str, root: &Path) -> Result<PathBuf> {
    let dir = root.join(format!("default-model-{id}"));
    if dir.join("pipeline.toml").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let tmp = root.join(format!(
        ".default-model-{id}.{}.partial",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    for (name, bytes) in files {
        let p = tmp.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    }
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => Ok(dir),
        // Another process unpacked it first.
        Err(_) if dir.join("pipeline.toml").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(dir)
        }
        Err(e) => Err(Error::io(&dir, e)),
    }
}

/// The folder of the embedded default model (unpacked on first use), or `None` in a build
/// without one.
pub fn default_model_dir() -> Result<Option<PathBuf>> {
    if !available() {
        return Ok(None);
    }
    unpack(files::FILES, files::ID, &cache_dir()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacking_writes_every_file_once_and_reuses_it() {
        let root = tempfile::tempdir().unwrap();
        let files: &[(&str, &[u8])] = &[
            ("pipeline.toml", b"style = \"none\"\n"),
            ("w.bin", b"\x01\x02"),
        ];
        let dir = unpack(files, "abc", root.path()).unwrap();
        assert_eq!(std::fs::read(dir.join("w.bin")).unwrap(), b"\x01\x02");
        assert_eq!(
            std::fs::read_to_string(dir.join("pipeline.toml")).unwrap(),
            "style = \"none\"\n"
        );
        // A second call finds it and writes nothing (a changed file stays as it is).
        std::fs::write(dir.join("w.bin"), b"changed").unwrap();
        assert_eq!(unpack(files, "abc", root.path()).unwrap(), dir);
        assert_eq!(std::fs::read(dir.join("w.bin")).unwrap(), b"changed");
        // No partial folders are left.
        let names: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["default-model-abc"]);
    }
}
