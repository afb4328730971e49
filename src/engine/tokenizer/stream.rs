//! Incremental detokenization: generated ids in, text pieces for the UI out.
//!
//! Decoding one id at a time is wrong: SentencePiece drops the leading space of the
//! first token it decodes, and a character split over byte-fallback tokens decodes
//! as U+FFFD until its last byte arrives. [`StreamDecoder`] decodes a short window:
//! the ids of the last emitted piece (as context) plus the new ones, and emits what
//! follows the context's own text (Hugging Face text-generation-inference's
//! `decode_token` scheme with prefix and read offsets), so the pieces add up to
//! exactly `decode(all ids, skip_special = true)`.

use super::{Tokenizer, TokenizerError};

/// The replacement character a decoder writes for bytes that are not (yet) valid UTF-8.
const REPLACEMENT: char = '\u{FFFD}';

/// Turns the ids of one generated reply into text pieces as they arrive.
///
/// Special tokens produce no text. Work per id is bounded by the window (the ids of
/// the last emitted piece plus any held back), not by the length of the reply.
#[derive(Debug, Clone)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    /// Non-special ids since the start of the window.
    window: Vec<u32>,
    /// `window[..emitted]` has been emitted; it is kept as context for the next piece.
    emitted: usize,
    /// `decode(window[..emitted])`: the text to cut off the next decode.
    context_text: String,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder for a new reply, using `tokenizer`.
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        Self {
            tokenizer,
            window: Vec::new(),
            emitted: 0,
            context_text: String::new(),
        }
    }

    /// Adds the next generated id; returns the text it completes, if any.
    ///
    /// Returns `None` for special tokens, for tokens that decode to nothing yet, and
    /// while the text ends in an incomplete UTF-8 sequence (held back, never split).
    pub fn push(&mut self, id: u32) -> Result<Option<String>, TokenizerError> {
        if id as usize >= self.tokenizer.vocab_size() {
            return Err(self.tokenizer.unknown_id(id));
        }
        if self.tokenizer.is_special(id) {
            return Ok(None);
        }
        self.window.push(id);
        let text = self.tokenizer.decode_checked(&self.window, true)?;
        if text.ends_with(REPLACEMENT) {
            return Ok(None);
        }
        self.emit(text, self.window.len())
    }

    /// Flushes what is still held back: the text of the pending ids up to the last
    /// complete character (a trailing incomplete UTF-8 sequence is dropped), then
    /// resets the decoder for a new reply.
    pub fn finish(&mut self) -> Result<Option<String>, TokenizerError> {
        let mut piece = None;
        for end in (self.emitted + 1..=self.window.len()).rev() {
            let text = self.tokenizer.decode_checked(&self.window[..end], true)?;
            if !text.ends_with(REPLACEMENT) {
                piece = self.emit(text, end)?;
                break;
            }
        }
        self.window.clear();
        self.emitted = 0;
        self.context_text.clear();
        Ok(piece)
    }

    /// Emits `text` (the decode of `window[..end]`) past the context, and slides the
    /// window: the ids just emitted become the context of the next piece.
    fn emit(&mut self, text: String, end: usize) -> Result<Option<String>, TokenizerError> {
        let piece = match text.strip_prefix(self.context_text.as_str()) {
            Some(rest) => rest.to_owned(),
            // Decoders only append after a complete context, so this needs invalid
            // UTF-8 from the model; emit what follows the shared part rather than stall.
            None => text[common_prefix_len(&self.context_text, &text)..].to_owned(),
        };
        if piece.is_empty() {
            return Ok(None);
        }
        self.window.drain(..self.emitted);
        self.emitted = end - self.emitted;
        self.context_text = self
            .tokenizer
            .decode_checked(&self.window[..self.emitted], true)?;
        Ok(Some(piece))
    }
}

/// Length in bytes of the longest common prefix of `a` and `b`, on a char boundary.
fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|&((_, ca), cb)| ca != cb)
        .map_or_else(|| a.len().min(b.len()), |((at, _), _)| at)
}
