//! The plugin side: turn a [`Backend`] into the C ABI of [`crate::ffi`].
//!
//! A plugin crate (`crate-type = ["cdylib"]`) writes one line:
//!
//! ```text
//! cogview_plugin_abi::export_plugin!(PluginDefinition { name: "tch", version: "0.1.0", .. });
//! ```
//!
//! Every exported function runs its body under `catch_unwind`: a panic becomes an `ERR_PANIC` error
//! object and poisons the handle it happened on (later calls on it fail). Errors are built with
//! the host's `error_new`; the plugin's `tracing` events are forwarded to the host's logger.

use crate::ffi::*;
use cogview_core::backend::{Availability, Backend, LoadRequest, ModelKind};
use cogview_core::lm::{AutoregressiveLm, LmInput, LmSession, Logits, LogitsRequest};
use cogview_core::sr::{predict_grid, GridPredictor};
use cogview_core::{
    Compression, DType, Device, Error, ErrorCode, Image, ImageTokenizer, TokenGrid,
};
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// What a plugin is: its descriptor strings and how to make its backend.
#[derive(Clone, Copy)]
pub struct PluginDefinition {
    /// The name stages select it by; must equal the backend's [`Backend::name`].
    pub name: &'static str,
    /// The plugin's version.
    pub version: &'static str,
    /// Version and build facts (library versions, CPU or CUDA), for `cogview backends`.
    pub build_info: &'static str,
    /// Called once, on the first `score` or `init`.
    pub make_backend: fn() -> Box<dyn Backend>,
    /// Sizes the plugin's own thread pool (`num_threads` of the first load that gives one).
    pub set_threads: Option<fn(usize)>,
    /// Install a `tracing` subscriber that forwards to the host's logger. True for a loaded
    /// library (which has its own copy of `tracing`); false when the host links the plugin
    /// statically and shares its `tracing`.
    pub forward_tracing: bool,
}

struct State {
    def: PluginDefinition,
    descriptor: CogviewPluginV1,
    _strings: [CString; 3],
}
// SAFETY: the descriptor's pointers point into `_strings` and statics, which are never mutated.
unsafe impl Send for State {}
unsafe impl Sync for State {}

static STATE: OnceLock<State> = OnceLock::new();
static BACKEND: OnceLock<Box<dyn Backend>> = OnceLock::new();
static THREADS: OnceLock<()> = OnceLock::new();

#[derive(Clone, Copy)]
struct Host(CogviewHostV1);
// SAFETY: the host promises its callbacks are thread-safe and its struct lives for the process.
unsafe impl Send for Host {}
unsafe impl Sync for Host {}
static HOST: OnceLock<Host> = OnceLock::new();

static LM_VTABLE: CogviewLmVtableV1 = CogviewLmVtableV1 {
    struct_version: ABI_MINOR,
    struct_size: std::mem::size_of::<CogviewLmVtableV1>() as u32,
    load: Some(lm_load),
    free: Some(lm_free),
    spec: Some(lm_spec),
    session_new: Some(lm_session_new),
    session_free: Some(lm_session_free),
    forward: Some(lm_forward),
};

static GRID_VTABLE: CogviewGridVtableV1 = CogviewGridVtableV1 {
    struct_version: ABI_MINOR,
    struct_size: std::mem::size_of::<CogviewGridVtableV1>() as u32,
    load: Some(grid_load),
    free: Some(grid_free),
    predict: Some(grid_predict),
    release: Some(grid_release),
    spec: Some(grid_spec),
    forward: Some(grid_forward),
};

static IMAGE_TOKENIZER_VTABLE: CogviewImageTokenizerVtableV1 = CogviewImageTokenizerVtableV1 {
    struct_version: ABI_MINOR,
    struct_size: std::mem::size_of::<CogviewImageTokenizerVtableV1>() as u32,
    load: Some(image_tokenizer_load),
    free: Some(image_tokenizer_free),
    encode: Some(image_encode),
    decode: Some(image_decode),
};

