//! Decoder-only transformers (Phi-3 and Llama) over quantized GGUF weights.
//!
//! One decoder serves both architectures; they differ only in how their projections are
//! stored (Phi-3 fuses q/k/v and gate/up) and in the rotary layout, which the loader
//! settles once.

mod adapt;
mod attention_loops;
mod config;
mod export;
#[cfg(not(target_arch = "wasm32"))]
mod folder;
mod kernel_matrix;
mod layers;
mod source;

use std::io::{Read, Seek};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use thiserror::Error;

use crate::engine::gguf::{GgufError, GgufFile};
use crate::engine::hf::{HfError, HfWeights};
use crate::engine::lora::{Adapter, LoraError, TargetModule};

pub use adapt::gguf_name;
pub(crate) use adapt::permute_for_rope;
pub use config::{Architecture, ModelConfig};
pub use export::GgufConversion;
pub use kernel_matrix::KernelMatrix;
pub use layers::{Embedding, KvCache, Linear, LoraDelta, RmsNorm, Rope};

#[cfg(not(target_arch = "wasm32"))]
pub use folder::open_hf_dir;
use source::{GgufSource, HfSource, WeightSource};

/// Why a model could not be loaded or run.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The GGUF file itself is unreadable or inconsistent.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// The LoRA adapter does not fit the model (or is itself inconsistent).
    #[error(transparent)]
    Adapter(#[from] LoraError),
    /// The Hugging Face model folder is unreadable or inconsistent.
    #[error(transparent)]
    Hf(#[from] HfError),
    /// An architecture the engine does not implement.
    #[error("{source_name}: architecture {arch:?} is not supported (phi3, llama are)")]
    UnsupportedArchitecture {
        /// The model file.
        source_name: String,
        /// `general.architecture`.
        arch: String,
    },
    /// A feature of the model the engine does not implement.
    #[error("{source_name}: {what} is not supported")]
    Unsupported {
        /// The model file.
        source_name: String,
        /// What is not supported.
        what: String,
    },
    /// Hyper-parameters that do not fit together.
    #[error("{source_name}: invalid model configuration: {what}")]
    InvalidConfig {
        /// The model file.
        source_name: String,
        /// What is wrong.
        what: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{source_name}: tensor {tensor} is missing")]
    MissingTensor {
        /// The model file.
        source_name: String,
        /// The tensor name.
        tensor: String,
    },
    /// A tensor whose shape does not match the configuration.
    #[error("{source_name}: tensor {tensor}: shape {found:?} but the configuration implies {expected:?}")]
    Shape {
        /// The model file.
        source_name: String,
        /// The tensor name.
        tensor: String,
        /// Shape from the configuration, `[rows, columns]`.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// The prompt and reply would not fit in the context.
    #[error("context full: {needed} positions needed, the context holds {capacity}")]
    ContextFull {
        /// Positions the call needs.
        needed: usize,
        /// The context cap.
        capacity: usize,
    },
    /// A tensor operation failed.
    #[error("{context}: {source}")]
    Candle {
        /// What was being done.
        context: String,
        /// candle's error.
        source: candle_core::Error,
    },
}

trait CandleContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, ModelError>;
}

impl<T> CandleContext<T> for candle_core::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, ModelError> {
        self.map_err(|source| ModelError::Candle {
            context: what(),
            source,
        })
    }
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Most positions (prompt and reply) the KV cache may hold; capped by the trained context.
    pub context_cap: usize,
    /// A LoRA adapter applied beside the base weights (unmerged), checked against the model
    /// as it loads.
    pub adapter: Option<Adapter>,
    /// The type Hugging Face weights are stored in once loaded (`F32`, `F16`, `Q8_0`, …;
    /// norms stay F32). `None`: F32 for f32 folders, F16 for f16/bf16 ones. GGUF tensors keep
    /// their own type.
    pub weight_type: Option<GgmlDType>,
    /// The type the KV cache is stored in. `None`: f32, unless the f32 cache at the context
    /// cap would pass [`KV_F32_BUDGET`]; then f16, which halves it (Phi-3-mini at 2048
    /// positions: 1.6 GB in f32, 805 MB in f16).
    pub kv_dtype: Option<DType>,
}

/// The largest KV cache kept in f32 when [`LoadOptions::kv_dtype`] leaves the choice open.
pub const KV_F32_BUDGET: usize = 256 << 20;

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            context_cap: 2048,
            adapter: None,
            weight_type: None,
            kv_dtype: None,
        }
    }
}

