//! The plugin ABI, major version 1: `#[repr(C)]` structs and function-pointer tables, mirrored
//! field by field by `include/cogview_plugin.h`. The Rust names are the C names in Rust's case:
//! `CogviewLmVtableV1` is `cogview_plugin_lm_vtable_v1`, `CogviewPluginV1` is
//! `cogview_plugin_descriptor_v1`, `CogviewError` is `cogview_plugin_error` ([`Versioned::NAME`]
//! holds each C name). The offsets are asserted at compile time here and with `_Static_assert` in
//! the header (64-bit targets only).
//!
//! Rules (see docs/plugins.md):
//! - Every struct starts with `struct_version` (the ABI minor version its writer was built with)
//!   and `struct_size` (`sizeof` as the writer saw it). Readers refuse a size below the v1.0 size
//!   and copy `min(struct_size, own size)` bytes into a zeroed struct, so fields a writer did not
//!   have read as 0 / NULL. Fields are only appended; anything else is a new major version with a
//!   new entry symbol (`cogview_plugin_v2`).
//! - Only plain C data crosses: integers, `float`, UTF-8 `pointer + length`, token ids, pixel
//!   buffers, TOML text. Errors are created by the host's `error_new` and freed by the host;
//!   handles are created and freed by the plugin; outputs the plugin allocates carry their own
//!   `release` (the Arrow C data interface's pattern).
//! - No flags are `bool`: flags are `u32`, yes/no results `i32`.

use cogview_core::ErrorCode;
use std::ffi::{c_char, c_void};
use std::marker::{PhantomData, PhantomPinned};

/// The major ABI version; it is also part of the entry symbol's name.
pub const ABI_MAJOR: u32 = 1;
/// The minor version: bumped when fields are appended. 1.1 appended `spec` and `forward` to
/// [`CogviewGridVtableV1`] (with [`CogviewGridSpecV1`] and [`CogviewGridInputV1`]): the host
/// assembles DSR's and ItersR's input and the plugin only runs the network.
pub const ABI_MINOR: u32 = 1;
/// The symbol every plugin exports:
/// `const cogview_plugin_descriptor_v1 *cogview_plugin_v1(void)`.
pub const ENTRY_SYMBOL: &str = "cogview_plugin_v1";

// Error codes carried by error objects: `COGVIEW_ERR_*` of include/cogview_error.h, the table the
// C API shares ([`cogview_core::ErrorCode`], where each is documented). A plugin returns only
// these (plugin ABI 1.0's, values 1-11); a host reads any other code as a plugin failure.
/// [`ErrorCode::InvalidInput`]; the subject is the field.
pub const ERR_INVALID_INPUT: i32 = ErrorCode::InvalidInput.value();
/// [`ErrorCode::TokenOutOfVocab`].
pub const ERR_TOKEN_OUT_OF_VOCAB: i32 = ErrorCode::TokenOutOfVocab.value();
/// [`ErrorCode::Io`]; the subject is the path.
pub const ERR_IO: i32 = ErrorCode::Io.value();
/// [`ErrorCode::InvalidWeights`]; the subject is the path.
pub const ERR_INVALID_WEIGHTS: i32 = ErrorCode::InvalidWeights.value();
/// [`ErrorCode::Config`]; the subject is the key in the options table.
pub const ERR_CONFIG: i32 = ErrorCode::Config.value();
/// [`ErrorCode::Backend`].
pub const ERR_BACKEND: i32 = ErrorCode::Backend.value();
/// [`ErrorCode::Cancelled`].
pub const ERR_CANCELLED: i32 = ErrorCode::Cancelled.value();
/// [`ErrorCode::Unsupported`].
pub const ERR_UNSUPPORTED: i32 = ErrorCode::Unsupported.value();
/// [`ErrorCode::Panic`].
pub const ERR_PANIC: i32 = ErrorCode::Panic.value();
/// [`ErrorCode::Abi`].
pub const ERR_ABI: i32 = ErrorCode::Abi.value();
/// [`ErrorCode::TextTooLong`].
pub const ERR_TEXT_TOO_LONG: i32 = ErrorCode::TextTooLong.value();

