//! How many of a held-out scene's image tokens a model trained on the other scenes could have
//! learnt to emit: every single-object scene is rendered at a stage-1 grid's size and encoded
//! with the image tokenizer; for each held-out scene, the share of its object's tokens (those
//! that differ from the blank canvas's) whose code occurs in some training scene, anywhere and
//! at the same grid position; and how many objects have their whole token pattern (tokens relative
//! to their bounding box) in a training scene at another place. Printed per held-out kind, for
//! each grid side given.
//!
//!   cargo run --release --example heldout_code_coverage -- models/default/ice_image.safetensors 8 9

use cogview::{Compression, ImageTokenizer};
use cogview_scenes::{split::single_object_scenes, Scene, HELDOUT_COLOUR_SHAPE};
use std::collections::HashSet;

fn main() -> cogview::Result<()> {
    let mut args = std::env::args().skip(1);
    let vq_path = args
        .next()
        .unwrap_or_else(|| "models/default/ice_image.safetensors".into());
    let grids: Vec<usize> = args.map(|a| a.parse().expect("a grid side")).collect();
    let vq =
        cogview::candle::VqTokenizer::load(std::path::Path::new(&vq_path), Default::default())?;
    for grid in if grids.is_empty() { vec![8, 9] } else { grids } {
        let side = grid * 8;
        let encode = |scene: &Scene| -> cogview::Result<Vec<u32>> {
            let img = cogview_scenes::render(scene, side)
                .map_err(|e| cogview::Error::backend_source("", e))?;
            Ok(vq.encode(&img, Compression::X8)?.ids)
        };
        let white = cogview::Image::new(side, side, vec![255; side * side * 3])?;
        let blank = vq.encode(&white, Compression::X8)?.ids;
        let scenes = single_object_scenes();
        let mut codes = Vec::with_capacity(scenes.len());
        for s in &scenes {
            codes.push(encode(s)?);
        }
        // Codes of the training scenes, anywhere and per position.
        let mut anywhere = HashSet::new();
        let mut at = HashSet::new();
        for (s, c) in scenes.iter().zip(&codes) {
            if !s.is_heldout() {
                for (i, &code) in c.iter().enumerate() {
                    anywhere.insert(code);
                    at.insert((i, code));
                }
            }
        }
        // An object's token pattern: its tokens relative to their bounding box.
        let pattern = |c: &[u32]| -> Vec<(usize, usize, u32)> {
            let cells: Vec<(usize, usize, u32)> = c
                .iter()
                .enumerate()
                .filter(|(i, &code)| code != blank[*i])
                .map(|(i, &code)| (i / grid, i % grid, code))
                .collect();
            let r0 = cells.iter().map(|x| x.0).min().unwrap_or(0);
            let c0 = cells.iter().map(|x| x.1).min().unwrap_or(0);
            cells
                .iter()
                .map(|&(r, c, code)| (r - r0, c - c0, code))
                .collect()
        };
        let patterns: Vec<Vec<(usize, usize, u32)>> = codes.iter().map(|c| pattern(c)).collect();
        let trained_patterns: HashSet<&Vec<(usize, usize, u32)>> = scenes
            .iter()
            .zip(&patterns)
            .filter(|(s, _)| !s.is_heldout())
            .map(|(_, p)| p)
            .collect();
        // The share of an object's tokens that equal, shifted by the cells' distance in tokens
        // (rounded), the tokens of the same colour, shape and size at the best training cell.
        let translated = |scene: &Scene, c: &[u32]| -> f64 {
            let o = &scene.objects[0];
            let mine: Vec<usize> = (0..c.len()).filter(|&i| c[i] != blank[i]).collect();
            let mut best = 0usize;
            for (t, tc) in scenes.iter().zip(&codes) {
                let p = &t.objects[0];
                if t.is_heldout()
                    || p.cell == o.cell
                    || (p.colour, p.shape, p.size) != (o.colour, o.shape, o.size)
                {
                    continue;
                }
                let shift =
                    |a: usize, b: usize| ((b as f64 - a as f64) * grid as f64 / 3.0).round() as i64;
                let (dr, dc) = (
                    shift(o.cell.row(), p.cell.row()),
                    shift(o.cell.col(), p.cell.col()),
                );
                let hits = mine
                    .iter()
                    .filter(|&&i| {
                        let (r, col) = ((i / grid) as i64 + dr, (i % grid) as i64 + dc);
                        (0..grid as i64).contains(&r)
                            && (0..grid as i64).contains(&col)
                            && tc[r as usize * grid + col as usize] == c[i]
                    })
                    .count();
                best = best.max(hits);
            }
            best as f64 / mine.len().max(1) as f64
        };
        let mut moved = [(0usize, 0f64); 3];
        // [kind] -> (objects, whose whole pattern a training scene has, translated)
        let mut whole = [(0usize, 0usize); 3];
        // [kind] -> (object tokens, seen anywhere, seen at that position)
        let mut tally = [(0usize, 0usize, 0usize); 3];
        for (index, (s, c)) in scenes.iter().zip(&codes).enumerate() {
            let o = &s.objects[0];
            let kind = if !s.is_heldout() {
                2
            } else if HELDOUT_COLOUR_SHAPE.contains(&(o.colour, o.shape)) {
                0
            } else {
                1
            };
            whole[kind].0 += 1;
            moved[kind].0 += 1;
            moved[kind].1 += translated(s, c);
            let p = &patterns[index];
            if kind != 2 {
                whole[kind].1 += trained_patterns.contains(p) as usize;
            } else {
                // A training object counts when its pattern also occurs at another cell.
                whole[kind].1 += scenes
                    .iter()
                    .zip(&patterns)
                    .any(|(t, tp)| !t.is_heldout() && t.objects[0].cell != o.cell && tp == p)
                    as usize;
            }
            for (i, &code) in c.iter().enumerate() {
                if code != blank[i] {
                    tally[kind].0 += 1;
                    tally[kind].1 += anywhere.contains(&code) as usize;
                    tally[kind].2 += at.contains(&(i, code)) as usize;
                }
            }
        }
        println!("{grid}×{grid} grid ({side} px), object tokens whose code a training scene has:");
        for (((name, (n, any, same)), (objects, with_pattern)), (m, share)) in [
            "held out: colour×shape pair",
            "held out: shape×cell pair only",
            "training scenes (themselves)",
        ]
        .iter()
        .zip(tally)
        .zip(whole)
        .zip(moved)
        {
            println!(
                "  {name:<32} {n:>5} tokens: anywhere {:>5.1}%, at the same position {:>5.1}%; \
                 whole object pattern elsewhere: {}/{} objects; \
                 tokens equal to the same object moved from a training cell: {:.1}%",
                100.0 * any as f64 / n.max(1) as f64,
                100.0 * same as f64 / n.max(1) as f64,
                with_pattern,
                objects,
                100.0 * share / m.max(1) as f64
            );
        }
    }
    Ok(())
}
