//! # cogview-pipeline
//!
//! Text-to-image generation as CogView2 runs it, composed from the core's component traits:
//! the text tokenizer, CogLM (stage 1, 20×20 tokens), DSR and ItersR (stages 2-3, 60×60 tokens)
//! and the VQ decoder (480 px).
//!
//! - [`PipelineConfig`]: the TOML file (every key optional; the official recipe by default).
//! - [`Settings`]: the effective, fully resolved settings, recorded in every image.
//! - [`Pipeline`]: the run, built from settings ([`Pipeline::from_settings`]) or composed from
//!   components in Rust ([`Pipeline::builder`]).
//! - [`dry_run`]: parameters, weight bytes and peak memory per stage, without loading anything.
//! - [`record`]: what a PNG carries to be reproduced (`cogview regenerate`).
//! - [`Vocabulary`]: a model's declared closed vocabulary; [`Pipeline::unknown_words`] and
//!   [`Pipeline::vocabulary_warning`] name the words of a prompt outside it.
//!
//! ```no_run
//! use cogview_pipeline::{Pipeline, PipelineConfig, Settings};
//! use cogview_core::RunContext;
//! let cfg = PipelineConfig { model_dir: Some("models/cogview2".into()), ..Default::default() };
//! let pipeline = Pipeline::from_settings(Settings::resolve(&cfg, true)?)?;
//! let images = pipeline.generate("a tiger wearing sunglasses", 2, false, &RunContext::with_seed(7))?;
//! # Ok::<(), cogview_core::Error>(())
//! ```

pub mod config;
pub mod dry_run;
mod edit;
pub mod hashing;
pub mod info;
mod pipeline;
pub mod record;
mod selection;
pub mod settings;
pub mod vocabulary;

pub use config::{PipelineConfig, SamplerKind};
pub use dry_run::{dry_run, DryRun};
pub use edit::{CaptionOptions, EditStages, EditedImage, RankedCandidate, WrittenCaption};
pub use pipeline::{
    set_memory_release_hook, CaptionTokens, GeneratedImage, GenerationRequest, Geometry, Pipeline,
    PipelineBuilder, Stage, Stage1Hook, VOCABULARY_WARNING_TARGET,
};
pub use record::ImageRecord;
pub use settings::Settings;
pub use vocabulary::Vocabulary;
