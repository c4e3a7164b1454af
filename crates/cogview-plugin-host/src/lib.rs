//! # cogview-plugin-host
//!
//! Loads backend plugins (shared libraries speaking the C ABI of `cogview-plugin-abi`) and makes
//! each one a [`cogview_core::Backend`], so a pipeline cannot tell a plugin from a built-in backend.
//!
//! - [`load_path`] opens a library (`RTLD_NOW | RTLD_LOCAL`), looks up `cogview_plugin_v1`, and
//!   checks the descriptor: struct sizes, the major version, every mandatory function. Libraries are
//!   never unloaded; loading a path again returns the same [`Plugin`].
//! - [`find`] looks a backend name up in [`search_dirs`] (`$COGVIEW_PLUGIN_PATH`, then the
//!   executable's folder, its `plugins/` and `../lib/cogview/`), as
//!   `libcogview_plugin_<name>.so` (`-` in the name becomes `_`).
//! - [`Plugin::backend`] calls the plugin's `init` once, passing the host's logger and error
//!   constructor, and returns the adapter.

mod adapters;
mod callbacks;

use cogview_core::backend::Availability;
use cogview_core::{Device, Error, Result};
use cogview_plugin_abi::ffi::*;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub use callbacks::host_struct;

/// A loaded, checked plugin library. Lives for the rest of the process.
pub struct Plugin {
    origin: PathBuf,
    descriptor: CogviewPluginV1,
    pub(crate) lm: Option<CogviewLmVtableV1>,
    pub(crate) grid: Option<CogviewGridVtableV1>,
    pub(crate) image_tokenizer: Option<CogviewImageTokenizerVtableV1>,
    name: String,
    version: String,
    build_info: String,
    init: OnceLock<std::result::Result<(), String>>,
}

// SAFETY: the descriptor's pointers are static data of a library that is never unloaded, and the
// ABI requires plugin functions to be callable from any thread.
unsafe impl Send for Plugin {}
unsafe impl Sync for Plugin {}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("origin", &self.origin)
            .finish()
    }
}

static LOADED: Mutex<Vec<(PathBuf, &'static Plugin)>> = Mutex::new(Vec::new());

/// The file name a backend's plugin library has on this platform: `libcogview_plugin_tch.so`.
pub fn library_file_name(backend: &str) -> String {
    format!(
        "{}cogview_plugin_{}{}",
        std::env::consts::DLL_PREFIX,
        backend.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Where plugins are looked for, in order: each folder of `$COGVIEW_PLUGIN_PATH`, then the
/// running executable's folder, its `plugins/` subfolder and `../lib/cogview/`. The current folder
/// is not searched.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(p) = std::env::var_os("COGVIEW_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("plugins"));
        if let Some(up) = exe_dir.parent() {
            dirs.push(up.join("lib").join("cogview"));
        }
        dirs.insert(dirs.len() - 2, exe_dir);
    }
    dirs
}

/// Finds the plugin for `backend` in [`search_dirs`] and loads it.
pub fn find(backend: &str) -> Result<&'static Plugin> {
    let file = library_file_name(backend);
    let dirs = search_dirs();
    for d in &dirs {
        let candidate = d.join(&file);
        if candidate.is_file() {
            let plugin = load_path(&candidate)?;
            if plugin.name != backend {
                return Err(Error::plugin(
                    candidate.display().to_string(),
                    format!("is named '{}', not '{backend}'", plugin.name),
                ));
            }
            return Ok(plugin);
        }
    }
    Err(Error::plugin(
        backend,
        format!(
            "no {file} in {}; build it (see docs/plugins.md), put its folder in COGVIEW_PLUGIN_PATH, or give `plugin = \"path\"`",
            if dirs.is_empty() {
                "(no search folders)".to_string()
            } else {
                dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ")
            }
        ),
    ))
}

