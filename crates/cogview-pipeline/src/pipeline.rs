//! The pipeline: text → CogLM (20×20) → DSR (60×60) → ItersR → VQ decode (480 px), composed from
//! the core's component traits. Built from a TOML configuration ([`Pipeline::from_settings`]) or
//! from components in Rust ([`PipelineBuilder`]).

use crate::selection::{stage1_seeds, RerankRecord, Selection};
use crate::settings::Settings;
use crate::vocabulary::Vocabulary;
use cogview_core::backend::{Availability, Backend, LoadRequest};
use cogview_core::lopar::Lopar;
use cogview_core::sampling::{ClusterLabels, ClusterSampler, TopKSampler};
use cogview_core::sr::{GridPredictor, SuperResolution};
use cogview_core::stage1::{CoglmGenerator, Stage1Layout, Stage1Settings, Style};
use cogview_core::{
    Compression, Error, GlobalGenerator, Image, ImageTokenizer, LocalSuperResolver, Result,
    RunContext, Sampler, Stage1Request, TextTokenizer, TextTokens, TokenGrid,
};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

type Loader<T> = Arc<dyn Fn() -> Result<Arc<T>> + Send + Sync>;

/// The `tracing` target of the warning about words outside the model's vocabulary (a program
/// that tells its user itself, like the `cogview` command, can filter it out).
pub const VOCABULARY_WARNING_TARGET: &str = "cogview::vocabulary";

static RELEASE_HOOK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Sets a function called each time a stage's weights are dropped (low-memory mode), for the
/// process's allocator to hand the memory back to the system (the `cogview` command calls glibc's
/// `malloc_trim`). Process-wide, like the allocator; the first call wins.
pub fn set_memory_release_hook(hook: fn()) {
    let _ = RELEASE_HOOK.set(hook);
}

/// A component that is either held for good or loaded on use (and dropped again in low-memory
/// mode).
pub struct Stage<T: ?Sized> {
    name: &'static str,
    slot: Mutex<Option<Arc<T>>>,
    loader: Option<Loader<T>>,
}

impl<T: ?Sized> Stage<T> {
    /// A component that stays loaded.
    pub fn loaded(name: &'static str, component: Arc<T>) -> Self {
        Stage {
            name,
            slot: Mutex::new(Some(component)),
            loader: None,
        }
    }

    /// A component loaded on first use by `loader`.
    pub fn lazy(
        name: &'static str,
        loader: impl Fn() -> Result<Arc<T>> + Send + Sync + 'static,
    ) -> Self {
        Stage {
            name,
            slot: Mutex::new(None),
            loader: Some(Arc::new(loader)),
        }
    }

    /// The component, loading it if needed.
    pub fn get(&self) -> Result<Arc<T>> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let loader = self
            .loader
            .as_ref()
            .ok_or_else(|| Error::backend(format!("{} has no loader", self.name)))?;
        let _span = tracing::info_span!("load", stage = self.name).entered();
        let c = loader()?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Drops the component if it can be loaded again.
    pub fn release(&self) {
        if self.loader.is_some() {
            let dropped = self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(c) = dropped {
                drop(c);
                if let Some(hook) = RELEASE_HOOK.get() {
                    hook();
                }
            }
        }
    }

    /// Whether the component is in memory.
    pub fn is_loaded(&self) -> bool {
        self.slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

/// A DSR or ItersR model behind a [`Stage`]: loads on first prediction and, in low-memory mode,
/// drops its weights when [`GridPredictor::release`] is called after its pass.
struct StagePredictor {
    stage: Stage<dyn GridPredictor>,
    release_after_pass: bool,
}

impl GridPredictor for StagePredictor {
    fn spec(&self) -> Result<cogview_core::sr::SrSpec> {
        self.stage.get()?.spec()
    }
    fn predict(&self, input: &cogview_core::sr::SrInput) -> Result<cogview_core::lm::Logits> {
        self.stage.get()?.predict(input)
    }
    fn release(&self) {
        if self.release_after_pass {
            self.stage.release();
        }
    }
}

/// The grid sizes a pipeline works at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Geometry {
    /// Stage-1 grid side (official 20).
    pub low: usize,
    /// Super-resolution grid side (official 60).
    pub high: usize,
    /// Pixels per token side (CogView2: 8).
    pub compression: Compression,
    /// The longest text (prompt + style template) every stage accepts.
    pub max_text_tokens: usize,
}

impl Geometry {
    /// Side of the final images in pixels (official 480).
    pub fn image_side(&self) -> usize {
        self.high * self.compression.factor()
    }
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            low: 20,
            high: 60,
            compression: Compression::X8,
            max_text_tokens: 95,
        }
    }
}

/// One generated image and the token grids it came from.
#[derive(Debug, Clone)]
pub struct GeneratedImage {
    /// Position in the run (0-based).
    pub index: usize,
    /// The image's own seed (the run's seed + index).
    pub seed: u64,
    /// The stage-1 grid.
    pub low_res: TokenGrid,
    /// `None` when the run stopped after stage 1.
    pub high_res: Option<TokenGrid>,
    /// The decoded image.
    pub image: Image,
    /// Set when the image was chosen among stage-1 candidates by the inverse-prompt score: how
    /// many were drawn, the image's score, and whether the same pipeline makes it again from
    /// `seed` (`coglm.rerank` above 1) or plain generation of `seed` does
    /// ([`Pipeline::generate_reranked`]).
    pub rerank: Option<RerankRecord>,
}

/// Called with a request's stage-1 grids before its super-resolution starts (e.g. to show a
/// preview).
pub type Stage1Hook<'a> = &'a (dyn Fn(&[TokenGrid]) + Sync);

