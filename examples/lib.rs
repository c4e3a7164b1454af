//! The Rust examples of cogview (the files beside this one); this library is empty.
