//! `adapter_model.safetensors`: the `lora_A` / `lora_B` matrices under PEFT's key names,
//! read into f32 pairs, one per adapted projection.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, SafeTensors};

use super::{AdapterConfig, LoraError, TargetModule};

/// Every PEFT key of a decoder-layer module starts with this.
const KEY_PREFIX: &str = "base_model.model.model.layers.";

/// One adapted projection: `y += scale · (x Aᵀ) Bᵀ`.
#[derive(Debug, Clone)]
pub struct LoraPair {
    /// The decoder block.
    pub layer: usize,
    /// The projection in that block.
    pub module: TargetModule,
    /// `lora_A`, `[r, in]`, f32.
    pub a: Tensor,
    /// The key `lora_A` was stored under.
    pub a_name: String,
    /// `lora_B`, `[out, r]`, f32.
    pub b: Tensor,
    /// The key `lora_B` was stored under.
    pub b_name: String,
}

/// Which half of a pair a tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Half {
    A,
    B,
}

/// Splits `base_model.model.model.layers.{i}.{parent}.{module}.lora_{A|B}.weight`.
fn parse_key(key: &str) -> Result<(usize, TargetModule, Half), String> {
    let rest = key.strip_prefix(KEY_PREFIX).ok_or_else(|| {
        format!("not a PEFT LoRA key of a decoder layer (expected {KEY_PREFIX}{{i}}.…)")
    })?;
    let parts: Vec<&str> = rest.split('.').collect();
    let &[layer, parent, module, half, "weight"] = parts.as_slice() else {
        return Err(
            "not a PEFT LoRA key (expected …layers.{i}.{self_attn|mlp}.{module}.lora_{A|B}.weight)"
                .into(),
        );
    };
    let layer: usize = layer
        .parse()
        .map_err(|_| format!("layer index {layer:?} is not a number"))?;
    let module = TargetModule::from_peft_name(module)
        .filter(|m| m.parent() == parent)
        .ok_or_else(|| format!("unknown target module {parent}.{module}"))?;
    let half = match half {
        "lora_A" => Half::A,
        "lora_B" => Half::B,
        other => return Err(format!("{other:?} is not lora_A or lora_B")),
    };
    Ok((layer, module, half))
}

/// Reads every tensor of `bytes` into checked pairs: known keys of modules the config
/// targets, f32/f16/bf16 matrices whose rank is the config's `r`, each A with its B.
pub(super) fn read_pairs(
    bytes: &[u8],
    config: &AdapterConfig,
    adapter: &str,
) -> Result<Vec<LoraPair>, LoraError> {
    let file = SafeTensors::deserialize(bytes).map_err(|e| LoraError::Safetensors {
        adapter: adapter.to_string(),
        error: e.to_string(),
    })?;
    let bad = |tensor: &str, why: String| LoraError::BadTensor {
        adapter: adapter.to_string(),
        tensor: tensor.to_string(),
        why,
    };
    let mut halves: BTreeMap<(usize, TargetModule, Half), (String, Tensor)> = BTreeMap::new();
    for (name, view) in file.iter() {
        let (layer, module, half) = parse_key(name).map_err(|why| bad(name, why))?;
        if !config.target_modules.contains(module) {
            return Err(bad(
                name,
                format!("module {module} is not in target_modules"),
            ));
        }
        let dtype = match view.dtype() {
            Dtype::F32 => DType::F32,
            Dtype::F16 => DType::F16,
            Dtype::BF16 => DType::BF16,
            other => {
                return Err(LoraError::UnsupportedDtype {
                    adapter: adapter.to_string(),
                    tensor: name.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        let shape = view.shape();
        let &[rows, cols] = shape else {
            return Err(bad(name, format!("shape {shape:?} is not a matrix")));
        };
        let rank = if half == Half::A { rows } else { cols };
        if rank != config.r {
            return Err(LoraError::Rank {
                adapter: adapter.to_string(),
                tensor: name.to_string(),
                found: [rows, cols],
                rank,
                r: config.r,
            });
        }
        let tensor = Tensor::from_raw_buffer(view.data(), dtype, shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|source| LoraError::Candle {
                adapter: adapter.to_string(),
                tensor: name.to_string(),
                source: Box::new(source),
            })?;
        halves.insert((layer, module, half), (name.to_string(), tensor));
    }
    if halves.is_empty() {
        return Err(LoraError::Safetensors {
            adapter: adapter.to_string(),
            error: "holds no lora_A / lora_B tensors".into(),
        });
    }
    let unpaired =
        |tensor: &str, layer: usize, module: TargetModule, missing: &str| LoraError::Unpaired {
            adapter: adapter.to_string(),
            tensor: tensor.to_string(),
            missing: format!(
                "{KEY_PREFIX}{layer}.{}.{module}.{missing}.weight",
                module.parent()
            ),
        };
    let (a_halves, b_halves): (Vec<_>, Vec<_>) = halves
        .into_iter()
        .partition(|((_, _, half), _)| *half == Half::A);
    let mut b_halves: BTreeMap<_, _> = b_halves
        .into_iter()
        .map(|((layer, module, _), b)| ((layer, module), b))
        .collect();
    let mut pairs = Vec::with_capacity(a_halves.len());
    for ((layer, module, _), (a_name, a)) in a_halves {
        let (b_name, b) = b_halves
            .remove(&(layer, module))
            .ok_or_else(|| unpaired(&a_name, layer, module, "lora_B"))?;
        pairs.push(LoraPair {
            layer,
            module,
            a,
            a_name,
            b,
            b_name,
        });
    }
    if let Some(((layer, module), (b_name, _))) = b_halves.into_iter().next() {
        return Err(unpaired(&b_name, layer, module, "lora_A"));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_peft() {
        assert_eq!(
            parse_key("base_model.model.model.layers.3.self_attn.qkv_proj.lora_A.weight"),
            Ok((3, TargetModule::QkvProj, Half::A))
        );
        assert_eq!(
            parse_key("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"),
            Ok((0, TargetModule::DownProj, Half::B))
        );
        for key in [
            "model.layers.0.mlp.down_proj.lora_B.weight",
            "base_model.model.model.layers.x.mlp.down_proj.lora_B.weight",
            "base_model.model.model.layers.0.self_attn.down_proj.lora_B.weight",
            "base_model.model.model.layers.0.mlp.down_proj.lora_C.weight",
            "base_model.model.model.layers.0.mlp.down_proj.lora_B.default.weight",
            "base_model.model.model.layers.0.mlp.wo.lora_B.weight",
            "base_model.model.model.layers.99999999999999999999999.mlp.down_proj.lora_B.weight",
        ] {
            assert!(parse_key(key).is_err(), "{key}");
        }
    }
}
