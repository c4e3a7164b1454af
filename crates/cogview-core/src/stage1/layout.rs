//! Where stage 1 puts things ([`Stage1Layout`]: the image grid, the position ids, the text limit)
//! and the settings of a stage-1 run ([`Stage1Settings`]).

use crate::error::{Error, Result};

/// Where stage 1 puts things: the image grid, the position of `<start_of_image>` and the text limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage1Layout {
    /// Image grid rows (official: 20).
    pub grid_height: usize,
    /// Image grid columns (official: 20).
    pub grid_width: usize,
    /// Position id of `<start_of_image>`; image token j gets this + 1 + j (official: 512).
    pub start_of_image_position: usize,
    /// Longest text (prompt + template, without `<start_of_image>`) accepted (official: 109, from the
    /// `len(seq) <= 110` check of `cogview2_text2image.py`).
    pub max_text_tokens: usize,
}

impl Default for Stage1Layout {
    fn default() -> Self {
        Stage1Layout {
            grid_height: 20,
            grid_width: 20,
            start_of_image_position: 512,
            max_text_tokens: 109,
        }
    }
}

impl Stage1Layout {
    /// Image tokens (`grid_height * grid_width`).
    pub fn image_tokens(&self) -> usize {
        self.grid_height * self.grid_width
    }

    /// Position id of image token `j` (row-major).
    pub fn image_position(&self, j: usize) -> u32 {
        (self.start_of_image_position + 1 + j) as u32
    }

    /// The context of stage 1: `text + [start_of_image]` and its position ids `0..n-1, 512`.
    pub fn query(&self, text: &[u32], start_of_image_id: u32) -> Result<(Vec<u32>, Vec<u32>)> {
        if text.len() > self.max_text_tokens {
            return Err(Error::TextTooLong {
                tokens: text.len(),
                max: self.max_text_tokens,
                what: "CogLM".into(),
            });
        }
        if text.len() > self.start_of_image_position {
            return Err(Error::TextTooLong {
                tokens: text.len(),
                max: self.start_of_image_position,
                what: "the position layout (text positions must stay below <start_of_image>)"
                    .into(),
            });
        }
        let mut tokens = text.to_vec();
        tokens.push(start_of_image_id);
        let mut positions: Vec<u32> = (0..text.len() as u32).collect();
        positions.push(self.start_of_image_position as u32);
        Ok((tokens, positions))
    }

    /// Checks that the layout fits a model with `max_positions` position embeddings.
    pub fn check_fits(&self, max_positions: usize) -> Result<()> {
        let last = self.start_of_image_position + self.image_tokens();
        if self.grid_height == 0 || self.grid_width == 0 {
            return Err(Error::config(
                "stage-1 layout",
                "grid",
                "the image grid is empty",
            ));
        }
        if last >= max_positions {
            return Err(Error::config(
                "stage-1 layout",
                "start_of_image_position",
                format!("image positions reach {last} but the model has only {max_positions} position embeddings"),
            ));
        }
        Ok(())
    }
}

/// Stage-1 settings besides the sampler (official values by default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage1Settings {
    /// Where the text and the image go.
    pub layout: Stage1Layout,
    /// Added to every attention score on a text key (`attn_plus`, official 1.4).
    pub text_bias: f32,
    /// Images generated together in one batch (official `--max-inference-batch-size` 8).
    pub max_batch: usize,
    /// Classifier-free guidance scale `s`: each image token is sampled from
    /// `u + s · (c − u)`, `c` the logits given the text and `u` those of the same image after
    /// `<start_of_image>` alone. 1 (CogView2's) is no guidance and costs nothing; above 1 each
    /// step runs the model twice. Only a model trained with some captions dropped
    /// (`cogview train coglm --caption-dropout`) knows `u`.
    pub guidance: f32,
}

impl Default for Stage1Settings {
    fn default() -> Self {
        Stage1Settings {
            layout: Stage1Layout::default(),
            text_bias: 1.4,
            max_batch: 8,
            guidance: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_query_layout() {
        let l = Stage1Layout::default();
        let (t, p) = l.query(&[20005, 20100, 20200], 150000).unwrap();
        assert_eq!(t, vec![20005, 20100, 20200, 150000]);
        assert_eq!(p, vec![0, 1, 2, 512]);
        assert_eq!(l.image_position(0), 513);
        assert_eq!(l.image_position(399), 912);
        let err = l.query(&vec![20100; 110], 150000).unwrap_err().to_string();
        assert!(
            err.contains("110 tokens") && err.contains("at most 109"),
            "{err}"
        );
        assert!(l.check_fits(1024).is_ok());
        assert!(l.check_fits(912).is_err());
    }
}
