//! The frozen base: f32 weights dequantized from a GGUF or read from a Hugging Face folder,
//! kept in transformers' row order (Llama's q/k un-permuted from llama.cpp's rotary layout),
//! with the model's tokenizer and chat template.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use mimir::engine::chat::ChatTemplate;
use mimir::engine::gguf::GgufFile;
use mimir::engine::lora::TargetModule;
use mimir::engine::model::{gguf_name, open_hf_dir, Architecture, ModelConfig};
use mimir::engine::tokenizer::{GgufVocab, Tokenizer};

use super::error::{CandleContext, TrainError};

/// Every base tensor by llama.cpp name, f32, transformers' row order.
#[derive(Debug)]
pub struct BaseWeights {
    /// The model's shapes.
    pub config: ModelConfig,
    tensors: HashMap<String, Tensor>,
    source: String,
}

/// A base model ready to fine-tune: weights, tokenizer and the template prompts use.
#[derive(Debug)]
pub struct Base {
    /// The frozen weights.
    pub weights: BaseWeights,
    /// The tokenizer examples are encoded with.
    pub tokenizer: Tokenizer,
    /// The chat template the engine renders prompts with for this model.
    pub template: ChatTemplate,
    /// The GGUF file or folder it came from.
    pub path: PathBuf,
}

/// The head count llama.cpp permuted the rows of `module` with (Llama's q and k), if any.
pub fn hf_layout_heads(config: &ModelConfig, module: TargetModule) -> Option<usize> {
    match (config.arch, module) {
        (Architecture::Llama, TargetModule::QProj) => Some(config.heads),
        (Architecture::Llama, TargetModule::KProj) => Some(config.kv_heads),
        _ => None,
    }
}

/// The inverse of llama.cpp's `LlamaModel.permute`: rows of a GGUF q/k weight (interleaved
/// rotary pairs) back in transformers' order (rotate-half pairs).
pub fn unpermute_for_rope(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    w.reshape((n_head, rows / n_head / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))
}

/// llama.cpp's `LlamaModel.permute` on the rows of `w` (`[out, cols]`): transformers' order
/// to the GGUF's.
pub fn permute_for_rope(w: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    w.reshape((n_head, 2, rows / n_head / 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))
}

