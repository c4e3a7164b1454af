//! The training data: procedural scenes (`cogview-scenes`, the training side of a [`Split`]) and
//! Fluent Emoji (`cogview-emoji`, training split only), rendered on the fly, with their captions.

use cogview_core::{Error, Image, Result, Rng};
use cogview_emoji::EmojiSet;
use cogview_scenes::{Scene, SceneSampler, Split};
use std::collections::HashMap;
use std::path::Path;

/// The metadata key under which training states record the scene split they were trained on.
pub const SPLIT_KEY: &str = "split";

/// A resumed state must have been trained on the same scene split: otherwise the run would train
/// on scenes another run held out (or the reverse), and the held-out evaluation would be void.
/// States written before the split was recorded were all trained on the attribute-pair split.
pub fn check_resumed_split(
    state: &Path,
    meta: &HashMap<String, String>,
    split: Split,
) -> Result<()> {
    let (saved, note) = match meta.get(SPLIT_KEY) {
        Some(name) => (name.as_str(), ""),
        None => (
            Split::AttributePairs.name(),
            " (it records no split: states written before the split was a choice were all \
             trained on attribute-pairs)",
        ),
    };
    if saved == split.name() {
        return Ok(());
    }
    Err(Error::invalid_input(
        "--split",
        format!(
            "{} was trained on the {saved} split{note}, not {split}: pass --split {saved} to \
             resume it, or give another --out to start a new run",
            state.display()
        ),
    ))
}

/// One training example.
#[derive(Debug, Clone)]
pub struct Example {
    pub caption: String,
    /// What it is, for per-source statistics.
    pub source: Source,
    /// A scene's description (for scenes only).
    pub scene: Option<Scene>,
    /// The emoji's index in the set (for emoji only).
    pub emoji: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Scene,
    Emoji,
}

/// Draws examples: scenes with probability `scene_fraction`, else emoji.
pub struct DataMix {
    scenes: SceneSampler,
    split: Split,
    emoji: Option<EmojiSet>,
    emoji_train: Vec<usize>,
    pub scene_fraction: f64,
    rng: Rng,
}

