//! The cluster table of cluster sampling for a trained image tokenizer: k-means over the codebook
//! vectors (how CogView2's `cluster_label.npy` was made, per the paper), written as `.npy` int64.

use cogview_core::{Error, Result, Rng};

fn dist2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Labels `0..k` for the `n` rows of `points` (`n × dim`, row-major): k-means++ seeding, then
/// Lloyd iterations until no label changes (at most `iterations`). An emptied cluster takes the
/// point farthest from its centre, so every cluster keeps at least one code.
pub fn kmeans(
    points: &[f32],
    dim: usize,
    k: usize,
    iterations: usize,
    seed: u64,
) -> Result<Vec<i64>> {
    let n = points.len() / dim.max(1);
    if dim == 0 || n == 0 || points.len() != n * dim {
        return Err(Error::invalid_input("points", "expected n × dim values"));
    }
    if k == 0 || k > n {
        return Err(Error::invalid_input(
            "clusters",
            format!("{k} clusters for {n} codes: use 1 to {n}"),
        ));
    }
    let row = |i: usize| &points[i * dim..(i + 1) * dim];
    let mut rng = Rng::from_seed(seed);
    let mut centres: Vec<Vec<f32>> = vec![row(rng.below(n)).to_vec()];
    let mut nearest: Vec<f32> = (0..n).map(|i| dist2(row(i), &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = nearest.iter().map(|&d| d as f64).sum();
        let mut pick = rng.next_f64() * total;
        let mut chosen = n - 1;
        for (i, &d) in nearest.iter().enumerate() {
            pick -= d as f64;
            if pick <= 0.0 {
                chosen = i;
                break;
            }
        }
        let c = row(chosen).to_vec();
        for (i, d) in nearest.iter_mut().enumerate() {
            *d = d.min(dist2(row(i), &c));
        }
        centres.push(c);
    }
    let mut labels = vec![usize::MAX; n];
    for _ in 0..iterations.max(1) {
        let mut changed = false;
        for i in 0..n {
            let best = (0..k)
                .min_by(|&a, &b| dist2(row(i), &centres[a]).total_cmp(&dist2(row(i), &centres[b])))
                .expect("k > 0");
            if labels[i] != best {
                labels[i] = best;
                changed = true;
            }
        }
        let mut sums = vec![vec![0f64; dim]; k];
        let mut counts = vec![0usize; k];
        for i in 0..n {
            counts[labels[i]] += 1;
            for (s, &v) in sums[labels[i]].iter_mut().zip(row(i)) {
                *s += v as f64;
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                // Re-seed an empty cluster with the point farthest from its own centre.
                let far = (0..n)
                    .max_by(|&a, &b| {
                        dist2(row(a), &centres[labels[a]])
                            .total_cmp(&dist2(row(b), &centres[labels[b]]))
                    })
                    .expect("n > 0");
                centres[c] = row(far).to_vec();
                labels[far] = c;
                changed = true;
            } else {
                centres[c] = sums[c]
                    .iter()
                    .map(|s| (*s / counts[c] as f64) as f32)
                    .collect();
            }
        }
        if !changed {
            break;
        }
    }
    Ok(labels.into_iter().map(|l| l as i64).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separated_blobs_are_found_and_no_cluster_is_empty() {
        // Three tight blobs of 10 points in 2-D.
        let mut pts = Vec::new();
        for (cx, cy) in [(0.0f32, 0.0f32), (10.0, 0.0), (0.0, 10.0)] {
            for i in 0..10 {
                pts.extend([cx + 0.01 * i as f32, cy - 0.01 * i as f32]);
            }
        }
        let l = kmeans(&pts, 2, 3, 50, 1).unwrap();
        for blob in 0..3 {
            let first = l[blob * 10];
            assert!(l[blob * 10..blob * 10 + 10].iter().all(|&x| x == first));
        }
        let mut distinct = l.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct, [0, 1, 2]);
        // As many clusters as points: every point alone.
        let l = kmeans(&pts, 2, 30, 50, 2).unwrap();
        let mut d = l.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), 30);
        assert!(kmeans(&pts, 2, 31, 5, 1).is_err());
    }

    #[test]
    fn the_table_reads_back_as_cluster_labels() {
        let labels = vec![0i64, 2, 1, 1, 0];
        let bytes = cogview_core::npy::write_npy_i64(&labels);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.npy");
        std::fs::write(&p, bytes).unwrap();
        let table = cogview_core::sampling::ClusterLabels::from_npy_file(&p).unwrap();
        assert_eq!(table.len(), 5);
        assert_eq!(table.num_clusters(), 3);
        assert_eq!(table.label(1), 2);
    }
}
