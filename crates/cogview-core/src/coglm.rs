//! CogLM (stage 1) as the official CogView2 drives it: the query layout, position ids, the attention
//! mask with the text bias, and the 400-step generation loop with cluster sampling. Backends only run
//! the transformer ([`AutoregressiveLm`]); everything here is shared by all of them.

use crate::context::RunContext;
use crate::error::{Error, Result};
use crate::lm::{AutoregressiveLm, LmInput, LogitsRequest};
use crate::rng::Rng;
use crate::sampling::Sampler;
use crate::traits::GlobalGenerator;
use crate::types::{TextTokens, TokenGrid};
use std::sync::Arc;

/// The official prompt styles (`--style` in `cogview2_text2image.py`); each appends a Chinese suffix
/// to the prompt before `<start_of_image>`. `Mainbody` is the official default.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    None,
    #[default]
    Mainbody,
    Photo,
    Flat,
    Comics,
    Oil,
    Sketch,
    Isometric,
    Chinese,
    Watercolor,
}

impl Style {
    pub const ALL: [Style; 10] = [
        Style::None,
        Style::Mainbody,
        Style::Photo,
        Style::Flat,
        Style::Comics,
        Style::Oil,
        Style::Sketch,
        Style::Isometric,
        Style::Chinese,
        Style::Watercolor,
    ];

    /// The text the official template puts between the prompt and `<start_of_image>`.
    pub fn suffix(self) -> &'static str {
        match self {
            Style::None => "",
            Style::Mainbody => " 高清摄影 隔绝",
            Style::Photo => " 高清摄影",
            Style::Flat => " 平面风格",
            Style::Comics => " 漫画 隔绝",
            Style::Oil => " 油画风格",
            Style::Sketch => " 素描风格",
            Style::Isometric => " 等距矢量图",
            Style::Chinese => " 水墨国画",
            Style::Watercolor => " 水彩画风格",
        }
    }

    /// The query text to tokenize: prompt + suffix (the generator appends `<start_of_image>`).
    pub fn query_text(self, prompt: &str) -> String {
        format!("{prompt}{}", self.suffix())
    }

    /// Stage-1 temperature of the official recipe (`temp_all_gen`).
    pub fn stage1_temperature(self) -> f32 {
        match self {
            Style::Flat | Style::Comics | Style::Sketch | Style::Isometric => 1.1,
            Style::Chinese => 1.12,
            _ => 1.15,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Style::None => "none",
            Style::Mainbody => "mainbody",
            Style::Photo => "photo",
            Style::Flat => "flat",
            Style::Comics => "comics",
            Style::Oil => "oil",
            Style::Sketch => "sketch",
            Style::Isometric => "isometric",
            Style::Chinese => "chinese",
            Style::Watercolor => "watercolor",
        }
    }
}

impl std::str::FromStr for Style {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Style::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Style::ALL.iter().map(|s| s.name()).collect();
                Error::invalid_input(
                    "style",
                    format!("unknown style '{s}'; use one of {}", names.join(", ")),
                )
            })
    }
}

/// CogLM's attention mask and text bias (`get_masks_and_position_ids_coglm` + `log_attention_weights`).
///
/// Query `q` may attend to key `k` when `k <= q` (causal) or `k < text_len` (every row sees all text),
/// so text is bidirectional among text and image tokens are causal. Visible text keys get
/// `text_bias` added to their score (1.4 in the official recipe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoglmMask {
    pub text_len: usize,
    pub text_bias: f32,
}

impl CoglmMask {
    pub fn allows(&self, q: usize, k: usize) -> bool {
        k <= q || k < self.text_len
    }

    /// The additive bias for queries `q_start..q_start+q_len` over keys `0..k_len` (sequence indices):
    /// `[q_len, k_len]` row-major, `-inf` where masked.
    pub fn bias_rows(&self, q_start: usize, q_len: usize, k_len: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(q_len * k_len);
        for q in q_start..q_start + q_len {
            for k in 0..k_len {
                out.push(if !self.allows(q, k) {
                    f32::NEG_INFINITY
                } else if k < self.text_len {
                    self.text_bias
                } else {
                    0.0
                });
            }
        }
        out
    }
}

