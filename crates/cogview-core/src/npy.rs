//! A reader for NumPy `.npy` files (format versions 1-3), enough for integer and float arrays such as
//! the official `cluster_label.npy` and the parity fixtures.

use crate::error::{Error, Result};
use std::path::Path;

/// The element type of an `.npy` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NpyDtype {
    /// `i1`.
    I8,
    /// `u1` (and `b1`, booleans).
    U8,
    /// `i2`.
    I16,
    /// `i4`.
    I32,
    /// `i8`.
    I64,
    /// `u4`.
    U32,
    /// `u8`.
    U64,
    /// `f4`.
    F32,
    /// `f8`.
    F64,
}

impl NpyDtype {
    fn parse(descr: &str) -> Option<(Self, bool)> {
        // (dtype, big_endian)
        let order = descr.get(..1)?;
        let code = descr.get(1..)?;
        let big = match order {
            "<" | "|" | "=" => false,
            ">" => true,
            _ => return None,
        };
        let d = match code {
            "i1" => NpyDtype::I8,
            "u1" | "b1" => NpyDtype::U8,
            "i2" => NpyDtype::I16,
            "i4" => NpyDtype::I32,
            "i8" => NpyDtype::I64,
            "u4" => NpyDtype::U32,
            "u8" => NpyDtype::U64,
            "f4" => NpyDtype::F32,
            "f8" => NpyDtype::F64,
            _ => return None,
        };
        Some((d, big))
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            NpyDtype::I8 | NpyDtype::U8 => 1,
            NpyDtype::I16 => 2,
            NpyDtype::I32 | NpyDtype::U32 | NpyDtype::F32 => 4,
            NpyDtype::I64 | NpyDtype::U64 | NpyDtype::F64 => 8,
        }
    }
}

/// An `.npy` array: C-order little-endian data.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The element type.
    pub dtype: NpyDtype,
    /// The shape (C order).
    pub shape: Vec<usize>,
    /// Little-endian element bytes in C (row-major) order.
    pub data: Vec<u8>,
}

impl NpyArray {
    /// Elements in all (the data's length over the element size, which [`parse_npy`] checked
    /// equals the shape's product).
    pub fn len(&self) -> usize {
        self.data.len() / self.dtype.size()
    }
    /// Whether it has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn elems(&self) -> impl Iterator<Item = &[u8]> {
        self.data.chunks_exact(self.dtype.size())
    }

    /// The values as i64; an error for float arrays.
    pub fn to_i64(&self) -> std::result::Result<Vec<i64>, String> {
        let conv: fn(&[u8]) -> i64 = match self.dtype {
            NpyDtype::I8 => |b| b[0] as i8 as i64,
            NpyDtype::U8 => |b| b[0] as i64,
            NpyDtype::I16 => |b| i16::from_le_bytes([b[0], b[1]]) as i64,
            NpyDtype::I32 => |b| i32::from_le_bytes(b.try_into().unwrap()) as i64,
            NpyDtype::U32 => |b| u32::from_le_bytes(b.try_into().unwrap()) as i64,
            NpyDtype::I64 => |b| i64::from_le_bytes(b.try_into().unwrap()),
            NpyDtype::U64 => |b| u64::from_le_bytes(b.try_into().unwrap()) as i64,
            NpyDtype::F32 | NpyDtype::F64 => {
                return Err(format!("expected an integer array, found {:?}", self.dtype))
            }
        };
        Ok(self.elems().map(conv).collect())
    }

    /// The values as f32 (integers are converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match self.dtype {
            NpyDtype::F32 => self
                .elems()
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect(),
            NpyDtype::F64 => self
                .elems()
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                .collect(),
            _ => self
                .to_i64()
                .unwrap()
                .into_iter()
                .map(|x| x as f32)
                .collect(),
        }
    }
}

