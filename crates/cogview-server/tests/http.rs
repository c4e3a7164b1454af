//! The server over HTTP on a free loopback port, with the embedded default model.

mod common;

use cogview::pipeline::record::{Origin, RerankRecord};
use cogview_server::client::{self, multipart, EventStream, Part};
use cogview_server::{Limits, ServeError, Server, ServerConfig};
use common::{b64, config, dimensions, pipeline_with_itersr_passes, record, TestServer, PROMPT};
use serde_json::json;
use std::time::{Duration, Instant};

#[test]
fn the_openai_route_returns_pngs_with_cogview_records() {
    let s = TestServer::start(config());
    let r = s.post(
        "/v1/images/generations",
        json!({"prompt": PROMPT, "n": 2, "size": "216x216", "response_format": "b64_json",
               "seed": 11, "only_first_stage": true, "model": "cogview"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (k, d) in data.iter().enumerate() {
        let png = b64(d["b64_json"].as_str().unwrap());
        assert_eq!(dimensions(&png), (216, 216));
        let rec = record(&png);
        assert_eq!(rec.prompt, PROMPT);
        assert_eq!(rec.seed, 11 + k as u64);
        assert_eq!((rec.index, rec.of), (k, 2));
        // The default model keeps each image's best of 4 stage-1 candidates.
        assert!(matches!(
            rec.origin,
            Origin::Generate {
                only_first_stage: true,
                rerank: Some(RerankRecord { candidates: 4, .. })
            }
        ));
        assert!(!rec.weights.is_empty() && rec.weights.iter().all(|w| w.sha256.len() == 64));
    }
    // response_format=url: the job's image URLs, serving the same bytes.
    let r = s.post(
        "/v1/images/generations",
        json!({"prompt": PROMPT, "seed": 11, "only_first_stage": true, "response_format": "url"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let url = r.json()["data"][0]["url"].as_str().unwrap().to_string();
    let path = url.split_once(&s.addr.to_string()).unwrap().1;
    let png = s.get(path).body;
    assert_eq!(record(&png).seed, 11);
    // Image 0 of the n=2 run and the n=1 run differ only in the record's `of`.
    let first = b64(data[0]["b64_json"].as_str().unwrap());
    let a = image::load_from_memory(&first).unwrap().to_rgb8();
    let b = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(a.as_raw(), b.as_raw());
}

#[test]
fn models_capabilities_and_health() {
    let s = TestServer::start(config());
    let m = s.get("/v1/models").json();
    assert_eq!(m["object"], "list");
    assert_eq!(m["data"][0]["id"], "cogview");
    assert_eq!(s.get("/v1/models/cogview").status, 200);
    let r = s.get("/v1/models/dall-e-3");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    let c = s.get("/v1/capabilities").json();
    assert_eq!(c["geometry"]["image_side"], 216);
    assert_eq!(c["geometry"]["stage1_grid"], 9);
    assert_eq!(c["sizes"][0], "216x216");
    assert_eq!(c["queue_size"], 64);
    assert_eq!(c["batch_size"], 8);
    assert_eq!(c["limits"]["max_images"], 8);
    assert_eq!(c["style"], "none", "the default model's own style");
    let styles: Vec<&str> = c["styles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(styles.len(), 10, "{styles:?}");
    assert!(
        styles.contains(&"none") && styles.contains(&"photo") && styles.contains(&"watercolor")
    );
    let h = s.get("/health").json();
    assert_eq!(h["status"], "ok");
    let r = s.get("/no/such/route");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    let page = s.get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("EventSource"));
}

#[test]
fn a_job_streams_its_stages_in_order_then_its_images() {
    // Two LoPAR passes, so ItersR's progress is part of the stream (the default model's own
    // pipeline runs none).
    let s = TestServer::start_with(config(), |batch| {
        pipeline_with_itersr_passes(batch, Some(2))
    });
    let r = s.post(
        "/v1/jobs",
        json!({"prompt": PROMPT, "seed": 3, "n": 2, "preview": true}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    let id = v["id"].as_str().unwrap().to_string();
    assert!(v["queue_position"].is_u64());
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/jobs/{id}").as_str())
    );
    let mut events = EventStream::open(s.addr, &format!("/v1/jobs/{id}/events"), None).unwrap();
    assert_eq!(events.status, 200);
    let mut seen = Vec::new();
    while let Some((name, data)) = events.next_event().unwrap() {
        let d: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
        seen.push((name, d));
    }
    assert_eq!(seen[0].0, "state", "{seen:?}");
    assert_eq!(seen.last().unwrap().0, "done", "the stream ends with done");
    // The stages in order: every CogLM token (81 per image), the preview, DSR per image, each
    // ItersR pass, decoding per image.
    let stages: Vec<String> = seen
        .iter()
        .filter(|(n, _)| n == "progress" || n == "preview")
        .map(|(n, d)| {
            if n == "preview" {
                "preview".into()
            } else {
                format!("{}:{}/{}", d["stage"].as_str().unwrap(), d["step"], d["of"])
            }
        })
        .collect();
    let pos = |x: &str| {
        stages
            .iter()
            .position(|s| s == x)
            .unwrap_or_else(|| panic!("{x} not in {stages:?}"))
    };
    // CogLM draws each image's candidates (the default model keeps the best of 4).
    let tokens = 81 * 2 * s.scheduler.pipeline().rerank();
    assert!(pos(&format!("coglm:{tokens}/{tokens}")) < pos("preview"));
    assert!(pos("preview") < pos("dsr:1/2"));
    // ItersR reports each pass of each image: n × the pipeline's LoPAR passes.
    let passes = s
        .scheduler
        .pipeline()
        .super_resolution_stages()
        .expect("the default model has super-resolution")
        .lopar
        .iterations();
    assert_eq!(passes, 2);
    let itersr_steps = 2 * passes;
    assert!(pos("dsr:2/2") < pos(&format!("itersr:1/{itersr_steps}")));
    for k in 2..=itersr_steps {
        assert!(
            pos(&format!("itersr:{}/{itersr_steps}", k - 1))
                < pos(&format!("itersr:{k}/{itersr_steps}"))
        );
    }
    assert!(pos(&format!("itersr:{itersr_steps}/{itersr_steps}")) < pos("decode:1/2"));
    assert!(pos("decode:2/2") == stages.len() - 1);
    let coglm: Vec<u64> = seen
        .iter()
        .filter(|(n, d)| n == "progress" && d["stage"] == "coglm")
        .map(|(_, d)| d["step"].as_u64().unwrap())
        .collect();
    assert!(coglm.windows(2).all(|w| w[0] < w[1]), "{coglm:?}");
    let preview = seen.iter().find(|(n, _)| n == "preview").unwrap();
    let png = b64(preview.1["png_base64"].as_str().unwrap());
    assert_eq!(
        dimensions(&png),
        (144, 72),
        "two 72 px stage-1 images side by side"
    );
    // The state and the images.
    let state = s.get(&format!("/v1/jobs/{id}")).json();
    assert_eq!(state["status"], "done");
    let images = s.images(&id);
    assert_eq!(images.len(), 2);
    assert_eq!(record(&images[1]).seed, 4);
    assert_eq!(dimensions(&images[0]), (216, 216));
    let r = s.get(&format!("/v1/jobs/{id}/images/2.png"));
    assert_eq!(r.status, 404);
    // A stream opened after the end gets the state and the end at once.
    let mut late = EventStream::open(s.addr, &format!("/v1/jobs/{id}/events"), None).unwrap();
    assert_eq!(late.next_event().unwrap().unwrap().0, "state");
    assert_eq!(late.next_event().unwrap().unwrap().0, "done");
    assert!(late.next_event().unwrap().is_none());
}

#[test]
fn cancelling_a_running_job_stops_it_within_a_step() {
    let s = TestServer::start(config());
    // Eight full images: many seconds of work.
    let id = s.submit(json!({"prompt": PROMPT, "n": 8, "seed": 1}));
    let mut events = EventStream::open(s.addr, &format!("/v1/jobs/{id}/events"), None).unwrap();
    loop {
        let (name, _) = events.next_event().unwrap().unwrap();
        if name == "progress" {
            break;
        }
    }
    let t = Instant::now();
    let r = s.delete(&format!("/v1/jobs/{id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "cancelled");
    let mut last = String::new();
    while let Some((name, _)) = events.next_event().unwrap() {
        last = name;
    }
    assert_eq!(last, "cancelled");
    // The worker is free again within a step (a CogLM token), not after the run.
    while s.get("/health").json()["running"] != 0 {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "the worker kept running"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        s.get(&format!("/v1/jobs/{id}")).json()["status"],
        "cancelled"
    );
    let r = s.get(&format!("/v1/jobs/{id}/images/0.png"));
    assert_eq!(r.status, 409);
    // Cancelling again is harmless; POST …/cancel works the same.
    assert_eq!(
        s.post(&format!("/v1/jobs/{id}/cancel"), json!({})).status,
        200
    );
    // A queued job cancelled leaves the queue; the next one runs.
    let a = s.submit(json!({"prompt": PROMPT, "n": 8, "seed": 1}));
    let b = s.submit(json!({"prompt": PROMPT, "n": 1, "seed": 2, "only_first_stage": true}));
    s.wait_until_running(&a);
    assert_eq!(
        s.post(&format!("/v1/jobs/{b}/cancel"), json!({})).json()["status"],
        "cancelled"
    );
    assert_eq!(s.delete(&format!("/v1/jobs/{a}")).status, 200);
    let c = s.submit(json!({"prompt": PROMPT, "n": 1, "seed": 2, "only_first_stage": true}));
    assert_eq!(s.wait(&c)["status"], "done");
    assert_eq!(s.wait(&b)["status"], "cancelled");
    let r = s.delete("/v1/jobs/job_nonexistent");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "job_not_found");
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let s = TestServer::start(ServerConfig {
        queue_size: 1,
        ..config()
    });
    let running = s.submit(json!({"prompt": PROMPT, "n": 8, "seed": 1}));
    s.wait_until_running(&running);
    let queued = s.submit(json!({"prompt": PROMPT, "seed": 2}));
    let r = s.post("/v1/jobs", json!({"prompt": PROMPT, "seed": 3}));
    assert_eq!(r.status, 429, "{}", r.text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    let e = r.json();
    assert_eq!(e["error"]["type"], "rate_limit_error");
    assert_eq!(e["error"]["code"], "queue_full");
    // The OpenAI route too.
    let r = s.post("/v1/images/generations", json!({"prompt": PROMPT}));
    assert_eq!(r.status, 429);
    assert_eq!(s.get("/health").json()["rejected"], 2);
    s.delete(&format!("/v1/jobs/{running}"));
    s.delete(&format!("/v1/jobs/{queued}"));
}

#[test]
fn bad_input_gets_a_4xx_naming_the_field_and_the_limit() {
    let s = TestServer::start(ServerConfig {
        limits: Limits {
            max_prompt_chars: 100,
            max_upload_bytes: 20_000,
            max_image_side: 300,
            ..Limits::default()
        },
        ..config()
    });
    let bad = |body: serde_json::Value, status: u16, param: &str, words: &str| {
        for route in ["/v1/images/generations", "/v1/jobs"] {
            let r = s.post(route, body.clone());
            assert_eq!(r.status, status, "{route} {body}: {}", r.text());
            let e = &r.json()["error"];
            assert_eq!(e["param"], param, "{e}");
            let m = e["message"].as_str().unwrap();
            assert!(m.contains(words), "{words}: {m}");
            assert!(e["type"].is_string());
        }
    };
    bad(
        json!({"prompt": "a ".repeat(60)}),
        400,
        "prompt",
        "max_prompt_chars = 100",
    );
    bad(
        json!({"prompt": PROMPT, "n": 9}),
        400,
        "n",
        "max_images = 8",
    );
    bad(json!({"prompt": PROMPT, "n": 0}), 400, "n", "at least 1");
    bad(
        json!({"prompt": PROMPT, "size": "1024x1024"}),
        400,
        "size",
        "216x216",
    );
    bad(
        json!({"prompt": PROMPT, "rerank": 17}),
        400,
        "rerank",
        "max_rerank = 16",
    );
    bad(
        json!({"prompt": PROMPT, "n": 3, "rerank": 2}),
        400,
        "rerank",
        "at least n",
    );
    bad(
        json!({"prompt": PROMPT, "style": "cubist"}),
        400,
        "style",
        "unknown style 'cubist'; this server has none, mainbody, photo",
    );
    bad(
        json!({"prompt": PROMPT, "model": "dall-e-2"}),
        400,
        "model",
        "cogview",
    );
    bad(
        json!({"prompt": PROMPT, "quality": "hd"}),
        400,
        "quality",
        "standard",
    );
    bad(json!({"prompt": "   "}), 400, "prompt", "empty");
    bad(json!({"n": 1}), 400, "prompt", "required");
    bad(json!({"prompt": PROMPT, "seed": -1}), 400, "body", "seed");
    // The model's own text limit (31 tokens for the default model).
    bad(
        json!({"prompt": "a ".repeat(40).trim()}),
        400,
        "prompt",
        "tokens",
    );
    // No field names a file or a model folder: unknown fields are refused by name.
    bad(
        json!({"prompt": PROMPT, "model_dir": "/etc"}),
        400,
        "model_dir",
        "unknown field",
    );
    bad(
        json!({"prompt": PROMPT, "config": "/x.toml"}),
        400,
        "config",
        "unknown field",
    );
    let r = s.post(
        "/v1/images/generations",
        json!({"prompt": PROMPT, "response_format": "png"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "response_format");
    // Not JSON.
    let r = client::request(
        s.addr,
        "POST",
        "/v1/jobs",
        &[("Content-Type", "application/json")],
        b"{oops",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let r = client::request(
        s.addr,
        "POST",
        "/v1/jobs",
        &[("Content-Type", "text/plain")],
        b"{}",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(r.status, 415, "{}", r.text());
    // Uploads: over the byte limit (413) and over the side limit (400).
    let big = vec![7u8; 30_000];
    let (ct, body) = multipart(&[
        Part::Text("prompt", PROMPT),
        Part::File("image", "a.png", &big),
    ]);
    let r = client::request(
        s.addr,
        "POST",
        "/v1/images/edits",
        &[("Content-Type", &ct)],
        &body,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_upload_bytes = 20000"));
    let mut wide = Vec::new();
    image::RgbImage::new(400, 10)
        .write_to(
            &mut std::io::Cursor::new(&mut wide),
            image::ImageFormat::Png,
        )
        .unwrap();
    let (ct, body) = multipart(&[
        Part::Text("prompt", PROMPT),
        Part::Text("rect", "0,0,5,5"),
        Part::File("image", "a.png", &wide),
    ]);
    let r = client::request(
        s.addr,
        "POST",
        "/v1/images/edits",
        &[("Content-Type", &ct)],
        &body,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    let e = r.json();
    assert_eq!(e["error"]["param"], "image");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_image_side = 300 px"),
        "{e}"
    );
    // Nothing was queued by any of these.
    assert_eq!(s.get("/health").json()["submitted"], 0);
}

#[test]
fn the_bearer_token_guards_every_api_route() {
    let s = TestServer::start(ServerConfig {
        token: Some("s3cret".into()),
        ..config()
    });
    let r = client::json(s.addr, "GET", "/v1/models", None, None).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = client::json(s.addr, "GET", "/v1/models", Some("wrong!"), None).unwrap();
    assert_eq!(r.status, 401);
    let r = client::json(
        s.addr,
        "POST",
        "/v1/jobs",
        None,
        Some(&json!({"prompt": PROMPT})),
    )
    .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(s.get("/v1/models").status, 200);
    // /health and the page are open; the page asks for the token.
    assert_eq!(
        client::json(s.addr, "GET", "/health", None, None)
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        client::json(s.addr, "GET", "/", None, None).unwrap().status,
        200
    );
    // Event streams and images take it as ?token= (EventSource and <img> send no headers).
    let id = s.submit(json!({"prompt": PROMPT, "only_first_stage": true}));
    s.wait(&id);
    let r = client::json(
        s.addr,
        "GET",
        &format!("/v1/jobs/{id}/images/0.png?token=s3cret"),
        None,
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    let r = client::json(
        s.addr,
        "GET",
        &format!("/v1/jobs/{id}/images/0.png?token=nope"),
        None,
        None,
    )
    .unwrap();
    assert_eq!(r.status, 401);
}

#[test]
fn listening_off_loopback_needs_a_token() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = ServerConfig {
        bind: "0.0.0.0:0".parse().unwrap(),
        ..config()
    };
    let err = rt
        .block_on(Server::bind(cfg, common::pipeline(8)))
        .unwrap_err();
    assert!(matches!(err, ServeError::TokenRequired { .. }), "{err}");
    assert!(err.to_string().contains("--token"), "{err}");
    assert!(ServerConfig {
        queue_size: 0,
        ..config()
    }
    .check()
    .is_err());
}

#[test]
fn concurrent_requests_share_a_batch_and_give_the_bytes_of_a_run_alone() {
    let s = TestServer::start(config());
    // One long job holds the worker while the others queue up behind it.
    let blocker = s.submit(json!({"prompt": PROMPT, "n": 4, "seed": 99}));
    s.wait_until_running(&blocker);
    let requests = [
        (PROMPT, 2, 50),
        ("a large red circle in the center", 1, 60),
        ("a small green square at the top", 1, 70),
        ("a triangle", 1, 80),
    ];
    let ids: Vec<String> = requests
        .iter()
        .map(|&(p, n, seed)| s.submit(json!({"prompt": p, "n": n, "seed": seed})))
        .collect();
    let batched: Vec<Vec<Vec<u8>>> = ids.iter().map(|id| s.images(id)).collect();
    let h = s.get("/health").json();
    assert!(
        h["largest_batch"].as_u64().unwrap() >= 4,
        "the four queued jobs ran in one batch: {h}"
    );
    // Each alone, one after the other.
    for (&(p, n, seed), together) in requests.iter().zip(&batched) {
        let id = s.submit(json!({"prompt": p, "n": n, "seed": seed}));
        let alone = s.images(&id);
        assert_eq!(alone.len(), n);
        for (a, b) in alone.iter().zip(together) {
            assert!(
                a == b,
                "'{p}' seed {seed}: the PNG bytes differ alone and batched"
            );
        }
    }
    s.delete(&format!("/v1/jobs/{blocker}"));
}

fn edit_input(s: &TestServer) -> Vec<u8> {
    let r = s.post(
        "/v1/images/generations",
        json!({"prompt": PROMPT, "seed": 5, "only_first_stage": true}),
    );
    b64(r.json()["data"][0]["b64_json"].as_str().unwrap())
}

#[test]
fn edits_take_multipart_images_masks_and_rectangles() {
    let s = TestServer::start(config());
    let input = edit_input(&s);
    let send = |parts: &[Part]| {
        let (ct, body) = multipart(parts);
        client::request(
            s.addr,
            "POST",
            "/v1/images/edits",
            &[("Content-Type", &ct)],
            &body,
            Duration::from_secs(600),
        )
        .unwrap()
    };
    // Rectangles, in pixels and in fractions.
    let r = send(&[
        Part::File("image", "in.png", &input),
        Part::Text("prompt", "a large red circle in the center"),
        Part::Text("n", "2"),
        Part::Text("seed", "3"),
        Part::Text("rect", "0,0,108,216"),
        Part::Text("rect_frac", "0.5,0.5,1,1"),
    ]);
    assert_eq!(r.status, 200, "{}", r.text());
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), 2);
    let png = b64(data[1]["b64_json"].as_str().unwrap());
    assert_eq!(dimensions(&png), (216, 216));
    let rec = record(&png);
    assert_eq!(rec.seed, 4);
    use sha2::Digest;
    match &rec.origin {
        Origin::Edit { image_sha256, mask } => {
            assert_eq!(*image_sha256, format!("{:x}", sha2::Sha256::digest(&input)));
            assert!(
                mask.contains("Pixels") && mask.contains("Fraction"),
                "{mask}"
            );
        }
        o => panic!("{o:?}"),
    }
    // An OpenAI-style mask: transparent pixels are redrawn.
    let mut mask = image::RgbaImage::from_pixel(216, 216, image::Rgba([0, 0, 0, 255]));
    for y in 0..216 {
        for x in 0..108 {
            mask.put_pixel(x, y, image::Rgba([0, 0, 0, 0]));
        }
    }
    let mut mask_png = Vec::new();
    mask.write_to(
        &mut std::io::Cursor::new(&mut mask_png),
        image::ImageFormat::Png,
    )
    .unwrap();
    let r = send(&[
        Part::File("image", "in.png", &input),
        Part::File("mask", "mask.png", &mask_png),
        Part::Text("prompt", "a large red circle in the center"),
        Part::Text("seed", "3"),
    ]);
    assert_eq!(r.status, 200, "{}", r.text());
    let png = b64(r.json()["data"][0]["b64_json"].as_str().unwrap());
    let out = image::load_from_memory(&png).unwrap().to_rgb8();
    let inp = image::load_from_memory(&input).unwrap().to_rgb8();
    // The kept (opaque) right half is close to the input; the redrawn left half changed.
    let diff = |x0: u32, x1: u32| {
        let mut d = 0u64;
        for y in 0..216 {
            for x in x0..x1 {
                for c in 0..3 {
                    d += out.get_pixel(x, y)[c].abs_diff(inp.get_pixel(x, y)[c]) as u64;
                }
            }
        }
        d as f64 / (216.0 * (x1 - x0) as f64 * 3.0)
    };
    assert!(
        diff(140, 216) < diff(0, 100),
        "kept {} vs redrawn {}",
        diff(140, 216),
        diff(0, 100)
    );
    // Nothing to redraw: 400 naming the mask.
    let r = send(&[
        Part::File("image", "in.png", &input),
        Part::Text("prompt", PROMPT),
    ]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "mask");
    // A file path as a field is refused by name.
    let r = send(&[
        Part::File("image", "in.png", &input),
        Part::Text("prompt", PROMPT),
        Part::Text("rect", "0,0,9,9"),
        Part::Text("model_dir", "/etc"),
    ]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "model_dir");
}

#[test]
fn finished_jobs_expire_after_the_ttl() {
    let s = TestServer::start(ServerConfig {
        job_ttl: Duration::from_millis(300),
        ..config()
    });
    let id = s.submit(json!({"prompt": PROMPT, "only_first_stage": true}));
    assert_eq!(s.wait(&id)["status"], "done");
    assert!(s.image_dir.join(&id).join("0.png").is_file());
    let t = Instant::now();
    while s.get(&format!("/v1/jobs/{id}")).status != 404 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the job did not expire"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!s.image_dir.join(&id).exists(), "its images went with it");
}

#[test]
fn a_request_over_the_timeout_gets_504_and_its_job_is_cancelled() {
    let s = TestServer::start(ServerConfig {
        request_timeout: Duration::from_millis(300),
        ..config()
    });
    let r = s.post("/v1/images/generations", json!({"prompt": PROMPT, "n": 8}));
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "timeout");
    let t = Instant::now();
    while s.get("/health").json()["cancelled"] != 1 {
        assert!(t.elapsed() < Duration::from_secs(3));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn shutdown_cancels_queued_jobs_and_leaves_no_files() {
    let s = TestServer::start(config());
    let running = s.submit(json!({"prompt": PROMPT, "n": 8}));
    s.wait_until_running(&running);
    let queued = s.submit(json!({"prompt": "a triangle", "n": 1}));
    let mut events = EventStream::open(s.addr, &format!("/v1/jobs/{queued}/events"), None).unwrap();
    let scheduler = s.scheduler.clone();
    let dir = s.image_dir.clone();
    let t = Instant::now();
    s.stop();
    assert!(t.elapsed() < Duration::from_secs(10));
    let mut names = Vec::new();
    while let Ok(Some((n, _))) = events.next_event() {
        names.push(n);
    }
    assert_eq!(
        names.last().map(String::as_str),
        Some("cancelled"),
        "{names:?}"
    );
    for id in [&running, &queued] {
        assert_eq!(
            scheduler.get(id).unwrap().status(),
            cogview_server::jobs::Status::Cancelled
        );
    }
    assert!(!dir.exists(), "the image folder is removed");
}

/// The pixels of a PNG.
fn pixels(png: &[u8]) -> Vec<u8> {
    image::load_from_memory(png).unwrap().to_rgb8().into_raw()
}

#[test]
fn a_request_in_another_style_gets_what_a_pipeline_in_that_style_makes() {
    let s = TestServer::start(config());
    // Independent expectation: the default model's pipeline built in each style.
    let expected = |style: &str, seed: u64| {
        let cfg = cogview::OpenOptions::default().config().unwrap();
        let cfg = cogview::PipelineConfig {
            style: Some(style.parse().unwrap()),
            ..cfg
        };
        let p = cogview::Pipeline::from_settings(cogview::Settings::resolve(&cfg, true).unwrap())
            .unwrap();
        let out = p
            .generate(PROMPT, 1, false, &cogview::RunContext::with_seed(seed))
            .unwrap();
        (out[0].image.pixels.clone(), p.settings().unwrap().clone())
    };
    // One long job holds the worker; two styles queue behind it, two jobs each.
    let blocker = s.submit(json!({"prompt": PROMPT, "n": 4, "seed": 98}));
    s.wait_until_running(&blocker);
    let requests = [("flat", 41), ("none", 42), ("flat", 43), ("oil", 44)];
    let ids: Vec<String> = requests
        .iter()
        .map(|&(style, seed)| s.submit(json!({"prompt": PROMPT, "seed": seed, "style": style})))
        .collect();
    for (&(style, seed), id) in requests.iter().zip(&ids) {
        let state = s.wait(id);
        assert_eq!(state["style"], style, "{state}");
        let png = &s.images(id)[0];
        let rec = record(png);
        let (want, settings) = expected(style, seed);
        assert!(
            pixels(png) == want,
            "style {style}, seed {seed}: not what a {style} pipeline draws"
        );
        // The record holds the style's settings (file names, not paths).
        let mut named = rec.clone();
        named.settings = settings;
        assert_eq!(rec, named.without_paths());
        assert_eq!(rec.settings.style.name(), style);
        assert!(rec.query.starts_with(PROMPT));
        // The server applied the style (not only the expectation): its record's query carries
        // the style's template. (The pixels alone cannot tell for every style: the default model
        // does not know the template's words, and its pipeline file sets the sampling values a
        // style would change, so a styled image may equal the plain one.)
        if style != "none" {
            assert_ne!(rec.query, PROMPT, "style {style}: no template in the query");
            assert!(rec.query.contains(PROMPT), "{}", rec.query);
        } else {
            assert_eq!(rec.query, PROMPT);
        }
    }
    let h = s.get("/health").json();
    assert!(
        h["largest_batch"].as_u64().unwrap() >= 2,
        "the two flat jobs ran in one batch: {h}"
    );
    // The OpenAI route takes the style too; an edit as well.
    let r = s.post(
        "/v1/images/generations",
        json!({"prompt": PROMPT, "seed": 41, "style": "flat"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let png = b64(r.json()["data"][0]["b64_json"].as_str().unwrap());
    assert!(pixels(&png) == expected("flat", 41).0);
    s.delete(&format!("/v1/jobs/{blocker}"));
}
