//! What a tiny model looks like: architecture, sizes and seed.

use super::TinyError;

/// The model family a tiny model imitates; it decides tensor names, fusion and GGUF layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// Phi-3-mini (`Phi3ForCausalLM`, GGUF `phi3`): fused `qkv_proj` and `gate_up_proj`,
    /// NeoX-style rope in llama.cpp, so q/k are written unpermuted.
    Phi3,
    /// Llama (`LlamaForCausalLM`, GGUF `llama`): separate projections; llama.cpp's converter
    /// permutes q and k for its interleaved rope.
    Llama,
}

impl Arch {
    /// The GGUF `general.architecture` value and key prefix (`phi3`, `llama`).
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Phi3 => "phi3",
            Self::Llama => "llama",
        }
    }

    /// The transformers class named in `config.json`'s `architectures`.
    pub fn hf_class(self) -> &'static str {
        match self {
            Self::Phi3 => "Phi3ForCausalLM",
            Self::Llama => "LlamaForCausalLM",
        }
    }

    /// `bos_token_id` written to `config.json` (`<s>` in both tokenizers).
    pub fn bos_token_id(self) -> u32 {
        1
    }

    /// `eos_token_id` written to `config.json`: Phi-3's `<|endoftext|>` (32000, also its pad
    /// id), Llama 2's `</s>` (2).
    pub fn eos_token_id(self) -> u32 {
        match self {
            Self::Phi3 => 32000,
            Self::Llama => 2,
        }
    }
}

/// Shape, rope and seed of a tiny model. Every tensor is a pure function of this struct.
#[derive(Debug, Clone, PartialEq)]
pub struct TinySpec {
    /// Model family.
    pub arch: Arch,
    /// Embedding width (`hidden_size`); a multiple of 32 so Q8_0/Q4_0 blocks fit rows.
    pub hidden: usize,
    /// Number of transformer blocks.
    pub layers: usize,
    /// Query heads; `hidden / heads` is the head size and must be even (rope pairs).
    pub heads: usize,
    /// Key/value heads (fewer than `heads` for grouped-query attention); divides `heads`.
    pub kv_heads: usize,
    /// MLP width (`intermediate_size`); a multiple of 32.
    pub ffn: usize,
    /// Vocabulary rows; 32064 fits the Phi-3 tokenizer.
    pub vocab: usize,
    /// `max_position_embeddings` / `{arch}.context_length`.
    pub context: usize,
    /// Rope base (`rope_theta`). candle's `quantized_phi3` ignores the GGUF value and uses
    /// 10000, so Phi-3 fixtures keep 10000.
    pub rope_base: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Seed of every weight.
    pub seed: u64,
}

/// Rows of a Q8_0 / Q4_0 block: `hidden` and `ffn` (every row length) must be multiples.
const QUANT_BLOCK: usize = 32;

impl TinySpec {
    /// A tiny Phi-3-mini: hidden 64, 2 layers, 4 heads (no GQA), ffn 128, the Phi-3 vocab
    /// size 32064, context 4096, rope 10000, eps 1e-5.
    pub fn phi3() -> Self {
        Self {
            arch: Arch::Phi3,
            hidden: 64,
            layers: 2,
            heads: 4,
            kv_heads: 4,
            ffn: 128,
            vocab: 32064,
            context: 4096,
            rope_base: 10_000.0,
            rms_eps: 1e-5,
            seed: 0x5EED_0003,
        }
    }

    /// The exact shapes of Phi-3-mini-4k-instruct (hidden 3072, 32 layers, 32 heads, no GQA,
    /// ffn 8192, vocab 32064, context 4096), with random weights: a 3.8 B-parameter stand-in
    /// for speed and memory measurements (write it with
    /// [`write_full_size_gguf`](super::write_full_size_gguf), never whole in memory).
    pub fn phi3_mini() -> Self {
        Self {
            hidden: 3072,
            layers: 32,
            heads: 32,
            kv_heads: 32,
            ffn: 8192,
            ..Self::phi3()
        }
    }

    /// A tiny Llama: like [`TinySpec::phi3`] but 2 key/value heads (GQA) and rope 100000.
    pub fn llama() -> Self {
        Self {
            arch: Arch::Llama,
            kv_heads: 2,
            rope_base: 100_000.0,
            seed: 0x5EED_1A3A,
            ..Self::phi3()
        }
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads.max(1)
    }

    /// Checks the sizes fit together and the real formats; the error says which do not.
    pub fn validate(&self) -> Result<(), TinyError> {
        let fail = |problem: String| Err(TinyError::InvalidSpec { problem });
        let sizes = [
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("ffn", self.ffn),
            ("vocab", self.vocab),
            ("context", self.context),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return fail(format!("{name} is 0"));
        }
        if !self.hidden.is_multiple_of(self.heads) {
            return fail(format!(
                "hidden {} is not a multiple of heads {}",
                self.hidden, self.heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return fail(format!(
                "head size {} is odd (rope rotates pairs)",
                self.head_dim()
            ));
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return fail(format!(
                "heads {} is not a multiple of kv_heads {}",
                self.heads, self.kv_heads
            ));
        }
        for (name, v) in [("hidden", self.hidden), ("ffn", self.ffn)] {
            if !v.is_multiple_of(QUANT_BLOCK) {
                return fail(format!(
                    "{name} {v} is not a multiple of {QUANT_BLOCK} (Q8_0/Q4_0 block)"
                ));
            }
        }
        let eos = self.arch.eos_token_id() as usize;
        if self.vocab <= eos {
            return fail(format!(
                "vocab {} does not hold the {:?} eos id {eos}",
                self.vocab, self.arch
            ));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 0.0) {
            return fail(format!("rope_base {} is not positive", self.rope_base));
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            return fail(format!("rms_eps {} is not positive", self.rms_eps));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        assert_eq!(
            TinySpec::phi3().validate().map_err(|e| e.to_string()),
            Ok(())
        );
        assert_eq!(
            TinySpec::llama().validate().map_err(|e| e.to_string()),
            Ok(())
        );
        assert_eq!(TinySpec::llama().head_dim(), 16);
    }

    #[test]
    fn bad_sizes_are_named() {
        let spec = TinySpec {
            kv_heads: 3,
            ..TinySpec::llama()
        };
        let err = spec.validate().map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("invalid tiny model spec: heads 4 is not a multiple of kv_heads 3".into())
        );
        let spec = TinySpec {
            ffn: 100,
            ..TinySpec::phi3()
        };
        assert!(spec.validate().is_err());
        let spec = TinySpec {
            vocab: 1000,
            ..TinySpec::phi3()
        };
        assert!(spec.validate().is_err());
    }
}
