//! `cogview tokenize`, `detokenize` and `tokenize-text`: icetk's tokenizers on files.

use super::backend_args::BackendArgs;
use super::pipeline_args::output_file;
use cogview::candle::VqTokenizer;
use cogview::core::grid_file::GridFile;
use cogview::text::IceTextTokenizer;
use cogview::{Compression, Error, ImageTokenizer, Result, TextTokenizer};
use std::path::{Path, PathBuf};

/// Encode an image into a grid of image tokens.
#[derive(Debug, clap::Args)]
pub struct TokenizeArgs {
    /// Any common image format.
    image: PathBuf,
    /// The image tokenizer: an ice_image.pt, a safetensors file or a model folder holding one.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Pixels per token side: 4, 8 or 16 (CogView2 uses 8).
    #[arg(long, default_value_t = 8)]
    compression: usize,
    /// Resize the shorter side to SIZE and centre-crop SIZE×SIZE first (icetk's preprocessing;
    /// 160 → 20×20 and 480 → 60×60 tokens at compression 8).
    #[arg(long)]
    size: Option<usize>,
    /// Where to write the grid file: a file, or a folder that receives IMAGE-NAME.json.
    #[arg(short, long, required_unless_present = "json", conflicts_with = "json")]
    output: Option<PathBuf>,
    /// Print {"height", "width", "ids"} instead of writing a file.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Decode a grid of image tokens into a PNG image.
#[derive(Debug, clap::Args)]
pub struct DetokenizeArgs {
    /// A grid file (from `cogview tokenize -o`) or the JSON `cogview tokenize --json` prints.
    grid: PathBuf,
    #[arg(long)]
    tokenizer: PathBuf,
    #[arg(long, default_value_t = 8)]
    compression: usize,
    /// The PNG to write: a file, or a folder that receives GRID-NAME.png.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    backend: BackendArgs,
}

/// Print the icetk ids of a text.
#[derive(Debug, clap::Args)]
pub struct TokenizeTextArgs {
    text: String,
    /// ice_text.model, or a model folder holding it.
    #[arg(long)]
    tokenizer: PathBuf,
}

/// A file's name without its extension, for default output names.
fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into())
}

pub fn load_text_tokenizer(path: &Path) -> Result<IceTextTokenizer> {
    let file = if path.is_dir() {
        path.join("ice_text.model")
    } else {
        path.to_path_buf()
    };
    IceTextTokenizer::from_file(file)
}

pub fn tokenize(args: TokenizeArgs) -> Result<()> {
    let compression = Compression::from_factor(args.compression)?;
    let vq = VqTokenizer::load(&args.tokenizer, args.backend.load_options())?;
    let mut image = cogview::image::load_image(&args.image)?;
    if let Some(size) = args.size {
        image = cogview::image::resize_center_crop(&image, size)?;
    }
    let grid = vq.encode(&image, compression)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"height": grid.height, "width": grid.width, "ids": grid.ids})
        );
    } else if let Some(out) = args.output {
        let out = output_file(
            "--output",
            &out,
            &format!("{}.json", file_stem(&args.image)),
        )?;
        GridFile {
            grid,
            compression: Some(compression),
            tokenizer_sha256: Some(vq.codebook_sha256().to_string()),
        }
        .write(&out)?;
    }
    Ok(())
}

pub fn detokenize(args: DetokenizeArgs) -> Result<()> {
    let compression = Compression::from_factor(args.compression)?;
    let file = GridFile::read(&args.grid)?;
    let vq = VqTokenizer::load(&args.tokenizer, args.backend.load_options())?;
    file.check_against(
        vq.codebook_sha256(),
        compression,
        &args.grid.display().to_string(),
    )?;
    let image = vq.decode(&file.grid, compression)?;
    let out = output_file(
        "--output",
        &args.output,
        &format!("{}.png", file_stem(&args.grid)),
    )?;
    cogview::image::save_png(&image, &out, &[])
}

pub fn tokenize_text(args: TokenizeTextArgs) -> Result<()> {
    let tok = load_text_tokenizer(&args.tokenizer)?;
    let ids = tok.encode(&args.text)?;
    println!(
        "{}",
        serde_json::to_string(&ids.0).map_err(|e| Error::backend_source("", e))?
    );
    Ok(())
}
