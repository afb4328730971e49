//! Deterministic random tiny models in the real formats, for test fixtures and the local hub.
//!
//! [`write_tiny`] writes one model three ways from the same weights: a transformers folder
//! (`hf/config.json`, `hf/model.safetensors`), llama.cpp GGUFs in five tensor types, and a
//! PEFT LoRA adapter. [`write_hub`] lays out a local Hugging Face-style hub whose repos mirror
//! the ones Mimir downloads, with tiny content. Every byte is a pure function of the
//! [`TinySpec`] (and the vocab files given), identical on every platform, and every file is
//! written atomically and only when its content changes.

use std::fs;
use std::path::{Path, PathBuf};

mod adapter;
mod atomic;
mod error;
mod full_size;
mod gguf_out;
mod hf;
mod hub_layout;
mod spec;
mod weights;

pub use adapter::{target_modules, LORA_ALPHA, LORA_RANK};
pub use error::TinyError;
pub use full_size::write_full_size_gguf;
pub use gguf_out::{metadata as gguf_metadata, GgufType};
pub use hub_layout::{hub_spec, write_hub, HubFiles};
pub use spec::{Arch, TinySpec};

use atomic::write_if_changed;

/// The files [`write_tiny`] wrote (or found already identical).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TinyFiles {
    /// `hf/config.json`.
    pub hf_config: PathBuf,
    /// `hf/model.safetensors` (f32, transformers names).
    pub hf_weights: PathBuf,
    /// `hf/tokenizer.json`, copied when the vocab GGUF has a sibling `tokenizer.json`.
    pub tokenizer_json: Option<PathBuf>,
    /// `model-{type}.gguf`, one per [`GgufType::ALL`], in that order.
    pub ggufs: Vec<(GgufType, PathBuf)>,
    /// `adapter/adapter_config.json`.
    pub adapter_config: PathBuf,
    /// `adapter/adapter_model.safetensors`.
    pub adapter_weights: PathBuf,
}

impl TinyFiles {
    /// The GGUF of type `ty`.
    pub fn gguf(&self, ty: GgufType) -> Option<&Path> {
        self.ggufs
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, p)| p.as_path())
    }

    /// Every file, in the order written.
    pub fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.hf_config.as_path(), self.hf_weights.as_path()];
        paths.extend(self.tokenizer_json.as_deref());
        paths.extend(self.ggufs.iter().map(|(_, p)| p.as_path()));
        paths.extend([
            self.adapter_config.as_path(),
            self.adapter_weights.as_path(),
        ]);
        paths
    }
}

/// The base model an adapter for `arch` names in `base_model_name_or_path`.
fn base_model_name(arch: Arch) -> &'static str {
    match arch {
        Arch::Phi3 => "microsoft/Phi-3-mini-4k-instruct",
        Arch::Llama => "meta-llama/Llama-2-7b-hf",
    }
}

