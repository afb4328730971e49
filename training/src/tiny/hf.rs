//! The Hugging Face model folder: `config.json` and `model.safetensors`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};

use super::spec::{Arch, TinySpec};
use super::weights::{F32Tensor, Weight};
use super::TinyError;

/// The transformers version written into configs; any 4.4x reads them.
const TRANSFORMERS_VERSION: &str = "4.44.2";

/// `config.json` as transformers' `save_pretrained` writes it for this spec's class: keys
/// sorted, two-space indent, trailing newline.
pub(crate) fn config_json(spec: &TinySpec, path: &Path) -> Result<Vec<u8>, TinyError> {
    let mut config = json!({
        "architectures": [spec.arch.hf_class()],
        "attention_bias": false,
        "attention_dropout": 0.0,
        "bos_token_id": spec.arch.bos_token_id(),
        "eos_token_id": spec.arch.eos_token_id(),
        "hidden_act": "silu",
        "hidden_size": spec.hidden,
        "initializer_range": 0.02,
        "intermediate_size": spec.ffn,
        "max_position_embeddings": spec.context,
        "model_type": spec.arch.gguf_name(),
        "num_attention_heads": spec.heads,
        "num_hidden_layers": spec.layers,
        "num_key_value_heads": spec.kv_heads,
        "rms_norm_eps": shortest_f64(spec.rms_eps),
        "rope_scaling": null,
        "rope_theta": shortest_f64(spec.rope_base),
        "tie_word_embeddings": false,
        "torch_dtype": "float32",
        "transformers_version": TRANSFORMERS_VERSION,
        "use_cache": true,
        "vocab_size": spec.vocab,
    });
    let extra = match spec.arch {
        // Phi-3-mini-4k's config; `sliding_window` null (no sliding window), matching the
        // GGUF keys llama.cpp wrote for Phi-3-mini (no `phi3.attention.sliding_window`).
        Arch::Phi3 => json!({
            "embd_pdrop": 0.0,
            "original_max_position_embeddings": spec.context,
            "pad_token_id": spec.arch.eos_token_id(),
            "resid_pdrop": 0.0,
            "sliding_window": null,
        }),
        Arch::Llama => json!({
            "head_dim": spec.head_dim(),
            "mlp_bias": false,
            "pretraining_tp": 1,
        }),
    };
    if let (Value::Object(config), Value::Object(extra)) = (&mut config, extra) {
        config.extend(extra);
    }
    pretty_json(&config, path)
}

/// JSON as Python's `json.dumps(indent=2, sort_keys=True)` lays it out, plus a newline
/// (serde_json's default map is sorted).
pub(crate) fn pretty_json(value: &Value, path: &Path) -> Result<Vec<u8>, TinyError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|source| TinyError::Json {
        path: path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The f64 that prints like the f32 (`1e-5`, not `9.999999747378752e-6`).
fn shortest_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// A safetensors file of `tensors` with transformers' `{"format": "pt"}` metadata.
pub(crate) fn safetensors_bytes<'a>(
    tensors: impl IntoIterator<Item = (String, &'a F32Tensor)>,
    path: &Path,
) -> Result<Vec<u8>, TinyError> {
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize(tensors, Some(metadata)).map_err(|source| TinyError::Safetensors {
        path: path.to_owned(),
        source,
    })
}

/// `model.safetensors`: every weight under its transformers name, f32.
pub(crate) fn model_safetensors(weights: &[Weight], path: &Path) -> Result<Vec<u8>, TinyError> {
    safetensors_bytes(weights.iter().map(|w| (w.hf_name(), &w.tensor)), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_sorted_keys_and_plain_numbers() {
        let bytes = config_json(&TinySpec::phi3(), Path::new("config.json"));
        let text = bytes.map(|b| String::from_utf8_lossy(&b).into_owned());
        let text = text.unwrap_or_default();
        assert!(text.starts_with("{\n  \"architectures\": [\n    \"Phi3ForCausalLM\"\n  ],"));
        assert!(text.contains("\"rms_norm_eps\": 0.00001,"), "{text}");
        assert!(text.contains("\"rope_theta\": 10000.0,"), "{text}");
        assert!(text.contains("\"original_max_position_embeddings\": 4096,"));
        assert!(text.ends_with("}\n"));
    }
}
