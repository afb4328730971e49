//! The trainable part: one LoRA pair (`A`, `B` as `Var`s) per targeted projection, initialised
//! as PEFT does (A kaiming-uniform, B zero) and applied as `scale · B A dropout(x)`.

use candle_core::{DType, Device, Tensor, Var};
use mimir::engine::lora::{Adapter, TargetModule};
use mimir::engine::model::{Architecture, ModelConfig};

use super::error::{CandleContext, TrainError};
use super::rng::Rng;
use crate::config::LoraSettings;

/// The projections an architecture has, as PEFT names them, in block order.
pub fn arch_modules(arch: Architecture) -> &'static [TargetModule] {
    use TargetModule::*;
    match arch {
        Architecture::Phi3 => &[QkvProj, OProj, GateUpProj, DownProj],
        Architecture::Llama => &[QProj, KProj, VProj, OProj, GateProj, UpProj, DownProj],
    }
}

/// `[out, in]` of `module`'s base weight.
pub fn module_shape(c: &ModelConfig, module: TargetModule) -> (usize, usize) {
    use TargetModule::*;
    let (hd, q_rows, kv_rows) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
    match module {
        QkvProj => (q_rows + 2 * kv_rows, hd),
        QProj => (q_rows, hd),
        KProj | VProj => (kv_rows, hd),
        OProj => (hd, q_rows),
        GateUpProj => (2 * c.ffn, hd),
        GateProj | UpProj => (c.ffn, hd),
        DownProj => (hd, c.ffn),
    }
}

/// One adapted projection: `y += scale · dropout(x) Aᵀ Bᵀ`.
#[derive(Debug)]
pub struct LoraLayer {
    /// The decoder block.
    pub layer: usize,
    /// The projection.
    pub module: TargetModule,
    /// `lora_A`, `[r, in]`.
    pub a: Var,
    /// `lora_B`, `[out, r]`, in transformers' row order (as PEFT stores it).
    pub b: Var,
    scale: f64,
    dropout: f32,
}

impl LoraLayer {
    /// The update for `xs` (`[n, in]`), `[n, out]`; with `dropout_rng`, the input is dropped
    /// out as PEFT does in training.
    pub fn forward(
        &self,
        xs: &Tensor,
        dropout_rng: Option<&mut Rng>,
    ) -> candle_core::Result<Tensor> {
        let xs = match dropout_rng {
            Some(rng) if self.dropout > 0.0 => {
                let keep = 1.0 - self.dropout;
                let mask: Vec<f32> = (0..xs.elem_count())
                    .map(|_| {
                        if rng.next_f32() < keep {
                            1.0 / keep
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?;
                (xs * mask)?
            }
            _ => xs.clone(),
        };
        (xs.matmul(&self.a.as_tensor().t()?)? * self.scale)?.matmul(&self.b.as_tensor().t()?)
    }

    /// PEFT's key for `half` (`lora_A` or `lora_B`):
    /// `base_model.model.model.layers.{i}.{self_attn|mlp}.{module}.{half}.weight`.
    pub fn key(&self, half: &str) -> String {
        format!(
            "base_model.model.model.layers.{}.{}.{}.{half}.weight",
            self.layer,
            self.module.parent(),
            self.module.peft_name()
        )
    }
}

/// Every LoRA pair of a model, ordered by layer, then module (the order the optimiser and the
/// checkpoint use).
#[derive(Debug)]
pub struct LoraSet {
    layers: Vec<LoraLayer>,
    settings: LoraSettings,
}

impl LoraSet {
    /// Fresh pairs for `settings.target_modules` of every block: `A` uniform in
    /// ±1/√in (PyTorch's `kaiming_uniform_(a=√5)`, PEFT's default), `B` zero, so training
    /// starts from the base model.
    pub fn init(
        config: &ModelConfig,
        settings: &LoraSettings,
        seed: u64,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let modules = targets(config, settings)?;
        let scale = scale(settings);
        let mut layers = Vec::new();
        let mut rng = Rng::new(seed, 0x10_4A);
        for layer in 0..config.layers {
            for &module in &modules {
                let (out, inp) = module_shape(config, module);
                let bound = 1.0 / (inp as f32).sqrt();
                let a: Vec<f32> = (0..settings.r * inp)
                    .map(|_| (rng.next_f32() * 2.0 - 1.0) * bound)
                    .collect();
                let context = || format!("initialising the LoRA pair of {module} in block {layer}");
                let a = Tensor::from_vec(a, (settings.r, inp), device).context(context)?;
                let b = Tensor::zeros((out, settings.r), DType::F32, device).context(context)?;
                layers.push(LoraLayer {
                    layer,
                    module,
                    a: Var::from_tensor(&a).context(context)?,
                    b: Var::from_tensor(&b).context(context)?,
                    scale,
                    dropout: settings.dropout as f32,
                });
            }
        }
        Ok(Self {
            layers,
            settings: settings.clone(),
        })
    }

    /// The pairs of an engine [`Adapter`] (rank, alpha and targets from its config), for
    /// comparing this model with the engine's.
    pub fn from_adapter(
        config: &ModelConfig,
        adapter: &Adapter,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let c = adapter.config();
        let mut modules: Vec<TargetModule> = Vec::new();
        for pair in adapter.pairs() {
            if !modules.contains(&pair.module) {
                modules.push(pair.module);
            }
        }
        let settings = LoraSettings {
            r: c.r,
            alpha: c.lora_alpha,
            dropout: 0.0,
            target_modules: modules.iter().map(|m| m.peft_name().to_owned()).collect(),
            use_rslora: c.use_rslora,
        };
        let mut set = Self::init(config, &settings, 0, device)?;
        for layer in &mut set.layers {
            if let Some(pair) = adapter.pair(layer.layer, layer.module) {
                let context = || format!("{}: {}", adapter.source(), pair.a_name);
                layer
                    .a
                    .set(&pair.a.to_device(device).context(context)?)
                    .context(context)?;
                layer
                    .b
                    .set(&pair.b.to_device(device).context(context)?)
                    .context(context)?;
            }
        }
        Ok(set)
    }

    /// The settings the pairs were built with.
    pub fn settings(&self) -> &LoraSettings {
        &self.settings
    }

    /// Every pair.
    pub fn layers(&self) -> &[LoraLayer] {
        &self.layers
    }

    /// The pair of `module` in block `layer`, if it is targeted.
    pub fn get(&self, layer: usize, module: TargetModule) -> Option<&LoraLayer> {
        self.layers
            .iter()
            .find(|l| l.layer == layer && l.module == module)
    }

    /// Every trainable matrix, `A` then `B` of each pair in order.
    pub fn vars(&self) -> Vec<&Var> {
        self.layers.iter().flat_map(|l| [&l.a, &l.b]).collect()
    }

    /// Every matrix under its PEFT key, in [`LoraSet::vars`] order.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .flat_map(|l| {
                [
                    (l.key("lora_A"), l.a.as_tensor().clone()),
                    (l.key("lora_B"), l.b.as_tensor().clone()),
                ]
            })
            .collect()
    }

