//! Deterministic random weights, held under their Hugging Face names.
//!
//! Each tensor has its own SplitMix64 stream seeded from the spec's seed and the tensor's HF
//! name, so a tensor does not change when others are added, and the values are the same on
//! every platform (integer arithmetic, then exact or correctly rounded f32 operations).

use std::borrow::Cow;

use super::spec::{Arch, TinySpec};

/// A dense row-major f32 tensor, shape outermost first (as in PyTorch and candle).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct F32Tensor {
    /// Dimensions, outermost first: `[out, in]` for a linear weight.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl F32Tensor {
    /// Row `r` of a 2-D tensor.
    pub fn row(&self, r: usize) -> &[f32] {
        let cols = self.shape.last().copied().unwrap_or(0);
        self.data.get(r * cols..(r + 1) * cols).unwrap_or(&[])
    }
}

impl safetensors::View for &F32Tensor {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        // safetensors is little-endian: borrow the values as they are where that is native
        if cfg!(target_endian = "little") {
            Cow::Borrowed(bytemuck::cast_slice(&self.data))
        } else {
            Cow::Owned(self.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        }
    }

    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// What a tensor is for; decides its HF name, its GGUF name and whether LoRA targets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    /// Token embeddings `[vocab, hidden]`.
    Embed,
    /// RMSNorm before attention `[hidden]`.
    AttnNorm,
    /// Phi-3's fused q,k,v projection `[(heads + 2 kv_heads) * head_dim, hidden]`.
    Qkv,
    /// Llama query projection `[heads * head_dim, hidden]`.
    Q,
    /// Llama key projection `[kv_heads * head_dim, hidden]`.
    K,
    /// Llama value projection `[kv_heads * head_dim, hidden]`.
    V,
    /// Attention output projection `[hidden, heads * head_dim]`.
    O,
    /// RMSNorm before the MLP `[hidden]`.
    FfnNorm,
    /// Phi-3's fused gate and up projection `[2 ffn, hidden]`, gate rows first.
    GateUp,
    /// Llama gate projection `[ffn, hidden]`.
    Gate,
    /// Llama up projection `[ffn, hidden]`.
    Up,
    /// MLP down projection `[hidden, ffn]`.
    Down,
    /// Final RMSNorm `[hidden]`.
    OutputNorm,
    /// Unembedding `[vocab, hidden]` (not tied).
    Output,
}

impl Role {
    /// The module path inside a layer (`self_attn.qkv_proj`), for per-layer linear roles.
    pub fn layer_module(self) -> Option<&'static str> {
        Some(match self {
            Self::AttnNorm => "input_layernorm",
            Self::FfnNorm => "post_attention_layernorm",
            Self::Qkv => "self_attn.qkv_proj",
            Self::Q => "self_attn.q_proj",
            Self::K => "self_attn.k_proj",
            Self::V => "self_attn.v_proj",
            Self::O => "self_attn.o_proj",
            Self::GateUp => "mlp.gate_up_proj",
            Self::Gate => "mlp.gate_proj",
            Self::Up => "mlp.up_proj",
            Self::Down => "mlp.down_proj",
            Self::Embed | Self::OutputNorm | Self::Output => return None,
        })
    }

    /// The transformers parameter name, e.g. `model.layers.0.self_attn.qkv_proj.weight`.
    pub fn hf_name(self, layer: usize) -> String {
        match (self, self.layer_module()) {
            (_, Some(module)) => format!("model.layers.{layer}.{module}.weight"),
            (Self::Embed, None) => "model.embed_tokens.weight".to_owned(),
            (Self::OutputNorm, None) => "model.norm.weight".to_owned(),
            _ => "lm_head.weight".to_owned(),
        }
    }

    /// Whether the tensor is a norm (1-D, kept F32 in every GGUF).
    pub fn is_norm(self) -> bool {
        matches!(self, Self::AttnNorm | Self::FfnNorm | Self::OutputNorm)
    }

    /// The per-layer roles of `arch`, in the order they are generated and written.
    pub fn layer_roles(arch: Arch) -> &'static [Role] {
        match arch {
            Arch::Phi3 => &[
                Self::AttnNorm,
                Self::Qkv,
                Self::O,
                Self::FfnNorm,
                Self::GateUp,
                Self::Down,
            ],
            Arch::Llama => &[
                Self::AttnNorm,
                Self::Q,
                Self::K,
                Self::V,
                Self::O,
                Self::FfnNorm,
                Self::Gate,
                Self::Up,
                Self::Down,
            ],
        }
    }

    /// `[out, in]` (or `[hidden]` for norms) of this role in `spec`.
    pub fn shape(self, spec: &TinySpec) -> Vec<usize> {
        let (h, hd, f, v) = (spec.hidden, spec.head_dim(), spec.ffn, spec.vocab);
        match self {
            Self::Embed | Self::Output => vec![v, h],
            Self::AttnNorm | Self::FfnNorm | Self::OutputNorm => vec![h],
            Self::Qkv => vec![(spec.heads + 2 * spec.kv_heads) * hd, h],
            Self::Q => vec![spec.heads * hd, h],
            Self::K | Self::V => vec![spec.kv_heads * hd, h],
            Self::O => vec![h, spec.heads * hd],
            Self::GateUp => vec![2 * f, h],
            Self::Gate | Self::Up => vec![f, h],
            Self::Down => vec![h, f],
        }
    }
}