/// The descriptor for `def` (built on the first call; later calls return the same one). Does no
/// other work: no backend is made until `score` or `init`.
pub fn descriptor(def: &PluginDefinition) -> *const CogviewPluginV1 {
    let state = STATE.get_or_init(|| {
        let c = |s: &str| CString::new(s.replace('\0', " ")).unwrap_or_default();
        let strings = [c(def.name), c(def.version), c(def.build_info)];
        let descriptor = CogviewPluginV1 {
            struct_version: ABI_MINOR,
            struct_size: std::mem::size_of::<CogviewPluginV1>() as u32,
            abi_major: ABI_MAJOR,
            model_kinds: KIND_LM | KIND_GRID | KIND_IMAGE_TOKENIZER,
            name: strings[0].as_ptr(),
            version: strings[1].as_ptr(),
            build_info: strings[2].as_ptr(),
            score: Some(score),
            init: Some(init),
            lm: &LM_VTABLE,
            grid: &GRID_VTABLE,
            image_tokenizer: &IMAGE_TOKENIZER_VTABLE,
        };
        State {
            def: *def,
            descriptor,
            _strings: strings,
        }
    });
    &state.descriptor
}

/// Defines the exported entry symbol `cogview_plugin_v1` for a plugin library.
#[macro_export]
macro_rules! export_plugin {
    ($def:expr) => {
        /// The entry symbol of the cogview plugin ABI v1.
        #[no_mangle]
        pub extern "C" fn cogview_plugin_v1() -> *const $crate::ffi::CogviewPluginV1 {
            ::std::panic::catch_unwind(|| $crate::export::descriptor(&$def))
                .unwrap_or(::std::ptr::null())
        }
    };
}

fn backend() -> Result<&'static dyn Backend, Error> {
    let state = STATE
        .get()
        .ok_or_else(|| Error::plugin("?", "the descriptor was never requested"))?;
    Ok(BACKEND.get_or_init(|| (state.def.make_backend)()).as_ref())
}

// ---- errors ----------------------------------------------------------------------------------

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

fn plugin_name() -> &'static str {
    STATE.get().map_or("?", |s| s.def.name)
}

/// (code, subject, message) of an error. The code is [`Error::code`] within plugin ABI 1.0's
/// codes: a plugin's own "cannot" ([`Error::Plugin`]) is `ERR_UNSUPPORTED`, and a code the ABI
/// does not have is `ERR_BACKEND`.
fn describe(e: &Error) -> (i32, String, String) {
    let code = match e {
        Error::Plugin { .. } => ErrorCode::Unsupported,
        _ if ErrorCode::PLUGIN_ABI.contains(&e.code().value()) => e.code(),
        _ => ErrorCode::Backend,
    };
    let (subject, message) = match e {
        Error::InvalidInput { field, reason } => (field.clone(), reason.clone()),
        Error::TokenOutOfVocab { .. } => ("tokens".into(), e.to_string()),
        Error::TextTooLong { .. } => ("text".into(), e.to_string()),
        Error::Io { path, source } => (path.display().to_string(), source.to_string()),
        Error::InvalidCheckpoint { path, reason } => (path.display().to_string(), reason.clone()),
        Error::WeightMismatch { path, .. } => {
            let p = path.display().to_string();
            let msg = e.to_string();
            let msg = msg
                .strip_prefix(&format!("{p}: "))
                .unwrap_or(&msg)
                .to_string();
            (p, msg)
        }
        Error::Config { key, reason, .. } => (key.clone(), reason.clone()),
        Error::Backend { message, .. } => (String::new(), message.clone()),
        Error::Cancelled => (String::new(), "cancelled".into()),
        Error::Plugin { plugin, reason } => (plugin.clone(), reason.clone()),
        other => (String::new(), other.to_string()),
    };
    (code.value(), subject, message)
}

unsafe fn make_error(
    host: &CogviewHostV1,
    code: i32,
    subject: &str,
    msg: &str,
) -> *mut CogviewError {
    match host.error_new {
        Some(f) => unsafe {
            f(
                host.user_data,
                code,
                subject.as_ptr() as *const c_char,
                subject.len(),
                msg.as_ptr() as *const c_char,
                msg.len(),
            )
        },
        None => std::ptr::null_mut(),
    }
}

