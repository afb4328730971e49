//! Opening a model for generation from the command line: a GGUF file (its own vocabulary
//! unless a `tokenizer.json` is given) or a Hugging Face folder (its `tokenizer.json`),
//! optionally with a PEFT LoRA adapter, as the engine's [`Session`].

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use mimir::engine::chat::ChatTemplate;
use mimir::engine::generate::{GenerateError, Session};
use mimir::engine::lora::{Adapter, LoraError};
use mimir::engine::model::{LoadOptions, Model, ModelError};
use mimir::engine::tokenizer::{Tokenizer, TokenizerError};
use thiserror::Error;

/// Error opening a model, its tokenizer or its adapter.
#[derive(Debug, Error)]
pub enum SessionError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The adapter is not a valid PEFT adapter.
    #[error(transparent)]
    Adapter(#[from] LoraError),
    /// The tokenizer could not be built.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The GGUF could not be opened as a session.
    #[error(transparent)]
    Generate(#[from] GenerateError),
}

fn read(path: &Path) -> Result<Vec<u8>, SessionError> {
    std::fs::read(path).map_err(|source| SessionError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads the PEFT adapter in `dir` (`adapter_config.json`, `adapter_model.safetensors`).
pub fn read_adapter(dir: &Path) -> Result<Adapter, SessionError> {
    let config = read(&dir.join("adapter_config.json"))?;
    let weights = read(&dir.join("adapter_model.safetensors"))?;
    Ok(Adapter::from_peft(
        &String::from_utf8_lossy(&config),
        &weights,
        &dir.display().to_string(),
    )?)
}

/// Reads a `tokenizer.json`.
pub fn read_tokenizer(path: &Path) -> Result<Tokenizer, SessionError> {
    Ok(Tokenizer::from_json_bytes(
        &read(path)?,
        &path.display().to_string(),
    )?)
}

/// Opens `model` (a GGUF file or a Hugging Face folder) with an optional `adapter` folder and
/// `tokenizer` file, its KV cache capped at `context_cap` positions.
pub fn open_session(
    model: &Path,
    adapter: Option<&Path>,
    tokenizer: Option<&Path>,
    context_cap: usize,
) -> Result<Session, SessionError> {
    let options = LoadOptions {
        context_cap,
        adapter: adapter.map(read_adapter).transpose()?,
        ..LoadOptions::default()
    };
    if model.is_dir() {
        let path = tokenizer.map_or_else(|| model.join("tokenizer.json"), Path::to_owned);
        let tokenizer = read_tokenizer(&path)?;
        let loaded = Model::from_hf_dir(model, &options)?;
        let template = ChatTemplate::from_gguf_template(None, loaded.config().arch.name());
        return Ok(Session::new(loaded, tokenizer, template));
    }
    let tokenizer = tokenizer.map(read_tokenizer).transpose()?;
    let file = File::open(model).map_err(|source| SessionError::Io {
        path: model.to_owned(),
        source,
    })?;
    Ok(Session::from_gguf(
        &mut BufReader::new(file),
        &model.display().to_string(),
        &options,
        tokenizer,
    )?)
}
