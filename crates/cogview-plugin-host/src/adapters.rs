//! A plugin as the core's traits: [`PluginBackend`] loads models whose handles are wrapped in
//! [`PluginLm`], [`PluginGridPredictor`] and [`PluginImageTokenizer`]. The host validates every
//! input with the core's own checks before a call, and every output's size after it.

use crate::callbacks::{check, host_struct, take_error};
use crate::Plugin;
use cogview_core::backend::{Availability, Backend, LoadRequest, ModelKind};
use cogview_core::lm::{
    validate_input, AutoregressiveLm, LmInput, LmSession, LmSpec, Logits, LogitsRequest,
};
use cogview_core::sr::{GridPredictor, SrInput, SrSpec};
use cogview_core::{Compression, DType, Device, Error, Image, ImageTokenizer, Result, TokenGrid};
use cogview_plugin_abi::ffi::*;
use std::ffi::{c_char, c_void};
use std::panic::catch_unwind;
use std::path::Path;
use std::sync::Arc;

/// A plugin as a backend. (Here rather than beside [`Plugin`]'s other methods so that the
/// plugin's file does not depend on its adapters.)
impl Plugin {
    /// Initialises the plugin (once) and returns it as a backend.
    pub fn backend(&'static self) -> Result<Arc<dyn Backend>> {
        let r = self.init.get_or_init(|| {
            let err = unsafe { (self.descriptor.init.expect("checked at load"))(host_struct()) };
            match unsafe { take_error(err) } {
                None => Ok(()),
                Some((_, _, m)) => Err(m),
            }
        });
        match r {
            Ok(()) => Ok(Arc::new(PluginBackend { plugin: self })),
            Err(m) => Err(Error::plugin(&self.name, format!("init failed: {m}"))),
        }
    }

    /// The backend after checking that it can run on `device`; the error names the backend, the
    /// device and the plugin's reason.
    pub fn backend_for(&'static self, device: Device) -> Result<Arc<dyn Backend>> {
        match self.availability(device) {
            Availability::Usable { .. } => self.backend(),
            Availability::Unusable { reason } => Err(Error::plugin(
                &self.name,
                format!("cannot run on {device} here: {reason}"),
            )),
        }
    }
}

pub(crate) struct PluginBackend {
    pub plugin: &'static Plugin,
}

fn dtype_arg(d: DType) -> i32 {
    match d {
        DType::F32 => DTYPE_F32,
        DType::F16 => DTYPE_F16,
        DType::Bf16 => DTYPE_BF16,
    }
}

unsafe extern "C" fn hook_progress(
    user_data: *mut c_void,
    stage: *const c_char,
    stage_len: usize,
    step: u64,
    total: u64,
) {
    let _ = catch_unwind(|| {
        let request = unsafe { &*(user_data as *const LoadRequest) };
        let _ = (stage, stage_len);
        request.report(step as usize, total as usize);
    });
}

unsafe extern "C" fn hook_is_cancelled(user_data: *mut c_void) -> i32 {
    catch_unwind(|| {
        let request = unsafe { &*(user_data as *const LoadRequest) };
        request.cancel.is_cancelled() as i32
    })
    .unwrap_or(1)
}

impl PluginBackend {
    fn name(&self) -> &str {
        self.plugin.name()
    }

