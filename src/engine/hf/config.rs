//! `config.json` and `model.safetensors.index.json`.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::engine::model::{Architecture, ModelConfig, ModelError};

use super::HfError;

/// Largest `hidden_size` and `intermediate_size` taken: far above any model a browser runs,
/// low enough that products of sizes cannot overflow.
const MAX_WIDTH: usize = 1 << 17;
/// Largest layer and attention-head count taken.
const MAX_LAYERS: usize = 1024;
/// Largest vocabulary taken.
const MAX_VOCAB: usize = 1 << 22;
/// Largest trained context taken.
const MAX_POSITIONS: usize = 1 << 24;

/// The fields of a transformers `config.json` the engine reads.
#[derive(Debug, Deserialize)]
struct RawConfig {
    model_type: String,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    intermediate_size: usize,
    vocab_size: usize,
    max_position_embeddings: usize,
    rms_norm_eps: f64,
    rope_theta: Option<f32>,
    rope_scaling: Option<serde_json::Value>,
    partial_rotary_factor: Option<f32>,
    #[serde(default)]
    tie_word_embeddings: bool,
}

/// Reads a `config.json` (named `file` in errors): the model's hyper-parameters, and whether
/// its output projection is tied to the embeddings.
pub fn model_config(json: &str, file: &str) -> Result<(ModelConfig, bool), ModelError> {
    let raw: RawConfig = serde_json::from_str(json).map_err(|e| HfError::Json {
        file: file.to_string(),
        what: e.to_string(),
    })?;
    let arch = match raw.model_type.as_str() {
        "phi3" => Architecture::Phi3,
        "llama" => Architecture::Llama,
        other => {
            return Err(ModelError::UnsupportedArchitecture {
                source_name: file.to_string(),
                arch: other.to_string(),
            })
        }
    };
    let unsupported = |what: String| ModelError::Unsupported {
        source_name: file.to_string(),
        what,
    };
    if let Some(scaling) = raw.rope_scaling.as_ref().filter(|v| !v.is_null()) {
        return Err(unsupported(format!("rope_scaling {scaling}")));
    }
    if let Some(factor) = raw.partial_rotary_factor.filter(|f| *f != 1.0) {
        return Err(unsupported(format!("partial_rotary_factor {factor}")));
    }
    let invalid = |what: String| ModelError::InvalidConfig {
        source_name: file.to_string(),
        what,
    };
    for (key, value, max) in [
        ("hidden_size", raw.hidden_size, MAX_WIDTH),
        ("intermediate_size", raw.intermediate_size, MAX_WIDTH),
        ("num_hidden_layers", raw.num_hidden_layers, MAX_LAYERS),
        ("num_attention_heads", raw.num_attention_heads, MAX_LAYERS),
        ("vocab_size", raw.vocab_size, MAX_VOCAB),
        (
            "max_position_embeddings",
            raw.max_position_embeddings,
            MAX_POSITIONS,
        ),
    ] {
        if !(1..=max).contains(&value) {
            return Err(invalid(format!("{key} {value} is not in 1..={max}")));
        }
    }
    if !(raw.rms_norm_eps > 0.0 && raw.rms_norm_eps < 1.0) {
        return Err(invalid(format!(
            "rms_norm_eps {} is not in (0, 1)",
            raw.rms_norm_eps
        )));
    }
    if let Some(theta) = raw.rope_theta.filter(|t| !(t.is_finite() && *t > 0.0)) {
        return Err(invalid(format!(
            "rope_theta {theta} is not a finite number > 0"
        )));
    }
    let heads = raw.num_attention_heads;
    let kv_heads = raw.num_key_value_heads.unwrap_or(heads);
    if heads == 0 || !raw.hidden_size.is_multiple_of(heads) {
        return Err(invalid(format!(
            "hidden_size {} is not a multiple of num_attention_heads {heads}",
            raw.hidden_size
        )));
    }
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(invalid(format!(
            "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
        )));
    }
    let head_dim = raw.hidden_size / heads;
    if let Some(explicit) = raw.head_dim.filter(|d| *d != head_dim) {
        return Err(unsupported(format!(
            "head_dim {explicit} other than hidden_size / num_attention_heads ({head_dim})"
        )));
    }
    if raw.num_hidden_layers == 0 || raw.intermediate_size == 0 || !head_dim.is_multiple_of(2) {
        return Err(invalid(format!(
            "num_hidden_layers {}, intermediate_size {}, head size {head_dim} (must be even)",
            raw.num_hidden_layers, raw.intermediate_size
        )));
    }
    let config = ModelConfig {
        arch,
        hidden: raw.hidden_size,
        layers: raw.num_hidden_layers,
        heads,
        kv_heads,
        head_dim,
        ffn: raw.intermediate_size,
        vocab: raw.vocab_size,
        trained_context: raw.max_position_embeddings,
        rms_eps: raw.rms_eps_f32(),
        rope_base: raw.rope_theta.unwrap_or(10_000.0),
    };
    Ok((config, raw.tie_word_embeddings))
}

impl RawConfig {
    /// The epsilon as a GGUF stores it (f32), so both sources compute the same norms.
    fn rms_eps_f32(&self) -> f64 {
        f64::from(self.rms_norm_eps as f32)
    }
}

#[derive(Debug, Deserialize)]
struct RawIndex {
    weight_map: std::collections::HashMap<String, String>,
}

/// Reads a `model.safetensors.index.json` (named `file` in errors): the shard file names it
/// lists, sorted, each once. Names with a path separator or `..` are refused.
pub fn shard_files(json: &str, file: &str) -> Result<Vec<String>, HfError> {
    let raw: RawIndex = serde_json::from_str(json).map_err(|e| HfError::Json {
        file: file.to_string(),
        what: e.to_string(),
    })?;
    let shards: BTreeSet<String> = raw.weight_map.into_values().collect();
    if let Some(bad) = shards
        .iter()
        .find(|s| s.contains('/') || s.contains('\\') || s.as_str() == ".." || s.is_empty())
    {
        return Err(HfError::Json {
            file: file.to_string(),
            what: format!("shard name {bad:?} is not a plain file name"),
        });
    }
    if shards.is_empty() {
        return Err(HfError::Json {
            file: file.to_string(),
            what: "weight_map lists no shards".to_string(),
        });
    }
    Ok(shards.into_iter().collect())
}
