//! # cogview-eval
//!
//! What a model draws, measured with the exact scene checker of `cogview-scenes` on held-out
//! prompts (compositions never trained on):
//!
//! - **final**: the pipeline's images (all stages) against their prompts;
//! - **stage 1**: the first-stage images (the stage-1 grid decoded and enlarged) against the same
//!   prompts, so the super-resolution stages' effect on each attribute is visible;
//! - **ceiling**: the real renders passed through the image tokenizer (encode → decode at the final
//!   size): no generator can beat its own tokenizer;
//! - **floor**: the real renders checked against another prompt's scene (mismatched captions): what
//!   an image that ignores its prompt scores.
//!
//! Beside exact match, **shape fidelity**: for each correctly detected object, the IoU of its pixels
//! with the ideal render ([`cogview_scenes::shape_fidelity`]), as median and quartiles over objects,
//! for the final images, stage 1 enlarged and the ceiling. And, in [`naming`], **generated emoji a
//! person can name**: each emoji generated and matched to its real render among 20 by blurred
//! pixels.

use cogview_core::{Compression, Error, Image, ImageTokenizer, Result, RunContext};
use cogview_pipeline::Pipeline;
use cogview_scenes::{Accuracy, Scene, SceneSampler, Split};
use serde::Serialize;
use std::sync::Arc;

pub mod naming;
pub use naming::{evaluate_emoji_naming, NamingReport, NamingRow};

/// Which held-out prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SceneSet {
    /// Objects per scene (1 to 3).
    pub objects: usize,
    /// How many scenes (single-object: at most the 112 held-out ones of the attribute-pair split,
    /// or the 432 single-object scenes under the compositions split, taken in a fixed order).
    pub count: usize,
    pub seed: u64,
    /// Compositions seen in training instead of held-out ones (what the model learnt, beside
    /// how it generalises).
    #[serde(default)]
    pub seen: bool,
    /// The split the model was trained on, which says what is held out.
    #[serde(serialize_with = "split_name")]
    pub split: Split,
}

fn split_name<S: serde::Serializer>(split: &Split, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(split.name())
}

impl SceneSet {
    /// Under the compositions split no single object is held out: a one-object set is then the
    /// single-object scenes, every one trained on.
    pub fn all_trained_singles(&self) -> bool {
        !self.seen && self.objects == 1 && self.split == Split::Compositions
    }

    /// What the set is, as the report's heading says it.
    pub fn label(&self) -> &'static str {
        match (self.seen, self.split) {
            (true, _) => "seen (trained)",
            (false, _) if self.all_trained_singles() => {
                "single-object (all trained under the compositions split)"
            }
            (false, Split::Compositions) => "held-out compositions:",
            (false, Split::AttributePairs) => "held-out",
        }
    }

    /// The scenes: for one object, the held-out single-object scenes of the attribute-pair split
    /// (or, under the compositions split, all single-object scenes) spread evenly over the list;
    /// for more, `count` seeded held-out draws of the split.
    pub fn scenes(&self) -> Result<Vec<Scene>> {
        if self.seen {
            let mut s = SceneSampler::new(self.seed, self.split);
            return (0..self.count)
                .map(|_| {
                    s.sample_train(self.objects..=self.objects)
                        .map_err(|e| Error::invalid_input("objects", e.to_string()))
                })
                .collect();
        }
        if self.objects == 1 {
            let all = match self.split {
                Split::AttributePairs => cogview_scenes::split::heldout_single_object_scenes(),
                Split::Compositions => cogview_scenes::split::single_object_scenes(),
            };
            let n = self.count.min(all.len()).max(1);
            return Ok((0..n).map(|i| all[i * all.len() / n].clone()).collect());
        }
        let mut s = SceneSampler::new(self.seed, self.split);
        (0..self.count)
            .map(|_| {
                s.sample_heldout(self.objects)
                    .map_err(|e| Error::invalid_input("objects", e.to_string()))
            })
            .collect()
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: &'static str,
    pub scenes: usize,
    pub exact: Option<f64>,
    pub colour: Option<f64>,
    pub shape: Option<f64>,
    pub size: Option<f64>,
    pub cell: Option<f64>,
    pub extra: usize,
}

