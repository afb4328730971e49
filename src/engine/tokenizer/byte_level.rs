//! `tokenizer.ggml.model = "gpt2"`: byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2, ...).
//!
//! The model is a plain BPE over the GGUF tokens and merges; the text is first split
//! by the regex llama.cpp picks for `tokenizer.ggml.pre` (see [`PreSplit`]), then
//! mapped to GPT-2's printable byte alphabet (`" "` → `"Ġ"`, `"\n"` → `"Ċ"`).
//! No space is prepended: `"user"` after `<|im_start|>` stays the token `user`, not
//! `Ġuser` (candle 0.11's `TokenizerFromGguf` gets this wrong).

use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::SplitDelimiterBehavior;

use super::gguf_vocab::{bpe_vocab, build_error, invalid, parse_merges, GgufVocab};
use super::TokenizerError;

/// Llama 3's split regex (from its `tokenizer.json`; llama.cpp `LLAMA_VOCAB_PRE_TYPE_LLAMA3`).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's split regex: Llama 3's with single digits (llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How a `"gpt2"` vocabulary splits text before BPE, chosen by `tokenizer.ggml.pre`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PreSplit {
    /// GPT-2's regex `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    /// (built into `ByteLevel` with `use_regex`).
    Gpt2,
    /// Every digit on its own (`\p{N}`), then GPT-2's regex: llama.cpp's rule for
    /// `smollm`, `starcoder`, `refact`, `command-r`, `codeshell`, `exaone`, `minerva-7b`.
    DigitsThenGpt2,
    /// Llama 3's regex (digits in groups of up to three); BPE ignores merges for
    /// whole words in the vocabulary, as llama.cpp does for this type.
    Llama3,
    /// Qwen2's regex.
    Qwen2,
}

/// `tokenizer.ggml.pre` names and their split rules, as llama.cpp's `llama-vocab.cpp`
/// maps them. A missing name or `"default"` gets GPT-2's regex, as transformers' GGUF
/// conversion does (llama.cpp's own "default" BPE regex differs slightly).
const PRE_SPLITS: &[(&str, PreSplit)] = &[
    ("default", PreSplit::Gpt2),
    ("gpt-2", PreSplit::Gpt2),
    ("phi-2", PreSplit::Gpt2),
    ("roberta-bpe", PreSplit::Gpt2),
    ("mpt", PreSplit::Gpt2),
    ("olmo", PreSplit::Gpt2),
    ("jais", PreSplit::Gpt2),
    ("smollm", PreSplit::DigitsThenGpt2),
    ("starcoder", PreSplit::DigitsThenGpt2),
    ("refact", PreSplit::DigitsThenGpt2),
    ("command-r", PreSplit::DigitsThenGpt2),
    ("codeshell", PreSplit::DigitsThenGpt2),
    ("exaone", PreSplit::DigitsThenGpt2),
    ("minerva-7b", PreSplit::DigitsThenGpt2),
    ("llama3", PreSplit::Llama3),
    ("llama-v3", PreSplit::Llama3),
    ("llama-bpe", PreSplit::Llama3),
    ("falcon3", PreSplit::Llama3),
    ("qwen2", PreSplit::Qwen2),
    ("megrez", PreSplit::Qwen2),
];

