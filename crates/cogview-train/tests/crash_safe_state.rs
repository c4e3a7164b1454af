//! Training states are written crash-safely: a save interrupted by a kill or a full disk leaves the
//! last complete state, and training resumes from it.

use candle_core::{Device, Tensor, Var};
use cogview_candle::VarStore;
use cogview_train::optim::{load_state, save_state, AdamW};
use std::collections::HashMap;
use std::path::Path;

fn store(v: f32, n: usize) -> VarStore {
    let mut vs = VarStore::new();
    let t = Tensor::from_vec(vec![v; n], n, &Device::Cpu).unwrap();
    vs.insert("w", Var::from_tensor(&t).unwrap());
    vs
}

fn value(vs: &VarStore) -> f32 {
    let (_, v) = vs.vars().next().unwrap();
    v.as_tensor().to_vec1::<f32>().unwrap()[0]
}

fn save(path: &Path, v: f32, n: usize, step: u64) -> cogview_core::Result<()> {
    let mut opt = AdamW::new(1e-3, 0.0);
    opt.step = step;
    save_state(path, &store(v, n), &opt, &[], HashMap::new())
}

fn resume(path: &Path, n: usize) -> (f32, u64) {
    let vs = store(0.0, n);
    let mut opt = AdamW::new(1e-3, 0.0);
    load_state(path, &vs, &mut opt).unwrap();
    (value(&vs), opt.step)
}

#[test]
fn a_save_killed_midway_leaves_the_last_complete_state_to_resume_from() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.safetensors");
    save(&state, 1.0, 64, 100).unwrap();
    // A kill during the next save: what it leaves is a partial temporary file beside the state
    // (the rename never happened). Simulated by writing half of a real state under the
    // temporary name the writer uses.
    let next = dir.path().join("next.safetensors");
    save(&next, 2.0, 64, 200).unwrap();
    let bytes = std::fs::read(&next).unwrap();
    let partial = cogview_core::output::temp_path(&state);
    std::fs::write(&partial, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(resume(&state, 64), (1.0, 100), "the last complete state");
    // The next save completes over it, and training resumes from that one.
    save(&state, 3.0, 64, 300).unwrap();
    assert_eq!(resume(&state, 64), (3.0, 300));
}

#[test]
fn a_full_disk_during_a_save_is_a_clear_error_and_leaves_the_previous_state() {
    let Some(disk) = cogview_backend_tests::full_disk::small_disk(256 * 1024) else {
        return;
    };
    let state = disk.path().join("state.safetensors");
    save(&state, 1.0, 1024, 7).unwrap();
    disk.fill_leaving(16 * 1024);
    // 64 KiB of parameters and as much of moments do not fit in the 16 KiB left.
    let e = save(&state, 2.0, 16 * 1024, 8).unwrap_err().to_string();
    assert!(
        e.to_lowercase().contains("no space left") && e.contains("state.safetensors"),
        "{e}"
    );
    assert_eq!(disk.files(), ["state.safetensors"], "no partial file left");
    assert_eq!(resume(&state, 1024), (1.0, 7));
}
