//! Log callbacks that belong to a pipeline or a session, not to the process: each call into the
//! library runs with its owner's `tracing` dispatcher as the thread's default.

use std::ffi::{c_char, c_void, CString};
use std::io::Write;
use tracing::Dispatch;

pub const LEVEL_WARN: i32 = 2;

type Callback = unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void);

#[derive(Clone, Copy)]
struct Target {
    callback: Callback,
    user_data: *mut c_void,
}
// SAFETY: the callback is called only on the thread that called into the library (the
// dispatcher is thread-local for the duration of the call), as the header states.
unsafe impl Send for Target {}
unsafe impl Sync for Target {}

/// Writes one formatted event to the callback when dropped.
struct Line {
    target: Target,
    level: i32,
    buf: Vec<u8>,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let text = text.trim_end();
        if text.is_empty() {
            return;
        }
        let c = CString::new(text.replace('\0', " ")).unwrap_or_default();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
            (self.target.callback)(self.level, c.as_ptr(), self.target.user_data)
        }));
    }
}

struct MakeLine(Target);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MakeLine {
    type Writer = Line;
    fn make_writer(&'a self) -> Line {
        Line {
            target: self.0,
            level: 3,
            buf: Vec::new(),
        }
    }
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        let level = match *meta.level() {
            tracing::Level::ERROR => 1,
            tracing::Level::WARN => 2,
            tracing::Level::INFO => 3,
            tracing::Level::DEBUG => 4,
            _ => 5,
        };
        Line {
            target: self.0,
            level,
            buf: Vec::new(),
        }
    }
}

/// A callback and the dispatcher that feeds it.
pub struct Logger {
    dispatch: Dispatch,
}

impl Logger {
    pub fn new(callback: Option<Callback>, user_data: *mut c_void, level: i32) -> Option<Logger> {
        let callback = callback?;
        let max = match level {
            i32::MIN..=1 => tracing::Level::ERROR,
            2 => tracing::Level::WARN,
            3 => tracing::Level::INFO,
            4 => tracing::Level::DEBUG,
            _ => tracing::Level::TRACE,
        };
        let subscriber = tracing_subscriber::fmt()
            .with_writer(MakeLine(Target {
                callback,
                user_data,
            }))
            .with_ansi(false)
            .without_time()
            .with_max_level(max)
            .finish();
        Some(Logger {
            dispatch: Dispatch::new(subscriber),
        })
    }

    /// Runs `f` with this logger receiving the thread's events.
    pub fn scope<T>(&self, f: impl FnOnce() -> T) -> T {
        tracing::dispatcher::with_default(&self.dispatch, f)
    }
}