/// An error object for the host; NULL only when no host was given (the host always calls `init`
/// first, and treats "success without a result" as an error).
fn to_ffi(code: i32, subject: &str, msg: &str) -> *mut CogviewError {
    match HOST.get() {
        Some(h) => unsafe { make_error(&h.0, code, subject, msg) },
        None => std::ptr::null_mut(),
    }
}

fn error_to_ffi(e: &Error) -> *mut CogviewError {
    let (code, subject, msg) = describe(e);
    to_ffi(code, &subject, &msg)
}

/// Runs `f`, turning an error or a panic into an error object (and a panic into poison).
fn guard(poison: Option<&AtomicBool>, f: impl FnOnce() -> Result<(), Error>) -> *mut CogviewError {
    if poison.is_some_and(|p| p.load(Ordering::SeqCst)) {
        return to_ffi(
            ERR_PANIC,
            "",
            &format!(
                "{}: an earlier call on this handle panicked; load the model again",
                plugin_name()
            ),
        );
    }
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(e)) => error_to_ffi(&e),
        Err(payload) => {
            if let Some(p) = poison {
                p.store(true, Ordering::SeqCst);
            }
            let msg = format!(
                "{} panicked: {}",
                plugin_name(),
                panic_message(payload.as_ref())
            );
            log(LOG_ERROR, "cogview_plugin", &msg);
            to_ffi(ERR_PANIC, "", &msg)
        }
    }
}

fn log(level: i32, target: &str, msg: &str) {
    if let Some(h) = HOST.get() {
        if level <= h.0.max_log_level {
            if let Some(f) = h.0.log {
                unsafe {
                    f(
                        h.0.user_data,
                        level,
                        target.as_ptr() as *const c_char,
                        target.len(),
                        msg.as_ptr() as *const c_char,
                        msg.len(),
                    )
                };
            }
        }
    }
}

fn invalid(field: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid_input(field, e.to_string())
}

// ---- score and init --------------------------------------------------------------------------

fn device(kind: i32, index: i32) -> Result<Device, String> {
    match (kind, usize::try_from(index)) {
        (DEVICE_CPU, _) => Ok(Device::Cpu),
        (DEVICE_CUDA, Ok(i)) => Ok(Device::Cuda(i)),
        _ => Err(format!("unknown device kind {kind} / index {index}")),
    }
}

unsafe extern "C" fn score(
    host: *const CogviewHostV1,
    device_kind: i32,
    device_index: i32,
    why_not: *mut *mut CogviewError,
) -> i32 {
    let result = catch_unwind(|| {
        let host = unsafe { read_versioned(host) }.ok();
        if let Some(h) = host {
            let _ = HOST.set(Host(h));
        }
        let availability = match device(device_kind, device_index) {
            Ok(d) => backend().map_or_else(
                |e| Availability::Unusable {
                    reason: e.to_string(),
                },
                |b| b.availability(d),
            ),
            Err(reason) => Availability::Unusable { reason },
        };
        (host, availability)
    });
    let (host, availability) = match result {
        Ok(r) => r,
        Err(payload) => (
            HOST.get().map(|h| h.0),
            Availability::Unusable {
                reason: format!("score panicked: {}", panic_message(payload.as_ref())),
            },
        ),
    };
    match availability {
        Availability::Usable { score } => score.clamp(1, i32::MAX as u32) as i32,
        Availability::Unusable { reason } => {
            if !why_not.is_null() {
                if let Some(h) = host {
                    unsafe { *why_not = make_error(&h, ERR_UNSUPPORTED, "", &reason) };
                }
            }
            0
        }
    }
}

