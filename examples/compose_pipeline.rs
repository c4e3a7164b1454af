//! Compose the pipeline in Rust from components, then run it with progress and a seed.
//!
//! Any implementation of the core traits can take a component's place; here they are the built-in
//! candle models, loaded from a folder in the official layout.
//!
//! ```sh
//! cargo run --release --example compose_pipeline -- tests/fixtures/model-dir "a red circle"
//! ```

use cogview::candle::{CoglmModel, LoadOptions, SrModel, VqTokenizer};
use cogview::core::sampling::{ClusterLabels, ClusterSampler};
use cogview::core::sr::SuperResolution;
use cogview::core::stage1::{CoglmGenerator, Stage1Settings, Style};
use cogview::text::{IceTextTokenizer, SPECIAL_TOKENS};
use cogview::{Pipeline, RunContext};
use std::path::PathBuf;
use std::sync::Arc;

fn main() -> cogview::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "tests/fixtures/model-dir".into()),
    );
    let prompt = args.next().unwrap_or_else(|| "a red circle".into());
    let opts = LoadOptions::default(); // CPU, f32

    let coglm = Arc::new(CoglmModel::load(dir.join("coglm"), opts)?);
    let image_vocab = coglm.config().image_vocab_size;
    let soi = coglm.config().start_of_image_id;
    let labels = Arc::new(ClusterLabels::from_npy_file(dir.join("cluster_label.npy"))?);
    let style = Style::None;
    let generator = CoglmGenerator::new(
        coglm,
        Arc::new(ClusterSampler {
            labels: labels.clone(),
            temperature: style.stage1_temperature(),
            top_k_clusters: 16,
            inner_temperature: 1.0,
        }),
        Stage1Settings::default(),
    )?;
    let super_resolution = SuperResolution::official(
        Arc::new(SrModel::load(dir.join("cogview2-dsr"), opts)?),
        Arc::new(SrModel::load(dir.join("cogview2-itersr"), opts)?),
        labels,
        soi,
    );
    // icetk's layout: text ids start after the image codes.
    let text = IceTextTokenizer::from_bytes(
        &std::fs::read(dir.join("ice_text.model")).map_err(|e| cogview::Error::io(&dir, e))?,
        "ice_text.model",
        image_vocab as u32,
        &SPECIAL_TOKENS,
    )?;
    let pipeline = Pipeline::builder()
        .style(style)
        .text_tokenizer(Arc::new(text))
        .generator(Arc::new(generator))
        .super_resolver(Arc::new(super_resolution))
        .image_tokenizer(Arc::new(VqTokenizer::load(dir.join("ice_image.pt"), opts)?))
        .build()?;

    let mut ctx = RunContext::with_seed(42);
    ctx.progress = Some(Arc::new(|p| {
        if p.step == p.total {
            eprintln!("{} done ({} steps)", p.stage, p.total);
        }
    }));
    for img in pipeline.generate(&prompt, 2, false, &ctx)? {
        let path = format!("compose-{}.png", img.seed);
        cogview::image::save_png(&img.image, &path, &[("prompt".into(), prompt.clone())])?;
        println!("{path}: {}x{}", img.image.width, img.image.height);
    }
    Ok(())
}