/// One request of [`Pipeline::generate_many`].
#[derive(Clone, Copy)]
pub struct GenerationRequest<'a> {
    /// What to draw.
    pub prompt: &'a str,
    /// Images to make; image `i` uses seed `ctx.seed + i`.
    pub num_images: usize,
    /// Stop after stage 1 (as [`Pipeline::generate`]'s `only_first_stage`).
    pub only_first_stage: bool,
    /// The request's seed, progress callback and cancellation.
    pub ctx: &'a RunContext,
    /// Called with the request's stage-1 grids once they are drawn (`None`: not called).
    pub on_stage1: Option<Stage1Hook<'a>>,
}

impl std::fmt::Debug for GenerationRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationRequest")
            .field("prompt", &self.prompt)
            .field("num_images", &self.num_images)
            .field("only_first_stage", &self.only_first_stage)
            .field("ctx", &self.ctx)
            .field("on_stage1", &self.on_stage1.is_some())
            .finish()
    }
}

/// Text-to-image generation, stage by stage. A clone shares the components (and their loaded
/// weights) with the original; [`Pipeline::with_style`] makes one in another style.
#[derive(Clone)]
pub struct Pipeline {
    settings: Option<Settings>,
    style: Style,
    pub(crate) geometry: Geometry,
    pub(crate) low_memory: bool,
    text: Arc<dyn TextTokenizer>,
    pub(crate) generator: Arc<Stage<dyn GlobalGenerator>>,
    /// Stage 1 draws with this sampler instead of the generator's own (another style's
    /// temperature, see [`Pipeline::with_style`]).
    stage1_sampler: Option<Arc<dyn Sampler>>,
    /// The cluster table the samplers use (config-built pipelines), for restyled samplers.
    labels: Option<Arc<ClusterLabels>>,
    pub(crate) super_resolver: Option<Arc<Stage<dyn LocalSuperResolver>>>,
    /// The caption tokens (`None`: this pipeline cannot score or write captions).
    pub(crate) captions: Option<CaptionTokens>,
    /// The same super-resolution as `super_resolver`, typed, for stage-by-stage use (config-built
    /// pipelines only).
    sr_stages: Option<Arc<SuperResolution>>,
    pub(crate) image_tokenizer: Arc<Stage<dyn ImageTokenizer>>,
    /// The lazily loaded super-resolution models inside `super_resolver` (config-built pipelines).
    predictors: Vec<Arc<StagePredictor>>,
    /// The model's closed vocabulary, if it declares one.
    vocabulary: Option<Vocabulary>,
    /// Stage-1 candidates per image (`coglm.rerank`; 1: no reranking).
    rerank: usize,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("style", &self.style)
            .field("geometry", &self.geometry)
            .field("low_memory", &self.low_memory)
            .field("super_resolution", &self.super_resolver.is_some())
            .field("rerank", &self.rerank)
            .finish_non_exhaustive()
    }
}

/// Composes a pipeline from components (any implementation of the core traits).
#[derive(Default)]
pub struct PipelineBuilder {
    style: Style,
    geometry: Geometry,
    low_memory: bool,
    text: Option<Arc<dyn TextTokenizer>>,
    generator: Option<Stage<dyn GlobalGenerator>>,
    super_resolver: Option<Stage<dyn LocalSuperResolver>>,
    image_tokenizer: Option<Stage<dyn ImageTokenizer>>,
    captions: Option<CaptionTokens>,
    vocabulary: Option<Vocabulary>,
    rerank: Option<usize>,
}

/// The token ids captions use: the start token, an optional end token and the text pieces.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CaptionTokens {
    /// The token before a caption.
    pub start: u32,
    /// The token that ends a caption, if the model writes one.
    pub end: Option<u32>,
    /// Ids a caption may contain (the text tokenizer's pieces, specials excluded).
    pub text: std::ops::Range<u32>,
}

impl PipelineBuilder {
    /// Lets the pipeline score and write captions with these tokens.
    pub fn captions(mut self, c: CaptionTokens) -> Self {
        self.captions = Some(c);
        self
    }
    /// Draws `k` stage-1 candidates per image and keeps the one under which CogLM finds the
    /// prompt most likely (needs [`PipelineBuilder::captions`]; default 1: no reranking).
    pub fn rerank(mut self, k: usize) -> Self {
        self.rerank = Some(k);
        self
    }
    /// The style whose template the prompts get (default: `mainbody`).
    pub fn style(mut self, style: Style) -> Self {
        self.style = style;
        self
    }
    /// Declares the model's closed vocabulary: prompts with other words get a warning.
    pub fn vocabulary(mut self, v: Vocabulary) -> Self {
        self.vocabulary = Some(v);
        self
    }

