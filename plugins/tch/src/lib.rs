//! # cogview-plugin-tch
//!
//! cogview's libtorch backend as a run-time plugin (`libcogview_plugin_tch.so`, backend name
//! `tch`): CogLM with a KV cache, DSR and ItersR with Image-Local-Attention's windows, and icetk's
//! VQ-VAE, all computed by libtorch 2.13 through tch 0.26, on the CPU or CUDA. Checkpoints are
//! read by `cogview-checkpoint`; model sizes come from `cogview-model`, and DSR's and ItersR's
//! input is assembled by `cogview-core` (this plugin runs the network on it).
//! Build it with `tools/build-tch-plugin.sh` (see docs/tch-plugin.md).

mod backbone;
mod backend;
mod coglm;
mod cuda;
mod sr;
mod vqvae;
mod weights;

pub use backend::TchBackend;

use cogview_plugin_abi::export::PluginDefinition;

fn make_backend() -> Box<dyn cogview_core::Backend> {
    Box::new(TchBackend::new())
}

cogview_plugin_abi::export_plugin!(PluginDefinition {
    name: "tch",
    version: env!("CARGO_PKG_VERSION"),
    build_info: "libtorch 2.13.0 via tch 0.26 (CPU; CUDA when libtorch_cuda.so loads), panic=unwind",
    make_backend,
    set_threads: Some(backend::set_threads_once),
    forward_tracing: true,
});