/// Logits of every position of one sequence under the CogLM mask, over the first `vocab` ids:
/// `[tokens.len(), vocab]`. Used for parity checks and captions.
pub fn full_logits(
    model: &dyn AutoregressiveLm,
    tokens: &[u32],
    positions: &[u32],
    mask: CoglmMask,
    vocab: usize,
) -> Result<crate::lm::Logits> {
    let n = tokens.len();
    if mask.text_len > n {
        return Err(Error::invalid_input(
            "text_len",
            format!("text_len {} exceeds the {n} tokens", mask.text_len),
        ));
    }
    let mut session = model.new_session(1, n.max(1))?;
    session.forward(&LmInput {
        tokens,
        positions,
        bias: &mask.bias_rows(0, n, n),
        logits: LogitsRequest::All { vocab },
    })
}

/// Mean log-probability (natural log, per token) of the image tokens `image` given `text`, in
/// stage 1's layout (`text, <start_of_image>, image`) over the image vocabulary: how well an image
/// fits a caption under CogLM (caption → image retrieval).
pub fn image_log_likelihood(
    model: &dyn AutoregressiveLm,
    layout: &Stage1Layout,
    text: &[u32],
    image: &[u32],
    text_bias: f32,
) -> Result<f64> {
    let spec = model.spec();
    if image.is_empty() {
        return Err(Error::invalid_input("image", "no image tokens to score"));
    }
    crate::lm::check_vocab(image, spec.image_vocab_size)?;
    let (mut tokens, mut positions) = layout.query(text, spec.start_of_image_id)?;
    let t = text.len();
    tokens.extend_from_slice(&image[..image.len() - 1]);
    positions.extend((0..image.len() - 1).map(|j| layout.image_position(j)));
    let mask = CoglmMask {
        text_len: t,
        text_bias,
    };
    let logits = full_logits(model, &tokens, &positions, mask, spec.image_vocab_size)?;
    let mut total = 0f64;
    for (j, &target) in image.iter().enumerate() {
        let row = logits.row(t + j);
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let lse = row
            .iter()
            .map(|&x| ((x - max) as f64).exp())
            .sum::<f64>()
            .ln()
            + max as f64;
        total += row[target as usize] as f64 - lse;
    }
    Ok(total / image.len() as f64)
}

/// Where stage 1 puts things: the image grid, the position of `<start_of_image>` and the text limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage1Layout {
    /// Image grid rows (official: 20).
    pub grid_height: usize,
    /// Image grid columns (official: 20).
    pub grid_width: usize,
    /// Position id of `<start_of_image>`; image token j gets this + 1 + j (official: 512).
    pub start_of_image_position: usize,
    /// Longest text (prompt + template, without `<start_of_image>`) accepted (official: 109, from the
    /// `len(seq) <= 110` check of `cogview2_text2image.py`).
    pub max_text_tokens: usize,
}

impl Default for Stage1Layout {
    fn default() -> Self {
        Stage1Layout {
            grid_height: 20,
            grid_width: 20,
            start_of_image_position: 512,
            max_text_tokens: 109,
        }
    }
}

impl Stage1Layout {
    pub fn image_tokens(&self) -> usize {
        self.grid_height * self.grid_width
    }

    /// Position id of image token `j` (row-major).
    pub fn image_position(&self, j: usize) -> u32 {
        (self.start_of_image_position + 1 + j) as u32
    }

