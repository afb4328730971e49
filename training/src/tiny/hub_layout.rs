//! A local hub folder whose repos mirror the real ones Mimir downloads, with tiny content.
//!
//! ```text
//! ROOT/microsoft/Phi-3-mini-4k-instruct-gguf/Phi-3-mini-4k-instruct-q4.gguf   tiny Phi-3, Q4_K/Q8_0
//! ROOT/microsoft/Phi-3-mini-4k-instruct/tokenizer.json                        the real tokenizer
//! ROOT/jdesiree/Mimir-Phi-3.5/mimir-phi-3-mini-q4_k_m.gguf                    adapter merged, Q4_K/Q8_0
//! ROOT/jdesiree/Mimir-Phi-3.5/adapter_config.json                              PEFT LoRA
//! ROOT/jdesiree/Mimir-Phi-3.5/adapter_model.safetensors
//! ```

use std::path::{Path, PathBuf};

use super::adapter::{adapter_config_json, adapter_safetensors, lora_pairs, merge};
use super::atomic::write_if_changed;
use super::gguf_out::{gguf_bytes, tokenizer_metadata, GgufType};
use super::spec::TinySpec;
use super::weights::model_weights;
use super::{copy_file, TinyError};

/// The base repo the adapter names, and that holds the tokenizer.
const BASE_REPO: &str = "microsoft/Phi-3-mini-4k-instruct";
/// The base model's GGUF repo and file.
const BASE_GGUF: &str = "microsoft/Phi-3-mini-4k-instruct-gguf/Phi-3-mini-4k-instruct-q4.gguf";
/// Mimir's fine-tuned repo.
const MIMIR_REPO: &str = "jdesiree/Mimir-Phi-3.5";
/// The merged, quantized model in Mimir's repo.
const MIMIR_GGUF: &str = "mimir-phi-3-mini-q4_k_m.gguf";

/// The files of the hub, and which of them this call (re)wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFiles {
    /// The tiny base model GGUF.
    pub base_gguf: PathBuf,
    /// The base repo's `tokenizer.json`.
    pub tokenizer_json: PathBuf,
    /// The tiny base with the adapter merged in, quantized.
    pub merged_gguf: PathBuf,
    /// The adapter's `adapter_config.json`.
    pub adapter_config: PathBuf,
    /// The adapter's `adapter_model.safetensors`.
    pub adapter_weights: PathBuf,
    /// The files whose content changed and were rewritten (empty on a repeated call).
    pub rewritten: Vec<PathBuf>,
}

/// The spec of the hub's models: [`TinySpec::phi3`] with ffn 256, so `ffn_down` rows (256
/// long) quantize to Q4_K and the Q4_K files are a real Q4_K/Q8_0 mix.
pub fn hub_spec() -> TinySpec {
    TinySpec {
        ffn: 256,
        ..TinySpec::phi3()
    }
}

/// Lays out the tiny hub under `root` (see the module docs) from the Phi-3 vocab GGUF and
/// `tokenizer.json`. Idempotent: everything is regenerated deterministically and a file is
/// rewritten (atomically) only when its bytes differ, so a second call writes nothing.
pub fn write_hub(
    root: &Path,
    vocab_gguf: &Path,
    tokenizer_json: &Path,
) -> Result<HubFiles, TinyError> {
    let spec = hub_spec();
    spec.validate()?;
    let tokenizer = tokenizer_metadata(vocab_gguf, spec.vocab)?;
    let mut rewritten = Vec::new();
    let mut put = |path: &Path, bytes: &[u8]| -> Result<(), TinyError> {
        if write_if_changed(path, bytes)? {
            rewritten.push(path.to_owned());
        }
        Ok(())
    };

    let base = model_weights(&spec);
    let base_gguf = root.join(BASE_GGUF);
    let bytes = gguf_bytes(
        &spec,
        &base,
        GgufType::Q4K,
        "tiny-phi3",
        &tokenizer,
        &base_gguf,
    )?;
    put(&base_gguf, &bytes)?;

    let pairs = lora_pairs(&spec);
    let mut merged = base;
    merge(&mut merged, &pairs);
    let mimir = root.join(MIMIR_REPO);
    let merged_gguf = mimir.join(MIMIR_GGUF);
    let name = "tiny-mimir-phi3";
    let bytes = gguf_bytes(
        &spec,
        &merged,
        GgufType::Q4K,
        name,
        &tokenizer,
        &merged_gguf,
    )?;
    put(&merged_gguf, &bytes)?;

    let adapter_config = mimir.join("adapter_config.json");
    put(
        &adapter_config,
        &adapter_config_json(&spec, BASE_REPO, &adapter_config)?,
    )?;
    let adapter_weights = mimir.join("adapter_model.safetensors");
    put(
        &adapter_weights,
        &adapter_safetensors(&pairs, &adapter_weights)?,
    )?;

    let tokenizer_target = root.join(BASE_REPO).join("tokenizer.json");
    if copy_file(tokenizer_json, &tokenizer_target)? {
        rewritten.push(tokenizer_target.clone());
    }

    Ok(HubFiles {
        base_gguf,
        tokenizer_json: tokenizer_target,
        merged_gguf,
        adapter_config,
        adapter_weights,
        rewritten,
    })
}
