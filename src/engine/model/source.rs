//! Where a model's weights come from: a GGUF file or a Hugging Face folder, both seen under
//! llama.cpp's tensor names and layout.

use std::io::{Read, Seek};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

use crate::engine::gguf::GgufFile;
use crate::engine::hf::HfWeights;

use super::kernel_matrix::KernelMatrix;
use super::{CandleContext, ModelError};

/// Tensors by llama.cpp name, read one at a time.
pub(super) trait WeightSource {
    /// The file or folder, for error messages.
    fn name(&self) -> &str;

    /// How errors name tensor `tensor` (the source's own name for it, if it differs).
    fn describe(&self, tensor: &str) -> String {
        tensor.to_string()
    }

    /// `[rows, cols]` (or `[n]`) of tensor `tensor`, if the source has it.
    fn shape(&self, tensor: &str) -> Option<Vec<usize>>;

    /// Reads tensor `tensor`; a `norm` is only ever dequantized, so it may be kept F32.
    fn qtensor(&mut self, tensor: &str, norm: bool, device: &Device)
        -> Result<QTensor, ModelError>;

    /// Matrix `tensor` in the kernels' layout straight from the stored bytes, when the
    /// kernels serve its type on this target; else `None`, and [`WeightSource::qtensor`]
    /// reads it.
    fn kernel_matrix(&mut self, _tensor: &str) -> Result<Option<KernelMatrix>, ModelError> {
        Ok(None)
    }
}

/// An opened GGUF file and the bytes it was read from.
pub(super) struct GgufSource<'a, R> {
    pub file: &'a GgufFile,
    pub reader: &'a mut R,
}

impl<R: Read + Seek> WeightSource for GgufSource<'_, R> {
    fn name(&self) -> &str {
        self.file.source()
    }

    fn shape(&self, tensor: &str) -> Option<Vec<usize>> {
        let info = self.file.tensor_info(tensor)?;
        Some(info.dims.iter().rev().copied().collect())
    }

    fn qtensor(
        &mut self,
        tensor: &str,
        _norm: bool,
        device: &Device,
    ) -> Result<QTensor, ModelError> {
        Ok(self.file.tensor(self.reader, tensor, device)?)
    }

    /// Skips candle's copy of the blocks (and the zeroed buffer it is read into): a decoded
    /// model is mostly matrices the kernels serve, each taken from the bytes as they arrive.
    fn kernel_matrix(&mut self, tensor: &str) -> Result<Option<KernelMatrix>, ModelError> {
        let Some(info) = self.file.tensor_info(tensor) else {
            return Ok(None);
        };
        if !KernelMatrix::serves_type(info.dtype, info.dims.len()) {
            return Ok(None);
        }
        let (cols, rows) = (info.dims[0], info.dims[1]);
        let bytes = self.file.tensor_bytes(self.reader, tensor)?;
        KernelMatrix::from_bytes(info.dtype, bytes, rows, cols)
            .map(Some)
            .context(|| format!("{}: {tensor}", self.file.source()))
    }
}

/// A Hugging Face folder, its weights quantized to `weight_type` as they are read (norms
/// stay F32; without a type, f32 weights stay F32 and f16/bf16 ones become F16).
pub(super) struct HfSource<'a, R> {
    pub weights: &'a mut HfWeights<R>,
    pub weight_type: Option<GgmlDType>,
}

impl<R: Read + Seek> WeightSource for HfSource<'_, R> {
    fn name(&self) -> &str {
        self.weights.source()
    }

    fn describe(&self, tensor: &str) -> String {
        match self.weights.hf_name(tensor) {
            Some(hf) => format!("{hf} ({tensor})"),
            None => tensor.to_string(),
        }
    }

    fn shape(&self, tensor: &str) -> Option<Vec<usize>> {
        self.weights.shape(tensor)
    }

    fn qtensor(
        &mut self,
        tensor: &str,
        norm: bool,
        device: &Device,
    ) -> Result<QTensor, ModelError> {
        let dtype = match (norm, self.weight_type) {
            (true, _) => GgmlDType::F32,
            (false, Some(ty)) => ty,
            (false, None) if self.weights.is_f32(tensor) => GgmlDType::F32,
            (false, None) => GgmlDType::F16,
        };
        let dense = self.weights.dense(tensor, device)?;
        QTensor::quantize(&dense, dtype).context(|| {
            format!(
                "{}: {tensor}: quantizing to {dtype:?}",
                self.weights.source()
            )
        })
    }
}
