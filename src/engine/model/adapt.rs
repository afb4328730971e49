//! Fitting a LoRA adapter to a model: which GGUF weight each PEFT module adapts, whether the
//! pairs' shapes fit those weights, and the row order llama.cpp gave Llama's q and k.

use candle_core::Tensor;

use crate::engine::lora::{Adapter, LoraError, TargetModule};

use super::config::{Architecture, ModelConfig};
use super::layers::LoraDelta;

/// The projections an architecture has, as PEFT names them.
pub(super) fn modules(arch: Architecture) -> &'static [TargetModule] {
    use TargetModule::*;
    match arch {
        Architecture::Phi3 => &[QkvProj, OProj, GateUpProj, DownProj],
        Architecture::Llama => &[QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj],
    }
}

/// llama.cpp's name for the weight of `module` in block `layer` (`blk.0.attn_qkv.weight`).
pub fn gguf_name(layer: usize, module: TargetModule) -> String {
    let part = match module {
        TargetModule::QkvProj => "attn_qkv",
        TargetModule::QProj => "attn_q",
        TargetModule::KProj => "attn_k",
        TargetModule::VProj => "attn_v",
        TargetModule::OProj => "attn_output",
        // Phi-3's fused gate_up keeps llama.cpp's `ffn_up` name.
        TargetModule::GateUpProj | TargetModule::UpProj => "ffn_up",
        TargetModule::GateProj => "ffn_gate",
        TargetModule::DownProj => "ffn_down",
    };
    format!("blk.{layer}.{part}.weight")
}

/// Checks, before any weight is read, that every pair targets a block and a projection the
/// model has.
pub(super) fn check_targets(adapter: &Adapter, config: &ModelConfig) -> Result<(), LoraError> {
    let known = modules(config.arch);
    for pair in adapter.pairs() {
        let why = if pair.layer >= config.layers {
            format!(
                "layer {} is out of range (the model has {} blocks)",
                pair.layer, config.layers
            )
        } else if !known.contains(&pair.module) {
            let names: Vec<&str> = known.iter().map(|m| m.peft_name()).collect();
            format!(
                "a {} model has no {} (its projections: {})",
                config.arch.name(),
                pair.module,
                names.join(", ")
            )
        } else {
            continue;
        };
        return Err(LoraError::NoSuchTarget {
            adapter: adapter.source().to_string(),
            tensor: pair.a_name.clone(),
            why,
        });
    }
    Ok(())
}

/// The side path for `module` of block `layer`, whose base weight is `[rows, cols]`, or
/// `None` when the adapter leaves it alone.
pub(super) fn side_path(
    adapter: &Adapter,
    config: &ModelConfig,
    layer: usize,
    module: TargetModule,
    rows: usize,
    cols: usize,
) -> Result<Option<LoraDelta>, LoraError> {
    let Some(pair) = adapter.pair(layer, module) else {
        return Ok(None);
    };
    let r = adapter.config().r;
    check_shape(adapter, &pair.a_name, &pair.a, layer, module, [r, cols])?;
    check_shape(adapter, &pair.b_name, &pair.b, layer, module, [rows, r])?;
    let candle = |tensor: &str| {
        let tensor = tensor.to_string();
        move |source| LoraError::Candle {
            adapter: adapter.source().to_string(),
            tensor,
            source: Box::new(source),
        }
    };
    let b = match rope_heads(config, module) {
        Some(heads) => permute_for_rope(&pair.b, heads).map_err(candle(&pair.b_name))?,
        None => pair.b.clone(),
    };
    LoraDelta::new(&pair.a, &b, adapter.scale())
        .map(Some)
        .map_err(candle(&pair.a_name))
}

fn check_shape(
    adapter: &Adapter,
    name: &str,
    tensor: &Tensor,
    layer: usize,
    module: TargetModule,
    expected: [usize; 2],
) -> Result<(), LoraError> {
    let (rows, cols) = tensor.dims2().map_err(|source| LoraError::Candle {
        adapter: adapter.source().to_string(),
        tensor: name.to_string(),
        source: Box::new(source),
    })?;
    if [rows, cols] == expected {
        return Ok(());
    }
    Err(LoraError::Shape {
        adapter: adapter.source().to_string(),
        tensor: name.to_string(),
        found: [rows, cols],
        base: gguf_name(layer, module),
        expected,
    })
}

/// The head count llama.cpp's converter permuted the rows of `module` with, if it did:
/// Llama's q (query heads) and k (key/value heads). Phi-3 keeps HF order.
fn rope_heads(config: &ModelConfig, module: TargetModule) -> Option<usize> {
    match (config.arch, module) {
        (Architecture::Llama, TargetModule::QProj) => Some(config.heads),
        (Architecture::Llama, TargetModule::KProj) => Some(config.kv_heads),
        _ => None,
    }
}

/// `LlamaModel.permute` of llama.cpp's `convert_hf_to_gguf.py` applied to the rows of `b`
/// (`[out, r]`): `b.reshape(n_head, 2, out / n_head / 2, r).swapaxes(1, 2).reshape(out, r)`.
/// The GGUF holds `P W` for the HF weight `W`, so the merged `P (W + s B A)` is
/// `P W + s (P B) A`: permuting B's rows is all the side path needs.
pub(crate) fn permute_for_rope(b: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (rows, r) = b.dims2()?;
    b.reshape((n_head, 2, rows / n_head / 2, r))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, r))
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    #[test]
    fn permutation_matches_llama_cpp() {
        // numpy: np.arange(8).reshape(2, 2, 2).swapaxes(1, 2).reshape(8) == [0 2 1 3 4 6 5 7]
        let rows: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let b = Tensor::from_vec(rows, (8, 1), &Device::Cpu).unwrap();
        let p = permute_for_rope(&b, 2).unwrap().flatten_all().unwrap();
        assert_eq!(
            p.to_vec1::<f32>().unwrap(),
            [0., 2., 1., 3., 4., 6., 5., 7.]
        );
        let p = permute_for_rope(&b, 1).unwrap().flatten_all().unwrap();
        assert_eq!(
            p.to_vec1::<f32>().unwrap(),
            [0., 4., 1., 5., 2., 6., 3., 7.]
        );
    }
}
