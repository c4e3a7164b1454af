//! What each fuzz target runs, one function per parser, so that the regression tests in the
//! normal test suite and the fuzz targets call the same code.

use std::path::Path;

/// A torch.save zip (and its pickle) from bytes; every tensor read, strided views materialised.
pub fn torch_or_safetensors(data: &[u8]) {
    if let Ok(c) = cogview_checkpoint::Checkpoint::from_bytes(data, "fuzz.pt", None) {
        let names: Vec<String> = c.names().map(str::to_string).collect();
        for n in names {
            let _ = c.info(&n);
            let _ = c.bytes(&n);
            let _ = c.to_f32(&n);
        }
        let _ = c.check(&[("w".to_string(), vec![2, 3])], |_| false);
    }
}

/// The pickle interpreter alone.
pub fn pickle(data: &[u8]) {
    if let Ok(u) = cogview_checkpoint::pickle::unpickle(data) {
        let _ = u.dict(&u.root);
        let _ = u.get(&u.root, "module");
    }
}

/// A SAT folder's `model_config.json` and checkpoint: the input is the JSON, a NUL byte, then
/// the checkpoint's bytes.
pub fn sat_folder(data: &[u8]) {
    let (json, ckpt) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(json) else {
        return;
    };
    let Ok(cfg) = cogview_checkpoint::ModelConfig::parse(text, Path::new("model_config.json"))
    else {
        return;
    };
    let coglm = cogview_model::CoglmConfig::from_model_config(&cfg, None);
    if let Ok(c) = &coglm {
        let _ = c.validate("fuzz");
    }
    let Ok(ckpt) = cogview_checkpoint::Checkpoint::from_bytes(ckpt, "fuzz.pt", None) else {
        return;
    };
    if let Ok(c) = coglm {
        if c.validate("fuzz").is_ok() {
            let _ = ckpt.check(&c.expected_tensors(), |_| false);
        }
    }
    if let Ok(sr) = cogview_model::SrConfig::from_model_config(&cfg, &ckpt) {
        if sr.validate("fuzz").is_ok() {
            let _ = ckpt.check(&sr.expected_tensors(), |_| false);
        }
    }
}

/// `ice_text.model` bytes: the protobuf, the tokenizer built from it, a round trip.
pub fn text_model(data: &[u8]) {
    if let Ok(t) = cogview_text::IceTextTokenizer::from_bytes(
        data,
        "fuzz.model",
        cogview_text::ICETK_TEXT_OFFSET,
        &cogview_text::SPECIAL_TOKENS,
    ) {
        use cogview_core::TextTokenizer;
        if let Ok(ids) = t.encode("a large blue circle 一只猫 <start_of_image>") {
            let _ = t.decode(&ids.0);
        }
        let _ = t.decode(&[0, 20000, 20001, u32::MAX]);
    }
}

/// A prompt through the default model's text tokenizer: encode, decode, encode again.
pub fn prompt(tokenizer: &cogview_text::IceTextTokenizer, data: &[u8]) {
    use cogview_core::TextTokenizer;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ids) = tokenizer.encode(text) {
        let back = tokenizer.decode(&ids.0).expect("encoded ids decode");
        // Decoding gives normalised text, which encodes to the same text, except where a character
        // unknown to the model decodes as SentencePiece's " ⁇ " (which is text of its own).
        if back.contains('\u{2047}') {
            return;
        }
        // Whitespace is normalised too (runs collapse; a literal '▁' in the text is a space), so
        // the words, not the spaces between them, survive a second round.
        if let Ok(again) = tokenizer.encode(&back) {
            let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(
                words(&tokenizer.decode(&again.0).expect("decodes")),
                words(&back),
                "round trip of {text:?}"
            );
        }
    }
}

/// The default model's text tokenizer.
pub fn default_tokenizer() -> cogview_text::IceTextTokenizer {
    let bytes = include_bytes!("../../models/default/ice_text.model");
    cogview_text::IceTextTokenizer::from_bytes(
        bytes,
        "ice_text.model",
        cogview_text::ICETK_TEXT_OFFSET,
        &cogview_text::SPECIAL_TOKENS,
    )
    .expect("the default model's tokenizer")
}

/// A pipeline TOML file.
#[cfg(feature = "pipeline")]
pub fn pipeline_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = cogview_pipeline::config::PipelineConfig::from_toml(text, "fuzz.toml") {
        let _ = cfg.style();
    }
}

/// A token-grid file: parsed, and a grid that parses survives a round trip.
pub fn grid_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(g) = cogview_core::grid_file::GridFile::parse(text, "fuzz.json") {
        let again = cogview_core::grid_file::GridFile::parse(&g.to_json(), "again").unwrap();
        assert_eq!(again, g);
    }
}

