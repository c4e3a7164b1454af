//! What the host hands plugins: its logger (forwarding to `tracing`) and its error constructor.
//! Both are `extern "C"` trampolines that catch panics.

use cogview_core::Error;
use cogview_plugin_abi::ffi::*;
use std::ffi::{c_char, c_void};
use std::panic::catch_unwind;
use std::sync::OnceLock;

/// The host's error object: what `CogviewError *` points to.
pub(crate) struct HostError {
    code: i32,
    subject: String,
    message: String,
}

struct SyncHost(CogviewHostV1);
// SAFETY: the struct is immutable after creation; user_data is NULL; the callbacks are thread-safe.
unsafe impl Send for SyncHost {}
unsafe impl Sync for SyncHost {}

static HOST: OnceLock<SyncHost> = OnceLock::new();

/// The host struct given to every plugin; lives for the rest of the process.
pub fn host_struct() -> *const CogviewHostV1 {
    let h = HOST.get_or_init(|| {
        // Everything is forwarded; the host's own subscriber filters (its filter can change
        // after the plugin was initialised).
        let level = LOG_TRACE;
        let mut host = CogviewHostV1::new_zeroed();
        host.max_log_level = level;
        host.log = Some(host_log);
        host.error_new = Some(host_error_new);
        SyncHost(host)
    });
    &h.0
}

fn text(ptr: *const c_char, len: usize) -> String {
    match unsafe { slice(ptr as *const u8, len) } {
        Ok(b) => String::from_utf8_lossy(b).into_owned(),
        Err(_) => String::new(),
    }
}

unsafe extern "C" fn host_log(
    _user_data: *mut c_void,
    level: i32,
    target: *const c_char,
    target_len: usize,
    msg: *const c_char,
    msg_len: usize,
) {
    let _ = catch_unwind(|| {
        let target = text(target, target_len);
        let msg = text(msg, msg_len);
        match level {
            i32::MIN..=1 => {
                tracing::error!(target: "cogview_plugin", plugin_target = %target, "{msg}")
            }
            2 => tracing::warn!(target: "cogview_plugin", plugin_target = %target, "{msg}"),
            3 => tracing::info!(target: "cogview_plugin", plugin_target = %target, "{msg}"),
            4 => tracing::debug!(target: "cogview_plugin", plugin_target = %target, "{msg}"),
            _ => tracing::trace!(target: "cogview_plugin", plugin_target = %target, "{msg}"),
        }
    });
}

unsafe extern "C" fn host_error_new(
    _user_data: *mut c_void,
    code: i32,
    subject: *const c_char,
    subject_len: usize,
    msg: *const c_char,
    msg_len: usize,
) -> *mut CogviewError {
    let e = catch_unwind(|| HostError {
        code,
        subject: text(subject, subject_len),
        message: text(msg, msg_len),
    })
    .unwrap_or(HostError {
        code: ERR_PANIC,
        subject: String::new(),
        message: "the host failed to record the plugin's error".into(),
    });
    Box::into_raw(Box::new(e)) as *mut CogviewError
}

/// Takes ownership of an error object: (code, subject, message), or None for NULL.
///
/// # Safety
/// `e` is NULL or came from this host's `error_new` and was not taken before.
pub(crate) unsafe fn take_error(e: *mut CogviewError) -> Option<(i32, String, String)> {
    if e.is_null() {
        return None;
    }
    let e = unsafe { Box::from_raw(e as *mut HostError) };
    Some((e.code, e.subject, e.message))
}

/// The core error a plugin's error object stands for.
pub(crate) fn to_core(plugin: &str, code: i32, subject: String, message: String) -> Error {
    match code {
        ERR_INVALID_INPUT | ERR_TOKEN_OUT_OF_VOCAB => Error::InvalidInput {
            field: if subject.is_empty() {
                "input".into()
            } else {
                subject
            },
            reason: message,
        },
        ERR_TEXT_TOO_LONG => Error::InvalidInput {
            field: "text".into(),
            reason: message,
        },
        ERR_IO => Error::Io {
            path: subject.into(),
            source: std::io::Error::other(message),
        },
        ERR_INVALID_WEIGHTS => Error::InvalidCheckpoint {
            path: subject.into(),
            reason: message,
        },
        ERR_CONFIG => Error::Config {
            source_name: format!("options of the {plugin} plugin"),
            key: subject,
            reason: message,
        },
        ERR_BACKEND => Error::backend(format!("{plugin}: {message}")),
        ERR_CANCELLED => Error::Cancelled,
        ERR_PANIC => Error::plugin(plugin, format!("panicked: {message}")),
        ERR_ABI => Error::plugin(plugin, format!("ABI violation: {message}")),
        ERR_UNSUPPORTED => Error::plugin(plugin, message),
        other => Error::plugin(plugin, format!("error code {other}: {message}")),
    }
}

/// `Ok(())` for NULL, else the error.
pub(crate) unsafe fn check(plugin: &str, e: *mut CogviewError) -> cogview_core::Result<()> {
    match unsafe { take_error(e) } {
        None => Ok(()),
        Some((code, subject, message)) => Err(to_core(plugin, code, subject, message)),
    }
}
