//! GGUF files: a defensive reader and a writer.
//!
//! [`GgufFile::read`] parses the header, metadata and tensor infos of untrusted bytes once, at
//! the boundary, checking every count, length, offset and size against the file length before
//! using it (as llama.cpp's `gguf.cpp` does). It never holds tensor data: [`GgufFile::tensor`]
//! reads one tensor's bytes on demand. [`write_gguf`] lays files out as llama.cpp does (GGUF v3,
//! aligned, padded), so llama.cpp-style readers load them.

use std::collections::HashMap;

mod error;
mod metadata;
mod read;
mod tensor;
mod value;
mod write;

pub use error::{GgufError, Result};
pub use tensor::TensorInfo;
pub use value::{Value, ValueType, MAX_ARRAY_DEPTH};
pub use write::{write_gguf, write_gguf_streaming, TensorPlan, WRITER_LABEL};

/// Data alignment used when a file has no `general.alignment` key.
pub const DEFAULT_ALIGNMENT: u32 = 32;

/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// A parsed GGUF file: header, metadata and tensor infos, but no tensor data.
#[derive(Debug, Clone)]
pub struct GgufFile {
    source: String,
    version: u32,
    file_len: u64,
    alignment: u64,
    data_start: u64,
    metadata: Vec<(String, Value)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl GgufFile {
    /// The source name given to [`GgufFile::read`], used in every error message.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Length of the file in bytes, as measured when it was read.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Alignment of the tensor data (from `general.alignment`, else [`DEFAULT_ALIGNMENT`]).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute byte offset where the tensor data section starts.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    /// All metadata entries in file order; can be passed back to [`write_gguf`].
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// All tensor infos in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The info of the tensor called `name`, if any.
    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&index| self.tensors.get(index))
    }
}
