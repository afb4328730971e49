//! A Hugging Face `tokenizer.json` (with its `tokenizer_config.json`) as GGUF tokenizer
//! metadata: the inverse of [`super::gguf_vocab::build`], used by `convert` so that a GGUF
//! made from a model folder carries its own tokenizer, as llama.cpp's converter writes it.
//!
//! Two kinds of BPE file are understood:
//! - `byte_fallback: true` (Llama 2, Phi-3): `tokenizer.ggml.model = "llama"`. llama.cpp ranks
//!   SentencePiece merges by the score of the merged token, so the scores are derived from
//!   the file's merge list: a token made by an earlier merge scores higher, tokens no merge
//!   makes (single characters, padding rows) score below every merged one, in id order.
//!   Byte tokens `<0xXX>` score 0 and added tokens -1000, as llama.cpp's converter gives them.
//! - a byte-level pre-tokenizer (GPT-2, SmolLM2, Llama 3): `"gpt2"` with the merges as
//!   written and `tokenizer.ggml.pre` named after the split rule (see
//!   [`super::byte_level::pre_name_of`]).

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::engine::gguf::Value;

use super::gguf_vocab::{invalid, GgufVocab};
use super::{byte_level, TokenizerError};

/// Score llama.cpp's converter gives control and user-defined tokens.
const ADDED_TOKEN_SCORE: f32 = -1000.0;