/// Every `libcogview_plugin_*` library in [`search_dirs`], loaded and checked (or why not).
pub fn discover() -> Vec<(PathBuf, Result<&'static Plugin>)> {
    let prefix = format!("{}cogview_plugin_", std::env::consts::DLL_PREFIX);
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for d in search_dirs() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with(&prefix) && n.ends_with(std::env::consts::DLL_SUFFIX)
                })
            })
            .collect();
        files.sort();
        for f in files {
            let key = f.file_name().map(|n| n.to_os_string());
            if seen.insert(key) {
                let r = load_path(&f);
                out.push((f, r));
            }
        }
    }
    out
}

#[cfg(unix)]
fn open_library(path: &Path) -> std::result::Result<libloading::Library, libloading::Error> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // RTLD_NOW: an unresolved symbol fails here, not in the middle of a run.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Into::into)
}

#[cfg(not(unix))]
fn open_library(path: &Path) -> std::result::Result<libloading::Library, libloading::Error> {
    unsafe { libloading::Library::new(path) }
}

/// Opens a plugin library and checks it. The library stays loaded for the rest of the process
/// (plugins may leave threads and thread-locals behind); opening the same file again returns the
/// same plugin.
pub fn load_path(path: &Path) -> Result<&'static Plugin> {
    let canonical = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = loaded.iter().find(|(c, _)| *c == canonical) {
        return Ok(p);
    }
    let library = open_library(&canonical).map_err(|e| Error::PluginLoad {
        path: path.to_path_buf(),
        what: format!(
            "{} (is it a shared library for this platform, with its dependencies on the library path?)",
            cogview_core::error::with_causes(&e)
        ),
        source: Box::new(e),
    })?;
    let entry: EntryFn = match unsafe { library.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) } {
        Ok(sym) => *sym,
        Err(e) => {
            let other = (2..10).find(|v| {
                unsafe { library.get::<EntryFn>(format!("cogview_plugin_v{v}").as_bytes()) }.is_ok()
            });
            let what = match other {
                Some(v) => format!(
                    "it is built for plugin ABI v{v} (it exports cogview_plugin_v{v}), but this cogview speaks ABI v{ABI_MAJOR}; use a matching cogview or rebuild the plugin"
                ),
                None => format!("not a cogview plugin: it does not export {ENTRY_SYMBOL}"),
            };
            return Err(Error::PluginLoad {
                path: path.to_path_buf(),
                what,
                source: Box::new(e),
            });
        }
    };
    let plugin = unsafe { from_entry(entry, &canonical) }?;
    // Never unloaded: the plugin may have started threads or registered thread-local destructors.
    std::mem::forget(library);
    let plugin: &'static Plugin = Box::leak(Box::new(plugin));
    loaded.push((canonical, plugin));
    tracing::debug!(plugin = %plugin.name, path = %path.display(), "loaded plugin");
    Ok(plugin)
}

unsafe fn cstr(p: *const std::ffi::c_char, field: &str, origin: &Path) -> Result<String> {
    if p.is_null() {
        return Err(Error::plugin(
            origin.display().to_string(),
            format!("descriptor field `{field}` is NULL"),
        ));
    }
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_str()
        .map(str::to_string)
        .map_err(|_| {
            Error::plugin(
                origin.display().to_string(),
                format!("descriptor field `{field}` is not UTF-8"),
            )
        })
}

