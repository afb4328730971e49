//! What can go wrong while fine-tuning; every message names the file, tensor or value.

use std::path::PathBuf;

use mimir::engine::gguf::GgufError;
use mimir::engine::model::ModelError;
use mimir::engine::tokenizer::TokenizerError;
use thiserror::Error;

use crate::config::ModelConfigError;
use crate::data::ExampleError;

/// Error of the fine-tuning pipeline.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The model configuration is unreadable or out of range.
    #[error(transparent)]
    Config(#[from] ModelConfigError),
    /// The base model is unreadable or inconsistent.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The GGUF file is unreadable or could not be written.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The tokenizer failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// A JSONL example file is unreadable.
    #[error(transparent)]
    Examples(#[from] ExampleError),
    /// A file could not be read or written.
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
    /// A file's content is not what this pipeline wrote or expects.
    #[error("{}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The configuration asks for something the model cannot do.
    #[error("{0}")]
    Setup(String),
    /// A tensor operation failed.
    #[error("{context}: {source}")]
    Candle {
        /// What was being done.
        context: String,
        /// candle's error.
        #[source]
        source: candle_core::Error,
    },
}

impl TrainError {
    /// A candle error with what was being done.
    pub fn candle(context: impl Into<String>, source: candle_core::Error) -> Self {
        Self::Candle {
            context: context.into(),
            source,
        }
    }

    /// An i/o error on `path`.
    pub fn io(path: impl Into<PathBuf>, doing: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            doing,
            source,
        }
    }

    /// A file whose content is wrong.
    pub fn invalid(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self::Invalid {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

/// Adds what was being done to a candle error.
pub(crate) trait CandleContext<T> {
    /// Maps the error to [`TrainError::Candle`] with `what()`.
    fn context(self, what: impl FnOnce() -> String) -> Result<T, TrainError>;
}

impl<T> CandleContext<T> for candle_core::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, TrainError> {
        self.map_err(|source| TrainError::candle(what(), source))
    }
}