    /// The context of stage 1: `text + [start_of_image]` and its position ids `0..n-1, 512`.
    pub fn query(&self, text: &[u32], start_of_image_id: u32) -> Result<(Vec<u32>, Vec<u32>)> {
        if text.len() > self.max_text_tokens {
            return Err(Error::TextTooLong {
                tokens: text.len(),
                max: self.max_text_tokens,
                what: "CogLM".into(),
            });
        }
        if text.len() > self.start_of_image_position {
            return Err(Error::TextTooLong {
                tokens: text.len(),
                max: self.start_of_image_position,
                what: "the position layout (text positions must stay below <start_of_image>)"
                    .into(),
            });
        }
        let mut tokens = text.to_vec();
        tokens.push(start_of_image_id);
        let mut positions: Vec<u32> = (0..text.len() as u32).collect();
        positions.push(self.start_of_image_position as u32);
        Ok((tokens, positions))
    }

    /// Checks that the layout fits a model with `max_positions` position embeddings.
    pub fn check_fits(&self, max_positions: usize) -> Result<()> {
        let last = self.start_of_image_position + self.image_tokens();
        if self.grid_height == 0 || self.grid_width == 0 {
            return Err(Error::config(
                "stage-1 layout",
                "grid",
                "the image grid is empty",
            ));
        }
        if last >= max_positions {
            return Err(Error::config(
                "stage-1 layout",
                "start_of_image_position",
                format!("image positions reach {last} but the model has only {max_positions} position embeddings"),
            ));
        }
        Ok(())
    }
}

/// Stage-1 settings besides the sampler (official values by default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage1Settings {
    pub layout: Stage1Layout,
    /// Added to every attention score on a text key (`attn_plus`, official 1.4).
    pub text_bias: f32,
    /// Images generated together in one batch (official `--max-inference-batch-size` 8).
    pub max_batch: usize,
}

impl Default for Stage1Settings {
    fn default() -> Self {
        Stage1Settings {
            layout: Stage1Layout::default(),
            text_bias: 1.4,
            max_batch: 8,
        }
    }
}

/// CogLM as a [`GlobalGenerator`]: prefill the context, then one token per step with the KV cache,
/// each image sampled from its own seeded generator.
pub struct CoglmGenerator {
    pub model: Arc<dyn AutoregressiveLm>,
    pub sampler: Arc<dyn Sampler>,
    pub settings: Stage1Settings,
}

impl CoglmGenerator {
    pub fn new(
        model: Arc<dyn AutoregressiveLm>,
        sampler: Arc<dyn Sampler>,
        settings: Stage1Settings,
    ) -> Result<Self> {
        let spec = model.spec();
        settings.layout.check_fits(spec.max_positions)?;
        if settings.max_batch == 0 {
            return Err(Error::invalid_input("max_batch", "must be at least 1"));
        }
        if spec.image_vocab_size == 0 || spec.image_vocab_size > spec.vocab_size {
            return Err(Error::config(
                "model",
                "image_vocab_size",
                format!(
                    "{} is not within the vocabulary of {}",
                    spec.image_vocab_size, spec.vocab_size
                ),
            ));
        }
        Ok(CoglmGenerator {
            model,
            sampler,
            settings,
        })
    }

    fn generate_batch(
        &self,
        text: &[u32],
        seeds: &[u64],
        ctx: &RunContext,
        done: usize,
        total: usize,
    ) -> Result<Vec<TokenGrid>> {
        let spec = self.model.spec();
        let layout = &self.settings.layout;
        let (context, positions) = layout.query(text, spec.start_of_image_id)?;
        let n_img = layout.image_tokens();
        let batch = seeds.len();
        let mask = CoglmMask {
            text_len: text.len(),
            text_bias: self.settings.text_bias,
        };
        let vocab = spec.image_vocab_size;
        let mut rngs: Vec<Rng> = seeds.iter().map(|&s| Rng::from_seed(s)).collect();
        let mut session = self.model.new_session(batch, context.len() + n_img)?;
        let mut out = vec![Vec::with_capacity(n_img); batch];

        let tokens: Vec<u32> = (0..batch).flat_map(|_| context.iter().copied()).collect();
        let bias = mask.bias_rows(0, context.len(), context.len());
        let mut logits = session.forward(&LmInput {
            tokens: &tokens,
            positions: &positions,
            bias: &bias,
            logits: LogitsRequest::Last { vocab },
        })?;
        for j in 0..n_img {
            ctx.check_cancelled()?;
            let next: Vec<u32> = (0..batch)
                .map(|b| self.sampler.sample(logits.row(b), &mut rngs[b]))
                .collect::<Result<_>>()?;
            for (b, &t) in next.iter().enumerate() {
                out[b].push(t);
            }
            ctx.report("coglm", done + (j + 1) * batch, total);
            if j + 1 == n_img {
                break;
            }
            let q = context.len() + j;
            logits = session.forward(&LmInput {
                tokens: &next,
                positions: &[layout.image_position(j)],
                bias: &mask.bias_rows(q, 1, q + 1),
                logits: LogitsRequest::Last { vocab },
            })?;
        }
        out.into_iter()
            .map(|ids| TokenGrid::new(layout.grid_height, layout.grid_width, ids))
            .collect()
    }
}

