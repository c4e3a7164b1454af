//! # cogview-checkpoint
//!
//! Reads model weights as users have them, with no tensor library and no Python:
//! - SAT checkpoint folders (`latest`, `model_config.json`, `<iter>/mp_rank_00_model_states.pt`),
//! - PyTorch `torch.save` zip files (`ice_image.pt`, `mp_rank_00_model_states.pt`), tensors under a
//!   key such as `'module'`, read by a small pickle interpreter that executes nothing,
//! - safetensors files.
//!
//! Tensor data is memory-mapped and handed out as little-endian bytes; backends convert it.
//! [`Checkpoint::check`] compares the tensors with what a model expects and names every missing,
//! unexpected, mis-shaped or mistyped tensor (the official loader silently ignores some).

mod checkpoint;
pub mod pickle;
mod sat;
mod write;

pub use checkpoint::{Checkpoint, Format, TensorInfo, WeightDType};
pub use sat::{ModelConfig, SatFolder};
pub use write::write_safetensors;
