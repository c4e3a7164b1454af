//! The SDK's integration tests through the `cogview` library, as a Rust user calls it: the
//! pipeline, editing, super-resolution, plugins and bad input. One test binary.

mod bad_input;
mod edit;
mod pipeline;
mod plugins;
mod sr_pipeline;
