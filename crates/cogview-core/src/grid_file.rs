//! The token-grid file: a JSON document that carries a grid with what is needed to interpret it.
//!
//! ```json
//! {"format": "cogview-token-grid", "version": 1, "height": 20, "width": 20,
//!  "compression": 8, "tokenizer_sha256": "3f2a…", "ids": [123, 4077, …]}
//! ```
//!
//! - `ids`: `height × width` codebook indices, row-major.
//! - `compression`: pixels per token side (4, 8 or 16) the grid was encoded at.
//! - `tokenizer_sha256`: SHA-256 of the image tokenizer's codebook (f32, little-endian), so a grid
//!   is never decoded with a tokenizer whose ids mean something else.
//!
//! The short form `{"height": h, "width": w, "ids": [...]}` (what `cogview tokenize --json`
//! prints) is accepted too; it is checked for size only.

use crate::error::{Error, Result};
use crate::traits::Compression;
use crate::types::TokenGrid;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The `format` field of a token-grid file.
pub const FORMAT: &str = "cogview-token-grid";
/// The `version` field this library writes (and the newest it reads).
pub const VERSION: u32 = 1;

/// A token grid with its provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridFile {
    /// The token ids.
    pub grid: TokenGrid,
    /// The compression of the image tokenizer that made it, when known.
    pub compression: Option<Compression>,
    /// SHA-256 of the image tokenizer's weights, when known.
    pub tokenizer_sha256: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Doc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    height: usize,
    width: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compression: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tokenizer_sha256: Option<String>,
    ids: Vec<u32>,
}

impl Compression {
    /// 4, 8 or 16 → the compression rate; anything else is an error naming the accepted values.
    pub fn from_factor(f: usize) -> Result<Self> {
        match f {
            4 => Ok(Compression::X4),
            8 => Ok(Compression::X8),
            16 => Ok(Compression::X16),
            _ => Err(Error::invalid_input(
                "compression",
                format!("{f} is not a compression rate of icetk; use 4, 8 or 16"),
            )),
        }
    }
}

impl GridFile {
    /// The file's JSON text.
    pub fn to_json(&self) -> String {
        let doc = Doc {
            format: Some(FORMAT.into()),
            version: Some(VERSION),
            height: self.grid.height,
            width: self.grid.width,
            compression: self.compression.map(|c| c.factor()),
            tokenizer_sha256: self.tokenizer_sha256.clone(),
            ids: self.grid.ids.clone(),
        };
        serde_json::to_string(&doc).expect("serialisable")
    }

    /// Parses either form; `what` names the source in errors.
    pub fn parse(text: &str, what: &str) -> Result<Self> {
        let doc: Doc = serde_json::from_str(text)
            .map_err(|e| Error::invalid_input(what, format!("not a token-grid file: {e}")))?;
        if let Some(f) = &doc.format {
            if f != FORMAT {
                return Err(Error::invalid_input(
                    what,
                    format!("format '{f}' is not '{FORMAT}'"),
                ));
            }
        }
        if let Some(v) = doc.version {
            if v > VERSION {
                return Err(Error::invalid_input(
                    what,
                    format!("token-grid version {v} is newer than this cogview ({VERSION})"),
                ));
            }
        }
        match doc.height.checked_mul(doc.width) {
            Some(cells) => crate::limits::GRID_CELLS.check(cells as u64, what)?,
            None => {
                return Err(Error::invalid_input(
                    what,
                    crate::limits::GRID_CELLS
                        .overflow_msg(&format!("{}x{}", doc.height, doc.width)),
                ))
            }
        }
        let grid = TokenGrid::new(doc.height, doc.width, doc.ids)
            .map_err(|e| Error::invalid_input(what, e.to_string()))?;
        let compression = doc.compression.map(Compression::from_factor).transpose()?;
        Ok(GridFile {
            grid,
            compression,
            tokenizer_sha256: doc.tokenizer_sha256,
        })
    }

