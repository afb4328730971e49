//! A differentiable Llama / Phi-3 built from candle ops: the frozen base weights of
//! [`BaseWeights`] with the [`LoraSet`]'s pairs beside the targeted projections. Only the
//! LoRA matrices are `Var`s, so backpropagation computes gradients for them alone.
//!
//! It is the engine's decoder in transformers' layout (rotate-half rotary embedding for both
//! architectures), written with ops that have gradients (`rms_norm_slow`, `softmax` from
//! `exp`/`sum`), one sequence at a time, without a KV cache.

use candle_core::{DType, Device, Tensor, D};
use mimir::engine::lora::TargetModule;
use mimir::engine::model::{Architecture, ModelConfig};

use super::encode::Encoded;
use super::error::{CandleContext, TrainError};
use super::lora::LoraSet;
use super::rng::Rng;
use super::weights::BaseWeights;
use mimir::engine::model::gguf_name;

/// Whether a pass trains (LoRA dropout on, drawn from the generator) or evaluates.
pub enum Mode<'a> {
    /// No dropout.
    Eval,
    /// Dropout on the LoRA inputs, drawn from this generator.
    Train(&'a mut Rng),
}

impl Mode<'_> {
    fn rng(&mut self) -> Option<&mut Rng> {
        match self {
            Mode::Eval => None,
            Mode::Train(rng) => Some(rng),
        }
    }
}

/// The base model with its LoRA pairs.
#[derive(Debug)]
pub struct TrainModel {
    weights: BaseWeights,
    lora: LoraSet,
}

impl TrainModel {
    /// Puts the pairs beside the base weights (the pairs must have been built for this
    /// model's configuration).
    pub fn new(weights: BaseWeights, lora: LoraSet) -> Self {
        Self { weights, lora }
    }

    /// The model's shapes.
    pub fn config(&self) -> &ModelConfig {
        &self.weights.config
    }

    /// The trainable pairs.
    pub fn lora(&self) -> &LoraSet {
        &self.lora
    }

    /// The frozen base.
    pub fn weights(&self) -> &BaseWeights {
        &self.weights
    }

    /// Logits of every position of `ids`, `[ids.len(), vocab]`, without dropout.
    pub fn logits(&self, ids: &[u32]) -> Result<Tensor, TrainError> {
        let hidden = self.hidden(ids, &mut Mode::Eval)?;
        let context = || "output projection".to_owned();
        let normed = self.final_norm(&hidden).context(context)?;
        normed
            .matmul(&self.weights.output()?.t().context(context)?)
            .context(context)
    }

    /// The summed negative log-likelihood of the target tokens of `example` (each predicted
    /// from the positions before it) and how many there are. Only target positions go
    /// through the output projection.
    pub fn nll(&self, example: &Encoded, mode: &mut Mode) -> Result<(Tensor, usize), TrainError> {
        let positions: Vec<u32> = (1..example.ids.len())
            .filter(|&i| example.targets[i])
            .map(|i| (i - 1) as u32)
            .collect();
        let labels: Vec<u32> = positions
            .iter()
            .map(|&p| example.ids[p as usize + 1])
            .collect();
        let count = positions.len();
        let hidden = self.hidden(&example.ids, mode)?;
        let device = hidden.device().clone();
        let context = || format!("loss over {count} target tokens");
        let loss = (|| {
            let rows = hidden.index_select(&Tensor::new(positions.as_slice(), &device)?, 0)?;
            let logits = self.final_norm(&rows)?.matmul(
                &self
                    .weights
                    .output()
                    .map_err(candle_core::Error::wrap)?
                    .t()?,
            )?;
            let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
            let labels = Tensor::new(labels.as_slice(), &device)?.unsqueeze(1)?;
            log_probs.gather(&labels, 1)?.sum_all()?.neg()
        })()
        .context(context)?;
        Ok((loss, count))
    }

    fn final_norm(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let weight = self
            .weights
            .get("output_norm.weight")
            .map_err(candle_core::Error::wrap)?;
        candle_nn::ops::rms_norm_slow(xs, weight, self.weights.config.rms_eps as f32)
    }

    /// The last block's output for every position, `[seq, hidden]` (before the final norm).
    fn hidden(&self, ids: &[u32], mode: &mut Mode) -> Result<Tensor, TrainError> {
        let c = &self.weights.config;
        let seq = ids.len();
        let device = self.weights.get("token_embd.weight")?.device().clone();
        let context = || format!("forward pass over {seq} tokens");
        let ids_t = Tensor::new(ids, &device).context(context)?;
        let mut xs = self
            .weights
            .get("token_embd.weight")?
            .index_select(&ids_t, 0)
            .context(context)?;
        let (cos, sin) = rope_tables(c, seq, &device).context(context)?;
        let mask = causal_mask(seq, &device).context(context)?;
        for layer in 0..c.layers {
            xs = self
                .block(layer, &xs, &cos, &sin, &mask, mode)
                .context(|| format!("block {layer} over {seq} tokens"))?;
        }
        Ok(xs)
    }

