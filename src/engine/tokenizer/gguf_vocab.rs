//! The GGUF `tokenizer.ggml.*` metadata, and turning it into a `tokenizers` tokenizer.
//!
//! The GGUF reader (elsewhere in the engine) fills a [`GgufVocab`]; this module checks
//! it once and hands it to the builder for its model type: [`super::sentencepiece`] for
//! `"llama"`, [`super::byte_level`] for `"gpt2"`.

use tokenizers::AddedToken;

use crate::engine::gguf::{GgufError, GgufFile, Value};

use super::{byte_level, sentencepiece, TokenizerError};

/// The tokenizer part of a GGUF file's metadata, as plain data.
///
/// Field names follow the GGUF keys (`tokenizer.ggml.<key>`, `general.<key>`).
/// Only `model` and `tokens` are required; the builders say which other fields
/// their model type needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`: `"llama"` (SentencePiece BPE with byte fallback) or
    /// `"gpt2"` (byte-level BPE).
    pub model: String,
    /// `tokenizer.ggml.tokens`: the token text of every id, in id order.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores`: one score per token; required for `"llama"`, whose
    /// merges are derived from them.
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.token_type`: one [`GgufVocab::TYPE_NORMAL`]..[`GgufVocab::TYPE_BYTE`]
    /// value per token; absent means every token is normal.
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.merges`: `"left right"` pairs in rank order; required for `"gpt2"`.
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id` (not used for tokenization; kept for callers).
    pub pad_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`; absent means `true` for `"llama"` and `false`
    /// for `"gpt2"`, as in llama.cpp.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token` (encoding never appends EOS; kept for writers).
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`; only `"llama"` reads it (absent means `true`).
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.ggml.pre`: the pre-tokenizer name llama.cpp uses to pick the split
    /// regex of a `"gpt2"` vocabulary (e.g. `"smollm"`, `"default"`).
    pub pre: Option<String>,
    /// `general.architecture` (e.g. `"phi3"`): selects model quirks such as Phi-3's
    /// whitespace-swallowing special tokens.
    pub architecture: Option<String>,
    /// `general.name` (e.g. `"Phi3"`): also checked for model quirks, as llama.cpp does.
    pub name: Option<String>,
    /// `tokenizer.chat_template` (not used here; kept for the chat template module).
    pub chat_template: Option<String>,
}

