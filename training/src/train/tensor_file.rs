//! f32 tensors in a safetensors file, with string metadata: the checkpoint's and the exported
//! adapter's format.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors, View};

use super::error::{CandleContext, TrainError};

/// One tensor's shape and little-endian f32 bytes.
struct F32View {
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &F32View {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// The bytes of a safetensors file holding `tensors` as f32 and `metadata`; `path` names
/// the file in errors.
pub fn tensors_bytes(
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>, TrainError> {
    let mut views = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let values: Vec<f32> = tensor
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .context(|| format!("{}: {name}", path.display()))?;
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        views.push((
            name.clone(),
            F32View {
                shape: tensor.dims().to_vec(),
                bytes,
            },
        ));
    }
    safetensors::serialize(views.iter().map(|(n, v)| (n.clone(), v)), Some(metadata))
        .map_err(|e| TrainError::invalid(path, format!("writing safetensors: {e}")))
}

/// The content of a safetensors file.
#[derive(Debug)]
pub struct TensorFile {
    /// Every tensor by name, f32.
    pub tensors: HashMap<String, Tensor>,
    /// The header's `__metadata__`.
    pub metadata: HashMap<String, String>,
}

/// Every tensor of the safetensors `bytes` (as f32, on `device`) and the file's metadata.
pub fn read_tensors(bytes: &[u8], path: &Path, device: &Device) -> Result<TensorFile, TrainError> {
    let bad = |e: safetensors::SafeTensorError| TrainError::invalid(path, e.to_string());
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let file = SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut tensors = HashMap::new();
    for (name, view) in file.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(TrainError::invalid(
                path,
                format!("tensor {name}: dtype {:?}, expected F32", view.dtype()),
            ));
        }
        let tensor = Tensor::from_raw_buffer(view.data(), DType::F32, view.shape(), device)
            .context(|| format!("{}: {name}", path.display()))?;
        tensors.insert(name, tensor);
    }
    Ok(TensorFile { tensors, metadata })
}
