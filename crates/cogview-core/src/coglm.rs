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
        text_biased_rows(
            |q, k| self.allows(q, k),
            self.text_len,
            self.text_bias,
            (q_start, q_len, k_len),
        )
    }
}

/// Additive attention bias for queries `q_start..q_start+q_len` over keys `0..k_len`, row-major:
/// `-inf` where `allows(q, k)` is false, `text_bias` on visible keys below `text_len`, else 0.
pub fn text_biased_rows(
    allows: impl Fn(usize, usize) -> bool,
    text_len: usize,
    text_bias: f32,
    (q_start, q_len, k_len): (usize, usize, usize),
) -> Vec<f32> {
    let mut out = Vec::with_capacity(q_len * k_len);
    for q in q_start..q_start + q_len {
        for k in 0..k_len {
            out.push(if !allows(q, k) {
                f32::NEG_INFINITY
            } else if k < text_len {
                text_bias
            } else {
                0.0
            });
        }
    }
    out
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
    let total: f64 = image
        .iter()
        .enumerate()
        .map(|(j, &target)| log_softmax_at(logits.row(t + j), target as usize))
        .sum();
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

impl CoglmGenerator {
    /// Text-guided completion of one stage-1 grid (`BaseCompletion`, spec §8): the cells of
    /// `mask` are generated in raster order given the text, the context cells (bidirectional)
    /// and the block starters, with the KV cache and the stage-1 sampler; other cells keep their
    /// tokens. One grid per seed; a mask with no cell returns the input for every seed.
    fn complete_batch(
        &self,
        text: &[u32],
        image: &TokenGrid,
        plan: &crate::edit::CompletionPlan,
        seeds: &[u64],
        ctx: &RunContext,
        (done, total): (usize, usize),
    ) -> Result<Vec<TokenGrid>> {
        let spec = self.model.spec();
        let layout = &self.settings.layout;
        let (mut prefix, mut positions) = layout.query(text, spec.start_of_image_id)?;
        for &c in &plan.context {
            prefix.push(image.ids[c]);
            positions.push(layout.image_position(c));
        }
        let mask = crate::edit::CompletionMask {
            text_len: text.len(),
            context_end: prefix.len(),
            text_bias: self.settings.text_bias,
        };
        let batch = seeds.len();
        let vocab = spec.image_vocab_size;
        let mut rngs: Vec<Rng> = seeds.iter().map(|&s| Rng::from_seed(s)).collect();
        let capacity = prefix.len() + plan.generation.len();
        let mut session = self.model.new_session(batch, capacity)?;
        let tokens: Vec<u32> = (0..batch).flat_map(|_| prefix.iter().copied()).collect();
        let mut logits = session.forward(&LmInput {
            tokens: &tokens,
            positions: &positions,
            bias: &mask.bias_rows(0, prefix.len(), prefix.len()),
            logits: LogitsRequest::Last { vocab },
        })?;
        let mut out: Vec<Vec<u32>> = vec![image.ids.clone(); batch];
        // Tokens appended but not yet run: `[batch][n]` and their positions.
        let mut pending: Vec<Vec<u32>> = vec![Vec::new(); batch];
        let mut pending_pos: Vec<u32> = Vec::new();
        let mut generated = 0;
        for &(cell, given) in &plan.generation {
            if given {
                for p in pending.iter_mut() {
                    p.push(image.ids[cell]);
                }
                pending_pos.push(layout.image_position(cell));
                continue;
            }
            ctx.check_cancelled()?;
            if !pending_pos.is_empty() {
                let q = session.cached_len();
                let n = pending_pos.len();
                let flat: Vec<u32> = pending.iter().flatten().copied().collect();
                logits = session.forward(&LmInput {
                    tokens: &flat,
                    positions: &pending_pos,
                    bias: &mask.bias_rows(q, n, q + n),
                    logits: LogitsRequest::Last { vocab },
                })?;
                pending.iter_mut().for_each(Vec::clear);
                pending_pos.clear();
            }
            for b in 0..batch {
                let t = self.sampler.sample(logits.row(b), &mut rngs[b])?;
                out[b][cell] = t;
                pending[b].push(t);
            }
            pending_pos.push(layout.image_position(cell));
            generated += 1;
            ctx.report("coglm", done + generated * batch, total);
        }
        out.into_iter()
            .map(|ids| TokenGrid::new(image.height, image.width, ids))
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

    fn complete(
        &self,
        text: &TextTokens,
        image: &TokenGrid,
        mask: &[bool],
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<TokenGrid>> {
        let layout = &self.settings.layout;
        let _span = tracing::info_span!("completion", images = seeds.len()).entered();
        if image.height != layout.grid_height || image.width != layout.grid_width {
            return Err(Error::invalid_input(
                "grid",
                format!(
                    "CogLM completes {}x{} grids, not {}x{}",
                    layout.grid_height, layout.grid_width, image.height, image.width
                ),
            ));
        }
        let spec = self.model.spec();
        crate::lm::check_vocab(&text.0, spec.vocab_size)?;
        crate::lm::check_vocab(&image.ids, spec.image_vocab_size)?;
        layout.query(&text.0, spec.start_of_image_id)?;
        let plan = crate::edit::CompletionPlan::new(mask, image.height, image.width)?;
        if plan.masked() == 0 {
            return Ok(vec![image.clone(); seeds.len()]);
        }
        let total = seeds.len() * plan.masked();
        let mut grids = Vec::with_capacity(seeds.len());
        for chunk in seeds.chunks(self.settings.max_batch) {
            let done = grids.len() * plan.masked();
            grids.extend(self.complete_batch(&text.0, image, &plan, chunk, ctx, (done, total))?);
        }
        Ok(grids)
    }

    fn caption_log_likelihood(
        &self,
        image: &TokenGrid,
        start: u32,
        caption: &[u32],
    ) -> Result<f64> {
        caption_log_likelihood(
            self.model.as_ref(),
            &self.settings.layout,
            &image.ids,
            start,
            caption,
        )
    }

    fn caption(
        &self,
        image: &TokenGrid,
        request: &CaptionRequest,
        seed: u64,
        ctx: &RunContext,
    ) -> Result<Caption> {
        caption(
            self.model.as_ref(),
            &self.settings.layout,
            &image.ids,
            request,
            seed,
            ctx,
        )
    }
}

/// The inverse-prompt layout (`--inverse-prompt` of `cogview2_text2image.py`): the image at
/// positions 513.. (bidirectional among itself, seeing no text), then the start token and the
/// caption at positions 0.., causal and seeing the whole image; no text bias.
fn caption_prefix(layout: &Stage1Layout, image: &[u32], start: u32) -> (Vec<u32>, Vec<u32>) {
    let mut tokens = image.to_vec();
    tokens.push(start);
    let mut positions: Vec<u32> = (0..image.len()).map(|j| layout.image_position(j)).collect();
    positions.push(0);
    (tokens, positions)
}

/// The inverse-prompt attention over `image_len` image tokens followed by text:
/// `[q_len, k_len]` bias rows for queries `q_start..`.
fn caption_bias(image_len: usize, q_start: usize, q_len: usize, k_len: usize) -> Vec<f32> {
    let allows = |q: usize, k: usize| k < image_len || (q >= image_len && k <= q);
    text_biased_rows(allows, 0, 0.0, (q_start, q_len, k_len))
}

fn check_caption_image(
    spec: &crate::lm::LmSpec,
    layout: &Stage1Layout,
    image: &[u32],
) -> Result<()> {
    if image.len() != layout.image_tokens() {
        return Err(Error::invalid_input(
            "image",
            format!(
                "{} image tokens; CogLM reads {}x{} grids",
                image.len(),
                layout.grid_height,
                layout.grid_width
            ),
        ));
    }
    crate::lm::check_vocab(image, spec.image_vocab_size)
}

fn log_softmax_at(row: &[f32], id: usize) -> f64 {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let lse = row
        .iter()
        .map(|&x| ((x - max) as f64).exp())
        .sum::<f64>()
        .ln()
        + max as f64;
    row[id] as f64 - lse
}

/// The official inverse-prompt score: the mean log-probability (natural log, per token, over the
/// full vocabulary) of `caption` given the stage-1 `image`, read after the `start` token
/// (`<start_of_chinese>` in CogView2's code, for every language). CogView2 computes the mean
/// negative log-likelihood with SAT's `evaluate_perplexity`; this is its negation, so higher is
/// better.
pub fn caption_log_likelihood(
    model: &dyn AutoregressiveLm,
    layout: &Stage1Layout,
    image: &[u32],
    start: u32,
    caption: &[u32],
) -> Result<f64> {
    let spec = model.spec();
    check_caption_image(&spec, layout, image)?;
    if caption.is_empty() {
        return Err(Error::invalid_input(
            "caption",
            "no caption tokens to score",
        ));
    }
    crate::lm::check_vocab(caption, spec.vocab_size)?;
    crate::lm::check_vocab(&[start], spec.vocab_size)?;
    let (mut tokens, mut positions) = caption_prefix(layout, image, start);
    tokens.extend_from_slice(&caption[..caption.len() - 1]);
    positions.extend(1..caption.len() as u32);
    let n = tokens.len();
    let mut session = model.new_session(1, n)?;
    let logits = session.forward(&LmInput {
        tokens: &tokens,
        positions: &positions,
        bias: &caption_bias(image.len(), 0, n, n),
        logits: LogitsRequest::All {
            vocab: spec.vocab_size,
        },
    })?;
    let m = image.len();
    let total: f64 = caption
        .iter()
        .enumerate()
        .map(|(i, &t)| log_softmax_at(logits.row(m + i), t as usize))
        .sum();
    Ok(total / caption.len() as f64)
}

/// How to write a caption.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionRequest {
    /// The token before the caption (official inverse prompt: `<start_of_chinese>`; the default
    /// model was trained with `<start_of_english>`).
    pub start: u32,
    /// Token ids the caption may use (the text pieces), end excluded.
    pub allowed: std::ops::Range<u32>,
    /// A token that ends the caption (not part of it), when the model was trained to write one
    /// (the default model ends captions with `<start_of_image>`; CogView2's CogLM never learnt
    /// to end one, so it writes `max_tokens`).
    pub end: Option<u32>,
    /// The longest caption.
    pub max_tokens: usize,
    /// `None`: greedy (the most likely token at each step); `Some`: sampled from the top
    /// `top_k` with `temperature`.
    pub sampling: Option<crate::sampling::TopKSampler>,
}

/// A written caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    pub ids: Vec<u32>,
    /// Mean log-probability of the caption tokens (and the end token, when one was written).
    pub mean_log_prob: f64,
    /// Whether the model ended the caption (else it reached `max_tokens`).
    pub ended: bool,
}

/// Writes a caption for a stage-1 image grid in the inverse-prompt layout, one token at a time
/// with the KV cache.
pub fn caption(
    model: &dyn AutoregressiveLm,
    layout: &Stage1Layout,
    image: &[u32],
    request: &CaptionRequest,
    seed: u64,
    ctx: &RunContext,
) -> Result<Caption> {
    let spec = model.spec();
    check_caption_image(&spec, layout, image)?;
    let vocab = spec.vocab_size;
    let bad_range = request.allowed.is_empty() || request.allowed.end as usize > vocab;
    if bad_range {
        return Err(Error::invalid_input(
            "caption",
            format!(
                "the caption's token range {:?} is not within the {vocab}-id vocabulary",
                request.allowed
            ),
        ));
    }
    if request.max_tokens == 0 {
        return Err(Error::invalid_input("max_tokens", "must be at least 1"));
    }
    let end_ok = request.end.is_none_or(|e| (e as usize) < vocab);
    crate::lm::check_vocab(&[request.start], vocab)?;
    if !end_ok {
        return Err(Error::invalid_input(
            "caption",
            "the end token is outside the vocabulary",
        ));
    }
    let (tokens, positions) = caption_prefix(layout, image, request.start);
    let n0 = tokens.len();
    let mut session = model.new_session(1, n0 + request.max_tokens)?;
    let mut logits = session.forward(&LmInput {
        tokens: &tokens,
        positions: &positions,
        bias: &caption_bias(image.len(), 0, n0, n0),
        logits: LogitsRequest::Last { vocab },
    })?;
    let mut rng = Rng::from_seed(seed);
    let mut ids = Vec::new();
    let mut total = 0f64;
    let mut ended = false;
    for i in 0..request.max_tokens {
        ctx.check_cancelled()?;
        let row = logits.row(0);
        let restricted: Vec<f32> = row
            .iter()
            .enumerate()
            .map(|(id, &x)| {
                let id = id as u32;
                if request.allowed.contains(&id) || request.end == Some(id) {
                    x
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        let next = match &request.sampling {
            None => crate::sampling::argmax(&restricted) as u32,
            Some(s) => s.sample(&restricted, &mut rng)?,
        };
        total += log_softmax_at(row, next as usize);
        ctx.report("caption", i + 1, request.max_tokens);
        if request.end == Some(next) {
            ended = true;
            break;
        }
        ids.push(next);
        if i + 1 == request.max_tokens {
            break;
        }
        let q = session.cached_len();
        logits = session.forward(&LmInput {
            tokens: &[next],
            positions: &[ids.len() as u32],
            bias: &caption_bias(image.len(), q, 1, q + 1),
            logits: LogitsRequest::Last { vocab },
        })?;
    }
    let count = ids.len() + usize::from(ended);
    Ok(Caption {
        ids,
        mean_log_prob: total / count.max(1) as f64,
        ended,
    })
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
