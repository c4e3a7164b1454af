//! Adam with decoupled weight decay over a [`VarStore`], its state saved with the weights so that
//! training resumes exactly where it stopped, and parameter initialisation by tensor role.

use candle_core::{DType, Device, Tensor, Var};
use cogview_candle::VarStore;
use cogview_core::{Error, Result, Rng};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub(crate) fn be<T>(r: candle_core::Result<T>) -> Result<T> {
    r.map_err(|e| Error::backend_source("", e))
}

/// Evaluates a candle expression (which may use `?` on candle results) into a cogview result.
macro_rules! cd {
    ($e:expr) => {{
        #[allow(clippy::redundant_closure_call)]
        let r = (|| -> candle_core::Result<_> { $e })();
        $crate::optim::be(r)
    }};
}
#[allow(unused_imports)]
pub(crate) use cd;

/// AdamW (Loshchilov & Hutter) with bias correction.
pub struct AdamW {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub step: u64,
    /// First and second moments by variable name.
    moments: BTreeMap<String, (Tensor, Tensor)>,
}

impl AdamW {
    pub fn new(lr: f64, weight_decay: f64) -> Self {
        AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay,
            step: 0,
            moments: BTreeMap::new(),
        }
    }

    /// One update of every variable in `vars` that has a gradient, except those named in `skip`.
    /// Weight decay applies to matrices and convolution kernels only (not to norms, biases or
    /// embeddings).
    pub fn apply(
        &mut self,
        vars: &VarStore,
        grads: &candle_core::backprop::GradStore,
        skip: &dyn Fn(&str) -> bool,
    ) -> Result<()> {
        self.step += 1;
        let t = self.step as f64;
        let c1 = 1.0 - self.beta1.powf(t);
        let c2 = 1.0 - self.beta2.powf(t);
        for (name, var) in vars.vars() {
            if skip(name) {
                continue;
            }
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let (m, v) = match self.moments.get(name) {
                Some(mv) => mv.clone(),
                None => (cd!(g.zeros_like())?, cd!(g.zeros_like())?),
            };
            let m = cd!((m * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            let v = cd!((v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = cd!(((&m / c1)? / ((&v / c2)?.sqrt()? + self.eps)?)? * self.lr)?;
            let decays = var.rank() >= 2 && !name.contains("embeddings") && !name.contains("embed");
            let w = var.as_tensor();
            let new = if decays && self.weight_decay > 0.0 {
                cd!((w * (1.0 - self.lr * self.weight_decay))? - update)?
            } else {
                cd!(w - update)?
            };
            cd!(var.set(&new))?;
            self.moments.insert(name.to_string(), (m, v));
        }
        Ok(())
    }
}

/// Initialises a variable for a tensor of the SAT / icetk layouts by its name and shape:
/// LayerNorm/GroupNorm weights 1, biases 0, embeddings N(0, 0.02²) (word/position), linear and
/// convolution kernels N(0, 1/fan_in) (scaled down by `residual_scale` for the projections that
/// write into a residual stream).
pub fn init_tensor(
    name: &str,
    shape: &[usize],
    rng: &mut Rng,
    residual_scale: f64,
    device: &Device,
) -> Result<Var> {
    let n: usize = shape.iter().product();
    let is_norm = name.contains("norm");
    let data: Vec<f32> = if name.ends_with(".bias") {
        vec![0.0; n]
    } else if is_norm {
        vec![1.0; n]
    } else {
        let std = if name.contains("embeddings") {
            0.02
        } else {
            let fan_in: usize = shape[1..].iter().product::<usize>().max(1);
            let residual = name.ends_with("attention.dense.weight")
                || name.ends_with("dense_4h_to_h.weight")
                || name.contains("attention_plus.dense")
                || name.ends_with("conv2.weight")
                || name.ends_with("proj_out.weight");
            (1.0 / fan_in as f64).sqrt() * if residual { residual_scale } else { 1.0 }
        };
        (0..n).map(|_| (rng.normal() * std) as f32).collect()
    };
    cd!(Var::from_vec(data, shape, device))
}

/// A fresh store with every tensor of `expected`.
pub fn init_store(
    expected: &[(String, Vec<usize>)],
    seed: u64,
    residual_scale: f64,
) -> Result<VarStore> {
    let mut rng = Rng::from_seed(seed);
    let mut vs = VarStore::new();
    for (name, shape) in expected {
        vs.insert(
            name.clone(),
            init_tensor(name, shape, &mut rng, residual_scale, &Device::Cpu)?,
        );
    }
    Ok(vs)
}

/// What [`init_from`] took from the trained weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// Variables copied (same name and shape).
    pub copied: usize,
    /// Variables left at their fresh initialisation: absent from the file, or of another shape
    /// (e.g. position tables of another grid), as `name: file shape → model shape`.
    pub kept_fresh: Vec<String>,
    /// The names of the variables absent from the file (a subset of `kept_fresh`).
    pub absent: Vec<String>,
}

/// Starts `vars` from trained weights: a model file as `cogview train` writes it (tensors by
/// name, f16 or f32) or a training state (`param.<name>`, f32). Every variable with a tensor of
/// the same name and shape is copied; the rest keep their fresh initialisation and are listed.
/// A file that shares no variable with the model is an error.
pub fn init_from(vars: &VarStore, path: &Path) -> Result<InitReport> {
    let ckpt = cogview_checkpoint::Checkpoint::open(path, None)?;
    let names: std::collections::HashSet<&str> = ckpt.names().collect();
    let mut report = InitReport {
        copied: 0,
        kept_fresh: Vec::new(),
        absent: Vec::new(),
    };
    for (n, v) in vars.vars() {
        let state_name = format!("param.{n}");
        let name = if names.contains(state_name.as_str()) {
            state_name.as_str()
        } else if names.contains(n) {
            n
        } else {
            report.kept_fresh.push(format!("{n}: not in the file"));
            report.absent.push(n.to_string());
            continue;
        };
        let t = {
            use cogview_candle::TensorSource;
            ckpt.load(name, DType::F32, &Device::Cpu)?
        };
        if t.dims() != v.dims() {
            report.kept_fresh.push(format!(
                "{n}: {:?} in the file, {:?} in the model",
                t.dims(),
                v.dims()
            ));
            continue;
        }
        cd!(v.set(&t))?;
        report.copied += 1;
    }
    if report.copied == 0 {
        return Err(Error::invalid_input(
            "--init-from",
            format!(
                "{} shares no tensor (same name and shape) with the model being trained: give \
                 weights or a state.safetensors of the same part (coglm, dsr or itersr)",
                path.display()
            ),
        ));
    }
    if report.kept_fresh.is_empty() {
        tracing::info!("every tensor starts from {}", path.display());
    } else {
        tracing::warn!(
            "{} tensors start from {}; these start fresh: {}",
            report.copied,
            path.display(),
            report.kept_fresh.join("; ")
        );
    }
    Ok(report)
}

/// A resumed state must have as many layers as the model being trained (`--layers`); shapes
/// alone would only say that a tensor is missing.
pub fn check_resumed_layers(state: &Path, layers: usize) -> Result<()> {
    let ckpt = cogview_checkpoint::Checkpoint::open(state, None)?;
    let saved = ckpt
        .metadata()
        .get("model_config")
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .and_then(|c| c["num_layers"].as_u64());
    match saved {
        Some(l) if l as usize != layers => Err(Error::invalid_input(
            "--layers",
            format!(
                "{} holds a model of {l} layers, not {layers}: pass --layers {l} to resume it, or \
                 give another --out (with --init-from this state) to grow it",
                state.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Starts `vars` from trained weights ([`init_from`]) and makes every layer the file lacks the
/// identity ([`added_layers_as_identity`]), so a model deeper than the file starts as the file's
/// model.
pub fn init_from_growing(vars: &VarStore, path: &Path, num_layers: usize) -> Result<InitReport> {
    let report = init_from(vars, path)?;
    let grown = added_layers_as_identity(vars, &report, num_layers)?;
    if !grown.is_empty() {
        tracing::info!(
            "layers {grown:?} are not in {} and start as the identity",
            path.display()
        );
    }
    Ok(report)
}

/// Depth growth (`cogview train … --layers`): every layer that `init_from` left wholly fresh
/// (none of its tensors in the file) is made the identity by zeroing its post-attention and
/// post-MLP LayerNorms (`third_layernorm`, `fourth_layernorm`, weight and bias): a sandwich layer
/// computes x + LN3(attention(LN1(x))) and then x + LN4(MLP(LN2(x))) (DSR's second stream and
/// ItersR too go through the same LN3 and LN4), so both residual branches add exactly zero.
/// Training then starts from the file's model (the gains receive gradient from the first step,
/// the rest of the layer once they are nonzero). Returns the indices of the layers made the
/// identity.
pub fn added_layers_as_identity(
    vars: &VarStore,
    report: &InitReport,
    num_layers: usize,
) -> Result<Vec<usize>> {
    let absent: std::collections::HashSet<&str> =
        report.absent.iter().map(String::as_str).collect();
    let mut grown = Vec::new();
    for i in 0..num_layers {
        let prefix = format!("transformer.layers.{i}.");
        let mut layer = vars
            .vars()
            .filter(|(n, _)| n.starts_with(&prefix))
            .peekable();
        if layer.peek().is_none() || !layer.all(|(n, _)| absent.contains(n)) {
            continue;
        }
        for ln in ["third_layernorm", "fourth_layernorm"] {
            for p in ["weight", "bias"] {
                let name = format!("{prefix}{ln}.{p}");
                let (_, v) = vars.vars().find(|(n, _)| *n == name).ok_or_else(|| {
                    Error::invalid_input("--layers", format!("the model has no tensor {name}"))
                })?;
                cd!(v.as_tensor().zeros_like().and_then(|z| v.set(&z)))?;
            }
        }
        grown.push(i);
    }
    Ok(grown)
}

/// Saves the variables (f32, or f16 when `half`) to a safetensors file with `metadata`.
pub fn save_weights(
    vars: &VarStore,
    extra: &[(String, Tensor)],
    path: &Path,
    metadata: HashMap<String, String>,
    half: bool,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> = vars
        .vars()
        .map(|(n, v)| (n.to_string(), v.as_tensor().clone()))
        .collect();
    tensors.extend(extra.iter().cloned());
    let mut converted = Vec::with_capacity(tensors.len());
    for (n, t) in tensors {
        let t = if half && t.dtype() == DType::F32 {
            cd!(t.to_dtype(DType::F16))?
        } else {
            t
        };
        converted.push((n, t));
    }
    // Through a temporary file renamed into place (cogview_core::output): a crash, a kill or a
    // full disk mid-save leaves the previous state whole, and `--resume` starts from it.
    let tensors: HashMap<String, Tensor> = converted.into_iter().collect();
    cogview_core::output::write_with(path, |tmp| {
        cd!(candle_core::safetensors::save(&tensors, tmp))?;
        // candle's writer takes no metadata: rewrite the header with it.
        add_metadata(tmp, &metadata)
    })
}

/// Rewrites a safetensors header to carry `metadata` (`__metadata__`).
fn add_metadata(path: &Path, metadata: &HashMap<String, String>) -> Result<()> {
    if metadata.is_empty() {
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| Error::backend_source("", e))?;
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(metadata).map_err(|e| Error::backend_source("", e))?,
    );
    let mut text = serde_json::to_vec(&header).map_err(|e| Error::backend_source("", e))?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).map_err(|e| cogview_core::output::write_error(path, e))
}

/// The learning rate at `step`: linear warm-up over `warmup` steps, then cosine decay to a tenth
/// of `peak` at `total`.
pub fn learning_rate(step: u64, warmup: u64, total: u64, peak: f64) -> f64 {
    let s = step as f64;
    if s < warmup as f64 {
        peak * (s + 1.0) / warmup as f64
    } else {
        let p = (s - warmup as f64) / total.saturating_sub(warmup).max(1) as f64;
        peak * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
    }
}

/// Writes the resumable state and the exported weights (f16) together.
pub fn checkpoint(
    state: &Path,
    weights: &Path,
    vars: &VarStore,
    opt: &AdamW,
    metadata: HashMap<String, String>,
) -> Result<()> {
    save_state(state, vars, opt, &[], metadata.clone())?;
    save_weights(vars, &[], weights, metadata, true)
}

/// Training state: weights, optimizer moments and the step, in one safetensors file
/// (`param.<name>`, `adam_m.<name>`, `adam_v.<name>`, and `extra.<name>` for other state such as
/// EMA buffers).
pub fn save_state(
    path: &Path,
    vars: &VarStore,
    opt: &AdamW,
    extra: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let mut store = VarStore::new();
    for (n, v) in vars.vars() {
        store.insert(format!("param.{n}"), v.clone());
    }
    let mut more: Vec<(String, Tensor)> = Vec::new();
    for (n, (m, v)) in &opt.moments {
        more.push((format!("adam_m.{n}"), m.clone()));
        more.push((format!("adam_v.{n}"), v.clone()));
    }
    for (n, t) in extra {
        more.push((format!("extra.{n}"), t.clone()));
    }
    let mut metadata = metadata;
    metadata.insert("step".into(), opt.step.to_string());
    save_weights(&store, &more, path, metadata, false)
}

/// Loads a state written by [`save_state`] into `vars` (which must hold the same names and
/// shapes) and `opt`; returns the extra tensors and the metadata.
pub fn load_state(
    path: &Path,
    vars: &VarStore,
    opt: &mut AdamW,
) -> Result<(BTreeMap<String, Tensor>, HashMap<String, String>)> {
    let ckpt = cogview_checkpoint::Checkpoint::open(path, None)?;
    let metadata = ckpt.metadata().clone();
    let load = |n: &str| -> Result<Tensor> {
        use cogview_candle::TensorSource;
        ckpt.load(n, DType::F32, &Device::Cpu)
    };
    for (n, v) in vars.vars() {
        let t = load(&format!("param.{n}"))?;
        if t.dims() != v.dims() {
            return Err(Error::invalid_input(
                "state",
                format!(
                    "{}: {n} has shape {:?}, the model {:?}",
                    path.display(),
                    t.dims(),
                    v.dims()
                ),
            ));
        }
        cd!(v.set(&t))?;
    }
    opt.moments.clear();
    let mut extra = BTreeMap::new();
    for name in ckpt.names() {
        if let Some(n) = name.strip_prefix("adam_m.") {
            let m = load(name)?;
            let v = load(&format!("adam_v.{n}"))?;
            opt.moments.insert(n.to_string(), (m, v));
        } else if let Some(n) = name.strip_prefix("extra.") {
            extra.insert(n.to_string(), load(name)?);
        }
    }
    opt.step = metadata
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::invalid_input("state", "the state has no step"))?;
    Ok((extra, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_warms_up_then_decays_to_a_tenth() {
        assert!((learning_rate(0, 10, 100, 1.0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(9, 10, 100, 1.0) - 1.0).abs() < 1e-12);
        assert!((learning_rate(10, 10, 100, 1.0) - 1.0).abs() < 1e-12);
        assert!((learning_rate(55, 10, 100, 1.0) - 0.55).abs() < 1e-12);
        assert!((learning_rate(100, 10, 100, 1.0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(500, 10, 100, 1.0) - 0.1).abs() < 1e-12);
    }

    fn store(vars: &[(&str, Vec<f32>, Vec<usize>)]) -> VarStore {
        let mut vs = VarStore::new();
        for (n, data, shape) in vars {
            let t = Tensor::from_vec(data.clone(), shape.as_slice(), &Device::Cpu).unwrap();
            vs.insert(*n, Var::from_tensor(&t).unwrap());
        }
        vs
    }

    fn values(vs: &VarStore, n: &str) -> Vec<f32> {
        let (_, v) = vs.vars().find(|(k, _)| *k == n).unwrap();
        v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn init_from_copies_same_shaped_tensors_and_names_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let trained = store(&[
            ("a", vec![1.0, 2.0], vec![2]),
            ("pos", vec![5.0; 6], vec![3, 2]),
        ]);
        let file = dir.path().join("w.safetensors");
        save_weights(&trained, &[], &file, HashMap::new(), false).unwrap();

        let fresh = store(&[
            ("a", vec![0.0, 0.0], vec![2]),
            ("pos", vec![0.0; 8], vec![4, 2]),
            ("new", vec![7.0], vec![1]),
        ]);
        let r = init_from(&fresh, &file).unwrap();
        assert_eq!(r.copied, 1);
        assert_eq!(values(&fresh, "a"), [1.0, 2.0]);
        // Another shape and an absent tensor keep their initialisation, and are named.
        assert_eq!(values(&fresh, "pos"), [0.0; 8]);
        assert_eq!(values(&fresh, "new"), [7.0]);
        assert_eq!(r.kept_fresh.len(), 2);
        assert!(r.kept_fresh[0].starts_with("new: not in the file"), "{r:?}");
        assert!(r.kept_fresh[1].contains("[3, 2]") && r.kept_fresh[1].contains("[4, 2]"));

        // A file of another part shares nothing: an error that says what to give.
        let other = store(&[("b", vec![0.0], vec![1])]);
        let e = init_from(&other, &file).unwrap_err().to_string();
        assert!(e.contains("shares no tensor"), "{e}");
    }
}