    /// Sets every matrix from `tensors` (PEFT keys), which must hold each with its shape;
    /// `file` names the source in errors.
    pub fn load(
        &self,
        tensors: &std::collections::HashMap<String, Tensor>,
        file: &std::path::Path,
    ) -> Result<(), TrainError> {
        for layer in &self.layers {
            for (half, var) in [("lora_A", &layer.a), ("lora_B", &layer.b)] {
                let key = layer.key(half);
                let value = tensors
                    .get(&key)
                    .ok_or_else(|| TrainError::invalid(file, format!("tensor {key} is missing")))?;
                if value.dims() != var.dims() {
                    return Err(TrainError::invalid(
                        file,
                        format!(
                            "tensor {key}: shape {:?} but the run's LoRA needs {:?}",
                            value.dims(),
                            var.dims()
                        ),
                    ));
                }
                let value = value.to_device(var.device()).context(|| key.clone())?;
                var.set(&value).context(|| key.clone())?;
            }
        }
        Ok(())
    }
}

/// The factor `B A` is scaled by: `alpha / r`, or `alpha / √r` with rsLoRA.
pub fn scale(settings: &LoraSettings) -> f64 {
    let r = settings.r as f64;
    if settings.use_rslora {
        settings.alpha / r.sqrt()
    } else {
        settings.alpha / r
    }
}

/// The configured target modules, each checked against the architecture.
fn targets(config: &ModelConfig, settings: &LoraSettings) -> Result<Vec<TargetModule>, TrainError> {
    let known = arch_modules(config.arch);
    let mut modules = Vec::new();
    for name in &settings.target_modules {
        let module = TargetModule::from_peft_name(name)
            .filter(|m| known.contains(m))
            .ok_or_else(|| {
                let names: Vec<&str> = known.iter().map(|m| m.peft_name()).collect();
                TrainError::Setup(format!(
                    "lora.target_modules: a {} model has no {name:?} (its projections: {})",
                    config.arch.name(),
                    names.join(", ")
                ))
            })?;
        if !modules.contains(&module) {
            modules.push(module);
        }
    }
    // Block order, whatever order the configuration lists them in.
    modules.sort_by_key(|m| known.iter().position(|k| k == m));
    Ok(modules)
}