// Log levels.
pub const LOG_ERROR: i32 = 1;
pub const LOG_WARN: i32 = 2;
pub const LOG_INFO: i32 = 3;
pub const LOG_DEBUG: i32 = 4;
pub const LOG_TRACE: i32 = 5;

// Devices.
pub const DEVICE_CPU: i32 = 0;
pub const DEVICE_CUDA: i32 = 1;

// Dtypes.
pub const DTYPE_F32: i32 = 0;
pub const DTYPE_F16: i32 = 1;
pub const DTYPE_BF16: i32 = 2;

// `CogviewPluginV1::model_kinds` bits.
pub const KIND_LM: u32 = 1;
pub const KIND_GRID: u32 = 2;
pub const KIND_IMAGE_TOKENIZER: u32 = 4;

// `CogviewGridSpecV1::kind` and `CogviewGridInputV1::kind` (ABI 1.1).
pub const GRID_DSR: u32 = 1;
pub const GRID_ITERSR: u32 = 2;

macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident),* $(,)?) => {$(
        $(#[$m])*
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}

opaque!(
    /// An error object: created by the host's `error_new`, owned and freed by the host.
    CogviewError,
    /// A loaded CogLM, owned by the plugin.
    CogviewLm,
    /// A CogLM session (KV cache), owned by the plugin.
    CogviewLmSession,
    /// A loaded DSR or ItersR model, owned by the plugin.
    CogviewGridModel,
    /// A loaded VQ image tokenizer, owned by the plugin.
    CogviewImageTokenizer,
);

pub type LogFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    level: i32,
    target: *const c_char,
    target_len: usize,
    msg: *const c_char,
    msg_len: usize,
);
pub type ErrorNewFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    code: i32,
    subject: *const c_char,
    subject_len: usize,
    msg: *const c_char,
    msg_len: usize,
) -> *mut CogviewError;

/// What the host gives the plugin: its logger and its error constructor. Valid for the rest of
/// the process; the plugin may keep the pointer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewHostV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    pub user_data: *mut c_void,
    /// The finest level the host records (1 error … 5 trace); the plugin skips finer messages.
    pub max_log_level: i32,
    pub reserved0: u32,
    /// Thread-safe; may be called from any plugin thread.
    pub log: Option<LogFn>,
    /// Never returns NULL.
    pub error_new: Option<ErrorNewFn>,
}

pub type ProgressFn = unsafe extern "C" fn(
    user_data: *mut c_void,
    stage: *const c_char,
    stage_len: usize,
    step: u64,
    total: u64,
);
pub type IsCancelledFn = unsafe extern "C" fn(user_data: *mut c_void) -> i32;

/// Progress and cancellation for one call; borrowed for that call only and never kept.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewHooksV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    pub user_data: *mut c_void,
    /// May be NULL.
    pub progress: Option<ProgressFn>,
    /// May be NULL; polled between steps, nonzero = stop and return `ERR_CANCELLED`.
    pub is_cancelled: Option<IsCancelledFn>,
}

/// How to load one model.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewLoadParamsV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    /// The checkpoint, UTF-8.
    pub path: *const c_char,
    pub path_len: usize,
    /// `DEVICE_CPU` or `DEVICE_CUDA`.
    pub device_kind: i32,
    pub device_index: i32,
    /// `DTYPE_*`.
    pub dtype: i32,
    /// Threads for the plugin's own pool; 0 = its default.
    pub num_threads: u32,
    /// The stage's `options` table as TOML text; may be NULL when the length is 0.
    pub options_toml: *const c_char,
    pub options_toml_len: usize,
    /// May be NULL.
    pub hooks: *const CogviewHooksV1,
}

pub type FloatsReleaseFn = unsafe extern "C" fn(floats: *mut CogviewFloatsV1);

/// A `rows × cols` f32 matrix allocated by the plugin. The host copies what it needs and then calls
/// `release` exactly once (which may be NULL when nothing was allocated).
#[repr(C)]
pub struct CogviewFloatsV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    pub rows: u64,
    pub cols: u64,
    pub data: *const f32,
    pub release: Option<FloatsReleaseFn>,
    pub private_data: *mut c_void,
}