/// Parses `.npy` bytes; `what` names the source in error messages.
pub fn parse_npy(bytes: &[u8], what: &str) -> std::result::Result<NpyArray, String> {
    let _ = what;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not an .npy file (missing the \\x93NUMPY magic)".into());
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (
                u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let header = bytes
        .get(start..)
        .and_then(|b| b.get(..header_len))
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let field = |key: &str| -> std::result::Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or(format!("the .npy header has no '{key}'"))?;
        let rest = &header[at + key.len() + 2..];
        let colon = rest.find(':').ok_or("malformed .npy header")?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = field("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or("malformed descr")?;
    let (dtype, big_endian) = NpyDtype::parse(descr).ok_or(format!(
        "unsupported .npy dtype '{descr}' (need integers or f4/f8)"
    ))?;
    if field("fortran_order")?.starts_with("True") {
        return Err(
            "Fortran-ordered .npy arrays are not supported; save with np.ascontiguousarray".into(),
        );
    }
    let shape_text = field("shape")?;
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or("malformed shape")?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| format!("malformed shape entry '{s}'"))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let body = &bytes[start + header_len..];
    // Checked: a shape such as (2**62, 8) must not wrap to a small size.
    let Some(n) = crate::limits::checked_product(&shape) else {
        return Err(format!(
            "the declared shape {shape:?} has more elements than this machine can address"
        ));
    };
    let Some(need) = n.checked_mul(dtype.size()) else {
        return Err(format!(
            "the declared shape {shape:?} of {dtype:?} is more bytes than this machine can address"
        ));
    };
    if body.len() < need {
        return Err(format!(
            "truncated .npy data: {} bytes for {} elements of {:?}",
            body.len(),
            n,
            dtype
        ));
    }
    let mut data = body[..need].to_vec();
    if big_endian {
        for e in data.chunks_exact_mut(dtype.size()) {
            e.reverse();
        }
    }
    Ok(NpyArray { dtype, shape, data })
}

/// Reads an `.npy` file.
pub fn read_npy_file(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = crate::limits::read_file(path)?;
    parse_npy(&bytes, &path.display().to_string())
        .map_err(|reason| Error::invalid_input(path.display().to_string(), reason))
}

fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_text = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out
}

/// Writes a little-endian f32 array as `.npy` (version 1.0).
pub fn write_npy_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let mut out = npy_header("<f4", shape);
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Writes a 1-D little-endian i64 array as `.npy` (version 1.0), the format of CogView2's
/// `cluster_label.npy`.
pub fn write_npy_i64(data: &[i64]) -> Vec<u8> {
    let mut out = npy_header("<i8", &[data.len()]);
    for x in data {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_official_cluster_labels() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/cluster_label.npy");
        let a = read_npy_file(path).unwrap();
        assert_eq!(a.dtype, NpyDtype::I64);
        assert_eq!(a.shape, vec![20000]);
        let v = a.to_i64().unwrap();
        assert_eq!(*v.iter().max().unwrap(), 499);
        assert_eq!(*v.iter().min().unwrap(), 0);
        // Sizes computed from the file by the specification: min 9, max 133, every cluster non-empty.
        let mut sizes = vec![0; 500];
        v.iter().for_each(|&l| sizes[l as usize] += 1);
        assert_eq!(*sizes.iter().min().unwrap(), 9);
        assert_eq!(*sizes.iter().max().unwrap(), 133);
    }

    #[test]
    fn round_trips_f32_and_rejects_truncation() {
        let bytes = write_npy_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        let a = parse_npy(&bytes, "x").unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.to_f32(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]);
        assert!(parse_npy(&bytes[..bytes.len() - 1], "x")
            .unwrap_err()
            .contains("truncated"));
        assert!(parse_npy(b"hello world!", "x")
            .unwrap_err()
            .contains("magic"));
    }

    fn with_header(header: &str) -> Vec<u8> {
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&[0; 16]);
        out
    }

    #[test]
    fn hostile_headers_are_errors_not_panics_or_wrapped_sizes() {
        // 2^62 x 8 elements of 8 bytes wraps to 0 bytes in unchecked arithmetic.
        let e = parse_npy(
            &with_header(
                "{'descr': '<i8', 'fortran_order': False, 'shape': (4611686018427387904, 8), }",
            ),
            "x",
        )
        .unwrap_err();
        assert!(e.contains("more elements"), "{e}");
        let e = parse_npy(
            &with_header(
                "{'descr': '<i8', 'fortran_order': False, 'shape': (2305843009213693952, 2), }",
            ),
            "x",
        )
        .unwrap_err();
        assert!(e.contains("more bytes"), "{e}");
        // An empty or multi-byte descr used to panic in `split_at(1)`.
        for d in ["''", "'é4'"] {
            let h = format!("{{'descr': {d}, 'fortran_order': False, 'shape': (1,), }}");
            assert!(parse_npy(&with_header(&h), "x")
                .unwrap_err()
                .contains("dtype"));
        }
        // A version-2 header length past the end of the file.
        let mut v2 = b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec();
        v2.extend_from_slice(b"{}");
        assert!(parse_npy(&v2, "x").unwrap_err().contains("truncated"));
    }
}
