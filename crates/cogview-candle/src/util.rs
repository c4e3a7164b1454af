use candle_core::{DType as CDType, Device as CDevice, Tensor};
use cogview_checkpoint::{Checkpoint, WeightDType};
use cogview_core::{DType, Device, Error, Result};

/// How to place loaded weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadOptions {
    pub device: Device,
    /// The dtype the transformer computes in. LayerNorm, softmax and the output head run in f32.
    pub dtype: DType,
}

pub(crate) trait BackendResult<T> {
    fn be(self) -> Result<T>;
}

impl<T> BackendResult<T> for candle_core::Result<T> {
    fn be(self) -> Result<T> {
        self.map_err(|e| Error::Backend(e.to_string()))
    }
}

/// The candle device for a cogview device.
pub fn device(d: Device) -> Result<CDevice> {
    match d {
        Device::Cpu => Ok(CDevice::Cpu),
        Device::Cuda(i) => CDevice::new_cuda(i).map_err(|e| {
            Error::Backend(format!(
                "cannot use CUDA device {i}: {e} (build with `--features cuda` on a machine with an NVIDIA GPU)"
            ))
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