/// What the host needs to know about a loaded CogLM.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewLmSpecV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    pub vocab_size: u64,
    pub max_positions: u64,
    pub image_vocab_size: u64,
    pub start_of_image_id: u32,
    pub reserved0: u32,
}

/// One forward call: `n` new tokens for each of the session's rows (see `cogview_core::lm::LmInput`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewLmInputV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    /// `[batch, n]`, row-major.
    pub tokens: *const u32,
    pub tokens_len: usize,
    /// `[n]`.
    pub positions: *const u32,
    pub positions_len: usize,
    /// `[n, cached + n]` additive attention bias; `-inf` = masked.
    pub bias: *const f32,
    pub bias_len: usize,
    /// 0: logits of the last position of each row (`[batch, vocab]`); 1: of every new position
    /// (`[batch * n, vocab]`).
    pub logits_all: u32,
    pub reserved0: u32,
    /// Logits over the first `logits_vocab` ids.
    pub logits_vocab: u64,
}

/// A row-major grid of token ids.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewTokenGridV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    pub height: u64,
    pub width: u64,
    pub ids: *const u32,
    pub ids_len: usize,
}

/// An 8-bit RGB image, row-major, `width * height * 3` bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewImageV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    pub width: u64,
    pub height: u64,
    pub rgb: *const u8,
    pub rgb_len: usize,
}

pub type LmLoadFn = unsafe extern "C" fn(
    params: *const CogviewLoadParamsV1,
    out: *mut *mut CogviewLm,
) -> *mut CogviewError;
pub type LmFreeFn = unsafe extern "C" fn(lm: *mut CogviewLm);
pub type LmSpecFn =
    unsafe extern "C" fn(lm: *const CogviewLm, out: *mut CogviewLmSpecV1) -> *mut CogviewError;
pub type LmSessionNewFn = unsafe extern "C" fn(
    lm: *const CogviewLm,
    batch: u64,
    capacity: u64,
    out: *mut *mut CogviewLmSession,
) -> *mut CogviewError;
pub type LmSessionFreeFn = unsafe extern "C" fn(session: *mut CogviewLmSession);
pub type LmForwardFn = unsafe extern "C" fn(
    session: *mut CogviewLmSession,
    input: *const CogviewLmInputV1,
    out: *mut CogviewFloatsV1,
) -> *mut CogviewError;

/// CogLM: load, describe, open a KV-cache session, run forward calls.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewLmVtableV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    pub load: Option<LmLoadFn>,
    /// Accepts NULL. Sessions keep their model alive, so the order of frees does not matter.
    pub free: Option<LmFreeFn>,
    pub spec: Option<LmSpecFn>,
    pub session_new: Option<LmSessionNewFn>,
    /// Accepts NULL.
    pub session_free: Option<LmSessionFreeFn>,
    /// One thread at a time per session.
    pub forward: Option<LmForwardFn>,
}

/// What the host needs to know about a loaded DSR or ItersR model to assemble its input
/// (ABI 1.1; see `cogview_core::sr::SrSpec`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewGridSpecV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    /// `GRID_DSR` or `GRID_ITERSR`.
    pub kind: u32,
    /// `<start_of_image>`: DSR's high-resolution placeholder and ItersR's mask id.
    pub start_of_image_id: u32,
    /// Text slots at the start of level 0 (DSR 96, ItersR 16).
    pub text_slots: u64,
    /// DSR: the low-resolution grid's side (20); ItersR: 0.
    pub low_side: u64,
    /// The high-resolution grid's side (60).
    pub high_side: u64,
    /// The own window is `(2k − 1) × k`.
    pub kernel_size: u64,
    /// DSR's cross-resolution window is `k2 × k2`.
    pub kernel_size2: u64,
    /// Rows of the word embedding.
    pub vocab_size: u64,
    /// Logits cover ids `0..image_vocab_size`.
    pub image_vocab_size: u64,
    /// Rows of the position embedding.
    pub max_positions: u64,
}

