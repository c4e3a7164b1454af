//! A small full disk for the crash-safe-output tests: a tmpfs of a few KiB mounted on a temporary
//! folder, unmounted when dropped.
//!
//! Mounting needs root (CAP_SYS_ADMIN). The choice (docs/reliability.md): where the tests run as
//! root — CI here, and every machine this project's sessions use — a mount that fails is a test
//! failure; run as another user, the tests say why they cannot run and pass without checking.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs; unmounted on drop.
pub struct SmallDisk {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    /// Its mount point.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Fills the disk up to `free` bytes left (a filler file named `filler`).
    pub fn fill_leaving(&self, free: u64) {
        let stat = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.dir)
            .output()
            .expect("df runs");
        let avail: u64 = String::from_utf8_lossy(&stat.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes");
        let n = avail.saturating_sub(free) as usize;
        std::fs::write(self.dir.join("filler"), vec![0u8; n]).expect("filler fits");
    }

    /// The files on the disk besides the filler, sorted (hidden and partial ones included).
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "filler")
            .collect();
        v.sort();
        v
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A tmpfs of `bytes` bytes, or `None` (with a note on stderr) when not running as root. As root,
/// a mount that fails panics: the test must not pass silently where it can run.
pub fn small_disk(bytes: u64) -> Option<SmallDisk> {
    if !is_root() {
        eprintln!("not root: cannot mount a small tmpfs; the full-disk check does not run here");
        return None;
    }
    let parent = tempfile::tempdir().expect("a temporary folder");
    let dir = parent.path().join("disk");
    std::fs::create_dir(&dir).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
        .arg(&dir)
        .status()
        .expect("mount runs");
    assert!(st.success(), "mount -t tmpfs failed as root");
    Some(SmallDisk {
        dir,
        _parent: parent,
    })
}
