//! Writes random mid-size CogLM, DSR and ItersR models (12 layers × 768, 12 heads, FFN 3072,
//! vocabulary 150003, 20000 image codes, <start_of_image> = 150000: the sizes of
//! `tools/bench/coglm_torch_bench.py --make-model` and `sr_torch_bench.py --make-model`) as SAT
//! folders whose weight file is safetensors, without Python. Tensor names and shapes come from the
//! tiny fixtures in `tests/fixtures/model-dir`, scaled; the loaders check them when the models are
//! opened. Weights are uniform with standard deviation 0.02 (LayerNorm weights 1, biases 0), in bf16.
//!
//!   cargo run --release -p cogview-candle --example make_bench_models -- target/bench/mid
//!
//! writes `OUT/coglm`, `OUT/sr/dsr` and `OUT/sr/itersr` (`cogview bench sr --model OUT/sr`).

use cogview_checkpoint::Checkpoint;
use std::path::Path;

const LAYERS: usize = 12;
const HIDDEN: usize = 768;
const HEADS: usize = 12;

/// The fixture's sizes → the mid-size model's.
fn scale(d: usize) -> usize {
    match d {
        32 => HIDDEN,
        96 => 3 * HIDDEN,
        128 => 4 * HIDDEN,
        5515 => 150003,
        512 => 20000,
        other => other,
    }
}

fn write(fixture: &Path, out: &Path, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    let folder = cogview_model::inspect::open_model(fixture)?;
    let ckpt: Checkpoint = folder.0;
    let mut tensors: Vec<(String, Vec<usize>)> = Vec::new();
    for name in ckpt.names() {
        let shape: Vec<usize> = ckpt.info(name).expect("listed").shape.to_vec();
        let scaled: Vec<usize> = shape.iter().map(|&d| scale(d)).collect();
        // Per-layer tensors (`transformer.layers.0.…`, `mixins.attention_plus.dense.0.…`): layer
        // 0's shape for every layer.
        let parts: Vec<&str> = name.split('.').collect();
        match parts.iter().position(|p| p.parse::<usize>().is_ok()) {
            Some(i) if parts[i] == "0" => {
                for l in 0..LAYERS {
                    let mut q: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
                    q[i] = l.to_string();
                    tensors.push((q.join("."), scaled.clone()));
                }
            }
            Some(_) => {}
            None => tensors.push((name.to_string(), scaled)),
        }
    }
    tensors.sort();
    tensors.dedup();
    let mut s = seed;
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape) in &tensors {
        let n: usize = shape.iter().product();
        let is_ln = name.contains("layernorm");
        let values: Vec<u8> = (0..n)
            .flat_map(|_| {
                let v = if is_ln && name.ends_with(".weight") {
                    1.0
                } else if name.ends_with(".bias") {
                    0.0
                } else {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    // Uniform on ±0.02·√3: standard deviation 0.02, as SAT's initialisation.
                    (((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5) * 2.0 * 0.034_641
                };
                half::bf16::from_f32(v).to_bits().to_le_bytes()
            })
            .collect();
        data.push((name.clone(), shape.clone(), values));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(n, sh, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, sh.clone(), b).expect("sizes match"),
            )
        })
        .collect();
    std::fs::create_dir_all(out.join("1"))?;
    safetensors::serialize_to_file(views, None, &out.join("1/mp_rank_00_model_states.pt"))?;
    std::fs::write(out.join("latest"), "1")?;
    // The fixture's configuration with the mid-size numbers.
    let mut cfg: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("model_config.json"))?)?;
    cfg.insert("num_layers".into(), LAYERS.into());
    cfg.insert("hidden_size".into(), HIDDEN.into());
    cfg.insert("num_attention_heads".into(), HEADS.into());
    cfg.insert("vocab_size".into(), 150003.into());
    cfg.insert("image_vocab_size".into(), 20000.into());
    cfg.insert("start_of_image_id".into(), 150000.into());
    std::fs::write(out.join("model_config.json"), serde_json::to_string_pretty(&cfg)?)?;
    let params: usize = tensors.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    println!("{}: {} tensors, {:.1} M parameters", out.display(), tensors.len(), params as f64 / 1e6);
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "target/bench/mid".into());
    let out = Path::new(&out);
    let fx = Path::new("tests/fixtures/model-dir");
    write(&fx.join("coglm"), &out.join("coglm"), 1)?;
    write(&fx.join("cogview2-dsr"), &out.join("sr/dsr"), 2)?;
    write(&fx.join("cogview2-itersr"), &out.join("sr/itersr"), 3)?;
    Ok(())
}
