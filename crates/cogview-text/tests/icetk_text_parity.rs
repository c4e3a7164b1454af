//! The text tokenizer against icetk's own `TextTokenizer` (sentencepiece 0.2, icetk from PyPI) on a
//! SentencePiece unigram model trained by tools/reference/make_icetk_fixtures.py.

use cogview_backend_tests as common;

use cogview::text::{IceTextTokenizer, SPECIAL_TOKENS};
use cogview::{TextTokenizer, TextTokens};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    ice_ids: Vec<u32>,
    decoded: String,
}

fn tokenizer() -> IceTextTokenizer {
    IceTextTokenizer::from_file(common::fixtures().join("icetk/text/ice_text.model")).unwrap()
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(common::fixtures().join("icetk/text/cases.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn ids_equal_icetk_on_every_recorded_string() {
    let tok = tokenizer();
    let cases = cases();
    assert!(cases.len() >= 1000);
    let mut failures = Vec::new();
    for c in &cases {
        let got = tok.encode_pieces(&c.text).unwrap();
        if got != c.ids {
            failures.push(format!("{:?}: got {:?}, icetk {:?}", c.text, got, c.ids));
        }
        assert_eq!(tok.encode(&c.text).unwrap(), TextTokens(c.ice_ids.clone()));
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        cases.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

#[test]
fn decoding_equals_icetk() {
    let tok = tokenizer();
    let mut failures = Vec::new();
    for c in cases() {
        let got = tok.decode(&c.ice_ids).unwrap();
        if got != c.decoded {
            failures.push(format!("{:?}: got {got:?}, icetk {:?}", c.text, c.decoded));
        }
    }
    assert!(
        failures.is_empty(),
        "{} differ:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}

#[test]
fn the_special_tokens_follow_the_pieces_as_icetk_appends_them() {
    let tok = tokenizer();
    let n = tok.len() as u32 - 3;
    for (i, s) in SPECIAL_TOKENS.iter().enumerate() {
        assert_eq!(tok.piece_id(s), Some(20000 + n + i as u32));
    }
    // Inside a template the start-of-image piece is one token, as in CogView2's query.
    let ids = tok.encode("a cat 高清摄影 隔绝<start_of_image>").unwrap();
    assert_eq!(*ids.0.last().unwrap(), 20000 + n);
    assert!(tok.decode(&[5]).is_err(), "image codes are not text");
}

#[test]
fn a_corrupt_model_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(common::fixtures().join("icetk/text/ice_text.model")).unwrap();
    for (name, data) in [
        ("cut.model", &bytes[..bytes.len() / 3]),
        ("junk.model", &b"\xff\xfe garbage"[..]),
        ("empty.model", &b""[..]),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        let err = IceTextTokenizer::from_file(&p).unwrap_err();
        assert!(
            matches!(err, cogview::Error::InvalidCheckpoint { .. }),
            "{name}: {err}"
        );
        assert!(err.to_string().contains(name), "{err}");
    }
}
