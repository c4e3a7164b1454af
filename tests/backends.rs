//! One conformance suite (`tests/common/backend_suite.rs`), run against every backend this
//! machine has: the built-in candle backend (the reference), the candle plugin loaded at run
//! time, and the tch plugin when `COGVIEW_TCH_PLUGIN` names a built one. `tests/tch_plugin.rs`
//! builds the tch plugin itself and runs the same suite on it (docs/plugins.md).

mod common;

use common::backend_suite::{self, Candidate};
use std::path::PathBuf;

fn candidates() -> Vec<Candidate> {
    let mut out = vec![Candidate::built_in(), Candidate::candle_plugin()];
    if let Some(lib) = std::env::var_os("COGVIEW_TCH_PLUGIN").map(PathBuf::from) {
        out.push(Candidate::tch_plugin(lib));
    }
    out
}

#[test]
fn every_backend_computes_each_stage_as_the_reference_does() {
    backend_suite::each_stage_equals_the_reference(&candidates());
}

#[test]
fn every_backend_draws_the_same_tokens_for_the_same_seed() {
    backend_suite::same_tokens_for_the_same_seed(&candidates());
}