/// Writes the tiny model of `spec` into `out_dir`:
///
/// - `hf/config.json`, `hf/model.safetensors`: a transformers folder (`Phi3ForCausalLM` or
///   `LlamaForCausalLM`), f32, untied `lm_head`;
/// - `model-f32.gguf`, `model-f16.gguf`, `model-q8_0.gguf`, `model-q4_0.gguf`,
///   `model-q4_k.gguf`: the same weights as llama.cpp names and lays them out (Llama q/k
///   permuted for its rope; norms F32; see [`GgufType`]);
/// - `adapter/adapter_config.json`, `adapter/adapter_model.safetensors`: a PEFT LoRA adapter
///   (r [`LORA_RANK`], alpha [`LORA_ALPHA`]) on every attention and MLP projection.
///
/// With `vocab_gguf` (e.g. llama.cpp's `ggml-vocab-phi-3.gguf`), its `tokenizer.*` keys go
/// into every GGUF, its token count must equal `spec.vocab`, and a `tokenizer.json` next to
/// it is copied to `hf/tokenizer.json`. Without it the GGUFs carry no tokenizer (candle
/// loads them; llama.cpp needs one).
pub fn write_tiny(
    spec: &TinySpec,
    out_dir: &Path,
    vocab_gguf: Option<&Path>,
) -> Result<TinyFiles, TinyError> {
    spec.validate()?;
    let weights = weights::model_weights(spec);
    let tokenizer = match vocab_gguf {
        Some(path) => gguf_out::tokenizer_metadata(path, spec.vocab)?,
        None => Vec::new(),
    };

    let hf_dir = out_dir.join("hf");
    let hf_config = hf_dir.join("config.json");
    write_if_changed(&hf_config, &hf::config_json(spec, &hf_config)?)?;
    let hf_weights = hf_dir.join("model.safetensors");
    write_if_changed(&hf_weights, &hf::model_safetensors(&weights, &hf_weights)?)?;
    let tokenizer_json = match vocab_gguf.and_then(sibling_tokenizer_json) {
        Some(source) => {
            let target = hf_dir.join("tokenizer.json");
            copy_file(&source, &target)?;
            Some(target)
        }
        None => None,
    };

    let name = format!("tiny-{}", spec.arch.gguf_name());
    let mut ggufs = Vec::with_capacity(GgufType::ALL.len());
    for ty in GgufType::ALL {
        let path = out_dir.join(ty.file_name());
        let bytes = gguf_out::gguf_bytes(spec, &weights, ty, &name, &tokenizer, &path)?;
        write_if_changed(&path, &bytes)?;
        ggufs.push((ty, path));
    }

    let adapter_dir = out_dir.join("adapter");
    let adapter_config = adapter_dir.join("adapter_config.json");
    let config = adapter::adapter_config_json(spec, base_model_name(spec.arch), &adapter_config)?;
    write_if_changed(&adapter_config, &config)?;
    let adapter_weights = adapter_dir.join("adapter_model.safetensors");
    let pairs = adapter::lora_pairs(spec);
    write_if_changed(
        &adapter_weights,
        &adapter::adapter_safetensors(&pairs, &adapter_weights)?,
    )?;

    Ok(TinyFiles {
        hf_config,
        hf_weights,
        tokenizer_json,
        ggufs,
        adapter_config,
        adapter_weights,
    })
}

/// Writes the GGUF of `spec` in type `ty` to `path` with [`write_tiny`]'s adapter merged into
/// the weights (`W + (LORA_ALPHA / LORA_RANK) · B A`, as PEFT's `merge_and_unload` does), then
/// laid out as llama.cpp would (Llama q/k permuted after merging). This is the reference an
/// unmerged adapter on the base GGUF must reproduce. `vocab_gguf` as for [`write_tiny`].
pub fn write_merged_gguf(
    spec: &TinySpec,
    ty: GgufType,
    path: &Path,
    vocab_gguf: Option<&Path>,
) -> Result<(), TinyError> {
    spec.validate()?;
    let tokenizer = match vocab_gguf {
        Some(vocab) => gguf_out::tokenizer_metadata(vocab, spec.vocab)?,
        None => Vec::new(),
    };
    let mut weights = weights::model_weights(spec);
    adapter::merge(&mut weights, &adapter::lora_pairs(spec));
    let name = format!("tiny-{}-merged", spec.arch.gguf_name());
    let bytes = gguf_out::gguf_bytes(spec, &weights, ty, &name, &tokenizer, path)?;
    write_if_changed(path, &bytes)?;
    Ok(())
}

/// `tokenizer.json` in the same folder as `vocab_gguf`, if there is one.
fn sibling_tokenizer_json(vocab_gguf: &Path) -> Option<PathBuf> {
    let path = vocab_gguf.with_file_name("tokenizer.json");
    path.is_file().then_some(path)
}

/// Copies `source` to `target` atomically, unless `target` already holds the same bytes;
/// returns whether it wrote.
fn copy_file(source: &Path, target: &Path) -> Result<bool, TinyError> {
    let bytes = fs::read(source).map_err(|e| TinyError::io(source, "reading", e))?;
    write_if_changed(target, &bytes)
}
