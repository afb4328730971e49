//! GGUF files of the tiny weights, named, laid out and described as llama.cpp's
//! `convert_hf_to_gguf.py` (then `llama-quantize --pure`) would write them.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use mimir::engine::gguf::{write_gguf, GgufFile, Value};

use super::spec::{Arch, TinySpec};
use super::weights::{F32Tensor, Role, Weight};
use super::TinyError;

/// Row length (ne0) a k-quant block needs (`QK_K`).
const QK_K: usize = 256;

/// The tensor type of a GGUF file, and its llama.cpp `general.file_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgufType {
    /// Everything F32 (`LLAMA_FTYPE_ALL_F32` = 0).
    F32,
    /// Matrices F16, norms F32 (`MOSTLY_F16` = 1).
    F16,
    /// Matrices Q8_0 (`MOSTLY_Q8_0` = 7).
    Q8_0,
    /// Matrices Q4_0 (`MOSTLY_Q4_0` = 2).
    Q4_0,
    /// Matrices Q4_K where the row length is a multiple of 256, else Q8_0; labelled
    /// `MOSTLY_Q4_K_M` = 15. With hidden 64 and ffn 128 no row qualifies, so the file is all
    /// Q8_0 in practice; an ffn of 256 makes `ffn_down` Q4_K. (llama.cpp itself would fall
    /// back to Q5_0 and use Q6_K for `output.weight`; this is the uniform `--pure` recipe.)
    Q4K,
}

impl GgufType {
    /// Every type, in the order [`write_tiny`](super::write_tiny) writes them.
    pub const ALL: [GgufType; 5] = [Self::F32, Self::F16, Self::Q8_0, Self::Q4_0, Self::Q4K];

    /// The file name used by [`write_tiny`](super::write_tiny), e.g. `model-q4_k.gguf`.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::F32 => "model-f32.gguf",
            Self::F16 => "model-f16.gguf",
            Self::Q8_0 => "model-q8_0.gguf",
            Self::Q4_0 => "model-q4_0.gguf",
            Self::Q4K => "model-q4_k.gguf",
        }
    }

    /// llama.cpp's `general.file_type` (`enum llama_ftype`).
    pub fn file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
            Self::Q8_0 => 7,
            Self::Q4_0 => 2,
            Self::Q4K => 15,
        }
    }

    /// The type of a matrix whose rows hold `ne0` values (norms are always F32).
    pub fn matrix_dtype(self, ne0: usize) -> GgmlDType {
        match self {
            Self::F32 => GgmlDType::F32,
            Self::F16 => GgmlDType::F16,
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4_0 => GgmlDType::Q4_0,
            Self::Q4K if ne0.is_multiple_of(QK_K) => GgmlDType::Q4K,
            Self::Q4K => GgmlDType::Q8_0,
        }
    }
}

/// llama.cpp's name for a tensor (`blk.0.attn_qkv.weight`).
pub(crate) fn gguf_name(role: Role, layer: usize) -> String {
    let block = |what: &str| format!("blk.{layer}.{what}.weight");
    match role {
        Role::Embed => "token_embd.weight".to_owned(),
        Role::OutputNorm => "output_norm.weight".to_owned(),
        Role::Output => "output.weight".to_owned(),
        Role::AttnNorm => block("attn_norm"),
        Role::Qkv => block("attn_qkv"),
        Role::Q => block("attn_q"),
        Role::K => block("attn_k"),
        Role::V => block("attn_v"),
        Role::O => block("attn_output"),
        Role::FfnNorm => block("ffn_norm"),
        // Phi-3's fused gate_up keeps its name: llama.cpp splits it at run time
        Role::GateUp | Role::Up => block("ffn_up"),
        Role::Gate => block("ffn_gate"),
        Role::Down => block("ffn_down"),
    }
}

