//! Subcommands of the `cogview` command.

mod bench;
mod convert;
mod generate;
mod logits;
mod tokenize;

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
        Command::Logits(a) => logits::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Tokenize(a) => tokenize::tokenize(a),
        Command::Detokenize(a) => tokenize::detokenize(a),
        Command::TokenizeText(a) => tokenize::tokenize_text(a),
    }
}

/// Shared flags for choosing how a model runs.
#[derive(Debug, Clone, clap::Args)]
pub struct BackendArgs {
    /// Compute dtype: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub dtype: cogview::DType,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: cogview::Device,
}

impl BackendArgs {
    pub fn load_options(&self) -> cogview::candle::LoadOptions {
        cogview::candle::LoadOptions {
            device: self.device,
            dtype: self.dtype,
        }
    }
}