unsafe extern "C" fn init(host: *const CogviewHostV1) -> *mut CogviewError {
    let h = match unsafe { read_versioned(host) } {
        Ok(h) => h,
        Err(_) => return std::ptr::null_mut(),
    };
    let _ = HOST.set(Host(h));
    guard(None, || {
        let state = STATE
            .get()
            .ok_or_else(|| Error::plugin("?", "init before the descriptor was requested"))?;
        if state.def.forward_tracing {
            let max = match h.max_log_level {
                i32::MIN..=1 => tracing::Level::ERROR,
                2 => tracing::Level::WARN,
                3 => tracing::Level::INFO,
                4 => tracing::Level::DEBUG,
                _ => tracing::Level::TRACE,
            };
            // Fails harmlessly when the plugin's copy of tracing already has a subscriber.
            let _ = tracing::subscriber::set_global_default(forward::Forward::new(max));
        }
        backend()?;
        log(
            LOG_DEBUG,
            "cogview_plugin",
            &format!("{} initialised", state.def.name),
        );
        Ok(())
    })
}

// ---- loading ---------------------------------------------------------------------------------

struct HookCall(CogviewHooksV1);
// SAFETY: the host's hooks are valid for the duration of the load call, from any thread; the
// closures that hold them live in the LoadRequest, which the load call drops before returning.
unsafe impl Send for HookCall {}
unsafe impl Sync for HookCall {}

unsafe fn load_request(
    params: *const CogviewLoadParamsV1,
) -> Result<(PathBuf, LoadRequest), Error> {
    let p = unsafe { read_versioned(params) }.map_err(|e| invalid("params", e))?;
    let path = unsafe { str_from(p.path, p.path_len) }.map_err(|e| invalid("path", e))?;
    if path.is_empty() {
        return Err(invalid("path", "is empty"));
    }
    let device = device(p.device_kind, p.device_index).map_err(|e| invalid("device", e))?;
    let dtype = match p.dtype {
        DTYPE_F32 => DType::F32,
        DTYPE_F16 => DType::F16,
        DTYPE_BF16 => DType::Bf16,
        other => return Err(invalid("dtype", format!("unknown dtype {other}"))),
    };
    let options = unsafe { str_from(p.options_toml, p.options_toml_len) }
        .map_err(|e| invalid("options_toml", e))?;
    let mut request = LoadRequest::new(device, dtype);
    request.options_toml = options.to_string();
    request.num_threads = p.num_threads as usize;
    if !p.hooks.is_null() {
        let hooks = unsafe { read_versioned(p.hooks) }.map_err(|e| invalid("hooks", e))?;
        let call = Arc::new(HookCall(hooks));
        let cancel = request.cancel.clone();
        let poll = {
            let call = call.clone();
            move || {
                if let Some(f) = call.0.is_cancelled {
                    if unsafe { f(call.0.user_data) } != 0 {
                        cancel.cancel();
                    }
                }
            }
        };
        poll();
        request.progress = Some(Arc::new(move |pr: cogview_core::Progress| {
            if let Some(f) = call.0.progress {
                unsafe {
                    f(
                        call.0.user_data,
                        pr.stage.as_ptr() as *const c_char,
                        pr.stage.len(),
                        pr.step as u64,
                        pr.total as u64,
                    )
                };
            }
            poll();
        }));
    }
    if request.num_threads > 0 {
        if let Some(set) = STATE.get().and_then(|s| s.def.set_threads) {
            THREADS.get_or_init(|| set(request.num_threads));
        }
    }
    Ok((PathBuf::from(path), request))
}

/// A plugin-owned handle: the value and whether a call on it panicked.
struct Handle<T> {
    value: T,
    poisoned: AtomicBool,
}

fn into_handle<T, H>(value: T) -> *mut H {
    Box::into_raw(Box::new(Handle {
        value,
        poisoned: AtomicBool::new(false),
    })) as *mut H
}

unsafe fn handle<'a, T, H>(ptr: *const H, what: &str) -> Result<&'a Handle<T>, Error> {
    if ptr.is_null() {
        Err(invalid(what, "is NULL"))
    } else {
        Ok(unsafe { &*(ptr as *const Handle<T>) })
    }
}