impl Row {
    fn new(name: &'static str, a: &Accuracy) -> Row {
        Row {
            name,
            scenes: a.scenes,
            exact: a.exact_rate(),
            colour: a.colour_accuracy(),
            shape: a.shape_accuracy(),
            size: a.size_accuracy(),
            cell: a.cell_accuracy(),
            extra: a.extra,
        }
    }
}

/// Shape fidelity over the correctly detected objects of one kind of image: the IoU of each
/// object's pixels with its ideal render, summarised by the median and quartiles.
#[derive(Debug, Clone, Serialize)]
pub struct FidelityRow {
    /// Which images: generated (final), generated (stage 1) or the ceiling.
    pub name: &'static str,
    /// Objects scored (those detected with the right colour, shape, size and cell).
    pub objects: usize,
    /// The first quartile of the IoUs; `None` without objects.
    pub q1: Option<f64>,
    /// The median IoU; `None` without objects.
    pub median: Option<f64>,
    /// The third quartile of the IoUs; `None` without objects.
    pub q3: Option<f64>,
}

impl FidelityRow {
    fn new(name: &'static str, mut values: Vec<f64>) -> FidelityRow {
        values.sort_by(f64::total_cmp);
        FidelityRow {
            name,
            objects: values.len(),
            q1: quantile(&values, 0.25),
            median: quantile(&values, 0.5),
            q3: quantile(&values, 0.75),
        }
    }
}

/// The `q` quantile of sorted values, interpolating linearly between the nearest two (the
/// median of an even count is the mean of the middle pair); `None` for no values.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo]))
}

/// The scene evaluation of one set.
#[derive(Debug, Clone, Serialize)]
pub struct SceneReport {
    pub set: SceneSet,
    pub rows: Vec<Row>,
    /// Shape fidelity: generated (final), generated (stage 1, enlarged to the final size) and the
    /// ceiling (the tokenizer's round trip of the ideal render); only the ceiling without a
    /// pipeline.
    pub shape_fidelity: Vec<FidelityRow>,
    /// Seconds per image through all stages.
    pub seconds_per_image: Option<f64>,
    /// Stage-1 candidates each generated image was chosen from (1: no reranking).
    pub rerank: usize,
}

impl std::fmt::Display for SceneReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.1}%", 100.0 * r));
        writeln!(
            f,
            "{} scenes with {} object(s), {} prompts{}:",
            self.set.label(),
            self.set.objects,
            self.rows.first().map_or(0, |r| r.scenes),
            naming::best_of_note(self.rerank, ", each image")
        )?;
        writeln!(
            f,
            "  {:<22} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}",
            "", "exact", "colour", "shape", "size", "cell", "extra"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "  {:<22} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}",
                r.name,
                pct(r.exact),
                pct(r.colour),
                pct(r.shape),
                pct(r.size),
                pct(r.cell),
                r.extra
            )?;
        }
        if !self.shape_fidelity.is_empty() {
            writeln!(
                f,
                "  shape fidelity: IoU of each correctly detected object with the ideal render, median [quartiles]"
            )?;
            let iou = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
            for r in &self.shape_fidelity {
                writeln!(
                    f,
                    "  {:<22} {:>7} [{}, {}] of {} objects",
                    r.name,
                    iou(r.median),
                    iou(r.q1),
                    iou(r.q3),
                    r.objects
                )?;
            }
        }
        if let Some(s) = self.seconds_per_image {
            write!(f, "  {s:.2} s per image through all stages")?;
        }
        Ok(())
    }
}

/// Whether a held-out object is held out for its (colour, shape) pair (else for its
/// (shape, cell) pair alone).
fn held_out_colour_shape(o: &cogview_scenes::Object) -> bool {
    cogview_scenes::HELDOUT_COLOUR_SHAPE.contains(&(o.colour, o.shape))
}

