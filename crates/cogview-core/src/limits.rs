//! Resource limits on what an input file may declare, checked before anything is allocated from a
//! size read from the input, and checked arithmetic on such sizes.
//!
//! Every limit has a name (used in error messages), a default and an environment variable that
//! raises (or lowers) it for a user with a legitimately bigger file: `COGVIEW_MAX_IMAGE_PIXELS=
//! 400000000 cogview edit huge.png ...`. docs/reliability.md lists them all ([`ALL`]).
//!
//! ```
//! use cogview_core::limits;
//! assert!(limits::GRID_CELLS.check(3600, "grid.json").is_ok());
//! let e = limits::GRID_CELLS.check(1 << 40, "grid.json").unwrap_err().to_string();
//! assert!(e.contains("COGVIEW_MAX_GRID_CELLS"), "{e}");
//! ```

use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// One named, overridable limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Its name in messages and docs.
    pub name: &'static str,
    /// The environment variable that overrides the default (a positive integer).
    pub env: &'static str,
    /// The default.
    pub default: u64,
    /// The unit of the limit, e.g. `bytes`, `pixels`.
    pub unit: &'static str,
    /// What it limits.
    pub what: &'static str,
}

impl Limit {
    /// The value in force: the environment variable's when it is set to a positive integer, else
    /// the default.
    pub fn value(&self) -> u64 {
        std::env::var(self.env)
            .ok()
            .and_then(|v| v.trim().replace('_', "").parse::<u64>().ok())
            .filter(|&v| v > 0)
            .unwrap_or(self.default)
    }

    /// `Ok` when `found` is within the limit; else an [`Error::InvalidInput`] about `what`
    /// naming the limit, the value found and how to raise it.
    pub fn check(&self, found: u64, what: &str) -> Result<()> {
        self.check_msg(found)
            .map_err(|m| Error::invalid_input(what, m))
    }

    /// Like [`Limit::check`], with the message alone (for parsers that return strings).
    pub fn check_msg(&self, found: u64) -> std::result::Result<(), String> {
        let max = self.value();
        if found <= max {
            Ok(())
        } else {
            Err(self.exceeded(found.to_string(), max))
        }
    }

    /// The message for `found` over `max` (the value in force, read once by a caller that checks
    /// often).
    pub fn message(&self, found: u64, max: u64) -> String {
        self.exceeded(found.to_string(), max)
    }

    /// The message for a declared size that overflowed 64 bits (certainly over the limit).
    pub fn overflow_msg(&self, declared: &str) -> String {
        self.exceeded(format!("{declared} (more than 2^64)"), self.value())
    }

    fn exceeded(&self, found: String, max: u64) -> String {
        format!(
            "{} declares {found} {unit}, over the limit {name} = {max} {unit}; if the file is \
             genuine, raise it with the environment variable {env}",
            self.what,
            unit = self.unit,
            name = self.name,
            env = self.env
        )
    }
}

/// Pixels of one decoded image or mask (width × height), checked from the header before decoding.
pub const IMAGE_PIXELS: Limit = Limit {
    name: "max_image_pixels",
    env: "COGVIEW_MAX_IMAGE_PIXELS",
    default: 1 << 26,
    unit: "pixels",
    what: "the image",
};

/// Bytes of a file read whole into memory: images and masks, token-grid files, `.npy` tables,
/// `ice_text.model`, pipeline and model configuration files.
pub const FILE_BYTES: Limit = Limit {
    name: "max_file_bytes",
    env: "COGVIEW_MAX_FILE_BYTES",
    default: 1 << 30,
    unit: "bytes",
    what: "the file",
};

/// Cells (height × width) of a token grid read from a file.
pub const GRID_CELLS: Limit = Limit {
    name: "max_grid_cells",
    env: "COGVIEW_MAX_GRID_CELLS",
    default: 1 << 20,
    unit: "cells",
    what: "the token grid",
};

/// Entries in a pickle's memo (`torch.save`'s `data.pkl`).
pub const PICKLE_MEMO: Limit = Limit {
    name: "max_pickle_memo",
    env: "COGVIEW_MAX_PICKLE_MEMO",
    default: 1 << 22,
    unit: "entries",
    what: "the pickle memo",
};