/// `LlamaModel.permute` of llama.cpp's `convert_hf_to_gguf.py`:
/// `w.reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape)`.
/// Within each head, HF's rotate-half layout (pair `i` with `i + d/2`) becomes the
/// interleaved layout llama.cpp's `llama` rope expects (pair `2i` with `2i + 1`): new row
/// `h*d + 2i + j` is old row `h*d + j*d/2 + i`.
pub(crate) fn permute_for_rope(w: &F32Tensor, n_head: usize) -> F32Tensor {
    let rows = w.shape.first().copied().unwrap_or(0);
    let head = rows / n_head.max(1);
    let half = head / 2;
    let mut data = Vec::with_capacity(w.data.len());
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                data.extend_from_slice(w.row(h * head + j * half + i));
            }
        }
    }
    F32Tensor {
        shape: w.shape.clone(),
        data,
    }
}

/// The tensor as llama.cpp stores it: Llama's q and k permuted (k with the kv head count,
/// as the converter passes `n_head_kv`), everything else as in HF.
fn gguf_layout(spec: &TinySpec, weight: &Weight) -> F32Tensor {
    match (spec.arch, weight.role) {
        (Arch::Llama, Role::Q) => permute_for_rope(&weight.tensor, spec.heads),
        (Arch::Llama, Role::K) => permute_for_rope(&weight.tensor, spec.kv_heads),
        _ => weight.tensor.clone(),
    }
}

/// The model metadata llama.cpp writes for a model shaped like `spec` (its seed unused), in
/// its order, with `tokenizer` (the `tokenizer.*` keys) before `general.quantization_version`.
pub fn metadata(
    spec: &TinySpec,
    ty: GgufType,
    name: &str,
    tokenizer: &[(String, Value)],
) -> Vec<(String, Value)> {
    let arch = spec.arch.gguf_name();
    let key = |k: &str| format!("{arch}.{k}");
    let u32_of = |v: usize| Value::U32(u32::try_from(v).unwrap_or(u32::MAX));
    let mut md = vec![
        (
            "general.architecture".to_owned(),
            Value::String(arch.to_owned()),
        ),
        ("general.name".to_owned(), Value::String(name.to_owned())),
    ];
    match spec.arch {
        // Phi3MiniModel.set_gguf_parameters (the order of llama.cpp's Phi-3 vocab GGUF)
        Arch::Phi3 => md.extend([
            (key("context_length"), u32_of(spec.context)),
            (
                key("rope.scaling.original_context_length"),
                u32_of(spec.context),
            ),
            (key("embedding_length"), u32_of(spec.hidden)),
            (key("feed_forward_length"), u32_of(spec.ffn)),
            (key("block_count"), u32_of(spec.layers)),
            (key("attention.head_count"), u32_of(spec.heads)),
            (key("attention.head_count_kv"), u32_of(spec.kv_heads)),
            (
                key("attention.layer_norm_rms_epsilon"),
                Value::F32(spec.rms_eps),
            ),
            (key("rope.dimension_count"), u32_of(spec.head_dim())),
            (key("rope.freq_base"), Value::F32(spec.rope_base)),
            ("general.file_type".to_owned(), Value::U32(ty.file_type())),
        ]),
        // TextModel.set_gguf_parameters, then LlamaModel's vocab size and rope dimensions
        Arch::Llama => md.extend([
            (key("block_count"), u32_of(spec.layers)),
            (key("context_length"), u32_of(spec.context)),
            (key("embedding_length"), u32_of(spec.hidden)),
            (key("feed_forward_length"), u32_of(spec.ffn)),
            (key("attention.head_count"), u32_of(spec.heads)),
            (key("attention.head_count_kv"), u32_of(spec.kv_heads)),
            (key("rope.freq_base"), Value::F32(spec.rope_base)),
            (
                key("attention.layer_norm_rms_epsilon"),
                Value::F32(spec.rms_eps),
            ),
            ("general.file_type".to_owned(), Value::U32(ty.file_type())),
            (key("vocab_size"), u32_of(spec.vocab)),
            (key("rope.dimension_count"), u32_of(spec.head_dim())),
        ]),
    }
    md.extend(tokenizer.iter().cloned());
    md.push(("general.quantization_version".to_owned(), Value::U32(2)));
    md
}

