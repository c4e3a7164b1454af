//! Stage 1's attention masks, as additive bias rows (`-inf` where a query may not look, the text
//! bias on visible text keys): [`CoglmMask`] for generation and scoring, [`CompletionMask`] for
//! text-guided completion, [`CaptionMask`] for the inverse prompt (captions).

/// CogLM's attention mask and text bias (`get_masks_and_position_ids_coglm` + `log_attention_weights`).
///
/// Query `q` may attend to key `k` when `k <= q` (causal) or `k < text_len` (every row sees all text),
/// so text is bidirectional among text and image tokens are causal. Visible text keys get
/// `text_bias` added to their score (1.4 in the official recipe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoglmMask {
    /// Text tokens at the start of the sequence.
    pub text_len: usize,
    /// Added to every visible text key's score.
    pub text_bias: f32,
}

impl CoglmMask {
    /// Whether query `q` may attend to key `k` (sequence indices).
    pub fn allows(&self, q: usize, k: usize) -> bool {
        k <= q || k < self.text_len
    }

    /// The additive bias for queries `q_start..q_start+q_len` over keys `0..k_len` (sequence indices):
    /// `[q_len, k_len]` row-major, `-inf` where masked.
    pub fn bias_rows(&self, q_start: usize, q_len: usize, k_len: usize) -> Vec<f32> {
        text_biased_rows(
            |q, k| self.allows(q, k),
            self.text_len,
            self.text_bias,
            (q_start, q_len, k_len),
        )
    }
}

/// Additive attention bias for queries `q_start..q_start+q_len` over keys `0..k_len`, row-major:
/// `-inf` where `allows(q, k)` is false, `text_bias` on visible keys below `text_len`, else 0.
pub fn text_biased_rows(
    allows: impl Fn(usize, usize) -> bool,
    text_len: usize,
    text_bias: f32,
    (q_start, q_len, k_len): (usize, usize, usize),
) -> Vec<f32> {
    let mut out = Vec::with_capacity(q_len * k_len);
    for q in q_start..q_start + q_len {
        for k in 0..k_len {
            out.push(if !allows(q, k) {
                f32::NEG_INFINITY
            } else if k < text_len {
                text_bias
            } else {
                0.0
            });
        }
    }
    out
}

/// The completion sequence's attention (`get_masks_and_position_ids_comp`): causal, plus text
/// bidirectional among the text, plus every row after `<start_of_image>` seeing all context
/// cells; `text_bias` on every visible text key.
///
/// Sequence indices: text `0..text_len`, `<start_of_image>` at `text_len`, context cells at
/// `text_len + 1 .. context_end`, the generation segment after.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompletionMask {
    /// Text tokens at the start of the sequence.
    pub text_len: usize,
    /// The sequence index after the last context cell.
    pub context_end: usize,
    /// Added to every visible text key's score.
    pub text_bias: f32,
}

impl CompletionMask {
    /// Whether query `q` may attend to key `k` (sequence indices).
    pub fn allows(&self, q: usize, k: usize) -> bool {
        k <= q
            || (q < self.text_len && k < self.text_len)
            || (q > self.text_len && k > self.text_len && k < self.context_end)
    }

    /// The additive bias for queries `q_start..q_start+q_len` over keys `0..k_len`.
    pub fn bias_rows(&self, q_start: usize, q_len: usize, k_len: usize) -> Vec<f32> {
        text_biased_rows(
            |q, k| self.allows(q, k),
            self.text_len,
            self.text_bias,
            (q_start, q_len, k_len),
        )
    }
}

/// The inverse-prompt attention (`--inverse-prompt` of `cogview2_text2image.py`) over
/// `image_len` image tokens followed by text: the image is bidirectional among itself and sees no
/// text; the text (the start token and the caption) is causal and sees the whole image. No text
/// bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptionMask {
    /// Image tokens at the start of the sequence.
    pub image_len: usize,
}

impl CaptionMask {
    /// Whether query `q` may attend to key `k` (sequence indices).
    pub fn allows(&self, q: usize, k: usize) -> bool {
        k < self.image_len || (q >= self.image_len && k <= q)
    }

    /// The additive bias for queries `q_start..q_start+q_len` over keys `0..k_len`.
    pub fn bias_rows(&self, q_start: usize, q_len: usize, k_len: usize) -> Vec<f32> {
        text_biased_rows(|q, k| self.allows(q, k), 0, 0.0, (q_start, q_len, k_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_the_official_definition() {
        // tril(ones) with every row seeing the text columns, as get_masks_and_position_ids_coglm builds it.
        let m = CoglmMask {
            text_len: 3,
            text_bias: 1.4,
        };
        let n = 6;
        let rows = m.bias_rows(0, n, n);
        for q in 0..n {
            for k in 0..n {
                let official_visible = k <= q || k < 3;
                let b = rows[q * n + k];
                if official_visible {
                    assert_eq!(b, if k < 3 { 1.4 } else { 0.0 }, "q{q} k{k}");
                } else {
                    assert_eq!(b, f32::NEG_INFINITY, "q{q} k{k}");
                }
            }
        }
        // Text rows see all text but no image; the text bias is uniform over a text row.
        assert_eq!(
            &rows[0..6],
            &[
                1.4,
                1.4,
                1.4,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY,
                f32::NEG_INFINITY
            ]
        );
        // An incremental step's row equals the full mask's row.
        assert_eq!(m.bias_rows(4, 1, 5), rows[4 * n..4 * n + 5].to_vec());
    }

    #[test]
    fn completion_mask_matches_the_official_construction() {
        // get_masks_and_position_ids_comp: tril; rows > txt, cols txt+1..context = 1;
        // rows < txt, cols < txt = 1.
        let (t, ctx_end, n) = (3, 7, 11);
        let m = CompletionMask {
            text_len: t,
            context_end: ctx_end,
            text_bias: 1.4,
        };
        for q in 0..n {
            for k in 0..n {
                let mut want = k <= q;
                if q > t && k > t && k < ctx_end {
                    want = true;
                }
                if q < t && k < t {
                    want = true;
                }
                assert_eq!(m.allows(q, k), want, "{q} {k}");
            }
        }
        // <start_of_image> sees no context; the first context cell sees all context.
        assert!(!m.allows(t, t + 1));
        assert!(m.allows(t + 1, ctx_end - 1));
        let rows = m.bias_rows(0, n, n);
        assert_eq!(rows[0], 1.4); // text key
        assert_eq!(rows[t + 1], f32::NEG_INFINITY);
        assert_eq!(rows[(t + 1) * n + t], 0.0);
    }
}
