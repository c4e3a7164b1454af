//! Crash-safe output: every file cogview writes (PNGs, token-grid files, converted checkpoints,
//! training states) is written to a temporary file in the same folder, flushed to the disk, and
//! renamed over the final name. A crash, a kill or a full disk leaves either the old file or the
//! new one under that name, never half of one, and the temporary file is removed on error.
//!
//! ```
//! let dir = std::env::temp_dir().join(format!("cogview-doc-output-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let p = dir.join("grid.json");
//! cogview_core::output::write_file(&p, b"{}").unwrap();
//! assert_eq!(std::fs::read(&p).unwrap(), b"{}");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The temporary name beside `path`: `.NAME.PID.N.partial` (hidden, and unique per process and
/// call, so two writers never share one).
pub fn temp_path(path: &Path) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    path.with_file_name(format!(
        ".{name}.{}.{}.partial",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Rewords an I/O error of writing `path`: a full disk says so and that nothing was left behind.
pub fn write_error(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28) {
        Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "no space left on the device ({e}); nothing was written and the partial file \
                     was removed — free some space or write elsewhere"
                ),
            ),
        )
    } else {
        Error::io(path, e)
    }
}

/// Writes `path` through a temporary file: `write` is given the temporary path and must create
/// and fill it; then it is flushed to the disk and renamed to `path`. On any error the temporary
/// file is removed and `path` is untouched.
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| {
        // The data must be on the disk before the rename makes it visible under the final name.
        let f = std::fs::File::open(&tmp).map_err(|e| write_error(path, e))?;
        f.sync_all().map_err(|e| write_error(path, e))?;
        std::fs::rename(&tmp, path).map_err(|e| write_error(path, e))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| match e {
        Error::Io { path: p, source } if p == tmp => write_error(path, source),
        Error::Io { path: p, source } => match source.raw_os_error() {
            Some(28) => write_error(&p, source),
            _ => Error::Io { path: p, source },
        },
        // A library that wraps the I/O error in its own (a tensor library's writer): the disk
        // being full is still said plainly.
        other if crate::error::with_causes(&other).contains("os error 28") => {
            write_error(path, std::io::Error::from_raw_os_error(28))
        }
        other => other,
    })
}

/// Writes `bytes` to `path` through a temporary file ([`write_with`]).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        std::fs::write(tmp, bytes).map_err(|e| write_error(path, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_partial_file() {
        let dir = std::env::temp_dir().join(format!("cogview-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.json");
        write_file(&p, b"old").unwrap();
        let e = write_with(&p, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(write_error(
                &p,
                std::io::Error::from_raw_os_error(28), // ENOSPC
            ))
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("no space left") && e.contains("x.json"), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        write_file(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
