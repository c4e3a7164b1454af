//! Where the workspace and its test fixtures are.

use std::path::{Path, PathBuf};

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/fixtures`: small random models and the official code's outputs on them.
pub fn fixtures() -> PathBuf {
    workspace_root().join("tests/fixtures")
}

/// `tests/fixtures/coglm/<name>`: a small random CogLM in the official SAT layout.
pub fn coglm_fixture(name: &str) -> PathBuf {
    fixtures().join("coglm").join(name)
}