    /// The grid sizes (default: the official 20 → 60, 8 pixels per token).
    pub fn geometry(mut self, geometry: Geometry) -> Self {
        self.geometry = geometry;
        self
    }
    /// Release each stage's component after it ran (lazy stages load again on the next run).
    pub fn low_memory(mut self, on: bool) -> Self {
        self.low_memory = on;
        self
    }
    /// The text tokenizer (required).
    pub fn text_tokenizer(mut self, t: Arc<dyn TextTokenizer>) -> Self {
        self.text = Some(t);
        self
    }
    /// The stage-1 generator, loaded (required, or [`PipelineBuilder::generator_stage`]).
    pub fn generator(mut self, g: Arc<dyn GlobalGenerator>) -> Self {
        self.generator = Some(Stage::loaded("coglm", g));
        self
    }
    /// The stage-1 generator as a stage (possibly lazily loaded).
    pub fn generator_stage(mut self, g: Stage<dyn GlobalGenerator>) -> Self {
        self.generator = Some(g);
        self
    }
    /// The super-resolver, loaded (optional: without one the pipeline stops after stage 1).
    pub fn super_resolver(mut self, s: Arc<dyn LocalSuperResolver>) -> Self {
        self.super_resolver = Some(Stage::loaded("super-resolution", s));
        self
    }
    /// The super-resolver as a stage (possibly lazily loaded).
    pub fn super_resolver_stage(mut self, s: Stage<dyn LocalSuperResolver>) -> Self {
        self.super_resolver = Some(s);
        self
    }
    /// The image tokenizer, loaded (required, or [`PipelineBuilder::image_tokenizer_stage`]).
    pub fn image_tokenizer(mut self, t: Arc<dyn ImageTokenizer>) -> Self {
        self.image_tokenizer = Some(Stage::loaded("image tokenizer", t));
        self
    }
    /// The image tokenizer as a stage (possibly lazily loaded).
    pub fn image_tokenizer_stage(mut self, t: Stage<dyn ImageTokenizer>) -> Self {
        self.image_tokenizer = Some(t);
        self
    }

    /// The pipeline; an error names the component that is missing.
    pub fn build(self) -> Result<Pipeline> {
        let need = |what: &str| {
            Error::invalid_input(
                "pipeline",
                format!("the builder has no {what}; add one before build()"),
            )
        };
        if self.geometry.low == 0
            || self.geometry.high == 0
            || !self.geometry.high.is_multiple_of(self.geometry.low)
        {
            return Err(Error::invalid_input(
                "geometry",
                format!(
                    "the super-resolution grid ({0}) must be a whole multiple of the stage-1 grid ({1})",
                    self.geometry.high, self.geometry.low
                ),
            ));
        }
        let rerank = crate::settings::check_rerank(self.rerank.unwrap_or(1))?;
        if rerank > 1 && self.captions.is_none() {
            return Err(Error::invalid_input(
                "rerank",
                "reranking scores the prompt as a caption; add the caption tokens (PipelineBuilder::captions) or rerank 1",
            ));
        }
        Ok(Pipeline {
            settings: None,
            rerank,
            style: self.style,
            geometry: self.geometry,
            low_memory: self.low_memory,
            text: self.text.ok_or_else(|| need("text tokenizer"))?,
            generator: Arc::new(self.generator.ok_or_else(|| need("generator"))?),
            stage1_sampler: None,
            labels: None,
            super_resolver: self.super_resolver.map(Arc::new),
            captions: self.captions,
            sr_stages: None,
            image_tokenizer: Arc::new(
                self.image_tokenizer
                    .ok_or_else(|| need("image tokenizer"))?,
            ),
            predictors: Vec::new(),
            vocabulary: self.vocabulary,
        })
    }
}

/// The backend a stage's placement names: the built-in candle backend, a plugin found by name,
/// or the plugin library the stage names; checked to run on the stage's device.
pub fn stage_backend(
    p: &crate::settings::StagePlacement,
    section: &str,
) -> Result<Arc<dyn Backend>> {
    let key = if p.plugin.is_some() {
        "plugin"
    } else {
        "backend"
    };
    resolve_backend(p).map_err(|e| match e {
        // Errors about the stage's own files and settings keep their type.
        Error::Io { .. } | Error::Config { .. } => e,
        e => Error::config(
            "pipeline",
            format!("{section}.{key}"),
            cogview_core::error::with_causes(&e),
        ),
    })
}

fn resolve_backend(p: &crate::settings::StagePlacement) -> Result<Arc<dyn Backend>> {
    let backend: Arc<dyn Backend> = match (&p.plugin, p.backend.as_str()) {
        (Some(path), name) => {
            let plugin = cogview_plugin_host::load_path(path)?;
            if name != "plugin" && name != plugin.name() {
                return Err(Error::plugin(
                    path.display().to_string(),
                    format!(
                        "is the '{}' backend, but the stage asks for backend = \"{name}\"",
                        plugin.name()
                    ),
                ));
            }
            return plugin.backend_for(p.device);
        }
        (None, "candle") => Arc::new(cogview_candle::CandleBackend),
        (None, name) => return cogview_plugin_host::find(name)?.backend_for(p.device),
    };
    match backend.availability(p.device) {
        Availability::Usable { .. } => Ok(backend),
        Availability::Unusable { reason } => Err(Error::plugin(
            backend.name().to_string(),
            format!("cannot run on {} here: {reason}", p.device),
        )),
    }
}

fn load_request(p: &crate::settings::StagePlacement) -> LoadRequest {
    let mut r = LoadRequest::new(p.device, p.dtype);
    r.options_toml = p.options.clone();
    r
}

/// Reads the stage-1 layout from CogLM's `model_config.json` (cogview keys `image_grid`,
/// `start_of_image_position`, `max_text_tokens`; the official values when absent).
fn stage1_layout(path: &std::path::Path) -> Result<Stage1Layout> {
    let cfg = cogview_model::inspect::model_config(path)?;
    let d = Stage1Layout::default();
    let grid = cfg.opt_usize("image_grid")?.unwrap_or(d.grid_height);
    Ok(Stage1Layout {
        grid_height: grid,
        grid_width: grid,
        start_of_image_position: cfg
            .opt_usize("start_of_image_position")?
            .unwrap_or(d.start_of_image_position),
        max_text_tokens: cfg
            .opt_usize("max_text_tokens")?
            .unwrap_or(d.max_text_tokens),
    })
}

fn mismatch(what: String) -> Error {
    Error::config(
        "pipeline",
        "(models)",
        format!("{what}: these files do not belong to one model"),
    )
}

