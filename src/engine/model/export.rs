//! A Hugging Face folder's weights as the tensors of its GGUF conversion: llama.cpp's names
//! and layout, with a LoRA adapter merged in when one is given.

use std::io::{Read, Seek};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

use crate::engine::hf::HfWeights;
use crate::engine::lora::{Adapter, TargetModule};

use super::{adapt, Architecture, CandleContext, ModelError};

/// One tensor of the conversion: its llama.cpp name, shape `[rows, cols]` (or `[n]`) and the
/// projection it is, if any.
struct Slot {
    name: String,
    shape: Vec<usize>,
    projection: Option<(usize, TargetModule)>,
}

/// Every tensor of the folder, in llama.cpp's order (embeddings, each block, final norm,
/// output), each read as f32, merged with `adapter`'s update when it has one (PEFT's
/// `merge_and_unload`, applied in llama.cpp's layout), then stored as `dtype_for(name,
/// shape)` (norms are always F32). Shapes are checked against `config.json`.
pub fn gguf_tensors<R: Read + Seek>(
    weights: &mut HfWeights<R>,
    adapter: Option<&Adapter>,
    mut dtype_for: impl FnMut(&str, &[usize]) -> GgmlDType,
) -> Result<Vec<(String, QTensor)>, ModelError> {
    let config = weights.config().clone();
    if let Some(adapter) = adapter {
        adapt::check_targets(adapter, &config)?;
    }
    let mut out = Vec::new();
    for slot in slots(weights) {
        let source = weights.source().to_string();
        let describe = || match weights.hf_name(&slot.name) {
            Some(hf) => format!("{hf} ({})", slot.name),
            None => slot.name.clone(),
        };
        let found = weights
            .shape(&slot.name)
            .ok_or_else(|| ModelError::MissingTensor {
                source_name: source.clone(),
                tensor: describe(),
            })?;
        if found != slot.shape {
            return Err(ModelError::Shape {
                source_name: source,
                tensor: describe(),
                expected: slot.shape,
                found,
            });
        }
        let mut dense = weights.dense(&slot.name, &Device::Cpu)?;
        let context = || format!("{source}: {}", slot.name);
        if let (Some(adapter), Some((layer, module))) = (adapter, slot.projection) {
            let (rows, cols) = (slot.shape[0], slot.shape[1]);
            if let Some(delta) = adapt::side_path(adapter, &config, layer, module, rows, cols)? {
                dense = (dense + delta.dense().context(context)?).context(context)?;
            }
        }
        let dtype = if slot.shape.len() == 1 {
            GgmlDType::F32
        } else {
            dtype_for(&slot.name, &slot.shape)
        };
        let quantized = QTensor::quantize(&dense, dtype).context(context)?;
        out.push((slot.name, quantized));
    }
    Ok(out)
}

fn slots<R: Read + Seek>(weights: &HfWeights<R>) -> Vec<Slot> {
    let c = weights.config();
    let (hd, q_rows, kv_rows) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let plain = |name: &str, shape: Vec<usize>| Slot {
        name: name.to_string(),
        shape,
        projection: None,
    };
    let projection = |layer: usize, module: TargetModule, rows: usize, cols: usize| Slot {
        name: adapt::gguf_name(layer, module),
        shape: vec![rows, cols],
        projection: Some((layer, module)),
    };
    use TargetModule::*;
    let mut slots = vec![plain("token_embd.weight", vec![c.vocab, hd])];
    for i in 0..c.layers {
        slots.push(plain(&format!("blk.{i}.attn_norm.weight"), vec![hd]));
        match c.arch {
            Architecture::Phi3 => slots.push(projection(i, QkvProj, q_rows + 2 * kv_rows, hd)),
            Architecture::Llama => slots.extend([
                projection(i, QProj, q_rows, hd),
                projection(i, KProj, kv_rows, hd),
                projection(i, VProj, kv_rows, hd),
            ]),
        }
        slots.push(projection(i, OProj, hd, q_rows));
        slots.push(plain(&format!("blk.{i}.ffn_norm.weight"), vec![hd]));
        match c.arch {
            Architecture::Phi3 => slots.push(projection(i, GateUpProj, 2 * c.ffn, hd)),
            Architecture::Llama => slots.extend([
                projection(i, GateProj, c.ffn, hd),
                projection(i, UpProj, c.ffn, hd),
            ]),
        }
        slots.push(projection(i, DownProj, hd, c.ffn));
    }
    slots.push(plain("output_norm.weight", vec![hd]));
    if !weights.tied() || weights.shape("output.weight").is_some() {
        slots.push(plain("output.weight", vec![c.vocab, hd]));
    }
    slots
}
