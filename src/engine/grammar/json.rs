//! [`generate_json`]: a chat prompt in, a JSON value matching the schema out.

use serde_json::Value;
use thiserror::Error;

use super::token_mask::GrammarMasker;
use crate::engine::chat::ChatMessage;
use crate::engine::clock::Clock;
use crate::engine::generate::{GenerateError, Session, StopReason};
use crate::engine::generation_config::GenerationConfig;
use crate::engine::tokenizer::TokenizerError;

/// Why a constrained reply gave no value.
#[derive(Debug, Error)]
pub enum JsonError {
    /// The model could not run.
    #[error(transparent)]
    Generate(#[from] GenerateError),
    /// The prompt could not be encoded.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The reply stopped (token limit, full context) before the value was complete.
    #[error("the constrained reply stopped ({stop:?}) before its JSON was complete: {text:?}")]
    Incomplete {
        /// The text generated.
        text: String,
        /// Why it stopped.
        stop: StopReason,
    },
    /// The grammar let through text that is not JSON (a bug in the grammar).
    #[error("the constrained reply {text:?} is not JSON: {source}")]
    Parse {
        /// The text generated.
        text: String,
        /// What the parser said.
        source: serde_json::Error,
    },
}

/// Generates the reply to `messages` (rendered with the session's chat template and a
/// generation prompt) under `masker`'s grammar and parses it.
///
/// The sampling settings come from `config`, except that the loop guard is off (the
/// grammar bounds the output instead: repeated JSON keys are not a loop) and, when the
/// schema bounds the text's length, `max_tokens` is that bound (a token adds at least a
/// byte), so a bounded schema always completes. `masker` must be built over this session's
/// vocabulary ([`Session::json_masker`]).
pub fn generate_json(
    session: &mut Session,
    masker: &mut GrammarMasker,
    messages: &[ChatMessage],
    config: &GenerationConfig,
    clock: &dyn Clock,
) -> Result<Value, JsonError> {
    let pieces = session.template().render(messages, true);
    let prompt = session.tokenizer().encode_prompt(&pieces, true)?;
    let mut config = config.clone();
    config.loop_guard.ngram = 0;
    if let Some(bound) = masker.grammar().max_len_bytes() {
        config.max_tokens = bound;
    }
    let mut constraint = masker.constraint();
    let mut reply = session.start_constrained(&prompt, &config, clock, &mut constraint)?;
    while reply.step()?.is_some() {}
    let stop = reply.finish()?.stats.stop;
    let text = String::from_utf8_lossy(constraint.text()).into_owned();
    if !constraint.state().is_complete() {
        return Err(JsonError::Incomplete { text, stop });
    }
    serde_json::from_str(&text).map_err(|source| JsonError::Parse { text, source })
}
