//! The workspace's integration tests (tests/sdk, tests/tch_plugin.rs); this library is empty.
