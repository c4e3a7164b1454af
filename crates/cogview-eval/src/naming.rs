//! Generated emoji a person can name: each emoji's caption is generated with the pipeline, and the
//! image is asked to pick its emoji out of [`CANDIDATES`] real renders (the true one and
//! `CANDIDATES − 1` others drawn with a fixed seed) by a measure that knows nothing of the model:
//! the distance between the images blurred to [`THUMBNAIL_SIDE`]² pixels ([`thumbnail`]: area
//! averages of RGB over white; Euclidean distance). Recall@1 is the share of emoji whose true
//! render is the nearest; chance is 1 / [`CANDIDATES`].
//!
//! The same retrieval on the image tokenizer's round trip of the true render (encode → decode)
//! is the ceiling: what a generator that drew every emoji exactly would score through its decoder.

use cogview_core::rng::Rng;
use cogview_core::{Compression, Error, Image, Result, RunContext};
use cogview_emoji::{EmojiSet, Entry};
use cogview_pipeline::Pipeline;
use serde::Serialize;
use std::collections::HashMap;

/// Real renders each generated emoji is matched against (the true one included).
pub const CANDIDATES: usize = 20;

/// The side of the blurred images compared, in pixels.
pub const THUMBNAIL_SIDE: usize = 16;

/// `image` reduced to `side` × `side` pixels by area averaging: each output pixel is the mean
/// colour of the part of the image it covers, pixels cut by its edges counted by the fraction
/// inside (so any input size works, 216 → 16 included). RGB, row-major, values in 0..=255.
///
/// # Panics
///
/// If `side` is 0 or the image is empty.
pub fn thumbnail(image: &Image, side: usize) -> Vec<f32> {
    assert!(side > 0 && image.width > 0 && image.height > 0);
    // weights(n)[o] lists (input index, weight) of output cell o along an axis of n pixels; the
    // weights of a cell sum to 1.
    let weights = |n: usize| -> Vec<Vec<(usize, f32)>> {
        let scale = n as f64 / side as f64;
        (0..side)
            .map(|o| {
                let (a, b) = (o as f64 * scale, (o + 1) as f64 * scale);
                let first = a.floor() as usize;
                let last = (b.ceil() as usize).min(n);
                (first..last)
                    .filter_map(|i| {
                        let overlap = (b.min(i as f64 + 1.0) - a.max(i as f64)).max(0.0);
                        (overlap > 0.0).then_some((i, (overlap / scale) as f32))
                    })
                    .collect()
            })
            .collect()
    };
    let (wx, wy) = (weights(image.width), weights(image.height));
    let mut out = vec![0f32; side * side * 3];
    for (oy, rows) in wy.iter().enumerate() {
        for (ox, cols) in wx.iter().enumerate() {
            let mut acc = [0f32; 3];
            for &(y, fy) in rows {
                for &(x, fx) in cols {
                    let p = &image.pixels[(y * image.width + x) * 3..][..3];
                    for c in 0..3 {
                        acc[c] += fy * fx * f32::from(p[c]);
                    }
                }
            }
            out[(oy * side + ox) * 3..][..3].copy_from_slice(&acc);
        }
    }
    out
}

/// The Euclidean distance between two thumbnails.
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// The rank (1-based) of `candidates[0]`, the true one, by distance to `query`: 1 plus the number
/// of other candidates strictly nearer (a tie goes to the true one).
pub fn rank_of_true(query: &[f32], candidates: &[&[f32]]) -> usize {
    let d: Vec<f32> = candidates.iter().map(|c| distance(query, c)).collect();
    1 + d[1..].iter().filter(|&&x| x < d[0]).count()
}