unsafe fn free_handle<T, H>(ptr: *mut H) {
    if !ptr.is_null() {
        let r = catch_unwind(AssertUnwindSafe(|| {
            drop(unsafe { Box::from_raw(ptr as *mut Handle<T>) })
        }));
        if let Err(payload) = r {
            log(
                LOG_ERROR,
                "cogview_plugin",
                &format!(
                    "{}: panic while freeing a handle: {}",
                    plugin_name(),
                    panic_message(payload.as_ref())
                ),
            );
        }
    }
}

fn check_kind(kind: ModelKind) -> Result<&'static dyn Backend, Error> {
    let b = backend()?;
    if b.supports(kind) {
        Ok(b)
    } else {
        Err(Error::plugin(
            b.name(),
            format!("cannot load a {}", kind.describe()),
        ))
    }
}

unsafe fn store_out<H>(out: *mut *mut H, value: *mut H) {
    unsafe { *out = value };
}

fn fill_floats(out: *mut CogviewFloatsV1, logits: Logits) -> Result<(), Error> {
    unsafe { read_versioned(out as *const CogviewFloatsV1) }.map_err(|e| invalid("out", e))?;
    let data = Box::new(logits.data);
    let value = CogviewFloatsV1 {
        struct_version: ABI_MINOR,
        struct_size: std::mem::size_of::<CogviewFloatsV1>() as u32,
        rows: logits.rows as u64,
        cols: logits.vocab as u64,
        data: data.as_ptr(),
        release: Some(release_floats),
        private_data: Box::into_raw(data) as *mut c_void,
    };
    unsafe { write_versioned(out, &value) }.map_err(|e| invalid("out", e))
}

unsafe extern "C" fn release_floats(floats: *mut CogviewFloatsV1) {
    let _ = catch_unwind(|| {
        if floats.is_null() {
            return;
        }
        let f = unsafe { &mut *floats };
        if !f.private_data.is_null() {
            drop(unsafe { Box::from_raw(f.private_data as *mut Vec<f32>) });
        }
        f.private_data = std::ptr::null_mut();
        f.data = std::ptr::null();
        f.release = None;
    });
}

// ---- CogLM -----------------------------------------------------------------------------------

type LmHandle = Handle<Arc<dyn AutoregressiveLm>>;

/// A session and the model it borrows from; the session is declared first, so it is dropped
/// first, and the `Arc` keeps the model alive whatever order the host frees them in.
struct SessionHandle {
    session: Box<dyn LmSession + 'static>,
    _lm: Arc<dyn AutoregressiveLm>,
}

unsafe extern "C" fn lm_load(
    params: *const CogviewLoadParamsV1,
    out: *mut *mut CogviewLm,
) -> *mut CogviewError {
    guard(None, || {
        if out.is_null() {
            return Err(invalid("out", "is NULL"));
        }
        let (path, request) = unsafe { load_request(params) }?;
        let lm = check_kind(ModelKind::Lm)?.load_lm(&path, &request)?;
        unsafe { store_out(out, into_handle::<_, CogviewLm>(lm)) };
        Ok(())
    })
}

unsafe extern "C" fn lm_free(lm: *mut CogviewLm) {
    unsafe { free_handle::<Arc<dyn AutoregressiveLm>, _>(lm) }
}

unsafe extern "C" fn lm_spec(lm: *const CogviewLm, out: *mut CogviewLmSpecV1) -> *mut CogviewError {
    let h = match unsafe { handle::<Arc<dyn AutoregressiveLm>, _>(lm, "lm") } {
        Ok(h) => h,
        Err(e) => return error_to_ffi(&e),
    };
    guard(Some(&h.poisoned), || {
        let s = h.value.spec();
        let v = CogviewLmSpecV1 {
            struct_version: ABI_MINOR,
            struct_size: std::mem::size_of::<CogviewLmSpecV1>() as u32,
            vocab_size: s.vocab_size as u64,
            max_positions: s.max_positions as u64,
            image_vocab_size: s.image_vocab_size as u64,
            start_of_image_id: s.start_of_image_id,
            reserved0: 0,
        };
        unsafe { write_versioned(out, &v) }.map_err(|e| invalid("out", e))
    })
}

