//! Full-size random models (Phi-3-mini's 3.8 B parameters) as llama.cpp's `llama-quantize`
//! lays out a Q4_K_M file, written one tensor at a time: a tensor is generated, quantized,
//! written and dropped before the next, so memory holds one tensor, never the model.

use std::borrow::Cow;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use mimir::engine::gguf::{write_gguf_streaming, GgufError, TensorPlan, Value};

use super::gguf_out::{gguf_name, metadata, tokenizer_metadata, GgufType};
use super::spec::{Arch, TinySpec};
use super::weights::{weight, weight_slots, Role};
use super::TinyError;
use crate::atomic_file::write_atomically;

/// The tensor type llama.cpp's Q4_K_M recipe (`llama_tensor_get_type`) gives `role` in block
/// `layer` of `layers`: Q6_K for `output`, Q5_K for a fused `attn_qkv`, Q6_K for `ffn_down`
/// (and Llama's `attn_v`) in the blocks `use_more_bits` picks, Q4_K elsewhere, F32 norms.
pub(crate) fn q4_k_m_dtype(role: Role, layer: usize, layers: usize) -> GgmlDType {
    // llama.cpp's use_more_bits: the first and last eighth, and every third block between
    let more_bits = layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
    match role {
        _ if role.is_norm() => GgmlDType::F32,
        Role::Output => GgmlDType::Q6K,
        Role::Qkv => GgmlDType::Q5K,
        Role::Down | Role::V if more_bits => GgmlDType::Q6K,
        _ => GgmlDType::Q4K,
    }
}

/// Writes the model of `spec` to `path` as a Q4_K_M GGUF (see [`q4_k_m_dtype`]), atomically,
/// with the `tokenizer.*` keys of `vocab_gguf` when given (its token count must be
/// `spec.vocab`). Every row length must be a multiple of 256 (Phi-3-mini's are). The bytes
/// are a pure function of `spec` and the vocabulary.
pub fn write_full_size_gguf(
    spec: &TinySpec,
    path: &Path,
    vocab_gguf: Option<&Path>,
) -> Result<(), TinyError> {
    spec.validate()?;
    let tokenizer: Vec<(String, Value)> = match vocab_gguf {
        Some(vocab) => tokenizer_metadata(vocab, spec.vocab)?,
        None => Vec::new(),
    };
    if spec.arch == Arch::Llama {
        return Err(TinyError::InvalidSpec {
            problem: "full-size models are written for phi3 only (llama would need q/k \
                      permuted per tensor)"
                .to_owned(),
        });
    }
    let slots = weight_slots(spec);
    let plans: Vec<TensorPlan> = slots
        .iter()
        .map(|&(role, layer)| TensorPlan {
            name: gguf_name(role, layer),
            dtype: q4_k_m_dtype(role, layer, spec.layers),
            shape: role.shape(spec),
        })
        .collect();
    if let Some(plan) = plans
        .iter()
        .find(|p| p.dtype != GgmlDType::F32 && p.shape.last().is_none_or(|n| n % 256 != 0))
    {
        return Err(TinyError::InvalidSpec {
            problem: format!(
                "{}: rows of {:?} values do not fit 256-value k-quant blocks",
                plan.name,
                plan.shape.last()
            ),
        });
    }
    let name = format!("{}-shaped-random", spec.arch.gguf_name());
    let metadata = metadata(spec, GgufType::Q4K, &name, &tokenizer);
    let device = Device::Cpu;
    write_atomically(path, TinyError::io, |writer| {
        write_gguf_streaming(writer, &metadata, &plans, |index| {
            let (&(role, layer), plan) =
                slots
                    .iter()
                    .zip(&plans)
                    .nth(index)
                    .ok_or_else(|| GgufError::TensorNotFound {
                        file: path.display().to_string(),
                        tensor: format!("#{index}"),
                    })?;
            let candle = |error| GgufError::Candle {
                file: path.display().to_string(),
                tensor: plan.name.clone(),
                error: Box::new(error),
            };
            let values = weight(spec, role, layer).tensor;
            let dense = Tensor::from_vec(values.data, values.shape, &device).map_err(candle)?;
            let quantized = QTensor::quantize(&dense, plan.dtype).map_err(candle)?;
            drop(dense);
            let bytes = quantized.data().map_err(candle)?.into_owned();
            Ok(Cow::Owned(bytes))
        })
        .map_err(|source| TinyError::Gguf {
            path: path.to_owned(),
            source,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_k_m_types_follow_llama_cpp() {
        // use_more_bits(i, 32): i < 4, i >= 28, or (i - 4) % 3 == 2
        let more: Vec<usize> = (0..32)
            .filter(|&i| q4_k_m_dtype(Role::Down, i, 32) == GgmlDType::Q6K)
            .collect();
        assert_eq!(
            more,
            [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
        assert_eq!(q4_k_m_dtype(Role::Qkv, 5, 32), GgmlDType::Q5K);
        assert_eq!(q4_k_m_dtype(Role::Output, 0, 32), GgmlDType::Q6K);
        assert_eq!(q4_k_m_dtype(Role::GateUp, 0, 32), GgmlDType::Q4K);
        assert_eq!(q4_k_m_dtype(Role::AttnNorm, 0, 32), GgmlDType::F32);
    }

    #[test]
    fn a_phi3_shaped_model_is_written_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shaped.gguf");
        let spec = TinySpec {
            hidden: 256,
            heads: 4,
            kv_heads: 4,
            ffn: 512,
            ..TinySpec::phi3_mini()
        };
        let spec = TinySpec { layers: 2, ..spec };
        write_full_size_gguf(&spec, &path, None).unwrap();
        let mut reader = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
        let file = mimir::engine::gguf::GgufFile::read(&mut reader, "shaped").unwrap();
        let qkv = file.tensor_info("blk.1.attn_qkv.weight").unwrap();
        assert_eq!(qkv.dtype, GgmlDType::Q5K);
        assert_eq!(qkv.dims, [256, 768]);
        let options = mimir::engine::model::LoadOptions {
            context_cap: 16,
            ..Default::default()
        };
        let mut model =
            mimir::engine::model::Model::from_gguf(&file, &mut reader, &options).unwrap();
        let logits = model.forward(&[1, 2, 3], false).unwrap();
        assert_eq!(logits.dims(), [32064]);
        let again = dir.path().join("again.gguf");
        write_full_size_gguf(&spec, &again, None).unwrap();
        assert!(std::fs::read(&path).unwrap() == std::fs::read(&again).unwrap());
    }
}
