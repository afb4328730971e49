//! The generation loop: prefill, sample, stream text, stop.

use std::io::{Read, Seek};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::chat::ChatTemplate;
use super::clock::Clock;
use super::generation_config::GenerationConfig;
use super::gguf::GgufFile;
use super::loop_guard::{LoopGuard, LoopVerdict};
use super::model::{LoadOptions, Model, ModelError};
use super::sampler::{SampleError, Sampler};
use super::tokenizer::{GgufVocab, Tokenizer, TokenizerError};

/// Why generation failed.
#[derive(Debug, Error)]
pub enum GenerateError {
    /// The model could not run.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Tokens could not be turned into text.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The logits could not be sampled.
    #[error("sampling: {0}")]
    Sample(#[from] SampleError),
    /// An empty prompt.
    #[error("the prompt has no tokens")]
    EmptyPrompt,
    /// The prompt alone fills the context.
    #[error("the prompt has {prompt} tokens; the context holds {capacity}")]
    PromptTooLong {
        /// Prompt tokens.
        prompt: usize,
        /// The context cap.
        capacity: usize,
    },
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model ended its turn (a stop id).
    EndOfTurn,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The context is full.
    ContextFull,
    /// The loop guard saw the reply repeating itself.
    Repetition,
    /// The caller asked to stop.
    Cancelled,
}

/// Timings and counts of one reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Prompt tokens taken from the KV cache instead of being run again.
    pub reused_tokens: usize,
    /// Tokens generated (the stop token not counted).
    pub generated_tokens: usize,
    /// Milliseconds from the call to the first generated token.
    pub time_to_first_token_ms: f64,
    /// Prompt tokens run per second.
    pub prefill_tokens_per_s: f64,
    /// Generated tokens per second after the first.
    pub decode_tokens_per_s: f64,
    /// Why it stopped.
    pub stop: StopReason,
}

/// One finished reply.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The generated ids (without the stop token).
    pub tokens: Vec<u32>,
    /// Their text, special tokens left out.
    pub text: String,
    /// Timings and counts.
    pub stats: GenerationStats,
}

/// A model, its tokenizer and the ids its KV cache holds, so a chat turn only runs the
/// tokens that differ from the previous prompt.
#[derive(Debug)]
pub struct Session {
    model: Model,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    cached: Vec<u32>,
}

impl Session {
    /// Wraps a loaded model, its tokenizer and its chat template.
    pub fn new(model: Model, tokenizer: Tokenizer, template: ChatTemplate) -> Self {
        Self {
            model,
            tokenizer,
            template,
            cached: Vec::new(),
        }
    }

    /// Loads a GGUF model read from `reader` (named `source` in errors). Without a
    /// `tokenizer`, the one the GGUF's own vocabulary describes is built; the chat template
    /// is recognised from `tokenizer.chat_template` and the architecture.
    pub fn from_gguf<R: Read + Seek>(
        reader: &mut R,
        source: &str,
        options: &LoadOptions,
        tokenizer: Option<Tokenizer>,
    ) -> Result<Self, GenerateError> {
        let file = GgufFile::read(reader, source).map_err(ModelError::from)?;
        let tokenizer = match tokenizer {
            Some(t) => t,
            None => {
                let vocab = GgufVocab::from_gguf(&file).map_err(ModelError::from)?;
                Tokenizer::from_gguf_vocab(&vocab, source)?
            }
        };
        let template = ChatTemplate::from_gguf_template(
            file.get("tokenizer.chat_template").and_then(|v| v.as_str()),
            file.architecture().map_err(ModelError::from)?,
        );
        let model = Model::from_gguf(&file, reader, options)?;
        Ok(Self::new(model, tokenizer, template))
    }

    /// The chat template prompts for this model are rendered with.
    pub fn template(&self) -> ChatTemplate {
        self.template
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Generates a reply to `prompt` (ids). `on_text` receives each new piece of text and
    /// returns `false` to stop. With `ignore_eos`, stop ids do not end the reply.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        config: &GenerationConfig,
        ignore_eos: bool,
        clock: &dyn Clock,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, GenerateError> {
        if prompt.is_empty() {
            return Err(GenerateError::EmptyPrompt);
        }
        let capacity = self.model.context_length();
        if prompt.len() >= capacity {
            return Err(GenerateError::PromptTooLong {
                prompt: prompt.len(),
                capacity,
            });
        }
        let start = clock.now_ms();
        // Keep the longest cached prefix, but always run at least the last prompt token.
        let reused = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1);
        self.model.truncate_cache(reused)?;
        self.cached.truncate(reused);
        let mut logits = run(&mut self.model, &mut self.cached, &prompt[reused..])?;
        let prefill_ms = clock.now_ms() - start;

        let stop_ids: Vec<u32> = config
            .stop_ids
            .iter()
            .chain(self.tokenizer.eos_ids())
            .copied()
            .collect();
        let mut sampler = Sampler::new(config);
        let mut guard = LoopGuard::new(config.loop_guard.clone());
        let mut decoder = self.tokenizer.stream();
        let mut history = prompt.to_vec();
        let mut tokens = Vec::new();
        let mut first_token_ms = None;
        let stop = loop {
            let id = sampler.sample(&mut logits, &history)?;
            first_token_ms.get_or_insert_with(|| clock.now_ms() - start);
            if !ignore_eos && stop_ids.contains(&id) {
                break StopReason::EndOfTurn;
            }
            tokens.push(id);
            history.push(id);
            if let Some(text) = decoder.push(id)? {
                if !on_text(&text) {
                    break StopReason::Cancelled;
                }
            }
            if guard.push(id) == LoopVerdict::Stop {
                break StopReason::Repetition;
            }
            if tokens.len() >= config.max_tokens {
                break StopReason::MaxTokens;
            }
            if self.cached.len() + 1 > capacity {
                break StopReason::ContextFull;
            }
            logits = run(&mut self.model, &mut self.cached, &[id])?;
        };
        if let Some(text) = decoder.finish()? {
            on_text(&text);
        }
        let total_ms = clock.now_ms() - start;
        let first = first_token_ms.unwrap_or(total_ms);
        let per_s = |n: usize, ms: f64| {
            if ms > 0.0 {
                n as f64 * 1000.0 / ms
            } else {
                0.0
            }
        };
        let stats = GenerationStats {
            prompt_tokens: prompt.len(),
            reused_tokens: reused,
            generated_tokens: tokens.len(),
            time_to_first_token_ms: first,
            prefill_tokens_per_s: per_s(prompt.len() - reused, prefill_ms),
            decode_tokens_per_s: per_s(tokens.len().saturating_sub(1), total_ms - first),
            stop,
        };
        let text = self.tokenizer.decode(&tokens, true)?;
        Ok(Generation {
            tokens,
            text,
            stats,
        })
    }
}

/// Runs `ids` after the cache and returns the last position's logits.
fn run(model: &mut Model, cached: &mut Vec<u32>, ids: &[u32]) -> Result<Vec<f32>, GenerateError> {
    let logits = model.forward(ids, false)?;
    cached.extend_from_slice(ids);
    logits
        .to_vec1()
        .map_err(|source| ModelError::Candle {
            context: "reading logits".into(),
            source,
        })
        .map_err(GenerateError::from)
}