    /// Reads and checks a token-grid file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::limits::read_text(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Writes the file (JSON), crash-safely ([`crate::output`]).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::output::write_file(path.as_ref(), self.to_json().as_bytes())
    }

    /// Checks the grid against the tokenizer and compression it is about to be decoded with.
    pub fn check_against(
        &self,
        tokenizer_sha256: &str,
        compression: Compression,
        what: &str,
    ) -> Result<()> {
        if let Some(h) = &self.tokenizer_sha256 {
            if h != tokenizer_sha256 {
                return Err(Error::invalid_input(
                    what,
                    format!("the grid was made by another image tokenizer (codebook {h}, this one {tokenizer_sha256}); decode it with the tokenizer that encoded it"),
                ));
            }
        }
        if let Some(c) = self.compression {
            if c != compression {
                return Err(Error::invalid_input(
                    what,
                    format!(
                        "the grid was encoded at compression {} but decoding was asked at {}",
                        c.factor(),
                        compression.factor()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_the_short_form() {
        let g = GridFile {
            grid: TokenGrid::new(2, 3, vec![1, 2, 3, 4, 5, 19999]).unwrap(),
            compression: Some(Compression::X8),
            tokenizer_sha256: Some("ab".into()),
        };
        assert_eq!(GridFile::parse(&g.to_json(), "x").unwrap(), g);
        let short = GridFile::parse(
            r#"{"height": 2, "width": 3, "ids": [1,2,3,4,5,19999]}"#,
            "x",
        )
        .unwrap();
        assert_eq!(short.grid, g.grid);
        assert!(short
            .check_against("anything", Compression::X4, "x")
            .is_ok());
        assert!(g
            .check_against("cd", Compression::X8, "x")
            .unwrap_err()
            .to_string()
            .contains("another image tokenizer"));
        assert!(g
            .check_against("ab", Compression::X16, "x")
            .unwrap_err()
            .to_string()
            .contains("compression 8"));
    }

    #[test]
    fn wrong_sizes_and_fields_are_errors() {
        assert!(
            GridFile::parse(r#"{"height": 2, "width": 3, "ids": [1,2]}"#, "g")
                .unwrap_err()
                .to_string()
                .contains("2x3")
        );
        assert!(GridFile::parse(r#"{"height": 0, "width": 3, "ids": []}"#, "g").is_err());
        assert!(
            GridFile::parse(r#"{"height": 1, "width": 1, "ids": [1], "colour": 2}"#, "g").is_err()
        );
        assert!(GridFile::parse(
            r#"{"height": 1, "width": 1, "ids": [1], "compression": 5}"#,
            "g"
        )
        .unwrap_err()
        .to_string()
        .contains("4, 8 or 16"));
        assert!(GridFile::parse("not json", "g").is_err());
    }

    #[test]
    fn declared_sizes_that_overflow_or_exceed_the_limit_are_refused_by_name() {
        // 2^63 x 4 cells wraps to 0 in unchecked arithmetic ("(0 needed)").
        let e = GridFile::parse(
            r#"{"height": 9223372036854775808, "width": 4, "ids": []}"#,
            "g",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("9223372036854775808x4") && e.contains("max_grid_cells"),
            "{e}"
        );
        assert!(!e.contains("(0 needed)"), "{e}");
        let e = GridFile::parse(r#"{"height": 4096, "width": 4096, "ids": [1]}"#, "g")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("16777216 cells") && e.contains("COGVIEW_MAX_GRID_CELLS"),
            "{e}"
        );
        let e = TokenGrid::new(1 << 63, 4, vec![]).unwrap_err().to_string();
        assert!(
            e.contains("9223372036854775808x4") && !e.contains("(0 needed)"),
            "{e}"
        );
        let e = crate::Image::new(1 << 62, 4, vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("overflows"), "{e}");
    }
}
