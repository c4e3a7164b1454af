//! Moving checkpoint tensors into libtorch, and the glue between tch and cogview's errors.

use cogview_checkpoint::{Checkpoint, WeightDType};
use cogview_core::{DType, Device as CvDevice, Error, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tch::{Device, Kind, Tensor};

/// A tensor that is never modified after loading and is therefore safe to read from several
/// threads at once (libtorch's read-only operators and its atomic reference counts are
/// thread-safe). tch only marks `Tensor` as `Send`.
pub struct Frozen(Tensor);

// SAFETY: a `Frozen` tensor is only ever passed by shared reference to libtorch operators that do
// not write to it (every in-place operation in this crate targets tensors owned by one session).
unsafe impl Sync for Frozen {}

impl Frozen {
    pub fn new(t: Tensor) -> Self {
        Frozen(t)
    }
}

impl std::ops::Deref for Frozen {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.0
    }
}

/// The libtorch element type of a cogview dtype.
pub fn kind(d: DType) -> Kind {
    match d {
        DType::F32 => Kind::Float,
        DType::F16 => Kind::Half,
        DType::Bf16 => Kind::BFloat16,
    }
}

/// The libtorch device of a cogview device (whether it is usable is checked by the backend).
pub fn device(d: CvDevice) -> Device {
    match d {
        CvDevice::Cpu => Device::Cpu,
        CvDevice::Cuda(i) => Device::Cuda(i),
    }
}

/// Runs libtorch work, turning a libtorch failure (tch raises C++ exceptions as panics) into
/// `Error::Backend` instead of unwinding into the plugin ABI, which would poison the model's handle.
pub fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    let _no_grad = tch::no_grad_guard();
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let msg = if let Some(s) = payload.downcast_ref::<&str>() {
            s.to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "unknown libtorch failure".to_string()
        };
        // tch's messages carry libtorch's C++ backtrace after the first line.
        let first = msg.lines().next().unwrap_or("").trim().to_string();
        Error::backend(format!("tch {what}: {first}"))
    })
}

/// Reads tensors out of a checkpoint, reporting progress and checking for cancellation.
pub struct Loader<'a> {
    pub ckpt: &'a Checkpoint,
    pub device: Device,
    pub request: &'a cogview_core::backend::LoadRequest,
    pub total: usize,
    pub done: std::cell::Cell<usize>,
}

impl<'a> Loader<'a> {
    pub fn new(
        ckpt: &'a Checkpoint,
        device: Device,
        request: &'a cogview_core::backend::LoadRequest,
        total: usize,
    ) -> Self {
        request.report(0, total);
        Loader {
            ckpt,
            device,
            request,
            total,
            done: std::cell::Cell::new(0),
        }
    }

    /// The tensor `name` as `kind` on the loader's device.
    pub fn load(&self, name: &str, kind: Kind) -> Result<Tensor> {
        self.request.check_cancelled()?;
        let info = self
            .ckpt
            .info(name)
            .ok_or_else(|| Error::checkpoint(self.ckpt.path(), format!("no tensor named {name}")))?;
        let src = match info.dtype {
            WeightDType::F32 => Kind::Float,
            WeightDType::F16 => Kind::Half,
            WeightDType::BF16 => Kind::BFloat16,
            WeightDType::F64 => Kind::Double,
            other => {
                return Err(Error::checkpoint(
                    self.ckpt.path(),
                    format!("tensor {name} is {}, not floating point", other.name()),
                ))
            }
        };
        let shape: Vec<i64> = info.shape.iter().map(|&s| s as i64).collect();
        let bytes = self.ckpt.bytes(name)?;
        let device = self.device;
        let t = guard("load", || {
            // `from_data_size` copies the bytes into a CPU tensor of the stored type.
            Tensor::from_data_size(&bytes, &shape, src)
                .to_kind(kind)
                .to_device(device)
        })?;
        drop(bytes);
        // The tensor is a copy: let the mapped file's pages go.
        self.ckpt.evict(name);
        let done = self.done.get() + 1;
        self.done.set(done);
        self.request.report(done.min(self.total), self.total);
        Ok(t)
    }
}

/// A `[rows, cols]` f32 tensor as a row-major vector.
pub fn to_vec_f32(t: &Tensor) -> Vec<f32> {
    let t = t
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
        .contiguous()
        .view([-1]);
    let n = t.numel();
    let mut out = vec![0f32; n];
    t.copy_data(&mut out, n);
    out
}

/// Host data as an int64 index tensor on `device`.
pub fn index_tensor(ids: &[u32], device: Device) -> Tensor {
    let v: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    Tensor::from_slice(&v).to_device(device)
}

/// Host f32 data shaped `shape` on `device`.
pub fn f32_tensor(data: &[f32], shape: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(data).view(shape).to_device(device)
}