impl GgufVocab {
    /// The GGUF tokenizer metadata equivalent to `tokenizer_json` (the bytes of a
    /// `tokenizer.json`), with BOS/EOS/padding, `add_bos_token`, `add_eos_token` and the chat
    /// template taken from `config` (the bytes of `tokenizer_config.json`) when given.
    /// `origin` names the files in errors.
    pub fn from_tokenizer_json(
        tokenizer_json: &[u8],
        config: Option<&[u8]>,
        origin: &str,
    ) -> Result<Self, TokenizerError> {
        let parse = |bytes: &[u8], what: &str| -> Result<Json, TokenizerError> {
            serde_json::from_slice(bytes).map_err(|e| TokenizerError::Parse {
                origin: origin.to_owned(),
                message: format!("{what}: {e}"),
            })
        };
        let root = parse(tokenizer_json, "tokenizer.json")?;
        let config = config
            .map(|bytes| parse(bytes, "tokenizer_config.json"))
            .transpose()?
            .unwrap_or(Json::Null);
        let model = &root["model"];
        let kind = model["type"].as_str().unwrap_or("BPE");
        if kind != "BPE" {
            return Err(unsupported(origin, format!("model type {kind} (only BPE)")));
        }
        let added = added_tokens(&root, origin)?;
        let added_texts: HashMap<u32, String> = added
            .iter()
            .map(|(&id, (text, _))| (id, text.clone()))
            .collect();
        let (tokens, gaps) = token_list(model, &added_texts, origin)?;
        let merges = merge_list(model, origin)?;

        let byte_fallback = model["byte_fallback"].as_bool().unwrap_or(false);
        let mut vocab = GgufVocab {
            tokens,
            ..GgufVocab::default()
        };
        let types: Vec<i32> = (0..vocab.tokens.len())
            .map(|id| match added.get(&(id as u32)) {
                Some((_, true)) => GgufVocab::TYPE_CONTROL,
                Some((_, false)) => GgufVocab::TYPE_USER_DEFINED,
                None if gaps[id] => GgufVocab::TYPE_UNUSED,
                None if byte_fallback && is_byte_token(&vocab.tokens[id]) => GgufVocab::TYPE_BYTE,
                None => GgufVocab::TYPE_NORMAL,
            })
            .collect();
        if byte_fallback {
            vocab.model = "llama".to_owned();
            vocab.pre = Some("default".to_owned());
            vocab.scores = Some(scores_from_merges(&vocab.tokens, &types, &merges));
            vocab.add_space_prefix = Some(prepends_space(&root));
        } else if let Some(pre) = byte_level::pre_name_of(&root["pre_tokenizer"]) {
            vocab.model = "gpt2".to_owned();
            vocab.pre = Some(pre.to_owned());
            vocab.merges = Some(merges);
        } else {
            return Err(unsupported(
                origin,
                format!(
                    "BPE without byte_fallback and with the pre-tokenizer {} (known: \
                     GPT-2's byte level, digits then byte level, Llama 3's and Qwen2's splits)",
                    root["pre_tokenizer"]
                ),
            ));
        }
        vocab.token_types = Some(types);

        let token_id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            let text = match &config[key] {
                Json::String(s) => s.as_str(),
                Json::Object(o) => o.get("content").and_then(Json::as_str).unwrap_or(""),
                _ => return Ok(None),
            };
            vocab
                .tokens
                .iter()
                .position(|t| t == text)
                .map(|id| Some(id as u32))
                .ok_or_else(|| {
                    invalid(
                        origin,
                        format!("tokenizer_config.json {key} {text:?} is not in the vocabulary"),
                    )
                })
        };
        vocab.bos_id = token_id("bos_token")?;
        vocab.eos_id = token_id("eos_token")?;
        vocab.pad_id = token_id("pad_token")?;
        vocab.unk_id = match token_id("unk_token")? {
            Some(id) => Some(id),
            None => model["unk_token"]
                .as_str()
                .and_then(|t| vocab.tokens.iter().position(|x| x == t))
                .map(|id| id as u32),
        };
        vocab.add_bos = config["add_bos_token"].as_bool();
        vocab.add_eos = config["add_eos_token"].as_bool();
        vocab.chat_template = chat_template(&config["chat_template"]);
        Ok(vocab)
    }

    /// The `tokenizer.*` metadata entries of this vocabulary, in the order llama.cpp's
    /// converter writes them; absent fields are left out.
    pub fn to_metadata(&self) -> Vec<(String, Value)> {
        let mut md: Vec<(String, Value)> = Vec::new();
        let mut put = |key: &str, value: Value| md.push((format!("tokenizer.{key}"), value));
        put("ggml.model", Value::String(self.model.clone()));
        if let Some(pre) = &self.pre {
            put("ggml.pre", Value::String(pre.clone()));
        }
        let strings = |v: &[String]| Value::Array(v.iter().cloned().map(Value::String).collect());
        put("ggml.tokens", strings(&self.tokens));
        if let Some(scores) = &self.scores {
            put(
                "ggml.scores",
                Value::Array(scores.iter().copied().map(Value::F32).collect()),
            );
        }
        if let Some(types) = &self.token_types {
            put(
                "ggml.token_type",
                Value::Array(types.iter().copied().map(Value::I32).collect()),
            );
        }
        if let Some(merges) = &self.merges {
            put("ggml.merges", strings(merges));
        }
        let ids = [
            ("ggml.bos_token_id", self.bos_id),
            ("ggml.eos_token_id", self.eos_id),
            ("ggml.unknown_token_id", self.unk_id),
            ("ggml.padding_token_id", self.pad_id),
        ];
        for (key, id) in ids {
            if let Some(id) = id {
                put(key, Value::U32(id));
            }
        }
        let flags = [
            ("ggml.add_bos_token", self.add_bos),
            ("ggml.add_eos_token", self.add_eos),
            ("ggml.add_space_prefix", self.add_space_prefix),
        ];
        for (key, flag) in flags {
            if let Some(flag) = flag {
                put(key, Value::Bool(flag));
            }
        }
        if let Some(template) = &self.chat_template {
            put("chat_template", Value::String(template.clone()));
        }
        md
    }

    /// Pads the token list to `vocab` rows with `[PAD{id}]` entries of type unused (and the
    /// lowest score), as llama.cpp's converter does when the embedding has more rows than the
    /// tokenizer has tokens. More tokens than rows is an error naming `origin`.
    pub fn pad_to(&mut self, vocab: usize, origin: &str) -> Result<(), TokenizerError> {
        let n = self.tokens.len();
        if n > vocab {
            return Err(invalid(
                origin,
                format!("{n} tokens but the model's embedding has {vocab} rows"),
            ));
        }
        let lowest = self
            .scores
            .as_ref()
            .and_then(|s| s.iter().copied().reduce(f32::min))
            .unwrap_or(0.0);
        for id in n..vocab {
            self.tokens.push(format!("[PAD{id}]"));
            if let Some(types) = &mut self.token_types {
                types.push(Self::TYPE_UNUSED);
            }
            if let Some(scores) = &mut self.scores {
                scores.push(lowest - (id - n + 1) as f32);
            }
        }
        Ok(())
    }
}

/// A [`TokenizerError::UnsupportedJson`] for `origin`.
fn unsupported(origin: &str, problem: String) -> TokenizerError {
    TokenizerError::UnsupportedJson {
        origin: origin.to_owned(),
        problem,
    }
}

/// Added tokens by id: their text and whether each is special.
fn added_tokens(root: &Json, origin: &str) -> Result<HashMap<u32, (String, bool)>, TokenizerError> {
    let Some(list) = root["added_tokens"].as_array() else {
        return Ok(HashMap::new());
    };
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let id = t["id"].as_u64().and_then(|id| u32::try_from(id).ok());
            match (id, t["content"].as_str()) {
                (Some(id), Some(text)) => Ok((
                    id,
                    (text.to_owned(), t["special"].as_bool().unwrap_or(false)),
                )),
                _ => Err(invalid(
                    origin,
                    format!("added_tokens[{i}] has no numeric id or no content"),
                )),
            }
        })
        .collect()
}