impl GlobalGenerator for CoglmGenerator {
    fn generate(
        &self,
        text: &TextTokens,
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>> {
        let _span =
            tracing::info_span!("coglm", images = seeds.len(), text_len = text.len()).entered();
        let spec = self.model.spec();
        crate::lm::check_vocab(&text.0, spec.vocab_size)?;
        self.settings
            .layout
            .query(&text.0, spec.start_of_image_id)?;
        let total = seeds.len() * self.settings.layout.image_tokens();
        let mut grids = Vec::with_capacity(seeds.len());
        for chunk in seeds.chunks(self.settings.max_batch) {
            grids.extend(self.generate_batch(
                &text.0,
                chunk,
                ctx,
                grids.len() * self.settings.layout.image_tokens(),
                total,
            )?);
        }
        Ok(grids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_the_official_definition() {
        // tril(ones) with every row seeing the text columns, as get_masks_and_position_ids_coglm builds it.
        let m = CoglmMask {
            text_len: 3,
            text_bias: 1.4,
        };
        let n = 6;
        let rows = m.bias_rows(0, n, n);
        for q in 0..n {
            for k in 0..n {
                let official_visible = k <= q || k < 3;
                let b = rows[q * n + k];
                if official_visible {
                    assert_eq!(b, if k < 3 { 1.4 } else { 0.0 }, "q{q} k{k}");
                } else {
                    assert_eq!(b, f32::NEG_INFINITY, "q{q} k{k}");
                }
            }
        }
        // Text rows see all text but no image; the text bias is uniform over a text row.
        assert_eq!(
            &rows[0..6],
            &[
                1.4,
                1.4,
                1.4,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY
            ]
        );
        // An incremental step's row equals the full mask's row.
        assert_eq!(m.bias_rows(4, 1, 5), rows[4 * n..4 * n + 5].to_vec());
    }

    #[test]
    fn official_query_layout() {
        let l = Stage1Layout::default();
        let (t, p) = l.query(&[20005, 20100, 20200], 150000).unwrap();
        assert_eq!(t, vec![20005, 20100, 20200, 150000]);
        assert_eq!(p, vec![0, 1, 2, 512]);
        assert_eq!(l.image_position(0), 513);
        assert_eq!(l.image_position(399), 912);
        let err = l.query(&vec![20100; 110], 150000).unwrap_err().to_string();
        assert!(
            err.contains("110 tokens") && err.contains("at most 109"),
            "{err}"
        );
        assert!(l.check_fits(1024).is_ok());
        assert!(l.check_fits(912).is_err());
    }

    #[test]
    fn styles_parse_and_give_the_official_templates() {
        assert_eq!(
            "mainbody".parse::<Style>().unwrap().query_text("a cat"),
            "a cat 高清摄影 隔绝"
        );
        assert_eq!(Style::None.query_text("x"), "x");
        assert_eq!(Style::Chinese.stage1_temperature(), 1.12);
        assert!("nope"
            .parse::<Style>()
            .unwrap_err()
            .to_string()
            .contains("watercolor"));
    }
}
