//! DSR and ItersR across the ABI (v1.1): the core's [`SrSpec`] and [`SrInput`] to and from
//! [`CogviewGridSpecV1`] and [`CogviewGridInputV1`]. Both sides of the ABI use these, so the host
//! and a Rust plugin cannot disagree on the encoding.

use crate::ffi::*;
use cogview_core::local_window::LocalWindow;
use cogview_core::sr::{SrExtra, SrInput, SrKind, SrSpec};
use cogview_core::Error;
use std::marker::PhantomData;

fn kind_code(kind: SrKind) -> u32 {
    match kind {
        SrKind::Dsr => GRID_DSR,
        SrKind::Itersr => GRID_ITERSR,
    }
}

fn kind_from(code: u32, field: &str) -> Result<SrKind, Error> {
    match code {
        GRID_DSR => Ok(SrKind::Dsr),
        GRID_ITERSR => Ok(SrKind::Itersr),
        other => Err(Error::invalid_input(
            field,
            format!(
                "kind {other} is neither GRID_DSR ({GRID_DSR}) nor GRID_ITERSR ({GRID_ITERSR})"
            ),
        )),
    }
}

/// The spec as the ABI carries it.
pub fn spec_to_ffi(s: &SrSpec) -> CogviewGridSpecV1 {
    let mut v = CogviewGridSpecV1::new_zeroed();
    v.kind = kind_code(s.kind);
    v.start_of_image_id = s.start_of_image_id;
    v.text_slots = s.text_slots as u64;
    v.low_side = s.low as u64;
    v.high_side = s.high as u64;
    v.kernel_size = s.kernel_size as u64;
    v.kernel_size2 = s.kernel_size2 as u64;
    v.vocab_size = s.vocab_size as u64;
    v.image_vocab_size = s.image_vocab_size as u64;
    v.max_positions = s.max_positions as u64;
    v
}

/// The spec a plugin wrote, checked ([`SrSpec::validate`]).
pub fn spec_from_ffi(v: &CogviewGridSpecV1) -> Result<SrSpec, Error> {
    let size = |x: u64| usize::try_from(x).unwrap_or(usize::MAX);
    let s = SrSpec {
        kind: kind_from(v.kind, "spec")?,
        text_slots: size(v.text_slots),
        low: size(v.low_side),
        high: size(v.high_side),
        kernel_size: size(v.kernel_size),
        kernel_size2: size(v.kernel_size2),
        vocab_size: size(v.vocab_size),
        image_vocab_size: size(v.image_vocab_size),
        max_positions: size(v.max_positions),
        start_of_image_id: v.start_of_image_id,
    };
    s.validate()?;
    Ok(s)
}

/// An [`SrInput`] as the ABI carries it; the pointers borrow the input (and the flags this holds),
/// so it lives no longer than both.
pub struct FfiGridInput<'a> {
    raw: CogviewGridInputV1,
    _visible: Vec<u32>,
    _input: PhantomData<&'a SrInput>,
}

impl<'a> FfiGridInput<'a> {
    /// The C view of `input`, borrowing its buffers.
    pub fn new(input: &'a SrInput) -> Self {
        let mut raw = CogviewGridInputV1::new_zeroed();
        raw.kind = kind_code(input.kind());
        raw.tokens0 = input.tokens0.as_ptr();
        raw.tokens0_len = input.tokens0.len();
        raw.positions0 = input.positions0.as_ptr();
        raw.positions0_len = input.positions0.len();
        raw.bias0 = input.bias0.as_ptr();
        raw.bias0_len = input.bias0.len();
        raw.tokens1 = input.tokens1.as_ptr();
        raw.tokens1_len = input.tokens1.len();
        raw.high_side = input.high as u64;
        raw.own_kh = input.own_window.kh as u32;
        raw.own_kw = input.own_window.kw as u32;
        let visible = match &input.extra {
            SrExtra::LowWindow {
                offset,
                side,
                window,
            } => {
                raw.low_offset = *offset as u64;
                raw.low_side = *side as u64;
                raw.cross_kh = window.kh as u32;
                raw.cross_kw = window.kw as u32;
                raw.cross_ratio_h = window.ah as u32;
                raw.cross_ratio_w = window.aw as u32;
                Vec::new()
            }
            SrExtra::Visible(v) => v.iter().map(|&b| b as u32).collect(),
        };
        if !visible.is_empty() {
            raw.visible = visible.as_ptr();
            raw.visible_len = visible.len();
        }
        FfiGridInput {
            raw,
            _visible: visible,
            _input: PhantomData,
        }
    }

