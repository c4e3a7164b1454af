//! # cogview-core
//!
//! The tensor-library-free heart of cogview: the component traits a pipeline is built from
//! ([`ImageTokenizer`], [`GlobalGenerator`], [`LocalSuperResolver`], [`Sampler`], [`TextTokenizer`]),
//! the data that crosses between them, the one [`Error`] type, and the algorithms every backend must
//! agree on: sampling with a seedable [`Rng`], and stage 1 ([`stage1`]: CogLM's query layout,
//! positions and masks, the generation loop, completion and captions). Backends (candle, plugins)
//! implement [`lm::AutoregressiveLm`] and own the math.
//!
//! ```
//! use cogview_core::{sampling::TopKSampler, Rng, Sampler};
//! let sampler = TopKSampler { temperature: 1.0, top_k: 2 };
//! let mut rng = Rng::from_seed(42);
//! let id = sampler.sample(&[0.1, 3.0, 2.5, -1.0], &mut rng).unwrap();
//! assert!(id == 1 || id == 2);
//! ```

pub mod backend;
pub mod context;
pub mod edit;
pub mod error;
pub mod grid_file;
pub mod limits;
pub mod lm;
pub mod local_window;
pub mod lopar;
pub mod npy;
pub mod output;
pub mod rng;
pub mod sampling;
pub mod sr;
pub mod stage1;
pub mod traits;
pub mod types;

pub use backend::{Availability, Backend, LoadRequest, ModelKind};
pub use context::{CancelToken, Progress, RunContext};
pub use error::{Error, ErrorCode, Result, ShapeMismatch};
pub use rng::Rng;
pub use traits::{
    Compression, GlobalGenerator, ImageTokenizer, LocalSuperResolver, Sampler, Stage1Request,
    TextTokenizer,
};
pub use types::{
    Caption, CaptionRequest, DType, Device, Image, MemoryEstimate, TextTokens, TokenGrid,
};
