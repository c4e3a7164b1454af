//! Editing's stage 1 and the inverse-prompt score against the official code: fixtures made by
//! CogView2's own `BaseCompletion` (with SAT's `filling_sequence` and the KV cache) and SAT's
//! `evaluate_perplexity`, on the small random CogLM of tests/fixtures/coglm/tiny-f32, with a
//! greedy strategy so that the generated tokens can be compared
//! (tools/reference/make_completion_fixtures.py; tests/fixtures/completion/README.md).

use cogview_backend_tests as common;

use cogview::candle::{CoglmModel, LoadOptions};
use cogview::core::lm::AutoregressiveLm;
use cogview::core::npy::read_npy_file;
use cogview::core::sampling::argmax;
use cogview::core::stage1::{caption_log_likelihood, CoglmGenerator, Stage1Settings};
use cogview::core::stage1::{CompletionMask, CompletionPlan};
use cogview::{GlobalGenerator, Rng, RunContext, Sampler, TextTokens, TokenGrid};
use common::*;
use serde::Deserialize;
use std::sync::{Arc, Mutex};

#[derive(Debug, Deserialize)]
struct CompletionCase {
    image: Vec<u32>,
    mask: Vec<bool>,
    text: Vec<u32>,
    text_bias: f32,
    output: Vec<u32>,
    generated_cells: Vec<usize>,
    sequence_tokens: Vec<u32>,
    sequence_positions: Vec<u32>,
    context_length: usize,
}

#[derive(Debug, Deserialize)]
struct InversePromptCase {
    image: Vec<u32>,
    start_token: u32,
    caption: Vec<u32>,
    official_score: f64,
}

const CASES: [&str; 4] = ["official_rect", "two_regions", "single_cell", "ragged"];

fn dir() -> std::path::PathBuf {
    fixtures().join("completion")
}

fn load_case(name: &str) -> CompletionCase {
    serde_json::from_str(&std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap())
        .unwrap()
}

fn model() -> Arc<CoglmModel> {
    Arc::new(CoglmModel::load(coglm_fixture("tiny-f32"), LoadOptions::default()).unwrap())
}

/// Greedy, and remembers every logits row it was given (in generation order).
#[derive(Debug, Default)]
struct RecordingGreedy {
    rows: Mutex<Vec<Vec<f32>>>,
}

impl Sampler for RecordingGreedy {
    fn sample(&self, logits: &[f32], _rng: &mut Rng) -> cogview::Result<u32> {
        self.rows.lock().unwrap().push(logits.to_vec());
        Ok(argmax(logits) as u32)
    }
}

#[test]
fn the_completion_sequence_is_the_official_one() {
    for name in CASES {
        let c = load_case(name);
        let plan = CompletionPlan::new(&c.mask, 20, 20).unwrap();
        // Rebuild the official sequence from the plan: text, <start_of_image> at 512, the
        // context, then the generation segment with the official output filled in.
        let mut tokens = c.text.clone();
        let mut positions: Vec<u32> = (0..c.text.len() as u32).collect();
        tokens.push(1199);
        positions.push(512);
        for &cell in &plan.context {
            tokens.push(c.image[cell]);
            positions.push(513 + cell as u32);
        }
        assert_eq!(tokens.len(), c.context_length, "{name}: context length");
        let mut generated = Vec::new();
        for &(cell, given) in &plan.generation {
            tokens.push(c.output[cell]);
            positions.push(513 + cell as u32);
            if !given {
                generated.push(cell);
            }
        }
        assert_eq!(tokens, c.sequence_tokens, "{name}: tokens");
        assert_eq!(positions, c.sequence_positions, "{name}: positions");
        assert_eq!(generated, c.generated_cells, "{name}: generation order");
    }
}

#[test]
fn greedy_completion_gives_the_official_tokens_and_logits() {
    let model = model();
    for name in CASES {
        let c = load_case(name);
        let sampler = Arc::new(RecordingGreedy::default());
        let generator = CoglmGenerator::new(
            model.clone() as Arc<dyn AutoregressiveLm>,
            sampler.clone(),
            Stage1Settings {
                text_bias: c.text_bias,
                ..Default::default()
            },
        )
        .unwrap();
        let grid = TokenGrid::new(20, 20, c.image.clone()).unwrap();
        let out = generator
            .complete(
                &TextTokens(c.text.clone()),
                &grid,
                &c.mask,
                &[0],
                &RunContext::with_seed(0),
            )
            .unwrap();
        assert_eq!(out[0].ids, c.output, "{name}: completed grid");
        // The logits of every generated cell (the KV-cache path) against the official ones.
        let want = read_npy_file(dir().join(format!("{name}.step_logits.npy"))).unwrap();
        assert_eq!(want.shape, vec![c.generated_cells.len(), 1000], "{name}");
        let got: Vec<f32> = sampler.rows.lock().unwrap().concat();
        let d = max_abs_diff(&got, &want.to_f32());
        eprintln!(
            "{name}: {} cells, max |step logits diff| {d:e}",
            c.generated_cells.len()
        );
        assert!(d < 1e-4, "{name}: {d}");
    }
}

#[test]
fn the_completion_mask_gives_the_official_logits_in_one_full_forward() {
    // One full forward over the final sequence with cogview's completion mask and bias: the row
    // before each generated cell must give the official step logits (the official script checks
    // its own full forward against them to 1e-5).
    let model = model();
    for name in CASES {
        let c = load_case(name);
        let n = c.sequence_tokens.len();
        let mask = CompletionMask {
            text_len: c.text.len(),
            context_end: c.context_length,
            text_bias: c.text_bias,
        };
        let mut s = model.new_session(1, n).unwrap();
        let got = s
            .forward(&cogview::core::lm::LmInput {
                tokens: &c.sequence_tokens,
                positions: &c.sequence_positions,
                bias: &mask.bias_rows(0, n, n),
                logits: cogview::core::lm::LogitsRequest::All { vocab: 1000 },
            })
            .unwrap();
        let want = read_npy_file(dir().join(format!("{name}.step_logits.npy"))).unwrap();
        let want = want.to_f32();
        let mut rows = Vec::new();
        for &cell in &c.generated_cells {
            let k = c
                .sequence_positions
                .iter()
                .position(|&p| p == 513 + cell as u32)
                .unwrap();
            rows.extend_from_slice(got.row(k - 1));
        }
        let d = max_abs_diff(&rows, &want);
        assert!(d < 1e-4, "{name}: {d}");
    }
}

#[test]
fn the_inverse_prompt_score_is_the_official_one() {
    let model = model();
    let cases: Vec<InversePromptCase> =
        serde_json::from_str(&std::fs::read_to_string(dir().join("inverse_prompt.json")).unwrap())
            .unwrap();
    assert!(cases.len() >= 3);
    let layout = Stage1Settings::default().layout;
    for c in &cases {
        let got =
            caption_log_likelihood(model.as_ref(), &layout, &c.image, c.start_token, &c.caption)
                .unwrap();
        // SAT returns the mean negative log-likelihood; cogview the mean log-probability.
        let want = -c.official_score;
        eprintln!(
            "caption of {} tokens: {got} vs official {want}",
            c.caption.len()
        );
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
    }
}