impl GgufVocab {
    /// Reads the `tokenizer.ggml.*` metadata of a GGUF file (our defensive reader); a key of
    /// the wrong type is an error naming the file and key, an absent optional key is `None`.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, GgufError> {
        let optional = |key: &str| file.get(key).is_some();
        let text = |key: &str| -> Result<Option<String>, GgufError> {
            optional(key)
                .then(|| file.str(key).map(str::to_string))
                .transpose()
        };
        let id = |key: &str| optional(key).then(|| file.u32(key)).transpose();
        let flag = |key: &str| match file.get(key) {
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(GgufError::WrongType {
                file: file.source().to_string(),
                key: key.to_string(),
                expected: "bool",
                found: file
                    .get(key)
                    .map_or("nothing", |v| v.value_type().name())
                    .to_string(),
            }),
            None => Ok(None),
        };
        let strings = |key: &str| -> Result<Option<Vec<String>>, GgufError> {
            optional(key)
                .then(|| {
                    file.string_array(key)
                        .map(|v| v.into_iter().map(str::to_string).collect())
                })
                .transpose()
        };
        Ok(GgufVocab {
            model: file.str("tokenizer.ggml.model")?.to_string(),
            tokens: file
                .string_array("tokenizer.ggml.tokens")?
                .into_iter()
                .map(str::to_string)
                .collect(),
            scores: optional("tokenizer.ggml.scores")
                .then(|| file.f32_array("tokenizer.ggml.scores"))
                .transpose()?,
            token_types: optional("tokenizer.ggml.token_type")
                .then(|| file.i32_array("tokenizer.ggml.token_type"))
                .transpose()?,
            merges: strings("tokenizer.ggml.merges")?,
            bos_id: id("tokenizer.ggml.bos_token_id")?,
            eos_id: id("tokenizer.ggml.eos_token_id")?,
            unk_id: id("tokenizer.ggml.unknown_token_id")?,
            pad_id: id("tokenizer.ggml.padding_token_id")?,
            add_bos: flag("tokenizer.ggml.add_bos_token")?,
            add_eos: flag("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix")?,
            pre: text("tokenizer.ggml.pre")?,
            architecture: text("general.architecture")?,
            name: text("general.name")?,
            chat_template: text("tokenizer.chat_template")?,
        })
    }

    /// `token_type` of an ordinary vocabulary entry.
    pub const TYPE_NORMAL: i32 = 1;
    /// `token_type` of the unknown token (and of unused padding rows in some files).
    pub const TYPE_UNKNOWN: i32 = 2;
    /// `token_type` of a control token (`<s>`, `<|im_start|>`, ...): a special token.
    pub const TYPE_CONTROL: i32 = 3;
    /// `token_type` of a user-defined token: matched whole in text, decoded as text.
    pub const TYPE_USER_DEFINED: i32 = 4;
    /// `token_type` of an unused entry.
    pub const TYPE_UNUSED: i32 = 5;
    /// `token_type` of a byte-fallback entry (`<0x00>`..`<0xFF>`).
    pub const TYPE_BYTE: i32 = 6;

    /// The type of token `id`, [`GgufVocab::TYPE_NORMAL`] when no types are given.
    pub fn token_type(&self, id: usize) -> i32 {
        self.token_types
            .as_ref()
            .and_then(|types| types.get(id).copied())
            .unwrap_or(Self::TYPE_NORMAL)
    }

    /// Whether `general.architecture` or `general.name` says this is a Phi-3 model.
    pub(super) fn is_phi3(&self) -> bool {
        [&self.architecture, &self.name]
            .into_iter()
            .flatten()
            .map(|s| s.to_ascii_lowercase())
            .any(|s| s.contains("phi3") || s.contains("phi-3"))
    }

    /// Checks lengths and ids against the token list, once, before anything is built.
    fn validate(&self, origin: &str) -> Result<(), TokenizerError> {
        let n = self.tokens.len();
        if n == 0 {
            return Err(invalid(origin, "tokenizer.ggml.tokens is empty".into()));
        }
        if u32::try_from(n).is_err() {
            return Err(invalid(origin, format!("{n} tokens do not fit u32 ids")));
        }
        let lengths = [
            ("tokenizer.ggml.scores", self.scores.as_ref().map(Vec::len)),
            (
                "tokenizer.ggml.token_type",
                self.token_types.as_ref().map(Vec::len),
            ),
        ];
        for (key, len) in lengths {
            if let Some(len) = len.filter(|&len| len != n) {
                return Err(invalid(
                    origin,
                    format!("{key} has {len} entries but tokenizer.ggml.tokens has {n}"),
                ));
            }
        }
        let ids = [
            ("tokenizer.ggml.bos_token_id", self.bos_id),
            ("tokenizer.ggml.eos_token_id", self.eos_id),
            ("tokenizer.ggml.unknown_token_id", self.unk_id),
            ("tokenizer.ggml.padding_token_id", self.pad_id),
        ];
        for (key, id) in ids {
            if let Some(id) = id.filter(|&id| id as usize >= n) {
                return Err(invalid(
                    origin,
                    format!("{key} is {id} but the vocabulary has {n} tokens"),
                ));
            }
        }
        Ok(())
    }

    /// The text of token `id`; callers pass ids checked by `validate`.
    pub(super) fn text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The BOS id that encoding with `add_bos = true` prepends, if the model wants one.
    pub(super) fn bos_to_add(&self) -> Option<u32> {
        let default = self.model == "llama";
        self.bos_id.filter(|_| self.add_bos.unwrap_or(default))
    }

    /// Control and user-defined tokens as added tokens, in id order.
    ///
    /// Added tokens are matched whole in the input before the model sees it, which
    /// is what makes `<|user|>` in a rendered chat prompt one id. Control tokens (and
    /// the unknown token) are special: `decode(.., skip_special = true)` drops them.
    /// User-defined tokens (Phi-3's `</s>`) are plain added tokens that decode as text,
    /// as in llama.cpp and the published `tokenizer.json` files.
    pub(super) fn added_tokens(&self) -> Vec<AddedToken> {
        let phi3 = self.is_phi3();
        self.tokens
            .iter()
            .enumerate()
            .filter_map(|(id, text)| {
                let kind = self.token_type(id);
                let special =
                    kind == Self::TYPE_CONTROL || self.unk_id.is_some_and(|u| u as usize == id);
                if !special && kind != Self::TYPE_USER_DEFINED {
                    return None;
                }
                // llama.cpp's "phi-3" rule, also in the published Phi-3 tokenizer.json:
                // these tokens swallow the whitespace (the "\n" of the chat template)
                // after them; <unk>, <s> and <|endoftext|> do not.
                let rstrip = phi3 && !matches!(text.as_str(), "<unk>" | "<s>" | "<|endoftext|>");
                Some(
                    AddedToken::from(text.clone(), special)
                        .normalized(false)
                        .rstrip(rstrip),
                )
            })
            .collect()
    }
}

