//! Subcommands of the `cogview` command.

mod backend_args;
mod backends;
mod batch;
mod bench;
mod caption;
mod convert;
mod edit;
mod eval;
mod generate;
mod info;
mod logits;
mod pipeline_args;
mod progress;
mod queue_args;
mod regenerate;
mod serve;
mod super_resolve;
mod tokenize;
mod train;
mod worker;

use clap::{Parser, Subcommand};
use cogview::Result;

/// CogView2-class text-to-image generation on CPU and GPU.
#[derive(Debug, Parser)]
#[command(name = "cogview", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Generate(generate::Args),
    Edit(edit::Args),
    Caption(caption::Args),
    Regenerate(regenerate::Args),
    Serve(serve::Args),
    Worker(worker::Args),
    Batch(batch::Args),
    SuperResolve(super_resolve::Args),
    Info(info::Args),
    Backends(backends::Args),
    Train(train::Args),
    Eval(eval::Args),
    Logits(logits::Args),
    Convert(convert::Args),
    Bench(bench::Args),
    Tokenize(tokenize::TokenizeArgs),
    Detokenize(tokenize::DetokenizeArgs),
    TokenizeText(tokenize::TokenizeTextArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(a) => generate::run(a),
        Command::Edit(a) => edit::run(a),
        Command::Caption(a) => caption::run(a),
        Command::Regenerate(a) => regenerate::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Worker(a) => worker::run(a),
        Command::Batch(a) => batch::run(a),
        Command::SuperResolve(a) => super_resolve::run(a),
        Command::Info(a) => info::run(a),
        Command::Backends(a) => backends::run(a),
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Logits(a) => logits::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Tokenize(a) => tokenize::tokenize(a),
        Command::Detokenize(a) => tokenize::detokenize(a),
        Command::TokenizeText(a) => tokenize::tokenize_text(a),
    }
}