/// How many of the expected objects' attributes (colour, shape, size, cell) a report found right.
fn correct_attributes(r: &cogview_scenes::CheckReport) -> usize {
    r.objects
        .iter()
        .map(|o| {
            [o.colour, o.shape, o.size, o.cell]
                .iter()
                .filter(|&&b| b)
                .count()
        })
        .sum()
}

fn check(image: &Image, scene: &Scene) -> Result<cogview_scenes::CheckReport> {
    cogview_scenes::check(image, scene).map_err(|e| Error::backend_source("", e))
}

fn render(scene: &Scene, side: usize) -> Result<Image> {
    cogview_scenes::render(scene, side).map_err(|e| Error::backend_source("", e))
}

/// The shape fidelity of the correctly detected objects of `report`, the check of `image`.
fn fidelity(image: &Image, report: &cogview_scenes::CheckReport) -> Result<Vec<f64>> {
    if image.width != image.height {
        return Err(Error::backend(format!(
            "shape fidelity needs square images, not {}x{}",
            image.width, image.height
        )));
    }
    cogview_scenes::shape_fidelity(report, image.width).map_err(|e| Error::backend(e.to_string()))
}

/// Runs the scene evaluation. With a pipeline, its images (all stages, and stage 1 alone) are
/// scored, and its image tokenizer gives the ceiling; with only `tokenizer`, the reference rows
/// at `side` pixels.
pub fn evaluate_scenes(
    pipeline: Option<&Pipeline>,
    tokenizer: Option<Arc<dyn ImageTokenizer>>,
    side: usize,
    set: SceneSet,
    seed: u64,
) -> Result<SceneReport> {
    // One image per prompt, as `generate` makes it: with a pipeline that reranks
    // (`Pipeline::rerank` K > 1, `eval --rerank K`), the best of K stage-1 candidates by the
    // inverse-prompt score.
    let rerank = pipeline.map_or(1, Pipeline::rerank);
    let scenes = set.scenes()?;
    let (vq, side) = match (pipeline, tokenizer) {
        (Some(p), _) => (p.image_tokenizer()?, p.geometry().image_side()),
        (None, Some(t)) => (t, side),
        (None, None) => {
            return Err(Error::invalid_input(
                "eval",
                "needs a pipeline or an image tokenizer",
            ))
        }
    };
    let mut rows = Vec::new();
    let mut shape_fidelity = Vec::new();
    let mut seconds = None;
    if let Some(pipeline) = pipeline {
        // Shape fidelity of [final, stage 1].
        let mut fid: [Vec<f64>; 2] = Default::default();
        // Held-out single objects are also scored by what made them held out.
        let by_kind = !set.seen && set.objects == 1 && set.split == Split::AttributePairs;
        // [final, stage 1, stage 1 best of the candidates by the checker]
        //   × [all, colour×shape pair, shape×cell pair only]
        let mut acc: [[Accuracy; 3]; 3] = Default::default();
        let started = std::time::Instant::now();
        for (stage, only_first) in [false, true].into_iter().enumerate() {
            for (i, scene) in scenes.iter().enumerate() {
                let ctx = RunContext::with_seed(seed.wrapping_add(i as u64));
                let kind = match (by_kind, scene.objects.as_slice()) {
                    (true, [o]) => Some(if held_out_colour_shape(o) { 1 } else { 2 }),
                    _ => None,
                };
                let mut add = |row: usize, report: &cogview_scenes::CheckReport| {
                    acc[row][0].add(report);
                    if let Some(k) = kind {
                        acc[row][k].add(report);
                    }
                };
                if only_first && rerank > 1 {
                    // Every candidate's stage-1 image, best inverse-prompt score first: the
                    // first is what reranking keeps; the best by the checker says whether the
                    // generator drew the scene at all in `rerank` tries (an upper bound for any
                    // reranker).
                    let (all, _) =
                        pipeline.generate_reranked(&scene.caption(), rerank, rerank, true, &ctx)?;
                    let reports = all
                        .iter()
                        .map(|g| check(&g.image, scene))
                        .collect::<Result<Vec<_>>>()?;
                    add(1, &reports[0]);
                    fid[1].extend(fidelity(&all[0].image, &reports[0])?);
                    let best = reports
                        .iter()
                        .max_by_key(|r| (r.exact, correct_attributes(r)))
                        .expect("at least two candidates");
                    add(2, best);
                } else {
                    let img = pipeline.generate(&scene.caption(), 1, only_first, &ctx)?;
                    let report = check(&img[0].image, scene)?;
                    add(stage, &report);
                    fid[stage].extend(fidelity(&img[0].image, &report)?);
                }
            }
            if stage == 0 {
                seconds = Some(started.elapsed().as_secs_f64() / scenes.len().max(1) as f64);
            }
        }
        let stage_rows = if rerank > 1 { 3 } else { 2 };
        for (stage, name) in [
            "generated (final)",
            "generated (stage 1)",
            "stage 1 checker's best",
        ]
        .iter()
        .enumerate()
        .take(stage_rows)
        {
            rows.push(Row::new(name, &acc[stage][0]));
            if by_kind {
                rows.push(Row::new("  colour×shape pair", &acc[stage][1]));
                rows.push(Row::new("  shape×cell pair only", &acc[stage][2]));
            }
        }
        let [final_fid, stage1_fid] = fid;
        shape_fidelity.push(FidelityRow::new("generated (final)", final_fid));
        shape_fidelity.push(FidelityRow::new("generated (stage 1)", stage1_fid));
    }
    // Ceiling: the tokenizer's own round trip at the final size.
    let mut ceiling = Accuracy::default();
    let mut ceiling_fid = Vec::new();
    let mut floor = Accuracy::default();
    for (i, scene) in scenes.iter().enumerate() {
        let real = render(scene, side)?;
        let grid = vq.encode(&real, Compression::X8)?;
        let back = vq.decode(&grid, Compression::X8)?;
        let report = check(&back, scene)?;
        ceiling.add(&report);
        ceiling_fid.extend(fidelity(&back, &report)?);
        // Floor: the real image against the next scene's prompt.
        if scenes.len() > 1 {
            floor.add(&check(&real, &scenes[(i + 1) % scenes.len()])?);
        }
    }
    rows.push(Row::new("ceiling: VQ round trip", &ceiling));
    rows.push(Row::new("floor: wrong caption", &floor));
    shape_fidelity.push(FidelityRow::new("ceiling: VQ round trip", ceiling_fid));
    Ok(SceneReport {
        set,
        rows,
        shape_fidelity,
        seconds_per_image: seconds,
        rerank,
    })
}