/// Every tensor the decoder reads: llama.cpp name, expected shape, and the heads its rows
/// were permuted with.
fn slots(c: &ModelConfig) -> Vec<(String, Vec<usize>, Option<usize>)> {
    use TargetModule::*;
    let (hd, q_rows, kv_rows) = (c.hidden, c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let mut slots = vec![("token_embd.weight".to_owned(), vec![c.vocab, hd], None)];
    for i in 0..c.layers {
        let mut projection = |module, rows, cols| {
            slots.push((
                gguf_name(i, module),
                vec![rows, cols],
                hf_layout_heads(c, module),
            ))
        };
        match c.arch {
            Architecture::Phi3 => {
                projection(QkvProj, q_rows + 2 * kv_rows, hd);
                projection(GateUpProj, 2 * c.ffn, hd);
            }
            Architecture::Llama => {
                projection(QProj, q_rows, hd);
                projection(KProj, kv_rows, hd);
                projection(VProj, kv_rows, hd);
                projection(GateProj, c.ffn, hd);
                projection(UpProj, c.ffn, hd);
            }
        }
        projection(OProj, hd, q_rows);
        projection(DownProj, hd, c.ffn);
        slots.push((format!("blk.{i}.attn_norm.weight"), vec![hd], None));
        slots.push((format!("blk.{i}.ffn_norm.weight"), vec![hd], None));
    }
    slots.push(("output_norm.weight".to_owned(), vec![hd], None));
    slots
}

impl BaseWeights {
    /// Reads a GGUF file or a Hugging Face folder (when `path` is a directory) onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, TrainError> {
        if path.is_dir() {
            let mut weights = open_hf_dir(path)?;
            let config = weights.config().clone();
            let source = weights.source().to_owned();
            let has_output = weights.shape("output.weight").is_some();
            Self::collect(config, source, has_output, device, |name| {
                Ok(weights.dense(name, &Device::Cpu)?)
            })
        } else {
            let file = File::open(path).map_err(|e| TrainError::io(path, "opening", e))?;
            let mut reader = BufReader::new(file);
            let gguf = GgufFile::read(&mut reader, &path.display().to_string())?;
            let config = ModelConfig::from_gguf(&gguf)?;
            let has_output = gguf.tensor_info("output.weight").is_some();
            let source = gguf.source().to_owned();
            Self::collect(config, source, has_output, device, |name| {
                let q = gguf.tensor(&mut reader, name, &Device::Cpu)?;
                q.dequantize(&Device::Cpu)
                    .context(|| format!("{}: dequantizing {name}", gguf.source()))
            })
        }
    }

    fn collect(
        config: ModelConfig,
        source: String,
        has_output: bool,
        device: &Device,
        mut read: impl FnMut(&str) -> Result<Tensor, TrainError>,
    ) -> Result<Self, TrainError> {
        let mut slots = slots(&config);
        if has_output {
            slots.push((
                "output.weight".to_owned(),
                vec![config.vocab, config.hidden],
                None,
            ));
        }
        let mut tensors = HashMap::with_capacity(slots.len());
        for (name, shape, heads) in slots {
            let dense = read(&name)?;
            if dense.dims() != shape.as_slice() {
                return Err(TrainError::invalid(
                    &source,
                    format!(
                        "tensor {name}: shape {:?} but the configuration implies {shape:?}",
                        dense.dims()
                    ),
                ));
            }
            let context = || format!("{source}: {name}");
            let dense = match heads {
                Some(n) => unpermute_for_rope(&dense, n).context(context)?,
                None => dense,
            };
            let dense = dense.to_device(device).context(context)?;
            tensors.insert(name, dense);
        }
        Ok(Self {
            config,
            tensors,
            source,
        })
    }

    /// The tensor called `name` (llama.cpp's name).
    pub fn get(&self, name: &str) -> Result<&Tensor, TrainError> {
        self.tensors.get(name).ok_or_else(|| {
            TrainError::invalid(&self.source, format!("tensor {name} was not loaded"))
        })
    }

    /// The output projection: `output.weight`, or the embedding table when tied.
    pub fn output(&self) -> Result<&Tensor, TrainError> {
        match self.tensors.get("output.weight") {
            Some(t) => Ok(t),
            None => self.get("token_embd.weight"),
        }
    }

    /// The GGUF file or folder the weights came from.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl Base {
    /// Loads the weights of `model` (a GGUF file or a Hugging Face folder), its tokenizer
    /// (`tokenizer` if given, else the GGUF's vocabulary or the folder's `tokenizer.json`) and
    /// its chat template, as the engine would pick them.
    pub fn load(
        model: &Path,
        tokenizer: Option<&Path>,
        device: &Device,
    ) -> Result<Self, TrainError> {
        let weights = BaseWeights::load(model, device)?;
        let read_json = |path: &Path| -> Result<Tokenizer, TrainError> {
            let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, "reading", e))?;
            Ok(Tokenizer::from_json_bytes(
                &bytes,
                &path.display().to_string(),
            )?)
        };
        let arch = weights.config.arch.name();
        let (tokenizer, template) = if model.is_dir() {
            let path = tokenizer.map_or_else(|| model.join("tokenizer.json"), Path::to_path_buf);
            (
                read_json(&path)?,
                ChatTemplate::from_gguf_template(None, arch),
            )
        } else {
            let file = File::open(model).map_err(|e| TrainError::io(model, "opening", e))?;
            let gguf = GgufFile::read(&mut BufReader::new(file), &model.display().to_string())?;
            let template = ChatTemplate::from_gguf_template(
                gguf.get("tokenizer.chat_template").and_then(|v| v.as_str()),
                arch,
            );
            let tokenizer = match tokenizer {
                Some(path) => read_json(path)?,
                None => Tokenizer::from_gguf_vocab(
                    &GgufVocab::from_gguf(&gguf)?,
                    &model.display().to_string(),
                )?,
            };
            (tokenizer, template)
        };
        Ok(Self {
            weights,
            tokenizer,
            template,
            path: model.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        let rows: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let w = Tensor::from_vec(rows, (8, 2), &Device::Cpu).unwrap();
        let p = permute_for_rope(&w, 2).unwrap();
        // numpy: np.arange(8).reshape(2, 2, 2).swapaxes(1, 2).reshape(8) == [0 2 1 3 4 6 5 7]
        let first: Vec<f32> = p
            .to_vec2::<f32>()
            .unwrap()
            .iter()
            .map(|r| r[0] / 2.0)
            .collect();
        assert_eq!(first, [0., 2., 1., 3., 4., 6., 5., 7.]);
        let back = unpermute_for_rope(&p, 2).unwrap();
        assert_eq!(back.to_vec2::<f32>().unwrap(), w.to_vec2::<f32>().unwrap());
    }
}
