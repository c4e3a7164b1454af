//! # cogview-text
//!
//! icetk's text tokenizer without Python: `ice_text.model` (a SentencePiece `ModelProto`) is parsed
//! in pure Rust (`sentencepiece-model`) and rebuilt as a `tokenizers` unigram pipeline that
//! reproduces SentencePiece's encoding: the precompiled normalisation map, whitespace clean-up
//! (leading/trailing spaces removed, runs collapsed), the dummy `▁` prefix, and Viterbi over the
//! pieces. icetk shifts every id by +20000 (the image codes come first) and appends three special
//! pieces at run time, which get the ids 150000, 150001 and 150002 with the official model.
//!
//! ```no_run
//! use cogview_text::IceTextTokenizer;
//! use cogview_core::TextTokenizer;
//! let tok = IceTextTokenizer::from_file("ice_text.model").unwrap();
//! let ids = tok.encode("一只可爱的猫 高清摄影 隔绝<start_of_image>").unwrap();
//! assert_eq!(*ids.0.last().unwrap(), 150000);
//! ```

use cogview_core::{Error, Result, TextTokenizer, TextTokens};
use sentencepiece_model::{SentencePieceModel, Type};
use std::path::Path;
use tokenizers::normalizers::{Precompiled, Prepend, Replace, Sequence};
use tokenizers::{Model, NormalizedString, Normalizer, NormalizerWrapper};

/// The special pieces icetk appends, in CogView2's order.
pub const SPECIAL_TOKENS: [&str; 3] = [
    "<start_of_image>",
    "<start_of_english>",
    "<start_of_chinese>",
];

/// icetk's id offset: ids below it are image codes.
pub const ICETK_TEXT_OFFSET: u32 = 20000;

/// How a piece behaves in encoding and decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Normal,
    Unknown,
    Control,
    Byte(u8),
}

/// icetk's `TextTokenizer` + `IceTokenizer` text path.
pub struct IceTextTokenizer {
    normalizer: NormalizerWrapper,
    model: tokenizers::models::unigram::Unigram,
    pieces: Vec<(String, Kind)>,
    offset: u32,
    add_dummy_prefix: bool,
    source: String,
}

impl std::fmt::Debug for IceTextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceTextTokenizer")
            .field("source", &self.source)
            .field("pieces", &self.pieces.len())
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

fn bad(source: &str, reason: impl Into<String>) -> Error {
    Error::checkpoint(source, reason.into())
}

