//! The default model's text tokenizer: a word-level unigram model estimated from the training
//! captions, written as a SentencePiece `ModelProto` (`ice_text.model`), the format icetk uses and
//! `cogview-text` reads.
//!
//! Captions here are short, whitespace-separated and drawn from small vocabularies (the scene
//! grammar's 30 words, the emoji names' ~2000), so the unigram model's maximum-likelihood pieces
//! are the words themselves: each word `w` seen at least `min_count` times becomes the piece `▁w`
//! with score ln(count / total), and every character of the captions is kept as a fallback piece
//! (scored below every word), so any caption — and any other text made of those characters —
//! encodes without `<unk>`. (The `tokenizers` crate's unigram trainer was tried first; on such
//! small corpora it pruned whole words away and left mostly single characters.)

use cogview_core::Result;
use std::collections::BTreeMap;

/// SentencePiece piece types (sentencepiece_model.proto).
const NORMAL: u64 = 1;
const UNKNOWN: u64 = 2;
const CONTROL: u64 = 3;

fn varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7F) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn field_varint(field: u64, v: u64, out: &mut Vec<u8>) {
    varint(field << 3, out);
    varint(v, out);
}

fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
    let mut p = Vec::new();
    field_bytes(1, text.as_bytes(), &mut p);
    varint(2 << 3 | 5, &mut p); // float, fixed32
    p.extend_from_slice(&score.to_le_bytes());
    if kind != NORMAL {
        field_varint(3, kind, &mut p);
    }
    p
}

/// Serialises pieces `(text, score)` as a unigram SentencePiece model: `<unk>`, `<s>`, `</s>`
/// first (ids 0-2, as SentencePiece numbers them), then the pieces; identity normalisation with
/// the dummy `▁` prefix and whitespace clean-up.
pub fn sentencepiece_model(pieces: &[(String, f64)]) -> Vec<u8> {
    let mut out = Vec::new();
    field_bytes(1, &piece("<unk>", 0.0, UNKNOWN), &mut out);
    field_bytes(1, &piece("<s>", 0.0, CONTROL), &mut out);
    field_bytes(1, &piece("</s>", 0.0, CONTROL), &mut out);
    for (text, score) in pieces {
        field_bytes(1, &piece(text, *score as f32, NORMAL), &mut out);
    }
    // trainer_spec: model_type = UNIGRAM (field 3).
    let mut trainer = Vec::new();
    field_varint(3, 1, &mut trainer);
    field_bytes(2, &trainer, &mut out);
    // normalizer_spec: name, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces.
    let mut norm = Vec::new();
    field_bytes(1, b"identity", &mut norm);
    field_varint(3, 1, &mut norm);
    field_varint(4, 1, &mut norm);
    field_varint(5, 1, &mut norm);
    field_bytes(3, &norm, &mut out);
    out
}

/// Estimates the vocabulary from `captions` (words seen at least `min_count` times, at most
/// `max_words` of the most frequent) and returns the `ice_text.model` bytes. Deterministic: ties
/// are broken by the word.
pub fn train(captions: &[String], min_count: usize, max_words: usize) -> Result<Vec<u8>> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut chars: BTreeMap<char, usize> = BTreeMap::new();
    for c in captions {
        for w in c.split_whitespace() {
            *counts.entry(w).or_default() += 1;
            for ch in w.chars() {
                *chars.entry(ch).or_default() += 1;
            }
        }
    }
    let mut words: Vec<(&str, usize)> = counts
        .into_iter()
        .filter(|(_, n)| *n >= min_count.max(1))
        .collect();
    words.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    words.truncate(max_words);
    let total: usize = words.iter().map(|(_, n)| n).sum::<usize>().max(1);
    let mut pieces: Vec<(String, f64)> = words
        .iter()
        .map(|(w, n)| (format!("\u{2581}{w}"), (*n as f64 / total as f64).ln()))
        .collect();
    // Fallback pieces: the word boundary and every character, below every word.
    let floor = pieces.iter().map(|(_, s)| *s).fold(0.0, f64::min) - 5.0;
    pieces.push(("\u{2581}".into(), floor));
    let char_total: usize = chars.values().sum::<usize>().max(1);
    for (ch, n) in chars {
        pieces.push((
            ch.to_string(),
            floor - 5.0 + (n as f64 / char_total as f64).ln(),
        ));
    }
    Ok(sentencepiece_model(&pieces))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cogview_core::TextTokenizer;

    fn load(bytes: &[u8]) -> cogview_text::IceTextTokenizer {
        cogview_text::IceTextTokenizer::from_bytes(
            bytes,
            "test",
            100,
            &cogview_text::SPECIAL_TOKENS,
        )
        .unwrap()
    }

    #[test]
    fn the_model_loads_and_round_trips_every_caption() {
        let captions: Vec<String> = [
            "a small red circle at the top left",
            "a large blue square in the center and a small green triangle at the right",
            "face with raised eyebrow",
            "waving hand, medium-dark skin tone",
            "keycap #",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let bytes = train(&captions, 1, 1000).unwrap();
        let tok = load(&bytes);
        for c in &captions {
            let ids = tok.encode(c).unwrap();
            assert!(ids.0.iter().all(|&i| i >= 100), "offset applied");
            assert_eq!(tok.decode(&ids.0).unwrap(), *c);
            // No <unk> (id 100 + 0).
            assert!(!ids.0.contains(&100), "{c}: {:?}", ids.0);
        }
        // The specials follow the pieces.
        assert_eq!(
            tok.piece_id("<start_of_image>"),
            Some(100 + tok.len() as u32 - 3)
        );
        // Training is deterministic.
        assert_eq!(train(&captions, 1, 1000).unwrap(), bytes);
    }

    #[test]
    fn frequent_words_become_single_pieces() {
        let captions: Vec<String> = (0..50)
            .map(|i| format!("a small red circle at the top {}", ["left", "right"][i % 2]))
            .collect();
        let tok = load(&train(&captions, 2, 1000).unwrap());
        assert_eq!(tok.encode("a small red circle").unwrap().len(), 4);
        // A word never seen is spelled with the boundary and its characters, not <unk>.
        let ids = tok.encode("tiara").unwrap();
        assert_eq!(ids.len(), 6, "{ids:?}");
        assert_eq!(tok.decode(&ids.0).unwrap(), "tiara");
    }
}