/// Values on a pickle's stack at once, and marks.
pub const PICKLE_STACK: Limit = Limit {
    name: "max_pickle_stack",
    env: "COGVIEW_MAX_PICKLE_STACK",
    default: 1 << 22,
    unit: "values",
    what: "the pickle stack",
};

/// Nesting depth of pickled tuples.
pub const PICKLE_DEPTH: Limit = Limit {
    name: "max_pickle_depth",
    env: "COGVIEW_MAX_PICKLE_DEPTH",
    default: 256,
    unit: "levels",
    what: "the pickle's nesting",
};

/// Values a pickle program may build in all, counting every copy `DUP`, memo writes and reads and
/// tuple packing make, and strings by their length (one value per 16 bytes): without it, a few
/// hundred bytes of pickle can build an exponentially large value.
pub const PICKLE_VALUES: Limit = Limit {
    name: "max_pickle_values",
    env: "COGVIEW_MAX_PICKLE_VALUES",
    default: 1 << 24,
    unit: "values",
    what: "the pickle program",
};

/// Bytes of one tensor materialised from a strided (non-contiguous) torch view: a view may repeat
/// its storage (stride 0), so its size is not bounded by the file's; it may not exceed the file's
/// length times this factor.
pub const TENSOR_EXPANSION: Limit = Limit {
    name: "max_tensor_expansion",
    env: "COGVIEW_MAX_TENSOR_EXPANSION",
    default: 1,
    unit: "times the file's length",
    what: "a strided tensor",
};

/// Bytes of a text prompt.
pub const PROMPT_BYTES: Limit = Limit {
    name: "max_prompt_bytes",
    env: "COGVIEW_MAX_PROMPT_BYTES",
    default: 1 << 20,
    unit: "bytes",
    what: "the prompt",
};

/// Every limit, for documentation and tests.
pub const ALL: &[Limit] = &[
    IMAGE_PIXELS,
    FILE_BYTES,
    GRID_CELLS,
    PICKLE_MEMO,
    PICKLE_STACK,
    PICKLE_DEPTH,
    PICKLE_VALUES,
    TENSOR_EXPANSION,
    PROMPT_BYTES,
];

/// Reads a whole file, refusing one longer than [`FILE_BYTES`] before reading it (and, for a
/// device or pipe whose length is unknown, as soon as it has read past the limit).
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    read_at_most(path, FILE_BYTES.value())
}

fn read_at_most(path: &Path, max: u64) -> Result<Vec<u8>> {
    let too_long = |found: u64| {
        Error::invalid_input(
            path.display().to_string(),
            FILE_BYTES.exceeded(found.to_string(), max),
        )
    };
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let declared = file.metadata().map(|m| m.len()).unwrap_or(0);
    if declared > max {
        return Err(too_long(declared));
    }
    let mut bytes = Vec::with_capacity(declared as usize);
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(too_long(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_file`] as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String> {
    String::from_utf8(read_file(path)?)
        .map_err(|_| Error::invalid_input(path.display().to_string(), "the file is not UTF-8 text"))
}

/// The product of sizes read from an input, `None` when it overflows `usize`.
pub fn checked_product(sizes: &[usize]) -> Option<usize> {
    sizes.iter().try_fold(1usize, |a, &b| a.checked_mul(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_name_themselves_and_their_variable() {
        for l in ALL {
            let m = l.check_msg(u64::MAX).unwrap_err();
            assert!(m.contains(l.name) && m.contains(l.env), "{m}");
            assert!(l.check_msg(l.default).is_ok());
        }
        assert_eq!(checked_product(&[1 << 63, 4]), None);
        assert_eq!(checked_product(&[3, 4]), Some(12));
        assert_eq!(checked_product(&[]), Some(1));
    }

    #[test]
    fn read_file_refuses_a_device_longer_than_the_limit() {
        // /dev/zero has no length and never ends: the limit stops the read.
        if Path::new("/dev/zero").exists() {
            let e = read_at_most(Path::new("/dev/zero"), 4096)
                .unwrap_err()
                .to_string();
            assert!(e.contains("max_file_bytes = 4096"), "{e}");
        }
        let dir = std::env::temp_dir().join(format!("cogview-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        std::fs::write(&f, [1u8; 100]).unwrap();
        assert!(read_at_most(&f, 99)
            .unwrap_err()
            .to_string()
            .contains("100 bytes"));
        assert_eq!(read_at_most(&f, 100).unwrap().len(), 100);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
