//! Tensor infos, ggml type codes, and loading one tensor's data on demand.

use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType, QTensor};
use candle_core::{Device, Shape};

use super::{GgufError, GgufFile, Result};

/// Where a tensor lives in a GGUF file and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Unique tensor name, e.g. `blk.3.attn_qkv.weight`.
    pub name: String,
    /// Dimensions as stored in the file: ne0 (innermost, contiguous) first.
    pub dims: Vec<usize>,
    /// Element type.
    pub dtype: GgmlDType,
    /// Byte offset of the data from [`GgufFile::data_start`].
    pub offset: u64,
}

impl TensorInfo {
    /// The shape in candle order (outermost first): `dims` reversed.
    pub fn shape(&self) -> Shape {
        Shape::from(self.dims.iter().rev().copied().collect::<Vec<_>>())
    }

    /// Number of elements (saturating; exact for infos from [`GgufFile::read`]).
    pub fn element_count(&self) -> usize {
        self.dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .unwrap_or(usize::MAX)
    }

    /// Bytes of data (saturating; exact for infos from [`GgufFile::read`]).
    pub fn size_in_bytes(&self) -> usize {
        checked_size_in_bytes(self.dtype, &self.dims).unwrap_or(usize::MAX)
    }
}

/// Bytes taken by a tensor of `dtype` with `dims`, or `None` if it overflows `usize`.
/// Assumes ne0 is a multiple of the block size (checked by the reader).
pub(crate) fn checked_size_in_bytes(dtype: GgmlDType, dims: &[usize]) -> Option<usize> {
    let elements = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
    (elements / dtype.block_size()).checked_mul(dtype.type_size())
}

/// The candle type for a ggml type code, or `None` if candle has no such type.
pub(crate) fn ggml_dtype_from_code(code: u32) -> Option<GgmlDType> {
    Some(match code {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    })
}

/// The ggml type code of a candle type (candle keeps its own mapping crate-private).
pub(crate) fn ggml_dtype_code(dtype: GgmlDType) -> u32 {
    match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    }
}

impl GgufFile {
    /// Reads the tensor called `name` from `reader` (the same bytes [`GgufFile::read`] parsed)
    /// onto `device`. Reads exactly the tensor's bytes into one buffer of that size.
    pub fn tensor<R: Read + Seek>(
        &self,
        reader: &mut R,
        name: &str,
        device: &Device,
    ) -> Result<QTensor> {
        let (info, size) = self.located(reader, name)?;
        // candle reinterprets the bytes as f32/f16/block structs (alignment up to 4), so the
        // buffer is allocated as u64 words and viewed as bytes.
        let mut words = vec![0u64; size.div_ceil(8)];
        let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..size];
        reader
            .read_exact(bytes)
            .map_err(|e| self.read_error(info, name, e))?;
        qtensor_from_ggml(info.dtype, bytes, info.shape().dims().to_vec(), device).map_err(|e| {
            GgufError::Candle {
                file: self.source.clone(),
                tensor: info.name.clone(),
                error: Box::new(e),
            }
        })
    }

    /// The raw bytes of the tensor called `name`, as the file stores them (for a caller that
    /// converts them itself), read into one buffer of their size.
    pub fn tensor_bytes<R: Read + Seek>(&self, reader: &mut R, name: &str) -> Result<Vec<u8>> {
        let (info, size) = self.located(reader, name)?;
        let mut bytes = vec![0u8; size];
        reader
            .read_exact(&mut bytes)
            .map_err(|e| self.read_error(info, name, e))?;
        Ok(bytes)
    }

    /// The info of tensor `name` and its size in bytes, with `reader` at its first byte.
    fn located<R: Read + Seek>(&self, reader: &mut R, name: &str) -> Result<(&TensorInfo, usize)> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| GgufError::TensorNotFound {
                file: self.source.clone(),
                tensor: name.to_owned(),
            })?;
        let size = checked_size_in_bytes(info.dtype, &info.dims).ok_or_else(|| {
            GgufError::SizeOverflow {
                file: self.source.clone(),
                tensor: info.name.clone(),
                dims: info.dims.iter().map(|&d| d as u64).collect(),
                dtype: info.dtype,
            }
        })?;
        let start = self.data_start.saturating_add(info.offset);
        reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| GgufError::io(&self.source, format!("seeking to tensor {name}"), e))?;
        Ok((info, size))
    }

    /// The error for a failed read of tensor `name`: cut short, or the reader's own.
    fn read_error(&self, info: &TensorInfo, name: &str, e: std::io::Error) -> GgufError {
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                let start = self.data_start.saturating_add(info.offset);
                GgufError::TensorDataTruncated {
                    file: self.source.clone(),
                    tensor: info.name.clone(),
                    start,
                    end: start.saturating_add(info.size_in_bytes() as u64),
                }
            }
            _ => GgufError::io(&self.source, format!("reading tensor {name}"), e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_codes_round_trip() {
        for code in 0..64 {
            if let Some(dtype) = ggml_dtype_from_code(code) {
                assert_eq!(ggml_dtype_code(dtype), code);
            }
        }
        assert_eq!(ggml_dtype_from_code(4), None, "Q4_2 was removed from ggml");
        assert_eq!(ggml_dtype_from_code(30), Some(GgmlDType::BF16));
    }

    #[test]
    fn shape_reverses_dims_and_sizes_count_blocks() {
        let info = TensorInfo {
            name: "w".into(),
            dims: vec![256, 8],
            dtype: GgmlDType::Q4K,
            offset: 0,
        };
        assert_eq!(info.shape().dims(), &[8, 256]);
        assert_eq!(info.element_count(), 2048);
        assert_eq!(info.size_in_bytes(), 8 * 144);
        let huge = TensorInfo {
            dims: vec![usize::MAX, 2],
            ..info
        };
        assert_eq!(huge.size_in_bytes(), usize::MAX);
    }
}
