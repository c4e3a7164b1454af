//! Prints how far the tch plugin's outputs are from the candle backend's on the inputs of the
//! backend conformance suite: the largest logit difference of CogLM (full pass and a cached step),
//! DSR and ItersR, the share of equal VQ codes and the largest decoded-pixel difference, per dtype.
//! The reference is the candle plugin (the built-in backend's code behind the ABI, bit-identical
//! to it), so that this crate does not link candle.
//!
//!   cargo build --release -p cogview-plugin-candle
//!   COGVIEW_TCH_PLUGIN=$(tools/build-tch-plugin.sh) \
//!     cargo run --release --manifest-path plugins/tch/Cargo.toml --example parity -- tests/fixtures/model-dir
//!
//! `COGVIEW_CANDLE_PLUGIN` names the candle plugin if it is not target/release/libcogview_plugin_candle.so.

use cogview_core::backend::LoadRequest;
use cogview_core::stage1::{full_logits, CoglmMask};
use cogview_core::lm::{LmInput, LogitsRequest};
use cogview_core::sr::predict_grid;
use cogview_core::{Compression, DType, Device, Image, TokenGrid};
use std::path::PathBuf;

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| if x.is_infinite() && x == y { 0.0 } else { (x - y).abs() })
        .fold(0.0, f32::max)
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or("tests/fixtures/model-dir".into()));
    let lib = PathBuf::from(std::env::var_os("COGVIEW_TCH_PLUGIN").expect("COGVIEW_TCH_PLUGIN"));
    let t = cogview_plugin_host::load_path(&lib).unwrap().backend_for(Device::Cpu).unwrap();
    let candle = std::env::var_os("COGVIEW_CANDLE_PLUGIN")
        .map_or_else(|| PathBuf::from("target/release/libcogview_plugin_candle.so"), PathBuf::from);
    let r = cogview_plugin_host::load_path(&candle).unwrap().backend_for(Device::Cpu).unwrap();
    for dtype in [DType::F32, DType::Bf16] {
        let req = LoadRequest::new(Device::Cpu, dtype);
        let (rl, tl) = (
            r.load_lm(&dir.join("coglm"), &req).unwrap(),
            t.load_lm(&dir.join("coglm"), &req).unwrap(),
        );
        let spec = rl.spec();
        let text: Vec<u32> = (0..7).map(|i| 512 + 37 * i).collect();
        let mut tokens = text.clone();
        tokens.push(spec.start_of_image_id);
        tokens.extend((0..6).map(|i| (i * 53) % spec.image_vocab_size as u32));
        let positions: Vec<u32> = (0..tokens.len() as u32).collect();
        let mask = CoglmMask { text_len: text.len(), text_bias: 1.4 };
        let v = spec.vocab_size;
        let a = full_logits(rl.as_ref(), &tokens, &positions, mask, v).unwrap();
        let b = full_logits(tl.as_ref(), &tokens, &positions, mask, v).unwrap();
        let n = tokens.len();
        let mut s = tl.new_session(1, n).unwrap();
        s.forward(&LmInput {
            tokens: &tokens[..n - 1],
            positions: &positions[..n - 1],
            bias: &mask.bias_rows(0, n - 1, n - 1),
            logits: LogitsRequest::Last { vocab: v },
        })
        .unwrap();
        let step = s
            .forward(&LmInput {
                tokens: &tokens[n - 1..],
                positions: &positions[n - 1..],
                bias: &mask.bias_rows(n - 1, 1, n),
                logits: LogitsRequest::Last { vocab: v },
            })
            .unwrap();
        println!(
            "{dtype:?}: CogLM max |Δlogit| {:.2e}, cached step vs reference {:.2e}",
            max_diff(&a.data, &b.data),
            max_diff(&step.data, a.row(n - 1))
        );
        let (c, _) = cogview_model::inspect::sr_config(dir.join("cogview2-dsr")).unwrap();
        let low = TokenGrid::new(c.low, c.low, (0..c.low * c.low).map(|i| (i * 7 % 512) as u32).collect()).unwrap();
        let mut ids: Vec<u32> = (0..c.high * c.high).map(|i| (i * 11 % 512) as u32).collect();
        for i in (0..ids.len()).step_by(3) {
            ids[i] = spec.start_of_image_id;
        }
        let high = TokenGrid::new(c.high, c.high, ids).unwrap();
        for (name, grid) in [("cogview2-dsr", &low), ("cogview2-itersr", &high)] {
            let a = predict_grid(r.load_grid_predictor(&dir.join(name), &req).unwrap().as_ref(), &text, grid).unwrap();
            let b = predict_grid(t.load_grid_predictor(&dir.join(name), &req).unwrap().as_ref(), &text, grid).unwrap();
            println!("{dtype:?}: {name} max |Δlogit| {:.2e}", max_diff(&a.data, &b.data));
        }
        let (w, h) = (32, 32);
        let px = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [(x * 8) as u8, (y * 8) as u8, ((x + y) * 4) as u8]
            })
            .collect();
        let image = Image::new(w, h, px).unwrap();
        let rv = r.load_image_tokenizer(&dir.join("ice_image.pt"), &req).unwrap();
        let tv = t.load_image_tokenizer(&dir.join("ice_image.pt"), &req).unwrap();
        let (ca, cb) = (rv.encode(&image, Compression::X8).unwrap(), tv.encode(&image, Compression::X8).unwrap());
        let same = ca.ids.iter().zip(&cb.ids).filter(|(x, y)| x == y).count();
        let (pa, pb) = (rv.decode(&ca, Compression::X8).unwrap(), tv.decode(&ca, Compression::X8).unwrap());
        let worst = pa.pixels.iter().zip(&pb.pixels).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
        println!("{dtype:?}: VQ codes equal {same}/{}, decoded pixels max |Δ| {worst}", ca.ids.len());
    }
}
