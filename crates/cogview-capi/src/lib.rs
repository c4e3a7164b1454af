//! The C API of `include/cogview.h`. Every exported function runs its body under
//! `catch_unwind` (a panic becomes `COGVIEW_ERR_PANIC`), checks every pointer and string it is
//! given, and leaves out-parameters untouched on error. Objects are `Box`es handed out as opaque
//! pointers; each has its `*_free`, which accepts NULL. Error codes are
//! [`sdk::ErrorCode`]'s (`include/cogview_error.h`).

// The exported items are C declarations, documented in include/cogview.h (the reference, which
// C users read); this crate builds only a cdylib and a staticlib, so no Rust code can use them.
#![allow(non_camel_case_types, clippy::missing_safety_doc, missing_docs)]

mod log;

use sdk::core::edit::{EditMask, Region};
use sdk::core::sampling::TopKSampler;
use sdk::core::{CancelToken, Progress, RunContext};
use sdk::pipeline::{CaptionOptions, EditedImage, GeneratedImage};
use sdk::{Compression, DType, Device, Error, ErrorCode, Image, Pipeline, Settings, TokenGrid};
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

/// `COGVIEW_API_VERSION` of include/cogview.h.
pub const COGVIEW_API_VERSION: u32 = 2;

// The sizes include/cogview.h asserts (64-bit targets).
const _: () = assert!(std::mem::size_of::<cogview_pipeline_params>() == 80);
const _: () = assert!(std::mem::size_of::<cogview_session_params>() == 48);
const _: () = assert!(std::mem::size_of::<cogview_generate_params>() == 40);
const _: () = assert!(std::mem::size_of::<cogview_grid_view>() == 24);
const _: () = assert!(std::mem::size_of::<cogview_image_view>() == 80);

pub struct cogview_error {
    code: i32,
    message: CString,
}

fn new_error(code: ErrorCode, message: impl Into<String>) -> *mut cogview_error {
    let message = message.into().replace('\0', " ");
    Box::into_raw(Box::new(cogview_error {
        code: code.value(),
        message: CString::new(message).unwrap_or_default(),
    }))
}

/// A failure of an API call: a bad argument (`COGVIEW_ERR_INVALID_ARGUMENT`) or an SDK error.
enum Fail {
    Arg(String),
    Sdk(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Sdk(e)
    }
}

fn arg(msg: impl Into<String>) -> Fail {
    Fail::Arg(msg.into())
}

/// Runs an API body: errors and panics become error objects, success is NULL.
fn guard(body: impl FnOnce() -> Result<(), Fail>) -> *mut cogview_error {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(Fail::Arg(m))) => new_error(ErrorCode::InvalidArgument, m),
        Ok(Err(Fail::Sdk(e))) => new_error(e.code(), sdk::core::error::with_causes(&e)),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            new_error(
                ErrorCode::Panic,
                format!("internal error (a bug in cogview; please report it): {what}"),
            )
        }
    }
}

/// A required, NUL-terminated UTF-8 string argument.
unsafe fn required_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, Fail> {
    if p.is_null() {
        return Err(arg(format!("`{name}` is NULL")));
    }
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|e| arg(format!("`{name}` is not valid UTF-8 ({e})")))
}

unsafe fn optional_str<'a>(p: *const c_char, name: &str) -> Result<Option<&'a str>, Fail> {
    if p.is_null() {
        Ok(None)
    } else {
        unsafe { required_str(p, name) }.map(Some)
    }
}

/// Reads a params struct whose first field is `struct_size`: refuses NULL and sizes below this
/// version's (a struct not made by its `*_default_params`), reads at most this version's size.
unsafe fn read_params<T: Copy>(p: *const T, name: &str, init: &str) -> Result<T, Fail> {
    if p.is_null() {
        return Err(arg(format!("`{name}` is NULL")));
    }
    let size = unsafe { std::ptr::read_unaligned(p as *const u32) } as usize;
    if size < std::mem::size_of::<T>() {
        return Err(arg(format!(
            "`{name}` has struct_size {size} but this library needs {}: start from {init}()",
            std::mem::size_of::<T>()
        )));
    }
    Ok(unsafe { std::ptr::read(p) })
}