    /// Calls a plugin `load` with the request's path, device, dtype, options and hooks.
    fn load<H>(
        &self,
        path: &Path,
        request: &LoadRequest,
        kind: ModelKind,
        load: unsafe extern "C" fn(*const CogviewLoadParamsV1, *mut *mut H) -> *mut CogviewError,
    ) -> Result<*mut H> {
        let path_str = path.to_str().ok_or_else(|| {
            Error::invalid_input(
                "path",
                format!("{} is not valid UTF-8, which plugins need", path.display()),
            )
        })?;
        let (device_kind, device_index) = crate::device_args(request.device);
        let mut hooks = CogviewHooksV1::new_zeroed();
        hooks.user_data = request as *const LoadRequest as *mut c_void;
        hooks.progress = Some(hook_progress);
        hooks.is_cancelled = Some(hook_is_cancelled);
        let mut params = CogviewLoadParamsV1::new_zeroed();
        params.path = path_str.as_ptr() as *const c_char;
        params.path_len = path_str.len();
        params.device_kind = device_kind;
        params.device_index = device_index;
        params.dtype = dtype_arg(request.dtype);
        params.num_threads = request.num_threads.min(u32::MAX as usize) as u32;
        params.options_toml = request.options_toml.as_ptr() as *const c_char;
        params.options_toml_len = request.options_toml.len();
        params.hooks = &hooks;
        let _span =
            tracing::info_span!("plugin_load", plugin = self.name(), kind = ?kind).entered();
        let mut out: *mut H = std::ptr::null_mut();
        unsafe { check(self.name(), load(&params, &mut out)) }?;
        if out.is_null() {
            return Err(Error::plugin(
                self.name(),
                "load reported success but returned no handle",
            ));
        }
        Ok(out)
    }

    fn unsupported(&self, kind: ModelKind) -> Error {
        Error::plugin(
            self.name(),
            format!("does not provide a {}", kind.describe()),
        )
    }
}

impl Backend for PluginBackend {
    fn name(&self) -> &str {
        self.plugin.name()
    }

    fn describe(&self) -> String {
        format!(
            "plugin {} {} ({}) from {}",
            self.plugin.name(),
            self.plugin.version(),
            self.plugin.build_info(),
            self.plugin.origin().display()
        )
    }

    fn availability(&self, device: Device) -> Availability {
        self.plugin.availability(device)
    }

    fn supports(&self, kind: ModelKind) -> bool {
        match kind {
            ModelKind::Lm => self.plugin.lm.is_some(),
            ModelKind::GridPredictor => self.plugin.grid.is_some(),
            ModelKind::ImageTokenizer => self.plugin.image_tokenizer.is_some(),
            // A kind newer than plugin ABI 1.0 has no vtable here.
            _ => false,
        }
    }

    fn load_lm(&self, path: &Path, request: &LoadRequest) -> Result<Arc<dyn AutoregressiveLm>> {
        let vt = self
            .plugin
            .lm
            .ok_or_else(|| self.unsupported(ModelKind::Lm))?;
        let handle = self.load(
            path,
            request,
            ModelKind::Lm,
            vt.load.expect("checked at load"),
        )?;
        let mut lm = PluginLm {
            plugin: self.plugin,
            vt,
            handle,
            spec: LmSpec {
                vocab_size: 0,
                max_positions: 0,
                image_vocab_size: 0,
                start_of_image_id: 0,
            },
        };
        let mut spec = CogviewLmSpecV1::new_zeroed();
        unsafe { check(self.name(), (vt.spec.expect("checked"))(handle, &mut spec)) }?;
        if spec.vocab_size == 0
            || spec.image_vocab_size > spec.vocab_size
            || spec.max_positions == 0
        {
            return Err(Error::plugin(
                self.name(),
                format!(
                    "its CogLM spec is inconsistent: vocabulary {}, image vocabulary {}, positions {}",
                    spec.vocab_size, spec.image_vocab_size, spec.max_positions
                ),
            ));
        }
        lm.spec = LmSpec {
            vocab_size: spec.vocab_size as usize,
            max_positions: spec.max_positions as usize,
            image_vocab_size: spec.image_vocab_size as usize,
            start_of_image_id: spec.start_of_image_id,
        };
        Ok(Arc::new(lm))
    }

