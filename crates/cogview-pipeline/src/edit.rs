//! Editing (text-guided completion with any mask), captioning and inverse-prompt reranking on a
//! [`Pipeline`] (spec §3.3, §8). The algorithms live in the core ([`cogview_core::edit`],
//! [`cogview_core::stage1`]); this is their image-level plumbing: preparing the input, the crop,
//! the encoders, pasting and the final VQ round trip.

use crate::pipeline::{attach_scores, GeneratedImage, Pipeline};
pub use crate::selection::RankedCandidate;
use crate::selection::Selection;
use cogview_core::edit::{surrounding_square, EditMask, Square};
use cogview_core::sampling::TopKSampler;
use cogview_core::{Caption, CaptionRequest, GlobalGenerator};
use cogview_core::{Error, Image, Result, RunContext, TokenGrid};

/// The intermediate results of one edit, for inspection and tests.
#[derive(Debug, Clone)]
pub struct EditStages {
    /// The square (in the prepared image) that was regenerated and pasted back.
    pub crop: Square,
    /// The crop's stage-1 grid before completion.
    pub low_res_input: TokenGrid,
    /// The mask on the stage-1 grid (`true` = generated).
    pub low_res_mask: Vec<bool>,
    /// The completed stage-1 grid.
    pub low_res: TokenGrid,
    /// The super-resolved grid (original tokens outside the mask); `None` when the crop is no
    /// larger than a stage-1 image (decoded from stage 1, as the official code does) or the
    /// pipeline has no super-resolution.
    pub high_res: Option<TokenGrid>,
    /// The mask on the super-resolved grid, when there is one.
    pub high_res_mask: Option<Vec<bool>>,
    /// The regenerated crop, decoded and resized to the crop's size, before pasting.
    pub crop_image: Image,
}

/// One edited image.
#[derive(Debug, Clone)]
pub struct EditedImage {
    /// Position in the run (0-based).
    pub index: usize,
    /// The image's own seed (the run's seed + index).
    pub seed: u64,
    /// The final image (the prepared input's size).
    pub image: Image,
    /// `None` when the mask was empty and the input was returned unchanged.
    pub stages: Option<EditStages>,
}

/// How to write a caption with [`Pipeline::caption`].
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionOptions {
    /// The longest caption, in tokens.
    pub max_tokens: usize,
    /// `None`: greedy; `Some`: sampled.
    pub sampling: Option<TopKSampler>,
    /// The seed of sampled captions.
    pub seed: u64,
}

impl Default for CaptionOptions {
    fn default() -> Self {
        CaptionOptions {
            max_tokens: 32,
            sampling: None,
            seed: 1234,
        }
    }
}

/// A written caption and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenCaption {
    /// The caption as text.
    pub text: String,
    /// Its token ids and mean log-probability.
    pub caption: Caption,
}

impl Pipeline {
    /// The side of the images this pipeline edits and makes.
    fn image_side(&self) -> usize {
        self.geometry.image_side()
    }

    /// Brings an input image and its mask to the pipeline's square: the image resized (shorter
    /// side) and centre-cropped as icetk does, the mask with the same geometry (nearest).
    pub fn prepare_edit_input(&self, image: &Image, mask: &EditMask) -> Result<(Image, EditMask)> {
        let f = self.geometry.compression.factor();
        if image.width < f || image.height < f {
            return Err(Error::invalid_input(
                "image",
                format!(
                    "the image is {}x{} pixels, smaller than one token ({f}x{f}); give an image of at least {f}x{f}",
                    image.width, image.height
                ),
            ));
        }
        if mask.width() != image.width || mask.height() != image.height {
            return Err(Error::invalid_input(
                "mask",
                format!(
                    "the mask is {}x{} but the image is {}x{}; give a mask of the image's size",
                    mask.width(),
                    mask.height(),
                    image.width,
                    image.height
                ),
            ));
        }
        let side = self.image_side();
        let img = cogview_image::resize_center_crop(image, side)?;
        let ((nw, nh), (left, top)) =
            cogview_image::center_crop_geometry(image.width, image.height, side);
        let m = mask.resize_nearest(nw, nh)?;
        let full = m.crop(top, left, side)?;
        Ok((img, full))
    }

