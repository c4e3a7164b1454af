//! Data that crosses between components: text tokens, token grids, images, captions, numeric
//! types.

use crate::error::{Error, Result};
use crate::sampling::TopKSampler;
use serde::{Deserialize, Serialize};

/// Token ids of a text, as the text tokenizer produced them (icetk ids: text pieces are 20000..149999).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TextTokens(pub Vec<u32>);

impl TextTokens {
    /// Tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether there is no token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A row-major grid of image-token ids (VQ codebook indices), e.g. 20×20 after CogLM or 60×60 after DSR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrid {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width` ids, row-major.
    pub ids: Vec<u32>,
}

impl TokenGrid {
    /// A grid, checked: not empty and `ids.len() == height * width`.
    pub fn new(height: usize, width: usize, ids: Vec<u32>) -> Result<Self> {
        if height == 0 || width == 0 {
            return Err(Error::invalid_input(
                "token grid",
                format!("grid size {height}x{width} is empty"),
            ));
        }
        let Some(cells) = height.checked_mul(width) else {
            return Err(Error::invalid_input(
                "token grid",
                format!(
                    "the declared grid size {height}x{width} is more cells than this machine can \
                     address; {} ids were given",
                    ids.len()
                ),
            ));
        };
        if ids.len() != cells {
            return Err(Error::invalid_input(
                "token grid",
                format!(
                    "{} ids do not fill a {height}x{width} grid ({cells} needed)",
                    ids.len(),
                ),
            ));
        }
        Ok(TokenGrid { height, width, ids })
    }
    /// The id at (`row`, `col`).
    pub fn get(&self, row: usize, col: usize) -> u32 {
        self.ids[row * self.width + col]
    }
}

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width * height * 3` bytes: R, G, B per pixel, row-major.
    pub pixels: Vec<u8>,
}

impl Image {
    /// An image, checked: `pixels.len() == width * height * 3`.
    pub fn new(width: usize, height: usize, pixels: Vec<u8>) -> Result<Self> {
        let Some(need) = width.checked_mul(height).and_then(|n| n.checked_mul(3)) else {
            return Err(Error::invalid_input(
                "image",
                format!("the declared image size {width}x{height} overflows"),
            ));
        };
        if pixels.len() != need {
            return Err(Error::invalid_input(
                "image",
                format!(
                    "{} bytes for a {width}x{height} RGB image ({need} needed)",
                    pixels.len(),
                ),
            ));
        }
        Ok(Image {
            width,
            height,
            pixels,
        })
    }
}

/// The numeric type a backend computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float.
    #[default]
    F32,
    /// 16-bit float (IEEE half).
    F16,
    /// bfloat16.
    Bf16,
}

impl std::str::FromStr for DType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "fp32" => Ok(DType::F32),
            "f16" | "float16" | "fp16" | "half" => Ok(DType::F16),
            "bf16" | "bfloat16" => Ok(DType::Bf16),
            other => Err(Error::invalid_input(
                "dtype",
                format!("unknown dtype '{other}'; use f32, f16 or bf16"),
            )),
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
        })
    }
}

/// Where a backend runs. Written `cpu`, `cuda` (device 0) or `cuda:N` in configuration files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(try_from = "String", into = "String")]
pub enum Device {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA device `N`.
    Cuda(usize),
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.to_ascii_lowercase();
        if s == "cpu" {
            return Ok(Device::Cpu);
        }
        if s == "cuda" {
            return Ok(Device::Cuda(0));
        }
        if let Some(i) = s.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            return Ok(Device::Cuda(i));
        }
        Err(Error::invalid_input(
            "device",
            format!("unknown device '{s}'; use cpu, cuda or cuda:N"),
        ))
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl TryFrom<String> for Device {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        s.parse().map_err(|e: Error| e.to_string())
    }
}

impl From<Device> for String {
    fn from(d: Device) -> String {
        d.to_string()
    }
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
        }
    }
}

/// What one model needs in memory for a run, as a backend estimates it before loading anything
/// (`cogview generate --dry-run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryEstimate {
    /// Parameters in the checkpoint (exact: from the configuration's tensor list).
    pub parameters: u64,
    /// Bytes the loaded weights take in the chosen dtype, including copies the backend keeps
    /// (e.g. an f32 output head).
    pub weight_bytes: u64,
    /// The largest working set beside the weights (an estimate): activations, caches and logits
    /// during the run, or the largest tensor in transit while loading, whichever is larger.
    pub activation_bytes: u64,
}

impl MemoryEstimate {
    /// Weights plus activations: the peak while this model runs.
    pub fn peak_bytes(&self) -> u64 {
        self.weight_bytes + self.activation_bytes
    }
}

/// How to write a caption.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionRequest {
    /// The token before the caption (official inverse prompt: `<start_of_chinese>`; the default
    /// model was trained with `<start_of_english>`).
    pub start: u32,
    /// Token ids the caption may use (the text pieces), end excluded.
    pub allowed: std::ops::Range<u32>,
    /// A token that ends the caption (not part of it), when the model was trained to write one
    /// (the default model ends captions with `<start_of_image>`; CogView2's CogLM never learnt
    /// to end one, so it writes `max_tokens`).
    pub end: Option<u32>,
    /// The longest caption.
    pub max_tokens: usize,
    /// `None`: greedy (the most likely token at each step); `Some`: sampled from the top
    /// `top_k` with `temperature`.
    pub sampling: Option<TopKSampler>,
}

/// A written caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Caption {
    /// The caption's token ids (without the start and end tokens).
    pub ids: Vec<u32>,
    /// Mean log-probability of the caption tokens (and the end token, when one was written).
    pub mean_log_prob: f64,
    /// Whether the model ended the caption (else it reached `max_tokens`).
    pub ended: bool,
}
