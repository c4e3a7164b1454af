//! The backend conformance suite (crates/cogview-backend-tests) on the built-in candle backend,
//! the reference every other backend is compared with: run here, it checks the suite itself
//! (tolerance 0, every token equal).

cogview_backend_tests::conformance_tests!(cogview_backend_tests::suite::Candidate::built_in());

/// bf16 (the packed bf16 kernels, on whichever path `COGVIEW_CPU_KERNELS` or the CPU selects)
/// against f32 on the fixtures: logits within 0.5 (as the parity tests' bound for bf16 weights)
/// and the same arg-max at ≥ 99 % of the teacher-forced CogLM, DSR and ItersR positions (the
/// sampled pipeline's agreement is printed, not bounded).
#[test]
fn bf16_agrees_with_f32_on_the_fixtures() {
    cogview_backend_tests::suite::bf16_agrees_with_f32(
        &cogview_backend_tests::suite::Candidate::built_in(),
        0.5,
        0.99,
    );
}