impl PreSplit {
    /// The rule for `pre`, or an error naming the supported ones.
    fn for_name(pre: Option<&str>, origin: &str) -> Result<Self, TokenizerError> {
        let name = pre.unwrap_or("default");
        PRE_SPLITS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|&(_, split)| split)
            .ok_or_else(|| TokenizerError::UnsupportedPreTokenizer {
                origin: origin.to_owned(),
                pre: name.to_owned(),
                supported: PRE_SPLITS
                    .iter()
                    .map(|(known, _)| *known)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The `tokenizers` pre-tokenizer for this rule.
    fn pre_tokenizer(self, origin: &str) -> Result<PreTokenizerWrapper, TokenizerError> {
        // add_prefix_space = false: no "Ġ" before the first word of a segment.
        let bytes_with_gpt2_regex = ByteLevel::new(false, true, true);
        let bytes_only = ByteLevel::new(false, true, false);
        let regex_then_bytes = |regex: &str| -> Result<PreTokenizerWrapper, TokenizerError> {
            let split = Split::new(
                SplitPattern::Regex(regex.to_owned()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| build_error(origin, e))?;
            Ok(Sequence::new(vec![split.into(), bytes_only.into()]).into())
        };
        match self {
            Self::Gpt2 => Ok(bytes_with_gpt2_regex.into()),
            Self::DigitsThenGpt2 => {
                Ok(
                    Sequence::new(vec![Digits::new(true).into(), bytes_with_gpt2_regex.into()])
                        .into(),
                )
            }
            Self::Llama3 => regex_then_bytes(LLAMA3_REGEX),
            Self::Qwen2 => regex_then_bytes(QWEN2_REGEX),
        }
    }
}

/// The `tokenizer.ggml.pre` name for a `tokenizer.json` pre-tokenizer (as JSON) that is
/// exactly one of the split rules built here, or `None`. The name is the one llama.cpp's
/// converter writes for a well-known model of that rule.
pub(super) fn pre_name_of(pre_tokenizer: &serde_json::Value) -> Option<&'static str> {
    const NAMES: [(PreSplit, &str); 4] = [
        (PreSplit::Gpt2, "gpt-2"),
        (PreSplit::DigitsThenGpt2, "smollm"),
        (PreSplit::Llama3, "llama-bpe"),
        (PreSplit::Qwen2, "qwen2"),
    ];
    NAMES.into_iter().find_map(|(split, name)| {
        let ours = split.pre_tokenizer("pre_name_of").ok()?;
        (serde_json::to_value(&ours).ok()? == *pre_tokenizer).then_some(name)
    })
}

/// Builds the tokenizer of a `"gpt2"` vocabulary (added tokens are added by the caller).
pub(super) fn build(
    vocab: &GgufVocab,
    origin: &str,
) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let merges = vocab.merges.as_deref().ok_or_else(|| {
        invalid(
            origin,
            "a \"gpt2\" vocabulary needs tokenizer.ggml.merges".into(),
        )
    })?;
    let split = PreSplit::for_name(vocab.pre.as_deref(), origin)?;
    let model = BPE::builder()
        .vocab_and_merges(bpe_vocab(vocab), parse_merges(merges, origin)?)
        .ignore_merges(split == PreSplit::Llama3)
        .build()
        .map_err(|e| build_error(origin, e))?;
    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(split.pre_tokenizer(origin)?));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use super::PreSplit;
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    /// The pieces `text` is split into before BPE, in byte-level alphabet.
    fn pieces(split: PreSplit, text: &str) -> Vec<String> {
        let mut pre = PreTokenizedString::from(text);
        split
            .pre_tokenizer("test")
            .and_then(|p| {
                p.pre_tokenize(&mut pre)
                    .map_err(|e| super::build_error("test", e))
            })
            .expect("pre-tokenizer runs");
        pre.get_splits(OffsetReferential::Original, OffsetType::Byte)
            .into_iter()
            .map(|(s, _, _)| s.to_owned())
            .collect()
    }

    #[test]
    fn smollm_splits_digits_one_by_one_and_adds_no_prefix_space() {
        assert_eq!(
            pieces(PreSplit::DigitsThenGpt2, "user 2024x's"),
            ["user", "Ġ", "2", "0", "2", "4", "x", "'s"]
        );
        assert_eq!(pieces(PreSplit::Gpt2, "user 2024"), ["user", "Ġ2024"]);
    }

    #[test]
    fn llama3_and_qwen2_regexes_compile_and_group_digits() {
        assert_eq!(
            pieces(PreSplit::Llama3, "I'LL pay 12345!\n\n"),
            ["I", "'LL", "Ġpay", "Ġ", "123", "45", "!ĊĊ"]
        );
        assert_eq!(
            pieces(PreSplit::Qwen2, "pay 123"),
            ["pay", "Ġ", "1", "2", "3"]
        );
    }

    #[test]
    fn unknown_pre_is_an_error_naming_the_origin() {
        let err = PreSplit::for_name(Some("made-up"), "x.gguf").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("x.gguf") && text.contains("made-up") && text.contains("smollm"));
        assert_eq!(
            PreSplit::for_name(None, "x").ok(),
            Some(PreSplit::Gpt2),
            "missing pre falls back to GPT-2's regex"
        );
    }
}