unsafe extern "C" fn lm_session_new(
    lm: *const CogviewLm,
    batch: u64,
    capacity: u64,
    out: *mut *mut CogviewLmSession,
) -> *mut CogviewError {
    let h: &LmHandle = match unsafe { handle(lm, "lm") } {
        Ok(h) => h,
        Err(e) => return error_to_ffi(&e),
    };
    guard(Some(&h.poisoned), || {
        if out.is_null() {
            return Err(invalid("out", "is NULL"));
        }
        let model = h.value.clone();
        let session = model.new_session(batch as usize, capacity as usize)?;
        // SAFETY: the session borrows the model behind `model`'s Arc, which the handle keeps
        // alive and drops after the session (field order).
        let session: Box<dyn LmSession + 'static> = unsafe { std::mem::transmute(session) };
        let sh = SessionHandle {
            session,
            _lm: model,
        };
        unsafe { store_out(out, into_handle::<_, CogviewLmSession>(sh)) };
        Ok(())
    })
}

unsafe extern "C" fn lm_session_free(session: *mut CogviewLmSession) {
    unsafe { free_handle::<SessionHandle, _>(session) }
}

unsafe extern "C" fn lm_forward(
    session: *mut CogviewLmSession,
    input: *const CogviewLmInputV1,
    out: *mut CogviewFloatsV1,
) -> *mut CogviewError {
    if session.is_null() {
        return error_to_ffi(&invalid("session", "is NULL"));
    }
    // SAFETY: one thread at a time per session (ABI rule).
    let h = unsafe { &mut *(session as *mut Handle<SessionHandle>) };
    let poisoned = &h.poisoned as *const AtomicBool;
    guard(Some(unsafe { &*poisoned }), || {
        let i = unsafe { read_versioned(input) }.map_err(|e| invalid("input", e))?;
        let tokens = unsafe { slice(i.tokens, i.tokens_len) }.map_err(|e| invalid("tokens", e))?;
        let positions =
            unsafe { slice(i.positions, i.positions_len) }.map_err(|e| invalid("positions", e))?;
        let bias = unsafe { slice(i.bias, i.bias_len) }.map_err(|e| invalid("bias", e))?;
        let vocab = i.logits_vocab as usize;
        let logits = match i.logits_all {
            0 => LogitsRequest::Last { vocab },
            1 => LogitsRequest::All { vocab },
            other => {
                return Err(invalid(
                    "logits_all",
                    format!("must be 0 or 1, not {other}"),
                ))
            }
        };
        let result = h.value.session.forward(&LmInput {
            tokens,
            positions,
            bias,
            logits,
        })?;
        fill_floats(out, result)
    })
}

// ---- DSR / ItersR ----------------------------------------------------------------------------

unsafe fn read_grid(grid: *const CogviewTokenGridV1) -> Result<TokenGrid, Error> {
    let g = unsafe { read_versioned(grid) }.map_err(|e| invalid("grid", e))?;
    let ids = unsafe { slice(g.ids, g.ids_len) }.map_err(|e| invalid("grid.ids", e))?;
    TokenGrid::new(g.height as usize, g.width as usize, ids.to_vec())
}

unsafe extern "C" fn grid_load(
    params: *const CogviewLoadParamsV1,
    out: *mut *mut CogviewGridModel,
) -> *mut CogviewError {
    guard(None, || {
        if out.is_null() {
            return Err(invalid("out", "is NULL"));
        }
        let (path, request) = unsafe { load_request(params) }?;
        let m = check_kind(ModelKind::GridPredictor)?.load_grid_predictor(&path, &request)?;
        unsafe { store_out(out, into_handle::<_, CogviewGridModel>(m)) };
        Ok(())
    })
}

unsafe extern "C" fn grid_free(model: *mut CogviewGridModel) {
    unsafe { free_handle::<Arc<dyn GridPredictor>, _>(model) }
}

