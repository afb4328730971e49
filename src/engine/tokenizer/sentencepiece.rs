//! `tokenizer.ggml.model = "llama"`: SentencePiece BPE with byte fallback.
//!
//! Reproduces what Hugging Face transformers' GGUF conversion builds (and what the
//! Phi-3 `tokenizer.json` in `shared/phi3-tokenizer` holds): a BPE model with
//! `byte_fallback`, merges derived from the vocabulary scores, normalizer
//! `Prepend("▁")` + `Replace(" ", "▁")`, no pre-tokenizer, and decoder
//! `Replace("▁", " ")`, `ByteFallback`, `Fuse`, `Strip(1 leading space)`.

use std::cmp::Ordering;
use std::collections::HashMap;

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{NormalizerWrapper, Prepend, Replace, Sequence};

use super::gguf_vocab::{bpe_vocab, build_error, invalid, parse_merges, GgufVocab};
use super::TokenizerError;

/// SentencePiece's word-boundary marker, which stands for a space.
const SPACE_MARK: &str = "\u{2581}";

/// Builds the tokenizer of a `"llama"` vocabulary (added tokens are added by the caller).
pub(super) fn build(
    vocab: &GgufVocab,
    origin: &str,
) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let merges = match (&vocab.merges, &vocab.scores) {
        (Some(merges), _) => parse_merges(merges, origin)?,
        (None, Some(scores)) => merges_from_scores(&vocab.tokens, scores),
        (None, None) => {
            return Err(invalid(
                origin,
                "a \"llama\" vocabulary needs tokenizer.ggml.scores (or merges)".into(),
            ))
        }
    };
    let mut model = BPE::builder()
        .vocab_and_merges(bpe_vocab(vocab), merges)
        .fuse_unk(true)
        .byte_fallback(true);
    if let Some(unk) = vocab.unk_id.and_then(|id| vocab.text(id)) {
        model = model.unk_token(unk.to_owned());
    }
    let model = model.build().map_err(|e| build_error(origin, e))?;

    let space_prefix = vocab.add_space_prefix.unwrap_or(true);
    let to_mark = Replace::new(" ", SPACE_MARK).map_err(|e| build_error(origin, e))?;
    let normalizer = if space_prefix {
        NormalizerWrapper::Sequence(Sequence::new(vec![
            Prepend::new(SPACE_MARK.to_owned()).into(),
            to_mark.into(),
        ]))
    } else {
        to_mark.into()
    };
    let from_mark = Replace::new(SPACE_MARK, " ").map_err(|e| build_error(origin, e))?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        from_mark.into(),
        ByteFallback::default().into(),
        Fuse::default().into(),
    ];
    if space_prefix {
        // Undo the space the normalizer prepended (one space, at the very start).
        decoders.push(Strip::new(' ', 1, 0).into());
    }

    let mut tokenizer = tokenizers::Tokenizer::new(model);
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(|e| build_error(origin, e))?;
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

/// The BPE merges transformers derives from SentencePiece scores (`generate_merges`
/// in `transformers/convert_slow_tokenizer.py`, used by its GGUF conversion).
///
/// Every split of a token into two tokens that are both in the vocabulary is a merge
/// ranked by the whole token's score; ties go to the longer left part, then the longer
/// right part (lengths in chars), then to the token that comes first in the vocabulary
/// (a stable sort, like Python's `sorted`). For a duplicated token text the later score
/// wins. On the Phi-3 vocabulary this gives exactly the 61249 merges of its
/// `tokenizer.json`, in the same order.
fn merges_from_scores(tokens: &[String], scores: &[f32]) -> Vec<(String, String)> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(tokens.len());
    let mut distinct: Vec<(&str, f32)> = Vec::with_capacity(tokens.len());
    for (token, &score) in tokens.iter().zip(scores) {
        match index.get(token.as_str()) {
            Some(&i) => {
                if let Some(entry) = distinct.get_mut(i) {
                    entry.1 = score;
                }
            }
            None => {
                index.insert(token, distinct.len());
                distinct.push((token, score));
            }
        }
    }

    // (left, right, score, chars in left, chars in right)
    let mut merges: Vec<(&str, &str, f32, usize, usize)> = Vec::new();
    for &(piece, score) in &distinct {
        let chars = piece.chars().count();
        for (left_chars, (at, _)) in piece.char_indices().enumerate().skip(1) {
            let (left, right) = piece.split_at(at);
            if index.contains_key(left) && index.contains_key(right) {
                merges.push((left, right, score, left_chars, chars - left_chars));
            }
        }
    }
    merges.sort_by(|a, b| {
        b.2.partial_cmp(&a.2)
            .unwrap_or(Ordering::Equal)
            .then(b.3.cmp(&a.3))
            .then(b.4.cmp(&a.4))
    });
    merges
        .into_iter()
        .map(|(left, right, ..)| (left.to_owned(), right.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::merges_from_scores;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn merges_rank_by_score_then_longer_left_part() {
        let tokens = strings(&["a", "b", "c", "ab", "bc", "abc", "ca"]);
        let scores = [-1.0, -2.0, -3.0, -0.5, -0.7, -0.2, -0.1];
        let merges = merges_from_scores(&tokens, &scores);
        let pairs: Vec<(&str, &str)> = merges
            .iter()
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        // "ca" (-0.1) first; "abc" (-0.2) splits as "ab"+"c" before "a"+"bc" (longer
        // left part); then "ab" (-0.5), "bc" (-0.7).
        assert_eq!(
            pairs,
            vec![("c", "a"), ("ab", "c"), ("a", "bc"), ("a", "b"), ("b", "c")]
        );
    }

    #[test]
    fn merges_keep_vocab_order_on_ties_and_split_on_chars() {
        let tokens = strings(&["▁", "x", "y", "▁y", "▁x", "xy", "▁xy"]);
        let scores = [0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0];
        let merges = merges_from_scores(&tokens, &scores);
        assert_eq!(
            merges,
            // All score -1: longer left, then longer right, then vocabulary order.
            vec![
                ("▁x".to_owned(), "y".to_owned()),
                ("▁".to_owned(), "xy".to_owned()),
                ("▁".to_owned(), "y".to_owned()),
                ("▁".to_owned(), "x".to_owned()),
                ("x".to_owned(), "y".to_owned()),
            ]
        );
    }
}
