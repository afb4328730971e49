//! Turning a fine-tuning run into what the app loads: a PEFT adapter folder (the adapter
//! tier) or a GGUF with the adapter merged into the weights and quantized (the fine-tuned
//! tier).

mod adapter;
mod merge;

use std::path::PathBuf;

use mimir::engine::gguf::GgufError;
use mimir::engine::lora::LoraError;
use thiserror::Error;

use crate::convert::ConvertError;
use crate::train::TrainError;

pub use adapter::{
    adapter_config_json, export_adapter, run_adapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS,
};
pub use merge::export_merged_gguf;

/// Why an export failed; every message names the run, file or tensor.
#[derive(Debug, Error)]
pub enum ExportError {
    /// The run folder is unreadable or inconsistent.
    #[error(transparent)]
    Run(Box<TrainError>),
    /// The exported adapter does not load in the engine.
    #[error(transparent)]
    Adapter(#[from] LoraError),
    /// Merging into a Hugging Face folder's conversion failed.
    #[error(transparent)]
    Convert(Box<ConvertError>),
    /// The base GGUF is unreadable, or the merged one could not be encoded.
    #[error("{}: {source}", path.display())]
    Gguf {
        /// The file.
        path: PathBuf,
        /// The GGUF error.
        #[source]
        source: GgufError,
    },
    /// A file could not be written.
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
    /// A tensor operation failed while merging.
    #[error("{context}: {source}")]
    Candle {
        /// The tensor being merged.
        context: String,
        /// candle's error.
        #[source]
        source: candle_core::Error,
    },
}

impl From<TrainError> for ExportError {
    fn from(e: TrainError) -> Self {
        Self::Run(Box::new(e))
    }
}

impl From<ConvertError> for ExportError {
    fn from(e: ConvertError) -> Self {
        Self::Convert(Box::new(e))
    }
}

impl ExportError {
    fn io(path: &std::path::Path, doing: &'static str, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            doing,
            source,
        }
    }
}