unsafe extern "C" fn grid_predict(
    model: *const CogviewGridModel,
    text: *const u32,
    text_len: usize,
    grid: *const CogviewTokenGridV1,
    out: *mut CogviewFloatsV1,
) -> *mut CogviewError {
    let h: &Handle<Arc<dyn GridPredictor>> = match unsafe { handle(model, "model") } {
        Ok(h) => h,
        Err(e) => return error_to_ffi(&e),
    };
    guard(Some(&h.poisoned), || {
        let text = unsafe { slice(text, text_len) }.map_err(|e| invalid("text", e))?;
        let grid = unsafe { read_grid(grid) }?;
        // ABI 1.0 hosts: the input is assembled here, by the core, as a 1.1 host would.
        let logits = predict_grid(h.value.as_ref(), text, &grid)?;
        fill_floats(out, logits)
    })
}

unsafe extern "C" fn grid_spec(
    model: *const CogviewGridModel,
    out: *mut CogviewGridSpecV1,
) -> *mut CogviewError {
    let h: &Handle<Arc<dyn GridPredictor>> = match unsafe { handle(model, "model") } {
        Ok(h) => h,
        Err(e) => return error_to_ffi(&e),
    };
    guard(Some(&h.poisoned), || {
        let v = crate::grid::spec_to_ffi(&h.value.spec()?);
        unsafe { write_versioned(out, &v) }.map_err(|e| invalid("out", e))
    })
}

unsafe extern "C" fn grid_forward(
    model: *const CogviewGridModel,
    input: *const CogviewGridInputV1,
    out: *mut CogviewFloatsV1,
) -> *mut CogviewError {
    let h: &Handle<Arc<dyn GridPredictor>> = match unsafe { handle(model, "model") } {
        Ok(h) => h,
        Err(e) => return error_to_ffi(&e),
    };
    guard(Some(&h.poisoned), || {
        let input = unsafe { crate::grid::input_from_ffi(input) }?;
        // The backend's own check too: this input crossed a library boundary.
        input.check(&h.value.spec()?)?;
        let logits = h.value.predict(&input)?;
        fill_floats(out, logits)
    })
}

unsafe extern "C" fn grid_release(model: *const CogviewGridModel) {
    if let Ok(h) = unsafe { handle::<Arc<dyn GridPredictor>, _>(model, "model") } {
        if h.poisoned.load(Ordering::SeqCst) {
            return;
        }
        // No result to return: a panic poisons the handle and is logged.
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| h.value.release())) {
            h.poisoned.store(true, Ordering::SeqCst);
            log(
                LOG_ERROR,
                "cogview_plugin",
                &format!(
                    "{} panicked in release: {}",
                    plugin_name(),
                    panic_message(payload.as_ref())
                ),
            );
        }
    }
}

// ---- image tokenizer ---------------------------------------------------------------------------

fn compression(factor: u32) -> Result<Compression, Error> {
    match factor {
        4 => Ok(Compression::X4),
        8 => Ok(Compression::X8),
        16 => Ok(Compression::X16),
        f => Err(invalid("factor", format!("must be 4, 8 or 16, not {f}"))),
    }
}

unsafe extern "C" fn image_tokenizer_load(
    params: *const CogviewLoadParamsV1,
    out: *mut *mut CogviewImageTokenizer,
) -> *mut CogviewError {
    guard(None, || {
        if out.is_null() {
            return Err(invalid("out", "is NULL"));
        }
        let (path, request) = unsafe { load_request(params) }?;
        let m = check_kind(ModelKind::ImageTokenizer)?.load_image_tokenizer(&path, &request)?;
        unsafe { store_out(out, into_handle::<_, CogviewImageTokenizer>(m)) };
        Ok(())
    })
}

unsafe extern "C" fn image_tokenizer_free(model: *mut CogviewImageTokenizer) {
    unsafe { free_handle::<Arc<dyn ImageTokenizer>, _>(model) }
}

