//! The backend conformance suite (crates/cogview-backend-tests) on the built-in candle backend,
//! the reference every other backend is compared with: run here, it checks the suite itself
//! (tolerance 0, every token equal).

cogview_backend_tests::conformance_tests!(cogview_backend_tests::suite::Candidate::built_in());
