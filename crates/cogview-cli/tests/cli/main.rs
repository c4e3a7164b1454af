//! The `cogview` command, run as a user runs it: one test binary for the whole command.

mod edit_caption;
mod flags;
mod full_disk;
mod generate;
mod output_and_config;
mod scale_out;
mod serve;
mod vocabulary;