impl Pipeline {
    /// A builder, to compose a pipeline from components.
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::default()
    }

    /// Builds the pipeline the settings describe with the built-in candle backend. Every model's
    /// configuration is read and checked against the others first (vocabularies, grids,
    /// `<start_of_image>`); then the weights are loaded, all at once, or in low-memory mode each
    /// when its stage runs.
    pub fn from_settings(settings: Settings) -> Result<Self> {
        let _span = tracing::info_span!("build_pipeline").entered();
        let s = &settings;
        let (coglm_cfg, _) = cogview_model::inspect::coglm_config(&s.coglm.placement.path)?;
        let layout = stage1_layout(&s.coglm.placement.path)?;
        layout.check_fits(coglm_cfg.max_sequence_length)?;
        let image_vocab = coglm_cfg.image_vocab_size;

        // The text tokenizer: icetk's layout puts text pieces after the image codes.
        let text = {
            let path = &s.text_tokenizer;
            let bytes = cogview_core::limits::read_file(path)?;
            cogview_text::IceTextTokenizer::from_bytes(
                &bytes,
                &path.display().to_string(),
                image_vocab as u32,
                &cogview_text::SPECIAL_TOKENS,
            )?
        };
        let soi = text.piece_id("<start_of_image>");
        if soi != Some(coglm_cfg.start_of_image_id) {
            return Err(mismatch(format!(
                "the text tokenizer {} gives <start_of_image> the id {soi:?} but CogLM {} expects {}",
                s.text_tokenizer.display(),
                s.coglm.placement.path.display(),
                coglm_cfg.start_of_image_id
            )));
        }
        if text.offset() as usize + text.len() > coglm_cfg.vocab_size {
            return Err(mismatch(format!(
                "the text tokenizer's ids reach {} but CogLM's vocabulary has {}",
                text.offset() as usize + text.len(),
                coglm_cfg.vocab_size
            )));
        }

        let (vq_cfg, _) = cogview_model::inspect::vq_config(&s.image_tokenizer.path)?;
        if vq_cfg.n_embed != image_vocab {
            return Err(mismatch(format!(
                "the image tokenizer has {} codes but CogLM draws {image_vocab}",
                vq_cfg.n_embed
            )));
        }

        let labels = Arc::new(match &s.coglm.cluster_labels {
            Some(p) => ClusterLabels::from_npy_file(p)?,
            None => ClusterLabels::official(),
        });
        let uses_clusters =
            s.coglm.sampler == crate::config::SamplerKind::Cluster || s.dsr.is_some();
        if uses_clusters && labels.len() != image_vocab {
            return Err(mismatch(format!(
                "the cluster table {} labels {} codes but the models have {image_vocab} image codes",
                s.coglm
                    .cluster_labels
                    .as_ref()
                    .map_or("(official, built in)".into(), |p| p.display().to_string()),
                labels.len()
            )));
        }

        // Without super-resolution models, first-stage images are still enlarged to the final
        // size: CogView2's super-resolution triples each side (20 → 60 tokens, 160 → 480 px).
        let mut geometry = Geometry {
            low: layout.grid_height,
            high: 3 * layout.grid_height,
            compression: Compression::X8,
            max_text_tokens: layout.max_text_tokens,
        };

        // Super-resolution: check both models' sizes before loading anything.
        let sr_parts = match (&s.dsr, &s.itersr) {
            (Some(d), Some(i)) => {
                let (dc, _) = cogview_model::inspect::sr_config(&d.placement.path)?;
                let (ic, _) = cogview_model::inspect::sr_config(&i.placement.path)?;
                for (c, name, path, want) in [
                    (&dc, "DSR", &d.placement.path, cogview_model::SrKind::Dsr),
                    (
                        &ic,
                        "ItersR",
                        &i.placement.path,
                        cogview_model::SrKind::Itersr,
                    ),
                ] {
                    if c.kind != want {
                        return Err(mismatch(format!(
                            "{} holds a {:?} model where {name} was expected",
                            path.display(),
                            c.kind
                        )));
                    }
                    if c.backbone.image_vocab_size != image_vocab
                        || c.backbone.start_of_image_id != coglm_cfg.start_of_image_id
                    {
                        return Err(mismatch(format!(
                            "{name} ({}) has {} image codes and <start_of_image> {} but CogLM has {image_vocab} and {}",
                            path.display(),
                            c.backbone.image_vocab_size,
                            c.backbone.start_of_image_id,
                            coglm_cfg.start_of_image_id
                        )));
                    }
                }
                if dc.low != layout.grid_height || dc.high != ic.high {
                    return Err(mismatch(format!(
                        "DSR maps {0}x{0} to {1}x{1} and ItersR refines {2}x{2}, but CogLM writes {3}x{3}",
                        dc.low, dc.high, ic.high, layout.grid_height
                    )));
                }
                geometry.high = dc.high;
                geometry.max_text_tokens = geometry.max_text_tokens.min(dc.text_slots - 1);
                Some((d.clone(), i.clone()))
            }
            _ => None,
        };

        let low_memory = s.low_memory;
        // Stage 1.
        let c = s.coglm.clone();
        let sampler = stage1_sampler(&c, &labels);
        let stage1 = Stage1Settings {
            layout,
            text_bias: c.text_bias,
            max_batch: c.batch_size,
            guidance: c.guidance,
        };
        let coglm_backend = stage_backend(&c.placement, "coglm")?;
        let generator = Stage::lazy("coglm", move || {
            let model = coglm_backend.load_lm(&c.placement.path, &load_request(&c.placement))?;
            Ok(
                Arc::new(CoglmGenerator::new(model, sampler.clone(), stage1)?)
                    as Arc<dyn GlobalGenerator>,
            )
        });

        let mut predictors = Vec::new();
        let mut sr_stages = None;
        let sr_parts = match sr_parts {
            Some((d, i)) => {
                let db = stage_backend(&d.placement, "dsr")?;
                let ib = stage_backend(&i.placement, "itersr")?;
                Some((d, i, db, ib))
            }
            None => None,
        };
        let super_resolver = sr_parts.map(|(d, i, dsr_backend, itersr_backend)| {
            let mut predictor = |p: crate::settings::StagePlacement,
                                 backend: Arc<dyn Backend>,
                                 name: &'static str| {
                let sp = Arc::new(StagePredictor {
                    stage: Stage::lazy(name, move || {
                        backend.load_grid_predictor(&p.path, &load_request(&p))
                    }),
                    release_after_pass: low_memory,
                });
                predictors.push(sp.clone());
                sp as Arc<dyn GridPredictor>
            };
            let dsr = predictor(d.placement.clone(), dsr_backend, "dsr");
            let itersr = predictor(i.placement.clone(), itersr_backend, "itersr");
            let mut sr =
                SuperResolution::official(dsr, itersr, labels.clone(), coglm_cfg.start_of_image_id);
            sr.dsr_sampler = dsr_sampler(&d, &labels);
            sr.itersr_temperature = i.temperature;
            sr.lopar = Lopar {
                top_k: i.top_k.clone(),
                ..Lopar::default()
            };
            sr.high_side = geometry.high;
            let sr = Arc::new(sr);
            sr_stages = Some(sr.clone());
            Arc::new(Stage::loaded(
                "super-resolution",
                sr as Arc<dyn LocalSuperResolver>,
            ))
        });

        let vq = s.image_tokenizer.clone();
        let vq_backend = stage_backend(&vq, "image_tokenizer")?;
        let image_tokenizer = Arc::new(Stage::lazy("image tokenizer", move || {
            vq_backend.load_image_tokenizer(&vq.path, &load_request(&vq))
        }));

        let captions = {
            let id = |name: &str, key: &str| {
                text.piece_id(name).ok_or_else(|| {
                    Error::config(
                        "pipeline",
                        key,
                        format!(
                            "the text tokenizer {} has no token '{name}'; name one of its special tokens, e.g. \"<start_of_english>\"",
                            s.text_tokenizer.display()
                        ),
                    )
                })
            };
            let specials = cogview_text::SPECIAL_TOKENS.len() as u32;
            CaptionTokens {
                start: id(&s.coglm.caption_start, "coglm.caption_start")?,
                end: match &s.coglm.caption_end {
                    Some(e) => Some(id(e, "coglm.caption_end")?),
                    None => None,
                },
                text: text.offset()..text.offset() + (text.len() as u32).saturating_sub(specials),
            }
        };
        let vocabulary = match &s.vocabulary {
            Some(p) => Some(Vocabulary::load(p)?),
            None => None,
        };
        let pipeline = Pipeline {
            vocabulary,
            captions: Some(captions),
            style: s.style,
            geometry,
            low_memory,
            text: Arc::new(text),
            generator: Arc::new(generator),
            stage1_sampler: None,
            labels: Some(labels),
            super_resolver,
            sr_stages,
            image_tokenizer,
            predictors,
            rerank: crate::settings::check_rerank(s.coglm.rerank)?,
            settings: Some(settings),
        };
        if !low_memory {
            pipeline.load_all()?;
        }
        Ok(pipeline)
    }

    /// Loads every component now (the default outside low-memory mode), so that bad weights are
    /// reported before a run starts.
    pub fn load_all(&self) -> Result<()> {
        self.generator.get()?;
        if let Some(sr) = &self.super_resolver {
            sr.get()?;
        }
        self.image_tokenizer.get()?;
        for p in &self.predictors {
            p.stage.get()?;
        }
        Ok(())
    }

    /// The components whose weights are in memory now: `coglm`, `dsr`, `itersr`,
    /// `image tokenizer` (for low-memory checks and diagnostics).
    pub fn loaded_components(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.generator.is_loaded() {
            v.push(self.generator.name);
        }
        for p in &self.predictors {
            if p.stage.is_loaded() {
                v.push(p.stage.name);
            }
        }
        if self.image_tokenizer.is_loaded() {
            v.push(self.image_tokenizer.name);
        }
        v
    }

    /// The settings it was built from (`None` for pipelines composed in Rust).
    pub fn settings(&self) -> Option<&Settings> {
        self.settings.as_ref()
    }
    /// The style of its prompt template.
    pub fn style(&self) -> Style {
        self.style
    }

    /// The same pipeline in another style, sharing every component and its loaded weights (a
    /// server serves every style from one set of models). The prompt template changes, and for
    /// a pipeline built from settings so does the sampling its settings took from the style's
    /// official recipe (see [`Settings::with_style`]; values set in the pipeline file stay), so
    /// it makes what a pipeline built in that style makes, image for image, and its images'
    /// records name the style and the sampling used. A pipeline composed in Rust has no recipe:
    /// only its template changes.
    pub fn with_style(&self, style: Style) -> Pipeline {
        let mut p = self.clone();
        p.style = style;
        let (Some(settings), Some(labels)) = (&self.settings, &self.labels) else {
            return p;
        };
        let restyled = settings.with_style(style);
        if restyled.coglm != settings.coglm {
            p.stage1_sampler = Some(stage1_sampler(&restyled.coglm, labels));
        }
        if let (Some(sr), Some(d)) = (&self.sr_stages, &restyled.dsr) {
            if restyled.dsr != settings.dsr {
                let mut sr = SuperResolution::clone(sr);
                sr.dsr_sampler = dsr_sampler(d, labels);
                let sr = Arc::new(sr);
                p.super_resolver = Some(Arc::new(Stage::loaded(
                    "super-resolution",
                    sr.clone() as Arc<dyn LocalSuperResolver>,
                )));
                p.sr_stages = Some(sr);
            }
        }
        p.settings = Some(restyled);
        p
    }

    /// The stage-1 generator (loaded if needed), drawing with this pipeline's sampler.
    pub(crate) fn stage1(&self) -> Result<Arc<dyn GlobalGenerator>> {
        let g = self.generator.get()?;
        match &self.stage1_sampler {
            Some(sampler) => g.with_sampler(sampler.clone()),
            None => Ok(g),
        }
    }
    /// Stage-1 candidates drawn per image by [`Pipeline::generate`] (`coglm.rerank`; 1: no
    /// reranking).
    pub fn rerank(&self) -> usize {
        self.rerank
    }

    /// The same pipeline drawing `k` stage-1 candidates per image (1: no reranking), sharing
    /// every component; `k` outside 1..=64, or above 1 without caption tokens, is refused.
    pub fn with_rerank(&self, k: usize) -> Result<Pipeline> {
        let k = crate::settings::check_rerank(k)?;
        if k > 1 {
            self.caption_tokens()?;
        }
        let mut p = self.clone();
        p.rerank = k;
        if let Some(s) = &mut p.settings {
            s.coglm.rerank = k;
        }
        Ok(p)
    }

    /// Its grid sizes.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }
    /// DSR and ItersR as separate steps (`direct`, then `refine`), for tools that show each
    /// stage's output; `None` for pipelines composed in Rust or without super-resolution. With
    /// the seeds of [`cogview_core::sr::stage_seed`] they reproduce [`Pipeline::generate`].
    pub fn super_resolution_stages(&self) -> Option<&SuperResolution> {
        self.sr_stages.as_deref()
    }

    /// Whether it has super-resolution (else it stops after stage 1).
    pub fn has_super_resolution(&self) -> bool {
        self.super_resolver.is_some()
    }
    /// The text tokenizer.
    pub fn text_tokenizer(&self) -> &Arc<dyn TextTokenizer> {
        &self.text
    }
    /// The image tokenizer (loaded if needed).
    pub fn image_tokenizer(&self) -> Result<Arc<dyn ImageTokenizer>> {
        self.image_tokenizer.get()
    }

    /// The model's closed vocabulary, when its pipeline file declares one.
    pub fn vocabulary(&self) -> Option<&Vocabulary> {
        self.vocabulary.as_ref()
    }

    /// The words of `prompt` outside the model's declared vocabulary, each once, in order
    /// (none when the model declares no vocabulary). The image is still made; the words just
    /// were never in the model's training captions.
    pub fn unknown_words(&self, prompt: &str) -> Vec<String> {
        self.vocabulary
            .as_ref()
            .map_or_else(Vec::new, |v| v.unknown_words(prompt))
    }

    /// The warning for `prompt` when it has words outside the model's declared vocabulary: names
    /// them, says what the model knows and how to load other weights.
    pub fn vocabulary_warning(&self, prompt: &str) -> Option<String> {
        self.vocabulary
            .as_ref()?
            .warning(&self.unknown_words(prompt))
    }

    /// Logs [`Pipeline::vocabulary_warning`] (target [`VOCABULARY_WARNING_TARGET`]).
    pub(crate) fn warn_unknown_words(&self, prompt: &str) {
        if let Some(w) = self.vocabulary_warning(prompt) {
            tracing::warn!(target: VOCABULARY_WARNING_TARGET, unknown = ?self.unknown_words(prompt), "{w}");
        }
    }

    /// The query text of a prompt: the style template applied and tokenized, checked against
    /// every stage's text limit.
    pub fn encode_prompt(&self, prompt: &str) -> Result<TextTokens> {
        if prompt.trim().is_empty() {
            return Err(Error::invalid_input(
                "prompt",
                "the prompt is empty; describe the image to generate",
            ));
        }
        let text = self.text.encode(&self.style.query_text(prompt))?;
        if text.is_empty() {
            return Err(Error::invalid_input(
                "prompt",
                "the prompt has no tokens the text tokenizer knows",
            ));
        }
        if text.len() > self.geometry.max_text_tokens {
            return Err(Error::TextTooLong {
                tokens: text.len(),
                max: self.geometry.max_text_tokens,
                what: format!(
                    "this pipeline (prompt plus the '{}' style template; CogLM takes 109 and DSR 95 tokens)",
                    self.style.name()
                ),
            });
        }
        Ok(text)
    }

    /// Generates `num_images` images for `prompt`; image `i` uses seed `ctx.seed + i`. With
    /// `only_first_stage`, the 20×20 grids are decoded at 160 px and enlarged ×3 by repeating
    /// pixels, as the official `--only-first-stage` does. In a pipeline that reranks
    /// ([`Pipeline::rerank`] `k` above 1) image `i` is the best of `k` stage-1 candidates
    /// ([`RunContext::candidate_seeds`] of its seed) by the inverse-prompt score; it keeps seed
    /// `ctx.seed + i`, and the same pipeline makes it again from that seed alone.
    pub fn generate(
        &self,
        prompt: &str,
        num_images: usize,
        only_first_stage: bool,
        ctx: &RunContext,
    ) -> Result<Vec<GeneratedImage>> {
        if num_images == 0 {
            return Err(Error::invalid_input("num_images", "must be at least 1"));
        }
        let text = self.encode_prompt(prompt)?;
        self.warn_unknown_words(prompt);
        let seeds = ctx.image_seeds(num_images);
        let selection = {
            let _span = tracing::info_span!("stage1", images = num_images).entered();
            let generator = self.stage1()?;
            let low = generator.generate(&text, &stage1_seeds(&seeds, self.rerank), ctx)?;
            let selection = self.select(generator.as_ref(), prompt, low, seeds, ctx)?;
            drop(generator);
            if self.low_memory {
                self.generator.release();
            }
            selection
        };
        let images = self.after_stage1(
            &text,
            selection.low,
            &selection.seeds,
            only_first_stage,
            ctx,
        )?;
        Ok(attach_scores(images, selection.records))
    }

    /// The stage-1 grids of `image_seeds` that go on: all of them, or in a pipeline that
    /// reranks, each image's best candidate (`low` holds every candidate).
    fn select(
        &self,
        generator: &dyn GlobalGenerator,
        prompt: &str,
        low: Vec<TokenGrid>,
        image_seeds: Vec<u64>,
        ctx: &RunContext,
    ) -> Result<Selection> {
        if self.rerank > 1 {
            self.best_per_image(generator, prompt, low, &image_seeds, self.rerank, ctx)
        } else {
            Ok(Selection::all(low, image_seeds))
        }
    }

    /// Generates the images of several requests (a server's concurrent requests), their stage 1
    /// together: CogLM draws the rows of every request in shared batches (rows whose texts have
    /// one length run in one batch, up to the pipeline's batch size). Each request's images are
    /// those [`Pipeline::generate`] makes for it alone, pixel for pixel. `on_done(i, result)` is
    /// called for request `i` as soon as its images are decoded (stages 2-3 and the decoder run
    /// per request, in order); requests with bad input are answered first. A request cancelled
    /// through its context stops at the next step without stopping the others.
    pub fn generate_many(
        &self,
        requests: &[GenerationRequest<'_>],
        mut on_done: impl FnMut(usize, Result<Vec<GeneratedImage>>),
    ) {
        let mut prepared = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            let text = if r.num_images == 0 {
                Err(Error::invalid_input("num_images", "must be at least 1"))
            } else if !r.only_first_stage && self.super_resolver.is_none() {
                Err(Error::invalid_input(
                    "pipeline",
                    "this pipeline has no super-resolution stages; ask for the first stage only",
                ))
            } else {
                self.encode_prompt(r.prompt)
            };
            match text {
                Ok(text) => {
                    self.warn_unknown_words(r.prompt);
                    prepared.push((i, text, r.ctx.image_seeds(r.num_images)));
                }
                Err(e) => on_done(i, Err(e)),
            }
        }
        if prepared.is_empty() {
            return;
        }
        let lows = {
            let images: usize = prepared.iter().map(|p| p.2.len()).sum();
            let _span = tracing::info_span!("stage1", images, requests = prepared.len()).entered();
            let generator = match self.stage1() {
                Ok(g) => g,
                Err(e) => {
                    let message = cogview_core::error::with_causes(&e);
                    for (i, _, _) in &prepared {
                        on_done(*i, Err(Error::backend(message.clone())));
                    }
                    return;
                }
            };
            let draws: Vec<Vec<u64>> = prepared
                .iter()
                .map(|(_, _, seeds)| stage1_seeds(seeds, self.rerank))
                .collect();
            let stage1: Vec<Stage1Request> = prepared
                .iter()
                .zip(&draws)
                .map(|((i, text, _), seeds)| Stage1Request {
                    text,
                    seeds,
                    ctx: requests[*i].ctx,
                })
                .collect();
            // With reranking, each request's candidates are scored while CogLM is loaded.
            let lows: Vec<Result<Selection>> = generator
                .generate_many(&stage1)
                .into_iter()
                .zip(&prepared)
                .map(|(low, (i, _, seeds))| {
                    let r = &requests[*i];
                    low.and_then(|low| {
                        self.select(generator.as_ref(), r.prompt, low, seeds.clone(), r.ctx)
                    })
                })
                .collect();
            drop(generator);
            if self.low_memory {
                self.generator.release();
            }
            lows
        };
        for ((i, text, _), sel) in prepared.into_iter().zip(lows) {
            let r = &requests[i];
            let result = sel.and_then(|sel| {
                if let Some(hook) = r.on_stage1 {
                    hook(&sel.low);
                }
                let images =
                    self.after_stage1(&text, sel.low, &sel.seeds, r.only_first_stage, r.ctx)?;
                Ok(attach_scores(images, sel.records))
            });
            on_done(i, result);
        }
    }

    /// Stages 2-3 and the decoder after stage 1 (or the decoder alone for the first stage only).
    fn after_stage1(
        &self,
        text: &TextTokens,
        low: Vec<TokenGrid>,
        seeds: &[u64],
        only_first_stage: bool,
        ctx: &RunContext,
    ) -> Result<Vec<GeneratedImage>> {
        if only_first_stage || self.super_resolver.is_none() {
            if !only_first_stage {
                return Err(Error::invalid_input(
                    "pipeline",
                    "this pipeline has no super-resolution stages; ask for the first stage only",
                ));
            }
            return self.finish(seeds, low, None, ctx);
        }
        self.run_super_resolution(text, low, seeds, ctx)
    }

    /// Runs only stages 2 and 3 (and the decoder) on stage-1 grids, with the text of `prompt`.
    pub fn super_resolve(
        &self,
        prompt: &str,
        low_res: Vec<TokenGrid>,
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<GeneratedImage>> {
        if self.super_resolver.is_none() {
            return Err(Error::invalid_input(
                "pipeline",
                "this pipeline has no super-resolution stages",
            ));
        }
        for g in &low_res {
            if g.height != self.geometry.low || g.width != self.geometry.low {
                return Err(Error::invalid_input(
                    "grid",
                    format!(
                        "super-resolution starts from {0}x{0} grids, not {1}x{2}",
                        self.geometry.low, g.height, g.width
                    ),
                ));
            }
        }
        let text = self.encode_prompt(prompt)?;
        self.run_super_resolution(&text, low_res, seeds, ctx)
    }

    pub(crate) fn run_super_resolution(
        &self,
        text: &TextTokens,
        low: Vec<TokenGrid>,
        seeds: &[u64],
        ctx: &RunContext,
    ) -> Result<Vec<GeneratedImage>> {
        let stage = self
            .super_resolver
            .as_ref()
            .ok_or_else(|| Error::invalid_input("pipeline", "no super-resolution stages"))?;
        let high = {
            let _span = tracing::info_span!("super_resolution", images = low.len()).entered();
            let sr = stage.get()?;
            let high = sr.super_resolve(text, &low, seeds, ctx)?;
            if self.low_memory {
                stage.release();
            }
            high
        };
        self.finish(seeds, low, Some(high), ctx)
    }

    /// Decodes the final grids into images.
    pub(crate) fn finish(
        &self,
        seeds: &[u64],
        low: Vec<TokenGrid>,
        high: Option<Vec<TokenGrid>>,
        ctx: &RunContext,
    ) -> Result<Vec<GeneratedImage>> {
        let _span = tracing::info_span!("decode", images = low.len()).entered();
        let vq = self.image_tokenizer.get()?;
        let c = self.geometry.compression;
        let mut out = Vec::with_capacity(low.len());
        let highs: Vec<Option<TokenGrid>> = match high {
            Some(h) => h.into_iter().map(Some).collect(),
            None => vec![None; low.len()],
        };
        for (i, ((low, high), &seed)) in low.into_iter().zip(highs).zip(seeds).enumerate() {
            ctx.check_cancelled()?;
            let image = match &high {
                Some(h) => vq.decode(h, c)?,
                None => cogview_image::upscale_nearest(
                    &vq.decode(&low, c)?,
                    self.geometry.high / self.geometry.low,
                )?,
            };
            ctx.report("decode", i + 1, seeds.len());
            out.push(GeneratedImage {
                index: i,
                seed,
                low_res: low,
                high_res: high,
                image,
                rerank: None,
            });
        }
        drop(vq);
        if self.low_memory {
            self.image_tokenizer.release();
        }
        Ok(out)
    }

    /// Encodes an image into a stage-1 grid: resized and centre-cropped to the stage-1 size
    /// (160 px officially), as icetk does.
    pub fn encode_image(&self, image: &Image) -> Result<TokenGrid> {
        let side = self.geometry.low * self.geometry.compression.factor();
        let img = cogview_image::resize_center_crop(image, side)?;
        self.image_tokenizer
            .get()?
            .encode(&img, self.geometry.compression)
    }

    /// Files whose contents decide the output, by role (for the records in PNGs).
    pub fn weight_files(&self) -> Result<Vec<(String, PathBuf)>> {
        let Some(s) = &self.settings else {
            return Ok(Vec::new());
        };
        let mut out = vec![("text_tokenizer".to_string(), s.text_tokenizer.clone())];
        for f in cogview_model::inspect::vq_config(&s.image_tokenizer.path)?.1 {
            out.push(("image_tokenizer".into(), f));
        }
        for f in cogview_model::inspect::coglm_config(&s.coglm.placement.path)?.1 {
            out.push(("coglm".into(), f));
        }
        if let Some(p) = &s.coglm.cluster_labels {
            out.push(("cluster_labels".into(), p.clone()));
        }
        if let Some(d) = &s.dsr {
            for f in cogview_model::inspect::sr_config(&d.placement.path)?.1 {
                out.push(("dsr".into(), f));
            }
        }
        if let Some(i) = &s.itersr {
            for f in cogview_model::inspect::sr_config(&i.placement.path)?.1 {
                out.push(("itersr".into(), f));
            }
        }
        Ok(out)
    }
}

