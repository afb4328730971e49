//! `convert`: a Hugging Face model folder (and optionally a PEFT adapter, merged) to a GGUF
//! with llama.cpp's tensor names and metadata, written atomically.

use std::path::{Path, PathBuf};

use candle_core::quantized::QTensor;
use mimir::engine::gguf::{write_gguf, GgufError};
use mimir::engine::lora::Adapter;
use mimir::engine::model::{gguf_tensors, open_hf_dir, Architecture, ModelError};

use crate::atomic_file::write_atomically;
use crate::tiny::{gguf_metadata, Arch, GgufType, TinySpec};

/// Why a conversion failed; every message names the folder or file.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The folder, or the adapter against it, is unreadable or inconsistent.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Encoding the GGUF failed.
    #[error("{}: {source}", path.display())]
    Gguf {
        /// The output file.
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: GgufError,
    },
    /// Writing or renaming the output failed.
    #[error("{}: i/o error while {doing}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        doing: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Converts the model folder `model_dir` to a GGUF at `out` whose matrices are `quant` (norms
/// F32; see [`GgufType::matrix_dtype`]), with `adapter` merged into the weights when given.
/// The file is written to `out` + `.part`, synced, then renamed, so `out` is never a prefix.
/// The GGUF carries no tokenizer (give `generate` a `--tokenizer`).
pub fn convert(
    model_dir: &Path,
    adapter: Option<&Adapter>,
    quant: GgufType,
    out: &Path,
) -> Result<(), ConvertError> {
    let mut weights = open_hf_dir(model_dir)?;
    let c = weights.config().clone();
    let spec = TinySpec {
        arch: match c.arch {
            Architecture::Phi3 => Arch::Phi3,
            Architecture::Llama => Arch::Llama,
        },
        hidden: c.hidden,
        layers: c.layers,
        heads: c.heads,
        kv_heads: c.kv_heads,
        ffn: c.ffn,
        vocab: c.vocab,
        context: c.trained_context,
        rope_base: c.rope_base,
        rms_eps: c.rms_eps as f32,
        seed: 0,
    };
    let tensors = gguf_tensors(&mut weights, adapter, |_, shape| {
        quant.matrix_dtype(shape.last().copied().unwrap_or(0))
    })?;
    let name = model_dir
        .file_name()
        .map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned());
    let metadata = gguf_metadata(&spec, quant, &name, &[]);
    let refs: Vec<(String, &QTensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();

    write_atomically(
        out,
        |path, doing, source| ConvertError::Io {
            path: path.to_owned(),
            doing,
            source,
        },
        |writer| {
            write_gguf(writer, &metadata, &refs).map_err(|source| ConvertError::Gguf {
                path: out.to_owned(),
                source,
            })
        },
    )
}