unsafe extern "C" fn image_encode(
    model: *const CogviewImageTokenizer,
    image: *const CogviewImageV1,
    factor: u32,
    ids: *mut u32,
    ids_len: usize,
) -> *mut CogviewError {
    let h: &Handle<Arc<dyn ImageTokenizer>> = match unsafe { handle(model, "model") } {
        Ok(h) => h,
        Err(e) => return error_to_ffi(&e),
    };
    guard(Some(&h.poisoned), || {
        let c = compression(factor)?;
        let im = unsafe { read_versioned(image) }.map_err(|e| invalid("image", e))?;
        let rgb = unsafe { slice(im.rgb, im.rgb_len) }.map_err(|e| invalid("image.rgb", e))?;
        let image = Image::new(im.width as usize, im.height as usize, rgb.to_vec())?;
        let f = c.factor();
        let need = (image.width / f) * (image.height / f);
        if ids_len != need || ids.is_null() {
            return Err(invalid(
                "ids",
                format!(
                    "room for {ids_len} ids given; a {}x{} image at factor {f} has {need}",
                    image.width, image.height
                ),
            ));
        }
        let grid = h.value.encode(&image, c)?;
        if grid.ids.len() != need {
            return Err(Error::backend(format!(
                "the encoder returned {} ids, not {need}",
                grid.ids.len()
            )));
        }
        unsafe { std::ptr::copy_nonoverlapping(grid.ids.as_ptr(), ids, need) };
        Ok(())
    })
}

unsafe extern "C" fn image_decode(
    model: *const CogviewImageTokenizer,
    grid: *const CogviewTokenGridV1,
    factor: u32,
    rgb: *mut u8,
    rgb_len: usize,
) -> *mut CogviewError {
    let h: &Handle<Arc<dyn ImageTokenizer>> = match unsafe { handle(model, "model") } {
        Ok(h) => h,
        Err(e) => return error_to_ffi(&e),
    };
    guard(Some(&h.poisoned), || {
        let c = compression(factor)?;
        let grid = unsafe { read_grid(grid) }?;
        let f = c.factor();
        let need = grid.height * f * grid.width * f * 3;
        if rgb_len != need || rgb.is_null() {
            return Err(invalid(
                "rgb",
                format!(
                    "room for {rgb_len} bytes given; a {}x{} grid at factor {f} decodes to {need}",
                    grid.height, grid.width
                ),
            ));
        }
        let image = h.value.decode(&grid, c)?;
        if image.pixels.len() != need {
            return Err(Error::backend(format!(
                "the decoder returned {} bytes, not {need}",
                image.pixels.len()
            )));
        }
        unsafe { std::ptr::copy_nonoverlapping(image.pixels.as_ptr(), rgb, need) };
        Ok(())
    })
}

// ---- tracing → host logger ---------------------------------------------------------------------

mod forward {
    use super::*;
    use std::fmt::Write;
    use std::sync::atomic::AtomicU64;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    /// A minimal subscriber: every event becomes one host log line ("message k=v ...").
    pub struct Forward {
        max: Level,
        next_id: AtomicU64,
    }

    impl Forward {
        pub fn new(max: Level) -> Self {
            Forward {
                max,
                next_id: AtomicU64::new(1),
            }
        }
    }

    struct Line(String);
    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, "{value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
    }

    thread_local!(static IN_LOG: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });

    impl Subscriber for Forward {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() <= self.max
        }
        fn new_span(&self, _span: &Attributes<'_>) -> Id {
            Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed).max(1))
        }
        fn record(&self, _span: &Id, _values: &Record<'_>) {}
        fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
        fn event(&self, event: &Event<'_>) {
            // A host that logs through the same `tracing` would loop back here.
            if IN_LOG.with(|c| c.replace(true)) {
                return;
            }
            let mut line = Line(String::new());
            event.record(&mut line);
            let level = match *event.metadata().level() {
                Level::ERROR => LOG_ERROR,
                Level::WARN => LOG_WARN,
                Level::INFO => LOG_INFO,
                Level::DEBUG => LOG_DEBUG,
                _ => LOG_TRACE,
            };
            log(level, event.metadata().target(), &line.0);
            IN_LOG.with(|c| c.set(false));
        }
        fn enter(&self, _span: &Id) {}
        fn exit(&self, _span: &Id) {}
    }
}