/// The bytes of a GGUF of `weights` (HF layout) in type `ty`; `path` is only for errors.
pub(crate) fn gguf_bytes(
    spec: &TinySpec,
    weights: &[Weight],
    ty: GgufType,
    name: &str,
    tokenizer: &[(String, Value)],
    path: &Path,
) -> Result<Vec<u8>, TinyError> {
    let mut tensors = Vec::with_capacity(weights.len());
    for weight in weights {
        let tensor_name = gguf_name(weight.role, weight.layer);
        let fail = |e| TinyError::candle(path, &tensor_name, e);
        let layout = gguf_layout(spec, weight);
        let ne0 = layout.shape.last().copied().unwrap_or(0);
        let dtype = if weight.role.is_norm() {
            GgmlDType::F32
        } else {
            ty.matrix_dtype(ne0)
        };
        let dense = Tensor::from_vec(layout.data, layout.shape, &Device::Cpu).map_err(fail)?;
        let quantized = QTensor::quantize(&dense, dtype).map_err(fail)?;
        tensors.push((tensor_name, quantized));
    }
    let refs: Vec<(String, &QTensor)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    let mut bytes = Vec::new();
    write_gguf(&mut bytes, &metadata(spec, ty, name, tokenizer), &refs).map_err(|source| {
        TinyError::Gguf {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(bytes)
}

/// The `tokenizer.*` entries of the GGUF at `vocab_gguf`, checked to hold `vocab` tokens.
pub(crate) fn tokenizer_metadata(
    vocab_gguf: &Path,
    vocab: usize,
) -> Result<Vec<(String, Value)>, TinyError> {
    let file = File::open(vocab_gguf).map_err(|e| TinyError::io(vocab_gguf, "opening", e))?;
    let source = vocab_gguf.display().to_string();
    let gguf =
        GgufFile::read(&mut BufReader::new(file), &source).map_err(|source| TinyError::Gguf {
            path: vocab_gguf.to_owned(),
            source,
        })?;
    let tokens = gguf
        .get("tokenizer.ggml.tokens")
        .and_then(Value::as_array)
        .map(<[Value]>::len);
    if tokens != Some(vocab) {
        let found = tokens.map_or("no tokenizer.ggml.tokens".to_owned(), |n| {
            format!("{n} tokens")
        });
        return Err(TinyError::Vocab {
            path: vocab_gguf.to_owned(),
            problem: format!("{found}, but the spec's vocab is {vocab}"),
        });
    }
    Ok(gguf
        .metadata()
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, cols: usize) -> F32Tensor {
        F32Tensor {
            shape: vec![n, cols],
            data: (0..n * cols).map(|i| (i / cols) as f32).collect(),
        }
    }

    fn row_order(t: &F32Tensor) -> Vec<f32> {
        (0..t.shape[0]).map(|r| t.row(r)[0]).collect()
    }

    #[test]
    fn permutation_interleaves_halves_within_each_head() {
        // numpy: np.arange(8).reshape(2, 2, 2).swapaxes(1, 2).reshape(8) == [0 2 1 3 4 6 5 7]
        let p = permute_for_rope(&rows(8, 3), 2);
        assert_eq!(row_order(&p), [0., 2., 1., 3., 4., 6., 5., 7.]);
        // numpy: np.arange(8).reshape(1, 2, 4).swapaxes(1, 2).reshape(8) == [0 4 1 5 2 6 3 7]
        let p = permute_for_rope(&rows(8, 3), 1);
        assert_eq!(row_order(&p), [0., 4., 1., 5., 2., 6., 3., 7.]);
        assert_eq!(p.shape, vec![8, 3]);
    }

    #[test]
    fn names_follow_llama_cpp() {
        assert_eq!(gguf_name(Role::GateUp, 3), "blk.3.ffn_up.weight");
        assert_eq!(gguf_name(Role::O, 0), "blk.0.attn_output.weight");
        assert_eq!(gguf_name(Role::FfnNorm, 1), "blk.1.ffn_norm.weight");
        assert_eq!(gguf_name(Role::Embed, 1), "token_embd.weight");
    }

    #[test]
    fn q4k_falls_back_to_q8_0_on_short_rows() {
        assert_eq!(GgufType::Q4K.matrix_dtype(64), GgmlDType::Q8_0);
        assert_eq!(GgufType::Q4K.matrix_dtype(512), GgmlDType::Q4K);
        assert_eq!(GgufType::Q4_0.matrix_dtype(64), GgmlDType::Q4_0);
    }
}
