//! Arithmetic on lists of tensor shapes.

/// The number of values in a list of tensor shapes.
pub(crate) fn count(tensors: &[(String, Vec<usize>)]) -> usize {
    tensors
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum()
}