/// One DSR or ItersR pass as the host assembled it (ABI 1.1; see `cogview_core::sr::SrInput`).
/// Level 0 attends densely with `bias0`. Each level-1 cell `(y, x)` attends, under one softmax, to
/// its own centred `own_kh × own_kw` window of level 1 and to level-0 keys: DSR (`kind`
/// `GRID_DSR`) the `cross_kh × cross_kw` window centred at `(y / cross_ratio_h, x / cross_ratio_w)`
/// of the `low_side × low_side` grid stored in level-0 rows `low_offset..`; ItersR (`GRID_ITERSR`)
/// every level-0 row whose `visible` flag is nonzero. Window slots outside a grid get no weight.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewGridInputV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    /// `GRID_DSR` or `GRID_ITERSR`: which level-0 keys level 1 sees.
    pub kind: u32,
    pub reserved0: u32,
    /// Level 0, `[n0]`: the left-padded text, then DSR's low-resolution grid.
    pub tokens0: *const u32,
    pub tokens0_len: usize,
    /// `[n0]` position ids of level 0.
    pub positions0: *const u32,
    pub positions0_len: usize,
    /// `[n0, n0]` additive attention bias of level 0; `-inf` = masked.
    pub bias0: *const f32,
    pub bias0_len: usize,
    /// Level 1, `[high_side²]`: the high-resolution inputs (positions `0..` of the extra position
    /// embedding).
    pub tokens1: *const u32,
    pub tokens1_len: usize,
    pub high_side: u64,
    /// Each level-1 cell's window over its own grid.
    pub own_kh: u32,
    pub own_kw: u32,
    /// DSR: the first level-0 row of the low-resolution grid, and its side (0 for ItersR).
    pub low_offset: u64,
    pub low_side: u64,
    /// DSR: the window over the low-resolution grid, and the grid ratio (high / low) per axis.
    pub cross_kh: u32,
    pub cross_kw: u32,
    pub cross_ratio_h: u32,
    pub cross_ratio_w: u32,
    /// ItersR: `[n0]` flags, nonzero = level 1 sees this level-0 row (NULL for DSR).
    pub visible: *const u32,
    pub visible_len: usize,
}

pub type GridLoadFn = unsafe extern "C" fn(
    params: *const CogviewLoadParamsV1,
    out: *mut *mut CogviewGridModel,
) -> *mut CogviewError;
pub type GridFreeFn = unsafe extern "C" fn(model: *mut CogviewGridModel);
/// ABI 1.0's call: the plugin assembles the input from the text and the grid itself.
pub type GridPredictFn = unsafe extern "C" fn(
    model: *const CogviewGridModel,
    text: *const u32,
    text_len: usize,
    grid: *const CogviewTokenGridV1,
    out: *mut CogviewFloatsV1,
) -> *mut CogviewError;
pub type GridReleaseFn = unsafe extern "C" fn(model: *const CogviewGridModel);
pub type GridSpecFn = unsafe extern "C" fn(
    model: *const CogviewGridModel,
    out: *mut CogviewGridSpecV1,
) -> *mut CogviewError;
pub type GridForwardFn = unsafe extern "C" fn(
    model: *const CogviewGridModel,
    input: *const CogviewGridInputV1,
    out: *mut CogviewFloatsV1,
) -> *mut CogviewError;

/// DSR / ItersR: logits over the image vocabulary for every cell of the output grid.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewGridVtableV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    pub load: Option<GridLoadFn>,
    pub free: Option<GridFreeFn>,
    /// ABI 1.0's entry, which assembles the input in the plugin. A 1.1 host calls `spec` and
    /// `forward` instead; a 1.1 plugin may leave it NULL (then 1.0 hosts cannot use its grid
    /// models).
    pub predict: Option<GridPredictFn>,
    /// May be NULL: "drop the weights until the next predict" (low-memory pipelines).
    pub release: Option<GridReleaseFn>,
    /// ABI 1.1, required by 1.1 hosts: the model's geometry, read once after `load`.
    pub spec: Option<GridSpecFn>,
    /// ABI 1.1, required by 1.1 hosts: run the network on the input the host assembled.
    pub forward: Option<GridForwardFn>,
}