/// The emoji `entry` is matched against, as indices into `pool`: `pool`'s entry for `entry`
/// first, then `CANDIDATES − 1` distinct others drawn with `seed` (and the entry's name, so each
/// emoji has its own draw whatever else is evaluated). Other skin tones of the same emoji are
/// left out: the question is which emoji the picture shows. Errors if `entry` is not in `pool`
/// or the pool is too small.
pub fn candidates(pool: &[&Entry], entry: &Entry, seed: u64) -> Result<Vec<usize>> {
    let own = pool
        .iter()
        .position(|e| e.name() == entry.name())
        .ok_or_else(|| {
            Error::invalid_input("emoji", format!("{} is not in the pool", entry.name()))
        })?;
    let others: Vec<usize> = (0..pool.len())
        .filter(|&i| pool[i].base() != entry.base())
        .collect();
    if others.len() < CANDIDATES - 1 {
        return Err(Error::invalid_input(
            "emoji",
            format!(
                "{} other emoji to draw {} candidates from",
                others.len(),
                CANDIDATES - 1
            ),
        ));
    }
    let mut rng = Rng::from_seed(seed ^ fnv1a(entry.name()));
    let mut out = vec![own];
    while out.len() < CANDIDATES {
        let i = others[rng.below(others.len())];
        if !out.contains(&i) {
            out.push(i);
        }
    }
    Ok(out)
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One row of the report: recall over a group of emoji.
#[derive(Debug, Clone, Serialize)]
pub struct NamingRow {
    /// Which images and emoji: generated or the ceiling, trained or held-out.
    pub name: &'static str,
    /// Emoji scored.
    pub emoji: usize,
    /// The share of emoji whose true render is the nearest candidate.
    pub recall_at_1: Option<f64>,
    /// The share of emoji whose true render is among the 5 nearest.
    pub recall_at_5: Option<f64>,
    /// The mean rank of the true render (1 to [`CANDIDATES`]).
    pub mean_rank: Option<f64>,
}

impl NamingRow {
    fn new(name: &'static str, ranks: &[usize]) -> NamingRow {
        let n = ranks.len();
        let rate =
            |k: usize| (n > 0).then(|| ranks.iter().filter(|&&r| r <= k).count() as f64 / n as f64);
        NamingRow {
            name,
            emoji: n,
            recall_at_1: rate(1),
            recall_at_5: rate(5),
            mean_rank: (n > 0).then(|| ranks.iter().sum::<usize>() as f64 / n as f64),
        }
    }
}

/// Generated emoji a person can name (`cogview eval --emoji N`).
#[derive(Debug, Clone, Serialize)]
pub struct NamingReport {
    /// Real renders each image is matched against (the true one included).
    pub candidates: usize,
    /// The side of the blurred images compared.
    pub thumbnail_side: usize,
    /// The seed of the candidates' draw and of generation (emoji k uses seed + k).
    pub seed: u64,
    /// Generated (trained, held-out skin tones), then the ceiling (the same split).
    pub rows: Vec<NamingRow>,
    /// What picking at random gives at recall@1: 1 / candidates.
    pub chance_at_1: f64,
    /// What picking at random gives at recall@5: 5 / candidates.
    pub chance_at_5: f64,
    /// Seconds per generated image, all stages.
    pub seconds_per_image: Option<f64>,
    /// Stage-1 candidates each generated emoji was chosen from (1: no reranking).
    pub rerank: usize,
}

/// `"{what} the best of K stage-1 candidates …"` for a report whose images were reranked, else
/// nothing.
pub(crate) fn best_of_note(rerank: usize, what: &str) -> String {
    if rerank > 1 {
        format!("{what} the best of {rerank} stage-1 candidates by the inverse-prompt score")
    } else {
        String::new()
    }
}

impl std::fmt::Display for NamingReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.1}%", 100.0 * r));
        writeln!(
            f,
            "generated emoji a person can name: the true render among {} (it and {} other emoji), nearest by {}×{} area-averaged RGB{}:",
            self.candidates,
            self.candidates - 1,
            self.thumbnail_side,
            self.thumbnail_side,
            best_of_note(self.rerank, "; each generated emoji"),
        )?;
        writeln!(
            f,
            "  {:<34} {:>5} {:>9} {:>9} {:>9}",
            "", "emoji", "recall@1", "recall@5", "mean rank"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "  {:<34} {:>5} {:>9} {:>9} {:>9}",
                r.name,
                r.emoji,
                pct(r.recall_at_1),
                pct(r.recall_at_5),
                r.mean_rank.map_or("-".into(), |m| format!("{m:.2}"))
            )?;
        }
        write!(
            f,
            "  {:<34} {:>5} {:>9} {:>9} {:>9}",
            "chance",
            "",
            pct(Some(self.chance_at_1)),
            pct(Some(self.chance_at_5)),
            format!("{:.2}", (self.candidates + 1) as f64 / 2.0)
        )?;
        if let Some(s) = self.seconds_per_image {
            write!(f, "\n  {s:.2} s per image through all stages")?;
        }
        Ok(())
    }
}

