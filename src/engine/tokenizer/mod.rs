//! Text ↔ token ids for the engine, on native and wasm32 alike.
//!
//! A [`Tokenizer`] wraps a Hugging Face `tokenizers::Tokenizer`, built either from a
//! `tokenizer.json` ([`Tokenizer::from_json_bytes`]) or from the `tokenizer.ggml.*`
//! metadata of a GGUF file ([`Tokenizer::from_gguf_vocab`] with a [`GgufVocab`]).
//! Special tokens written by our chat templates (`<|user|>`, `<|im_start|>`) encode
//! as single ids. [`StreamDecoder`] turns generated ids into text pieces for the UI.

mod byte_level;
mod error;
mod gguf_vocab;
mod hf_vocab;
mod sentencepiece;
mod stream;

use std::collections::{HashMap, HashSet};

use crate::engine::chat::PromptPiece;

pub use error::TokenizerError;
pub use gguf_vocab::GgufVocab;
pub use stream::StreamDecoder;

/// Token texts that end a turn or the text when they are special tokens.
///
/// A model's declared EOS comes first; these add the end-of-turn markers of the
/// chat formats we use. Phi-3's `generation_config.json` also stops on
/// `<|assistant|>` (a model that opens a new assistant turn has finished its own).
const STOP_TOKEN_TEXTS: &[&str] = &[
    "</s>",
    "<|endoftext|>",
    "<|end|>",
    "<|assistant|>",
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<eos>",
];

/// A tokenizer for one model: encode prompts, decode replies, know its special ids.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: String,
    vocab_size: usize,
    bos_id: Option<u32>,
    eos_ids: Vec<u32>,
    special_ids: HashSet<u32>,
    /// The same tokenizer with special-token matching off, for text a person wrote.
    literal: tokenizers::Tokenizer,
    /// Added tokens that absorb the whitespace after them (Phi-3's `<|user|>` …).
    rstrip_ids: HashSet<u32>,
    /// How vocabulary strings stand for bytes.
    pieces: PieceEncoding,
    /// The text of added tokens that are not special (written as they are, not encoded).
    added_text: HashMap<u32, String>,
}

/// How the strings of a vocabulary stand for the bytes a token adds to the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PieceEncoding {
    /// GPT-2's printable byte alphabet (`Ġ` = space).
    ByteLevel,
    /// SentencePiece: `▁` = space, `<0xNN>` = one byte.
    SentencePiece,
    /// The string is the text.
    Plain,
}

impl PieceEncoding {
    /// Recognised from the decoder the tokenizer was built with.
    fn of(inner: &tokenizers::Tokenizer) -> Self {
        let decoder = inner
            .get_decoder()
            .and_then(|d| serde_json::to_string(d).ok())
            .unwrap_or_default();
        if decoder.contains("\"ByteLevel\"") {
            Self::ByteLevel
        } else if decoder.contains("ByteFallback") || decoder.contains('▁') {
            Self::SentencePiece
        } else {
            Self::Plain
        }
    }
}