/// The q, k and v projections: one matrix where the file stores them so (Phi-3) or the
/// kernels stacked them at load ([`Linear::stack`]), else three.
#[derive(Debug)]
enum Qkv {
    Fused(Linear),
    Split { q: Linear, k: Linear, v: Linear },
}

/// The gate and up projections, one matrix or two, as [`Qkv`].
#[derive(Debug)]
enum GateUp {
    Fused(Linear),
    Split { gate: Linear, up: Linear },
}

#[derive(Debug)]
struct Block {
    attn_norm: RmsNorm,
    qkv: Qkv,
    attn_output: Linear,
    ffn_norm: RmsNorm,
    gate_up: GateUp,
    ffn_down: Linear,
    cache: KvCache,
}

/// A loaded model with its KV cache.
#[derive(Debug)]
pub struct Model {
    config: ModelConfig,
    embedding: Embedding,
    blocks: Vec<Block>,
    output_norm: RmsNorm,
    output: Linear,
    rope: Rope,
    device: Device,
}

struct Loader<'a, S> {
    source: S,
    device: Device,
    config: &'a ModelConfig,
    adapter: Option<&'a Adapter>,
}

impl<S: WeightSource> Loader<'_, S> {
    /// Fails unless the source holds `name` as `[rows, cols]` (`[cols]` for one row).
    fn check_shape(&self, name: &str, rows: usize, cols: usize) -> Result<(), ModelError> {
        let found = self
            .source
            .shape(name)
            .ok_or_else(|| ModelError::MissingTensor {
                source_name: self.source.name().to_string(),
                tensor: self.source.describe(name),
            })?;
        let expected = if rows == 1 {
            vec![cols]
        } else {
            vec![rows, cols]
        };
        if found != expected {
            return Err(ModelError::Shape {
                source_name: self.source.name().to_string(),
                tensor: self.source.describe(name),
                expected,
                found,
            });
        }
        Ok(())
    }

    fn qtensor(&mut self, name: &str, rows: usize, cols: usize) -> Result<QTensor, ModelError> {
        self.check_shape(name, rows, cols)?;
        self.source.qtensor(name, rows == 1, &self.device)
    }

    fn linear(&mut self, name: &str, rows: usize, cols: usize) -> Result<Linear, ModelError> {
        self.matrix(name, rows, cols, Linear::kernel, Linear::new)
    }

    fn embedding(&mut self, name: &str, vocab: usize, dim: usize) -> Result<Embedding, ModelError> {
        self.matrix(name, vocab, dim, Embedding::kernel, Embedding::new)
    }

    /// Matrix `name`, `[rows, cols]`, as `kernel` makes it from a [`KernelMatrix`] when the
    /// source reads it that way, else as `read` makes it from the candle tensor.
    fn matrix<T>(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
        kernel: impl FnOnce(KernelMatrix) -> T,
        read: impl FnOnce(QTensor) -> candle_core::Result<T>,
    ) -> Result<T, ModelError> {
        self.check_shape(name, rows, cols)?;
        if let Some(matrix) = self.source.kernel_matrix(name)? {
            return Ok(kernel(matrix));
        }
        let t = self.source.qtensor(name, false, &self.device)?;
        read(t).context(|| format!("{}: {name}", self.source.name()))
    }

    /// The projection `module` of block `layer`, `[rows, cols]`, with the adapter's side path
    /// when it has a pair for it.
    fn block_linear(
        &mut self,
        layer: usize,
        module: TargetModule,
        rows: usize,
        cols: usize,
    ) -> Result<Linear, ModelError> {
        let linear = self.linear(&adapt::gguf_name(layer, module), rows, cols)?;
        let Some(adapter) = self.adapter else {
            return Ok(linear);
        };
        Ok(
            match adapt::side_path(adapter, self.config, layer, module, rows, cols)? {
                Some(delta) => linear.with_lora(delta),
                None => linear,
            },
        )
    }

    fn norm(&mut self, name: &str, size: usize, eps: f64) -> Result<RmsNorm, ModelError> {
        let t = self.qtensor(name, 1, size)?;
        let weight = t
            .dequantize(&self.device)
            .context(|| format!("{}: {name}", self.source.name()))?;
        Ok(RmsNorm::new(weight, eps))
    }
}