    fn load_grid_predictor(
        &self,
        path: &Path,
        request: &LoadRequest,
    ) -> Result<Arc<dyn GridPredictor>> {
        let vt = self
            .plugin
            .grid
            .ok_or_else(|| self.unsupported(ModelKind::GridPredictor))?;
        let (Some(spec_fn), Some(_)) = (vt.spec, vt.forward) else {
            return Err(Error::plugin(
                self.name(),
                format!(
                    "its DSR/ItersR vtable is from plugin ABI 1.{} (struct_size {}) and lacks spec() \
                     and forward(): since ABI 1.1 the host assembles these models' input and the \
                     plugin runs the network; rebuild the plugin against cogview_plugin.h 1.{ABI_MINOR}",
                    vt.struct_version, vt.struct_size
                ),
            ));
        };
        let handle = self.load(
            path,
            request,
            ModelKind::GridPredictor,
            vt.load.expect("checked at load"),
        )?;
        // From here on the handle is freed on every path (PluginGridPredictor's Drop).
        let mut model = PluginGridPredictor {
            plugin: self.plugin,
            vt,
            handle,
            spec: None,
        };
        let mut raw = CogviewGridSpecV1::new_zeroed();
        unsafe { check(self.name(), spec_fn(handle, &mut raw)) }?;
        let spec = cogview_plugin_abi::grid::spec_from_ffi(&raw).map_err(|e| {
            Error::plugin(
                self.name(),
                format!("its DSR/ItersR spec is inconsistent: {e}"),
            )
        })?;
        model.spec = Some(spec);
        Ok(Arc::new(model))
    }

    fn load_image_tokenizer(
        &self,
        path: &Path,
        request: &LoadRequest,
    ) -> Result<Arc<dyn ImageTokenizer>> {
        let vt = self
            .plugin
            .image_tokenizer
            .ok_or_else(|| self.unsupported(ModelKind::ImageTokenizer))?;
        let handle = self.load(
            path,
            request,
            ModelKind::ImageTokenizer,
            vt.load.expect("checked at load"),
        )?;
        Ok(Arc::new(PluginImageTokenizer {
            plugin: self.plugin,
            vt,
            handle,
        }))
    }
}

/// Copies a plugin-allocated matrix and releases it (also on every error path).
fn take_floats(
    plugin: &str,
    mut out: CogviewFloatsV1,
    what: &str,
) -> Result<(usize, usize, Vec<f32>)> {
    struct Release<'a>(&'a mut CogviewFloatsV1);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            if let Some(r) = self.0.release {
                unsafe { r(self.0) };
            }
        }
    }
    let guard = Release(&mut out);
    let f = &*guard.0;
    let (rows, cols) = (f.rows as usize, f.cols as usize);
    let n = rows.checked_mul(cols).ok_or_else(|| {
        Error::plugin(
            plugin,
            format!("{what} returned an impossible {rows}x{cols} matrix"),
        )
    })?;
    let data = unsafe { slice(f.data, n) }
        .map_err(|_| {
            Error::plugin(
                plugin,
                format!("{what} returned a {rows}x{cols} matrix without data"),
            )
        })?
        .to_vec();
    // NaN logits would make every sampler's choice meaningless (and some panic): a plugin's
    // numeric failure is refused here, typed, rather than drawn from. (-inf is a masked logit.)
    if let Some(i) = data.iter().position(|x| x.is_nan()) {
        return Err(Error::plugin(
            plugin,
            format!(
                "{what} returned NaN in its {rows}x{cols} output (first at row {}, column {}); \
                 the backend's numerics failed (try another dtype or device)",
                i / cols.max(1),
                i % cols.max(1)
            ),
        ));
    }
    Ok((rows, cols, data))
}

/// A CogLM loaded by a plugin.
pub(crate) struct PluginLm {
    plugin: &'static Plugin,
    vt: CogviewLmVtableV1,
    handle: *mut CogviewLm,
    spec: LmSpec,
}

// SAFETY: the ABI requires model handles to accept calls from several threads.
unsafe impl Send for PluginLm {}
unsafe impl Sync for PluginLm {}

impl Drop for PluginLm {
    fn drop(&mut self) {
        unsafe { (self.vt.free.expect("checked"))(self.handle) };
    }
}

impl AutoregressiveLm for PluginLm {
    fn spec(&self) -> LmSpec {
        self.spec.clone()
    }

