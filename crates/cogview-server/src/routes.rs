//! The HTTP routes.

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::jobs::{EditSpec, GenerateSpec, Job, JobRequest, Scheduler, Status};
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use cogview::core::edit::{EditMask, Region};
use cogview::core::stage1::Style;
use serde::Deserialize;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The web page (one file: HTML, CSS and JavaScript).
const PAGE: &str = include_str!("page.html");

#[derive(Clone)]
struct AppState {
    scheduler: Arc<Scheduler>,
    config: Arc<ServerConfig>,
}

pub(crate) fn router(scheduler: Arc<Scheduler>, config: ServerConfig) -> Router {
    let upload_limit = config.limits.max_upload_bytes;
    let state = AppState {
        scheduler,
        config: Arc::new(config),
    };
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
        .route("/v1/capabilities", get(capabilities))
        .route("/v1/images/generations", post(generations))
        .route(
            "/v1/images/edits",
            post(edits).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/v1/jobs", post(submit_job))
        .route("/v1/jobs/{id}", get(job_state).delete(cancel_job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .route("/v1/jobs/{id}/events", get(job_events))
        .route("/v1/jobs/{id}/images/{file}", get(job_image))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .merge(api)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), timeout))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "route_not_found",
        "no such route; see GET /v1/capabilities and docs/server.md",
    )
}

/// Every request but the event streams ends within the request timeout.
async fn timeout(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let limit = s.config.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::timeout(limit.as_secs_f64()).into_response(),
    }
}

/// The bearer token, when the server has one: `Authorization: Bearer T`, or `?token=T` (for
/// EventSource and `<img>`, which cannot send headers).
async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(token) = s.config.token.as_deref() else {
        return next.run(req).await;
    };
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    });
    let ok = |given: &str| {
        // Compare every byte, so that the time taken does not tell how much matched.
        given.len() == token.len()
            && given
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    };
    if from_header.is_some_and(ok) || from_query.as_deref().is_some_and(ok) {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn health(State(s): State<AppState>) -> Json<serde_json::Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let (queued, running) = s.scheduler.load();
    let st = &s.scheduler.stats;
    // `--queue`: the jobs every server submitted that the workers have yet to finish.
    let queue = match s.scheduler.remote() {
        Some(q) => serde_json::json!({
            "prefix": q.config().prefix,
            "pending": q.pending_jobs().await.ok(),
        }),
        None => serde_json::Value::Null,
    };
    Json(serde_json::json!({
        "queue": queue,
        "status": "ok",
        "queued": queued,
        "running": running,
        "jobs_kept": s.scheduler.job_count(),
        "submitted": st.submitted.load(Relaxed),
        "done": st.done.load(Relaxed),
        "failed": st.failed.load(Relaxed),
        "cancelled": st.cancelled.load(Relaxed),
        "rejected": st.rejected.load(Relaxed),
        "batches": st.batches.load(Relaxed),
        "batched_jobs": st.batched_jobs.load(Relaxed),
        "largest_batch": st.largest_batch.load(Relaxed),
    }))
}

fn model_json(s: &AppState) -> serde_json::Value {
    serde_json::json!({
        "id": s.config.model_id,
        "object": "model",
        "created": 0,
        "owned_by": "cogview",
    })
}

async fn models(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"object": "list", "data": [model_json(&s)]}))
}

async fn model(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    if id == s.config.model_id {
        Json(model_json(&s)).into_response()
    } else {
        ApiError::not_found(
            "model_not_found",
            format!("this server serves one model, '{}'", s.config.model_id),
        )
        .into_response()
    }
}

fn side(s: &AppState) -> usize {
    s.scheduler.pipeline().geometry().image_side()
}

async fn capabilities(State(s): State<AppState>) -> Json<serde_json::Value> {
    let p = s.scheduler.pipeline();
    let g = p.geometry();
    let l = &s.config.limits;
    let side = g.image_side();
    Json(serde_json::json!({
        "model": s.config.model_id,
        "style": p.style().name(),
        "styles": Style::ALL.map(Style::name),
        "sizes": [format!("{side}x{side}")],
        "super_resolution": p.has_super_resolution(),
        "geometry": {
            "stage1_grid": g.low,
            "grid": g.high,
            "pixels_per_token": g.compression.factor(),
            "image_side": side,
            "stage1_image_side": g.low * g.compression.factor(),
            "max_text_tokens": g.max_text_tokens,
        },
        "queue_size": s.config.queue_size,
        "batch_size": s.config.batch_size,
        "job_ttl_seconds": s.config.job_ttl.as_secs(),
        "request_timeout_seconds": s.config.request_timeout.as_secs_f64(),
        "auth": s.config.token.is_some(),
        "limits": {
            "max_prompt_chars": l.max_prompt_chars,
            "max_images": l.max_images,
            "max_rerank": l.max_rerank,
            "max_upload_bytes": l.max_upload_bytes,
            "max_image_side": l.max_image_side,
            "max_rectangles": l.max_rectangles,
        },
        "response_formats": ["b64_json", "url"],
    }))
}

