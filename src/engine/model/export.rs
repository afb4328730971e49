//! A Hugging Face folder's weights as the tensors of its GGUF conversion: llama.cpp's names
//! and layout, with a LoRA adapter merged in when one is given, one tensor at a time.

use std::io::{Read, Seek};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Device;

use crate::engine::gguf::TensorPlan;
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

/// A planned conversion of a folder's weights to GGUF tensors: every tensor in llama.cpp's
/// order (embeddings, each block, final norm, output) with its type, shapes already checked
/// against `config.json`. [`GgufConversion::tensor`] then reads, merges and quantizes one
/// tensor at a time, so a writer can stream a multi-GB model without holding it whole.
pub struct GgufConversion<'a, R> {
    weights: &'a mut HfWeights<R>,
    adapter: Option<&'a Adapter>,
    slots: Vec<Slot>,
    plans: Vec<TensorPlan>,
}

impl<'a, R: Read + Seek> GgufConversion<'a, R> {
    /// Plans the conversion: each matrix stored as `dtype_for(name, shape)`, vectors (norms)
    /// as F32, with `adapter`'s update merged in (PEFT's `merge_and_unload`, applied in
    /// llama.cpp's layout) when given. A missing tensor, a wrong shape or an adapter that
    /// does not fit is an error here, before anything is read.
    pub fn new(
        weights: &'a mut HfWeights<R>,
        adapter: Option<&'a Adapter>,
        mut dtype_for: impl FnMut(&str, &[usize]) -> GgmlDType,
    ) -> Result<Self, ModelError> {
        let config = weights.config().clone();
        if let Some(adapter) = adapter {
            adapt::check_targets(adapter, &config)?;
        }
        let slots = slots(weights);
        let mut plans = Vec::with_capacity(slots.len());
        for slot in &slots {
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
                    expected: slot.shape.clone(),
                    found,
                });
            }
            let dtype = if slot.shape.len() == 1 {
                GgmlDType::F32
            } else {
                dtype_for(&slot.name, &slot.shape)
            };
            plans.push(TensorPlan {
                name: slot.name.clone(),
                dtype,
                shape: slot.shape.clone(),
            });
        }
        Ok(Self {
            weights,
            adapter,
            slots,
            plans,
        })
    }

    /// Every output tensor's name, type and shape, in file order.
    pub fn plans(&self) -> &[TensorPlan] {
        &self.plans
    }

    /// The GGUF bytes of tensor `index` of [`GgufConversion::plans`]: read as f32, merged,
    /// quantized.
    pub fn tensor_bytes(&mut self, index: usize) -> Result<Vec<u8>, ModelError> {
        let source = self.weights.source().to_string();
        let (Some(slot), Some(plan)) = (self.slots.get(index), self.plans.get(index)) else {
            return Err(ModelError::MissingTensor {
                source_name: source,
                tensor: format!("#{index}"),
            });
        };
        let config = self.weights.config().clone();
        let mut dense = self.weights.dense(&slot.name, &Device::Cpu)?;
        let context = || format!("{source}: {}", slot.name);
        if let (Some(adapter), Some((layer, module))) = (self.adapter, slot.projection) {
            let (rows, cols) = (slot.shape[0], slot.shape[1]);
            if let Some(delta) = adapt::side_path(adapter, &config, layer, module, rows, cols)? {
                dense = (dense + delta.dense().context(context)?).context(context)?;
            }
        }
        let quantized = QTensor::quantize(&dense, plan.dtype).context(context)?;
        let bytes = quantized.data().context(context)?;
        Ok(bytes.into_owned())
    }
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
