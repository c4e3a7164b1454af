//! [`Checkpoint`]: the tensors of one file (SAT `.pt`, PyTorch zip or safetensors), memory-mapped,
//! with their dtypes and shapes, and the check against what a model expects.

use crate::sat::SatFolder;
use cogview_core::{Error, Result, ShapeMismatch};
use memmap2::Mmap;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Element types found in checkpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WeightDType {
    /// 64-bit float.
    F64,
    /// 32-bit float.
    F32,
    /// 16-bit float (IEEE half).
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit signed integer.
    I64,
    /// 32-bit signed integer.
    I32,
    /// 16-bit signed integer.
    I16,
    /// 8-bit signed integer.
    I8,
    /// 8-bit unsigned integer.
    U8,
    /// Boolean, one byte.
    Bool,
}

impl WeightDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            WeightDType::F64 | WeightDType::I64 => 8,
            WeightDType::F32 | WeightDType::I32 => 4,
            WeightDType::F16 | WeightDType::BF16 | WeightDType::I16 => 2,
            WeightDType::I8 | WeightDType::U8 | WeightDType::Bool => 1,
        }
    }
    /// Whether it is a floating-point type (weights must be).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            WeightDType::F64 | WeightDType::F32 | WeightDType::F16 | WeightDType::BF16
        )
    }
    fn from_torch_storage(class: &str) -> Option<Self> {
        Some(match class {
            "FloatStorage" => WeightDType::F32,
            "HalfStorage" => WeightDType::F16,
            "BFloat16Storage" => WeightDType::BF16,
            "DoubleStorage" => WeightDType::F64,
            "LongStorage" => WeightDType::I64,
            "IntStorage" => WeightDType::I32,
            "ShortStorage" => WeightDType::I16,
            "CharStorage" => WeightDType::I8,
            "ByteStorage" => WeightDType::U8,
            "BoolStorage" => WeightDType::Bool,
            _ => return None,
        })
    }
    fn from_safetensors(d: safetensors::Dtype) -> Option<Self> {
        use safetensors::Dtype as D;
        Some(match d {
            D::F64 => WeightDType::F64,
            D::F32 => WeightDType::F32,
            D::F16 => WeightDType::F16,
            D::BF16 => WeightDType::BF16,
            D::I64 => WeightDType::I64,
            D::I32 => WeightDType::I32,
            D::I16 => WeightDType::I16,
            D::I8 => WeightDType::I8,
            D::U8 => WeightDType::U8,
            D::BOOL => WeightDType::Bool,
            _ => return None,
        })
    }
    /// The short name used in messages (`f32`, `bf16`, `i64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            WeightDType::F64 => "f64",
            WeightDType::F32 => "f32",
            WeightDType::F16 => "f16",
            WeightDType::BF16 => "bf16",
            WeightDType::I64 => "i64",
            WeightDType::I32 => "i32",
            WeightDType::I16 => "i16",
            WeightDType::I8 => "i8",
            WeightDType::U8 => "u8",
            WeightDType::Bool => "bool",
        }
    }
}

/// Where one tensor's bytes are.
#[derive(Debug, Clone)]
struct Entry {
    dtype: WeightDType,
    shape: Vec<usize>,
    /// Element strides; `None` means contiguous.
    stride: Option<Vec<usize>>,
    /// Byte range of the tensor's storage inside the mapped file.
    storage: std::ops::Range<usize>,
    /// Offset of the first element inside the storage, in elements.
    offset: usize,
    /// Index into the archive's storages, whose CRC-32 is checked on first read (torch files).
    checked_storage: Option<usize>,
}

/// One storage record of a torch zip archive: its bytes and CRC-32, checked once, on first use.
#[derive(Debug)]
struct Storage {
    name: String,
    range: std::ops::Range<usize>,
    crc32: u32,
    ok: std::sync::OnceLock<bool>,
}

/// The file formats [`Checkpoint::open`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// `torch.save` zip archive (PyTorch ≥ 1.6).
    TorchZip,
    /// A safetensors file.
    Safetensors,
}