impl Model {
    /// Loads a model from an opened GGUF file, reading one tensor at a time from `reader`.
    pub fn from_gguf<R: Read + Seek>(
        file: &GgufFile,
        reader: &mut R,
        options: &LoadOptions,
    ) -> Result<Self, ModelError> {
        let config = ModelConfig::from_gguf(file)?;
        Self::build(config, GgufSource { file, reader }, options)
    }

    /// Loads a Hugging Face model folder whose `config.json` and shards `weights` holds,
    /// converting each tensor to [`LoadOptions::weight_type`] as it is read. Llama's q and k
    /// are permuted as llama.cpp's converter does, so the model equals its GGUF conversion.
    pub fn from_hf<R: Read + Seek>(
        weights: &mut HfWeights<R>,
        options: &LoadOptions,
    ) -> Result<Self, ModelError> {
        let config = weights.config().clone();
        if !weights.tied() && weights.shape("output.weight").is_none() {
            return Err(ModelError::MissingTensor {
                source_name: weights.source().to_string(),
                tensor: "lm_head.weight (tie_word_embeddings is false)".to_string(),
            });
        }
        let source = HfSource {
            weights,
            weight_type: options.weight_type,
        };
        Self::build(config, source, options)
    }

    fn build<S: WeightSource>(
        config: ModelConfig,
        source: S,
        options: &LoadOptions,
    ) -> Result<Self, ModelError> {
        let source_name = source.name().to_string();
        let adapter = options.adapter.as_ref();
        if let Some(adapter) = adapter {
            adapt::check_targets(adapter, &config)?;
        }
        let device = Device::Cpu;
        let c = &config;
        let mut load = Loader {
            source,
            device: device.clone(),
            config: c,
            adapter,
        };
        let (hd, q_rows, kv_rows) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let positions = options.context_cap.min(c.trained_context).max(1);
        let kv_dtype = options.kv_dtype.unwrap_or_else(|| {
            let f32_bytes = c.layers * KvCache::bytes(positions, kv_rows, DType::F32);
            if f32_bytes > KV_F32_BUDGET {
                DType::F16
            } else {
                DType::F32
            }
        });
        // The caches first: a device without room for them fails before any weight is read,
        // and the first prompt's tensors come after them, in memory that stays reused.
        let mut caches = (0..c.layers)
            .map(|i| {
                KvCache::new(c.kv_heads, positions, c.head_dim, kv_dtype, &device).context(|| {
                    let mb = (c.layers * KvCache::bytes(positions, kv_rows, kv_dtype)) >> 20;
                    format!(
                        "{source_name}: the key/value cache ({mb} MB for {positions} positions), \
                         block {i}"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?
            .into_iter();
        let embedding = load.embedding("token_embd.weight", c.vocab, hd)?;
        use TargetModule::*;
        let mut blocks = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let p = format!("blk.{i}");
            let qkv = match c.arch {
                Architecture::Phi3 => {
                    Qkv::Fused(load.block_linear(i, QkvProj, q_rows + 2 * kv_rows, hd)?)
                }
                Architecture::Llama => {
                    let q = load.block_linear(i, QProj, q_rows, hd)?;
                    let k = load.block_linear(i, KProj, kv_rows, hd)?;
                    let v = load.block_linear(i, VProj, kv_rows, hd)?;
                    match Linear::stack(&[&q, &k, &v]) {
                        Some(qkv) => Qkv::Fused(qkv),
                        None => Qkv::Split { q, k, v },
                    }
                }
            };
            let gate_up = match c.arch {
                Architecture::Phi3 => {
                    GateUp::Fused(load.block_linear(i, GateUpProj, 2 * c.ffn, hd)?)
                }
                Architecture::Llama => {
                    let gate = load.block_linear(i, GateProj, c.ffn, hd)?;
                    let up = load.block_linear(i, UpProj, c.ffn, hd)?;
                    match Linear::stack(&[&gate, &up]) {
                        Some(gate_up) => GateUp::Fused(gate_up),
                        None => GateUp::Split { gate, up },
                    }
                }
            };
            blocks.push(Block {
                attn_norm: load.norm(&format!("{p}.attn_norm.weight"), hd, c.rms_eps)?,
                qkv,
                attn_output: load.block_linear(i, OProj, hd, q_rows)?,
                ffn_norm: load.norm(&format!("{p}.ffn_norm.weight"), hd, c.rms_eps)?,
                gate_up,
                ffn_down: load.block_linear(i, DownProj, hd, c.ffn)?,
                cache: caches.next().expect("one cache per block"),
            });
        }
        let output_norm = load.norm("output_norm.weight", hd, c.rms_eps)?;
        let output = if load.source.shape("output.weight").is_some() {
            load.linear("output.weight", c.vocab, hd)?
        } else {
            // Tied embeddings (SmolLM2): the output projection is the embedding table.
            embedding
                .tied_output()
                .context(|| format!("{source_name}: tied output"))?
        };
        let rope = Rope::new(
            c.head_dim,
            c.rope_base,
            positions,
            c.arch == Architecture::Phi3,
            &device,
        )
        .context(|| "rotary tables".to_string())?;
        Ok(Self {
            config,
            embedding,
            blocks,
            output_norm,
            output,
            rope,
            device,
        })
    }

    /// The model's hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Most positions the KV cache may hold.
    pub fn context_length(&self) -> usize {
        self.rope.max_positions()
    }

    /// Positions currently in the KV cache.
    pub fn cached_len(&self) -> usize {
        self.blocks.first().map_or(0, |b| b.cache.len())
    }

    /// Drops cached positions from `len` on (0 clears the cache).
    pub fn truncate_cache(&mut self, len: usize) {
        for block in &mut self.blocks {
            block.cache.truncate(len);
        }
    }

    /// Runs `ids` after the cached positions and returns the logits of the last position
    /// (`[vocab]`), or of every position (`[ids.len(), vocab]`) when `all_positions`.
    pub fn forward(&mut self, ids: &[u32], all_positions: bool) -> Result<Tensor, ModelError> {
        self.run(&[ids], all_positions)
    }

    /// [`Model::forward`] over `ids` in runs of at most `chunk` positions, returning the last
    /// position's logits. A pass's transient tensors grow with the positions it runs (its
    /// attention scores alone are heads × positions × cached positions in f32), and wasm
    /// memory never shrinks: one long pass would raise the peak for good. Only the last run
    /// goes through the output projection, and on failure the cache is back where it was.
    pub fn forward_chunked(&mut self, ids: &[u32], chunk: usize) -> Result<Tensor, ModelError> {
        let runs: Vec<&[u32]> = ids.chunks(chunk.max(1)).collect();
        self.run(&runs, false)
    }

    /// Runs `runs` one after the other after the cached positions, then the output projection
    /// of the last run's hidden states. The context room is checked for all of them before
    /// any runs, and on failure every cache is back where it was.
    fn run(&mut self, runs: &[&[u32]], all_positions: bool) -> Result<Tensor, ModelError> {
        let start = self.cached_len();
        let total: usize = runs.iter().map(|run| run.len()).sum();
        let needed = start + total;
        if needed > self.context_length() {
            return Err(ModelError::ContextFull {
                needed,
                capacity: self.context_length(),
            });
        }
        if total == 0 {
            return Err(ModelError::InvalidConfig {
                source_name: "forward".into(),
                what: "no tokens to run".into(),
            });
        }
        let result = self.run_blocks(runs).and_then(|xs| {
            self.logits(&xs, all_positions)
                .context(|| format!("output of {total} tokens at position {start}"))
        });
        if result.is_err() {
            // Blocks before the failure have appended their positions, the rest have not:
            // put every cache back to where the caller's record says it is.
            self.truncate_cache(start);
        }
        result
    }

    /// The hidden states of the last of `runs`, run one after the other (`run` has checked
    /// that they hold tokens and fit).
    fn run_blocks(&mut self, runs: &[&[u32]]) -> Result<Tensor, ModelError> {
        let mut last = None;
        for run in runs {
            let at = self.cached_len();
            last =
                Some(self.through_blocks(run, at).context(|| {
                    format!("forward pass over {} tokens at position {at}", run.len())
                })?);
        }
        Ok(last.expect("`run` refuses runs without tokens"))
    }

    /// `[1, ids.len(), hidden]`: `ids` through every block, their keys and values appended
    /// to the caches after position `start`.
    fn through_blocks(&mut self, ids: &[u32], start: usize) -> candle_core::Result<Tensor> {
        let c = &self.config;
        let seq = ids.len();
        let mut xs = self.embedding.forward(ids)?.unsqueeze(0)?;
        for block in &mut self.blocks {
            let residual = &xs;
            let h = block.attn_norm.forward(&xs)?;
            let (q, k, v) = match &block.qkv {
                Qkv::Fused(w) => {
                    let qkv = w.forward(&h)?;
                    let (q, kv) = layers::split_last(&qkv, c.heads * c.head_dim)?;
                    let (k, v) = layers::split_last(&kv, c.kv_heads * c.head_dim)?;
                    (q, k, v)
                }
                Qkv::Split { q, k, v } => (q.forward(&h)?, k.forward(&h)?, v.forward(&h)?),
            };
            let heads = |t: Tensor, n: usize| -> candle_core::Result<Tensor> {
                t.reshape((1, seq, n, c.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let q = self.rope.apply(&heads(q, c.heads)?, start)?;
            let k = self.rope.apply(&heads(k, c.kv_heads)?, start)?;
            let v = heads(v, c.kv_heads)?;
            let (k, v) = block.cache.append(&k, &v)?;
            let att = layers::attention(&q, &k, &v, c.head_dim)?
                .transpose(1, 2)?
                .reshape((1, seq, c.heads * c.head_dim))?;
            xs = (block.attn_output.forward(&att)? + residual)?;
            let residual = &xs;
            let h = block.ffn_norm.forward(&xs)?;
            let mlp = match &block.gate_up {
                GateUp::Fused(w) => {
                    layers::gated_mlp_stacked(&w.forward(&h)?, c.ffn, &block.ffn_down)?
                }
                GateUp::Split { gate, up } => {
                    layers::gated_mlp(&gate.forward(&h)?, &up.forward(&h)?, &block.ffn_down)?
                }
            };
            xs = (mlp + residual)?;
        }
        Ok(xs)
    }

    /// The logits of the last of the hidden states `xs` (`[1, seq, hidden]`), or of all of
    /// them.
    fn logits(&self, xs: &Tensor, all_positions: bool) -> candle_core::Result<Tensor> {
        let xs = if all_positions {
            xs.squeeze(0)?
        } else {
            layers::last_position(xs)?
        };
        let logits = self.output.forward(&self.output_norm.forward(&xs)?)?;
        let logits = if all_positions {
            logits
        } else {
            logits.squeeze(0)?
        };
        logits.to_device(&self.device)
    }
}

/// The largest absolute difference between two tensors of one shape (tests).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use candle_core::quantized::GgmlDType;
    use candle_core::DType;

    use super::*;
    use crate::engine::gguf::{write_gguf, Value};

    const HIDDEN: usize = 8;
    const FFN: usize = 16;
    const VOCAB: usize = 10;

    /// A three-block Llama with smooth deterministic f32 weights, as an in-memory GGUF.
    fn tiny_llama() -> Model {
        tiny_llama_with(&LoadOptions::default())
    }

    fn tiny_llama_with(options: &LoadOptions) -> Model {
        let u32_of = |v: usize| Value::U32(v as u32);
        let metadata = vec![
            (
                "general.architecture".to_string(),
                Value::String("llama".into()),
            ),
            ("llama.block_count".to_string(), u32_of(3)),
            ("llama.context_length".to_string(), u32_of(16)),
            ("llama.embedding_length".to_string(), u32_of(HIDDEN)),
            ("llama.feed_forward_length".to_string(), u32_of(FFN)),
            ("llama.attention.head_count".to_string(), u32_of(2)),
            ("llama.attention.head_count_kv".to_string(), u32_of(1)),
            (
                "llama.attention.layer_norm_rms_epsilon".to_string(),
                Value::F32(1e-5),
            ),
        ];
        let mut shapes = vec![
            ("token_embd.weight".to_string(), vec![VOCAB, HIDDEN]),
            ("output_norm.weight".to_string(), vec![HIDDEN]),
        ];
        for i in 0..3 {
            for (name, shape) in [
                ("attn_norm", vec![HIDDEN]),
                ("attn_q", vec![HIDDEN, HIDDEN]),
                ("attn_k", vec![HIDDEN / 2, HIDDEN]),
                ("attn_v", vec![HIDDEN / 2, HIDDEN]),
                ("attn_output", vec![HIDDEN, HIDDEN]),
                ("ffn_norm", vec![HIDDEN]),
                ("ffn_gate", vec![FFN, HIDDEN]),
                ("ffn_up", vec![FFN, HIDDEN]),
                ("ffn_down", vec![HIDDEN, FFN]),
            ] {
                shapes.push((format!("blk.{i}.{name}.weight"), shape));
            }
        }
        let tensors: Vec<(String, QTensor)> = shapes
            .into_iter()
            .enumerate()
            .map(|(t, (name, shape))| {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = (0..n).map(|i| ((i * 7 + t) as f32).sin() * 0.3).collect();
                let dense = Tensor::from_vec(values, shape, &Device::Cpu).unwrap();
                (name, QTensor::quantize(&dense, GgmlDType::F32).unwrap())
            })
            .collect();
        let refs: Vec<(String, &QTensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
        let mut bytes = Vec::new();
        write_gguf(&mut bytes, &metadata, &refs).unwrap();
        let mut reader = Cursor::new(bytes);
        let file = GgufFile::read(&mut reader, "tiny").unwrap();
        Model::from_gguf(&file, &mut reader, options).unwrap()
    }

    fn cache_lens(model: &Model) -> Vec<usize> {
        model.blocks.iter().map(|b| b.cache.len()).collect()
    }

    #[test]
    fn a_failed_pass_leaves_every_cache_as_it_was() {
        let mut model = tiny_llama();
        let before = model
            .forward(&[1, 2], false)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(cache_lens(&model), [2, 2, 2]);

        // Block 1's down projection now expects 15 inputs: blocks 0 and 1 append their keys
        // and values, then block 1 fails, and block 2 never runs.
        let good = model.blocks[1].ffn_down.clone();
        let wrong = Tensor::zeros((HIDDEN, FFN - 1), DType::F32, &Device::Cpu).unwrap();
        model.blocks[1].ffn_down =
            Linear::new(QTensor::quantize(&wrong, GgmlDType::F32).unwrap()).unwrap();
        let err = model.forward(&[3], false).unwrap_err();
        assert!(
            err.to_string()
                .contains("forward pass over 1 tokens at position 2"),
            "{err}"
        );
        assert_eq!(cache_lens(&model), [2, 2, 2]);

        // The restored cache serves the next pass as if the failure never happened.
        model.blocks[1].ffn_down = good;
        let after = model
            .forward(&[3], false)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut fresh = tiny_llama();
        fresh.forward(&[1, 2], false).unwrap();
        let expected = fresh
            .forward(&[3], false)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(after, expected);
        assert_ne!(after, before);
    }

    #[test]
    fn a_prompt_in_chunks_gives_the_logits_of_one_pass() {
        let ids = [1u32, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2];
        let (mut whole, mut chunked) = (tiny_llama(), tiny_llama());
        let expected = whole.forward(&ids, false).unwrap();
        for chunk in [4, 11, 20] {
            chunked.truncate_cache(0);
            let got = chunked.forward_chunked(&ids, chunk).unwrap();
            let diff = max_abs_diff(&got, &expected);
            assert!(diff < 1e-5, "chunks of {chunk}: max abs diff {diff}");
            assert_eq!(chunked.cached_len(), ids.len());
        }
        // The next position sees the same cache either way.
        let diff = max_abs_diff(
            &whole.forward(&[3], false).unwrap(),
            &chunked.forward(&[3], false).unwrap(),
        );
        assert!(diff < 1e-5, "after the prompt: max abs diff {diff}");
    }

    #[test]
    fn a_prompt_past_the_context_runs_no_chunk_and_keeps_the_cache() {
        let mut model = tiny_llama();
        model.forward(&[1, 2, 3], false).unwrap();
        let err = model.forward_chunked(&[4; 14], 4).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::ContextFull {
                    needed: 17,
                    capacity: 16
                }
            ),
            "{err}"
        );
        assert_eq!(model.cached_len(), 3);
        assert!(model.forward_chunked(&[], 4).is_err());
        assert_eq!(model.cached_len(), 3);
    }

    #[test]
    fn an_f16_cache_gives_the_f32_cache_s_logits_to_f16_precision() {
        let with = |kv_dtype| {
            tiny_llama_with(&LoadOptions {
                kv_dtype: Some(kv_dtype),
                ..LoadOptions::default()
            })
        };
        let (mut wide, mut narrow) = (with(DType::F32), with(DType::F16));
        assert_eq!(tiny_llama().blocks[0].cache.dtype(), DType::F32);
        assert_eq!(narrow.blocks[0].cache.dtype(), DType::F16);
        for ids in [&[1u32, 2, 3][..], &[4], &[5], &[6, 7]] {
            let diff = max_abs_diff(
                &wide.forward(ids, false).unwrap(),
                &narrow.forward(ids, false).unwrap(),
            );
            assert!(diff < 1e-2, "{ids:?}: max abs diff {diff}");
        }
        assert_eq!(narrow.cached_len(), 7);
    }
}