/// One named tensor of a model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Weight {
    /// What it is.
    pub role: Role,
    /// Its block, 0 for model-level tensors.
    pub layer: usize,
    /// Its values.
    pub tensor: F32Tensor,
}

impl Weight {
    /// The transformers name.
    pub fn hf_name(&self) -> String {
        self.role.hf_name(self.layer)
    }
}

/// Every tensor of a model, as `(role, layer)`, in a fixed order: embeddings, each block,
/// final norm, output.
pub(crate) fn weight_slots(spec: &TinySpec) -> Vec<(Role, usize)> {
    let mut slots = vec![(Role::Embed, 0)];
    for layer in 0..spec.layers {
        slots.extend(Role::layer_roles(spec.arch).iter().map(|&r| (r, layer)));
    }
    slots.extend([(Role::OutputNorm, 0), (Role::Output, 0)]);
    slots
}

/// The tensor `role` of block `layer` (0 for model-level tensors), from its own stream.
pub(crate) fn weight(spec: &TinySpec, role: Role, layer: usize) -> Weight {
    let shape = role.shape(spec);
    let name = role.hf_name(layer);
    let data = if role.is_norm() {
        // around 1.0 ± 0.1, like a trained norm
        random_values(spec.seed, &name, shape.iter().product(), 0.1)
            .into_iter()
            .map(|x| 1.0 + x)
            .collect()
    } else {
        // uniform in ±1/sqrt(fan_in) keeps every activation near unit scale
        let fan_in = shape.last().copied().unwrap_or(1);
        let amplitude = match role {
            Role::Embed => 1.0,
            _ => 1.0 / (fan_in as f32).sqrt(),
        };
        random_values(spec.seed, &name, shape.iter().product(), amplitude)
    };
    Weight {
        role,
        layer,
        tensor: F32Tensor { shape, data },
    }
}

/// All tensors of a tiny model in [`weight_slots`] order.
pub(crate) fn model_weights(spec: &TinySpec) -> Vec<Weight> {
    weight_slots(spec)
        .into_iter()
        .map(|(role, layer)| weight(spec, role, layer))
        .collect()
}

/// `count` values uniform in `[-amplitude, amplitude)` from the stream named `stream`.
pub(crate) fn random_values(seed: u64, stream: &str, count: usize, amplitude: f32) -> Vec<f32> {
    let mut rng = SplitMix64::new(seed ^ fnv1a(stream.as_bytes()));
    (0..count)
        .map(|_| rng.symmetric_unit() * amplitude)
        .collect()
}

/// FNV-1a, 64-bit: a stable hash of a stream name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Steele, Lea and Flood's SplitMix64: tiny, fast, and the same everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[-1, 1)` on a grid of 2^-23: every step is exact in f32.
    fn symmetric_unit(&mut self) -> f32 {
        let bits = (self.next_u64() >> 40) as u32; // 24 bits
        (bits as f32) * (1.0 / 8_388_608.0) - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 1234567 (from the reference C code).
        let mut rng = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
    }

    #[test]
    fn values_stay_in_range_and_streams_differ() {
        let a = random_values(7, "a", 10_000, 0.5);
        assert!(a.iter().all(|v| (-0.5..0.5).contains(v)));
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert_ne!(a, random_values(7, "b", 10_000, 0.5));
        assert_eq!(a, random_values(7, "a", 10_000, 0.5));
        assert_ne!(a, random_values(8, "a", 10_000, 0.5));
    }

    #[test]
    fn shapes_follow_the_hf_layout() {
        let spec = TinySpec::llama();
        let weights = model_weights(&spec);
        let shape = |name: &str| {
            weights
                .iter()
                .find(|w| w.hf_name() == name)
                .map(|w| w.tensor.shape.clone())
        };
        assert_eq!(
            shape("model.layers.1.self_attn.k_proj.weight"),
            Some(vec![32, 64])
        );
        assert_eq!(
            shape("model.layers.0.mlp.down_proj.weight"),
            Some(vec![64, 128])
        );
        assert_eq!(shape("lm_head.weight"), Some(vec![32064, 64]));
        assert_eq!(weights.len(), 3 + 2 * 9);
        let phi = model_weights(&TinySpec::phi3());
        let qkv = phi
            .iter()
            .find(|w| w.role == Role::Qkv)
            .map(|w| w.tensor.shape.clone());
        assert_eq!(qkv, Some(vec![192, 64]));
        let norm = phi.iter().find(|w| w.role == Role::OutputNorm);
        assert!(norm.is_some_and(|w| w.tensor.data.iter().all(|v| (0.9..1.1).contains(v))));
    }
}