    /// Text-guided editing with CogView2's completion algorithm and any mask: the pixels of
    /// `mask` (the input's size; `true` = regenerate) are redrawn to fit `prompt`; image `i` uses
    /// seed `ctx.seed + i`. The result is the input resized and centre-cropped to the pipeline's
    /// side, regenerated in the square around the mask, pasted and passed through the image
    /// tokenizer once (the official final round trip). An empty mask returns the prepared input
    /// unchanged.
    pub fn edit(
        &self,
        image: &Image,
        mask: &EditMask,
        prompt: &str,
        num_images: usize,
        ctx: &RunContext,
    ) -> Result<Vec<EditedImage>> {
        if num_images == 0 {
            return Err(Error::invalid_input("num_images", "must be at least 1"));
        }
        let text = self.encode_prompt(prompt)?;
        self.warn_unknown_words(prompt);
        let (img, full_mask) = self.prepare_edit_input(image, mask)?;
        let seeds = ctx.image_seeds(num_images);
        let Some(square) = surrounding_square(&full_mask)? else {
            return Ok(seeds
                .iter()
                .enumerate()
                .map(|(index, &seed)| EditedImage {
                    index,
                    seed,
                    image: img.clone(),
                    stages: None,
                })
                .collect());
        };
        let _span = tracing::info_span!("edit", images = num_images).entered();
        let g = self.geometry;
        let c = g.compression;
        let low_px = g.low * c.factor();
        let crop_img =
            cogview_image::crop(&img, square.left, square.top, square.side, square.side)?;
        let crop_mask = full_mask.crop(square.top, square.left, square.side)?;
        let low_mask = crop_mask.resize_nearest(g.low, g.low)?.cells().to_vec();

        // Everything the image tokenizer encodes comes first, so that in low-memory mode one
        // model at a time is loaded: the tokenizer, then CogLM, DSR/ItersR, the tokenizer again.
        let with_sr = square.side > low_px && self.super_resolver.is_some();
        let (low_input, original_high) = {
            let vq = self.image_tokenizer.get()?;
            let low = vq.encode(&cogview_image::resize_center_crop(&crop_img, low_px)?, c)?;
            let high = if with_sr {
                let side = self.image_side();
                let up = cogview_image::resize_bilinear_with(
                    &crop_img,
                    side,
                    side,
                    cogview_image::Precision::Torch,
                )?;
                Some(vq.encode(&up, c)?)
            } else {
                None
            };
            (low, high)
        };
        if self.low_memory {
            self.image_tokenizer.release();
        }
        let completed = {
            let generator = self.stage1()?;
            let out = generator.complete(&text, &low_input, &low_mask, &seeds, ctx)?;
            drop(generator);
            if self.low_memory {
                self.generator.release();
            }
            out
        };

        let (highs, high_mask) = match (&original_high, &self.super_resolver) {
            (Some(original_high), Some(stage)) => {
                let high_mask = crop_mask.resize_nearest(g.high, g.high)?.cells().to_vec();
                let sr = stage.get()?;
                let highs = sr.super_resolve_masked(
                    &text,
                    &completed,
                    original_high,
                    &high_mask,
                    &seeds,
                    ctx,
                )?;
                drop(sr);
                if self.low_memory {
                    stage.release();
                }
                (Some(highs), Some(high_mask))
            }
            _ => (None, None),
        };

        let vq = self.image_tokenizer.get()?;
        let mut out = Vec::with_capacity(num_images);
        for (i, (low, &seed)) in completed.into_iter().zip(&seeds).enumerate() {
            ctx.check_cancelled()?;
            let high = highs.as_ref().map(|h| h[i].clone());
            let decoded = match &high {
                Some(h) => vq.decode(h, c)?,
                None => vq.decode(&low, c)?,
            };
            let crop_image = cogview_image::resize_nearest(&decoded, square.side, square.side)?;
            let mut pasted = img.clone();
            cogview_image::paste(&mut pasted, &crop_image, square.left, square.top)?;
            let final_image = vq.decode(&vq.encode(&pasted, c)?, c)?;
            ctx.report("decode", i + 1, num_images);
            out.push(EditedImage {
                index: i,
                seed,
                image: final_image,
                stages: Some(EditStages {
                    crop: square,
                    low_res_input: low_input.clone(),
                    low_res_mask: low_mask.clone(),
                    low_res: low,
                    high_res: high,
                    high_res_mask: high_mask.clone(),
                    crop_image,
                }),
            });
        }
        drop(vq);
        if self.low_memory {
            self.image_tokenizer.release();
        }
        Ok(out)
    }

    pub(crate) fn caption_tokens(&self) -> Result<&crate::pipeline::CaptionTokens> {
        self.captions.as_ref().ok_or_else(|| {
            Error::invalid_input(
                "pipeline",
                "this pipeline has no caption tokens; build it from settings or add them with PipelineBuilder::captions",
            )
        })
    }

    /// The official inverse-prompt score of `prompt` (without the style template, as CogView2
    /// scores the raw text) for a stage-1 grid: the mean log-probability per token.
    pub fn caption_score(&self, low_res: &TokenGrid, prompt: &str) -> Result<f64> {
        let ids = self.text_tokenizer().encode(prompt)?;
        if ids.is_empty() {
            return Err(Error::invalid_input(
                "prompt",
                "the caption has no tokens the text tokenizer knows",
            ));
        }
        self.caption_log_likelihood(low_res, &ids.0)
    }