unsafe fn out_ptr<T>(out: *mut *mut T, name: &str) -> Result<(), Fail> {
    if out.is_null() {
        Err(arg(format!("`{name}` (the out-parameter) is NULL")))
    } else {
        Ok(())
    }
}

// ---- version and errors --------------------------------------------------------------------

#[no_mangle]
pub extern "C" fn cogview_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

#[no_mangle]
pub extern "C" fn cogview_api_version() -> u32 {
    COGVIEW_API_VERSION
}

#[no_mangle]
pub unsafe extern "C" fn cogview_error_code(error: *const cogview_error) -> i32 {
    if error.is_null() {
        0
    } else {
        unsafe { (*error).code }
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_error_message(error: *const cogview_error) -> *const c_char {
    if error.is_null() {
        c"".as_ptr()
    } else {
        unsafe { (*error).message.as_ptr() }
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_error_free(error: *mut cogview_error) {
    if !error.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(error) })));
    }
}

// ---- pipelines --------------------------------------------------------------------------

pub type cogview_log_callback =
    Option<unsafe extern "C" fn(level: i32, message: *const c_char, user_data: *mut c_void)>;
pub type cogview_progress_callback = Option<
    unsafe extern "C" fn(
        stage: *const c_char,
        step: u64,
        total: u64,
        user_data: *mut c_void,
    ) -> bool,
>;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cogview_pipeline_params {
    pub struct_size: u32,
    pub config_path: *const c_char,
    pub model_dir: *const c_char,
    pub style: *const c_char,
    pub device: *const c_char,
    pub dtype: *const c_char,
    pub low_memory: i32,
    pub batch_size: u32,
    pub log_callback: cogview_log_callback,
    pub log_user_data: *mut c_void,
    pub log_level: i32,
}

pub struct cogview_pipeline {
    shared: Arc<Shared>,
}

struct Shared {
    pipeline: Pipeline,
    log: Option<log::Logger>,
}

#[no_mangle]
pub extern "C" fn cogview_pipeline_default_params() -> cogview_pipeline_params {
    cogview_pipeline_params {
        struct_size: std::mem::size_of::<cogview_pipeline_params>() as u32,
        config_path: std::ptr::null(),
        model_dir: std::ptr::null(),
        style: std::ptr::null(),
        device: std::ptr::null(),
        dtype: std::ptr::null(),
        low_memory: 0,
        batch_size: 0,
        log_callback: None,
        log_user_data: std::ptr::null_mut(),
        log_level: log::LEVEL_WARN,
    }
}

fn parse<T: std::str::FromStr<Err = Error>>(v: Option<&str>) -> Result<Option<T>, Fail> {
    v.map(str::parse::<T>).transpose().map_err(Fail::Sdk)
}

#[no_mangle]
pub unsafe extern "C" fn cogview_pipeline_new(
    params: *const cogview_pipeline_params,
    out: *mut *mut cogview_pipeline,
) -> *mut cogview_error {
    guard(|| {
        unsafe { out_ptr(out, "out") }?;
        let p = unsafe { read_params(params, "params", "cogview_pipeline_default_params") }?;
        let logger = log::Logger::new(p.log_callback, p.log_user_data, p.log_level);
        let config = unsafe { optional_str(p.config_path, "config_path") }?.map(PathBuf::from);
        let model_dir = unsafe { optional_str(p.model_dir, "model_dir") }?.map(PathBuf::from);
        let style = unsafe { optional_str(p.style, "style") }?
            .map(|s| s.parse::<sdk::core::stage1::Style>().map_err(Fail::Sdk))
            .transpose()?;
        let device: Option<Device> = parse(unsafe { optional_str(p.device, "device") }?)?;
        let dtype: Option<DType> = parse(unsafe { optional_str(p.dtype, "dtype") }?)?;
        let options = sdk::OpenOptions {
            config,
            model_dir,
            style,
            low_memory: p.low_memory != 0,
            dtype,
            device,
            batch_size: (p.batch_size > 0).then_some(p.batch_size as usize),
        };
        let build = || -> Result<Pipeline, Error> {
            let cfg = options.config()?;
            Pipeline::from_settings(Settings::resolve(&cfg, true)?)
        };
        let pipeline = match &logger {
            Some(l) => l.scope(build),
            None => build(),
        }?;
        let handle = Box::new(cogview_pipeline {
            shared: Arc::new(Shared {
                pipeline,
                log: logger,
            }),
        });
        unsafe { *out = Box::into_raw(handle) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cogview_pipeline_free(pipeline: *mut cogview_pipeline) {
    if !pipeline.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            drop(unsafe { Box::from_raw(pipeline) })
        }));
    }
}

