//! `cogview edit IMAGE (--mask MASK.png | --rect ... | --rect-frac ...) PROMPT`: text-guided
//! editing (CogView2's completion) with any mask.

use super::pipeline_args::{prepare_output_dir, record, slug, warn_unknown_words, PipelineArgs};
use super::progress;
use cogview::core::edit::{EditMask, Region};
use cogview::pipeline::hashing::sha256_file;
use cogview::pipeline::record::{weight_records, Origin};
use cogview::{Error, Pipeline, Result, RunContext, Settings};
use std::path::PathBuf;

/// Redraw part of an image to fit a text (CogView2's text-guided completion, any mask).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image to edit (resized and centre-cropped to the model's square, as icetk does).
    image: PathBuf,
    /// The text the edited image should fit (the whole image, e.g. "a girl holding flowers").
    prompt: String,
    /// A mask image of the input's size: white (luminance ≥ 128) is redrawn, black is kept.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// A rectangle to redraw, in pixels of the input: x0,y0,x1,y1 (x1, y1 excluded). Repeat for
    /// several; combines with --mask.
    #[arg(long, value_parser = parse_pixels)]
    rect: Vec<Region>,
    /// A rectangle to redraw as fractions of the input's width and height: x0,y0,x1,y1 in [0, 1].
    /// CogView2's input_comp.txt columns h0 w0 h1 w1 are --rect-frac w0,h0,w1,h1.
    #[arg(long, value_parser = parse_fractions)]
    rect_frac: Vec<Region>,
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Base seed; image i uses seed + i.
    #[arg(long, default_value_t = 1234)]
    seed: u64,
    /// Number of edited images.
    #[arg(short = 'n', long, default_value_t = 1)]
    num_images: usize,
    /// Output folder: one PNG per image, <prompt>-edit-<seed>.png.
    #[arg(long, default_value = "out")]
    out: PathBuf,
    /// Also write all images tiled in one PNG, three per row.
    #[arg(long)]
    grid: bool,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
}

fn four(s: &str) -> std::result::Result<[f64; 4], String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("'{s}': {e}; give four numbers x0,y0,x1,y1"))?;
    <[f64; 4]>::try_from(v).map_err(|v| format!("'{s}' has {} numbers; give x0,y0,x1,y1", v.len()))
}

fn parse_pixels(s: &str) -> std::result::Result<Region, String> {
    let v = four(s)?;
    if v.iter().any(|x| *x < 0.0 || x.fract() != 0.0) {
        return Err(format!(
            "'{s}': pixel coordinates are whole numbers ≥ 0 (use --rect-frac for fractions)"
        ));
    }
    Ok(Region::Pixels {
        left: v[0] as usize,
        top: v[1] as usize,
        right: v[2] as usize,
        bottom: v[3] as usize,
    })
}

fn parse_fractions(s: &str) -> std::result::Result<Region, String> {
    let v = four(s)?;
    Ok(Region::Fraction {
        left: v[0],
        top: v[1],
        right: v[2],
        bottom: v[3],
    })
}

pub fn run(args: Args) -> Result<()> {
    if args.num_images == 0 {
        return Err(Error::invalid_input(
            "--num-images",
            "must be at least 1 (-n 1 makes one image)",
        ));
    }
    if args.mask.is_none() && args.rect.is_empty() && args.rect_frac.is_empty() {
        return Err(Error::invalid_input(
            "--mask",
            "say what to redraw: --mask MASK.png, --rect x0,y0,x1,y1 or --rect-frac x0,y0,x1,y1",
        ));
    }
    let image = cogview::image::load_image(&args.image)?;
    let mut mask = match &args.mask {
        Some(p) => EditMask::from_image(&cogview::image::load_image(p)?).map_err(|e| match e {
            Error::InvalidInput { reason, .. } => Error::invalid_input("--mask", reason),
            e => e,
        })?,
        None => EditMask::empty(image.width, image.height)?,
    };
    let mut described = Vec::new();
    if let Some(p) = &args.mask {
        described.push(format!("file {}", sha256_file(p)?));
    }
    for r in args.rect.iter().chain(&args.rect_frac) {
        if mask.width() != image.width || mask.height() != image.height {
            break; // reported below, with both sizes
        }
        mask.add(*r)?;
        described.push(format!("{r:?}"));
    }
    let cfg = args.pipeline.config()?;
    let settings = Settings::resolve(&cfg, true)?;
    prepare_output_dir(&args.out)?;
    let pipeline = Pipeline::from_settings(settings)?;
    pipeline.encode_prompt(&args.prompt)?;
    warn_unknown_words(&pipeline, &args.prompt);
    let weights = weight_records(&pipeline.weight_files()?)?;
    let image_sha256 = sha256_file(&args.image)?;

    let mut ctx = RunContext::with_seed(args.seed);
    ctx.progress = progress::reporter(args.quiet);
    progress::cancel_on_ctrl_c(&ctx.cancel);
    let started = std::time::Instant::now();
    let edited = pipeline.edit(&image, &mask, &args.prompt, args.num_images, &ctx)?;
    if edited.iter().any(|e| e.stages.is_none()) && !args.quiet {
        eprintln!("the mask is empty: the input is returned unchanged");
    }
    let stem = slug(&args.prompt);
    let mut all = Vec::new();
    for e in &edited {
        let rec = record(
            &pipeline,
            &args.prompt,
            (e.seed, e.index, edited.len()),
            Origin::Edit {
                image_sha256: image_sha256.clone(),
                mask: described.join("; "),
            },
            &weights,
        )?;
        let path = args.out.join(format!("{stem}-edit-{}.png", e.seed));
        cogview::image::save_png(
            &e.image,
            &path,
            &rec.png_text_with(args.pipeline.record_options()),
        )?;
        println!("{}", path.display());
        all.push(e.image.clone());
    }
    if args.grid {
        let path = args.out.join(format!("{stem}-edit-grid-{}.png", args.seed));
        cogview::image::save_png(&cogview::image::tile(&all, 3)?, &path, &[])?;
        println!("{}", path.display());
    }
    if !args.quiet {
        eprintln!(
            "{} image(s) in {:.1} s",
            edited.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
