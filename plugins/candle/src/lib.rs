//! The candle backend as a plugin library. The same backend is linked into the `cogview` command
//! (`backend = "candle"`); this library is what a separately built variant ships as, above all the
//! CUDA build (`--features cuda`), which must not be linked into a binary that has to start on
//! machines without `libcuda.so.1`.

use cogview_plugin_abi::export::PluginDefinition;

fn make_backend() -> Box<dyn cogview_core::Backend> {
    Box::new(cogview_candle::CandleBackend)
}

fn set_threads(n: usize) {
    // The plugin's own rayon pool (it does not share the host's); the first load's count wins.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
}

const NAME: &str = if cogview_candle::HAS_CUDA {
    "candle-cuda"
} else {
    "candle"
};

cogview_plugin_abi::export_plugin!(PluginDefinition {
    name: NAME,
    version: env!("CARGO_PKG_VERSION"),
    build_info: if cogview_candle::HAS_CUDA {
        "candle 0.11 with CUDA kernels, panic=unwind"
    } else {
        "candle 0.11, CPU only, panic=unwind"
    },
    make_backend,
    set_threads: Some(set_threads),
    forward_tracing: true,
});
