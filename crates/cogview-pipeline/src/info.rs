//! `cogview info PATH`: what a checkpoint folder or file is, how big, in which dtype, and what is
//! wrong with it. Reads configurations and checkpoint headers; with `verify`, every tensor too
//! (which checks the CRC-32 of each record of a torch zip).

use crate::settings::{CLUSTER_LABELS, COGLM, DSR, IMAGE_TOKENIZER, ITERSR, TEXT_TOKENIZER};
use cogview_checkpoint::Checkpoint;
use cogview_core::Result;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The description of one path (and of its parts, for a model folder).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Description {
    /// The path described.
    pub path: PathBuf,
    /// What it is (e.g. "CogLM checkpoint (SAT folder)").
    pub kind: String,
    /// (label, value) lines.
    pub facts: Vec<(String, String)>,
    /// What is wrong with it (empty: nothing found).
    pub problems: Vec<String>,
    /// Its parts (the files of a model folder).
    pub parts: Vec<Description>,
}

impl Description {
    fn new(path: &Path, kind: impl Into<String>) -> Self {
        Description {
            path: path.to_path_buf(),
            kind: kind.into(),
            facts: Vec::new(),
            problems: Vec::new(),
            parts: Vec::new(),
        }
    }
    fn fact(&mut self, k: &str, v: impl ToString) {
        self.facts.push((k.into(), v.to_string()));
    }

    /// Every problem of this path and its parts.
    pub fn all_problems(&self) -> Vec<String> {
        let mut v = self.problems.clone();
        for p in &self.parts {
            v.extend(p.all_problems());
        }
        v
    }
}

impl std::fmt::Display for Description {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn write(
            d: &Description,
            f: &mut std::fmt::Formatter<'_>,
            indent: usize,
        ) -> std::fmt::Result {
            let pad = " ".repeat(indent);
            writeln!(f, "{pad}{}: {}", d.path.display(), d.kind)?;
            for (k, v) in &d.facts {
                writeln!(f, "{pad}  {k}: {v}")?;
            }
            for p in &d.problems {
                writeln!(f, "{pad}  problem: {p}")?;
            }
            for p in &d.parts {
                write(p, f, indent + 2)?;
            }
            Ok(())
        }
        write(self, f, 0)
    }
}