/// A generation request: OpenAI's fields and cogview's own. Unknown fields are refused (no
/// field is silently ignored, and none names a file or a model folder).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenerationBody {
    prompt: Option<String>,
    model: Option<String>,
    n: Option<usize>,
    size: Option<String>,
    response_format: Option<String>,
    quality: Option<String>,
    user: Option<String>,
    seed: Option<u64>,
    style: Option<String>,
    only_first_stage: Option<bool>,
    rerank: Option<usize>,
    preview: Option<bool>,
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    // Seeds stay below 2^53 so that JavaScript numbers hold them exactly.
    h.finish() & ((1 << 53) - 1)
}

/// Checks the fields every route shares; returns whether to answer with URLs, and the style.
fn check_common(
    s: &AppState,
    prompt: Option<&str>,
    model: Option<&str>,
    n: usize,
    size: Option<&str>,
    response_format: Option<&str>,
    style: Option<&str>,
) -> Result<(bool, Style), ApiError> {
    let l = &s.config.limits;
    let prompt = prompt.ok_or_else(|| ApiError::invalid("prompt", "`prompt` is required"))?;
    if prompt.trim().is_empty() {
        return Err(ApiError::invalid(
            "prompt",
            "the prompt is empty; describe the image to generate",
        ));
    }
    let chars = prompt.chars().count();
    if chars > l.max_prompt_chars {
        return Err(ApiError::limit(
            "prompt",
            &format!("max_prompt_chars = {}", l.max_prompt_chars),
            format!("the prompt has {chars} characters"),
        ));
    }
    if let Some(m) = model {
        if m != s.config.model_id {
            return Err(ApiError::invalid(
                "model",
                format!(
                    "this server serves the model '{}' (GET /v1/models), not '{m}'",
                    s.config.model_id
                ),
            ));
        }
    }
    if n == 0 {
        return Err(ApiError::invalid("n", "`n` must be at least 1"));
    }
    if n > l.max_images {
        return Err(ApiError::limit(
            "n",
            &format!("max_images = {}", l.max_images),
            format!("n = {n} images asked for"),
        ));
    }
    let side = side(s);
    if let Some(size) = size {
        if size != "auto" && size != format!("{side}x{side}") {
            return Err(ApiError::invalid(
                "size",
                format!("this model makes {side}x{side} images; ask for size \"{side}x{side}\" or \"auto\", not \"{size}\""),
            ));
        }
    }
    let url = match response_format {
        None | Some("b64_json") => false,
        Some("url") => true,
        Some(f) => {
            return Err(ApiError::invalid(
                "response_format",
                format!("`response_format` is \"b64_json\" or \"url\", not \"{f}\""),
            ))
        }
    };
    let pipeline = s.scheduler.pipeline();
    let style = match style {
        None => pipeline.style(),
        Some(name) => name.parse::<Style>().map_err(|_| {
            ApiError::invalid(
                "style",
                format!(
                    "unknown style '{name}'; this server has {} (GET /v1/capabilities lists them)",
                    Style::ALL.map(Style::name).join(", ")
                ),
            )
        })?,
    };
    // The model's own text limit (the style's template included), before the job is queued.
    pipeline
        .with_style(style)
        .encode_prompt(prompt)
        .map_err(|e| ApiError::from_pipeline(&e))?;
    Ok((url, style))
}

