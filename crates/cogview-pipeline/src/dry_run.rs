//! `--dry-run`: what each stage would load and how much memory the run would need, read from the
//! configurations and checkpoint headers only.

use crate::settings::Settings;
use cogview_core::{DType, Device, MemoryEstimate, Result};
use serde::Serialize;
use std::path::PathBuf;

/// One stage's estimate.
#[derive(Debug, Clone, Serialize)]
pub struct StageEstimate {
    /// `coglm`, `dsr`, `itersr` or `image_tokenizer`.
    pub stage: &'static str,
    /// The checkpoint.
    pub path: PathBuf,
    /// Where it would run.
    pub device: Device,
    /// The dtype it would compute in.
    pub dtype: DType,
    /// Images this stage processes at once.
    pub batch: usize,
    /// Parameters, weight bytes and working set.
    #[serde(flatten)]
    pub memory: MemoryEstimate,
}

/// The whole run's estimate.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// Each stage that would load.
    pub stages: Vec<StageEstimate>,
    /// Whether stages would be loaded one at a time.
    pub low_memory: bool,
    /// Weights of every stage plus the largest working set; in low-memory mode, the largest stage.
    pub peak_bytes: u64,
}

/// The bytes of the largest tensor in the file: while it is copied, its file pages and the copy
/// are both resident (the loader drops each tensor's file pages right after copying it).
fn largest_stored_tensor(path: &std::path::Path) -> Result<u64> {
    let ckpt = cogview_model::inspect::open_checkpoint(path)?;
    Ok(ckpt
        .names()
        .filter_map(|n| ckpt.info(n))
        .map(|i| (i.shape.iter().product::<usize>() * i.dtype.size()) as u64)
        .max()
        .unwrap_or(0))
}

/// A stage's estimate with loading accounted for: the working set is at least the largest tensor
/// in transit.
fn with_loading(mut m: MemoryEstimate, path: &std::path::Path) -> Result<MemoryEstimate> {
    m.activation_bytes = m.activation_bytes.max(largest_stored_tensor(path)?);
    Ok(m)
}

/// Estimates a run of `num_images` images (stage 1 only when the settings have no DSR/ItersR).
pub fn dry_run(settings: &Settings, num_images: usize) -> Result<DryRun> {
    let s = settings;
    let mut stages = Vec::new();
    let (coglm, _) = cogview_model::inspect::coglm_config(&s.coglm.placement.path)?;
    let layout_cfg = cogview_model::inspect::model_config(&s.coglm.placement.path)?;
    let grid = layout_cfg.opt_usize("image_grid")?.unwrap_or(20);
    let max_text = layout_cfg.opt_usize("max_text_tokens")?.unwrap_or(109);
    // A pipeline that reranks draws `coglm.rerank` stage-1 candidates per image.
    let batch = num_images
        .saturating_mul(s.coglm.rerank)
        .clamp(1, s.coglm.batch_size);
    let p = &s.coglm.placement;
    stages.push(StageEstimate {
        stage: "coglm",
        path: p.path.clone(),
        device: p.device,
        dtype: p.dtype,
        batch,
        memory: with_loading(
            cogview_candle::inspect::coglm_memory(
                &coglm,
                batch,
                max_text + 1,
                grid * grid,
                p.dtype,
                p.device,
            ),
            &p.path,
        )?,
    });
    let mut side = grid * 8;
    for (name, placement) in [
        ("dsr", s.dsr.as_ref().map(|d| &d.placement)),
        ("itersr", s.itersr.as_ref().map(|i| &i.placement)),
    ] {
        if let Some(p) = placement {
            let (cfg, _) = cogview_model::inspect::sr_config(&p.path)?;
            side = cfg.high * 8;
            stages.push(StageEstimate {
                stage: name,
                path: p.path.clone(),
                device: p.device,
                dtype: p.dtype,
                batch: 1,
                memory: with_loading(
                    cogview_candle::inspect::sr_memory(&cfg, p.dtype, p.device),
                    &p.path,
                )?,
            });
        }
    }
    let p = &s.image_tokenizer;
    let (vq, _) = cogview_model::inspect::vq_config(&p.path)?;
    stages.push(StageEstimate {
        stage: "image_tokenizer",
        path: p.path.clone(),
        device: p.device,
        dtype: p.dtype,
        batch: 1,
        memory: with_loading(
            cogview_candle::inspect::vq_memory(&vq, side, p.dtype, p.device),
            &p.path,
        )?,
    });
    let peak_bytes = if s.low_memory {
        stages
            .iter()
            .map(|e| e.memory.peak_bytes())
            .max()
            .unwrap_or(0)
    } else {
        stages.iter().map(|e| e.memory.weight_bytes).sum::<u64>()
            + stages
                .iter()
                .map(|e| e.memory.activation_bytes)
                .max()
                .unwrap_or(0)
    };
    Ok(DryRun {
        stages,
        low_memory: s.low_memory,
        peak_bytes,
    })
}

/// Bytes in binary units with one decimal (`1.5 GiB`).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl std::fmt::Display for DryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<16} {:>14} {:>6} {:>7} {:>6} {:>11} {:>11} {:>11}",
            "stage", "parameters", "dtype", "device", "batch", "weights", "activations", "peak"
        )?;
        for e in &self.stages {
            writeln!(
                f,
                "{:<16} {:>14} {:>6} {:>7} {:>6} {:>11} {:>11} {:>11}",
                e.stage,
                e.memory.parameters,
                e.dtype.to_string(),
                e.device.to_string(),
                e.batch,
                human_bytes(e.memory.weight_bytes),
                human_bytes(e.memory.activation_bytes),
                human_bytes(e.memory.peak_bytes()),
            )?;
        }
        write!(
            f,
            "estimated peak memory: {} ({})",
            human_bytes(self.peak_bytes),
            if self.low_memory {
                "low-memory: one stage's weights at a time"
            } else {
                "all stages' weights stay loaded"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GiB");
    }
}
