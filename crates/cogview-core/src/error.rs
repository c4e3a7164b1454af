//! The one error type of the SDK, grouped by who is at fault, and the numeric error codes the C
//! API and the plugin ABI share ([`ErrorCode`]).

use std::path::PathBuf;

/// A tensor whose shape differs from what the model expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// The tensor's name in the checkpoint.
    pub name: String,
    /// The shape the model needs.
    pub expected: Vec<usize>,
    /// The shape in the checkpoint.
    pub found: Vec<usize>,
}

/// The error codes of the C API (`include/cogview.h`) and of the plugin ABI
/// (`include/cogview_plugin.h`): one table, written once in C in `include/cogview_error.h` as
/// `COGVIEW_ERR_<NAME>` (a test checks that the header and this enum agree).
///
/// The values 1-11 are those of plugin ABI 1.0 and never change. A plugin only returns those
/// ([`ErrorCode::PLUGIN_ABI`]); [`ErrorCode::InvalidArgument`] and [`ErrorCode::Plugin`] are the C
/// API's own. New codes are appended, so match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The caller's input is not acceptable: a field, a prompt, a grid, an image
    /// ([`Error::InvalidInput`]).
    InvalidInput = 1,
    /// A token id is outside the model's vocabulary ([`Error::TokenOutOfVocab`]).
    TokenOutOfVocab = 2,
    /// A file could not be read or written ([`Error::Io`]).
    Io = 3,
    /// The weights are corrupt, truncated, in an unknown format or do not match the model
    /// ([`Error::InvalidCheckpoint`], [`Error::WeightMismatch`]).
    InvalidWeights = 4,
    /// A configuration file or value is invalid ([`Error::Config`]).
    Config = 5,
    /// The tensor library failed ([`Error::Backend`]).
    Backend = 6,
    /// The run was cancelled ([`Error::Cancelled`]).
    Cancelled = 7,
    /// A plugin cannot do what was asked (e.g. run on this device, or load this kind of model).
    Unsupported = 8,
    /// A bug: a Rust panic or a C++ exception caught at the API boundary.
    Panic = 9,
    /// A plugin broke the plugin ABI (a struct too small, a missing function).
    Abi = 10,
    /// The text is longer than the model accepts ([`Error::TextTooLong`]).
    TextTooLong = 11,
    /// C API only: a NULL pointer, invalid UTF-8, a zero count or a params struct that was not
    /// initialised.
    InvalidArgument = 12,
    /// A backend plugin could not be loaded or used ([`Error::Plugin`], [`Error::PluginLoad`]).
    Plugin = 13,
}

impl ErrorCode {
    /// Every code, in the order of their values.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::InvalidInput,
        ErrorCode::TokenOutOfVocab,
        ErrorCode::Io,
        ErrorCode::InvalidWeights,
        ErrorCode::Config,
        ErrorCode::Backend,
        ErrorCode::Cancelled,
        ErrorCode::Unsupported,
        ErrorCode::Panic,
        ErrorCode::Abi,
        ErrorCode::TextTooLong,
        ErrorCode::InvalidArgument,
        ErrorCode::Plugin,
    ];

    /// The codes of plugin ABI 1.0, the only ones a plugin returns.
    pub const PLUGIN_ABI: std::ops::RangeInclusive<i32> = 1..=11;

    /// The code's value.
    pub const fn value(self) -> i32 {
        self as i32
    }

    /// The code of a value, or `None` for a value this version does not know.
    pub fn from_value(value: i32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.value() == value)
    }

    /// The C macro's name without the `COGVIEW_ERR_` prefix: `INVALID_INPUT`.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "INVALID_INPUT",
            ErrorCode::TokenOutOfVocab => "TOKEN_OUT_OF_VOCAB",
            ErrorCode::Io => "IO",
            ErrorCode::InvalidWeights => "INVALID_WEIGHTS",
            ErrorCode::Config => "CONFIG",
            ErrorCode::Backend => "BACKEND",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::Panic => "PANIC",
            ErrorCode::Abi => "ABI",
            ErrorCode::TextTooLong => "TEXT_TOO_LONG",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::Plugin => "PLUGIN",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "COGVIEW_ERR_{} ({})", self.name(), self.value())
    }
}