pub type ImageTokenizerLoadFn = unsafe extern "C" fn(
    params: *const CogviewLoadParamsV1,
    out: *mut *mut CogviewImageTokenizer,
) -> *mut CogviewError;
pub type ImageTokenizerFreeFn = unsafe extern "C" fn(model: *mut CogviewImageTokenizer);
/// Writes `(height / factor) * (width / factor)` ids; `ids_len` must be exactly that.
pub type ImageEncodeFn = unsafe extern "C" fn(
    model: *const CogviewImageTokenizer,
    image: *const CogviewImageV1,
    factor: u32,
    ids: *mut u32,
    ids_len: usize,
) -> *mut CogviewError;
/// Writes `(height * factor) * (width * factor) * 3` bytes; `rgb_len` must be exactly that.
pub type ImageDecodeFn = unsafe extern "C" fn(
    model: *const CogviewImageTokenizer,
    grid: *const CogviewTokenGridV1,
    factor: u32,
    rgb: *mut u8,
    rgb_len: usize,
) -> *mut CogviewError;

/// The VQ image tokenizer: pixels ↔ token grids at a compression factor of 4, 8 or 16.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewImageTokenizerVtableV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    pub load: Option<ImageTokenizerLoadFn>,
    pub free: Option<ImageTokenizerFreeFn>,
    pub encode: Option<ImageEncodeFn>,
    pub decode: Option<ImageDecodeFn>,
}

pub type ScoreFn = unsafe extern "C" fn(
    host: *const CogviewHostV1,
    device_kind: i32,
    device_index: i32,
    why_not: *mut *mut CogviewError,
) -> i32;
pub type InitFn = unsafe extern "C" fn(host: *const CogviewHostV1) -> *mut CogviewError;

/// The descriptor `cogview_plugin_v1()` returns: static, never freed.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CogviewPluginV1 {
    pub struct_version: u32,
    pub struct_size: u32,
    /// Must equal 1, the major version in the entry symbol's name.
    pub abi_major: u32,
    /// `KIND_*` bits; each set bit has its vtable below.
    pub model_kinds: u32,
    /// The backend name stages select (`"tch"`, `"candle-cuda"`); NUL-terminated, static.
    pub name: *const c_char,
    pub version: *const c_char,
    /// Library versions, CUDA, how it was built.
    pub build_info: *const c_char,
    /// Cheap, loads nothing: > 0 = usable here (higher is preferred); <= 0 = not usable, with the
    /// reason in `*why_not` when the plugin gives one. May be called before `init`.
    pub score: Option<ScoreFn>,
    /// Called once before any load; the plugin keeps `host`.
    pub init: Option<InitFn>,
    pub lm: *const CogviewLmVtableV1,
    pub grid: *const CogviewGridVtableV1,
    pub image_tokenizer: *const CogviewImageTokenizerVtableV1,
}

pub type EntryFn = unsafe extern "C" fn() -> *const CogviewPluginV1;

