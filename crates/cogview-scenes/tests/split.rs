//! The held-out split and the samplers on either side of it.

use std::collections::HashSet;

use cogview_scenes::{
    heldout_single_object_scenes, single_object_scenes, Cell, Colour, Object, Scene, SceneSampler,
    Shape, HELDOUT_COLOUR_SHAPE, HELDOUT_SHAPE_CELL,
};

#[test]
fn no_train_sample_in_10k_draws_is_held_out() {
    let mut sampler = SceneSampler::new(2024);
    let mut counts = [0usize; 4];
    let mut objects_seen = HashSet::new();
    for _ in 0..10_000 {
        let scene = sampler.sample_train(1..=3).unwrap();
        assert!(scene.validate().is_ok(), "{scene}");
        assert!(!scene.is_heldout(), "train sample {scene} is held out");
        assert!(scene.objects.windows(2).all(|p| p[0].cell < p[1].cell));
        counts[scene.objects.len()] += 1;
        objects_seen.extend(scene.objects.iter().copied());
    }
    // Every object count occurs about equally often, and every non-held-out object occurs.
    for n in 1..=3 {
        assert!(counts[n] > 3000, "{counts:?}");
    }
    let train_objects: HashSet<Object> = Object::all().filter(|o| !o.is_heldout()).collect();
    assert_eq!(objects_seen, train_objects);
}

#[test]
fn every_heldout_sample_is_held_out_with_the_requested_count() {
    let mut sampler = SceneSampler::new(99);
    for n in 1..=3 {
        for _ in 0..2000 {
            let scene = sampler.sample_heldout(n).unwrap();
            assert!(scene.validate().is_ok(), "{scene}");
            assert!(
                scene.is_heldout(),
                "held-out sample {scene} is not held out"
            );
            assert_eq!(scene.objects.len(), n);
        }
    }
}

#[test]
fn heldout_sampling_reaches_every_heldout_single_object_scene() {
    let heldout: HashSet<Scene> = heldout_single_object_scenes().into_iter().collect();
    assert_eq!(heldout.len(), 112);
    let mut sampler = SceneSampler::new(5);
    let drawn: HashSet<Scene> = (0..5000)
        .map(|_| sampler.sample_heldout(1).unwrap())
        .collect();
    assert_eq!(drawn, heldout);
}

#[test]
fn the_enumeration_partitions_single_object_scenes() {
    let all = single_object_scenes();
    let heldout = heldout_single_object_scenes();
    assert!(heldout.iter().all(Scene::is_heldout));
    let train = all.iter().filter(|s| !s.is_heldout()).count();
    assert_eq!(train + heldout.len(), all.len());
    // The definition, spelled out independently of `Object::is_heldout`.
    for scene in &all {
        let o = scene.objects[0];
        let by_pair = matches!(
            (o.colour, o.shape),
            (Colour::Red, Shape::Square)
                | (Colour::Green, Shape::Triangle)
                | (Colour::Blue, Shape::Circle)
                | (Colour::Orange, Shape::Triangle)
        );
        let by_place = matches!(
            (o.shape, o.cell),
            (Shape::Circle, Cell::TopRight)
                | (Shape::Square, Cell::BottomLeft)
                | (Shape::Triangle, Cell::Center)
        );
        assert_eq!(scene.is_heldout(), by_pair || by_place, "{scene}");
    }
    // A scene is held out as soon as any one object is.
    let train_object = Object::all().find(|o| !o.is_heldout()).unwrap();
    let heldout_object = Object::all()
        .find(|o| o.is_heldout() && o.cell != train_object.cell)
        .unwrap();
    assert!(Scene::new(vec![train_object, heldout_object])
        .unwrap()
        .is_heldout());
    assert_eq!(HELDOUT_COLOUR_SHAPE.len(), 4);
    assert_eq!(HELDOUT_SHAPE_CELL.len(), 3);
}

#[test]
fn sampling_is_deterministic_per_seed() {
    let draw = |seed| {
        let mut s = SceneSampler::new(seed);
        (0..50)
            .map(|i| {
                if i % 2 == 0 {
                    s.sample_train(1..=3).unwrap()
                } else {
                    s.sample_heldout(2).unwrap()
                }
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(11), draw(11));
    assert_ne!(draw(11), draw(12));
}
