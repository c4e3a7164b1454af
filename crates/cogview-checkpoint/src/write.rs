//! Writing safetensors files.

use crate::checkpoint::{Checkpoint, WeightDType};
use cogview_core::{Error, Result};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

struct View<'a> {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    data: Cow<'a, [u8]>,
}

impl safetensors::View for View<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn st_dtype(d: WeightDType) -> safetensors::Dtype {
    use safetensors::Dtype as D;
    match d {
        WeightDType::F64 => D::F64,
        WeightDType::F32 => D::F32,
        WeightDType::F16 => D::F16,
        WeightDType::BF16 => D::BF16,
        WeightDType::I64 => D::I64,
        WeightDType::I32 => D::I32,
        WeightDType::I16 => D::I16,
        WeightDType::I8 => D::I8,
        WeightDType::U8 => D::U8,
        WeightDType::Bool => D::BOOL,
    }
}

/// Writes the tensors of `ckpt` accepted by `keep` to a safetensors file, dtypes unchanged, with
/// `metadata` in the header.
pub fn write_safetensors(
    ckpt: &Checkpoint,
    keep: impl Fn(&str) -> bool,
    metadata: HashMap<String, String>,
    out: &Path,
) -> Result<usize> {
    let mut views = Vec::new();
    for name in ckpt.names().filter(|n| keep(n)) {
        let info = ckpt.info(name).expect("listed tensor");
        views.push((
            name.to_string(),
            View {
                dtype: st_dtype(info.dtype),
                shape: info.shape,
                data: ckpt.bytes(name)?,
            },
        ));
    }
    let n = views.len();
    // Through a temporary file renamed into place: a full disk or a crash never leaves half a
    // converted checkpoint under the final name.
    cogview_core::output::write_with(out, |tmp| {
        safetensors::serialize_to_file(views, Some(metadata), tmp).map_err(|e| match e {
            safetensors::SafeTensorError::IoError(e) => cogview_core::output::write_error(out, e),
            e => Error::io(out, std::io::Error::other(e.to_string())),
        })
    })?;
    Ok(n)
}