/// Caption → image retrieval on held-out emoji: for each caption, the true image among
/// `candidates` held-out images (the true one and the next ones in the held-out list), ranked by
/// CogLM's mean log-likelihood of each image's stage-1 tokens given the caption.
#[derive(Debug, Clone, Serialize)]
pub struct RetrievalReport {
    pub captions: usize,
    pub candidates: usize,
    pub recall_at_1: f64,
    pub recall_at_5: f64,
    pub mean_rank: f64,
    /// What ranking at random gives: 1 / candidates (the floor).
    pub chance_at_1: f64,
}

impl std::fmt::Display for RetrievalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "held-out emoji, caption → image among {} candidates, {} captions: recall@1 {:.1}%, recall@5 {:.1}%, mean rank {:.2} (chance: recall@1 {:.1}%)",
            self.candidates,
            self.captions,
            100.0 * self.recall_at_1,
            100.0 * self.recall_at_5,
            self.mean_rank,
            100.0 * self.chance_at_1
        )
    }
}

/// Runs the retrieval evaluation with the pipeline's CogLM, tokenizers and stage-1 grid.
pub fn evaluate_emoji_retrieval(
    pipeline: &Pipeline,
    emoji: &cogview_emoji::EmojiSet,
    count: usize,
    candidates: usize,
) -> Result<RetrievalReport> {
    let settings = pipeline
        .settings()
        .ok_or_else(|| Error::invalid_input("eval", "retrieval needs a configured pipeline"))?;
    let p = &settings.coglm.placement;
    let model = cogview_candle::CoglmModel::load(
        &p.path,
        cogview_candle::LoadOptions {
            device: p.device,
            dtype: p.dtype,
            ..Default::default()
        },
    )?;
    let g = pipeline.geometry();
    let layout = cogview_core::stage1::Stage1Layout {
        grid_height: g.low,
        grid_width: g.low,
        ..Default::default()
    };
    let held: Vec<&cogview_emoji::Entry> = emoji.heldout().collect();
    if held.len() < candidates.max(2) {
        return Err(Error::invalid_input("eval", "too few held-out emoji"));
    }
    let k = candidates.clamp(2, held.len());
    let n = count.clamp(1, held.len());
    let vq = pipeline.image_tokenizer()?;
    let side = g.low * g.compression.factor();
    let mut tokens: std::collections::HashMap<usize, Vec<u32>> = Default::default();
    let mut image_tokens = |i: usize| -> Result<Vec<u32>> {
        if let Some(t) = tokens.get(&i) {
            return Ok(t.clone());
        }
        let img = emoji
            .render(held[i], side as u32)
            .map_err(|e| Error::backend_source("", e))?;
        let t = vq.encode(&img, g.compression)?.ids;
        tokens.insert(i, t.clone());
        Ok(t)
    };
    let (mut r1, mut r5, mut rank_sum) = (0usize, 0usize, 0usize);
    for c in 0..n {
        let i = c * held.len() / n;
        let text = pipeline.encode_prompt(held[i].caption())?;
        let mut scores = Vec::with_capacity(k);
        for j in 0..k {
            let cand = (i + j) % held.len();
            let s = cogview_core::stage1::image_log_likelihood(
                &model,
                &layout,
                &text.0,
                &image_tokens(cand)?,
                settings.coglm.text_bias,
            )?;
            scores.push(s);
        }
        // Rank of the true image (index 0): 1 + the number of candidates scored higher.
        let rank = 1 + scores[1..].iter().filter(|&&s| s > scores[0]).count();
        r1 += usize::from(rank == 1);
        r5 += usize::from(rank <= 5);
        rank_sum += rank;
    }
    Ok(RetrievalReport {
        captions: n,
        candidates: k,
        recall_at_1: r1 as f64 / n as f64,
        recall_at_5: r5 as f64 / n as f64,
        mean_rank: rank_sum as f64 / n as f64,
        chance_at_1: 1.0 / k as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_out_sets_are_held_out_and_fixed() {
        let s = SceneSet {
            objects: 1,
            count: 10,
            seed: 1,
            seen: false,
            split: Split::AttributePairs,
        };
        let a = s.scenes().unwrap();
        assert_eq!(a.len(), 10);
        assert!(a.iter().all(|x| x.is_heldout() && x.objects.len() == 1));
        assert_eq!(a, s.scenes().unwrap());
        let two = SceneSet {
            objects: 2,
            count: 5,
            seed: 1,
            seen: false,
            split: Split::AttributePairs,
        }
        .scenes()
        .unwrap();
        assert!(two.iter().all(|x| x.is_heldout() && x.objects.len() == 2));
        assert_eq!(
            SceneSet {
                objects: 1,
                count: 500,
                seed: 1,
                seen: false,
                split: Split::AttributePairs,
            }
            .scenes()
            .unwrap()
            .len(),
            112
        );
        // Seen scenes are training compositions only.
        let seen = SceneSet {
            objects: 2,
            count: 20,
            seed: 3,
            seen: true,
            split: Split::AttributePairs,
        }
        .scenes()
        .unwrap();
        assert!(seen.iter().all(|x| !x.is_heldout() && x.objects.len() == 2));
    }

    #[test]
    fn quantiles_interpolate_between_neighbours() {
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[0.7], 0.25), Some(0.7));
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), Some(2.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.25), Some(2.0));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.25), Some(1.75));
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.75), Some(3.25));
        let r = FidelityRow::new("x", vec![0.9, 0.5, 1.0, 0.8]);
        assert_eq!(r.objects, 4);
        for (got, want) in [(r.q1, 0.725), (r.median, 0.85), (r.q3, 0.925)] {
            assert!((got.unwrap() - want).abs() < 1e-12, "{r:?}");
        }
        let none = FidelityRow::new("x", Vec::new());
        assert_eq!((none.objects, none.median), (0, None));
    }

    #[test]
    fn compositions_sets_hold_out_compositions_and_score_every_single_object() {
        let set = |objects, count, seen| SceneSet {
            objects,
            count,
            seed: 2,
            seen,
            split: Split::Compositions,
        };
        let held = cogview_scenes::is_heldout_composition;
        for n in 2..=3 {
            let a = set(n, 200, false).scenes().unwrap();
            assert_eq!(a.len(), 200);
            assert!(a.iter().all(|x| held(x) && x.objects.len() == n));
            assert_eq!(a, set(n, 200, false).scenes().unwrap());
            let seen = set(n, 200, true).scenes().unwrap();
            assert!(seen.iter().all(|x| !held(x) && x.objects.len() == n));
            assert_eq!(set(n, 1, false).label(), "held-out compositions:");
        }
        // One object: nothing is held out, so every single-object scene, spread evenly.
        let singles = set(1, 1000, false).scenes().unwrap();
        assert_eq!(singles.len(), 432);
        let distinct: std::collections::HashSet<_> = singles.iter().collect();
        assert_eq!(distinct.len(), 432);
        let some = set(1, 50, false).scenes().unwrap();
        assert_eq!(some.len(), 50);
        // Spread over the list: every cell appears.
        let cells: std::collections::HashSet<_> = some.iter().map(|s| s.objects[0].cell).collect();
        assert_eq!(cells.len(), 9);
        assert!(set(1, 50, false).all_trained_singles());
        assert!(set(1, 50, false).label().contains("all trained"));
        // The attribute-pair split keeps its headings.
        let pairs = SceneSet {
            split: Split::AttributePairs,
            ..set(1, 5, false)
        };
        assert_eq!(pairs.label(), "held-out");
        assert!(!pairs.all_trained_singles());
        let json = serde_json::to_value(set(2, 3, false)).unwrap();
        assert_eq!(json["split"], "compositions");
    }
}

