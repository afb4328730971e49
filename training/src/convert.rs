//! `convert`: a Hugging Face model folder (and optionally a PEFT adapter, merged) to a GGUF
//! with llama.cpp's tensor names and metadata, or a GGUF re-quantized to another type; written
//! atomically.

use std::borrow::Cow;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;
use mimir::engine::gguf::{write_gguf_streaming, GgufError, GgufFile, TensorPlan, Value};
use mimir::engine::lora::Adapter;
use mimir::engine::model::{open_hf_dir, Architecture, GgufConversion, ModelError};
use mimir::engine::tokenizer::{GgufVocab, TokenizerError};

use crate::atomic_file::write_atomically;
use crate::tiny::{gguf_metadata, Arch, GgufType, TinySpec};

/// Why a conversion failed; every message names the folder or file.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The folder, or the adapter against it, is unreadable or inconsistent.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The folder's `tokenizer.json` (or `tokenizer_config.json`) cannot be written as GGUF
    /// tokenizer metadata; the message names the file.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// Encoding the GGUF failed.
    #[error("{}: {source}", path.display())]
    Gguf {
        /// The output file.
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: GgufError,
    },
    /// Reading the input GGUF, or re-quantizing one of its tensors, failed.
    #[error("{}: {source}", path.display())]
    Input {
        /// The input file.
        path: PathBuf,
        /// The reader's (or the quantizer's) error, naming the tensor.
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
///
/// When the folder has a `tokenizer.json`, it goes into the GGUF as `tokenizer.*` metadata
/// (with `tokenizer_config.json`'s special tokens and chat template; see
/// [`GgufVocab::from_tokenizer_json`]), so llama.cpp and our engine load the file alone; the
/// path of that `tokenizer.json` is returned. Without one the GGUF has no tokenizer (give
/// `generate` a `--tokenizer`) and `None` is returned.
pub fn convert(
    model_dir: &Path,
    adapter: Option<&Adapter>,
    quant: GgufType,
    out: &Path,
) -> Result<Option<PathBuf>, ConvertError> {
    let mut weights = open_hf_dir(model_dir)?;
    let c = weights.config().clone();
    // Checked before the (slow) tensors, so a bad tokenizer fails at once.
    let tokenizer = folder_tokenizer(model_dir, c.vocab)?;
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
    let mut conversion = GgufConversion::new(&mut weights, adapter, |_, shape| {
        quant.matrix_dtype(shape.last().copied().unwrap_or(0))
    })?;
    let name = model_dir
        .file_name()
        .map_or_else(|| "model".to_owned(), |n| n.to_string_lossy().into_owned());
    let tokenizer_md = tokenizer
        .as_ref()
        .map(|(_, vocab)| vocab.to_metadata())
        .unwrap_or_default();
    let metadata = gguf_metadata(&spec, quant, &name, &tokenizer_md);
    let plans = conversion.plans().to_vec();
    // The first model error met while streaming: the writer only carries its own error type.
    let mut failure: Option<ModelError> = None;

    let written = write_atomically(
        out,
        |path, doing, source| ConvertError::Io {
            path: path.to_owned(),
            doing,
            source,
        },
        |writer| {
            write_gguf_streaming(writer, &metadata, &plans, |index| {
                match conversion.tensor_bytes(index) {
                    Ok(bytes) => Ok(Cow::Owned(bytes)),
                    Err(error) => {
                        let tensor = plans[index].name.clone();
                        failure = Some(error);
                        Err(GgufError::TensorNotFound {
                            file: model_dir.display().to_string(),
                            tensor,
                        })
                    }
                }
            })
            .map_err(|source| ConvertError::Gguf {
                path: out.to_owned(),
                source,
            })
        },
    );
    match (written, failure) {
        (Err(_), Some(error)) => return Err(error.into()),
        (result, _) => result?,
    }
    Ok(tokenizer.map(|(path, _)| path))
}

/// The folder's `tokenizer.json` as GGUF metadata padded to `vocab` rows, or `None` when the
/// folder has none.
fn folder_tokenizer(
    model_dir: &Path,
    vocab: usize,
) -> Result<Option<(PathBuf, GgufVocab)>, ConvertError> {
    let json_path = model_dir.join("tokenizer.json");
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ConvertError::Io {
            path: path.to_owned(),
            doing: "reading",
            source,
        })
    };
    if !json_path.is_file() {
        return Ok(None);
    }
    let json = read(&json_path)?;
    let config_path = model_dir.join("tokenizer_config.json");
    let config = config_path
        .is_file()
        .then(|| read(&config_path))
        .transpose()?;
    let origin = match &config {
        Some(_) => format!("{} (with tokenizer_config.json)", json_path.display()),
        None => json_path.display().to_string(),
    };
    let mut tokens = GgufVocab::from_tokenizer_json(&json, config.as_deref(), &origin)?;
    tokens.pad_to(vocab, &origin)?;
    Ok(Some((json_path, tokens)))
}