    fn new_session(&self, batch: usize, capacity: usize) -> Result<Box<dyn LmSession + '_>> {
        if batch == 0 || capacity == 0 {
            return Err(Error::invalid_input(
                "session",
                format!("a session needs at least one row and one position (batch {batch}, capacity {capacity})"),
            ));
        }
        let mut out: *mut CogviewLmSession = std::ptr::null_mut();
        unsafe {
            check(
                self.plugin.name(),
                (self.vt.session_new.expect("checked"))(
                    self.handle,
                    batch as u64,
                    capacity as u64,
                    &mut out,
                ),
            )
        }?;
        if out.is_null() {
            return Err(Error::plugin(
                self.plugin.name(),
                "session_new reported success but returned no session",
            ));
        }
        Ok(Box::new(PluginLmSession {
            lm: self,
            handle: out,
            batch,
            capacity,
            cached: 0,
            broken: false,
        }))
    }
}

struct PluginLmSession<'a> {
    lm: &'a PluginLm,
    handle: *mut CogviewLmSession,
    batch: usize,
    capacity: usize,
    cached: usize,
    /// After an error other than bad input the plugin's cache is undefined.
    broken: bool,
}

impl Drop for PluginLmSession<'_> {
    fn drop(&mut self) {
        unsafe { (self.lm.vt.session_free.expect("checked"))(self.handle) };
    }
}

impl LmSession for PluginLmSession<'_> {
    fn batch(&self) -> usize {
        self.batch
    }
    fn cached_len(&self) -> usize {
        self.cached
    }
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn forward(&mut self, input: &LmInput) -> Result<Logits> {
        let name = self.lm.plugin.name();
        if self.broken {
            return Err(Error::plugin(
                name,
                "an earlier call on this session failed; start a new session",
            ));
        }
        let n = validate_input(&self.lm.spec, self.batch, self.cached, self.capacity, input)?;
        let (all, vocab) = match input.logits {
            LogitsRequest::Last { vocab } => (0, vocab),
            LogitsRequest::All { vocab } => (1, vocab),
        };
        let mut i = CogviewLmInputV1::new_zeroed();
        i.tokens = input.tokens.as_ptr();
        i.tokens_len = input.tokens.len();
        i.positions = input.positions.as_ptr();
        i.positions_len = input.positions.len();
        i.bias = input.bias.as_ptr();
        i.bias_len = input.bias.len();
        i.logits_all = all;
        i.logits_vocab = vocab as u64;
        let mut out = CogviewFloatsV1::new_zeroed();
        let err = unsafe { (self.lm.vt.forward.expect("checked"))(self.handle, &i, &mut out) };
        if let Err(e) = unsafe { check(name, err) } {
            if !matches!(e, Error::InvalidInput { .. }) {
                self.broken = true;
            }
            // An output written before the error is still the plugin's to free.
            let _ = take_floats(name, out, "forward");
            return Err(e);
        }
        let (rows, cols, data) = take_floats(name, out, "forward")?;
        let want_rows = if all == 1 { self.batch * n } else { self.batch };
        if rows != want_rows || cols != vocab {
            self.broken = true;
            return Err(Error::plugin(
                name,
                format!("forward returned {rows}x{cols} logits where {want_rows}x{vocab} were asked for"),
            ));
        }
        self.cached += n;
        Ok(Logits {
            rows,
            vocab: cols,
            data,
        })
    }
}

fn grid_arg(grid: &TokenGrid) -> CogviewTokenGridV1 {
    let mut g = CogviewTokenGridV1::new_zeroed();
    g.height = grid.height as u64;
    g.width = grid.width as u64;
    g.ids = grid.ids.as_ptr();
    g.ids_len = grid.ids.len();
    g
}

/// DSR or ItersR loaded by a plugin, with its spec (read once, right after the load).
pub(crate) struct PluginGridPredictor {
    plugin: &'static Plugin,
    vt: CogviewGridVtableV1,
    handle: *mut CogviewGridModel,
    spec: Option<SrSpec>,
}

// SAFETY: as for PluginLm.
unsafe impl Send for PluginGridPredictor {}
unsafe impl Sync for PluginGridPredictor {}

impl Drop for PluginGridPredictor {
    fn drop(&mut self) {
        unsafe { (self.vt.free.expect("checked"))(self.handle) };
    }
}

