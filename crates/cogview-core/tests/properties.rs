//! Property tests of the core's algorithms that have invariants: sampling, the LoPAR masks, the
//! local windows, the edit mask and the token-grid file's round trip.

use cogview_core::edit::{surrounding_square, EditMask, Region};
use cogview_core::grid_file::GridFile;
use cogview_core::local_window::LocalWindow;
use cogview_core::lopar::Lopar;
use cogview_core::sampling::{ClusterLabels, ClusterSampler, TopKSampler};
use cogview_core::{Compression, Rng, Sampler, TokenGrid};
use proptest::prelude::*;
use std::sync::Arc;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Sampling never picks a masked (-inf) logit while a finite one exists, stays in range, and
    /// never panics on hostile logits (NaN, all -inf, +inf): it returns an index or an error.
    #[test]
    fn sampling_stays_in_range_and_off_masked_logits(
        logits in prop::collection::vec(prop_oneof![
            4 => -10.0f32..10.0,
            1 => Just(f32::NEG_INFINITY),
        ], 1..50),
        k in 0usize..8, t in 0.01f32..4.0, seed in any::<u64>()
    ) {
        let mut rng = Rng::from_seed(seed);
        let s = TopKSampler { temperature: t, top_k: k };
        let finite = logits.iter().any(|x| x.is_finite());
        match s.sample(&logits, &mut rng) {
            Ok(id) => {
                prop_assert!((id as usize) < logits.len());
                if finite { prop_assert!(logits[id as usize].is_finite()); }
            }
            Err(_) => prop_assert!(!finite),
        }
        let labels: Vec<i64> = (0..logits.len() as i64).map(|i| i % 4).collect();
        let c = ClusterSampler {
            labels: Arc::new(ClusterLabels::new(labels).unwrap()),
            temperature: t, top_k_clusters: 2, inner_temperature: 0.9,
        };
        if let Ok(id) = c.sample(&logits, &mut rng) {
            prop_assert!((id as usize) < logits.len());
            if finite { prop_assert!(logits[id as usize].is_finite()); }
        }
    }

    #[test]
    fn sampling_hostile_logits_never_panics(
        logits in prop::collection::vec(prop_oneof![
            Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY), any::<f32>()
        ], 0..20),
        seed in any::<u64>()
    ) {
        let mut rng = Rng::from_seed(seed);
        for s in [TopKSampler { temperature: 1.0, top_k: 3 }, TopKSampler { temperature: 0.0, top_k: 0 }] {
            if let Ok(id) = s.sample(&logits, &mut rng) {
                prop_assert!((id as usize) < logits.len());
            }
        }
    }

    /// LoPAR: each pass re-samples a subset of the previous pass's cells, never a cell whose table
    /// value is <= 0, and (editing) only cells the input mask marks.
    #[test]
    fn lopar_masks_shrink_and_respect_the_table_and_input_mask(
        rows in 1usize..7, cols in 1usize..7, values in prop::collection::vec(-3i8..8, 49),
        passes in 1usize..7, h in 1usize..20, w in 1usize..20, input in prop::collection::vec(any::<bool>(), 400)
    ) {
        let table: Vec<Vec<i8>> = (0..rows).map(|r| values[r * 7..r * 7 + cols].to_vec()).collect();
        let l = Lopar { table, top_k: vec![5; passes] };
        l.validate().unwrap();
        let input = &input[..h * w];
        let mut previous: Option<Vec<bool>> = None;
        for k in 1..=passes {
            let m = l.mask(k, h, w, Some(input)).unwrap();
            for (i, &on) in m.iter().enumerate() {
                if on {
                    prop_assert!(input[i]);
                    prop_assert!(l.value(i / w, i % w) >= k as i8);
                }
            }
            if let Some(p) = &previous {
                prop_assert!(m.iter().zip(p).all(|(a, b)| !a || *b), "pass {k} grew");
            }
            previous = Some(m);
        }
        prop_assert!(l.mask(0, h, w, None).is_err());
        prop_assert!(l.mask(passes + 1, h, w, None).is_err());
        prop_assert!(l.mask(1, h, w, Some(&input[..h * w - 1])).is_err());
    }

    /// Local windows: every key is on the key grid and within the window around the query's
    /// centre; a self-attention window's centre slot is the query; a causal one sees no later key.
    #[test]
    fn local_window_keys_stay_in_the_window_and_on_the_grid(
        kh in (0usize..5).prop_map(|x| 2 * x + 1), kw in (0usize..5).prop_map(|x| 2 * x + 1),
        a in 1usize..4, kh_grid in 1usize..12, kw_grid in 1usize..12, causal in any::<bool>(),
        qy in 0usize..48, qx in 0usize..48
    ) {
        let win = LocalWindow { kh, kw, ah: a, aw: a, causal };
        let (qh, qw) = (kh_grid * a, kw_grid * a);
        win.check(qh, qw, kh_grid, kw_grid).unwrap();
        let (y, x) = (qy % qh, qx % qw);
        let keys: Vec<Option<usize>> = win.keys(y, x, kh_grid, kw_grid).collect();
        prop_assert_eq!(keys.len(), win.slots());
        let (cy, cx) = (y / a, x / a);
        for k in keys.iter().flatten() {
            prop_assert!(*k < kh_grid * kw_grid);
            let (ky, kx) = (k / kw_grid, k % kw_grid);
            prop_assert!(ky.abs_diff(cy) <= kh / 2 && kx.abs_diff(cx) <= kw / 2);
            if causal && a == 1 {
                prop_assert!(*k <= y * kw_grid + x, "a causal window sees a later key");
            }
        }
        if a == 1 {
            prop_assert_eq!(keys[kh * kw / 2], Some(y * kw_grid + x));
        }
    }

    /// The edit mask: a rectangle marks exactly its area, its bounding box is the rectangle, the
    /// official surrounding square holds it and fits the image, and resizing to the same size is
    /// the identity.
    #[test]
    fn edit_mask_rectangles_and_their_square(
        side in 1usize..64, l in 0usize..64, t in 0usize..64, rw in 1usize..64, rh in 1usize..64
    ) {
        let (left, top) = (l % side, t % side);
        let (right, bottom) = ((left + rw).min(side), (top + rh).min(side));
        let m = EditMask::from_regions(side, side, &[Region::Pixels { left, top, right, bottom }]).unwrap();
        prop_assert_eq!(m.count(), (right - left) * (bottom - top));
        prop_assert_eq!(m.bounding_box(), Some((top, left, bottom, right)));
        let sq = surrounding_square(&m).unwrap().unwrap();
        prop_assert!(sq.top + sq.side <= side && sq.left + sq.side <= side);
        // At least as long as the box's longer side (int(n·20/14) >= n); where it starts follows
        // the official rounding, which can leave a one-pixel box's own pixel outside.
        prop_assert!(sq.side >= (right - left).max(bottom - top));
        prop_assert_eq!(m.resize_nearest(side, side).unwrap(), m.clone());
        let c = m.crop(sq.top, sq.left, sq.side).unwrap();
        prop_assert!(c.count() <= m.count() && c.width() == sq.side);
        // Rectangles outside the image or empty are errors, never panics.
        let outside = Region::Pixels { left: 0, top: 0, right: side + 1, bottom: 1 };
        let reversed = Region::Pixels { left: usize::MAX, top: 0, right: side, bottom: 1 };
        let nan = Region::Fraction { left: f64::NAN, top: 0.0, right: 1.0, bottom: 1.0 };
        for r in [outside, reversed, nan] {
            let bad = EditMask::from_regions(side, side, &[r]).is_err();
            prop_assert!(bad);
        }
    }

    /// A token-grid file reads back as it was written.
    #[test]
    fn grid_files_round_trip(
        h in 1usize..30, w in 1usize..30, ids in prop::collection::vec(any::<u32>(), 900),
        c in prop::option::of(prop_oneof![Just(4usize), Just(8), Just(16)]),
        sha in prop::option::of("[0-9a-f]{64}")
    ) {
        let g = GridFile {
            grid: TokenGrid::new(h, w, ids[..h * w].to_vec()).unwrap(),
            compression: c.map(|f| Compression::from_factor(f).unwrap()),
            tokenizer_sha256: sha,
        };
        prop_assert_eq!(GridFile::parse(&g.to_json(), "g").unwrap(), g);
    }
}

/// A hostile cluster table (one label of 4·10⁹) used to size the per-cluster buffers by it.
#[test]
fn a_cluster_label_beyond_the_token_count_is_refused() {
    let e = ClusterLabels::new(vec![0, 1, 4_000_000_000])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("4000000000") && e.contains("at most 3 clusters"),
        "{e}"
    );
    assert!(ClusterLabels::new(vec![0, 2, 1]).is_ok());
}
