//! cogview: CogView2-class text-to-image generation. This facade re-exports the SDK's crates.
pub mod embedded;
pub mod open;
pub use cogview_candle as candle;
pub use cogview_checkpoint as checkpoint;
pub use cogview_core as core;
pub use cogview_core::*;
pub use cogview_image as image;
pub use cogview_model as model;
pub use cogview_pipeline as pipeline;
pub use cogview_pipeline::{Pipeline, PipelineConfig, Settings};
pub use cogview_plugin_host as plugin_host;
pub use cogview_text as text;
pub use open::OpenOptions;