fn generate_spec(s: &AppState, b: GenerationBody) -> Result<(GenerateSpec, bool), ApiError> {
    let n = b.n.unwrap_or(1);
    let (url, style) = check_common(
        s,
        b.prompt.as_deref(),
        b.model.as_deref(),
        n,
        b.size.as_deref(),
        b.response_format.as_deref(),
        b.style.as_deref(),
    )?;
    if let Some(q) = b.quality.as_deref() {
        if !matches!(q, "auto" | "standard") {
            return Err(ApiError::invalid(
                "quality",
                format!(
                    "cogview has one quality; `quality` is \"auto\" or \"standard\", not \"{q}\""
                ),
            ));
        }
    }
    let _ = b.user;
    let only_first_stage = b.only_first_stage.unwrap_or(false);
    if !only_first_stage && !s.scheduler.pipeline().has_super_resolution() {
        return Err(ApiError::invalid(
            "only_first_stage",
            "this server's pipeline has no super-resolution stages; send \"only_first_stage\": true",
        ));
    }
    let max_rerank = s.config.limits.max_rerank;
    if let Some(k) = b.rerank {
        if k > max_rerank {
            return Err(ApiError::limit(
                "rerank",
                &format!("max_rerank = {max_rerank}"),
                format!("rerank = {k} candidates asked for"),
            ));
        }
        if k < n {
            return Err(ApiError::invalid(
                "rerank",
                format!("`rerank` ({k}) draws the candidates the n = {n} images are chosen from; it must be at least n"),
            ));
        }
    }
    Ok((
        GenerateSpec {
            prompt: b.prompt.unwrap_or_default(),
            n,
            seed: b.seed.unwrap_or_else(random_seed),
            only_first_stage,
            rerank: b.rerank,
            preview: b.preview.unwrap_or(false),
            style,
        },
        url,
    ))
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|e| {
        let text = e.body_text();
        // serde names the field: "unknown field `model_dir`, expected one of ..."
        let param = text
            .split('`')
            .nth(1)
            .filter(|_| text.contains("unknown field") || text.contains("invalid type"))
            .unwrap_or("body")
            .to_string();
        let mut err = ApiError::invalid(param, text);
        if e.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            err.status = StatusCode::UNSUPPORTED_MEDIA_TYPE;
            err.message = "send the request as JSON (Content-Type: application/json)".into();
        }
        err
    })
}

/// Cancels its job when dropped before the job ended (the client went away or the request timed
/// out).
struct CancelOnDrop(Arc<Scheduler>, Arc<Job>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.1.status().is_terminal() {
            self.0.cancel(&self.1);
        }
    }
}

/// Waits for a job and answers in OpenAI's shape.
async fn answer(s: &AppState, job: Arc<Job>, url: bool, headers: &HeaderMap) -> Response {
    let guard = CancelOnDrop(s.scheduler.clone(), job.clone());
    let mut watch = job.watch();
    let _ = watch
        .wait_for(|p| matches!(*p, "done" | "failed" | "cancelled"))
        .await;
    drop(guard);
    match job.status() {
        Status::Done => {}
        Status::Failed => {
            return job
                .error()
                .unwrap_or_else(|| ApiError::from_pipeline(&cogview::Error::backend("failed")))
                .into_response()
        }
        _ => return ApiError::from_pipeline(&cogview::Error::Cancelled).into_response(),
    }
    let mut data = Vec::new();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    for (k, path) in job.images().iter().enumerate() {
        if url {
            data.push(serde_json::json!({
                "url": format!("http://{host}/v1/jobs/{}/images/{k}.png", job.id),
                "revised_prompt": null,
            }));
        } else {
            match tokio::fs::read(path).await {
                Ok(bytes) => data.push(serde_json::json!({
                    "b64_json": base64::engine::general_purpose::STANDARD.encode(bytes),
                    "revised_prompt": null,
                })),
                Err(_) => {
                    return ApiError::not_found(
                        "image_expired",
                        "the job's images expired before they were read",
                    )
                    .into_response()
                }
            }
        }
    }
    Json(serde_json::json!({"created": job.created, "data": data})).into_response()
}

async fn generations(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<GenerationBody>, JsonRejection>,
) -> Response {
    let result = async {
        let b = json_body(body)?;
        if b.preview.is_some() {
            return Err(ApiError::invalid(
                "preview",
                "`preview` is for jobs (POST /v1/jobs), whose events carry it",
            ));
        }
        let (spec, url) = generate_spec(&s, b)?;
        let (job, _) = s.scheduler.submit(JobRequest::Generate(spec))?;
        Ok::<_, ApiError>((job, url))
    }
    .await;
    match result {
        Ok((job, url)) => answer(&s, job, url, &headers).await,
        Err(e) => e.into_response(),
    }
}

fn job_urls(id: &str) -> serde_json::Value {
    serde_json::json!({
        "self": format!("/v1/jobs/{id}"),
        "events": format!("/v1/jobs/{id}/events"),
        "cancel": format!("/v1/jobs/{id}/cancel"),
    })
}