// ---- the v1.1 layout, checked at compile time (the header checks the same numbers) ----------
macro_rules! layout {
    ($t:ty, $size:expr, $($f:ident = $o:expr),*) => {
        const _: () = assert!(std::mem::size_of::<$t>() == $size);
        $(const _: () = assert!(std::mem::offset_of!($t, $f) == $o);)*
    };
}
layout!(
    CogviewHostV1,
    40,
    struct_size = 4,
    user_data = 8,
    max_log_level = 16,
    log = 24,
    error_new = 32
);
layout!(
    CogviewHooksV1,
    32,
    user_data = 8,
    progress = 16,
    is_cancelled = 24
);
layout!(
    CogviewLoadParamsV1,
    64,
    path = 8,
    path_len = 16,
    device_kind = 24,
    device_index = 28,
    dtype = 32,
    num_threads = 36,
    options_toml = 40,
    options_toml_len = 48,
    hooks = 56
);
layout!(
    CogviewFloatsV1,
    48,
    rows = 8,
    cols = 16,
    data = 24,
    release = 32,
    private_data = 40
);
layout!(
    CogviewLmSpecV1,
    40,
    vocab_size = 8,
    max_positions = 16,
    image_vocab_size = 24,
    start_of_image_id = 32
);
layout!(
    CogviewLmInputV1,
    72,
    tokens = 8,
    tokens_len = 16,
    positions = 24,
    positions_len = 32,
    bias = 40,
    bias_len = 48,
    logits_all = 56,
    logits_vocab = 64
);
layout!(
    CogviewTokenGridV1,
    40,
    height = 8,
    width = 16,
    ids = 24,
    ids_len = 32
);
layout!(
    CogviewImageV1,
    40,
    width = 8,
    height = 16,
    rgb = 24,
    rgb_len = 32
);
layout!(
    CogviewLmVtableV1,
    56,
    load = 8,
    free = 16,
    spec = 24,
    session_new = 32,
    session_free = 40,
    forward = 48
);
layout!(
    CogviewGridVtableV1,
    56,
    load = 8,
    free = 16,
    predict = 24,
    release = 32,
    spec = 40,
    forward = 48
);
layout!(
    CogviewGridSpecV1,
    80,
    kind = 8,
    start_of_image_id = 12,
    text_slots = 16,
    low_side = 24,
    high_side = 32,
    kernel_size = 40,
    kernel_size2 = 48,
    vocab_size = 56,
    image_vocab_size = 64,
    max_positions = 72
);
layout!(
    CogviewGridInputV1,
    144,
    kind = 8,
    tokens0 = 16,
    tokens0_len = 24,
    positions0 = 32,
    positions0_len = 40,
    bias0 = 48,
    bias0_len = 56,
    tokens1 = 64,
    tokens1_len = 72,
    high_side = 80,
    own_kh = 88,
    own_kw = 92,
    low_offset = 96,
    low_side = 104,
    cross_kh = 112,
    cross_kw = 116,
    cross_ratio_h = 120,
    cross_ratio_w = 124,
    visible = 128,
    visible_len = 136
);
layout!(
    CogviewImageTokenizerVtableV1,
    40,
    load = 8,
    free = 16,
    encode = 24,
    decode = 32
);
layout!(
    CogviewPluginV1,
    80,
    abi_major = 8,
    model_kinds = 12,
    name = 16,
    version = 24,
    build_info = 32,
    score = 40,
    init = 48,
    lm = 56,
    grid = 64,
    image_tokenizer = 72
);

/// A struct that starts with the version header and for which all-zero bytes are a valid value
/// (every field an integer, a raw pointer or an `Option` of a function pointer).
///
/// # Safety
/// Implement only for such `#[repr(C)]` structs.
pub unsafe trait Versioned: Sized {
    /// `sizeof` in the first ABI version that had the struct (v1.0 for most): the smallest
    /// `struct_size` a reader accepts.
    const V1_SIZE: usize;
    /// The struct's name in include/cogview_plugin.h (for messages to plugin authors).
    const NAME: &'static str;

    /// A zeroed value with this build's version and size.
    fn new_zeroed() -> Self {
        // SAFETY: all-zero is valid for implementors (trait contract).
        let mut v: Self = unsafe { std::mem::zeroed() };
        let header = &mut v as *mut Self as *mut u32;
        // SAFETY: every implementor starts with two u32s.
        unsafe {
            *header = ABI_MINOR;
            *header.add(1) = std::mem::size_of::<Self>() as u32;
        }
        v
    }
}

macro_rules! versioned {
    ($($t:ty $(= $first:expr)? => $c:literal),* $(,)?) => {$(
        // SAFETY: each is #[repr(C)], starts with the header, and is valid all-zero.
        unsafe impl Versioned for $t {
            const V1_SIZE: usize = versioned!(@size $t $(, $first)?);
            const NAME: &'static str = $c;
        }
    )*};
    (@size $t:ty) => { std::mem::size_of::<$t>() };
    (@size $t:ty, $first:expr) => { $first };
}
versioned!(
    CogviewHostV1 => "cogview_plugin_host_v1",
    CogviewHooksV1 => "cogview_plugin_hooks_v1",
    CogviewLoadParamsV1 => "cogview_plugin_load_params_v1",
    CogviewFloatsV1 => "cogview_plugin_floats_v1",
    CogviewLmSpecV1 => "cogview_plugin_lm_spec_v1",
    CogviewLmInputV1 => "cogview_plugin_lm_input_v1",
    CogviewTokenGridV1 => "cogview_plugin_token_grid_v1",
    CogviewImageV1 => "cogview_plugin_image_v1",
    CogviewLmVtableV1 => "cogview_plugin_lm_vtable_v1",
    // v1.0 ended after `release`; `spec` and `forward` came in v1.1.
    CogviewGridVtableV1 = 40 => "cogview_plugin_grid_vtable_v1",
    CogviewGridSpecV1 => "cogview_plugin_grid_spec_v1",
    CogviewGridInputV1 => "cogview_plugin_grid_input_v1",
    CogviewImageTokenizerVtableV1 => "cogview_plugin_image_tokenizer_vtable_v1",
    CogviewPluginV1 => "cogview_plugin_descriptor_v1",
);