impl IceTextTokenizer {
    /// Reads `ice_text.model`, appends icetk's three specials and uses icetk's +20000 offset.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = cogview_core::limits::read_file(path)?;
        Self::from_bytes(
            &bytes,
            &path.display().to_string(),
            ICETK_TEXT_OFFSET,
            &SPECIAL_TOKENS,
        )
    }

    /// Builds the tokenizer from the bytes of a SentencePiece model. `specials` are appended as
    /// icetk's `add_special_tokens` does (type NORMAL, score 0); `offset` is added to every id.
    pub fn from_bytes(bytes: &[u8], source: &str, offset: u32, specials: &[&str]) -> Result<Self> {
        let spm = SentencePieceModel::from_slice(bytes).map_err(|e| {
            bad(
                source,
                format!("not a SentencePiece model (protobuf error: {e})"),
            )
        })?;
        let model_type = spm.trainer().map(|t| t.model_type());
        if let Some(t) = model_type {
            if t != sentencepiece_model::ModelType::Unigram {
                return Err(bad(
                    source,
                    format!("SentencePiece model type {t:?} is not supported; icetk uses unigram"),
                ));
            }
        }
        if spm.pieces().is_empty() {
            return Err(bad(source, "the SentencePiece model has no pieces"));
        }
        let byte_fallback = spm.trainer().is_some_and(|t| t.byte_fallback());
        let mut vocab = Vec::with_capacity(spm.pieces().len() + specials.len());
        let mut pieces = Vec::with_capacity(vocab.capacity());
        let mut unk_id = None;
        for (i, p) in spm.pieces().iter().enumerate() {
            let text = p.piece().to_string();
            if text.is_empty() {
                return Err(bad(source, format!("piece {i} is empty")));
            }
            let kind = match p.r#type() {
                Type::Normal | Type::UserDefined => Kind::Normal,
                Type::Unknown => {
                    unk_id.get_or_insert(i);
                    Kind::Unknown
                }
                Type::Byte => {
                    let hex = text.strip_prefix("<0x").and_then(|t| t.strip_suffix('>'));
                    Kind::Byte(
                        hex.and_then(|h| u8::from_str_radix(h, 16).ok())
                            .ok_or_else(|| {
                                bad(source, format!("byte piece {i} is malformed: {text}"))
                            })?,
                    )
                }
                Type::Control | Type::Unused => Kind::Control,
            };
            // Control and unused pieces are never produced from text: give the unigram model a
            // string no normalised text can contain, keeping the id positions.
            let matchable = match kind {
                Kind::Control | Kind::Unknown => format!("\u{0}\u{F8FF}{i}"),
                _ => text.clone(),
            };
            vocab.push((matchable, p.score() as f64));
            pieces.push((text, kind));
        }
        for s in specials {
            vocab.push((s.to_string(), 0.0));
            pieces.push((s.to_string(), Kind::Normal));
        }
        let unk_id =
            unk_id.ok_or_else(|| bad(source, "the SentencePiece model has no unknown piece"))?;
        let model = tokenizers::models::unigram::Unigram::from(vocab, Some(unk_id), byte_fallback)
            .map_err(|e| bad(source, format!("cannot build the unigram model: {e}")))?;

        let spec = spm.normalizer();
        let add_dummy_prefix = spec.map(|s| s.add_dummy_prefix()).unwrap_or(true);
        let remove_extra = spec.map(|s| s.remove_extra_whitespaces()).unwrap_or(true);
        let escape = spec.map(|s| s.escape_whitespaces()).unwrap_or(true);
        let mut steps: Vec<NormalizerWrapper> = Vec::new();
        if let Some(map) = spec
            .map(|s| s.precompiled_charsmap())
            .filter(|m| !m.is_empty())
        {
            let pre = Precompiled::from(map)
                .map_err(|e| bad(source, format!("the normalisation map is corrupt: {e}")))?;
            steps.push(pre.into());
        }
        let replace = |pattern: tokenizers::normalizers::replace::ReplacePattern,
                       with: &str|
         -> Result<NormalizerWrapper> {
            Ok(Replace::new(pattern, with)
                .map_err(|e| bad(source, e.to_string()))?
                .into())
        };
        use tokenizers::normalizers::replace::ReplacePattern as P;
        if remove_extra {
            steps.push(replace(P::Regex(" {2,}".into()), " ")?);
            steps.push(replace(P::Regex("^ | $".into()), "")?);
        }
        if add_dummy_prefix {
            steps.push(Prepend::new(" ".into()).into());
        }
        if escape {
            steps.push(replace(P::String(" ".into()), "▁")?);
        }
        Ok(IceTextTokenizer {
            normalizer: Sequence::new(steps).into(),
            model,
            pieces,
            offset,
            add_dummy_prefix,
            source: source.to_string(),
        })
    }

    /// Number of ids (pieces + appended specials), before the offset.
    pub fn len(&self) -> usize {
        self.pieces.len()
    }
    /// Whether it has no id.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
    /// Added to every piece's index to give its id (icetk: 20000; ids below are image codes).
    pub fn offset(&self) -> u32 {
        self.offset
    }

    /// The id (with offset) of a piece, e.g. `"<start_of_image>"` → 150000 in icetk.
    pub fn piece_id(&self, piece: &str) -> Option<u32> {
        self.pieces
            .iter()
            .position(|(p, _)| p == piece)
            .map(|i| i as u32 + self.offset)
    }

    /// SentencePiece ids (without the offset) of `text`.
    pub fn encode_pieces(&self, text: &str) -> Result<Vec<u32>> {
        cogview_core::limits::PROMPT_BYTES.check(text.len() as u64, "text")?;
        let mut n = NormalizedString::from(text);
        self.normalizer
            .normalize(&mut n)
            .map_err(|e| Error::invalid_input("text", e.to_string()))?;
        let normalized = n.get();
        if normalized.is_empty() {
            return Ok(Vec::new());
        }
        let tokens = self
            .model
            .tokenize(normalized)
            .map_err(|e| Error::invalid_input("text", e.to_string()))?;
        Ok(tokens.into_iter().map(|t| t.id).collect())
    }

    /// SentencePiece's `DecodeIds` over ids without the offset.
    pub fn decode_pieces(&self, ids: &[u32]) -> Result<String> {
        let mut bytes: Vec<u8> = Vec::new();
        let mut out = String::new();
        let flush = |bytes: &mut Vec<u8>, out: &mut String| {
            if !bytes.is_empty() {
                out.push_str(&String::from_utf8_lossy(bytes));
                bytes.clear();
            }
        };
        for (i, &id) in ids.iter().enumerate() {
            let (text, kind) =
                self.pieces
                    .get(id as usize)
                    .ok_or_else(|| Error::TokenOutOfVocab {
                        token: id + self.offset,
                        index: i,
                        vocab_size: (self.pieces.len() as u32 + self.offset) as usize,
                    })?;
            match kind {
                Kind::Byte(b) => bytes.push(*b),
                Kind::Control => flush(&mut bytes, &mut out),
                Kind::Unknown => {
                    flush(&mut bytes, &mut out);
                    out.push_str(" \u{2047} ");
                }
                Kind::Normal => {
                    flush(&mut bytes, &mut out);
                    out.push_str(&text.replace('▁', " "));
                }
            }
        }
        flush(&mut bytes, &mut out);
        if self.add_dummy_prefix {
            if let Some(rest) = out.strip_prefix(' ') {
                return Ok(rest.to_string());
            }
        }
        Ok(out)
    }
}

impl TextTokenizer for IceTextTokenizer {
    fn encode(&self, text: &str) -> Result<TextTokens> {
        Ok(TextTokens(
            self.encode_pieces(text)?
                .into_iter()
                .map(|id| id + self.offset)
                .collect(),
        ))
    }

    /// Decodes text ids (image codes below the offset are an error).
    fn decode(&self, ids: &[u32]) -> Result<String> {
        let shifted = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                id.checked_sub(self.offset).ok_or_else(|| {
                    Error::invalid_input("ids", format!("id {id} at index {i} is an image code, not text (text ids start at {})", self.offset))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.decode_pieces(&shifted)
    }
}