/// Bytes GPT-2's byte-level alphabet writes as themselves (the printable Latin-1 ranges).
fn byte_level_printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// The byte a character of GPT-2's byte-level alphabet stands for: printable bytes are
/// themselves, the others are U+0100 onwards in byte order.
fn byte_level_byte(c: char) -> Option<u8> {
    let code = u32::from(c);
    if let Ok(b) = u8::try_from(code) {
        return byte_level_printable(b).then_some(b);
    }
    let index = code.checked_sub(256)?;
    (0..=255u8)
        .filter(|&b| !byte_level_printable(b))
        .nth(index as usize)
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`; `source` names it in errors.
    ///
    /// The BOS id is the token the file's post-processor puts before the text (none
    /// if it adds nothing); truncation and padding settings in the file are dropped.
    pub fn from_json_bytes(bytes: &[u8], source: &str) -> Result<Self, TokenizerError> {
        let inner =
            tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| TokenizerError::Parse {
                origin: source.to_owned(),
                message: e.to_string(),
            })?;
        let bos_id = bos_from_post_processor(&inner, source)?;
        Self::from_parts(inner, source, bos_id, None, None)
    }

    /// Builds the tokenizer that GGUF tokenizer metadata describes; `source` names it in errors.
    ///
    /// `"llama"` gives SentencePiece BPE with byte fallback, `"gpt2"` byte-level BPE;
    /// see [`GgufVocab`] for the fields each needs.
    pub fn from_gguf_vocab(vocab: &GgufVocab, source: &str) -> Result<Self, TokenizerError> {
        let inner = gguf_vocab::build(vocab, source)?;
        // GGUF ids are the positions in `tokens` (added tokens included), so the size is known
        // without copying the whole vocabulary out of the built tokenizer (~15 ms for 49k).
        let ids = Some(vocab.tokens.len());
        Self::from_parts(inner, source, vocab.bos_to_add(), vocab.eos_id, ids)
    }

    /// `ids`: the number of token ids when the caller knows it; else the highest id + 1 is
    /// found in the vocabulary.
    fn from_parts(
        mut inner: tokenizers::Tokenizer,
        origin: &str,
        bos_id: Option<u32>,
        declared_eos: Option<u32>,
        ids: Option<usize>,
    ) -> Result<Self, TokenizerError> {
        inner
            .with_truncation(None)
            .map_err(|e| gguf_vocab::build_error(origin, e))?;
        inner.with_padding(None);
        let special_ids: HashSet<u32> = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.special)
            .map(|(id, _)| id)
            .collect();
        let vocab_size = ids.unwrap_or_else(|| {
            inner
                .get_vocab(true)
                .values()
                .max()
                .map_or(0, |&max| max as usize + 1)
        });
        let mut eos_ids: Vec<u32> = declared_eos
            .into_iter()
            .chain(
                STOP_TOKEN_TEXTS
                    .iter()
                    .filter_map(|text| inner.token_to_id(text))
                    .filter(|id| special_ids.contains(id)),
            )
            .collect();
        eos_ids.sort_unstable();
        eos_ids.dedup();
        let rstrip_ids = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.rstrip)
            .map(|(id, _)| id)
            .collect();
        let mut literal = inner.clone();
        literal.set_encode_special_tokens(true);
        let added_text = inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| !token.special)
            .map(|(id, token)| (id, token.content))
            .collect();
        Ok(Self {
            pieces: PieceEncoding::of(&inner),
            added_text,
            literal,
            rstrip_ids,
            inner,
            origin: origin.to_owned(),
            vocab_size,
            bos_id,
            eos_ids,
            special_ids,
        })
    }

    /// Token ids of `text`; with `add_bos`, [`Tokenizer::bos_id`] (if any) goes first.
    ///
    /// Special and added tokens written in `text` become their single ids, so a
    /// prompt rendered by a chat template encodes as the model was trained on.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| TokenizerError::Encode {
                origin: self.origin.clone(),
                text_bytes: text.len(),
                message: e.to_string(),
            })?;
        let bos = self.bos_id.filter(|_| add_bos);
        Ok(bos
            .into_iter()
            .chain(encoding.get_ids().iter().copied())
            .collect())
    }

    /// Token ids of a rendered chat prompt. Control tokens of the template become their
    /// single ids; text pieces are encoded with special-token matching off, so a student who
    /// types `<|end|>` or `<|im_start|>system` cannot open a turn. Whitespace right after a
    /// token that absorbs it (rstrip) is dropped, as encoding the whole string would.
    pub fn encode_prompt(
        &self,
        pieces: &[PromptPiece],
        add_bos: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut ids: Vec<u32> = self.bos_id.filter(|_| add_bos).into_iter().collect();
        let mut strip_next = false;
        for piece in pieces {
            match piece {
                PromptPiece::Special(name) => {
                    let id =
                        self.inner
                            .token_to_id(name)
                            .ok_or_else(|| TokenizerError::Encode {
                                origin: self.origin.clone(),
                                text_bytes: name.len(),
                                message: format!(
                                    "the template's token {name} is not in the vocabulary"
                                ),
                            })?;
                    ids.push(id);
                    strip_next = self.rstrip_ids.contains(&id);
                }
                PromptPiece::Text(text) => {
                    let text = if strip_next { text.trim_start() } else { text };
                    strip_next = false;
                    if text.is_empty() {
                        continue;
                    }
                    let encoding = self.literal.encode_fast(text, false).map_err(|e| {
                        TokenizerError::Encode {
                            origin: self.origin.clone(),
                            text_bytes: text.len(),
                            message: e.to_string(),
                        }
                    })?;
                    ids.extend_from_slice(encoding.get_ids());
                }
            }
        }
        Ok(ids)
    }

    /// The text of `ids`; with `skip_special`, special tokens (control tokens such
    /// as `<s>`, `<|end|>`) are left out. Ids outside the vocabulary are an error.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(self.unknown_id(id));
        }
        self.decode_checked(ids, skip_special)
    }

    /// [`Tokenizer::decode`] for ids already known to be in the vocabulary.
    fn decode_checked(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| TokenizerError::Decode {
                origin: self.origin.clone(),
                count: ids.len(),
                message: e.to_string(),
            })
    }

    /// An [`TokenizerError::UnknownTokenId`] for `id`.
    fn unknown_id(&self, id: u32) -> TokenizerError {
        TokenizerError::UnknownTokenId {
            origin: self.origin.clone(),
            id,
            vocab_size: self.vocab_size,
        }
    }

    /// The id of the token whose text is exactly `token` (added tokens included).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Number of token ids (highest id + 1), the size of the model's logits.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The id `encode(_, true)` puts first, or `None` if this model adds no BOS
    /// (SmolLM2 declares `<|im_start|>` as BOS but does not add it).
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// Ids that end generation, ascending: the declared EOS plus the special
    /// end-of-text/end-of-turn tokens this vocabulary has (Phi-3: 32000, 32001, 32007;
    /// SmolLM2: `<|endoftext|>` 0, `<|im_end|>` 2).
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// The bytes token `id` adds to a reply's text (a piece of a UTF-8 character for a
    /// byte token), or `None` for special tokens and ids without a token. SentencePiece's
    /// `▁` is a space here even at the start, where decoding would drop it.
    pub fn token_bytes(&self, id: u32) -> Option<Vec<u8>> {
        if self.special_ids.contains(&id) {
            return None;
        }
        if let Some(text) = self.added_text.get(&id) {
            return Some(text.clone().into_bytes());
        }
        let piece = self.inner.id_to_token(id)?;
        Some(match self.pieces {
            PieceEncoding::ByteLevel => piece
                .chars()
                .flat_map(|c| match byte_level_byte(c) {
                    Some(b) => vec![b],
                    None => c.to_string().into_bytes(),
                })
                .collect(),
            PieceEncoding::SentencePiece => {
                let hex = piece
                    .strip_prefix("<0x")
                    .and_then(|rest| rest.strip_suffix('>'))
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(byte) => vec![byte],
                    None => piece.replace('▁', " ").into_bytes(),
                }
            }
            PieceEncoding::Plain => piece.into_bytes(),
        })
    }

    /// Whether `id` is a special (control) token, which decoding for display skips.
    pub fn is_special(&self, id: u32) -> bool {
        self.special_ids.contains(&id)
    }

    /// The name given when this tokenizer was built (a file name or URL).
    pub fn source(&self) -> &str {
        &self.origin
    }

    /// A [`StreamDecoder`] over this tokenizer, for one generated reply.
    pub fn stream(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }
}

/// The BOS a `tokenizer.json` post-processor prepends: what comes before the text's
/// own ids when `"a"` is encoded with special tokens.
fn bos_from_post_processor(
    inner: &tokenizers::Tokenizer,
    origin: &str,
) -> Result<Option<u32>, TokenizerError> {
    let encode = |add_special: bool| {
        inner
            .encode_fast("a", add_special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| gguf_vocab::build_error(origin, e))
    };
    let (with, without) = (encode(true)?, encode(false)?);
    let text_at = (0..=with.len()).find(|&at| {
        with.get(at..)
            .is_some_and(|rest| rest.starts_with(&without))
    });
    Ok(with.first().copied().filter(|_| text_at.unwrap_or(0) > 0))
}
