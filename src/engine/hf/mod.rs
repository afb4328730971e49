//! Hugging Face model folders: `config.json` plus `model.safetensors`, or shards listed in
//! `model.safetensors.index.json`, with f32, f16 or bf16 weights.
//!
//! Everything here reads from `Read + Seek` sources handed in by the caller, so it runs on
//! wasm32 as well; [`crate::engine::model::Model::from_hf_dir`] opens the files natively.
//! Each shard's header is checked against its length when it is opened, and tensors are read
//! one at a time, so no shard is ever held whole next to the weights made from it.

mod config;
mod safetensors;
mod weights;

use thiserror::Error;

pub use config::{model_config, shard_files};
pub use safetensors::Shard;
pub use weights::HfWeights;

/// The config file of a model folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights of an unsharded model folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The shard index of a sharded model folder.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// Why a model folder could not be read.
#[derive(Debug, Error)]
pub enum HfError {
    /// Reading a file failed.
    #[error("{file}: {what}: {source}")]
    Io {
        /// The file.
        file: String,
        /// What was being read.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A JSON file that does not parse or lacks a field.
    #[error("{file}: {what}")]
    Json {
        /// The file.
        file: String,
        /// What is wrong.
        what: String,
    },
    /// A safetensors file whose header is unreadable or does not fit the file.
    #[error("{file}: not a valid safetensors file: {what}")]
    Safetensors {
        /// The file.
        file: String,
        /// What is wrong.
        what: String,
    },
    /// A tensor the model needs is in no shard (or not in the shard the index names).
    #[error("{file}: tensor {tensor} is missing")]
    MissingTensor {
        /// The shard (or index) searched.
        file: String,
        /// The tensor name.
        tensor: String,
    },
    /// A tensor of a type the engine does not load.
    #[error("{file}: tensor {tensor} has dtype {dtype} (f32, f16 and bf16 are supported)")]
    Dtype {
        /// The shard.
        file: String,
        /// The tensor name.
        tensor: String,
        /// The dtype in the header.
        dtype: String,
    },
    /// A tensor operation failed.
    #[error("{file}: tensor {tensor}: {source}")]
    Candle {
        /// The shard.
        file: String,
        /// The tensor name.
        tensor: String,
        /// candle's error (boxed: it is large).
        source: Box<candle_core::Error>,
    },
}