unsafe fn from_entry(entry: EntryFn, origin: &Path) -> Result<Plugin> {
    let who = origin.display().to_string();
    let bad = |reason: String| Error::plugin(who.clone(), reason);
    let ptr = unsafe { entry() };
    let d = unsafe { read_versioned(ptr) }.map_err(|e| {
        bad(format!(
            "its descriptor ({}, from {ENTRY_SYMBOL}) {e}",
            CogviewPluginV1::NAME
        ))
    })?;
    if d.abi_major != ABI_MAJOR {
        return Err(bad(format!(
            "its descriptor says plugin ABI v{}, but this cogview speaks ABI v{ABI_MAJOR}",
            d.abi_major
        )));
    }
    let name = unsafe { cstr(d.name, "name", origin) }?;
    let version = unsafe { cstr(d.version, "version", origin) }?;
    let build_info = if d.build_info.is_null() {
        String::new()
    } else {
        unsafe { cstr(d.build_info, "build_info", origin) }?
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad(format!(
            "its name {name:?} is not a backend name (letters, digits, - and _)"
        )));
    }
    if d.score.is_none() || d.init.is_none() {
        return Err(bad("its descriptor lacks score() or init()".into()));
    }
    fn table<T: Versioned>(bit: u32, kinds: u32, ptr: *const T, who: &str) -> Result<Option<T>> {
        if kinds & bit == 0 {
            return Ok(None);
        }
        unsafe { read_versioned(ptr) }.map(Some).map_err(|e| {
            Error::plugin(
                who,
                format!("model_kinds has bit {bit} set, but its {} {e}", T::NAME),
            )
        })
    }
    let lm = table(KIND_LM, d.model_kinds, d.lm, &who)?;
    let grid = table(KIND_GRID, d.model_kinds, d.grid, &who)?;
    let image_tokenizer = table(KIND_IMAGE_TOKENIZER, d.model_kinds, d.image_tokenizer, &who)?;
    let missing = |what: &str| bad(format!("its {what} function is NULL"));
    if let Some(v) = &lm {
        for (f, n) in [
            (v.load.is_none(), "CogLM load"),
            (v.free.is_none(), "CogLM free"),
            (v.spec.is_none(), "CogLM spec"),
            (v.session_new.is_none(), "CogLM session_new"),
            (v.session_free.is_none(), "CogLM session_free"),
            (v.forward.is_none(), "CogLM forward"),
        ] {
            if f {
                return Err(missing(n));
            }
        }
    }
    if let Some(v) = &grid {
        // `spec` and `forward` (ABI 1.1) are checked when a grid model is loaded, so that a 1.0
        // plugin's other models stay usable.
        for (f, n) in [
            (v.load.is_none(), "grid load"),
            (v.free.is_none(), "grid free"),
        ] {
            if f {
                return Err(missing(n));
            }
        }
    }
    if let Some(v) = &image_tokenizer {
        for (f, n) in [
            (v.load.is_none(), "image tokenizer load"),
            (v.free.is_none(), "image tokenizer free"),
            (v.encode.is_none(), "image tokenizer encode"),
            (v.decode.is_none(), "image tokenizer decode"),
        ] {
            if f {
                return Err(missing(n));
            }
        }
    }
    Ok(Plugin {
        origin: origin.to_path_buf(),
        descriptor: d,
        lm,
        grid,
        image_tokenizer,
        name,
        version,
        build_info,
        init: OnceLock::new(),
    })
}

fn device_args(device: Device) -> (i32, i32) {
    match device {
        Device::Cpu => (DEVICE_CPU, 0),
        Device::Cuda(i) => (DEVICE_CUDA, i.min(i32::MAX as usize) as i32),
    }
}

impl Plugin {
    /// The backend name stages select it by.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The plugin's version.
    pub fn version(&self) -> &str {
        &self.version
    }
    /// Version and build facts the plugin gives.
    pub fn build_info(&self) -> &str {
        &self.build_info
    }
    /// The library's path (or `<static NAME>` for a linked-in plugin).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The plugin's own verdict on `device` (its `score`).
    pub fn availability(&self, device: Device) -> Availability {
        let (kind, index) = device_args(device);
        let mut why: *mut CogviewError = std::ptr::null_mut();
        let score = unsafe {
            (self.descriptor.score.expect("checked at load"))(host_struct(), kind, index, &mut why)
        };
        let reason = unsafe { callbacks::take_error(why) };
        if score > 0 {
            Availability::Usable {
                score: score as u32,
            }
        } else {
            Availability::Unusable {
                reason: reason.map_or_else(
                    || format!("its score for {device} is {score} (no reason given)"),
                    |(_, _, m)| m,
                ),
            }
        }
    }
}