fn tensor_facts(d: &mut Description, ckpt: &Checkpoint, verify: bool) {
    let mut params = 0u64;
    let mut bytes = 0u64;
    let mut dtypes: BTreeMap<&'static str, usize> = BTreeMap::new();
    for name in ckpt.names() {
        if let Some(info) = ckpt.info(name) {
            let n: u64 = info.shape.iter().product::<usize>() as u64;
            params += n;
            bytes += n * info.dtype.size() as u64;
            *dtypes.entry(info.dtype.name()).or_default() += 1;
        }
    }
    d.fact("format", format!("{:?}", ckpt.format()));
    d.fact("tensors", ckpt.len());
    d.fact("parameters", params);
    d.fact("tensor bytes", crate::dry_run::human_bytes(bytes));
    d.fact(
        "dtypes",
        dtypes
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    if verify {
        let mut bad = 0;
        for name in ckpt.names() {
            if let Err(e) = ckpt.bytes(name) {
                bad += 1;
                if bad <= 5 {
                    d.problems.push(format!("tensor {name}: {e}"));
                }
            }
        }
        if bad > 5 {
            d.problems
                .push(format!("{} more unreadable tensors", bad - 5));
        }
        if bad == 0 {
            d.fact("verified", "every tensor read back (checksums match)");
        }
    }
}

fn describe_sat(path: &Path, verify: bool) -> Description {
    let mut d = Description::new(path, "SAT checkpoint");
    let cfg = match cogview_model::inspect::model_config(path) {
        Ok(c) => c,
        Err(e) => {
            d.problems.push(e.to_string());
            return d;
        }
    };
    let class = cfg
        .opt_str("model_class")
        .ok()
        .flatten()
        .unwrap_or("?")
        .to_string();
    let ckpt = match cogview_model::inspect::open_checkpoint(path) {
        Ok(c) => c,
        Err(e) => {
            d.problems.push(e.to_string());
            return d;
        }
    };
    let sr = ckpt
        .info("mixins.extra_position_embedding.position_embeddings.weight")
        .is_some()
        || class == "DsrModel"
        || class == "ItersrModel";
    let expected = if sr {
        match cogview_model::inspect::sr_config(path) {
            Ok((c, _)) => {
                d.kind = match c.kind {
                    cogview_model::SrKind::Dsr => format!(
                        "DSR checkpoint ({class}: {0}x{0} to {1}x{1} tokens)",
                        c.low, c.high
                    ),
                    cogview_model::SrKind::Itersr => {
                        format!(
                            "ItersR checkpoint ({class}: refines {0}x{0} tokens)",
                            c.high
                        )
                    }
                };
                let b = &c.backbone;
                d.fact(
                    "transformer",
                    format!(
                        "{} layers, hidden {}, {} heads, vocabulary {} ({} image codes)",
                        b.num_layers,
                        b.hidden_size,
                        b.num_attention_heads,
                        b.vocab_size,
                        b.image_vocab_size
                    ),
                );
                Some(c.expected_tensors())
            }
            Err(e) => {
                d.problems.push(e.to_string());
                None
            }
        }
    } else {
        match cogview_model::inspect::coglm_config(path) {
            Ok((c, _)) => {
                d.kind = format!("CogLM checkpoint ({class})");
                d.fact(
                    "transformer",
                    format!(
                        "{} layers, hidden {}, {} heads, vocabulary {} ({} image codes, <start_of_image> {})",
                        c.num_layers,
                        c.hidden_size,
                        c.num_attention_heads,
                        c.vocab_size,
                        c.image_vocab_size,
                        c.start_of_image_id
                    ),
                );
                Some(c.expected_tensors())
            }
            Err(e) => {
                d.problems.push(e.to_string());
                None
            }
        }
    };
    if let Ok(sat) = cogview_checkpoint::SatFolder::open(path) {
        d.fact("iteration", &sat.iteration);
        d.fact("weights file", sat.model_file.display());
    }
    tensor_facts(&mut d, &ckpt, verify);
    if let Some(e) = expected {
        if let Err(err) = ckpt.check(&e, |_| false) {
            d.problems.push(err.to_string());
        }
    }
    d
}

fn describe_vq(path: &Path, verify: bool) -> Description {
    let mut d = Description::new(path, "icetk image tokenizer (VQ-VAE)");
    match (
        cogview_model::inspect::vq_config(path),
        cogview_model::inspect::open_checkpoint(path),
    ) {
        (Ok((c, _)), Ok(ckpt)) => {
            d.fact(
                "codebook",
                format!("{} codes of dimension {}", c.n_embed, c.embedding_dim),
            );
            d.fact("channels", c.channels);
            tensor_facts(&mut d, &ckpt, verify);
            if let Err(e) = ckpt.check(&c.expected_tensors(), cogview_model::vq::is_training_buffer)
            {
                d.problems.push(e.to_string());
            }
        }
        (Err(e), _) | (_, Err(e)) => d.problems.push(e.to_string()),
    }
    d
}

fn describe_weights_file(path: &Path, verify: bool) -> Description {
    match Checkpoint::open(path, None) {
        Ok(ckpt) => {
            if ckpt.info("quantize.embed.weight").is_some() {
                describe_vq(path, verify)
            } else if ckpt.info("transformer.word_embeddings.weight").is_some() {
                describe_sat(path, verify)
            } else {
                let mut d = Description::new(path, "checkpoint of unknown kind");
                tensor_facts(&mut d, &ckpt, verify);
                d
            }
        }
        Err(e) => {
            let mut d = Description::new(path, "unreadable checkpoint");
            d.problems.push(e.to_string());
            d
        }
    }
}

fn describe_text_model(path: &Path) -> Description {
    let mut d = Description::new(path, "icetk text tokenizer (SentencePiece)");
    match cogview_text::IceTextTokenizer::from_file(path) {
        Ok(t) => {
            d.fact("pieces", t.len() - cogview_text::SPECIAL_TOKENS.len());
            d.fact(
                "ids with icetk's offset",
                format!("{}..{}", t.offset(), t.offset() as usize + t.len()),
            );
            if let Some(id) = t.piece_id("<start_of_image>") {
                d.fact("<start_of_image>", id);
            }
        }
        Err(e) => d.problems.push(e.to_string()),
    }
    d
}

fn describe_labels(path: &Path) -> Description {
    let mut d = Description::new(path, "cluster table (cluster sampling)");
    match cogview_core::sampling::ClusterLabels::from_npy_file(path) {
        Ok(l) => {
            let mut sizes = vec![0usize; l.num_clusters()];
            for &c in l.labels() {
                sizes[c as usize] += 1;
            }
            sizes.sort_unstable();
            d.fact("codes", l.len());
            d.fact("clusters", l.num_clusters());
            d.fact(
                "cluster sizes",
                format!(
                    "min {}, median {}, max {}",
                    sizes[0],
                    sizes[sizes.len() / 2],
                    sizes[sizes.len() - 1]
                ),
            );
            if sizes[0] == 0 {
                d.problems.push("some clusters are empty".into());
            }
        }
        Err(e) => d.problems.push(e.to_string()),
    }
    d
}

/// Describes a model folder (official layout), a SAT folder, or a single file.
pub fn describe(path: &Path, verify: bool) -> Result<Description> {
    if !path.exists() {
        return Err(cogview_core::Error::invalid_input(
            "path",
            format!("{} does not exist", path.display()),
        ));
    }
    if path.is_dir() {
        if path.join("latest").is_file() {
            return Ok(describe_sat(path, verify));
        }
        let mut d = Description::new(path, "model folder (official CogView2 layout)");
        for part in [
            COGLM,
            DSR,
            ITERSR,
            IMAGE_TOKENIZER,
            TEXT_TOKENIZER,
            CLUSTER_LABELS,
        ] {
            let p = path.join(part.name);
            if !p.exists() {
                if part.name == CLUSTER_LABELS.name {
                    d.facts.push((
                        part.name.into(),
                        "absent (the official table built into cogview is used)".into(),
                    ));
                } else {
                    d.problems.push(format!(
                        "{} is missing: it should be {}",
                        part.name, part.what
                    ));
                }
                continue;
            }
            d.parts.push(if part.name == IMAGE_TOKENIZER.name {
                describe_vq(&p, verify)
            } else if part.name == TEXT_TOKENIZER.name {
                describe_text_model(&p)
            } else if part.name == CLUSTER_LABELS.name {
                describe_labels(&p)
            } else {
                describe_sat(&p, verify)
            });
        }
        return Ok(d);
    }
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    Ok(match ext.as_str() {
        "model" => describe_text_model(path),
        "npy" => describe_labels(path),
        _ => describe_weights_file(path, verify),
    })
}
