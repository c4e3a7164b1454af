//! The backend conformance suite (crates/cogview-backend-tests) on this plugin, built as a
//! shared library and loaded at run time through the plugin ABI: the same code as the built-in
//! backend behind the ABI, so bit-identical to it.

cogview_backend_tests::conformance_tests!(cogview_backend_tests::suite::Candidate::candle_plugin());
