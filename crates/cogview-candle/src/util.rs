use candle_core::{DType as CDType, Device as CDevice, Tensor};
use cogview_checkpoint::{Checkpoint, WeightDType};
use cogview_core::{DType, Device, Error, Result};

/// How to place loaded weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    /// Where the weights go.
    pub device: Device,
    /// The dtype the transformer computes in. LayerNorm, softmax and the output head run in f32.
    pub dtype: DType,
    /// Store the transformer layers' linear weights in int8 with per-output-row scales (CPU
    /// only; the backend option `weights = "int8"`, see [`crate::backend`]): a decoding step reads
    /// a quarter of f32's bytes. Activations stay f32.
    pub int8_weights: bool,
}

/// Converts candle's errors into [`Error::Backend`], keeping the candle error as its source.
pub(crate) trait BackendResult<T> {
    fn be(self) -> Result<T>;
}

impl<T> BackendResult<T> for candle_core::Result<T> {
    fn be(self) -> Result<T> {
        self.map_err(|e| Error::backend_source("", e))
    }
}

/// The candle device for a cogview device.
pub fn device(d: Device) -> Result<CDevice> {
    match d {
        Device::Cpu => Ok(CDevice::Cpu),
        Device::Cuda(i) => CDevice::new_cuda(i).map_err(|e| Error::Backend {
            message: if cfg!(feature = "cuda") {
                format!("cannot use CUDA device {i}: {e}")
            } else {
                format!(
                    "cannot use CUDA device {i}: {e} (this build has no CUDA kernels: use the candle-cuda plugin, see docs/cuda.md)"
                )
            },
            source: Some(Box::new(e)),
        }),
    }
}

pub(crate) fn cdtype(d: DType) -> CDType {
    match d {
        DType::F32 => CDType::F32,
        DType::F16 => CDType::F16,
        DType::Bf16 => CDType::BF16,
    }
}

/// Loads one tensor from a checkpoint onto `device` as `dtype`.
pub(crate) fn load_tensor(
    ckpt: &Checkpoint,
    name: &str,
    dtype: CDType,
    device: &CDevice,
) -> Result<Tensor> {
    let info = ckpt
        .info(name)
        .ok_or_else(|| Error::checkpoint(ckpt.path(), format!("no tensor named {name}")))?;
    let src = match info.dtype {
        WeightDType::F32 => CDType::F32,
        WeightDType::F16 => CDType::F16,
        WeightDType::BF16 => CDType::BF16,
        WeightDType::F64 => CDType::F64,
        other => {
            return Err(Error::checkpoint(
                ckpt.path(),
                format!("tensor {name} is {}, not floating point", other.name()),
            ))
        }
    };
    let bytes = ckpt.bytes(name)?;
    let t = Tensor::from_raw_buffer(&bytes, src, &info.shape, device)
        .and_then(|t| t.to_dtype(dtype))
        .be()?;
    drop(bytes);
    // The tensor is copied: let the mapped file's pages go, so loading holds one copy, not two.
    ckpt.evict(name);
    Ok(t)
}

/// Where a model's tensors come from: a checkpoint on disk ([`Checkpoint`]) or trainable
/// variables ([`VarStore`]). Models are built the same way from either, so the trained model and
/// the loaded model are one implementation.
pub trait TensorSource {
    /// The tensor `name` on `device` as `dtype`.
    fn load(&self, name: &str, dtype: CDType, device: &CDevice) -> Result<Tensor>;
    /// Whether the source has a tensor `name`.
    fn contains(&self, name: &str) -> bool;
    /// Every expected tensor present with its shape, nothing unexpected (names matching `ignore`
    /// aside).
    fn check_tensors(
        &self,
        expected: &[(String, Vec<usize>)],
        ignore: &dyn Fn(&str) -> bool,
    ) -> Result<()>;
}

impl TensorSource for Checkpoint {
    fn load(&self, name: &str, dtype: CDType, device: &CDevice) -> Result<Tensor> {
        load_tensor(self, name, dtype, device)
    }
    fn contains(&self, name: &str) -> bool {
        self.info(name).is_some()
    }
    fn check_tensors(
        &self,
        expected: &[(String, Vec<usize>)],
        ignore: &dyn Fn(&str) -> bool,
    ) -> Result<()> {
        self.check(expected, ignore)
    }
}

/// Named trainable tensors (f32): what training builds a model from and saves.
#[derive(Default)]
pub struct VarStore {
    vars: std::collections::BTreeMap<String, candle_core::Var>,
}

impl VarStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds (or replaces) the variable `name`.
    pub fn insert(&mut self, name: impl Into<String>, var: candle_core::Var) {
        self.vars.insert(name.into(), var);
    }
    /// The variable `name`, if any.
    pub fn get(&self, name: &str) -> Option<&candle_core::Var> {
        self.vars.get(name)
    }
    /// The variables' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(|s| s.as_str())
    }
    /// The variables with their names, sorted by name.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &candle_core::Var)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v))
    }
    /// Variables in the store.
    pub fn len(&self) -> usize {
        self.vars.len()
    }
    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
    /// Total number of elements.
    pub fn parameters(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }
    /// Copies every tensor of a checkpoint into trainable f32 variables (resuming, fine-tuning).
    pub fn from_source(
        src: &Checkpoint,
        names: impl IntoIterator<Item = String>,
        device: &CDevice,
    ) -> Result<Self> {
        let mut vs = VarStore::new();
        for n in names {
            let t = load_tensor(src, &n, CDType::F32, device)?;
            vs.insert(n, candle_core::Var::from_tensor(&t).be()?);
        }
        Ok(vs)
    }
}

impl TensorSource for VarStore {
    fn load(&self, name: &str, dtype: CDType, _device: &CDevice) -> Result<Tensor> {
        let v = self
            .vars
            .get(name)
            .ok_or_else(|| Error::backend(format!("no variable named {name}")))?;
        if dtype == v.dtype() {
            Ok(v.as_tensor().clone())
        } else {
            // A cast of a variable is still differentiable.
            v.as_tensor().to_dtype(dtype).be()
        }
    }
    fn contains(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }
    fn check_tensors(
        &self,
        expected: &[(String, Vec<usize>)],
        ignore: &dyn Fn(&str) -> bool,
    ) -> Result<()> {
        let mut missing = Vec::new();
        let mut mis_shaped = Vec::new();
        for (name, shape) in expected {
            match self.vars.get(name) {
                None => missing.push(name.clone()),
                Some(v) if v.dims() != shape.as_slice() => {
                    mis_shaped.push(cogview_core::ShapeMismatch {
                        name: name.clone(),
                        expected: shape.clone(),
                        found: v.dims().to_vec(),
                    })
                }
                Some(_) => {}
            }
        }
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        let unexpected: Vec<String> = self
            .names()
            .filter(|n| !known.contains(n) && !ignore(n))
            .map(str::to_string)
            .collect();
        if missing.is_empty() && mis_shaped.is_empty() && unexpected.is_empty() {
            Ok(())
        } else {
            Err(Error::WeightMismatch {
                path: "(variables)".into(),
                missing,
                unexpected,
                mis_shaped,
                bad_dtype: Vec::new(),
            })
        }
    }
}