async fn submit_job(
    State(s): State<AppState>,
    body: Result<Json<GenerationBody>, JsonRejection>,
) -> Response {
    let result = (|| {
        let b = json_body(body)?;
        if b.response_format.as_deref() == Some("b64_json") {
            return Err(ApiError::invalid(
                "response_format",
                "jobs' images are fetched from /v1/jobs/{id}/images/{k}.png; leave out response_format",
            ));
        }
        let (spec, _) = generate_spec(&s, b)?;
        s.scheduler.submit(JobRequest::Generate(spec))
    })();
    match result {
        Ok((job, position)) => {
            let mut v = job.to_json(Some(position));
            v["queue_position"] = position.into();
            v["urls"] = job_urls(&job.id);
            let mut r = (StatusCode::ACCEPTED, Json(v)).into_response();
            if let Ok(loc) = HeaderValue::from_str(&format!("/v1/jobs/{}", job.id)) {
                r.headers_mut().insert(header::LOCATION, loc);
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn find(s: &AppState, id: &str) -> Result<Arc<Job>, ApiError> {
    if let Some(job) = s.scheduler.get(id) {
        return Ok(job);
    }
    // `--queue`: a job submitted through another server is followed from NATS.
    if let Some(job) = s.scheduler.adopt(id).await {
        return Ok(job);
    }
    Err(ApiError::not_found(
        "job_not_found",
        format!(
            "no job '{id}' (finished jobs expire after {} s)",
            s.config.job_ttl.as_secs()
        ),
    ))
}

async fn job_state(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    match find(&s, &id).await {
        Ok(job) => {
            let mut v = job.to_json(s.scheduler.position(&id));
            v["urls"] = job_urls(&id);
            Json(v).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn cancel_job(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let job = match find(&s, &id).await {
        Ok(j) => j,
        Err(e) => return e.into_response(),
    };
    let status = job.status();
    if status.is_terminal() {
        if status == Status::Cancelled {
            return Json(job.to_json(None)).into_response();
        }
        return ApiError::conflict(
            "job_finished",
            format!("the job has already ended ({})", status.name()),
        )
        .into_response();
    }
    s.scheduler.cancel(&job);
    Json(job.to_json(None)).into_response()
}

async fn job_events(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let job = match find(&s, &id).await {
        Ok(j) => j,
        Err(e) => return e.into_response(),
    };
    // Subscribe before reading the state, so that no event falls between the two.
    let rx = job.subscribe();
    let first = job.to_json(s.scheduler.position(&id));
    let terminal = job.status().is_terminal();
    let state_event = Event::default().event("state").data(first.to_string());
    let ended = if terminal {
        let (name, data) = match job.status() {
            Status::Done => (
                "done",
                serde_json::json!({"images": first.get("images").cloned().unwrap_or_default()}),
            ),
            Status::Failed => (
                "failed",
                job.error().map_or(serde_json::Value::Null, |e| e.body()),
            ),
            _ => ("cancelled", serde_json::json!({"id": id})),
        };
        Some(Event::default().event(name).data(data.to_string()))
    } else {
        None
    };
    let head = futures_util::stream::iter(
        std::iter::once(state_event)
            .chain(ended.clone())
            .map(Ok::<Event, std::convert::Infallible>),
    );
    let live = futures_util::stream::unfold((rx, terminal), |(rx, done)| async move {
        let mut rx = match rx {
            Some(rx) if !done => rx,
            _ => return None,
        };
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let end = matches!(ev.name, "done" | "failed" | "cancelled");
                    let e = Event::default().event(ev.name).data(ev.data.to_string());
                    return Some((Ok(e), (Some(rx), end)));
                }
                // A slow reader skips progress events it missed; the state stays current.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures_util::StreamExt::chain(head, live);
    let mut r = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
        .into_response();
    // Reverse proxies (nginx) must not buffer the stream.
    r.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn job_image(
    State(s): State<AppState>,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let job = match find(&s, &id).await {
        Ok(j) => j,
        Err(e) => return e.into_response(),
    };
    let status = job.status();
    if status != Status::Done {
        return ApiError::conflict(
            "job_not_done",
            format!(
                "the job is {}; its images exist once it is done",
                status.name()
            ),
        )
        .into_response();
    }
    let images = job.images();
    let k = file
        .strip_suffix(".png")
        .and_then(|k| k.parse::<usize>().ok())
        .filter(|&k| k < images.len());
    let Some(k) = k else {
        return ApiError::not_found(
            "image_not_found",
            format!(
                "the job has images 0.png to {}.png",
                images.len().saturating_sub(1)
            ),
        )
        .into_response();
    };
    match tokio::fs::read(&images[k]).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(&format!("inline; filename=\"cogview-{id}-{k}.png\""))
                        .unwrap_or(HeaderValue::from_static("inline")),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => ApiError::not_found("image_expired", "the job's images expired").into_response(),
    }
}

/// A rectangle field: four numbers `x0,y0,x1,y1` (pixels, or fractions for `rect_frac`).
fn parse_rect(field: &str, text: &str, fractions: bool) -> Result<Region, ApiError> {
    let v: Vec<f64> = text
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            ApiError::invalid(
                field,
                format!("'{text}': {e}; give four numbers x0,y0,x1,y1"),
            )
        })?;
    let [x0, y0, x1, y1] = <[f64; 4]>::try_from(v.clone()).map_err(|_| {
        ApiError::invalid(
            field,
            format!("'{text}' has {} numbers; give x0,y0,x1,y1", v.len()),
        )
    })?;
    if fractions {
        return Ok(Region::Fraction {
            left: x0,
            top: y0,
            right: x1,
            bottom: y1,
        });
    }
    if v.iter().any(|x| *x < 0.0 || x.fract() != 0.0) {
        return Err(ApiError::invalid(
            field,
            format!(
                "'{text}': pixel coordinates are whole numbers ≥ 0 (use rect_frac for fractions)"
            ),
        ));
    }
    Ok(Region::Pixels {
        left: x0 as usize,
        top: y0 as usize,
        right: x1 as usize,
        bottom: y1 as usize,
    })
}

/// An uploaded image: its size checked against the limit before it is decoded. Returns the
/// composited RGB image and, when it has transparent pixels, the mask of the fully transparent
/// ones (OpenAI's convention: transparent = redraw).
fn decode_upload(
    s: &AppState,
    field: &str,
    bytes: &[u8],
) -> Result<(cogview::core::Image, Option<Vec<bool>>), ApiError> {
    let max = s.config.limits.max_image_side;
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ApiError::invalid(field, format!("cannot read the image: {e}")))?;
    if let Ok((w, h)) = reader.into_dimensions() {
        if w as usize > max || h as usize > max {
            return Err(ApiError::limit(
                field,
                &format!("max_image_side = {max} px"),
                format!("the image is {w}x{h} pixels"),
            ));
        }
    }
    let img =
        cogview::image::decode_image(bytes, field).map_err(|e| ApiError::from_pipeline(&e))?;
    // The alpha channel, for OpenAI-style masks (decode_image composites it over white).
    let transparent = image::load_from_memory(bytes).ok().and_then(|d| {
        if !d.color().has_alpha() {
            return None;
        }
        let cells: Vec<bool> = d.to_rgba8().pixels().map(|p| p.0[3] == 0).collect();
        cells.iter().any(|&c| c).then_some(cells)
    });
    Ok((img, transparent))
}

async fn edits(
    State(s): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let result = edit_job(&s, multipart).await;
    match result {
        Ok((job, url)) => answer(&s, job, url, &headers).await,
        Err(e) => e.into_response(),
    }
}

async fn edit_job(
    s: &AppState,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(Arc<Job>, bool), ApiError> {
    let mut multipart = multipart.map_err(|e| {
        ApiError::invalid(
            "body",
            format!(
                "send the edit as multipart/form-data with an `image` file: {}",
                e.body_text()
            ),
        )
    })?;
    let limit = s.config.limits.max_upload_bytes;
    let too_big = || {
        ApiError::limit(
            "image",
            &format!("max_upload_bytes = {limit}"),
            "the upload is too large",
        )
    };
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut text: HashMap<String, String> = HashMap::new();
    let mut rects: Vec<(String, String)> = Vec::new();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => return Err(too_big()),
            Err(e) => return Err(ApiError::invalid("body", e.body_text())),
        };
        let name = field
            .name()
            .unwrap_or("")
            .trim_end_matches("[]")
            .to_string();
        let is_file = field.file_name().is_some();
        let data = field.bytes().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_big()
            } else {
                ApiError::invalid(name.clone(), e.body_text())
            }
        })?;
        match name.as_str() {
            "image" | "mask" => {
                if files.insert(name.clone(), data.to_vec()).is_some() {
                    return Err(ApiError::invalid(
                        name,
                        "give one image (cogview edits one image per request)",
                    ));
                }
            }
            "rect" | "rect_frac" => {
                let t = String::from_utf8(data.to_vec())
                    .map_err(|_| ApiError::invalid(name.clone(), "not UTF-8 text"))?;
                // Several rectangles may come in one field, separated by ';'.
                for r in t.split(';').filter(|r| !r.trim().is_empty()) {
                    rects.push((name.clone(), r.trim().to_string()));
                }
            }
            "prompt" | "n" | "seed" | "size" | "response_format" | "model" | "user" | "style"
            | "quality" => {
                if is_file {
                    return Err(ApiError::invalid(name, "a text field, not a file"));
                }
                let t = String::from_utf8(data.to_vec())
                    .map_err(|_| ApiError::invalid(name.clone(), "not UTF-8 text"))?;
                text.insert(name, t);
            }
            other => {
                return Err(ApiError::invalid(
                    other,
                    format!("unknown field `{other}`; an edit takes image, mask, prompt, n, size, response_format, model, seed, style, rect, rect_frac"),
                ))
            }
        }
    }
    let n = match text.get("n") {
        Some(t) => t
            .trim()
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("n", format!("`n` is a whole number, not '{t}'")))?,
        None => 1,
    };
    let (url, style) = check_common(
        s,
        text.get("prompt").map(String::as_str),
        text.get("model").map(String::as_str),
        n,
        text.get("size").map(String::as_str),
        text.get("response_format").map(String::as_str),
        text.get("style").map(String::as_str),
    )?;
    let seed = match text.get("seed") {
        Some(t) => t.trim().parse::<u64>().map_err(|_| {
            ApiError::invalid("seed", format!("`seed` is a whole number ≥ 0, not '{t}'"))
        })?,
        None => random_seed(),
    };
    let max_rects = s.config.limits.max_rectangles;
    if rects.len() > max_rects {
        return Err(ApiError::limit(
            "rect",
            &format!("max_rectangles = {max_rects}"),
            format!("{} rectangles given", rects.len()),
        ));
    }
    let image_bytes = files
        .remove("image")
        .ok_or_else(|| ApiError::invalid("image", "an edit needs an `image` file"))?;
    let (image, image_alpha) = decode_upload(s, "image", &image_bytes)?;
    let image_sha256 = format!("{:x}", sha2::Sha256::digest(&image_bytes));
    let mut described = Vec::new();
    let mut mask = match files.remove("mask") {
        Some(bytes) => {
            let (m, alpha) = decode_upload(s, "mask", &bytes)?;
            if (m.width, m.height) != (image.width, image.height) {
                return Err(ApiError::invalid(
                    "mask",
                    format!(
                        "the mask is {}x{} but the image is {}x{}; give a mask of the image's size",
                        m.width, m.height, image.width, image.height
                    ),
                ));
            }
            described.push(format!("file {:x}", sha2::Sha256::digest(&bytes)));
            match alpha {
                // OpenAI's masks: fully transparent pixels are redrawn.
                Some(cells) => EditMask::new(image.width, image.height, cells),
                // cogview's masks: white (luminance ≥ 128) is redrawn.
                None => EditMask::from_image(&m),
            }
            .map_err(|e| ApiError::from_pipeline(&e))
            .map_err(|mut e| {
                e.param = Some("mask".into());
                e
            })?
        }
        None => match (&image_alpha, rects.is_empty()) {
            (Some(cells), _) => {
                described.push("transparent pixels of the image".into());
                EditMask::new(image.width, image.height, cells.clone())
                    .map_err(|e| ApiError::from_pipeline(&e))?
            }
            (None, false) => EditMask::empty(image.width, image.height)
                .map_err(|e| ApiError::from_pipeline(&e))?,
            (None, true) => {
                return Err(ApiError::invalid(
                    "mask",
                    "say what to redraw: a `mask` file (transparent or white = redraw), `rect` x0,y0,x1,y1 in pixels, or `rect_frac` in fractions",
                ))
            }
        },
    };
    for (field, r) in &rects {
        let region = parse_rect(field, r, field == "rect_frac")?;
        mask.add(region).map_err(|e| {
            let mut e = ApiError::from_pipeline(&e);
            e.param = Some(field.clone());
            e
        })?;
        described.push(format!("{region:?}"));
    }
    let job = s.scheduler.submit(JobRequest::Edit(EditSpec {
        prompt: text.remove("prompt").unwrap_or_default(),
        n,
        seed,
        image,
        image_sha256,
        mask,
        style,
        mask_description: described.join("; "),
    }))?;
    Ok((job.0, url))
}