/// The tensors of one checkpoint file, memory-mapped.
#[derive(Clone)]
pub struct Checkpoint {
    path: PathBuf,
    format: Format,
    map: Arc<Mmap>,
    tensors: BTreeMap<String, Entry>,
    metadata: std::collections::HashMap<String, String>,
    storages: Arc<Vec<Storage>>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// A tensor's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The element type as stored.
    pub dtype: WeightDType,
    /// The shape.
    pub shape: Vec<usize>,
}

fn map_file(path: &Path) -> Result<Arc<Mmap>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and private to this process. As with every memory-mapped loader
    // (candle, safetensors), a file truncated by another process while mapped can fault; cogview
    // never writes to checkpoint files it has open.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    Ok(Arc::new(map))
}

impl Checkpoint {
    /// Opens a checkpoint file (format from its content) or a SAT folder (its model states file).
    /// `key` selects the sub-dictionary of a `torch.save` dict that holds the tensors (`"module"` for
    /// SAT and icetk files); when `None`, `"module"` is used if present, else the root dict.
    pub fn open(path: impl AsRef<Path>, key: Option<&str>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            let sat = SatFolder::open(path)?;
            return Checkpoint::open(&sat.model_file, key);
        }
        let map = map_file(path)?;
        Self::open_map(path, map, key)
    }

    /// Reads a checkpoint from bytes in memory (a file received over a network, a fuzzer's
    /// input); `name` stands for its path in errors. The bytes are copied once.
    pub fn from_bytes(bytes: &[u8], name: impl AsRef<Path>, key: Option<&str>) -> Result<Self> {
        let path = name.as_ref();
        if bytes.is_empty() {
            return Err(Error::checkpoint(path, "the file is empty"));
        }
        let mut map = memmap2::MmapMut::map_anon(bytes.len()).map_err(|e| Error::io(path, e))?;
        map.copy_from_slice(bytes);
        let map = map.make_read_only().map_err(|e| Error::io(path, e))?;
        Self::open_map(path, Arc::new(map), key)
    }

    fn open_map(path: &Path, map: Arc<Mmap>, key: Option<&str>) -> Result<Self> {
        if map.len() >= 4 && &map[..4] == b"PK\x03\x04" {
            Self::open_torch_zip(path, map, key)
        } else if map.len() >= 2 && map[0] == 0x80 && map[1] <= 5 {
            Err(Error::checkpoint(
                path,
                "this is a legacy (pre-PyTorch-1.6) torch.save file; re-save it with \
                 `torch.save(torch.load(f), f, _use_new_zipfile_serialization=True)` or convert it to safetensors",
            ))
        } else {
            Self::open_safetensors(path, map)
        }
    }

    fn open_safetensors(path: &Path, map: Arc<Mmap>) -> Result<Self> {
        let (header, meta) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| {
            Error::checkpoint(
                path,
                format!("neither a torch.save zip nor a valid safetensors file ({e})"),
            )
        })?;
        let base = 8 + header;
        let mut tensors = BTreeMap::new();
        for (name, info) in meta.tensors() {
            let dtype = WeightDType::from_safetensors(info.dtype).ok_or_else(|| {
                Error::checkpoint(
                    path,
                    format!("tensor {name} has unsupported dtype {:?}", info.dtype),
                )
            })?;
            let (s, e) = info.data_offsets;
            tensors.insert(
                name,
                Entry {
                    dtype,
                    shape: info.shape.clone(),
                    stride: None,
                    storage: base + s..base + e,
                    checked_storage: None,
                    offset: 0,
                },
            );
        }
        let metadata = meta.metadata().clone().unwrap_or_default();
        Ok(Checkpoint {
            path: path.to_path_buf(),
            format: Format::Safetensors,
            map,
            tensors,
            metadata,
            storages: Arc::default(),
        })
    }

    fn open_torch_zip(path: &Path, map: Arc<Mmap>, key: Option<&str>) -> Result<Self> {
        let bad = |reason: String| Error::checkpoint(path, reason);
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&map[..]))
            .map_err(|e| bad(format!("the zip archive is truncated or corrupt ({e})")))?;
        let pkl_name = zip
            .file_names()
            .filter_map(|n| n.ok())
            .find(|n| n.ends_with("data.pkl"))
            .map(|n| n.into_owned())
            .ok_or_else(|| bad("the zip archive has no data.pkl: not a torch.save file".into()))?;
        let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
        let entry_range = |zip: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>,
                           name: &str|
         -> Result<(std::ops::Range<usize>, u32)> {
            let f = zip
                .by_name(name)
                .map_err(|e| bad(format!("missing archive entry {name} ({e})")))?;
            if f.compression() != zip::CompressionMethod::Stored {
                return Err(bad(format!(
                    "archive entry {name} is compressed; torch.save stores entries uncompressed"
                )));
            }
            let start = f
                .data_start()
                .ok_or_else(|| bad(format!("cannot locate the data of {name}")))?
                as usize;
            let end = usize::try_from(f.size())
                .ok()
                .and_then(|n| start.checked_add(n))
                .filter(|&end| end <= map.len());
            let Some(end) = end else {
                return Err(bad(format!(
                    "archive entry {name} declares {} bytes, past the end of the file (truncated)",
                    f.size()
                )));
            };
            Ok((start..end, f.crc32()))
        };
        // Stored entries carry a CRC-32, so corrupt weights are an error, not wrong output. The
        // pickle is checked now; each tensor storage when it is first read (opening a 12 GB
        // checkpoint to read its header must not read all of it).
        let (pkl, pkl_crc) = entry_range(&mut zip, &pkl_name)?;
        if crc32fast::hash(&map[pkl.clone()]) != pkl_crc {
            return Err(bad(format!(
                "archive entry {pkl_name} fails its CRC-32 check (the file is corrupt)"
            )));
        }
        let mut storages: Vec<Storage> = Vec::new();
        let mut storage_index: std::collections::HashMap<String, usize> = Default::default();
        let unpickled =
            crate::pickle::unpickle(&map[pkl]).map_err(|e| bad(format!("data.pkl: {e}")))?;
        let root = &unpickled.root;
        let dict = match key {
            Some(k) => unpickled
                .get(root, k)
                .ok_or_else(|| bad(format!("the saved dict has no '{k}' key")))?,
            None => unpickled.get(root, "module").unwrap_or(root),
        };
        let items = unpickled
            .dict(dict)
            .ok_or_else(|| bad("the saved object is not a dict of tensors".into()))?;
        let mut tensors = BTreeMap::new();
        for (k, v) in items {
            let (crate::pickle::Value::Str(name), crate::pickle::Value::Tensor(t)) = (k, v) else {
                continue;
            };
            let dtype = WeightDType::from_torch_storage(&t.storage_class).ok_or_else(|| {
                bad(format!(
                    "tensor {name} has unsupported storage {}",
                    t.storage_class
                ))
            })?;
            let entry_name = format!("{prefix}data/{}", t.storage_key);
            let index = match storage_index.get(&entry_name) {
                Some(&i) => i,
                None => {
                    let (range, crc32) = entry_range(&mut zip, &entry_name)?;
                    storages.push(Storage {
                        name: entry_name.clone(),
                        range,
                        crc32,
                        ok: std::sync::OnceLock::new(),
                    });
                    storage_index.insert(entry_name, storages.len() - 1);
                    storages.len() - 1
                }
            };
            let storage = storages[index].range.clone();
            if t.shape.len() != t.stride.len() {
                return Err(bad(format!("tensor {name}: shape and stride ranks differ")));
            }
            let contiguous = contiguous_strides(&t.shape) == Some(t.stride.clone());
            // The last element must lie inside the storage; every size here comes from the file,
            // so every product and sum is checked.
            let overflow = || {
                bad(format!(
                    "tensor {name}: the declared shape {:?}, stride {:?} and offset {} overflow",
                    t.shape, t.stride, t.storage_offset
                ))
            };
            let numel = cogview_core::limits::checked_product(&t.shape).ok_or_else(overflow)?;
            let bytes = numel.checked_mul(dtype.size()).ok_or_else(overflow)?;
            if numel > 0 {
                let mut last = t.storage_offset;
                for (d, s) in t.shape.iter().zip(&t.stride) {
                    last = (d - 1)
                        .checked_mul(*s)
                        .and_then(|x| last.checked_add(x))
                        .ok_or_else(overflow)?;
                }
                let end = last
                    .checked_add(1)
                    .and_then(|x| x.checked_mul(dtype.size()))
                    .ok_or_else(overflow)?;
                if end > storage.len() {
                    return Err(bad(format!(
                        "tensor {name} needs {end} bytes but its storage holds {} (truncated or corrupt)",
                        storage.len()
                    )));
                }
            }
            if !contiguous {
                // A strided view may repeat its storage (stride 0): what it expands to is bounded
                // by the file's length, not by the storage's.
                let factor = cogview_core::limits::TENSOR_EXPANSION.value();
                if bytes as u64 > (map.len() as u64).saturating_mul(factor) {
                    return Err(bad(cogview_core::limits::TENSOR_EXPANSION.message(
                        (bytes as u64).div_ceil((map.len() as u64).max(1)),
                        factor,
                    ) + &format!(
                        " (tensor {name} declares {bytes} bytes, the file has {})",
                        map.len()
                    )));
                }
            }
            tensors.insert(
                name.clone(),
                Entry {
                    dtype,
                    shape: t.shape.clone(),
                    stride: (!contiguous).then(|| t.stride.clone()),
                    storage,
                    offset: t.storage_offset,
                    checked_storage: Some(index),
                },
            );
        }
        if tensors.is_empty() {
            return Err(bad("no tensors found in the saved dict".into()));
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            format: Format::TorchZip,
            map,
            tensors,
            metadata: Default::default(),
            storages: Arc::new(storages),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }
    /// The header metadata of a safetensors file (empty for torch files).
    pub fn metadata(&self) -> &std::collections::HashMap<String, String> {
        &self.metadata
    }
    /// Tensors in the file.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }
    /// Whether the file holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }
    /// The tensors' names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(|s| s.as_str())
    }
    /// The dtype and shape of tensor `name`, if it is in the file.
    pub fn info(&self, name: &str) -> Option<TensorInfo> {
        self.tensors.get(name).map(|e| TensorInfo {
            dtype: e.dtype,
            shape: e.shape.clone(),
        })
    }

    /// The tensor's elements as contiguous little-endian bytes (borrowed when stored contiguously).
    pub fn bytes(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        let e = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::checkpoint(&self.path, format!("no tensor named {name}")))?;
        if let Some(i) = e.checked_storage {
            let st = &self.storages[i];
            let ok = *st
                .ok
                .get_or_init(|| crc32fast::hash(&self.map[st.range.clone()]) == st.crc32);
            if !ok {
                return Err(Error::checkpoint(
                    &self.path,
                    format!(
                        "archive entry {} (tensor {name}) fails its CRC-32 check (the file is corrupt)",
                        st.name
                    ),
                ));
            }
        }
        let es = e.dtype.size();
        // Checked when the file was opened; kept checked here so no path can wrap.
        let truncated = || Error::checkpoint(&self.path, format!("tensor {name} is truncated"));
        let numel = cogview_core::limits::checked_product(&e.shape).ok_or_else(truncated)?;
        let storage = &self.map[e.storage.clone()];
        match &e.stride {
            None => {
                let start = e.offset.checked_mul(es).ok_or_else(truncated)?;
                let end = numel
                    .checked_mul(es)
                    .and_then(|n| n.checked_add(start))
                    .ok_or_else(truncated)?;
                storage
                    .get(start..end)
                    .map(Cow::Borrowed)
                    .ok_or_else(truncated)
            }
            Some(stride) => {
                let mut out = Vec::with_capacity(numel * es);
                let mut index = vec![0usize; e.shape.len()];
                for _ in 0..numel {
                    let off =
                        e.offset + index.iter().zip(stride).map(|(i, s)| i * s).sum::<usize>();
                    out.extend_from_slice(&storage[off * es..(off + 1) * es]);
                    for d in (0..index.len()).rev() {
                        index[d] += 1;
                        if index[d] < e.shape[d] {
                            break;
                        }
                        index[d] = 0;
                    }
                }
                Ok(Cow::Owned(out))
            }
        }
    }

    /// Tells the OS that a tensor's bytes in the mapped file are no longer needed, after a loader
    /// copied them: the pages leave this process's resident memory, so loading a model does not
    /// briefly hold both the file and the loaded copy. Reading the tensor again still works (the
    /// pages come back from the file). Best effort; does nothing off Unix.
    pub fn evict(&self, name: &str) {
        #[cfg(unix)]
        if let Some(e) = self.tensors.get(name) {
            const PAGE: usize = 4096;
            let start = e.storage.start.div_ceil(PAGE) * PAGE;
            let end = e.storage.end / PAGE * PAGE;
            if end > start {
                // SAFETY: the map is a read-only private mapping of a file that this process never
                // writes; MADV_DONTNEED only drops its pages, and any later read (including through
                // a slice borrowed before this call) faults them back in with the same bytes.
                let _ = unsafe {
                    self.map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
    }

    /// The tensor converted to f32 (from f32, f16, bf16 or f64).
    pub fn to_f32(&self, name: &str) -> Result<Vec<f32>> {
        let info = self
            .info(name)
            .ok_or_else(|| Error::checkpoint(&self.path, format!("no tensor named {name}")))?;
        let b = self.bytes(name)?;
        Ok(match info.dtype {
            WeightDType::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            WeightDType::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            WeightDType::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            WeightDType::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            other => {
                return Err(Error::checkpoint(
                    &self.path,
                    format!("tensor {name} is {}, not floating point", other.name()),
                ))
            }
        })
    }

    /// Compares the tensors with `expected` (name → shape; floating point required). Every missing,
    /// unexpected, mis-shaped or non-float tensor is reported by name in one error. Names matching
    /// `ignore` (training-only buffers) are not reported as unexpected.
    pub fn check(
        &self,
        expected: &[(String, Vec<usize>)],
        ignore: impl Fn(&str) -> bool,
    ) -> Result<()> {
        let mut missing = Vec::new();
        let mut mis_shaped = Vec::new();
        let mut bad_dtype = Vec::new();
        for (name, shape) in expected {
            match self.tensors.get(name) {
                None => missing.push(name.clone()),
                Some(e) => {
                    if &e.shape != shape {
                        mis_shaped.push(ShapeMismatch {
                            name: name.clone(),
                            expected: shape.clone(),
                            found: e.shape.clone(),
                        });
                    }
                    if !matches!(
                        e.dtype,
                        WeightDType::F32 | WeightDType::F16 | WeightDType::BF16
                    ) {
                        bad_dtype.push((name.clone(), e.dtype.name().to_string()));
                    }
                }
            }
        }
        let known: std::collections::HashSet<&str> =
            expected.iter().map(|(n, _)| n.as_str()).collect();
        let unexpected: Vec<String> = self
            .names()
            .filter(|n| !known.contains(n) && !ignore(n))
            .map(str::to_string)
            .collect();
        if missing.is_empty()
            && unexpected.is_empty()
            && mis_shaped.is_empty()
            && bad_dtype.is_empty()
        {
            Ok(())
        } else {
            Err(Error::WeightMismatch {
                path: self.path.clone(),
                missing,
                unexpected,
                mis_shaped,
                bad_dtype,
            })
        }
    }
}

/// The strides of a contiguous tensor of `shape`; `None` when they overflow (such a shape cannot
/// be contiguous in a file).
pub(crate) fn contiguous_strides(shape: &[usize]) -> Option<Vec<usize>> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1].checked_mul(shape[i + 1])?;
    }
    Some(s)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    fn int(out: &mut Vec<u8>, v: usize) {
        out.push(0x8a); // LONG1
        out.push(8);
        out.extend_from_slice(&(v as u64).to_le_bytes());
    }

    fn tuple(out: &mut Vec<u8>, vs: &[usize]) {
        out.push(b'(');
        vs.iter().for_each(|&v| int(out, v));
        out.push(b't');
    }

    /// The pickle of `{'w': _rebuild_tensor_v2(storage '0' (FloatStorage), offset, shape,
    /// stride)}` as torch.save writes it.
    pub(crate) fn tensor_pickle(offset: usize, shape: &[usize], stride: &[usize]) -> Vec<u8> {
        let mut p = b"\x80\x02}(X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n(".to_vec();
        p.extend_from_slice(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x01tQ");
        int(&mut p, offset);
        tuple(&mut p, shape);
        tuple(&mut p, stride);
        p.extend_from_slice(b"tRu.");
        p
    }

    /// A torch.save zip archive holding `pickle` as data.pkl and `storage` as data/0.
    pub(crate) fn torch_zip(pickle: &[u8], storage: &[u8]) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut buf);
        let o = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("archive/data.pkl", o).unwrap();
        z.write_all(pickle).unwrap();
        z.start_file("archive/data/0", o).unwrap();
        z.write_all(storage).unwrap();
        z.finish().unwrap();
        buf.into_inner()
    }

    fn open(bytes: &[u8]) -> Result<Checkpoint> {
        let dir = tempfile_dir();
        let p = dir.join(format!("t{}.pt", bytes.len()));
        std::fs::write(&p, bytes).unwrap();
        let r = Checkpoint::open(&p, None);
        let _ = std::fs::remove_file(&p);
        r
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("cogview-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_well_formed_archive_reads_and_strides_view_it() {
        let data: Vec<u8> = (0..6u32).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let c = open(&torch_zip(&tensor_pickle(0, &[2, 3], &[3, 1]), &data)).unwrap();
        assert_eq!(c.to_f32("w").unwrap(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        // The transpose: a strided view.
        let c = open(&torch_zip(&tensor_pickle(0, &[3, 2], &[1, 3]), &data)).unwrap();
        assert_eq!(c.to_f32("w").unwrap(), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn declared_shapes_strides_and_offsets_that_overflow_are_refused() {
        let data = [0u8; 16];
        let cases: [(usize, Vec<usize>, Vec<usize>); 5] = [
            // 2^62 x 8 elements: the product wraps to 0 unchecked.
            (0, vec![1 << 62, 8], vec![8, 1]),
            // One element at stride 2^62 x 8: the sum of (d-1)*s wraps.
            (0, vec![9, 1], vec![1 << 61, 1]),
            // The offset plus one, times 4 bytes, wraps.
            (usize::MAX / 2, vec![1], vec![1]),
            (1 << 62, vec![1], vec![1]),
            // Contiguous strides of this shape overflow.
            (0, vec![1 << 40, 1 << 40, 0], vec![0, 0, 1]),
        ];
        for (offset, shape, stride) in cases {
            let e = open(&torch_zip(&tensor_pickle(offset, &shape, &stride), &data))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("overflow") || e.contains("needs"),
                "{shape:?} {stride:?} {offset}: {e}"
            );
        }
    }

    #[test]
    fn a_stride_zero_view_larger_than_the_file_is_refused_by_the_limit() {
        // One float repeated 2^40 times: 4 TB from a 4-byte storage.
        let e = open(&torch_zip(&tensor_pickle(0, &[1 << 40], &[0]), &[0u8; 4]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("max_tensor_expansion") && e.contains("COGVIEW_MAX_TENSOR_EXPANSION"),
            "{e}"
        );
        // A small broadcast view is fine.
        let c = open(&torch_zip(
            &tensor_pickle(0, &[4], &[0]),
            &1f32.to_le_bytes(),
        ))
        .unwrap();
        assert_eq!(c.to_f32("w").unwrap(), [1.0; 4]);
    }

    #[test]
    fn a_zip_entry_declaring_more_bytes_than_the_file_is_refused() {
        let data = [0u8; 8];
        let mut z = torch_zip(&tensor_pickle(0, &[2], &[1]), &data);
        // Patch data/0's sizes in its central-directory record to 2^31.
        let name = b"archive/data/0";
        let cd = z
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"PK\x01\x02")
            .map(|(i, _)| i)
            .find(|&i| z[i + 46..].starts_with(name))
            .unwrap();
        z[cd + 20..cd + 24].copy_from_slice(&(1u32 << 31).to_le_bytes());
        z[cd + 24..cd + 28].copy_from_slice(&(1u32 << 31).to_le_bytes());
        let e = open(&z).unwrap_err().to_string();
        assert!(e.contains("past the end") || e.contains("corrupt"), "{e}");
    }
}