/// `count` emoji spread evenly over `list` (all of them when it holds fewer).
fn spread<'a>(list: &[&'a Entry], count: usize) -> Vec<&'a Entry> {
    let n = count.min(list.len());
    (0..n).map(|i| list[i * list.len() / n]).collect()
}

/// Generates `count` trained emoji and `count` held-out skin-tone variants (spread evenly over
/// each list of `emoji`'s split) with the pipeline, one image each (emoji k with seed `seed + k`),
/// and ranks the true render among [`CANDIDATES`] by [`thumbnail`] distance; the image
/// tokenizer's round trip of the true render gives the ceiling rows.
pub fn evaluate_emoji_naming(
    pipeline: &Pipeline,
    emoji: &EmojiSet,
    count: usize,
    seed: u64,
) -> Result<NamingReport> {
    let side = pipeline.geometry().image_side();
    let trained: Vec<&Entry> = emoji.train().collect();
    let held: Vec<&Entry> = emoji.heldout().collect();
    let pool: Vec<&Entry> = trained.iter().chain(&held).copied().collect();
    let vq = pipeline.image_tokenizer()?;
    let mut thumbs: HashMap<usize, Vec<f32>> = HashMap::new();
    let mut real = |i: usize| -> Result<Vec<f32>> {
        if let Some(t) = thumbs.get(&i) {
            return Ok(t.clone());
        }
        let img = emoji.render(pool[i], side as u32)?;
        let t = thumbnail(&img, THUMBNAIL_SIDE);
        thumbs.insert(i, t.clone());
        Ok(t)
    };
    let groups = [spread(&trained, count), spread(&held, count)];
    let mut generated: [Vec<usize>; 2] = Default::default();
    let mut ceiling: [Vec<usize>; 2] = Default::default();
    let mut k = 0u64;
    let mut seconds = 0.0;
    for (g, entries) in groups.iter().enumerate() {
        for entry in entries {
            let cands = candidates(&pool, entry, seed)?;
            let cand_thumbs = cands.iter().map(|&i| real(i)).collect::<Result<Vec<_>>>()?;
            let refs: Vec<&[f32]> = cand_thumbs.iter().map(Vec::as_slice).collect();
            let started = std::time::Instant::now();
            let ctx = RunContext::with_seed(seed.wrapping_add(k));
            let image = pipeline.generate(entry.caption(), 1, false, &ctx)?;
            seconds += started.elapsed().as_secs_f64();
            generated[g].push(rank_of_true(
                &thumbnail(&image[0].image, THUMBNAIL_SIDE),
                &refs,
            ));
            let truth = emoji.render(entry, side as u32)?;
            let back = vq.decode(&vq.encode(&truth, Compression::X8)?, Compression::X8)?;
            ceiling[g].push(rank_of_true(&thumbnail(&back, THUMBNAIL_SIDE), &refs));
            k += 1;
        }
    }
    Ok(NamingReport {
        candidates: CANDIDATES,
        thumbnail_side: THUMBNAIL_SIDE,
        seed,
        rows: vec![
            NamingRow::new("generated: trained emoji", &generated[0]),
            NamingRow::new("generated: held-out skin tones", &generated[1]),
            NamingRow::new("ceiling: VQ round trip, trained", &ceiling[0]),
            NamingRow::new("ceiling: VQ round trip, held-out", &ceiling[1]),
        ],
        chance_at_1: 1.0 / CANDIDATES as f64,
        chance_at_5: 5.0 / CANDIDATES as f64,
        seconds_per_image: (k > 0).then(|| seconds / k as f64),
        rerank: pipeline.rerank(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn image(w: usize, h: usize, px: impl Fn(usize, usize) -> [u8; 3]) -> Image {
        let mut pixels = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                pixels.extend(px(x, y));
            }
        }
        Image {
            width: w,
            height: h,
            pixels,
        }
    }

    #[test]
    fn thumbnails_average_areas_fractional_pixels_included() {
        // 4×4 → 2×2: each output pixel the mean of a 2×2 block.
        let img = image(4, 4, |x, y| [(10 * (x + 4 * y)) as u8, 0, 255]);
        let t = thumbnail(&img, 2);
        assert_eq!(t.len(), 12);
        // Block (0, 0) holds 0, 10, 40, 50: mean 25.
        assert_eq!(&t[..3], &[25.0, 0.0, 255.0]);
        // Block (1, 1) holds 100, 110, 140, 150: mean 125.
        assert_eq!(&t[9..], &[125.0, 0.0, 255.0]);
        // 3×3 → 2×2: each output pixel covers 1.5 × 1.5 input pixels. A black left column on
        // white: the left output pixels cover it for 1 of their 1.5 columns.
        let img = image(3, 3, |x, _| if x == 0 { [0; 3] } else { [255; 3] });
        let t = thumbnail(&img, 2);
        let want_left = 255.0 * 0.5 / 1.5;
        for (i, v) in t.iter().enumerate() {
            let left = (i / 3) % 2 == 0;
            let want = if left { want_left } else { 255.0 };
            assert!((v - want).abs() < 1e-3, "{i}: {v} vs {want}");
        }
        // Enlarging (3 → 6) repeats pixels; a uniform image stays uniform at any size.
        let img = image(3, 3, |x, y| [(x * 50) as u8, (y * 50) as u8, 7]);
        let t = thumbnail(&img, 6);
        assert_eq!(&t[..3], &[0.0, 0.0, 7.0]);
        assert_eq!(&t[(6 * 5 + 5) * 3..], &[100.0, 100.0, 7.0]);
        let white = image(216, 216, |_, _| [255; 3]);
        assert!(thumbnail(&white, 16)
            .iter()
            .all(|&v| (v - 255.0).abs() < 1e-3));
    }

    #[test]
    fn ranks_count_the_strictly_nearer_others() {
        let q = [0.0f32, 0.0];
        let (a, b, c) = ([1.0f32, 0.0], [0.5f32, 0.0], [3.0f32, 4.0]);
        assert_eq!(distance(&q, &c), 5.0);
        assert_eq!(rank_of_true(&q, &[&a, &b, &c]), 2);
        assert_eq!(rank_of_true(&q, &[&b, &a, &c]), 1);
        // A tie goes to the true one.
        assert_eq!(rank_of_true(&q, &[&a, &a, &c]), 1);
        assert_eq!(rank_of_true(&q, &[&c, &a, &b]), 3);
    }

    fn set() -> &'static EmojiSet {
        static SET: std::sync::OnceLock<EmojiSet> = std::sync::OnceLock::new();
        SET.get_or_init(|| {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            EmojiSet::load(root.join(cogview_emoji::DEFAULT_ICONS_PATH)).unwrap()
        })
    }

    fn pool() -> Vec<&'static Entry> {
        set().train().chain(set().heldout()).collect()
    }

    #[test]
    fn candidates_are_the_true_one_and_a_fixed_draw_of_other_emoji() {
        let pool = pool();
        let entry = set().heldout().nth(3).unwrap();
        let c = candidates(&pool, entry, 1).unwrap();
        assert_eq!(c.len(), CANDIDATES);
        assert_eq!(pool[c[0]].name(), entry.name());
        let distinct: std::collections::HashSet<_> = c.iter().collect();
        assert_eq!(distinct.len(), CANDIDATES);
        // No other skin tone of the same emoji.
        assert!(c[1..].iter().all(|&i| pool[i].base() != entry.base()));
        // Fixed by the seed; another seed draws others.
        assert_eq!(c, candidates(&pool, entry, 1).unwrap());
        assert_ne!(c, candidates(&pool, entry, 2).unwrap());
        // Too small a pool is an error, not a short list.
        assert!(candidates(&pool[..5], pool[0], 1).is_err());
        assert!(candidates(&pool[1..30], pool[0], 1).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// A real render retrieves itself first among its candidates (renders at the final
        /// size, 216 px), also when it was drawn at another size (the blurred pixels then differ a
        /// little from the candidate's).
        #[test]
        fn a_real_render_is_its_own_nearest_candidate(
            pick in 0usize..100_000,
            seed in any::<u64>(),
            side in prop::sample::select(vec![64u32, 96, 160, 216, 480]),
        ) {
            let pool = pool();
            let entry = pool[pick % pool.len()];
            let c = candidates(&pool, entry, seed).unwrap();
            let thumbs: Vec<Vec<f32>> = c
                .iter()
                .map(|&i| thumbnail(&set().render(pool[i], 216).unwrap(), THUMBNAIL_SIDE))
                .collect();
            let refs: Vec<&[f32]> = thumbs.iter().map(Vec::as_slice).collect();
            let query = thumbnail(&set().render(entry, side).unwrap(), THUMBNAIL_SIDE);
            prop_assert_eq!(rank_of_true(&query, &refs), 1, "{} at {} px", entry.name(), side);
        }
    }
}
