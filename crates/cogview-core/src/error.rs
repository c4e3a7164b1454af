//! The one error type of the SDK, grouped by who is at fault.

use std::path::PathBuf;

/// A tensor whose shape differs from what the model expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    pub name: String,
    pub expected: Vec<usize>,
    pub found: Vec<usize>,
}

/// Everything that can go wrong in cogview.
///
/// Variants carry structured fields; the `Display` text says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- the caller's input -------------------------------------------------------------
    /// A request field is malformed or out of range.
    #[error("invalid input `{field}`: {reason}")]
    InvalidInput { field: String, reason: String },

    /// A token id is not in the model's vocabulary.
    #[error("token id {token} at index {index} is outside the vocabulary of {vocab_size} ids; use ids in 0..{vocab_size}")]
    TokenOutOfVocab {
        token: u32,
        index: usize,
        vocab_size: usize,
    },

    /// The text (prompt plus template) is longer than the model accepts.
    #[error(
        "the text is {tokens} tokens long but {what} accepts at most {max}; shorten the prompt"
    )]
    TextTooLong {
        tokens: usize,
        max: usize,
        what: String,
    },

    // ---- files on disk ------------------------------------------------------------------
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A checkpoint file is truncated, corrupt or in a format cogview does not read.
    #[error("{path}: not a readable checkpoint: {reason}")]
    InvalidCheckpoint { path: PathBuf, reason: String },

    /// The tensors in a checkpoint do not match the model built from its configuration.
    #[error("{path}: the weights do not match the model: {}", describe_mismatch(.missing, .unexpected, .mis_shaped, .bad_dtype))]
    WeightMismatch {
        path: PathBuf,
        missing: Vec<String>,
        unexpected: Vec<String>,
        mis_shaped: Vec<ShapeMismatch>,
        /// (tensor name, dtype found)
        bad_dtype: Vec<(String, String)>,
    },

    /// A configuration file or value is missing or invalid.
    #[error("{source_name}: configuration `{key}`: {reason}")]
    Config {
        source_name: String,
        key: String,
        reason: String,
    },

    // ---- the running system -------------------------------------------------------------
    /// The backend (tensor library) failed.
    #[error("backend error: {0}")]
    Backend(String),

    /// A backend plugin could not be loaded or refused to run (wrong ABI, unusable here, panicked).
    #[error("plugin {plugin}: {reason}")]
    Plugin { plugin: String, reason: String },

    /// A plugin library could not be opened; `source` holds the loader's reason.
    #[error("cannot load plugin {path}: {what}")]
    PluginLoad {
        path: PathBuf,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The run was cancelled through its [`crate::RunContext`].
    #[error("cancelled")]
    Cancelled,
}

fn describe_mismatch(
    missing: &[String],
    unexpected: &[String],
    mis_shaped: &[ShapeMismatch],
    bad_dtype: &[(String, String)],
) -> String {
    fn list(items: &[String]) -> String {
        const MAX: usize = 8;
        let mut s = items
            .iter()
            .take(MAX)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if items.len() > MAX {
            s.push_str(&format!(" and {} more", items.len() - MAX));
        }
        s
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "{} missing tensor(s): {}",
            missing.len(),
            list(missing)
        ));
    }
    if !mis_shaped.is_empty() {
        let items: Vec<String> = mis_shaped
            .iter()
            .map(|m| {
                format!(
                    "{} (expected {:?}, found {:?})",
                    m.name, m.expected, m.found
                )
            })
            .collect();
        parts.push(format!(
            "{} tensor(s) of the wrong shape: {}",
            items.len(),
            list(&items)
        ));
    }
    if !bad_dtype.is_empty() {
        let items: Vec<String> = bad_dtype
            .iter()
            .map(|(n, d)| format!("{n} ({d})"))
            .collect();
        parts.push(format!(
            "{} tensor(s) of an unsupported dtype (need f32, f16 or bf16): {}",
            items.len(),
            list(&items)
        ));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} unexpected tensor(s): {}",
            unexpected.len(),
            list(unexpected)
        ));
    }
    parts.push("check that the checkpoint and its model_config.json belong together".into());
    parts.join("; ")
}

impl Error {
    pub fn invalid_input(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
    pub fn config(
        source_name: impl Into<String>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Config {
            source_name: source_name.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }
    pub fn plugin(plugin: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Plugin {
            plugin: plugin.into(),
            reason: reason.into(),
        }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidCheckpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// An error's message followed by each cause that the message does not already contain
/// (`"a: b: c"`), for places that show errors as one line.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_appended_once() {
        let io = std::io::Error::other("disk on fire");
        let e = Error::PluginLoad {
            path: "p.so".into(),
            what: "dlopen failed".into(),
            source: Box::new(io),
        };
        assert_eq!(
            with_causes(&e),
            "cannot load plugin p.so: dlopen failed: disk on fire"
        );
        let e = Error::PluginLoad {
            path: "p.so".into(),
            what: "dlopen failed: disk on fire".into(),
            source: Box::new(std::io::Error::other("disk on fire")),
        };
        assert_eq!(
            with_causes(&e),
            "cannot load plugin p.so: dlopen failed: disk on fire"
        );
    }
}