/// A PNG as `cogview regenerate` reads it: its text chunks and the record in them.
#[cfg(feature = "pipeline")]
pub fn png_record(data: &[u8]) {
    let _ = cogview_pipeline::record::ImageRecord::from_png_bytes(data, Path::new("fuzz.png"));
}

/// An image or mask: decoded, resized and centre-cropped as icetk's input, cropped, and read as
/// an edit mask.
pub fn image(data: &[u8]) {
    let Ok(img) = cogview_image::decode_image(data, "fuzz") else {
        return;
    };
    if img.width * img.height <= 1 << 16 {
        let _ = cogview_image::resize_center_crop(&img, 32);
    }
    let _ = cogview_image::crop(
        &img,
        img.width / 3,
        img.height / 4,
        img.width / 2,
        img.height / 2,
    );
    if let Ok(m) = cogview_core::edit::EditMask::from_image(&img) {
        let _ = m.cells().iter().filter(|&&c| c).count();
    }
}

/// An `.npy` table.
pub fn npy(data: &[u8]) {
    if let Ok(a) = cogview_core::npy::parse_npy(data, "fuzz.npy") {
        let _ = a.len();
        if a.to_i64().is_ok() {
            let _ = a.to_f32();
        }
    }
}

/// `cogview serve`'s routes on the embedded default model, with its scheduler shut down: every
/// request is parsed and checked as the server does, and one that passes is refused with 503
/// instead of running (so the fuzzer exercises parsing, not generation).
#[cfg(feature = "server")]
pub struct ServerHarness {
    rt: tokio::runtime::Runtime,
    router: cogview_server::ServerRouter,
}

#[cfg(feature = "server")]
impl ServerHarness {
    /// Starts it (binds a loopback port it never serves on).
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let cfg = cogview::OpenOptions::default()
            .config()
            .expect("the default model");
        let settings = cogview::Settings::resolve(&cfg, true).expect("its settings");
        let pipeline = cogview::Pipeline::from_settings(settings).expect("the pipeline");
        let config = cogview_server::ServerConfig {
            bind: "127.0.0.1:0".parse().expect("an address"),
            shutdown_grace: std::time::Duration::ZERO,
            ..Default::default()
        };
        let server = rt
            .block_on(cogview_server::Server::bind(config, pipeline))
            .expect("the server binds");
        server.scheduler().shutdown(std::time::Duration::ZERO);
        let router = server.router();
        ServerHarness { rt, router }
    }
}

#[cfg(feature = "server")]
impl Default for ServerHarness {
    fn default() -> Self {
        Self::new()
    }
}

/// One HTTP request: the first byte picks the route, the rest is the body (or, for the job
/// routes, the id in the path). A handler must not panic, and no request may get a 500 (the
/// server's fault): with nothing running, every answer is the client's (4xx) or "shutting
/// down" (503).
#[cfg(feature = "server")]
pub fn server_request(h: &ServerHarness, data: &[u8]) {
    use tower::ServiceExt;
    let Some((&route, body)) = data.split_first() else {
        return;
    };
    const BOUNDARY: &str = "fuzzboundary";
    let (method, path, content_type) = match route % 6 {
        0 => (
            "POST",
            "/v1/images/generations".to_string(),
            "application/json".to_string(),
        ),
        1 => (
            "POST",
            "/v1/jobs".to_string(),
            "application/json".to_string(),
        ),
        2 => (
            "POST",
            "/v1/images/edits".to_string(),
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ),
        3 => (
            "GET",
            format!(
                "/v1/jobs/{}",
                String::from_utf8_lossy(body).replace(['/', '?', '#', ' '], "_")
            ),
            String::new(),
        ),
        4 => (
            "POST",
            "/v1/images/generations".to_string(),
            "text/plain".to_string(),
        ),
        _ => (
            "POST",
            "/v1/jobs".to_string(),
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ),
    };
    let mut req = cogview_server::http::Request::builder().method(method);
    let Ok(uri) = path.parse::<cogview_server::http::Uri>() else {
        return;
    };
    req = req.uri(uri);
    if !content_type.is_empty() {
        req = req.header("content-type", content_type);
    }
    let body = if method == "GET" {
        Vec::new()
    } else {
        body.to_vec()
    };
    let Ok(req) = req.body(cogview_server::Body::from(body)) else {
        return;
    };
    let response =
        h.rt.block_on(h.router.clone().oneshot(req))
            .expect("the router's service is infallible");
    let status = response.status().as_u16();
    assert!(
        status < 500 || status == 503,
        "{method} {path}: status {status}"
    );
}