    fn norm(&self, name: &str, xs: &Tensor) -> candle_core::Result<Tensor> {
        let weight = self.weights.get(name).map_err(candle_core::Error::wrap)?;
        candle_nn::ops::rms_norm_slow(xs, weight, self.weights.config.rms_eps as f32)
    }

    /// `xs Wᵀ` plus the LoRA update when `module` of `layer` is targeted.
    fn project(
        &self,
        layer: usize,
        module: TargetModule,
        xs: &Tensor,
        mode: &mut Mode,
    ) -> candle_core::Result<Tensor> {
        let weight = self
            .weights
            .get(&gguf_name(layer, module))
            .map_err(candle_core::Error::wrap)?;
        let ys = xs.matmul(&weight.t()?)?;
        match self.lora.get(layer, module) {
            Some(pair) => ys + pair.forward(xs, mode.rng())?,
            None => Ok(ys),
        }
    }

    fn block(
        &self,
        layer: usize,
        xs: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        mode: &mut Mode,
    ) -> candle_core::Result<Tensor> {
        use TargetModule::*;
        let c = &self.weights.config;
        let (seq, hd) = (xs.dim(0)?, c.head_dim);
        let h = self.norm(&format!("blk.{layer}.attn_norm.weight"), xs)?;
        let (q, k, v) = match c.arch {
            Architecture::Phi3 => {
                let qkv = self.project(layer, QkvProj, &h, mode)?;
                let (q_rows, kv_rows) = (c.heads * hd, c.kv_heads * hd);
                (
                    qkv.narrow(1, 0, q_rows)?,
                    qkv.narrow(1, q_rows, kv_rows)?,
                    qkv.narrow(1, q_rows + kv_rows, kv_rows)?,
                )
            }
            Architecture::Llama => (
                self.project(layer, QProj, &h, mode)?,
                self.project(layer, KProj, &h, mode)?,
                self.project(layer, VProj, &h, mode)?,
            ),
        };
        let heads = |t: Tensor, n: usize| t.reshape((seq, n, hd))?.transpose(0, 1)?.contiguous();
        let q = rope(&heads(q, c.heads)?, cos, sin)?;
        let k = rope(&heads(k, c.kv_heads)?, cos, sin)?;
        let v = heads(v, c.kv_heads)?;
        // The query heads of one key/value head folded into the sequence axis (grouped-query
        // attention without copying k and v).
        let group = c.heads / c.kv_heads;
        let q = q.reshape((c.kv_heads, group * seq, hd))?;
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?
            .reshape((c.kv_heads, group, seq, seq))?
            .broadcast_add(mask)?
            .reshape((c.kv_heads, group * seq, seq))?;
        let probs = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let att = probs
            .matmul(&v)?
            .reshape((c.heads, seq, hd))?
            .transpose(0, 1)?
            .reshape((seq, c.heads * hd))?;
        let xs = (self.project(layer, OProj, &att, mode)? + xs)?;
        let h = self.norm(&format!("blk.{layer}.ffn_norm.weight"), &xs)?;
        let (gate, up) = match c.arch {
            Architecture::Phi3 => {
                let gate_up = self.project(layer, GateUpProj, &h, mode)?;
                (
                    gate_up.narrow(1, 0, c.ffn)?,
                    gate_up.narrow(1, c.ffn, c.ffn)?,
                )
            }
            Architecture::Llama => (
                self.project(layer, GateProj, &h, mode)?,
                self.project(layer, UpProj, &h, mode)?,
            ),
        };
        let mlp = self.project(layer, DownProj, &(gate.silu()? * up)?, mode)?;
        mlp + xs
    }
}

/// `cos` and `sin` of every position's angles, `[seq, head_dim]` (each half repeated, for the
/// rotate-half layout), computed as the engine computes them.
fn rope_tables(
    c: &ModelConfig,
    seq: usize,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let hd = c.head_dim;
    let inv_freq: Vec<f32> = (0..hd)
        .step_by(2)
        .map(|i| 1f32 / c.rope_base.powf(i as f32 / hd as f32))
        .collect();
    let inv_freq = Tensor::new(inv_freq.as_slice(), device)?.reshape((1, hd / 2))?;
    let positions = Tensor::arange(0, seq as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((seq, 1))?;
    let angles = positions.matmul(&inv_freq)?;
    let angles = Tensor::cat(&[&angles, &angles], 1)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Rotate-half rotary embedding of `[heads, seq, head_dim]`.
fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    let half = xs.dim(D::Minus1)? / 2;
    let x1 = xs.narrow(D::Minus1, 0, half)?;
    let x2 = xs.narrow(D::Minus1, half, half)?;
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    xs.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?
}

/// `[seq, seq]`: 0 where a position may attend, -∞ above the diagonal.
fn causal_mask(seq: usize, device: &Device) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = (0..seq)
        .flat_map(|i| (0..seq).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Tensor::from_vec(mask, (seq, seq), device)
}
