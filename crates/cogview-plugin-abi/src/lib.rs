//! # cogview-plugin-abi
//!
//! The stable C ABI between cogview and backend plugins ([`ffi`], mirrored by
//! `include/cogview_plugin.h`), and the plugin side of it ([`export`]): a Rust crate turns any
//! [`cogview_core::Backend`] into a loadable plugin with [`export_plugin!`]. The host side (finding,
//! checking and loading plugins) is `cogview-plugin-host`.

pub mod export;
// A field-by-field mirror of include/cogview_plugin.h, which documents every field, constant and
// function pointer and is the reference; repeating each comment here would only let the two drift.
#[allow(missing_docs)]
pub mod ffi;
pub mod grid;
