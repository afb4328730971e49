//! The error of the tiny-model generator: every message names the file and the problem.

use std::path::{Path, PathBuf};

use mimir::engine::gguf::GgufError;

/// Everything that can go wrong generating a tiny model or laying out the hub.
#[derive(Debug, thiserror::Error)]
pub enum TinyError {
    /// The spec's sizes do not fit together or the formats.
    #[error("invalid tiny model spec: {problem}")]
    InvalidSpec {
        /// What is wrong, with the values.
        problem: String,
    },

    /// A file or folder operation failed.
    #[error("{}: i/o error while {doing}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done, e.g. "renaming the .part file into place".
        doing: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// Reading the vocab GGUF or encoding a GGUF failed.
    #[error("{}: {source}", path.display())]
    Gguf {
        /// The GGUF being read or written.
        path: PathBuf,
        /// The GGUF error (its own file label is the writer's or the source name).
        #[source]
        source: GgufError,
    },

    /// candle refused to build or quantize a tensor.
    #[error("{}: tensor {tensor}: {source}", path.display())]
    Candle {
        /// The file the tensor was for.
        path: PathBuf,
        /// The tensor's name in that file.
        tensor: String,
        /// candle's error (boxed: it is large).
        #[source]
        source: Box<candle_core::Error>,
    },

    /// Encoding a safetensors file failed.
    #[error("{}: safetensors: {source}", path.display())]
    Safetensors {
        /// The safetensors file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: safetensors::SafeTensorError,
    },

    /// Encoding a JSON file failed.
    #[error("{}: json: {source}", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },

    /// The vocab GGUF does not fit the spec (e.g. its token count differs from `vocab`).
    #[error("{}: {problem}", path.display())]
    Vocab {
        /// The vocab GGUF.
        path: PathBuf,
        /// What does not fit, with the values.
        problem: String,
    },
}

impl TinyError {
    /// An [`TinyError::Io`] for `path`.
    pub(crate) fn io(path: &Path, doing: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            doing,
            source,
        }
    }

    /// A [`TinyError::Candle`] for `tensor` in `path`.
    pub(crate) fn candle(path: &Path, tensor: &str, source: candle_core::Error) -> Self {
        Self::Candle {
            path: path.to_owned(),
            tensor: tensor.to_owned(),
            source: Box::new(source),
        }
    }
}