impl GridPredictor for PluginGridPredictor {
    fn spec(&self) -> Result<SrSpec> {
        Ok(self.spec.clone().expect("set at load"))
    }

    /// Checks the input against the model's spec, then hands it to the plugin's `forward`.
    fn predict(&self, input: &SrInput) -> Result<Logits> {
        let name = self.plugin.name();
        let spec = self.spec()?;
        input.check(&spec)?;
        let raw = cogview_plugin_abi::grid::FfiGridInput::new(input);
        let mut out = CogviewFloatsV1::new_zeroed();
        let err = unsafe {
            (self.vt.forward.expect("checked at load"))(self.handle, raw.as_ptr(), &mut out)
        };
        if let Err(e) = unsafe { check(name, err) } {
            let _ = take_floats(name, out, "forward");
            return Err(e);
        }
        let (rows, vocab, data) = take_floats(name, out, "forward")?;
        if (rows, vocab) != (input.level1_len(), spec.image_vocab_size) {
            return Err(Error::plugin(
                name,
                format!(
                    "its DSR/ItersR forward returned {rows}x{vocab} logits for {} cells over {} image codes",
                    input.level1_len(),
                    spec.image_vocab_size
                ),
            ));
        }
        Ok(Logits { rows, vocab, data })
    }

    fn release(&self) {
        if let Some(r) = self.vt.release {
            unsafe { r(self.handle) };
        }
    }
}

/// The VQ image tokenizer loaded by a plugin.
pub(crate) struct PluginImageTokenizer {
    plugin: &'static Plugin,
    vt: CogviewImageTokenizerVtableV1,
    handle: *mut CogviewImageTokenizer,
}

// SAFETY: as for PluginLm.
unsafe impl Send for PluginImageTokenizer {}
unsafe impl Sync for PluginImageTokenizer {}

impl Drop for PluginImageTokenizer {
    fn drop(&mut self) {
        unsafe { (self.vt.free.expect("checked"))(self.handle) };
    }
}

impl ImageTokenizer for PluginImageTokenizer {
    fn encode(&self, image: &Image, compression: Compression) -> Result<TokenGrid> {
        let f = compression.factor();
        if image.width == 0
            || image.height == 0
            || !image.width.is_multiple_of(f)
            || !image.height.is_multiple_of(f)
        {
            return Err(Error::invalid_input(
                "image",
                format!(
                    "{}x{} pixels cannot be encoded at {f}x compression; use sides that are positive multiples of {f}",
                    image.width, image.height
                ),
            ));
        }
        if image.pixels.len() != image.width * image.height * 3 {
            return Err(Error::invalid_input(
                "image",
                "the pixel buffer does not match the size",
            ));
        }
        let (h, w) = (image.height / f, image.width / f);
        let mut im = CogviewImageV1::new_zeroed();
        im.width = image.width as u64;
        im.height = image.height as u64;
        im.rgb = image.pixels.as_ptr();
        im.rgb_len = image.pixels.len();
        let mut ids = vec![0u32; h * w];
        unsafe {
            check(
                self.plugin.name(),
                (self.vt.encode.expect("checked"))(
                    self.handle,
                    &im,
                    f as u32,
                    ids.as_mut_ptr(),
                    ids.len(),
                ),
            )
        }?;
        TokenGrid::new(h, w, ids)
    }

    fn decode(&self, grid: &TokenGrid, compression: Compression) -> Result<Image> {
        let f = compression.factor();
        if grid.ids.len() != grid.height * grid.width || grid.ids.is_empty() {
            return Err(Error::invalid_input("grid", "ids do not fill the grid"));
        }
        let (h, w) = (grid.height * f, grid.width * f);
        let mut rgb = vec![0u8; h * w * 3];
        let g = grid_arg(grid);
        unsafe {
            check(
                self.plugin.name(),
                (self.vt.decode.expect("checked"))(
                    self.handle,
                    &g,
                    f as u32,
                    rgb.as_mut_ptr(),
                    rgb.len(),
                ),
            )
        }?;
        Image::new(w, h, rgb)
    }
}