/// Stage 1's sampler as the settings describe it.
fn stage1_sampler(
    c: &crate::settings::CoglmSettings,
    labels: &Arc<ClusterLabels>,
) -> Arc<dyn Sampler> {
    match c.sampler {
        crate::config::SamplerKind::Cluster => Arc::new(ClusterSampler {
            labels: labels.clone(),
            temperature: c.temperature,
            top_k_clusters: c.top_k_clusters,
            inner_temperature: c.inner_temperature,
        }),
        crate::config::SamplerKind::TopK => Arc::new(TopKSampler {
            temperature: c.temperature,
            top_k: c.top_k,
        }),
    }
}

/// DSR's sampler as the settings describe it.
fn dsr_sampler(d: &crate::settings::DsrSettings, labels: &Arc<ClusterLabels>) -> Arc<dyn Sampler> {
    Arc::new(ClusterSampler {
        labels: labels.clone(),
        temperature: d.temperature,
        top_k_clusters: d.top_k_clusters,
        inner_temperature: d.inner_temperature,
    })
}

/// Numbers the images in their kept order and records their scores.
pub(crate) fn attach_scores(
    mut images: Vec<GeneratedImage>,
    records: Vec<Option<RerankRecord>>,
) -> Vec<GeneratedImage> {
    for (k, (img, record)) in images.iter_mut().zip(records).enumerate() {
        img.index = k;
        img.rerank = record;
    }
    images
}
