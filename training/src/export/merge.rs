//! A GGUF with the run's adapter merged into the base weights (PEFT's `merge_and_unload`)
//! and quantized: the fine-tuned tier. A GGUF base keeps all its metadata (tokenizer, chat
//! template) so the app loads the result as it loads the base; a Hugging Face folder goes
//! through `convert` (which writes no tokenizer).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use mimir::engine::gguf::{write_gguf, GgufFile, Value};
use mimir::engine::lora::Adapter;
use mimir::engine::model::ModelConfig;

use super::adapter::run_adapter;
use super::ExportError;
use crate::atomic_file::write_atomically;
use crate::convert::convert;
use crate::tiny::GgufType;
use crate::train::{arch_modules, hf_layout_heads, permute_for_rope, RunInfo};

/// Merges the run's adapter into its base model and writes a GGUF of type `quant` to `out`
/// (atomically). Matrices become `quant` (Q4_K falls back to Q8_0 on rows that are not a
/// multiple of 256), vectors F32.
pub fn export_merged_gguf(run: &Path, out: &Path, quant: GgufType) -> Result<(), ExportError> {
    let info = RunInfo::load(run)?;
    let (config, weights) = run_adapter(run)?;
    let adapter = Adapter::from_peft(&config, &weights, &run.display().to_string())?;
    if info.model.is_dir() {
        convert(&info.model, Some(&adapter), quant, out)?;
        return Ok(());
    }
    let gguf_error = |path: &Path| {
        let path = path.to_owned();
        move |source| ExportError::Gguf { path, source }
    };
    let model = &info.model;
    let file = File::open(model).map_err(|e| ExportError::io(model, "opening", e))?;
    let mut reader = BufReader::new(file);
    let gguf =
        GgufFile::read(&mut reader, &model.display().to_string()).map_err(gguf_error(model))?;
    let config = ModelConfig::from_gguf(&gguf).map_err(crate::train::TrainError::from)?;
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(gguf.tensor_infos().len());
    for tensor_info in gguf.tensor_infos() {
        let name = &tensor_info.name;
        let q = gguf
            .tensor(&mut reader, name, &Device::Cpu)
            .map_err(gguf_error(model))?;
        let merged = merge_tensor(&config, &adapter, name, q, quant).map_err(|source| {
            ExportError::Candle {
                context: format!("{}: merging {name}", model.display()),
                source,
            }
        })?;
        tensors.push((name.clone(), merged));
    }
    let metadata: Vec<(String, Value)> = gguf
        .metadata()
        .iter()
        .map(|(key, value)| match key.as_str() {
            "general.file_type" => (key.clone(), Value::U32(quant.file_type())),
            _ => (key.clone(), value.clone()),
        })
        .collect();
    let refs: Vec<(String, &QTensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    write_atomically(out, ExportError::io, |w| {
        write_gguf(w, &metadata, &refs).map_err(gguf_error(out))
    })
}

/// One tensor of the merged file: a matrix with the adapter's update `scale · B A` added
/// (B's rows permuted as llama.cpp permuted the base's Llama q/k), then quantized to
/// `quant`; a vector as F32; anything else unchanged.
fn merge_tensor(
    config: &ModelConfig,
    adapter: &Adapter,
    name: &str,
    q: QTensor,
    quant: GgufType,
) -> candle_core::Result<QTensor> {
    let dims = q.shape().dims().to_vec();
    match dims.len() {
        1 => QTensor::quantize(&q.dequantize(&Device::Cpu)?, GgmlDType::F32),
        2 => {
            let mut dense = q.dequantize(&Device::Cpu)?;
            if let Some(delta) = delta(config, adapter, name)? {
                dense = (dense + delta)?;
            }
            QTensor::quantize(&dense, quant.matrix_dtype(dims[1]))
        }
        _ => Ok(q),
    }
}

/// The update of the projection called `name`, in the GGUF's row order, if the adapter has
/// a pair for it.
fn delta(
    config: &ModelConfig,
    adapter: &Adapter,
    name: &str,
) -> candle_core::Result<Option<Tensor>> {
    for layer in 0..config.layers {
        for &module in arch_modules(config.arch) {
            if mimir::engine::model::gguf_name(layer, module) != name {
                continue;
            }
            let Some(pair) = adapter.pair(layer, module) else {
                return Ok(None);
            };
            let b = match hf_layout_heads(config, module) {
                Some(heads) => permute_for_rope(&pair.b, heads)?,
                None => pair.b.clone(),
            };
            return Ok(Some((b.matmul(&pair.a)? * adapter.scale())?));
        }
    }
    Ok(None)
}