/// The size of [`CogviewGridVtableV1`] up to and including `forward`: a vtable at least this big
/// (ABI ≥ 1.1) may have `spec` and `forward`.
pub const GRID_VTABLE_V1_1_SIZE: usize = 56;

/// Why a versioned struct was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    Null,
    TooSmall { found: u32, needed: usize },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Null => write!(f, "is NULL"),
            ReadError::TooSmall { found, needed } => write!(
                f,
                "has struct_size {found} but ABI v{ABI_MAJOR}.0 needs at least {needed} bytes"
            ),
        }
    }
}

/// Reads a versioned struct written by the other side: refuses NULL and sizes below v1.0, copies
/// `min(struct_size, size_of::<T>())` bytes into a zeroed `T` (newer trailing fields are ignored,
/// missing ones read as zero).
///
/// # Safety
/// `ptr`, when not NULL, must point to at least `struct_size` readable bytes.
pub unsafe fn read_versioned<T: Versioned>(ptr: *const T) -> Result<T, ReadError> {
    if ptr.is_null() {
        return Err(ReadError::Null);
    }
    let size = unsafe { std::ptr::read_unaligned((ptr as *const u32).add(1)) };
    if (size as usize) < T::V1_SIZE {
        return Err(ReadError::TooSmall {
            found: size,
            needed: T::V1_SIZE,
        });
    }
    let mut out: T = unsafe { std::mem::zeroed() };
    let n = (size as usize).min(std::mem::size_of::<T>());
    unsafe { std::ptr::copy_nonoverlapping(ptr as *const u8, &mut out as *mut T as *mut u8, n) };
    Ok(out)
}

/// Writes `value` into a struct the other side allocated, no further than its `struct_size`
/// (the header itself is left as the caller wrote it).
///
/// # Safety
/// `dst` must be valid for writes of its own `struct_size` bytes.
pub unsafe fn write_versioned<T: Versioned>(dst: *mut T, value: &T) -> Result<(), ReadError> {
    if dst.is_null() {
        return Err(ReadError::Null);
    }
    let size = unsafe { std::ptr::read_unaligned((dst as *const u32).add(1)) } as usize;
    if size < T::V1_SIZE {
        return Err(ReadError::TooSmall {
            found: size as u32,
            needed: T::V1_SIZE,
        });
    }
    let n = size.min(std::mem::size_of::<T>());
    if n > 8 {
        unsafe {
            std::ptr::copy_nonoverlapping(
                (value as *const T as *const u8).add(8),
                (dst as *mut u8).add(8),
                n - 8,
            )
        };
    }
    Ok(())
}

/// A slice from a C pointer and length: `Ok(&[])` for length 0 whatever the pointer (a NULL
/// pointer may not reach `slice::from_raw_parts`); `Err` for NULL with a nonzero length.
///
/// # Safety
/// When `len > 0`, `ptr` must point to `len` valid, initialised elements that outlive `'a`.
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], ReadError> {
    if len == 0 {
        Ok(&[])
    } else if ptr.is_null() {
        Err(ReadError::Null)
    } else {
        Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
    }
}

/// A UTF-8 string from a C pointer and length (see [`slice`]).
///
/// # Safety
/// As for [`slice`].
pub unsafe fn str_from<'a>(ptr: *const c_char, len: usize) -> Result<&'a str, String> {
    let bytes = unsafe { slice(ptr as *const u8, len) }.map_err(|e| e.to_string())?;
    std::str::from_utf8(bytes).map_err(|e| format!("is not UTF-8: {e}"))
}