    /// The inverse-prompt score of caption token ids (see [`Pipeline::caption_score`]).
    pub fn caption_log_likelihood(&self, low_res: &TokenGrid, caption: &[u32]) -> Result<f64> {
        let start = self.caption_tokens()?.start;
        self.stage1()?
            .caption_log_likelihood(low_res, start, caption)
    }

    /// Writes a caption for `image` (resized and centre-cropped to the stage-1 size, as icetk
    /// does): the most likely text under CogLM (greedy) or a sample.
    pub fn caption(
        &self,
        image: &Image,
        options: &CaptionOptions,
        ctx: &RunContext,
    ) -> Result<WrittenCaption> {
        let tokens = self.caption_tokens()?.clone();
        let grid = self.encode_image(image)?;
        let request = CaptionRequest {
            start: tokens.start,
            allowed: tokens.text.clone(),
            end: tokens.end,
            max_tokens: options.max_tokens,
            sampling: options.sampling.clone(),
        };
        let caption = self.stage1()?.caption(&grid, &request, options.seed, ctx)?;
        let text = self.text_tokenizer().decode(&caption.ids)?;
        Ok(WrittenCaption { text, caption })
    }

    /// Inverse prompting (`--inverse-prompt`): generates `candidates` stage-1 grids (seeds
    /// `ctx.seed ..`), scores each by the mean log-probability of `prompt` given the grid, and
    /// runs the rest of the pipeline on the best `keep` only. Returns the kept images, best
    /// first, and every candidate's score. (The official script sorts by the mean negative
    /// log-likelihood in descending order, which puts the *least* likely first; cogview keeps
    /// the most likely, as the paper describes.) This ignores the pipeline's own
    /// [`Pipeline::rerank`]: `candidates` is the whole draw, and each kept image is plain
    /// generation of its own seed (its records say `rerank = 1`).
    pub fn generate_reranked(
        &self,
        prompt: &str,
        candidates: usize,
        keep: usize,
        only_first_stage: bool,
        ctx: &RunContext,
    ) -> Result<(Vec<GeneratedImage>, Vec<RankedCandidate>)> {
        if keep == 0 || keep > candidates {
            return Err(Error::invalid_input(
                "rerank",
                format!("cannot keep {keep} of {candidates} candidates; keep between 1 and the number of candidates"),
            ));
        }
        let text = self.encode_prompt(prompt)?;
        self.warn_unknown_words(prompt);
        let seeds = ctx.image_seeds(candidates);
        let generator = self.stage1()?;
        let low = generator.generate(&text, &seeds, ctx)?;
        let selection = self.keep_best(generator.as_ref(), prompt, low, &seeds, keep, ctx)?;
        drop(generator);
        if self.low_memory {
            self.generator.release();
        }
        let Selection {
            low,
            seeds,
            records,
            ranked,
        } = selection;
        let images = if only_first_stage {
            self.finish(&seeds, low, None, ctx)?
        } else {
            self.run_super_resolution(&text, low, &seeds, ctx)?
        };
        Ok((attach_scores(images, records), ranked))
    }

    /// The inverse-prompt score of `prompt` for each stage-1 grid, reported as "rerank".
    fn inverse_prompt_scores(
        &self,
        generator: &dyn GlobalGenerator,
        prompt: &str,
        low: &[TokenGrid],
        ctx: &RunContext,
    ) -> Result<Vec<f64>> {
        let tokens = self.caption_tokens()?;
        let raw = self.text_tokenizer().encode(prompt)?;
        let mut scores = Vec::with_capacity(low.len());
        for (i, g) in low.iter().enumerate() {
            ctx.check_cancelled()?;
            scores.push(generator.caption_log_likelihood(g, tokens.start, &raw.0)?);
            ctx.report("rerank", i + 1, low.len());
        }
        Ok(scores)
    }

    /// Scores stage-1 candidates (drawn with `seeds`) by the inverse-prompt score of `prompt`
    /// and keeps the best `keep` of the whole draw ([`Selection::best_of_pool`]).
    pub(crate) fn keep_best(
        &self,
        generator: &dyn GlobalGenerator,
        prompt: &str,
        low: Vec<TokenGrid>,
        seeds: &[u64],
        keep: usize,
        ctx: &RunContext,
    ) -> Result<Selection> {
        let scores = self.inverse_prompt_scores(generator, prompt, &low, ctx)?;
        Ok(Selection::best_of_pool(&scores, low, seeds, keep))
    }

    /// Each image the best of its own `k` candidates by the inverse-prompt score of `prompt`
    /// ([`Selection::best_per_image`]).
    pub(crate) fn best_per_image(
        &self,
        generator: &dyn GlobalGenerator,
        prompt: &str,
        low: Vec<TokenGrid>,
        image_seeds: &[u64],
        k: usize,
        ctx: &RunContext,
    ) -> Result<Selection> {
        let scores = self.inverse_prompt_scores(generator, prompt, &low, ctx)?;
        Selection::best_per_image(&scores, low, image_seeds, k)
    }
}