/// Every token text in id order (the model's vocabulary; added tokens must be in it or
/// become gaps), and which ids are gaps no entry names, filled with `[PAD{id}]`. Two texts
/// for one id is an error.
fn token_list(
    model: &Json,
    added: &HashMap<u32, String>,
    origin: &str,
) -> Result<(Vec<String>, Vec<bool>), TokenizerError> {
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| invalid(origin, "model.vocab is not an object".into()))?;
    let mut entries: Vec<(u32, &str)> = Vec::with_capacity(vocab.len());
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| invalid(origin, format!("model.vocab[{text:?}] is not an id")))?;
        entries.push((id, text));
    }
    let highest = entries
        .iter()
        .map(|&(id, _)| id)
        .chain(added.keys().copied())
        .max()
        .ok_or_else(|| invalid(origin, "model.vocab is empty".into()))?;
    if highest as usize >= vocab.len() + added.len() + 1024 {
        return Err(invalid(
            origin,
            format!(
                "token id {highest} is far beyond the {} entries",
                vocab.len()
            ),
        ));
    }
    let mut tokens: Vec<Option<String>> = vec![None; highest as usize + 1];
    let added_entries = added.iter().map(|(&id, text)| (id, text.as_str()));
    for (id, text) in entries.into_iter().chain(added_entries) {
        match &tokens[id as usize] {
            Some(other) if other != text => {
                return Err(invalid(
                    origin,
                    format!("id {id} is both {other:?} and {text:?}"),
                ))
            }
            _ => tokens[id as usize] = Some(text.to_owned()),
        }
    }
    let gaps = tokens.iter().map(Option::is_none).collect();
    let tokens = tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| t.unwrap_or_else(|| format!("[PAD{id}]")))
        .collect();
    Ok((tokens, gaps))
}

/// The merges as GGUF writes them (`"left right"`), from either JSON form (`"a b"` or
/// `["a", "b"]`); a part containing a space cannot be written and is an error.
fn merge_list(model: &Json, origin: &str) -> Result<Vec<String>, TokenizerError> {
    let Some(list) = model["merges"].as_array() else {
        return Ok(Vec::new());
    };
    list.iter()
        .enumerate()
        .map(|(i, merge)| {
            let bad = |why: &str| invalid(origin, format!("model.merges[{i}] {merge}: {why}"));
            match merge {
                Json::String(s) if s.split(' ').count() == 2 => Ok(s.clone()),
                Json::Array(parts) => match parts.as_slice() {
                    [Json::String(l), Json::String(r)] if !l.contains(' ') && !r.contains(' ') => {
                        Ok(format!("{l} {r}"))
                    }
                    _ => Err(bad("not two parts without spaces")),
                },
                _ => Err(bad("not \"left right\"")),
            }
        })
        .collect()
}

/// `<0x00>` .. `<0xFF>`.
fn is_byte_token(text: &str) -> bool {
    text.len() == 6
        && text.starts_with("<0x")
        && text.ends_with('>')
        && u8::from_str_radix(&text[3..5], 16).is_ok()
}

/// SentencePiece-style scores that rank merged tokens as the merge list does (see the
/// module docs): normal tokens sorted by their first merge (never-merged ones after all
/// merged ones, in id order) score -1, -2, ...; bytes 0; added tokens -1000; unused rows
/// below everything.
fn scores_from_merges(tokens: &[String], types: &[i32], merges: &[String]) -> Vec<f32> {
    let mut first_merge: HashMap<String, usize> = HashMap::with_capacity(merges.len());
    for (rank, merge) in merges.iter().enumerate() {
        if let Some((l, r)) = merge.split_once(' ') {
            first_merge.entry(format!("{l}{r}")).or_insert(rank);
        }
    }
    let mut normal: Vec<usize> = (0..tokens.len())
        .filter(|&id| types[id] == GgufVocab::TYPE_NORMAL)
        .collect();
    normal.sort_by_key(|&id| {
        (
            first_merge.get(&tokens[id]).copied().unwrap_or(usize::MAX),
            id,
        )
    });
    let mut scores: Vec<f32> = types
        .iter()
        .map(|&t| match t {
            GgufVocab::TYPE_BYTE => 0.0,
            GgufVocab::TYPE_NORMAL => 0.0,
            GgufVocab::TYPE_UNUSED => f32::MIN,
            _ => ADDED_TOKEN_SCORE,
        })
        .collect();
    for (position, id) in normal.into_iter().enumerate() {
        scores[id] = -((position + 1) as f32);
    }
    let lowest = scores
        .iter()
        .copied()
        .filter(|&s| s > f32::MIN)
        .fold(0.0, f32::min);
    for s in &mut scores {
        if *s == f32::MIN {
            *s = lowest - 1.0;
        }
    }
    scores
}

