//! icetk's image tokenizer as a description: the sizes of its hierarchical VQ-VAE (taming-style
//! ResNet encoder, residual down-samplers, a 1×1 pre-projection, one shared codebook, three
//! decoders for ×16, ×8 and ×4) and the `HVQVAE` tensor names `ice_image.pt` holds.

use cogview_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Sizes of an icetk VQ-VAE. The defaults are the official `ice_image.pt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VqConfig {
    /// Base channel count of the encoder and decoders (official 128).
    pub channels: usize,
    /// Encoder channel multipliers per level (official [1, 2, 4]: ×4 downsampling).
    pub enc_channels_mult: Vec<usize>,
    /// ResNet blocks per encoder level (official 2).
    pub enc_num_res_blocks: usize,
    /// Encoder output channels (official 256).
    pub z_channels: usize,
    /// Codebook vector size (official 256).
    pub embedding_dim: usize,
    /// Codebook entries (official 20000).
    pub n_embed: usize,
    /// Decoder multipliers for compression ×16, ×8, ×4 (official [1,1,1,2,4], [1,1,2,4], [1,2,4]).
    pub dec_channels_mult: [Vec<usize>; 3],
    /// `num_res_blocks` of the decoders; each level has this + 1 blocks (official 0).
    pub dec_num_res_blocks: usize,
    /// taming's nominal resolution, which decides where attention blocks are (official 256).
    pub resolution: usize,
    /// Resolutions with an attention block in the down/up paths (official [16]).
    pub attn_resolutions: Vec<usize>,
    /// GroupNorm groups (official 32).
    pub norm_groups: usize,
    /// GroupNorm epsilon (official 1e-6).
    pub norm_eps: f64,
    /// Pixel normalisation: x = (rgb/255 − mean) / std.
    pub mean: [f32; 3],
    /// Pixel normalisation's standard deviation per channel.
    pub std: [f32; 3],
    /// The compression rates (pixels per token side) whose paths were trained; others are
    /// refused. icetk's: 4, 8 and 16. cogview's default model is trained at 8 only.
    pub compressions: Vec<usize>,
}

impl Default for VqConfig {
    fn default() -> Self {
        VqConfig {
            channels: 128,
            enc_channels_mult: vec![1, 2, 4],
            enc_num_res_blocks: 2,
            z_channels: 256,
            embedding_dim: 256,
            n_embed: 20000,
            dec_channels_mult: [vec![1, 1, 1, 2, 4], vec![1, 1, 2, 4], vec![1, 2, 4]],
            dec_num_res_blocks: 0,
            resolution: 256,
            attn_resolutions: vec![16],
            norm_groups: 32,
            norm_eps: 1e-6,
            mean: [0.79093, 0.76271, 0.75340],
            std: [0.30379, 0.32279, 0.32800],
            compressions: vec![4, 8, 16],
        }
    }
}

/// A tensor name → shape list, built while describing the model, used for the strict check.
#[derive(Default)]
struct Expected(Vec<(String, Vec<usize>)>);

impl Expected {
    fn conv(&mut self, p: &str, cin: usize, cout: usize, k: usize) {
        self.0.push((format!("{p}.weight"), vec![cout, cin, k, k]));
        self.0.push((format!("{p}.bias"), vec![cout]));
    }
    fn norm(&mut self, p: &str, c: usize) {
        self.0.push((format!("{p}.weight"), vec![c]));
        self.0.push((format!("{p}.bias"), vec![c]));
    }
    fn resnet(&mut self, p: &str, cin: usize, cout: usize) {
        self.norm(&format!("{p}.norm1"), cin);
        self.conv(&format!("{p}.conv1"), cin, cout, 3);
        self.norm(&format!("{p}.norm2"), cout);
        self.conv(&format!("{p}.conv2"), cout, cout, 3);
        if cin != cout {
            self.conv(&format!("{p}.nin_shortcut"), cin, cout, 1);
        }
    }
    fn attn(&mut self, p: &str, c: usize) {
        self.norm(&format!("{p}.norm"), c);
        for n in ["q", "k", "v", "proj_out"] {
            self.conv(&format!("{p}.{n}"), c, c, 1);
        }
    }
}

impl VqConfig {
    /// Checks that the sizes are usable: positive, every level present, channels divisible by the
    /// GroupNorm groups, a positive `std`.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, why: String| Err(Error::config("vq config", key, why));
        if self.channels == 0
            || self.z_channels == 0
            || self.embedding_dim == 0
            || self.n_embed == 0
        {
            return bad("channels", "sizes must be positive".into());
        }
        if self.enc_channels_mult.is_empty() || self.dec_channels_mult.iter().any(|m| m.is_empty())
        {
            return bad(
                "channels_mult",
                "every multiplier list needs at least one level".into(),
            );
        }
        let groups_ok = |c: usize| self.norm_groups > 0 && c.is_multiple_of(self.norm_groups);
        let all = self
            .enc_channels_mult
            .iter()
            .chain(self.dec_channels_mult.iter().flatten());
        if let Some(m) = all.map(|m| m * self.channels).find(|c| !groups_ok(*c)) {
            return bad(
                "norm_groups",
                format!("{} groups do not divide {m} channels", self.norm_groups),
            );
        }
        if self.std.iter().any(|s| s.is_nan() || *s <= 0.0) {
            return bad("std", "must be positive".into());
        }
        Ok(())
    }

    /// Every tensor `ice_image.pt` must hold, with its shape.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let mut e = Expected::default();
        let ch = self.channels;
        // Encoder.
        let m = &self.enc_channels_mult;
        e.conv("enc.conv_in", 3, ch, 3);
        let mut cin = ch;
        let mut res = self.resolution;
        for (i, &mult) in m.iter().enumerate() {
            let cout = ch * mult;
            for j in 0..self.enc_num_res_blocks {
                e.resnet(&format!("enc.down.{i}.block.{j}"), cin, cout);
                cin = cout;
                if self.attn_resolutions.contains(&res) {
                    e.attn(&format!("enc.down.{i}.attn.{j}"), cout);
                }
            }
            if i + 1 != m.len() {
                e.conv(&format!("enc.down.{i}.downsample.conv"), cin, cin, 3);
                res /= 2;
            }
        }
        e.resnet("enc.mid.block_1", cin, cin);
        e.attn("enc.mid.attn_1", cin);
        e.resnet("enc.mid.block_2", cin, cin);
        e.norm("enc.norm_out", cin);
        e.conv("enc.conv_out", cin, self.z_channels, 3);
        for l in 0..2 {
            e.conv(
                &format!("down_samplers.{l}.conv_down_sampler.conv"),
                self.z_channels,
                self.z_channels,
                3,
            );
        }
        e.conv("quantize.proj", self.z_channels, self.embedding_dim, 1);
        e.0.push((
            "quantize.embed.weight".into(),
            vec![self.n_embed, self.embedding_dim],
        ));
        for (d, m) in self.dec_channels_mult.iter().enumerate() {
            let p = format!("decs.{d}");
            let mut block_in = ch * m[m.len() - 1];
            let mut res = self.resolution >> (m.len() - 1);
            e.conv(&format!("{p}.conv_in"), self.embedding_dim, block_in, 3);
            e.resnet(&format!("{p}.mid.block_1"), block_in, block_in);
            e.attn(&format!("{p}.mid.attn_1"), block_in);
            e.resnet(&format!("{p}.mid.block_2"), block_in, block_in);
            for i in (0..m.len()).rev() {
                let cout = ch * m[i];
                for j in 0..self.dec_num_res_blocks + 1 {
                    e.resnet(&format!("{p}.up.{i}.block.{j}"), block_in, cout);
                    block_in = cout;
                    if self.attn_resolutions.contains(&res) {
                        e.attn(&format!("{p}.up.{i}.attn.{j}"), cout);
                    }
                }
                if i != 0 {
                    e.conv(&format!("{p}.up.{i}.upsample.conv"), block_in, block_in, 3);
                    res *= 2;
                }
            }
            e.norm(&format!("{p}.norm_out"), block_in);
            e.conv(&format!("{p}.conv_out"), block_in, 3, 3);
        }
        e.0
    }
}

impl VqConfig {
    /// Parameter count (the training-only buffers of icetk's EMA quantizer excluded).
    pub fn parameters(&self) -> usize {
        crate::tensors::count(&self.expected_tensors())
    }
}

/// Training-only buffers of icetk's EMA quantizer: present in `ice_image.pt`, used by no forward
/// pass. Checks of a checkpoint against [`VqConfig::expected_tensors`] accept them.
pub fn is_training_buffer(name: &str) -> bool {
    matches!(
        name,
        "quantize.cluster_size" | "quantize.embed_avg" | "quantize.initted"
    )
}
