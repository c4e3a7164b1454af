//! Token samplers. They live in the core so that every backend samples identically: a backend only
//! produces logits, the core turns them into tokens with the seeded [`Rng`].
//!
//! All arithmetic after the logits is done in f64, so results do not depend on the backend's dtype
//! beyond the logits themselves.

use crate::error::{Error, Result};
use crate::rng::Rng;
use std::sync::Arc;

/// Turns one row of logits (ids `0..logits.len()`) into one token id.
pub trait Sampler: Send + Sync + std::fmt::Debug {
    /// Draws one id from `logits` with `rng`.
    fn sample(&self, logits: &[f32], rng: &mut Rng) -> Result<u32>;
}

fn check_logits(logits: &[f32]) -> Result<()> {
    if logits.is_empty() {
        return Err(Error::invalid_input("logits", "empty logits row"));
    }
    if let Some(i) = logits
        .iter()
        .position(|x| x.is_nan() || *x == f32::INFINITY)
    {
        return Err(Error::invalid_input(
            "logits",
            format!(
                "logit {i} is {}; the model produced non-finite values (try dtype f32)",
                logits[i]
            ),
        ));
    }
    if logits.iter().all(|x| *x == f32::NEG_INFINITY) {
        return Err(Error::invalid_input(
            "logits",
            "every logit is -inf; nothing can be sampled",
        ));
    }
    Ok(())
}

fn check_temperature(t: f32, what: &str) -> Result<()> {
    if !(t.is_finite() && t >= 0.0) {
        return Err(Error::invalid_input(
            what,
            format!("{t} is not a finite temperature >= 0"),
        ));
    }
    Ok(())
}

/// Index of the largest logit (the lowest index among ties).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best
}

/// Draws an index with probability proportional to `weights` (non-negative, not all zero).
pub fn sample_weighted(weights: &[f64], rng: &mut Rng) -> usize {
    let total: f64 = weights.iter().sum();
    let target = rng.next_f64() * total;
    let mut acc = 0.0;
    let mut last_positive = 0;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            acc += w;
            last_positive = i;
            if acc > target {
                return i;
            }
        }
    }
    last_positive
}

/// exp((z - max) / t) over the entries where `keep` is true, 0 elsewhere.
fn softmax_weights(logits: &[f32], t: f64, keep: impl Fn(usize) -> bool) -> Vec<f64> {
    let max = logits
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(_, &x)| x as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    logits
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if keep(i) {
                ((x as f64 - max) / t).exp()
            } else {
                0.0
            }
        })
        .collect()
}

/// The value of the k-th largest finite-or-not logit (k >= 1).
fn kth_largest(logits: &[f32], k: usize) -> f32 {
    let mut v: Vec<f32> = logits.to_vec();
    let k = k.min(v.len());
    v.select_nth_unstable_by(k - 1, |a, b| {
        b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal)
    });
    v[k - 1]
}

/// Temperature + top-k sampling (ItersR's strategy).
///
/// `top_k == 0` keeps the whole vocabulary. As in the official code, every logit equal to the k-th largest
/// is kept (ties at the threshold are not broken). `temperature == 0` returns the argmax.
#[derive(Debug, Clone, PartialEq)]
pub struct TopKSampler {
    /// Divides the logits; 0: the argmax.
    pub temperature: f32,
    /// Candidates kept (ties at the threshold included); 0: all.
    pub top_k: usize,
}

impl Sampler for TopKSampler {
    fn sample(&self, logits: &[f32], rng: &mut Rng) -> Result<u32> {
        check_logits(logits)?;
        check_temperature(self.temperature, "temperature")?;
        if self.temperature == 0.0 {
            return Ok(argmax(logits) as u32);
        }
        let threshold = if self.top_k == 0 || self.top_k >= logits.len() {
            f32::NEG_INFINITY
        } else {
            kth_largest(logits, self.top_k)
        };
        let w = softmax_weights(logits, self.temperature as f64, |i| {
            logits[i] >= threshold && logits[i] > f32::NEG_INFINITY
        });
        Ok(sample_weighted(&w, rng) as u32)
    }
}

/// The cluster id of every image code (the official `cluster_label.npy`: 500 k-means clusters of the
/// 20000 VQ codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLabels {
    labels: Vec<u32>,
    num_clusters: usize,
}

