//! Compose stage 1 in Rust: load CogLM, pick a sampler, generate token grids from text ids.
//!
//! ```sh
//! cargo run --release --example stage1_grid -- tests/fixtures/coglm/tiny-f16 1049,1176,1112
//! ```

use cogview::candle::{CoglmModel, LoadOptions};
use cogview::core::sampling::{ClusterLabels, ClusterSampler, TopKSampler};
use cogview::core::stage1::{CoglmGenerator, Stage1Settings};
use cogview::{GlobalGenerator, RunContext, Sampler, TextTokens};
use std::sync::Arc;

fn main() -> cogview::Result<()> {
    let mut args = std::env::args().skip(1);
    let model_dir = args
        .next()
        .unwrap_or_else(|| "tests/fixtures/coglm/tiny-f16".into());
    let ids: Vec<u32> = args
        .next()
        .unwrap_or_else(|| "1049,1176,1112".into())
        .split(',')
        .map(|s| s.trim().parse().expect("comma-separated token ids"))
        .collect();

    let model = Arc::new(CoglmModel::load(&model_dir, LoadOptions::default())?);
    // The official model has 20000 image codes and uses cluster sampling with the official table;
    // small models use plain top-k.
    let sampler: Arc<dyn Sampler> = if model.config().image_vocab_size == 20000 {
        Arc::new(ClusterSampler {
            labels: Arc::new(ClusterLabels::official()),
            temperature: 1.15,
            top_k_clusters: 16,
            inner_temperature: 1.0,
        })
    } else {
        Arc::new(TopKSampler {
            temperature: 1.0,
            top_k: 40,
        })
    };
    let generator = CoglmGenerator::new(model, sampler, Stage1Settings::default())?;
    let ctx = RunContext::with_seed(1234);
    let grids = generator.generate(&TextTokens(ids), &ctx.image_seeds(2), &ctx)?;
    for (i, g) in grids.iter().enumerate() {
        println!(
            "image {i} (seed {}): first row {:?}",
            1234 + i,
            &g.ids[..g.width]
        );
    }
    Ok(())
}
