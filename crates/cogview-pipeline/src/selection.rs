//! Choosing among stage-1 candidates by their inverse-prompt scores (`--rerank`, `coglm.rerank`):
//! which grids go on to super-resolution, with which seeds, and what their records say. Pure
//! bookkeeping over scores the pipeline computes; no model runs here.

use cogview_core::{Error, Result, RunContext, TokenGrid};
use serde::{Deserialize, Serialize};

/// How a reranked image was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerankRecord {
    /// Candidates drawn.
    pub candidates: usize,
    /// Mean log-probability of the prompt given the image's stage-1 grid.
    pub score: f64,
    /// `true`: the best of its own seed's candidates (a pipeline's `coglm.rerank`), which the
    /// same pipeline makes again from the seed. `false` (and in records written before this
    /// field): kept from a pool (`--rerank K`), a candidate plain generation makes from its seed.
    #[serde(default)]
    pub per_image: bool,
}

/// One candidate of [`Pipeline::generate_reranked`].
#[derive(Debug, Clone, PartialEq)]
pub struct RankedCandidate {
    /// The candidate's own seed.
    pub seed: u64,
    /// Mean log-probability of the prompt given the candidate's stage-1 grid.
    pub score: f64,
    /// Whether it is among the images returned.
    pub kept: bool,
}

/// The stage-1 grids that go on to super-resolution: all of them, or the best candidates.
pub(crate) struct Selection {
    pub(crate) low: Vec<TokenGrid>,
    pub(crate) seeds: Vec<u64>,
    /// Per kept grid, its score among the candidates (`None`: no reranking).
    pub(crate) records: Vec<Option<RerankRecord>>,
    /// Every candidate's score (empty without reranking).
    pub(crate) ranked: Vec<RankedCandidate>,
}

impl Selection {
    /// Every grid, unranked.
    pub(crate) fn all(low: Vec<TokenGrid>, seeds: Vec<u64>) -> Selection {
        Selection {
            records: vec![None; low.len()],
            low,
            seeds,
            ranked: Vec::new(),
        }
    }

    /// The best `keep` of the whole draw (candidate `i` drawn with `seeds[i]`, scored
    /// `scores[i]`), best first (ties: the earlier seed); each goes on with its own seed.
    pub(crate) fn best_of_pool(
        scores: &[f64],
        low: Vec<TokenGrid>,
        seeds: &[u64],
        keep: usize,
    ) -> Selection {
        let candidates = low.len();
        let mut order: Vec<usize> = (0..candidates).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let kept = &order[..keep.min(candidates)];
        let ranked = (0..candidates)
            .map(|i| RankedCandidate {
                seed: seeds[i],
                score: scores[i],
                kept: kept.contains(&i),
            })
            .collect();
        Selection {
            low: kept.iter().map(|&i| low[i].clone()).collect(),
            seeds: kept.iter().map(|&i| seeds[i]).collect(),
            records: kept
                .iter()
                .map(|&i| {
                    Some(RerankRecord {
                        candidates,
                        score: scores[i],
                        per_image: false,
                    })
                })
                .collect(),
            ranked,
        }
    }

    /// Each image the best of its own `k` candidates: `low` holds, image after image, the
    /// grids drawn with [`RunContext::candidate_seeds`] of each of `image_seeds`. The chosen
    /// grid goes on with the image's seed (ties: the earlier candidate).
    pub(crate) fn best_per_image(
        scores: &[f64],
        low: Vec<TokenGrid>,
        image_seeds: &[u64],
        k: usize,
    ) -> Result<Selection> {
        if k == 0 || low.len() != image_seeds.len() * k || scores.len() != low.len() {
            return Err(Error::invalid_input(
                "rerank",
                format!(
                    "{} candidates and {} scores for {} images of {k} candidates each",
                    low.len(),
                    scores.len(),
                    image_seeds.len()
                ),
            ));
        }
        let mut chosen = Vec::with_capacity(image_seeds.len());
        let mut records = Vec::with_capacity(image_seeds.len());
        let mut ranked = Vec::with_capacity(low.len());
        for (i, &seed) in image_seeds.iter().enumerate() {
            let first = i * k;
            let best =
                (first + 1..first + k).fold(
                    first,
                    |b, c| {
                        if scores[c] > scores[b] {
                            c
                        } else {
                            b
                        }
                    },
                );
            for (j, c) in RunContext::candidate_seeds(seed, k).into_iter().enumerate() {
                ranked.push(RankedCandidate {
                    seed: c,
                    score: scores[first + j],
                    kept: first + j == best,
                });
            }
            chosen.push(best);
            records.push(Some(RerankRecord {
                candidates: k,
                score: scores[best],
                per_image: true,
            }));
        }
        let mut low: Vec<Option<TokenGrid>> = low.into_iter().map(Some).collect();
        Ok(Selection {
            low: chosen.iter().filter_map(|&b| low[b].take()).collect(),
            seeds: image_seeds.to_vec(),
            records,
            ranked,
        })
    }
}

/// The seeds stage 1 draws for `image_seeds` when each image is the best of `k` candidates
/// (`k = 1`: the images' own seeds).
pub(crate) fn stage1_seeds(image_seeds: &[u64], k: usize) -> Vec<u64> {
    if k <= 1 {
        return image_seeds.to_vec();
    }
    image_seeds
        .iter()
        .flat_map(|&s| RunContext::candidate_seeds(s, k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grids(n: usize) -> Vec<TokenGrid> {
        (0..n as u32)
            .map(|i| TokenGrid::new(1, 1, vec![i]).unwrap())
            .collect()
    }

    #[test]
    fn the_pool_keeps_the_highest_scores_first_and_ties_go_to_the_earlier_seed() {
        let scores = [-2.0, -1.0, -3.0, -1.0];
        let s = Selection::best_of_pool(&scores, grids(4), &[10, 11, 12, 13], 3);
        assert_eq!(s.seeds, [11, 13, 10]);
        assert_eq!(
            s.low.iter().map(|g| g.ids[0]).collect::<Vec<_>>(),
            [1, 3, 0]
        );
        let kept: Vec<bool> = s.ranked.iter().map(|c| c.kept).collect();
        assert_eq!(kept, [true, true, false, true]);
        assert!(s
            .records
            .iter()
            .all(|r| r.as_ref().unwrap().candidates == 4));
    }

    #[test]
    fn per_image_each_group_gives_its_best_and_the_image_keeps_its_seed() {
        // Two images of three candidates: image 0's best is its third, image 1's a tie of its
        // first and second (the first wins).
        let scores = [-3.0, -2.0, -1.0, -0.5, -0.5, -4.0];
        let s = Selection::best_per_image(&scores, grids(6), &[7, 8], 3).unwrap();
        assert_eq!(s.seeds, [7, 8]);
        assert_eq!(s.low.iter().map(|g| g.ids[0]).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(s.records[0].as_ref().unwrap().score, -1.0);
        assert_eq!(s.ranked[0].seed, 7);
        assert_eq!(s.ranked[3].seed, 8);
        let e = Selection::best_per_image(&scores, grids(5), &[7, 8], 3);
        assert!(e.is_err());
    }
}
