//! Generating one reply per rubric item with the engine, as the app would ask: Mimir's
//! system prompt, the item's lesson notes as context, the model's chat template; optionally
//! planned by Mimir's tutor first, as the worker does.

use mimir::engine::chat::build_prompt;
use mimir::engine::clock::Clock;
use mimir::engine::generate::{GenerateError, Session};
use mimir::engine::generation_config::GenerationConfig;
use mimir::engine::tokenizer::TokenizerError;
use thiserror::Error;

use super::report::ItemResult;
use super::rubric::RubricItem;
use super::tone::{check_tone, ToneConfig};
use super::turn::TutorPlanning;

/// Error generating a reply for a rubric item.
#[derive(Debug, Error)]
pub enum EvalError {
    /// The prompt could not be encoded.
    #[error("item {id}: encoding the prompt: {source}")]
    Encode {
        /// The rubric item.
        id: String,
        /// The tokenizer's error.
        source: TokenizerError,
    },
    /// Generation failed.
    #[error("item {id}: {source}")]
    Generate {
        /// The rubric item.
        id: String,
        /// The engine's error (boxed: it is large).
        source: Box<GenerateError>,
    },
}

/// How the replies are generated and judged.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Sampling settings; [`EvalOptions::greedy`] turns a model's settings into greedy ones.
    pub generation: GenerationConfig,
    /// The system prompt sent with every item.
    pub system: String,
    /// The tone rules' settings.
    pub tone: ToneConfig,
}

impl EvalOptions {
    /// `generation` with sampling turned off (temperature 0: argmax of the penalised logits);
    /// penalties, loop guard, stop ids and the token cap are kept.
    pub fn greedy(generation: &GenerationConfig) -> GenerationConfig {
        GenerationConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            ..generation.clone()
        }
    }
}

/// Generates and judges a reply for each item in turn, each turn planned by `tutor` when
/// given; `on_item` sees each result as it is ready (for progress output).
pub fn evaluate(
    session: &mut Session,
    items: &[RubricItem],
    options: &EvalOptions,
    mut tutor: Option<&mut TutorPlanning>,
    clock: &dyn Clock,
    on_item: &mut dyn FnMut(&ItemResult),
) -> Result<Vec<ItemResult>, EvalError> {
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let start = clock.now_ms();
        let messages = build_prompt(&options.system, item.context.as_deref(), &[], &item.prompt);
        let (messages, prefix, mut guard, turn) = match tutor.as_deref_mut() {
            Some(tutor) => {
                let planned = tutor.plan(session, messages, clock);
                let (prefix, guard) = (planned.prefix, planned.guard);
                (planned.messages, prefix, guard, Some(planned.record))
            }
            None => (messages, None, None, None),
        };
        let encode_error = |source| EvalError::Encode {
            id: item.id.clone(),
            source,
        };
        let pieces = session.template().render(&messages, true);
        let mut ids = session
            .tokenizer()
            .encode_prompt(&pieces, true)
            .map_err(encode_error)?;
        // The tool's exact result starts the reply, as in the worker.
        let prefix = prefix.unwrap_or_default();
        ids.extend(
            session
                .tokenizer()
                .encode(&prefix, false)
                .map_err(encode_error)?,
        );
        let generate_error = |source| EvalError::Generate {
            id: item.id.clone(),
            source: Box::new(source),
        };
        let reply = match guard.as_mut() {
            // A calculator turn keeps to the given numbers, as in the worker.
            Some(guard) => {
                let mut reply = session
                    .start_constrained(&ids, &options.generation, clock, guard)
                    .map_err(generate_error)?;
                while reply.step().map_err(generate_error)?.is_some() {}
                reply.finish().map_err(generate_error)?
            }
            None => session
                .generate(&ids, &options.generation, false, clock, &mut |_| true)
                .map_err(generate_error)?,
        };
        let text = format!("{prefix}{}", reply.text).trim().to_owned();
        let result = ItemResult {
            id: item.id.clone(),
            prompt: item.prompt.clone(),
            context: item.context.clone(),
            turn,
            rubric: item.check(&text),
            tone: check_tone(&text, reply.stats.stop, &options.tone),
            stop: reply.stats.stop,
            generated_tokens: reply.stats.generated_tokens,
            seconds: (clock.now_ms() - start) / 1000.0,
            reply: text,
        };
        on_item(&result);
        results.push(result);
    }
    Ok(results)
}