/// Whether the file puts `▁` before the text (a `Prepend` normalizer, or a `Metaspace`
/// pre-tokenizer that prepends), which GGUF calls `add_space_prefix`.
fn prepends_space(root: &Json) -> bool {
    fn walk(node: &Json, key: &str) -> Vec<Json> {
        match node["type"].as_str() {
            Some("Sequence") => node[key]
                .as_array()
                .map(|v| v.iter().flat_map(|n| walk(n, key)).collect())
                .unwrap_or_default(),
            Some(_) => vec![node.clone()],
            None => Vec::new(),
        }
    }
    let prepend = walk(&root["normalizer"], "normalizers")
        .iter()
        .any(|n| n["type"] == "Prepend" && n["prepend"] == "\u{2581}");
    let metaspace = walk(&root["pre_tokenizer"], "pretokenizers")
        .iter()
        .any(|n| {
            n["type"] == "Metaspace"
                && (n["prepend_scheme"].as_str().is_some_and(|s| s != "never")
                    || n["add_prefix_space"] == true)
        });
    prepend || metaspace
}

/// The default chat template: a string, or the entry named `default` of a list of
/// `{name, template}`.
fn chat_template(node: &Json) -> Option<String> {
    match node {
        Json::String(s) => Some(s.clone()),
        Json::Array(list) => list
            .iter()
            .find(|t| t["name"] == "default")
            .and_then(|t| t["template"].as_str())
            .map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY_SPM: &str = r#"{
        "added_tokens": [
            {"id": 0, "content": "<unk>", "special": true},
            {"id": 1, "content": "<s>", "special": true},
            {"id": 2, "content": "</s>", "special": false}
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "model": {"type": "BPE", "byte_fallback": true, "unk_token": "<unk>",
            "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x41>": 3, "▁": 4, "a": 5, "b": 6,
                      "ab": 7, "▁ab": 8},
            "merges": ["a b", "▁ ab"]}
    }"#;

    #[test]
    fn sentencepiece_scores_follow_the_merge_order() {
        let config = br#"{"bos_token": "<s>", "eos_token": {"content": "</s>"},
                          "add_bos_token": true, "chat_template": "{{ x }}"}"#;
        let v = GgufVocab::from_tokenizer_json(TINY_SPM.as_bytes(), Some(config), "t").unwrap();
        assert_eq!(v.model, "llama");
        assert_eq!(v.token_types, Some(vec![3, 3, 4, 6, 1, 1, 1, 1, 1]));
        // "ab" (first merge) -1, "▁ab" -2, then the unmerged "▁", "a", "b" in id order.
        assert_eq!(
            v.scores,
            Some(vec![
                -1000.0, -1000.0, -1000.0, 0.0, -3.0, -4.0, -5.0, -1.0, -2.0
            ])
        );
        assert_eq!((v.bos_id, v.eos_id, v.unk_id), (Some(1), Some(2), Some(0)));
        assert_eq!((v.add_bos, v.add_space_prefix), (Some(true), Some(true)));
        assert_eq!(v.chat_template.as_deref(), Some("{{ x }}"));
    }

    #[test]
    fn metadata_round_trips_through_the_gguf_reader() {
        let mut v = GgufVocab::from_tokenizer_json(TINY_SPM.as_bytes(), None, "t").unwrap();
        v.pad_to(12, "t").unwrap();
        assert_eq!(v.tokens[11], "[PAD11]");
        let mut bytes = Vec::new();
        crate::engine::gguf::write_gguf(&mut bytes, &v.to_metadata(), &[]).unwrap();
        let file =
            crate::engine::gguf::GgufFile::read(&mut std::io::Cursor::new(bytes), "rt").unwrap();
        let back = GgufVocab::from_gguf(&file).unwrap();
        assert_eq!(back, v);
        assert!(v
            .pad_to(5, "tiny.json")
            .unwrap_err()
            .to_string()
            .contains("tiny.json"));
    }

    #[test]
    fn bad_files_are_errors_naming_the_origin() {
        let cases: [(&str, &str); 5] = [
            ("{", "tokenizer.json"),
            (r#"{"model": {"type": "Unigram", "vocab": []}}"#, "Unigram"),
            (r#"{"model": {"type": "BPE", "vocab": {}}}"#, "empty"),
            (
                r#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}}}"#,
                "id 0",
            ),
            (
                r#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c"]}}"#,
                "merges[0]",
            ),
        ];
        for (json, needle) in cases {
            let err = GgufVocab::from_tokenizer_json(json.as_bytes(), None, "m/tokenizer.json")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("m/tokenizer.json") && err.contains(needle),
                "{err}"
            );
        }
        let missing_bos = br#"{"bos_token": "<nope>"}"#;
        let err = GgufVocab::from_tokenizer_json(TINY_SPM.as_bytes(), Some(missing_bos), "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bos_token") && err.contains("<nope>"), "{err}");
    }
}
