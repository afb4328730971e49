//! The tensors of a model folder under llama.cpp's names and in its layout, so the model code
//! that builds a GGUF model builds this one too.

use std::collections::HashMap;
use std::io::{Read, Seek};

use candle_core::{DType, Device, Tensor};

use crate::engine::model::{permute_for_rope, Architecture, ModelConfig, ModelError};

use super::{HfError, Shard};

/// A model folder's config and opened shards.
#[derive(Debug)]
pub struct HfWeights<R> {
    source: String,
    config: ModelConfig,
    tied: bool,
    shards: Vec<Shard<R>>,
    /// Tensor name → index in `shards`.
    index: HashMap<String, usize>,
}

impl<R: Read + Seek> HfWeights<R> {
    /// Reads `config.json` (`config_json`, named `source` in errors) and indexes the tensors
    /// of `shards`. A tensor in two shards is refused.
    pub fn new(config_json: &str, source: &str, shards: Vec<Shard<R>>) -> Result<Self, ModelError> {
        let (config, tied) = super::model_config(config_json, source)?;
        let mut index = HashMap::new();
        for (i, shard) in shards.iter().enumerate() {
            for name in shard.tensor_names() {
                if let Some(first) = index.insert(name.clone(), i) {
                    return Err(HfError::Safetensors {
                        file: shard.name().to_string(),
                        what: format!("tensor {name} is also in {}", shards[first].name()),
                    }
                    .into());
                }
            }
        }
        Ok(Self {
            source: source.to_string(),
            config,
            tied,
            shards,
            index,
        })
    }

    /// The folder's name as given to [`HfWeights::new`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The model's hyper-parameters (`vocab` from `vocab_size`).
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Whether `lm_head` is the embedding table (`tie_word_embeddings`).
    pub fn tied(&self) -> bool {
        self.tied
    }

    /// The transformers name of the tensor llama.cpp calls `gguf_name`, if it has one.
    pub fn hf_name(&self, gguf_name: &str) -> Option<String> {
        hf_name(&self.config, gguf_name).map(|(name, _)| name)
    }

    /// The shape of the tensor llama.cpp calls `gguf_name`, `[rows, cols]` or `[n]`, if the
    /// folder has it.
    pub fn shape(&self, gguf_name: &str) -> Option<Vec<usize>> {
        let (hf, _) = hf_name(&self.config, gguf_name)?;
        let shard = self.shards.get(*self.index.get(&hf)?)?;
        shard.shape(&hf).map(<[usize]>::to_vec)
    }

    /// The tensor llama.cpp calls `gguf_name` as f32, laid out as llama.cpp's converter
    /// writes it (Llama's q and k rows permuted for its interleaved rotary embedding).
    pub fn dense(&mut self, gguf_name: &str, device: &Device) -> Result<Tensor, ModelError> {
        let missing = || ModelError::MissingTensor {
            source_name: self.source.clone(),
            tensor: gguf_name.to_string(),
        };
        let (hf, permute) = hf_name(&self.config, gguf_name).ok_or_else(missing)?;
        let Some(&shard) = self.index.get(&hf) else {
            return Err(ModelError::MissingTensor {
                source_name: self.source.clone(),
                tensor: hf,
            });
        };
        let shard = &mut self.shards[shard];
        let tensor = shard.tensor(&hf, device)?;
        let fail = |source| HfError::Candle {
            file: shard.name().to_string(),
            tensor: hf.clone(),
            source: Box::new(source),
        };
        let tensor = tensor.to_dtype(DType::F32).map_err(fail)?;
        let tensor = match permute {
            Some(heads) => permute_for_rope(&tensor, heads).map_err(fail)?,
            None => tensor,
        };
        Ok(tensor)
    }

    /// Whether every tensor the folder holds under `gguf_name` is stored as f32.
    pub fn is_f32(&self, gguf_name: &str) -> bool {
        let Some((hf, _)) = hf_name(&self.config, gguf_name) else {
            return false;
        };
        self.index
            .get(&hf)
            .and_then(|&i| self.shards[i].dtype(&hf))
            .is_some_and(|d| d == DType::F32)
    }
}

/// The transformers name of the tensor llama.cpp calls `gguf_name`, and the head count its
/// rows are permuted with on the way (Llama's q and k).
fn hf_name(config: &ModelConfig, gguf_name: &str) -> Option<(String, Option<usize>)> {
    let plain = |s: &str| Some((s.to_string(), None));
    match gguf_name {
        "token_embd.weight" => return plain("model.embed_tokens.weight"),
        "output_norm.weight" => return plain("model.norm.weight"),
        "output.weight" => return plain("lm_head.weight"),
        _ => {}
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let part = part.strip_suffix(".weight")?;
    let llama = config.arch == Architecture::Llama;
    let (module, permute) = match part {
        "attn_norm" => ("input_layernorm", None),
        "ffn_norm" => ("post_attention_layernorm", None),
        "attn_qkv" if !llama => ("self_attn.qkv_proj", None),
        "attn_q" if llama => ("self_attn.q_proj", Some(config.heads)),
        "attn_k" if llama => ("self_attn.k_proj", Some(config.kv_heads)),
        "attn_v" if llama => ("self_attn.v_proj", None),
        "attn_output" => ("self_attn.o_proj", None),
        "ffn_up" if llama => ("mlp.up_proj", None),
        "ffn_up" => ("mlp.gate_up_proj", None),
        "ffn_gate" if llama => ("mlp.gate_proj", None),
        "ffn_down" => ("mlp.down_proj", None),
        _ => return None,
    };
    Some((format!("model.layers.{layer}.{module}.weight"), permute))
}
