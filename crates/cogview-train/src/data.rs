//! The training data: procedural scenes (`cogview-scenes`, training split only) and Fluent Emoji
//! (`cogview-emoji`, training split only), rendered on the fly, with their captions.

use cogview_core::{Error, Image, Result, Rng};
use cogview_emoji::EmojiSet;
use cogview_scenes::{Scene, SceneSampler};

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
    emoji: Option<EmojiSet>,
    emoji_train: Vec<usize>,
    pub scene_fraction: f64,
    rng: Rng,
}

impl DataMix {
    /// `emoji`: the Fluent Emoji set, or `None` for scenes only.
    pub fn new(seed: u64, emoji: Option<EmojiSet>, scene_fraction: f64) -> Self {
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
            scenes: SceneSampler::new(seed),
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
        self.scenes = SceneSampler::new(seed);
        self.rng = Rng::from_seed(seed ^ 0x5eed_0fda_7a00);
    }

    /// Every training caption (all emoji; the scene grammar's words through enough scenes to see
    /// every word), for building the text tokenizer.
    pub fn all_captions(&self) -> Vec<String> {
        let mut out: Vec<String> = cogview_scenes::split::single_object_scenes()
            .iter()
            .map(|s| s.caption())
            .collect();
        // Joined scenes add " and ".
        let mut s = SceneSampler::new(1);
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
        let mut a = DataMix::new(1, None, 1.0);
        a.draw().unwrap();
        a.reseed(9);
        let mut b = DataMix::new(9, None, 1.0);
        for _ in 0..5 {
            assert_eq!(a.draw().unwrap().caption, b.draw().unwrap().caption);
        }
        assert_ne!(DataMix::resumed_seed(1, 250), 1);
    }
}
