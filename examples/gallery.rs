//! The gallery of docs/gallery.md: for each prompt, the stage-1 image (the token grid decoded and
//! enlarged), the image after DSR, and the final image after ItersR, side by side (two images
//! when the pipeline runs no ItersR pass, as the default model does: DSR's is the final one),
//! with the seconds `Pipeline::generate` took for the whole image.
//!
//! ```sh
//! cargo run --release -p cogview-examples --example gallery -- [MODEL_DIR] [OUT_DIR]   # defaults: models/default docs/gallery
//! ```
//!
//! It composes the stages by hand from the pipeline's parts (`Pipeline::super_resolution_stages`)
//! with the seeds `Pipeline::generate` uses, and checks that the final image equals what
//! `generate` (and so `cogview generate --seed N`) makes.

use cogview::core::sr::{stage_seed, DSR_STAGE, ITERSR_STAGE};
use cogview::image::save_png;
use cogview::{
    Compression, Error, Image, Pipeline, PipelineConfig, Result, Rng, RunContext, Settings,
};
use std::fmt::Write;
use std::path::PathBuf;

/// Scenes (single objects, a trained two-object composition, two held-out compositions of the
/// default `compositions` split) and emoji captions (the last is a held-out skin tone); the
/// gallery marks which are held out from the split itself.
const PROMPTS: [&str; 12] = [
    "a large blue circle in the center",
    "a small red square at the top left",
    "a large yellow triangle at the bottom",
    "a small green circle at the right",
    "a large purple square at the top right",
    "a small black triangle at the left and a large cyan circle at the bottom right",
    "a large cyan triangle at the bottom left and a large black triangle at the top left",
    "a large cyan square at the bottom right and a small yellow triangle at the left and a small black triangle at the top",
    "red heart",
    "grinning face",
    "rocket",
    "waving hand, light skin tone",
];

const SEED: u64 = 2026;

fn side_by_side(images: &[Image], gap: usize) -> Result<Image> {
    let (w, h) = (images[0].width, images[0].height);
    let total = w * images.len() + gap * (images.len() - 1);
    let mut px = vec![255u8; total * h * 3];
    for (i, im) in images.iter().enumerate() {
        let x0 = i * (w + gap);
        for y in 0..h {
            let dst = (y * total + x0) * 3;
            px[dst..dst + w * 3].copy_from_slice(&im.pixels[y * w * 3..(y + 1) * w * 3]);
        }
    }
    Image::new(total, h, px)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model = PathBuf::from(args.get(1).map_or("models/default", String::as_str));
    let out = PathBuf::from(args.get(2).map_or("docs/gallery", String::as_str));
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let cfg = PipelineConfig::from_file(model.join("pipeline.toml"))?;
    let pipeline = Pipeline::from_settings(Settings::resolve(&cfg, true)?)?;
    let sr = pipeline.super_resolution_stages().ok_or_else(|| {
        Error::invalid_input("model", "the pipeline has no super-resolution stages")
    })?;
    let vq = pipeline.image_tokenizer()?;
    let factor = pipeline.geometry().high / pipeline.geometry().low;
    let passes = sr.lopar.iterations();
    let (columns, heading) = if passes == 0 {
        (
            "×3 | after DSR (the final image: the pipeline runs no ItersR pass; equal to `cogview \
             generate PROMPT --seed N`)",
            "stage 1 · DSR",
        )
    } else {
        (
            "×3 | after DSR | after ItersR (the final image, equal to `cogview generate PROMPT \
             --seed N`)",
            "stage 1 · DSR · ItersR",
        )
    };
    let mut md = format!(
        "# Gallery of the default model\n\n\
         Made by `cargo run --release -p cogview-examples --example gallery` (examples/gallery.rs) with the embedded \
         default model (`models/default`). Each row: the stage-1 token grid decoded and enlarged \
         {columns}.{rerank} Seconds: `Pipeline::generate` for the whole image (release build, \
         batch 1, RAYON_NUM_THREADS={threads}). Held out: a composition (or emoji) never seen in \
         training.\n\n\
         | prompt | held out | seed | seconds | {heading} |\n|---|---|---|---|---|\n",
        threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
            std::thread::available_parallelism().map_or(1, |n| n.get()).to_string()
        }),
        rerank = match pipeline.rerank() {
            1 => String::new(),
            k => format!(
                " Each image (both panels) is the best of {k} stage-1 candidates of its seed by \
                 the inverse-prompt score (the model's `[coglm] rerank`)."
            ),
        },
    );
    let emoji = cogview_emoji::EmojiSet::load("data/fluent-emoji-flat/icons.json.gz")
        .map_err(|e| Error::backend_source("", e))?;
    let held_out = |prompt: &str| match cogview_scenes::Scene::parse(prompt) {
        Ok(scene) => cogview_scenes::Split::Compositions.is_heldout(&scene),
        Err(_) => emoji.heldout().any(|e| e.caption() == prompt),
    };
    for (i, prompt) in PROMPTS.iter().enumerate() {
        let seed = SEED + i as u64;
        let ctx = RunContext::with_seed(seed);
        let first = pipeline.generate(prompt, 1, true, &ctx)?.remove(0);
        let text = pipeline.encode_prompt(prompt)?;
        let dsr = sr.direct(
            &text.0,
            &first.low_res,
            &mut Rng::from_seed(stage_seed(seed, DSR_STAGE)),
        )?;
        let fin = sr.refine(
            &text.0,
            &dsr,
            None,
            &mut Rng::from_seed(stage_seed(seed, ITERSR_STAGE)),
            &ctx,
        )?;
        let stage1 =
            cogview::image::upscale_nearest(&vq.decode(&first.low_res, Compression::X8)?, factor)?;
        let final_img = vq.decode(&fin, Compression::X8)?;
        let started = std::time::Instant::now();
        let whole = pipeline.generate(prompt, 1, false, &ctx)?.remove(0);
        let seconds = started.elapsed().as_secs_f64();
        if whole.image != final_img {
            return Err(Error::backend(format!(
                "'{prompt}': the stage-by-stage image differs from Pipeline::generate"
            )));
        }
        // With no ItersR pass the final image is DSR's: shown once.
        let mut panels = vec![stage1];
        if passes > 0 {
            panels.push(vq.decode(&dsr, Compression::X8)?);
        }
        panels.push(final_img);
        let row = side_by_side(&panels, 8)?;
        let name = format!("{i:02}.png");
        save_png(&row, out.join(&name), &[])?;
        let mark = if held_out(prompt) { "yes" } else { "" };
        let _ = writeln!(
            md,
            "| {prompt} | {mark} | {seed} | {seconds:.2} | ![{prompt}](gallery/{name}) |"
        );
        eprintln!("{name}: {prompt}");
    }
    let md_path = out.parent().unwrap_or(&out).join("gallery.md");
    std::fs::write(&md_path, md).map_err(|e| Error::io(&md_path, e))?;
    eprintln!("wrote {}", md_path.display());
    Ok(())
}