/// Builds the `tokenizers` tokenizer described by `vocab`.
pub(super) fn build(
    vocab: &GgufVocab,
    origin: &str,
) -> Result<tokenizers::Tokenizer, TokenizerError> {
    vocab.validate(origin)?;
    let mut tokenizer = match vocab.model.as_str() {
        "llama" => sentencepiece::build(vocab, origin)?,
        "gpt2" => byte_level::build(vocab, origin)?,
        other => {
            return Err(TokenizerError::UnsupportedModel {
                origin: origin.to_owned(),
                model: other.to_owned(),
            })
        }
    };
    let added = vocab.added_tokens();
    let (special, plain): (Vec<_>, Vec<_>) = added.into_iter().partition(|t| t.special);
    tokenizer
        .add_special_tokens(special)
        .map_err(|e| build_error(origin, e))?;
    tokenizer
        .add_tokens(plain)
        .map_err(|e| build_error(origin, e))?;
    Ok(tokenizer)
}

/// Splits GGUF merges (`"left right"`) into pairs.
pub(super) fn parse_merges(
    merges: &[String],
    origin: &str,
) -> Result<Vec<(String, String)>, TokenizerError> {
    merges
        .iter()
        .enumerate()
        .map(|(i, merge)| {
            merge
                .split_once(' ')
                .map(|(l, r)| (l.to_owned(), r.to_owned()))
                .ok_or_else(|| {
                    invalid(
                        origin,
                        format!("tokenizer.ggml.merges[{i}] = {merge:?} has no space"),
                    )
                })
        })
        .collect()
}

/// The token → id map of the BPE model (a later duplicate wins, as in transformers).
pub(super) fn bpe_vocab(vocab: &GgufVocab) -> tokenizers::models::bpe::Vocab {
    vocab
        .tokens
        .iter()
        .zip(0u32..)
        .map(|(text, id)| (text.clone(), id))
        .collect()
}

/// An [`TokenizerError::InvalidVocab`] for `origin`.
pub(super) fn invalid(origin: &str, problem: String) -> TokenizerError {
    TokenizerError::InvalidVocab {
        origin: origin.to_owned(),
        problem,
    }
}

/// A [`TokenizerError::Build`] for `origin` from an error of the `tokenizers` crate.
pub(super) fn build_error(origin: &str, err: impl std::fmt::Display) -> TokenizerError {
    TokenizerError::Build {
        origin: origin.to_owned(),
        message: err.to_string(),
    }
}