unsafe fn pipeline_ref<'a>(p: *const cogview_pipeline) -> Result<&'a cogview_pipeline, Fail> {
    if p.is_null() {
        Err(arg("`pipeline` is NULL"))
    } else {
        Ok(unsafe { &*p })
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_pipeline_geometry(
    pipeline: *const cogview_pipeline,
    low_side: *mut u32,
    high_side: *mut u32,
    image_side: *mut u32,
) -> *mut cogview_error {
    guard(|| {
        let p = unsafe { pipeline_ref(pipeline) }?;
        if low_side.is_null() || high_side.is_null() || image_side.is_null() {
            return Err(arg("an out-parameter of cogview_pipeline_geometry is NULL"));
        }
        let g = p.shared.pipeline.geometry();
        unsafe {
            *low_side = g.low as u32;
            *high_side = g.high as u32;
            *image_side = g.image_side() as u32;
        }
        Ok(())
    })
}

// ---- sessions ---------------------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cogview_session_params {
    pub struct_size: u32,
    pub progress_callback: cogview_progress_callback,
    pub progress_user_data: *mut c_void,
    pub log_callback: cogview_log_callback,
    pub log_user_data: *mut c_void,
    pub log_level: i32,
}

pub struct cogview_session {
    shared: Arc<Shared>,
    cancel: CancelToken,
    progress: cogview_progress_callback,
    progress_user_data: *mut c_void,
    log: Option<log::Logger>,
}

#[no_mangle]
pub extern "C" fn cogview_session_default_params() -> cogview_session_params {
    cogview_session_params {
        struct_size: std::mem::size_of::<cogview_session_params>() as u32,
        progress_callback: None,
        progress_user_data: std::ptr::null_mut(),
        log_callback: None,
        log_user_data: std::ptr::null_mut(),
        log_level: log::LEVEL_WARN,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_session_new(
    pipeline: *mut cogview_pipeline,
    params: *const cogview_session_params,
    out: *mut *mut cogview_session,
) -> *mut cogview_error {
    guard(|| {
        unsafe { out_ptr(out, "out") }?;
        let p = unsafe { pipeline_ref(pipeline) }?;
        let params = if params.is_null() {
            cogview_session_default_params()
        } else {
            unsafe { read_params(params, "params", "cogview_session_default_params") }?
        };
        let session = Box::new(cogview_session {
            shared: p.shared.clone(),
            cancel: CancelToken::new(),
            progress: params.progress_callback,
            progress_user_data: params.progress_user_data,
            log: log::Logger::new(params.log_callback, params.log_user_data, params.log_level),
        });
        unsafe { *out = Box::into_raw(session) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cogview_session_free(session: *mut cogview_session) {
    if !session.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(session) })));
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_session_cancel(session: *mut cogview_session) {
    if !session.is_null() {
        // Only the atomic flag is touched, so this is safe from any thread.
        let _ = catch_unwind(AssertUnwindSafe(|| unsafe { (*session).cancel.cancel() }));
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_session_reset_cancel(session: *mut cogview_session) {
    if !session.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| unsafe { (*session).cancel.reset() }));
    }
}

struct ProgressTarget {
    callback: unsafe extern "C" fn(*const c_char, u64, u64, *mut c_void) -> bool,
    user_data: *mut c_void,
    cancel: CancelToken,
}
// SAFETY: the callback is only called on the thread running the session's call (the pipeline
// reports progress from the calling thread), as the header states.
unsafe impl Send for ProgressTarget {}
unsafe impl Sync for ProgressTarget {}

impl ProgressTarget {
    fn report(&self, p: Progress) {
        let stage = CString::new(p.stage).unwrap_or_default();
        let go_on = unsafe {
            (self.callback)(
                stage.as_ptr(),
                p.step as u64,
                p.total as u64,
                self.user_data,
            )
        };
        if !go_on {
            self.cancel.cancel();
        }
    }
}

impl cogview_session {
    fn context(&self, seed: u64) -> RunContext {
        let progress = self.progress.map(|callback| {
            let target = ProgressTarget {
                callback,
                user_data: self.progress_user_data,
                cancel: self.cancel.clone(),
            };
            Arc::new(move |p: Progress| target.report(p)) as sdk::core::context::ProgressFn
        });
        RunContext {
            seed,
            cancel: self.cancel.clone(),
            progress,
        }
    }

    /// Runs `f` with the session's logger (else the pipeline's) in scope.
    fn run<T>(&self, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        self.cancel_check()?;
        match self.log.as_ref().or(self.shared.log.as_ref()) {
            Some(l) => l.scope(f),
            None => f(),
        }
    }

    fn cancel_check(&self) -> Result<(), Error> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

unsafe fn session_ref<'a>(s: *mut cogview_session) -> Result<&'a cogview_session, Fail> {
    if s.is_null() {
        Err(arg("`session` is NULL"))
    } else {
        Ok(unsafe { &*s })
    }
}

// ---- results ----------------------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cogview_grid_view {
    pub height: u32,
    pub width: u32,
    pub ids: *const u32,
    pub ids_len: usize,
}

impl cogview_grid_view {
    fn empty() -> Self {
        cogview_grid_view {
            height: 0,
            width: 0,
            ids: std::ptr::null(),
            ids_len: 0,
        }
    }
    fn of(g: &TokenGrid) -> Self {
        cogview_grid_view {
            height: g.height as u32,
            width: g.width as u32,
            ids: g.ids.as_ptr(),
            ids_len: g.ids.len(),
        }
    }
    unsafe fn read(&self, name: &str) -> Result<TokenGrid, Fail> {
        // u32 × u32 fits 64 bits; the limit keeps it addressable everywhere.
        let cells = self.height as u64 * self.width as u64;
        sdk::core::limits::GRID_CELLS.check(cells, name)?;
        let n = cells as usize;
        if n == 0 {
            return Err(arg(format!(
                "`{name}` is an empty {}x{} grid",
                self.height, self.width
            )));
        }
        if self.ids.is_null() {
            return Err(arg(format!("`{name}.ids` is NULL")));
        }
        if self.ids_len != n {
            return Err(arg(format!(
                "`{name}.ids_len` is {} but a {}x{} grid has {n} ids",
                self.ids_len, self.height, self.width
            )));
        }
        let ids = unsafe { std::slice::from_raw_parts(self.ids, n) }.to_vec();
        Ok(TokenGrid::new(
            self.height as usize,
            self.width as usize,
            ids,
        )?)
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cogview_image_view {
    pub width: u32,
    pub height: u32,
    pub rgb: *const u8,
    pub rgb_len: usize,
    pub seed: u64,
    pub low_res: cogview_grid_view,
    pub high_res: cogview_grid_view,
}

/// One result image and the grids it came from (an edit with an empty mask has none).
struct ResultImage {
    seed: u64,
    image: Image,
    low_res: Option<TokenGrid>,
    high_res: Option<TokenGrid>,
}

impl From<GeneratedImage> for ResultImage {
    fn from(g: GeneratedImage) -> Self {
        ResultImage {
            seed: g.seed,
            image: g.image,
            low_res: Some(g.low_res),
            high_res: g.high_res,
        }
    }
}

impl From<EditedImage> for ResultImage {
    fn from(e: EditedImage) -> Self {
        let (low_res, high_res) = match e.stages {
            Some(st) => (Some(st.low_res), st.high_res),
            None => (None, None),
        };
        ResultImage {
            seed: e.seed,
            image: e.image,
            low_res,
            high_res,
        }
    }
}

pub struct cogview_images {
    items: Vec<ResultImage>,
}

fn hand_out<T: Into<ResultImage>>(out: *mut *mut cogview_images, items: Vec<T>) {
    let items = items.into_iter().map(Into::into).collect();
    unsafe { *out = Box::into_raw(Box::new(cogview_images { items })) };
}

#[no_mangle]
pub unsafe extern "C" fn cogview_images_count(images: *const cogview_images) -> usize {
    if images.is_null() {
        0
    } else {
        unsafe { (*images).items.len() }
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_images_get(
    images: *const cogview_images,
    index: usize,
    out: *mut cogview_image_view,
) -> *mut cogview_error {
    guard(|| {
        if images.is_null() {
            return Err(arg("`images` is NULL"));
        }
        if out.is_null() {
            return Err(arg("`out` is NULL"));
        }
        let items = unsafe { &(*images).items };
        let g = items.get(index).ok_or_else(|| {
            arg(format!(
                "index {index} is out of range: there are {} image(s)",
                items.len()
            ))
        })?;
        unsafe {
            *out = cogview_image_view {
                width: g.image.width as u32,
                height: g.image.height as u32,
                rgb: g.image.pixels.as_ptr(),
                rgb_len: g.image.pixels.len(),
                seed: g.seed,
                low_res: g
                    .low_res
                    .as_ref()
                    .map_or(cogview_grid_view::empty(), cogview_grid_view::of),
                high_res: g
                    .high_res
                    .as_ref()
                    .map_or(cogview_grid_view::empty(), cogview_grid_view::of),
            }
        };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cogview_images_free(images: *mut cogview_images) {
    if !images.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(images) })));
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_image_save_png(
    image: *const cogview_image_view,
    path: *const c_char,
) -> *mut cogview_error {
    guard(|| {
        if image.is_null() {
            return Err(arg("`image` is NULL"));
        }
        let path = unsafe { required_str(path, "path") }?;
        let v = unsafe { *image };
        let n = rgb_bytes(v.width, v.height)?;
        if n == 0 || v.rgb.is_null() || v.rgb_len != n {
            return Err(arg(format!(
                "`image` is not a {}x{} RGB image (rgb_len {}, {} needed)",
                v.width, v.height, v.rgb_len, n
            )));
        }
        let pixels = unsafe { std::slice::from_raw_parts(v.rgb, n) }.to_vec();
        let img = Image::new(v.width as usize, v.height as usize, pixels)?;
        sdk::image::save_png(&img, path, &[])?;
        Ok(())
    })
}

// ---- generation ---------------------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cogview_generate_params {
    pub struct_size: u32,
    pub prompt: *const c_char,
    pub num_images: u32,
    pub seed: u64,
    pub only_first_stage: i32,
}

#[no_mangle]
pub extern "C" fn cogview_generate_default_params() -> cogview_generate_params {
    cogview_generate_params {
        struct_size: std::mem::size_of::<cogview_generate_params>() as u32,
        prompt: std::ptr::null(),
        num_images: 1,
        seed: 0,
        only_first_stage: 0,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_generate(
    session: *mut cogview_session,
    params: *const cogview_generate_params,
    out: *mut *mut cogview_images,
) -> *mut cogview_error {
    guard(|| {
        unsafe { out_ptr(out, "out") }?;
        let s = unsafe { session_ref(session) }?;
        let p = unsafe { read_params(params, "params", "cogview_generate_default_params") }?;
        let prompt = unsafe { required_str(p.prompt, "params.prompt") }?;
        if p.num_images == 0 {
            return Err(arg("`params.num_images` is 0; ask for at least one image"));
        }
        let ctx = s.context(p.seed);
        let items = s.run(|| {
            s.shared
                .pipeline
                .generate(prompt, p.num_images as usize, p.only_first_stage != 0, &ctx)
        })?;
        hand_out(out, items);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cogview_super_resolve(
    session: *mut cogview_session,
    prompt: *const c_char,
    grids: *const cogview_grid_view,
    count: usize,
    seed: u64,
    out: *mut *mut cogview_images,
) -> *mut cogview_error {
    guard(|| {
        unsafe { out_ptr(out, "out") }?;
        let s = unsafe { session_ref(session) }?;
        let prompt = unsafe { required_str(prompt, "prompt") }?;
        if count == 0 {
            return Err(arg("`count` is 0; give at least one grid"));
        }
        if grids.is_null() {
            return Err(arg("`grids` is NULL"));
        }
        let views = unsafe { std::slice::from_raw_parts(grids, count) };
        let low = views
            .iter()
            .enumerate()
            .map(|(i, v)| unsafe { v.read(&format!("grids[{i}]")) })
            .collect::<Result<Vec<_>, _>>()?;
        let seeds: Vec<u64> = (0..count as u64).map(|i| seed.wrapping_add(i)).collect();
        let ctx = s.context(seed);
        let items = s.run(|| s.shared.pipeline.super_resolve(prompt, low, &seeds, &ctx))?;
        hand_out(out, items);
        Ok(())
    })
}

// ---- editing and captions ----------------------------------------------------------------

/// A rectangle to regenerate: pixels (ends excluded) or fractions of the image's sides.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct cogview_rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
    pub fractional: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cogview_edit_params {
    pub struct_size: u32,
    pub prompt: *const c_char,
    pub rgb: *const u8,
    pub rgb_len: usize,
    pub width: u32,
    pub height: u32,
    pub mask: *const u8,
    pub mask_len: usize,
    pub rects: *const cogview_rect,
    pub rect_count: usize,
    pub num_images: u32,
    pub seed: u64,
}

const _: () = assert!(std::mem::size_of::<cogview_rect>() == 40);
const _: () = assert!(std::mem::size_of::<cogview_edit_params>() == 88);

#[no_mangle]
pub extern "C" fn cogview_edit_default_params() -> cogview_edit_params {
    cogview_edit_params {
        struct_size: std::mem::size_of::<cogview_edit_params>() as u32,
        prompt: std::ptr::null(),
        rgb: std::ptr::null(),
        rgb_len: 0,
        width: 0,
        height: 0,
        mask: std::ptr::null(),
        mask_len: 0,
        rects: std::ptr::null(),
        rect_count: 0,
        num_images: 1,
        seed: 0,
    }
}

/// The RGB image of `rgb`/`width`/`height`, checked.
unsafe fn read_rgb(
    rgb: *const u8,
    rgb_len: usize,
    width: u32,
    height: u32,
    name: &str,
) -> Result<Image, Fail> {
    let n = rgb_bytes(width, height)?;
    if n == 0 {
        return Err(arg(format!("the {name} image is empty ({width}x{height})")));
    }
    if rgb.is_null() {
        return Err(arg(format!("`{name}` is NULL")));
    }
    if rgb_len != n {
        return Err(arg(format!(
            "`{name}_len` is {rgb_len} but a {width}x{height} RGB image has {n} bytes"
        )));
    }
    let pixels = unsafe { std::slice::from_raw_parts(rgb, n) }.to_vec();
    Ok(Image::new(width as usize, height as usize, pixels)?)
}

/// The bytes of a `width × height` RGB image given through the API, checked against the image
/// pixel limit (cogview_core::limits::IMAGE_PIXELS) and for overflow.
fn rgb_bytes(width: u32, height: u32) -> Result<usize, Fail> {
    let pixels = width as u64 * height as u64;
    sdk::core::limits::IMAGE_PIXELS.check(pixels, "image")?;
    usize::try_from(pixels)
        .ok()
        .and_then(|p| p.checked_mul(3))
        .ok_or_else(|| arg(format!("a {width}x{height} image does not fit in memory")))
}

fn edit_mask(p: &cogview_edit_params) -> Result<EditMask, Fail> {
    let (w, h) = (p.width as usize, p.height as usize);
    rgb_bytes(p.width, p.height)?;
    if p.mask.is_null() && p.rects.is_null() {
        return Err(arg(
            "give `params.mask` (one byte per pixel, nonzero = regenerate) or `params.rects`",
        ));
    }
    let mut mask = if p.mask.is_null() {
        EditMask::empty(w, h)?
    } else {
        if p.mask_len != w * h {
            return Err(arg(format!(
                "`params.mask_len` is {} but the {w}x{h} image needs one byte per pixel ({})",
                p.mask_len,
                w * h
            )));
        }
        let bytes = unsafe { std::slice::from_raw_parts(p.mask, w * h) };
        EditMask::new(w, h, bytes.iter().map(|b| *b != 0).collect())?
    };
    if !p.rects.is_null() {
        let rects = unsafe { std::slice::from_raw_parts(p.rects, p.rect_count) };
        for (i, r) in rects.iter().enumerate() {
            let region = if r.fractional != 0 {
                Region::Fraction {
                    left: r.x0,
                    top: r.y0,
                    right: r.x1,
                    bottom: r.y1,
                }
            } else {
                let v = [r.x0, r.y0, r.x1, r.y1];
                if v.iter()
                    .any(|x| !(x.is_finite() && *x >= 0.0 && x.fract() == 0.0))
                {
                    return Err(arg(format!(
                        "`params.rects[{i}]` has pixel coordinates that are not whole numbers >= 0; set `fractional` for fractions"
                    )));
                }
                Region::Pixels {
                    left: r.x0 as usize,
                    top: r.y0 as usize,
                    right: r.x1 as usize,
                    bottom: r.y1 as usize,
                }
            };
            mask.add(region)?;
        }
    }
    Ok(mask)
}

#[no_mangle]
pub unsafe extern "C" fn cogview_edit(
    session: *mut cogview_session,
    params: *const cogview_edit_params,
    out: *mut *mut cogview_images,
) -> *mut cogview_error {
    guard(|| {
        unsafe { out_ptr(out, "out") }?;
        let s = unsafe { session_ref(session) }?;
        let p = unsafe { read_params(params, "params", "cogview_edit_default_params") }?;
        let prompt = unsafe { required_str(p.prompt, "params.prompt") }?;
        if p.num_images == 0 {
            return Err(arg("`params.num_images` is 0; ask for at least one image"));
        }
        let image = unsafe { read_rgb(p.rgb, p.rgb_len, p.width, p.height, "params.rgb") }?;
        let mask = edit_mask(&p)?;
        let ctx = s.context(p.seed);
        let items = s.run(|| {
            s.shared
                .pipeline
                .edit(&image, &mask, prompt, p.num_images as usize, &ctx)
        })?;
        hand_out(out, items);
        Ok(())
    })
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cogview_caption_score_params {
    pub struct_size: u32,
    pub rgb: *const u8,
    pub rgb_len: usize,
    pub width: u32,
    pub height: u32,
    pub caption: *const c_char,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct cogview_caption_params {
    pub struct_size: u32,
    pub rgb: *const u8,
    pub rgb_len: usize,
    pub width: u32,
    pub height: u32,
    pub max_tokens: u32,
    pub temperature: f32,
    pub top_k: u32,
    pub seed: u64,
}

const _: () = assert!(std::mem::size_of::<cogview_caption_score_params>() == 40);
const _: () = assert!(std::mem::size_of::<cogview_caption_params>() == 56);

#[no_mangle]
pub extern "C" fn cogview_caption_score_default_params() -> cogview_caption_score_params {
    cogview_caption_score_params {
        struct_size: std::mem::size_of::<cogview_caption_score_params>() as u32,
        rgb: std::ptr::null(),
        rgb_len: 0,
        width: 0,
        height: 0,
        caption: std::ptr::null(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_caption_score(
    session: *mut cogview_session,
    params: *const cogview_caption_score_params,
    score: *mut f64,
) -> *mut cogview_error {
    guard(|| {
        if score.is_null() {
            return Err(arg("`score` is NULL"));
        }
        let s = unsafe { session_ref(session) }?;
        let p = unsafe { read_params(params, "params", "cogview_caption_score_default_params") }?;
        let caption = unsafe { required_str(p.caption, "params.caption") }?;
        let image = unsafe { read_rgb(p.rgb, p.rgb_len, p.width, p.height, "params.rgb") }?;
        let v = s.run(|| {
            let grid = s.shared.pipeline.encode_image(&image)?;
            s.shared.pipeline.caption_score(&grid, caption)
        })?;
        unsafe { *score = v };
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn cogview_caption_default_params() -> cogview_caption_params {
    cogview_caption_params {
        struct_size: std::mem::size_of::<cogview_caption_params>() as u32,
        rgb: std::ptr::null(),
        rgb_len: 0,
        width: 0,
        height: 0,
        max_tokens: 32,
        temperature: 0.0,
        top_k: 40,
        seed: 0,
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_caption(
    session: *mut cogview_session,
    params: *const cogview_caption_params,
    out: *mut *mut c_char,
) -> *mut cogview_error {
    guard(|| {
        if out.is_null() {
            return Err(arg("`out` is NULL"));
        }
        let s = unsafe { session_ref(session) }?;
        let p = unsafe { read_params(params, "params", "cogview_caption_default_params") }?;
        let image = unsafe { read_rgb(p.rgb, p.rgb_len, p.width, p.height, "params.rgb") }?;
        if p.max_tokens == 0 {
            return Err(arg(
                "`params.max_tokens` is 0; give the longest caption, e.g. 32",
            ));
        }
        if !(p.temperature.is_finite() && p.temperature >= 0.0) {
            return Err(arg(format!(
                "`params.temperature` is {}; give 0 for the most likely caption or a positive temperature",
                p.temperature
            )));
        }
        let options = CaptionOptions {
            max_tokens: p.max_tokens as usize,
            sampling: (p.temperature > 0.0).then_some(TopKSampler {
                temperature: p.temperature,
                top_k: p.top_k as usize,
            }),
            seed: p.seed,
        };
        let ctx = s.context(p.seed);
        let written = s.run(|| s.shared.pipeline.caption(&image, &options, &ctx))?;
        let text = CString::new(written.text.trim().replace('\0', ""))
            .map_err(|e| Fail::from(Error::backend_source("", e)))?;
        unsafe { *out = text.into_raw() };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cogview_string_free(s: *mut c_char) {
    if !s.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { CString::from_raw(s) })));
    }
}

// ---- image tokens ------------------------------------------------------------------------

pub struct cogview_grid {
    grid: TokenGrid,
}

#[no_mangle]
pub unsafe extern "C" fn cogview_tokenize_image(
    session: *mut cogview_session,
    rgb: *const u8,
    rgb_len: usize,
    width: u32,
    height: u32,
    out: *mut *mut cogview_grid,
) -> *mut cogview_error {
    guard(|| {
        unsafe { out_ptr(out, "out") }?;
        let s = unsafe { session_ref(session) }?;
        let n = rgb_bytes(width, height)?;
        if n == 0 {
            return Err(arg(format!("the image is empty ({width}x{height})")));
        }
        if rgb.is_null() {
            return Err(arg("`rgb` is NULL"));
        }
        if rgb_len != n {
            return Err(arg(format!(
                "`rgb_len` is {rgb_len} but a {width}x{height} RGB image has {n} bytes"
            )));
        }
        let pixels = unsafe { std::slice::from_raw_parts(rgb, n) }.to_vec();
        let image = Image::new(width as usize, height as usize, pixels)?;
        let grid = s.run(|| s.shared.pipeline.encode_image(&image))?;
        unsafe { *out = Box::into_raw(Box::new(cogview_grid { grid })) };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn cogview_grid_get(grid: *const cogview_grid) -> cogview_grid_view {
    if grid.is_null() {
        cogview_grid_view::empty()
    } else {
        cogview_grid_view::of(unsafe { &(*grid).grid })
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_grid_free(grid: *mut cogview_grid) {
    if !grid.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(grid) })));
    }
}

#[no_mangle]
pub unsafe extern "C" fn cogview_detokenize(
    session: *mut cogview_session,
    grid: *const cogview_grid_view,
    out: *mut *mut cogview_images,
) -> *mut cogview_error {
    guard(|| {
        unsafe { out_ptr(out, "out") }?;
        let s = unsafe { session_ref(session) }?;
        if grid.is_null() {
            return Err(arg("`grid` is NULL"));
        }
        let g = unsafe { (*grid).read("grid") }?;
        let image = s.run(|| {
            s.shared
                .pipeline
                .image_tokenizer()?
                .decode(&g, Compression::X8)
        })?;
        hand_out(
            out,
            vec![GeneratedImage {
                index: 0,
                seed: 0,
                low_res: g,
                high_res: None,
                image,
                rerank: None,
            }],
        );
        Ok(())
    })
}
