//! SHA-256 of weight files, remembered between runs by path, size and modification time (the
//! official CogLM checkpoint alone is about 12 GB).
//!
//! The cache is `sha256.json` in `$COGVIEW_CACHE_DIR`, else `$XDG_CACHE_HOME/cogview`, else
//! `~/.cache/cogview`. It is best effort: an unreadable or unwritable cache only costs time.

use cogview_core::{Error, Result};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(serde::Serialize, serde::Deserialize, Clone, PartialEq, Eq)]
struct Entry {
    size: u64,
    modified_ns: u128,
    sha256: String,
}

fn cache_file() -> Option<PathBuf> {
    let dir = std::env::var_os("COGVIEW_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("cogview")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/cogview")))?;
    Some(dir.join("sha256.json"))
}

fn load_cache(path: &Path) -> BTreeMap<String, Entry> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The SHA-256 of a file's bytes, in lower-case hex, read in full.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// The SHA-256 of each file, from the cache when its size and modification time are unchanged.
pub fn sha256_files(paths: &[PathBuf]) -> Result<Vec<String>> {
    let cache_path = cache_file();
    let mut cache = cache_path.as_deref().map(load_cache).unwrap_or_default();
    let mut changed = false;
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let key = std::path::absolute(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string();
        match cache.get(&key) {
            Some(e) if e.size == meta.len() && e.modified_ns == modified_ns && modified_ns != 0 => {
                out.push(e.sha256.clone())
            }
            _ => {
                let sha256 = sha256_file(p)?;
                cache.insert(
                    key,
                    Entry {
                        size: meta.len(),
                        modified_ns,
                        sha256: sha256.clone(),
                    },
                );
                changed = true;
                out.push(sha256);
            }
        }
    }
    if changed {
        if let Some(cp) = cache_path {
            let write = || -> std::io::Result<()> {
                std::fs::create_dir_all(cp.parent().unwrap_or(Path::new(".")))?;
                let tmp = cp.with_extension(format!("json.{}.tmp", std::process::id()));
                std::fs::write(&tmp, serde_json::to_string_pretty(&cache)?)?;
                std::fs::rename(&tmp, &cp)
            };
            if let Err(e) = write() {
                tracing::debug!("could not update the hash cache {}: {e}", cp.display());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc");
        std::fs::write(&p, b"abc").unwrap();
        // FIPS 180-2, appendix B.1.
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
