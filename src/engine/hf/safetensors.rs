//! One safetensors shard read through `Read + Seek`: the header is parsed and checked against
//! the file length once, then each tensor's bytes are read on demand.

use std::io::{Read, Seek, SeekFrom};

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::Metadata;
use safetensors::Dtype;

use super::HfError;

/// Largest JSON header accepted (safetensors' own limit).
const MAX_HEADER: u64 = 100_000_000;

/// A parsed safetensors file: its header, but no tensor data.
#[derive(Debug)]
pub struct Shard<R> {
    name: String,
    reader: R,
    data_start: u64,
    metadata: Metadata,
}

impl<R: Read + Seek> Shard<R> {
    /// Parses the header of the safetensors bytes in `reader` (named `name` in errors),
    /// checking that the data it describes fills the rest of the file exactly.
    pub fn open(mut reader: R, name: &str) -> Result<Self, HfError> {
        let bad = |what: String| HfError::Safetensors {
            file: name.to_string(),
            what,
        };
        let io = |what: &str, source| HfError::Io {
            file: name.to_string(),
            what: what.to_string(),
            source,
        };
        let file_len = reader
            .seek(SeekFrom::End(0))
            .map_err(|e| io("measuring the file", e))?;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| io("seeking to the header", e))?;
        if file_len < 8 {
            return Err(bad(format!("{file_len} bytes is too short for a header")));
        }
        let mut len = [0u8; 8];
        reader
            .read_exact(&mut len)
            .map_err(|e| io("reading the header length", e))?;
        let header_len = u64::from_le_bytes(len);
        if header_len > MAX_HEADER || header_len > file_len - 8 {
            return Err(bad(format!(
                "header length {header_len} does not fit the {file_len}-byte file"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        reader
            .read_exact(&mut header)
            .map_err(|e| io("reading the header", e))?;
        let metadata: Metadata =
            serde_json::from_slice(&header).map_err(|e| bad(format!("invalid header: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = metadata.data_len() as u64;
        if data_start + data_len != file_len {
            return Err(bad(format!(
                "the header describes {data_len} bytes of tensor data but the file holds {} \
                 (truncated or padded)",
                file_len - data_start
            )));
        }
        Ok(Self {
            name: name.to_string(),
            reader,
            data_start,
            metadata,
        })
    }

    /// The name given to [`Shard::open`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Names of every tensor in the shard.
    pub fn tensor_names(&self) -> Vec<String> {
        self.metadata.tensors().into_keys().collect()
    }

    /// The shape of tensor `tensor`, if the shard has it.
    pub fn shape(&self, tensor: &str) -> Option<&[usize]> {
        self.metadata.info(tensor).map(|info| info.shape.as_slice())
    }

    /// The dtype of tensor `tensor`, if the shard has it and the engine loads that dtype.
    pub fn dtype(&self, tensor: &str) -> Option<DType> {
        self.metadata
            .info(tensor)
            .and_then(|info| candle_dtype(info.dtype))
    }

    /// Reads tensor `tensor` (F32, F16 or BF16) as a candle tensor of its own dtype.
    pub fn tensor(&mut self, tensor: &str, device: &Device) -> Result<Tensor, HfError> {
        let info = self
            .metadata
            .info(tensor)
            .ok_or_else(|| HfError::MissingTensor {
                file: self.name.clone(),
                tensor: tensor.to_string(),
            })?;
        let dtype = candle_dtype(info.dtype).ok_or_else(|| HfError::Dtype {
            file: self.name.clone(),
            tensor: tensor.to_string(),
            dtype: format!("{:?}", info.dtype),
        })?;
        let (start, end) = info.data_offsets;
        let shape = info.shape.clone();
        let io = |source| HfError::Io {
            file: self.name.clone(),
            what: format!("reading tensor {tensor}"),
            source,
        };
        self.reader
            .seek(SeekFrom::Start(self.data_start + start as u64))
            .map_err(io)?;
        let mut bytes = vec![0u8; end - start];
        self.reader.read_exact(&mut bytes).map_err(io)?;
        Tensor::from_raw_buffer(&bytes, dtype, &shape, device).map_err(|source| HfError::Candle {
            file: self.name.clone(),
            tensor: tensor.to_string(),
            source: Box::new(source),
        })
    }
}

/// The candle dtype of a safetensors dtype the engine loads.
fn candle_dtype(dtype: Dtype) -> Option<DType> {
    match dtype {
        Dtype::F32 => Some(DType::F32),
        Dtype::F16 => Some(DType::F16),
        Dtype::BF16 => Some(DType::BF16),
        _ => None,
    }
}
