//! Model hyper-parameters, read from GGUF metadata.

use crate::engine::gguf::GgufFile;

use super::ModelError;

/// The decoder architectures the engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Phi-3: fused `attn_qkv` and `ffn_up` (gate and up), NeoX-style rotary embedding.
    Phi3,
    /// Llama (SmolLM2 and friends): separate projections, grouped-query attention, and the
    /// interleaved rotary layout that llama.cpp's converter leaves in q/k.
    Llama,
}

impl Architecture {
    /// The `general.architecture` value.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Phi3 => "phi3",
            Architecture::Llama => "llama",
        }
    }
}

/// Shapes and constants of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Which decoder.
    pub arch: Architecture,
    /// Hidden size (`embedding_length`).
    pub hidden: usize,
    /// Number of decoder blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// Feed-forward (intermediate) size.
    pub ffn: usize,
    /// Vocabulary size (rows of `token_embd`).
    pub vocab: usize,
    /// The context the model was trained for.
    pub trained_context: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// RoPE base frequency.
    pub rope_base: f32,
}

impl ModelConfig {
    /// Reads the configuration of a GGUF model, checking that it is one the engine runs.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let source = file.source().to_string();
        let arch = match file.architecture()? {
            "phi3" => Architecture::Phi3,
            "llama" => Architecture::Llama,
            other => {
                return Err(ModelError::UnsupportedArchitecture {
                    source_name: source,
                    arch: other.to_string(),
                })
            }
        };
        let key = |k: &str| format!("{}.{k}", arch.name());
        let scaling_key = key("rope.scaling.type");
        if let Some(value) = file.get(&scaling_key) {
            let kind = value.as_str().unwrap_or("?");
            if kind != "none" {
                return Err(ModelError::Unsupported {
                    source_name: source,
                    what: format!("rope scaling type {kind:?} ({scaling_key})"),
                });
            }
        }
        let hidden = file.u32(&key("embedding_length"))? as usize;
        let heads = file.u32(&key("attention.head_count"))? as usize;
        let kv_heads = match file.get(&key("attention.head_count_kv")) {
            Some(_) => file.u32(&key("attention.head_count_kv"))? as usize,
            None => heads,
        };
        let invalid = |what: String| ModelError::InvalidConfig {
            source_name: source.clone(),
            what,
        };
        if heads == 0 || !hidden.is_multiple_of(heads) {
            return Err(invalid(format!(
                "embedding_length {hidden} is not a multiple of head_count {heads}"
            )));
        }
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(invalid(format!(
                "head_count {heads} is not a multiple of head_count_kv {kv_heads}"
            )));
        }
        let head_dim = hidden / heads;
        if let Some(value) = file.get(&key("rope.dimension_count")) {
            let rope_dim = value.as_u32().unwrap_or(0) as usize;
            if rope_dim != head_dim {
                return Err(ModelError::Unsupported {
                    source_name: source,
                    what: format!("partial rotary embedding (rope.dimension_count {rope_dim}, head size {head_dim})"),
                });
            }
        }
        let vocab = file
            .tensor_info("token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .ok_or_else(|| ModelError::MissingTensor {
                source_name: source.clone(),
                tensor: "token_embd.weight".into(),
            })?;
        let rope_base = match file.get(&key("rope.freq_base")) {
            Some(_) => file.f32(&key("rope.freq_base"))?,
            None => 10_000.0,
        };
        let config = ModelConfig {
            arch,
            hidden,
            layers: file.u32(&key("block_count"))? as usize,
            heads,
            kv_heads,
            head_dim,
            ffn: file.u32(&key("feed_forward_length"))? as usize,
            vocab,
            trained_context: file.u32(&key("context_length"))? as usize,
            rms_eps: f64::from(file.f32(&key("attention.layer_norm_rms_epsilon"))?),
            rope_base,
        };
        if config.layers == 0 || config.ffn == 0 || !head_dim.is_multiple_of(2) {
            return Err(invalid(format!(
                "block_count {}, feed_forward_length {}, head size {head_dim} (must be even)",
                config.layers, config.ffn
            )));
        }
        Ok(config)
    }
}
