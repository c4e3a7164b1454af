//! Gives the plugin a run path to libtorch (torch-sys links it but adds no rpath), so that
//! `libcogview_plugin_tch.so` loads without LD_LIBRARY_PATH, and records where libtorch was, so the
//! plugin can load `libtorch_cuda.so` from there at run time (see src/cuda.rs).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_LIB");
    let lib = match (std::env::var_os("LIBTORCH_LIB"), std::env::var_os("LIBTORCH")) {
        (Some(lib), _) => Some(PathBuf::from(lib)),
        (None, Some(root)) => Some(PathBuf::from(root).join("lib")),
        (None, None) => None,
    };
    match lib {
        Some(lib) => {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
            println!("cargo:rustc-env=COGVIEW_TCH_LIBTORCH_LIB={}", lib.display());
        }
        None => {
            println!(
                "cargo:warning=LIBTORCH is not set; the plugin gets no run path to libtorch (use tools/build-tch-plugin.sh)"
            );
            println!("cargo:rustc-env=COGVIEW_TCH_LIBTORCH_LIB=");
        }
    }
}
