//! CUDA support without linking libtorch_cuda.so.
//!
//! torch-sys links `libtorch_cuda.so`, but the linker's `--as-needed` drops it (nothing in tch
//! references it directly), and linking it with `--no-as-needed` would make the plugin fail to
//! load wherever the CUDA libraries it needs (cuBLAS, cuDNN, NCCL, ... about 3 GB of wheels) are
//! missing, including CPU-only installs. So the plugin loads it at run time instead: once, when the
//! backend is made, before any libtorch call could ask for the CUDA hooks (libtorch looks them up
//! once and caches the answer). If it loads, its static initialisers register CUDA with libtorch
//! and `tch::Cuda` sees the GPUs; if not, the loader's message says why and CUDA devices report it.

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::OnceLock;

static STATUS: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The folder of the `libtorch_cpu.so` this process has loaded.
fn libtorch_dir() -> Option<PathBuf> {
    unsafe extern "C" fn visit(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: called by dl_iterate_phdr with a valid info struct and our `data` pointer.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Option<PathBuf>)) };
        if info.dlpi_name.is_null() {
            return 0;
        }
        // SAFETY: dlpi_name is a NUL-terminated path owned by the dynamic loader.
        let name = unsafe { CStr::from_ptr(info.dlpi_name) }.to_string_lossy();
        let path = PathBuf::from(name.as_ref());
        if path.file_name().is_some_and(|f| f == "libtorch_cpu.so") {
            *out = path.parent().map(|p| p.to_path_buf());
            return 1;
        }
        0
    }
    let mut found: Option<PathBuf> = None;
    // SAFETY: `visit` only reads the loader's records and writes to `found`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(visit), &mut found as *mut _ as *mut libc::c_void) };
    found.or_else(|| {
        let built = env!("COGVIEW_TCH_LIBTORCH_LIB");
        (!built.is_empty()).then(|| PathBuf::from(built))
    })
}

fn load() -> Result<PathBuf, String> {
    if std::env::var_os("COGVIEW_TCH_NO_CUDA").is_some_and(|v| !v.is_empty() && v != "0") {
        return Err("CUDA disabled by COGVIEW_TCH_NO_CUDA".into());
    }
    let dir = libtorch_dir().ok_or("cannot tell where libtorch is loaded from")?;
    let lib = dir.join("libtorch_cuda.so");
    if !lib.is_file() {
        return Err(format!(
            "{} is a CPU-only libtorch (no libtorch_cuda.so)",
            dir.display()
        ));
    }
    let c = CString::new(lib.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: dlopen with a valid path; the handle is kept for the life of the process.
    let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns a thread-local message (or NULL) right after the failed call.
        let err = unsafe { libc::dlerror() };
        let msg = if err.is_null() {
            "unknown error".to_string()
        } else {
            unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned()
        };
        return Err(format!(
            "cannot load {} ({msg}); install torch 2.13.0 with its nvidia-* CUDA wheels for GPU support",
            lib.display()
        ));
    }
    Ok(lib)
}

/// Loads libtorch_cuda.so once; `Ok(path)` if it is loaded, else why not.
pub fn init() -> &'static Result<PathBuf, String> {
    STATUS.get_or_init(load)
}