/// What editing a scene gives (`cogview eval --edit N`).
#[derive(Debug, Clone, Serialize)]
pub struct EditReport {
    /// Edits scored.
    pub edits: usize,
    /// The edited image matches the new caption's scene exactly.
    pub exact: Option<f64>,
    /// The regenerated object has the new colour, shape, size and cell.
    pub replaced_exact: Option<f64>,
    pub replaced_colour: Option<f64>,
    pub replaced_shape: Option<f64>,
    /// The object outside the mask is still found, unchanged.
    pub kept_exact: Option<f64>,
    /// Reference: the unedited render's round trip still checks as the old scene (the ceiling of
    /// "kept" and what the mask had to change).
    pub input_round_trip_exact: Option<f64>,
    /// Seconds per edit.
    pub seconds_per_edit: f64,
}

impl std::fmt::Display for EditReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.1}%", 100.0 * r));
        writeln!(
            f,
            "scene edits (two-object scenes, one object's cell masked and recaptioned with another colour and shape), {} edits:",
            self.edits
        )?;
        writeln!(f, "  exact new scene          {:>7}", pct(self.exact))?;
        writeln!(
            f,
            "  replaced object exact    {:>7}   (colour {}, shape {})",
            pct(self.replaced_exact),
            pct(self.replaced_colour),
            pct(self.replaced_shape)
        )?;
        writeln!(f, "  kept object exact        {:>7}", pct(self.kept_exact))?;
        writeln!(
            f,
            "  reference: input through the VQ round trip, old scene exact {}",
            pct(self.input_round_trip_exact)
        )?;
        write!(f, "  {:.2} s per edit", self.seconds_per_edit)
    }
}

