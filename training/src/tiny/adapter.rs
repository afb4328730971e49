//! A PEFT LoRA adapter for the tiny model: `adapter_config.json`, `adapter_model.safetensors`,
//! and merging it into the base weights.

use std::path::Path;

use serde_json::json;

use super::hf::{pretty_json, safetensors_bytes};
use super::spec::{Arch, TinySpec};
use super::weights::{random_values, F32Tensor, Role, Weight};
use super::TinyError;

/// LoRA rank `r` of every adapter.
pub const LORA_RANK: usize = 4;

/// `lora_alpha`; the merge scale is `LORA_ALPHA / LORA_RANK` = 2 (no rsLoRA).
pub const LORA_ALPHA: usize = 8;

/// Amplitude of `lora_B`: nonzero (unlike a fresh PEFT init) so the adapter visibly changes
/// the logits, small enough (about a tenth of the base weights) to keep them sane.
const LORA_B_AMPLITUDE: f32 = 0.05;

/// One adapted linear layer: `W' = W + (alpha / r) * B @ A`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LoraPair {
    /// The adapted weight.
    pub role: Role,
    /// Its block.
    pub layer: usize,
    /// `lora_A` `[r, in]`.
    pub a: F32Tensor,
    /// `lora_B` `[out, r]`.
    pub b: F32Tensor,
}

impl LoraPair {
    /// PEFT's key for `lora_A` or `lora_B` (`which`), e.g.
    /// `base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight`.
    pub fn key(&self, which: &str) -> String {
        let module = self.role.layer_module().unwrap_or_default();
        format!(
            "base_model.model.model.layers.{}.{module}.{which}.weight",
            self.layer
        )
    }
}

/// The linear layers the adapter targets: every attention and MLP projection.
fn target_roles(arch: Arch) -> &'static [Role] {
    match arch {
        Arch::Phi3 => &[Role::Qkv, Role::O, Role::GateUp, Role::Down],
        Arch::Llama => &[
            Role::Q,
            Role::K,
            Role::V,
            Role::O,
            Role::Gate,
            Role::Up,
            Role::Down,
        ],
    }
}

/// PEFT's `target_modules` for `arch` (`qkv_proj`, ...).
pub fn target_modules(arch: Arch) -> Vec<&'static str> {
    target_roles(arch)
        .iter()
        .filter_map(|r| r.layer_module())
        .filter_map(|m| m.rsplit('.').next())
        .collect()
}

/// The adapter's A/B pairs, layer by layer, deterministic from the spec's seed.
pub(crate) fn lora_pairs(spec: &TinySpec) -> Vec<LoraPair> {
    let mut pairs = Vec::new();
    for layer in 0..spec.layers {
        for &role in target_roles(spec.arch) {
            let &[out, inp] = role.shape(spec).as_slice() else {
                continue;
            };
            let mut pair = LoraPair {
                role,
                layer,
                a: F32Tensor {
                    shape: vec![LORA_RANK, inp],
                    data: Vec::new(),
                },
                b: F32Tensor {
                    shape: vec![out, LORA_RANK],
                    data: Vec::new(),
                },
            };
            let amplitude = 1.0 / (inp as f32).sqrt();
            pair.a.data = random_values(spec.seed, &pair.key("lora_A"), LORA_RANK * inp, amplitude);
            pair.b.data = random_values(
                spec.seed,
                &pair.key("lora_B"),
                out * LORA_RANK,
                LORA_B_AMPLITUDE,
            );
            pairs.push(pair);
        }
    }
    pairs
}

/// `adapter_config.json` as PEFT's `save_pretrained` writes it (sorted keys, indent 2).
pub(crate) fn adapter_config_json(
    spec: &TinySpec,
    base_model: &str,
    path: &Path,
) -> Result<Vec<u8>, TinyError> {
    let config = json!({
        "alpha_pattern": {},
        "auto_mapping": null,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layer_replication": null,
        "layers_pattern": null,
        "layers_to_transform": null,
        "loftq_config": {},
        "lora_alpha": LORA_ALPHA,
        "lora_dropout": 0.0,
        "megatron_config": null,
        "megatron_core": "megatron.core",
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": LORA_RANK,
        "rank_pattern": {},
        "revision": null,
        "target_modules": target_modules(spec.arch),
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": false,
    });
    pretty_json(&config, path)
}

/// `adapter_model.safetensors`: every `lora_A` / `lora_B` under its PEFT key, f32.
pub(crate) fn adapter_safetensors(pairs: &[LoraPair], path: &Path) -> Result<Vec<u8>, TinyError> {
    let tensors = pairs
        .iter()
        .flat_map(|p| [(p.key("lora_A"), &p.a), (p.key("lora_B"), &p.b)]);
    safetensors_bytes(tensors, path)
}

/// Adds `(alpha / r) * B @ A` to each targeted weight, as `merge_and_unload` does.
pub(crate) fn merge(weights: &mut [Weight], pairs: &[LoraPair]) {
    let scale = LORA_ALPHA as f32 / LORA_RANK as f32;
    for pair in pairs {
        let Some(weight) = weights
            .iter_mut()
            .find(|w| w.role == pair.role && w.layer == pair.layer)
        else {
            continue;
        };
        let cols = pair.a.shape.last().copied().unwrap_or(0);
        for (o, row) in weight.tensor.data.chunks_exact_mut(cols.max(1)).enumerate() {
            // row o of B @ A: sum over k of B[o, k] * A[k, ..]
            let mut delta = vec![0.0f32; cols];
            for (k, b) in pair.b.row(o).iter().enumerate() {
                for (d, a) in delta.iter_mut().zip(pair.a.row(k)) {
                    *d += b * a;
                }
            }
            for (w, d) in row.iter_mut().zip(&delta) {
                *w += scale * d;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::weights::model_weights;

    #[test]
    fn keys_and_shapes_follow_peft() {
        let pairs = lora_pairs(&TinySpec::phi3());
        assert_eq!(pairs.len(), 2 * 4);
        let qkv = &pairs[0];
        assert_eq!(
            qkv.key("lora_A"),
            "base_model.model.model.layers.0.self_attn.qkv_proj.lora_A.weight"
        );
        assert_eq!(qkv.a.shape, vec![4, 64]);
        assert_eq!(qkv.b.shape, vec![192, 4]);
        assert!(qkv.b.data.iter().all(|v| *v != 0.0));
        assert_eq!(
            target_modules(Arch::Phi3),
            ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
        );
        assert_eq!(target_modules(Arch::Llama).len(), 7);
    }

    #[test]
    fn merge_adds_scaled_b_times_a() {
        let spec = TinySpec::phi3();
        let base = model_weights(&spec);
        let pairs = lora_pairs(&spec);
        let mut merged = base.clone();
        merge(&mut merged, &pairs);
        let down = pairs.iter().find(|p| p.role == Role::Down && p.layer == 1);
        let Some(down) = down else {
            panic!("no down pair");
        };
        let idx = |ws: &[Weight]| {
            ws.iter()
                .find(|w| w.role == Role::Down && w.layer == 1)
                .map(|w| w.tensor.data[5 * 128 + 7])
                .unwrap_or(f32::NAN)
        };
        let expected: f32 = (0..4)
            .map(|k| down.b.data[5 * 4 + k] * down.a.data[k * 128 + 7])
            .sum();
        assert!((idx(&merged) - idx(&base) - 2.0 * expected).abs() < 1e-6);
        let norm = |ws: &[Weight]| ws.iter().find(|w| w.role == Role::AttnNorm).cloned();
        assert_eq!(norm(&merged), norm(&base));
    }
}