impl ClusterLabels {
    /// Builds the table from one label per token. Labels must be in `0..num_clusters` where
    /// `num_clusters = max + 1`.
    pub fn new(labels: Vec<i64>) -> Result<Self> {
        if labels.is_empty() {
            return Err(Error::invalid_input("cluster labels", "the table is empty"));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| !(0..=u32::MAX as i64).contains(&l))
        {
            return Err(Error::invalid_input(
                "cluster labels",
                format!("token {i} has cluster label {l}; labels must be non-negative"),
            ));
        }
        // Every cluster is a set of tokens, so there are at most as many clusters as tokens; a
        // larger label (from a hostile table) would size the per-cluster buffers by it.
        let n = labels.len();
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as u64 >= n as u64)
        {
            return Err(Error::invalid_input(
                "cluster labels",
                format!(
                    "token {i} has cluster label {l}, but {n} tokens make at most {n} clusters \
                     (labels 0..{n})"
                ),
            ));
        }
        let labels: Vec<u32> = labels.into_iter().map(|l| l as u32).collect();
        let num_clusters = *labels.iter().max().unwrap() as usize + 1;
        Ok(ClusterLabels {
            labels,
            num_clusters,
        })
    }

    /// Reads a `.npy` file holding a 1-D integer array (like the official `cluster_label.npy`).
    pub fn from_npy_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let array = crate::npy::read_npy_file(path)?;
        if array.shape.len() != 1 {
            return Err(Error::invalid_input(
                path.display().to_string(),
                format!(
                    "expected a 1-D array of cluster labels, found shape {:?}",
                    array.shape
                ),
            ));
        }
        Self::new(
            array
                .to_i64()
                .map_err(|e| Error::invalid_input(path.display().to_string(), e))?,
        )
    }

    /// The official table of CogView2 (`cluster_label.npy`: 500 clusters over the 20000 icetk image
    /// codes, Apache-2.0, from THUDM/CogView2), embedded in the library.
    pub fn official() -> Self {
        const NPY: &[u8] = include_bytes!("../data/cluster_label.npy");
        let array = crate::npy::parse_npy(NPY, "embedded cluster_label.npy")
            .expect("embedded table parses");
        Self::new(array.to_i64().expect("integer table")).expect("valid table")
    }

    /// Tokens in the table.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether the table has no token.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Clusters (the largest label + 1).
    pub fn num_clusters(&self) -> usize {
        self.num_clusters
    }
    /// The cluster of `token`.
    pub fn label(&self, token: usize) -> usize {
        self.labels[token] as usize
    }
    /// Every token's cluster.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
}

/// Cluster sampling (CogView2's `CoglmStrategy` and DSR's `IterativeEntfilterStrategy`).
///
/// 1. z = logits / `temperature`; p = softmax(z); the mass of cluster c is the sum of p over its tokens.
/// 2. keep the `top_k_clusters` clusters with the most mass and draw one cluster in proportion to its mass;
/// 3. draw a token of that cluster from softmax(z / `inner_temperature`).
///
/// Official values: stage 1 T = 1.15, 16 clusters, inner 1.0; DSR T = 1.0, 100 clusters, inner 0.89.
#[derive(Debug, Clone)]
pub struct ClusterSampler {
    /// Which cluster each token belongs to.
    pub labels: Arc<ClusterLabels>,
    /// Temperature of the cluster masses.
    pub temperature: f32,
    /// Clusters kept.
    pub top_k_clusters: usize,
    /// Temperature of the draw within the chosen cluster.
    pub inner_temperature: f32,
}

impl ClusterSampler {
    /// Cluster masses of softmax(logits / temperature), indexed by cluster.
    pub fn cluster_mass(&self, logits: &[f32]) -> Vec<f64> {
        let p = softmax_weights(logits, self.temperature as f64, |_| true);
        let total: f64 = p.iter().sum();
        let mut mass = vec![0.0; self.labels.num_clusters()];
        for (i, pi) in p.iter().enumerate() {
            mass[self.labels.label(i)] += pi / total;
        }
        mass
    }

    /// The `top_k_clusters` clusters with the largest mass (ties: lower cluster id first).
    pub fn top_clusters(&self, mass: &[f64]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..mass.len()).collect();
        order.sort_by(|&a, &b| {
            mass[b]
                .partial_cmp(&mass[a])
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.cmp(&b))
        });
        order.truncate(self.top_k_clusters.max(1));
        order
    }
}