/// Re-quantizes the GGUF `input` to `out`: every matrix (2-D tensor) whose type differs from
/// `quant`'s (see [`GgufType::matrix_dtype`]) is dequantized and quantized again; vectors and
/// matrices already in that type are copied byte for byte. All metadata is kept, the
/// `tokenizer.*` keys and chat template included, so llama.cpp loads the output as it loads
/// the input; only `general.file_type` changes. Tensors are read, converted and written one at
/// a time, so memory holds at most two copies of the largest tensor. The output is a pure
/// function of the input bytes and `quant`.
pub fn requantize_gguf(input: &Path, quant: GgufType, out: &Path) -> Result<(), ConvertError> {
    let input_error = |source| ConvertError::Input {
        path: input.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(input).map_err(|source| ConvertError::Io {
        path: input.to_owned(),
        doing: "opening",
        source,
    })?);
    let file = GgufFile::read(&mut reader, &input.display().to_string()).map_err(input_error)?;
    let plans: Vec<TensorPlan> = file
        .tensor_infos()
        .iter()
        .map(|info| {
            let shape = info.shape().dims().to_vec();
            let dtype = match shape.as_slice() {
                [_, cols] => quant.matrix_dtype(*cols),
                _ => info.dtype,
            };
            TensorPlan {
                name: info.name.clone(),
                dtype,
                shape,
            }
        })
        .collect();
    let metadata = requantized_metadata(file.metadata(), quant);
    let device = Device::Cpu;

    write_atomically(
        out,
        |path, doing, source| ConvertError::Io {
            path: path.to_owned(),
            doing,
            source,
        },
        |writer| {
            write_gguf_streaming(writer, &metadata, &plans, |index| {
                let plan = plans.get(index).ok_or_else(|| GgufError::TensorNotFound {
                    file: file.source().to_owned(),
                    tensor: format!("#{index}"),
                })?;
                let tensor = file.tensor(&mut reader, &plan.name, &device)?;
                let converted = if tensor.dtype() == plan.dtype {
                    tensor
                } else {
                    requantize(&tensor, plan.dtype, &device).map_err(|e| GgufError::Candle {
                        file: file.source().to_owned(),
                        tensor: plan.name.clone(),
                        error: Box::new(e),
                    })?
                };
                let bytes = converted.data().map_err(|e| GgufError::Candle {
                    file: file.source().to_owned(),
                    tensor: plan.name.clone(),
                    error: Box::new(e),
                })?;
                Ok(Cow::Owned(bytes.into_owned()))
            })
            .map_err(|source| ConvertError::Gguf {
                path: out.to_owned(),
                source,
            })
        },
    )
}

/// `tensor` dequantized to f32 and quantized to `dtype`.
fn requantize(tensor: &QTensor, dtype: GgmlDType, device: &Device) -> candle_core::Result<QTensor> {
    QTensor::quantize(&tensor.dequantize(device)?, dtype)
}

/// `source` with `general.file_type` set to `quant`'s (added before
/// `general.quantization_version`, or at the end, when the source has none).
fn requantized_metadata(source: &[(String, Value)], quant: GgufType) -> Vec<(String, Value)> {
    const FILE_TYPE: &str = "general.file_type";
    let file_type = (FILE_TYPE.to_owned(), Value::U32(quant.file_type()));
    let mut metadata: Vec<(String, Value)> = source.to_vec();
    if let Some(entry) = metadata.iter_mut().find(|(k, _)| k == FILE_TYPE) {
        *entry = file_type;
    } else {
        let at = metadata
            .iter()
            .position(|(k, _)| k == "general.quantization_version")
            .unwrap_or(metadata.len());
        metadata.insert(at, file_type);
    }
    metadata
}