/// The edit of scene `i`: which object is replaced and by what (another colour and shape, same
/// size and cell), deterministically.
pub fn scene_edit(scene: &Scene, i: usize) -> (usize, Scene) {
    use cogview_scenes::grammar::{Colour, Shape};
    let j = i % scene.objects.len();
    let old = scene.objects[j];
    let ci = Colour::ALL
        .iter()
        .position(|c| *c == old.colour)
        .unwrap_or(0);
    let si = Shape::ALL.iter().position(|s| *s == old.shape).unwrap_or(0);
    let mut new = scene.clone();
    new.objects[j].colour = Colour::ALL[(ci + 1 + i % 7) % Colour::ALL.len()];
    new.objects[j].shape = Shape::ALL[(si + 1 + i % 2) % Shape::ALL.len()];
    (j, new)
}

/// Edits `count` two-object scenes (held-out scenes of `split` unless `seen`): the real render, one
/// object's grid cell masked, the caption with that object replaced; the result is checked
/// against the new scene.
pub fn evaluate_edits(
    pipeline: &Pipeline,
    count: usize,
    seed: u64,
    seen: bool,
    split: Split,
) -> Result<EditReport> {
    use cogview_core::edit::{EditMask, Region};
    let scenes = SceneSet {
        objects: 2,
        count,
        seed,
        seen,
        split,
    }
    .scenes()?;
    let side = pipeline.geometry().image_side();
    let vq = pipeline.image_tokenizer()?;
    let mut n = 0usize;
    let (mut exact, mut rep, mut rep_c, mut rep_s, mut kept, mut input_ok) = (0, 0, 0, 0, 0, 0);
    let started = std::time::Instant::now();
    for (i, scene) in scenes.iter().enumerate() {
        let (j, new) = scene_edit(scene, i);
        let input = render(scene, side)?;
        let back = vq.decode(&vq.encode(&input, Compression::X8)?, Compression::X8)?;
        input_ok += usize::from(check(&back, scene)?.exact);
        let cell = new.objects[j].cell;
        let w = side / 3;
        let mask = EditMask::from_regions(
            side,
            side,
            &[Region::Pixels {
                left: cell.col() * w,
                top: cell.row() * w,
                right: (cell.col() + 1) * w,
                bottom: (cell.row() + 1) * w,
            }],
        )?;
        let ctx = RunContext::with_seed(seed.wrapping_add(i as u64));
        let out = pipeline.edit(&input, &mask, &new.caption(), 1, &ctx)?;
        let r = check(&out[0].image, &new)?;
        n += 1;
        exact += usize::from(r.exact);
        let o = &r.objects[j];
        rep += usize::from(o.is_exact());
        rep_c += usize::from(o.colour);
        rep_s += usize::from(o.shape);
        kept += usize::from(r.objects[1 - j].is_exact());
    }
    let rate = |k: usize| (n > 0).then(|| k as f64 / n as f64);
    Ok(EditReport {
        edits: n,
        exact: rate(exact),
        replaced_exact: rate(rep),
        replaced_colour: rate(rep_c),
        replaced_shape: rate(rep_s),
        kept_exact: rate(kept),
        input_round_trip_exact: rate(input_ok),
        seconds_per_edit: started.elapsed().as_secs_f64() / n.max(1) as f64,
    })
}

#[cfg(test)]
mod edit_tests {
    use super::*;

    #[test]
    fn scene_edits_change_colour_and_shape_and_keep_the_rest() {
        let scenes = SceneSet {
            objects: 2,
            count: 40,
            seed: 3,
            seen: false,
            split: Split::AttributePairs,
        }
        .scenes()
        .unwrap();
        let mut colours = std::collections::BTreeSet::new();
        for (i, s) in scenes.iter().enumerate() {
            let (j, new) = scene_edit(s, i);
            new.validate().unwrap();
            let (a, b) = (s.objects[j], new.objects[j]);
            assert_ne!(a.colour, b.colour);
            assert_ne!(a.shape, b.shape);
            assert_eq!((a.size, a.cell), (b.size, b.cell));
            assert_eq!(s.objects[1 - j], new.objects[1 - j]);
            colours.insert(b.colour.name());
        }
        // Every colour is used as a replacement somewhere.
        assert_eq!(colours.len(), 8);
    }
}