    /// The pointer to pass to a plugin's `forward`; valid while `self` lives.
    pub fn as_ptr(&self) -> *const CogviewGridInputV1 {
        &self.raw
    }
}

/// Copies an input the host passed into an [`SrInput`] (shapes are checked later, against the
/// model, by [`SrInput::check`]).
///
/// # Safety
/// `ptr`, when not NULL, must point to a `CogviewGridInputV1` of at least its `struct_size` bytes
/// whose pointers are valid for their lengths.
pub unsafe fn input_from_ffi(ptr: *const CogviewGridInputV1) -> Result<SrInput, Error> {
    let bad = |field: &str, e: ReadError| Error::invalid_input(field, e.to_string());
    let v = unsafe { read_versioned(ptr) }.map_err(|e| bad("input", e))?;
    let tokens0 = unsafe { slice(v.tokens0, v.tokens0_len) }.map_err(|e| bad("tokens0", e))?;
    let positions0 =
        unsafe { slice(v.positions0, v.positions0_len) }.map_err(|e| bad("positions0", e))?;
    let bias0 = unsafe { slice(v.bias0, v.bias0_len) }.map_err(|e| bad("bias0", e))?;
    let tokens1 = unsafe { slice(v.tokens1, v.tokens1_len) }.map_err(|e| bad("tokens1", e))?;
    let size = |x: u64| usize::try_from(x).unwrap_or(usize::MAX);
    let window = |kh: u32, kw: u32, ah: u32, aw: u32| LocalWindow {
        kh: kh as usize,
        kw: kw as usize,
        ah: ah as usize,
        aw: aw as usize,
        causal: false,
    };
    let extra = match kind_from(v.kind, "input")? {
        SrKind::Dsr => SrExtra::LowWindow {
            offset: size(v.low_offset),
            side: size(v.low_side),
            window: window(v.cross_kh, v.cross_kw, v.cross_ratio_h, v.cross_ratio_w),
        },
        SrKind::Itersr => SrExtra::Visible(
            unsafe { slice(v.visible, v.visible_len) }
                .map_err(|e| bad("visible", e))?
                .iter()
                .map(|&f| f != 0)
                .collect(),
        ),
    };
    Ok(SrInput {
        tokens0: tokens0.to_vec(),
        positions0: positions0.to_vec(),
        bias0: bias0.to_vec(),
        tokens1: tokens1.to_vec(),
        high: size(v.high_side),
        own_window: window(v.own_kh, v.own_kw, 1, 1),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: SrKind) -> SrSpec {
        SrSpec {
            kind,
            text_slots: 4,
            low: if kind == SrKind::Dsr { 2 } else { 0 },
            high: 4,
            kernel_size: 3,
            kernel_size2: 3,
            vocab_size: 100,
            image_vocab_size: 50,
            max_positions: 1024,
            start_of_image_id: 99,
        }
    }

    #[test]
    fn specs_and_inputs_cross_the_abi_unchanged() {
        for kind in [SrKind::Dsr, SrKind::Itersr] {
            let s = spec(kind);
            assert_eq!(spec_from_ffi(&spec_to_ffi(&s)).unwrap(), s);
            let grid = cogview_core::TokenGrid::new(
                if kind == SrKind::Dsr { 2 } else { 4 },
                if kind == SrKind::Dsr { 2 } else { 4 },
                vec![7; if kind == SrKind::Dsr { 4 } else { 16 }],
            )
            .unwrap();
            let input = SrInput::new(&s, &[70, 71], &grid).unwrap();
            let ffi = FfiGridInput::new(&input);
            let back = unsafe { input_from_ffi(ffi.as_ptr()) }.unwrap();
            assert_eq!(back, input);
            back.check(&s).unwrap();
        }
        let mut bad = spec_to_ffi(&spec(SrKind::Dsr));
        bad.kind = 0;
        assert!(spec_from_ffi(&bad).is_err());
        assert!(unsafe { input_from_ffi(std::ptr::null()) }.is_err());
    }
}
