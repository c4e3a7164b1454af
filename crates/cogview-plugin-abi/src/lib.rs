//! # cogview-plugin-abi
//!
//! The stable C ABI between cogview and backend plugins ([`ffi`], mirrored by
//! `include/cogview_plugin.h`), and the plugin side of it ([`export`]): a Rust crate turns any
//! [`cogview_core::Backend`] into a loadable plugin with [`export_plugin!`]. The host side (finding,
//! checking and loading plugins) is `cogview-plugin-host`.

pub mod export;
pub mod ffi;
pub mod grid;