/// Everything that can go wrong in cogview.
///
/// Variants carry structured fields; the `Display` text says what was wrong and what to do.
/// [`Error::code`] gives the numeric code the C API reports. New variants may be added, so match
/// with a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- the caller's input -------------------------------------------------------------
    /// A request field is malformed or out of range.
    #[error("invalid input `{field}`: {reason}")]
    InvalidInput {
        /// The field, argument or value (e.g. `prompt`, `mask`, `num_images`).
        field: String,
        /// What is wrong with it and what to do.
        reason: String,
    },

    /// A token id is not in the model's vocabulary.
    #[error("token id {token} at index {index} is outside the vocabulary of {vocab_size} ids; use ids in 0..{vocab_size}")]
    TokenOutOfVocab {
        /// The id.
        token: u32,
        /// Its index in the input.
        index: usize,
        /// The model's vocabulary size.
        vocab_size: usize,
    },

    /// The text (prompt plus template) is longer than the model accepts.
    #[error(
        "the text is {tokens} tokens long but {what} accepts at most {max}; shorten the prompt"
    )]
    TextTooLong {
        /// The text's length in tokens.
        tokens: usize,
        /// The longest text accepted.
        max: usize,
        /// What sets the limit (e.g. `CogLM`).
        what: String,
    },

    // ---- files on disk ------------------------------------------------------------------
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The system's reason.
        source: std::io::Error,
    },

    /// A checkpoint file is truncated, corrupt or in a format cogview does not read.
    #[error("{path}: not a readable checkpoint: {reason}")]
    InvalidCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The tensors in a checkpoint do not match the model built from its configuration.
    #[error("{path}: the weights do not match the model: {}", describe_mismatch(.missing, .unexpected, .mis_shaped, .bad_dtype))]
    WeightMismatch {
        /// The checkpoint file.
        path: PathBuf,
        /// Tensors the model needs that the checkpoint lacks.
        missing: Vec<String>,
        /// Tensors in the checkpoint the model does not have.
        unexpected: Vec<String>,
        /// Tensors of the wrong shape.
        mis_shaped: Vec<ShapeMismatch>,
        /// (tensor name, dtype found)
        bad_dtype: Vec<(String, String)>,
    },

    /// A configuration file or value is missing or invalid.
    #[error("{source_name}: configuration `{key}`: {reason}")]
    Config {
        /// Where the configuration came from (a file, `model_config.json`, a plugin's options).
        source_name: String,
        /// The key (e.g. `coglm.temperature`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },

    // ---- the running system -------------------------------------------------------------
    /// The backend (tensor library) failed.
    #[error("backend error: {message}")]
    Backend {
        /// What failed; when there is a `source`, its text is included, so the message alone
        /// reads completely.
        message: String,
        /// The tensor library's own error (e.g. a `candle_core::Error`), kept for
        /// [`std::error::Error::source`] and downcasting.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A backend plugin could not be loaded or refused to run (wrong ABI, unusable here, panicked).
    #[error("plugin {plugin}: {reason}")]
    Plugin {
        /// The plugin's name (or path).
        plugin: String,
        /// What went wrong.
        reason: String,
    },

    /// A plugin library could not be opened; `source` holds the loader's reason.
    #[error("cannot load plugin {path}: {what}")]
    PluginLoad {
        /// The library's path.
        path: PathBuf,
        /// What was being done.
        what: String,
        /// The loader's error.
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
    /// The numeric code the C API reports for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidInput { .. } => ErrorCode::InvalidInput,
            Error::TokenOutOfVocab { .. } => ErrorCode::TokenOutOfVocab,
            Error::TextTooLong { .. } => ErrorCode::TextTooLong,
            Error::Io { .. } => ErrorCode::Io,
            Error::InvalidCheckpoint { .. } | Error::WeightMismatch { .. } => {
                ErrorCode::InvalidWeights
            }
            Error::Config { .. } => ErrorCode::Config,
            Error::Backend { .. } => ErrorCode::Backend,
            Error::Plugin { .. } | Error::PluginLoad { .. } => ErrorCode::Plugin,
            Error::Cancelled => ErrorCode::Cancelled,
        }
    }

    /// [`Error::Backend`] with a message and no underlying error.
    pub fn backend(message: impl Into<String>) -> Self {
        Error::Backend {
            message: message.into(),
            source: None,
        }
    }

    /// [`Error::Backend`] keeping the tensor library's error as the source; the message is
    /// `context: <its text>`, or its text alone when `context` is empty.
    pub fn backend_source(
        context: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        let text = source.to_string();
        Error::Backend {
            message: if context.is_empty() {
                text
            } else {
                format!("{context}: {text}")
            },
            source: Some(Box::new(source)),
        }
    }

    /// [`Error::InvalidInput`].
    pub fn invalid_input(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
    /// [`Error::Config`].
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
    /// [`Error::Plugin`].
    pub fn plugin(plugin: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Plugin {
            plugin: plugin.into(),
            reason: reason.into(),
        }
    }
    /// [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// [`Error::InvalidCheckpoint`].
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

/// A result whose error is cogview's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        for (i, c) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(c.value(), i as i32 + 1, "{c}");
            assert_eq!(ErrorCode::from_value(c.value()), Some(*c));
        }
        assert_eq!(ErrorCode::from_value(0), None);
        assert_eq!(
            ErrorCode::Cancelled.to_string(),
            "COGVIEW_ERR_CANCELLED (7)"
        );
        assert_eq!(Error::Cancelled.code(), ErrorCode::Cancelled);
        assert_eq!(
            Error::checkpoint("x", "truncated").code(),
            ErrorCode::InvalidWeights
        );
    }

    #[test]
    fn a_backend_error_keeps_its_source() {
        let e = Error::backend_source("", std::io::Error::other("out of memory"));
        assert_eq!(e.to_string(), "backend error: out of memory");
        let src = std::error::Error::source(&e).expect("a source");
        assert!(src.downcast_ref::<std::io::Error>().is_some());
        // One-line displays do not repeat it.
        assert_eq!(with_causes(&e), "backend error: out of memory");
        let e = Error::backend_source("loading", std::io::Error::other("disk"));
        assert_eq!(e.to_string(), "backend error: loading: disk");
        assert!(std::error::Error::source(&Error::backend("plain")).is_none());
    }

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