impl Sampler for ClusterSampler {
    fn sample(&self, logits: &[f32], rng: &mut Rng) -> Result<u32> {
        check_logits(logits)?;
        check_temperature(self.temperature, "temperature")?;
        check_temperature(self.inner_temperature, "inner_temperature")?;
        if logits.len() != self.labels.len() {
            return Err(Error::invalid_input(
                "logits",
                format!(
                    "{} logits but the cluster table labels {} tokens; use the cluster table of this model's image vocabulary",
                    logits.len(),
                    self.labels.len()
                ),
            ));
        }
        if self.temperature == 0.0 {
            return Ok(argmax(logits) as u32);
        }
        let mass = self.cluster_mass(logits);
        let top = self.top_clusters(&mass);
        let top_mass: Vec<f64> = top.iter().map(|&c| mass[c]).collect();
        let cluster = top[sample_weighted(&top_mass, rng)];
        let in_cluster =
            |i: usize| self.labels.label(i) == cluster && logits[i] > f32::NEG_INFINITY;
        if self.inner_temperature == 0.0 {
            let best =
                (0..logits.len())
                    .filter(|&i| in_cluster(i))
                    .fold(None, |b: Option<usize>, i| match b {
                        Some(j) if logits[j] >= logits[i] => Some(j),
                        _ => Some(i),
                    });
            return Ok(best.unwrap_or_else(|| argmax(logits)) as u32);
        }
        let t = self.temperature as f64 * self.inner_temperature as f64;
        let w = softmax_weights(logits, t, in_cluster);
        Ok(sample_weighted(&w, rng) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    /// Upper critical value of the chi-square distribution at significance ~1e-6 (z = 4.75), by the
    /// Wilson-Hilferty approximation.
    fn chi2_critical(df: f64) -> f64 {
        let z = 4.75;
        let a = 2.0 / (9.0 * df);
        df * (1.0 - a + z * a.sqrt()).powi(3)
    }

    fn chi_square(counts: &[usize], probs: &[f64], n: usize) -> (f64, usize) {
        let mut stat = 0.0;
        let mut df = 0usize;
        for (c, p) in counts.iter().zip(probs) {
            if *p > 0.0 {
                let e = p * n as f64;
                stat += (*c as f64 - e).powi(2) / e;
                df += 1;
            } else {
                assert_eq!(*c, 0, "sampled a token of probability zero");
            }
        }
        (stat, df.saturating_sub(1))
    }

    /// The target distribution of temperature + top-k, computed directly from its definition.
    fn topk_target(logits: &[f32], t: f64, k: usize) -> Vec<f64> {
        let mut sorted: Vec<f32> = logits.to_vec();
        sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
        let thr = if k == 0 || k >= logits.len() {
            f32::NEG_INFINITY
        } else {
            sorted[k - 1]
        };
        let e: Vec<f64> = logits
            .iter()
            .map(|&x| if x >= thr { (x as f64 / t).exp() } else { 0.0 })
            .collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|x| x / s).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn topk_never_samples_outside_the_kept_tokens(
            logits in prop::collection::vec(-8.0f32..8.0, 2..40), k in 1usize..10, seed in any::<u64>(), t in 0.05f32..3.0
        ) {
            let s = TopKSampler { temperature: t, top_k: k };
            let thr = kth_largest(&logits, k.min(logits.len()));
            let mut rng = Rng::from_seed(seed);
            for _ in 0..50 {
                let id = s.sample(&logits, &mut rng).unwrap() as usize;
                prop_assert!(logits[id] >= thr);
            }
        }

        #[test]
        fn temperature_to_zero_gives_the_argmax(
            logits in prop::collection::vec(-8.0f32..8.0, 2..60), seed in any::<u64>()
        ) {
            let best = argmax(&logits);
            let gap = logits.iter().enumerate().filter(|(i, _)| *i != best).map(|(_, &x)| logits[best] - x).fold(f32::INFINITY, f32::min);
            prop_assume!(gap > 0.05);
            let mut rng = Rng::from_seed(seed);
            for t in [0.0f32, 1e-4] {
                let s = TopKSampler { temperature: t, top_k: 0 };
                prop_assert_eq!(s.sample(&logits, &mut rng).unwrap() as usize, best);
                let labels = Arc::new(ClusterLabels::new((0..logits.len() as i64).map(|i| i % 3).collect()).unwrap());
                let c = ClusterSampler { labels, temperature: t, top_k_clusters: 2, inner_temperature: 1.0 };
                prop_assert_eq!(c.sample(&logits, &mut rng).unwrap() as usize, best);
            }
        }

        #[test]
        fn cluster_sampling_stays_inside_the_top_clusters(
            logits in prop::collection::vec(-6.0f32..6.0, 8..64), k in 1usize..4, seed in any::<u64>()
        ) {
            let labels: Vec<i64> = (0..logits.len() as i64).map(|i| (i * 7) % 5).collect();
            let s = ClusterSampler { labels: Arc::new(ClusterLabels::new(labels.clone()).unwrap()), temperature: 1.15, top_k_clusters: k, inner_temperature: 0.89 };
            let mass = s.cluster_mass(&logits);
            let kept = s.top_clusters(&mass);
            let mut rng = Rng::from_seed(seed);
            for _ in 0..50 {
                let id = s.sample(&logits, &mut rng).unwrap() as usize;
                prop_assert!(kept.contains(&(labels[id] as usize)));
            }
        }

        #[test]
        fn topk_frequencies_match_the_target_distribution(
            logits in prop::collection::vec(-2.0f32..2.0, 2..7), k in 0usize..6, t in 0.5f32..2.0, seed in any::<u64>()
        ) {
            let n = 20_000;
            let s = TopKSampler { temperature: t, top_k: k };
            let mut rng = Rng::from_seed(seed);
            let mut counts = vec![0usize; logits.len()];
            for _ in 0..n { counts[s.sample(&logits, &mut rng).unwrap() as usize] += 1; }
            let target = topk_target(&logits, t as f64, k);
            let (stat, df) = chi_square(&counts, &target, n);
            if df > 0 { prop_assert!(stat < chi2_critical(df as f64), "chi2 {stat} df {df}"); }
        }

        #[test]
        fn cluster_frequencies_match_the_target_distribution(
            logits in prop::collection::vec(-2.0f32..2.0, 4..9), k in 1usize..3, seed in any::<u64>()
        ) {
            // 3 clusters over the tokens; the target is computed from the definition, independently.
            let labels: Vec<i64> = (0..logits.len() as i64).map(|i| i % 3).collect();
            let (t, inner) = (1.15f64, 0.89f64);
            let s = ClusterSampler { labels: Arc::new(ClusterLabels::new(labels.clone()).unwrap()), temperature: t as f32, top_k_clusters: k, inner_temperature: inner as f32 };
            let e: Vec<f64> = logits.iter().map(|&x| (x as f64 / t).exp()).collect();
            let z: f64 = e.iter().sum();
            let mut mass = [0.0f64; 3];
            for (i, v) in e.iter().enumerate() { mass[labels[i] as usize] += v / z; }
            let mut order = [0usize, 1, 2];
            order.sort_by(|&a, &b| mass[b].partial_cmp(&mass[a]).unwrap().then(a.cmp(&b)));
            let kept = &order[..k];
            let kept_mass: f64 = kept.iter().map(|&c| mass[c]).sum();
            let mut target = vec![0.0; logits.len()];
            for &c in kept {
                let inner_e: Vec<(usize, f64)> = (0..logits.len()).filter(|&i| labels[i] as usize == c)
                    .map(|i| (i, (logits[i] as f64 / (t * inner)).exp())).collect();
                let zc: f64 = inner_e.iter().map(|x| x.1).sum();
                for (i, v) in inner_e { target[i] = mass[c] / kept_mass * v / zc; }
            }
            let n = 20_000;
            let mut rng = Rng::from_seed(seed);
            let mut counts = vec![0usize; logits.len()];
            for _ in 0..n { counts[s.sample(&logits, &mut rng).unwrap() as usize] += 1; }
            let (stat, df) = chi_square(&counts, &target, n);
            if df > 0 { prop_assert!(stat < chi2_critical(df as f64), "chi2 {stat} df {df}"); }
        }
    }

    #[test]
    fn same_seed_same_tokens() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37 % 11) as f32) * 0.3).collect();
        let s = TopKSampler {
            temperature: 1.0,
            top_k: 20,
        };
        let draw = |seed| {
            let mut r = Rng::from_seed(seed);
            (0..32)
                .map(|_| s.sample(&logits, &mut r).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(5), draw(5));
        assert_ne!(draw(5), draw(6));
    }

    #[test]
    fn bad_logits_and_tables_are_errors() {
        let mut rng = Rng::from_seed(0);
        let s = TopKSampler {
            temperature: 1.0,
            top_k: 0,
        };
        assert!(s.sample(&[], &mut rng).is_err());
        assert!(s.sample(&[0.0, f32::NAN], &mut rng).is_err());
        assert!(TopKSampler {
            temperature: -1.0,
            top_k: 0
        }
        .sample(&[0.0, 1.0], &mut rng)
        .is_err());
        let c = ClusterSampler {
            labels: Arc::new(ClusterLabels::new(vec![0, 1, 1]).unwrap()),
            temperature: 1.0,
            top_k_clusters: 1,
            inner_temperature: 1.0,
        };
        let err = c.sample(&[0.0, 1.0], &mut rng).unwrap_err().to_string();
        assert!(
            err.contains("2 logits") && err.contains("3 tokens"),
            "{err}"
        );
        assert!(ClusterLabels::new(vec![0, -1]).is_err());
    }
}
