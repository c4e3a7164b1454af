//! A fixture plugin for the host's tests: it loads without reading any file, and its models
//! panic inside calls, with a string payload (CogLM `forward`, DSR/ItersR `predict`) or a
//! non-string one (image `encode`); `decode` works and paints every pixel with its token id.
//! A load whose path contains `panic-at-load` panics inside `load`.

use cogview_core::backend::{Availability, Backend, LoadRequest, ModelKind};
use cogview_core::lm::{AutoregressiveLm, LmInput, LmSession, LmSpec, Logits};
use cogview_core::sr::{GridPredictor, SrInput, SrKind, SrSpec};
use cogview_core::{Compression, Device, Image, ImageTokenizer, Result, TokenGrid};
use cogview_plugin_abi::export::PluginDefinition;
use std::path::Path;
use std::sync::Arc;

struct Panicking;

fn maybe_panic_at_load(path: &Path) {
    if path.to_string_lossy().contains("panic-at-load") {
        panic!("fixture panic in load");
    }
}

impl Backend for Panicking {
    fn name(&self) -> &str {
        "fixture-panicking"
    }
    fn describe(&self) -> String {
        "a test fixture whose models panic".into()
    }
    fn availability(&self, device: Device) -> Availability {
        match device {
            Device::Cpu => Availability::Usable { score: 1 },
            Device::Cuda(_) => Availability::Unusable {
                reason: "the fixture runs on the CPU only".into(),
            },
        }
    }
    fn supports(&self, _kind: ModelKind) -> bool {
        true
    }
    fn load_lm(&self, path: &Path, request: &LoadRequest) -> Result<Arc<dyn AutoregressiveLm>> {
        maybe_panic_at_load(path);
        tracing::info!(path = %path.display(), "fixture loads a CogLM");
        request.report(1, 1);
        request.check_cancelled()?;
        Ok(Arc::new(Lm))
    }
    fn load_grid_predictor(&self, path: &Path, _: &LoadRequest) -> Result<Arc<dyn GridPredictor>> {
        maybe_panic_at_load(path);
        Ok(Arc::new(Grid))
    }
    fn load_image_tokenizer(
        &self,
        path: &Path,
        _: &LoadRequest,
    ) -> Result<Arc<dyn ImageTokenizer>> {
        maybe_panic_at_load(path);
        Ok(Arc::new(Tokenizer))
    }
}

struct Lm;
impl AutoregressiveLm for Lm {
    fn spec(&self) -> LmSpec {
        LmSpec {
            vocab_size: 16,
            max_positions: 8,
            image_vocab_size: 8,
            start_of_image_id: 9,
        }
    }
    fn new_session(&self, batch: usize, capacity: usize) -> Result<Box<dyn LmSession + '_>> {
        Ok(Box::new(Session { batch, capacity }))
    }
}

struct Session {
    batch: usize,
    capacity: usize,
}
impl LmSession for Session {
    fn batch(&self) -> usize {
        self.batch
    }
    fn cached_len(&self) -> usize {
        0
    }
    fn capacity(&self) -> usize {
        self.capacity
    }
    fn forward(&mut self, _input: &LmInput) -> Result<Logits> {
        panic!("fixture panic in forward");
    }
}

struct Grid;
impl GridPredictor for Grid {
    /// A 1×1 ItersR with one text slot.
    fn spec(&self) -> Result<SrSpec> {
        Ok(SrSpec {
            kind: SrKind::Itersr,
            text_slots: 1,
            low: 0,
            high: 1,
            kernel_size: 1,
            kernel_size2: 1,
            vocab_size: 16,
            image_vocab_size: 8,
            max_positions: 8,
            start_of_image_id: 9,
        })
    }
    fn predict(&self, _input: &SrInput) -> Result<Logits> {
        panic!("fixture panic in predict");
    }
}

struct Tokenizer;
impl ImageTokenizer for Tokenizer {
    fn encode(&self, _image: &Image, _c: Compression) -> Result<TokenGrid> {
        std::panic::panic_any(42u32);
    }
    fn decode(&self, grid: &TokenGrid, c: Compression) -> Result<Image> {
        let f = c.factor();
        let (w, h) = (grid.width * f, grid.height * f);
        let mut px = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let id = grid.get(y / f, x / f) as u8;
                px.extend_from_slice(&[id, id, id]);
            }
        }
        Image::new(w, h, px)
    }
}

fn make_backend() -> Box<dyn Backend> {
    Box::new(Panicking)
}

cogview_plugin_abi::export_plugin!(PluginDefinition {
    name: "fixture-panicking",
    version: "0.0.0",
    build_info: "test fixture",
    make_backend,
    set_threads: None,
    forward_tracing: true,
});