impl DataMix {
    /// `emoji`: the Fluent Emoji set, or `None` for scenes only; scenes from the training side of
    /// `split`.
    pub fn new(seed: u64, split: Split, emoji: Option<EmojiSet>, scene_fraction: f64) -> Self {
        let emoji_train: Vec<usize> = emoji
            .as_ref()
            .map(|set| {
                let names: std::collections::HashSet<&str> =
                    set.train().map(|e| e.name()).collect();
                set.entries()
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| names.contains(e.name()))
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default();
        let scene_fraction = if emoji_train.is_empty() {
            1.0
        } else {
            scene_fraction
        };
        DataMix {
            scenes: SceneSampler::new(seed, split),
            split,
            emoji,
            emoji_train,
            scene_fraction,
            rng: Rng::from_seed(seed ^ 0x5eed_0fda_7a00),
        }
    }

    /// The stream seed of a run resumed at `step`.
    pub fn resumed_seed(seed: u64, step: u64) -> u64 {
        seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// Restarts the example stream from `seed` (a resumed run calls this with its seed and step,
    /// so that it continues with new examples instead of repeating its first ones).
    pub fn reseed(&mut self, seed: u64) {
        self.scenes = SceneSampler::new(seed, self.split);
        self.rng = Rng::from_seed(seed ^ 0x5eed_0fda_7a00);
    }

    /// The scene split it draws from the training side of.
    pub fn split(&self) -> Split {
        self.split
    }

    /// The metadata a training state records about its data: the split ([`SPLIT_KEY`]).
    pub fn state_metadata(&self) -> (String, String) {
        (SPLIT_KEY.to_string(), self.split.name().to_string())
    }

    /// Every training caption (all emoji; the scene grammar's words through enough scenes to see
    /// every word), for building the text tokenizer. The same list under either split: the joined
    /// scenes are drawn from the attribute-pair split's training side, as when the shipped
    /// ice_text.model was made, so that `train tokenizer` still reproduces it.
    pub fn all_captions(&self) -> Vec<String> {
        let mut out: Vec<String> = cogview_scenes::split::single_object_scenes()
            .iter()
            .map(|s| s.caption())
            .collect();
        // Joined scenes add " and ".
        let mut s = SceneSampler::new(1, Split::AttributePairs);
        for _ in 0..200 {
            if let Ok(scene) = s.sample_train(2..=3) {
                out.push(scene.caption());
            }
        }
        if let Some(set) = &self.emoji {
            out.extend(set.entries().iter().map(|e| e.caption().to_string()));
        }
        out
    }

    /// The next example's caption and source (render it with [`DataMix::render`]).
    pub fn draw(&mut self) -> Result<Example> {
        if self.rng.next_f64() < self.scene_fraction {
            let n = 1 + self.rng.below(3);
            let scene = self
                .scenes
                .sample_train(n..=n)
                .map_err(|e| Error::backend_source("", e))?;
            Ok(Example {
                caption: scene.caption(),
                source: Source::Scene,
                scene: Some(scene),
                emoji: None,
            })
        } else {
            let set = self.emoji.as_ref().expect("emoji present when drawn");
            let i = self.emoji_train[self.rng.below(self.emoji_train.len())];
            Ok(Example {
                caption: set.entries()[i].caption().to_string(),
                source: Source::Emoji,
                scene: None,
                emoji: Some(i),
            })
        }
    }

    /// The example drawn at `side` pixels.
    pub fn render(&self, ex: &Example, side: usize) -> Result<Image> {
        match (&ex.scene, ex.emoji, &self.emoji) {
            (Some(scene), _, _) => {
                cogview_scenes::render(scene, side).map_err(|e| Error::backend_source("", e))
            }
            (None, Some(i), Some(set)) => set
                .render(&set.entries()[i], side as u32)
                .map_err(|e| Error::backend_source("", e)),
            _ => Err(Error::backend("an example with nothing to render")),
        }
    }

    /// A random `side`×`side` crop of an image.
    pub fn crop(&mut self, img: &Image, side: usize) -> Result<Image> {
        if img.width == side && img.height == side {
            return Ok(img.clone());
        }
        let x = self.rng.below(img.width - side + 1);
        let y = self.rng.below(img.height - side + 1);
        cogview_image::crop(img, x, y, side, side)
    }

    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reseeding_gives_the_stream_of_that_seed() {
        for split in Split::ALL {
            let mut a = DataMix::new(1, split, None, 1.0);
            a.draw().unwrap();
            a.reseed(9);
            assert_eq!(a.split(), split);
            let mut b = DataMix::new(9, split, None, 1.0);
            for _ in 0..5 {
                assert_eq!(a.draw().unwrap().caption, b.draw().unwrap().caption);
            }
        }
        assert_ne!(DataMix::resumed_seed(1, 250), 1);
    }

    /// The scenes drawn for training are the training side of the chosen split, with one, two and
    /// three objects about equally often (checked against the split's rule, parsed back from the
    /// caption the model sees).
    #[test]
    fn training_scenes_come_from_the_training_side_of_the_split() {
        for split in Split::ALL {
            let mut mix = DataMix::new(4, split, None, 0.5);
            let mut counts = [0usize; 4];
            let mut singles = std::collections::HashSet::new();
            // About 6 700 single objects: every one of the 432 is drawn (a miss has p ≈ 1e-4).
            for _ in 0..20_000 {
                let ex = mix.draw().unwrap();
                assert_eq!(ex.source, Source::Scene, "no emoji set: scenes only");
                let scene = Scene::parse(&ex.caption).unwrap();
                assert_eq!(Some(&scene), ex.scene.as_ref());
                assert!(!split.is_heldout(&scene), "{split}: {scene} is held out");
                counts[scene.objects.len()] += 1;
                if scene.objects.len() == 1 {
                    singles.insert(scene);
                }
            }
            for n in 1..=3 {
                assert!(counts[n] > 6_300, "{split}: {counts:?}");
            }
            // Compositions trains every single object; attribute pairs 320 of the 432.
            let want = match split {
                Split::Compositions => 432,
                Split::AttributePairs => 320,
            };
            assert_eq!(singles.len(), want, "{split}");
        }
        // The README's prompt is trained under compositions only.
        let readme = Scene::parse("a large blue circle in the center").unwrap();
        let mut mix = DataMix::new(5, Split::Compositions, None, 1.0);
        assert!((0..20_000).any(|_| mix.draw().unwrap().scene.as_ref() == Some(&readme)));
    }

    #[test]
    fn resuming_under_another_split_is_refused_with_the_split_to_pass() {
        let state = Path::new("run/state.safetensors");
        let meta = |s: Split| -> HashMap<String, String> {
            [(SPLIT_KEY.to_string(), s.name().to_string())].into()
        };
        for split in Split::ALL {
            assert!(check_resumed_split(state, &meta(split), split).is_ok());
            let (key, value) = DataMix::new(1, split, None, 1.0).state_metadata();
            assert_eq!((key.as_str(), value.as_str()), (SPLIT_KEY, split.name()));
        }
        let e = check_resumed_split(state, &meta(Split::AttributePairs), Split::Compositions)
            .unwrap_err();
        assert!(
            matches!(&e, Error::InvalidInput { field, .. } if field == "--split"),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(
            e.contains("--split attribute-pairs") && e.contains("run/state"),
            "{e}"
        );
        let e = check_resumed_split(state, &meta(Split::Compositions), Split::AttributePairs)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--split compositions"), "{e}");
        // States from before the split was recorded were trained on attribute pairs.
        let old = HashMap::new();
        assert!(check_resumed_split(state, &old, Split::AttributePairs).is_ok());
        let e = check_resumed_split(state, &old, Split::Compositions)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("records no split") && e.contains("--split attribute-pairs"),
            "{e}"
        );
    }
}
