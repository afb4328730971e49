//! The generation loop: prefill, sample, stream text, stop.

use std::io::{Read, Seek};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::chat::ChatTemplate;
use super::clock::Clock;
use super::generation_config::GenerationConfig;
use super::gguf::GgufFile;
use super::grammar::{Grammar, GrammarError, GrammarMasker, TokenVocab};
use super::loop_guard::{LoopGuard, LoopVerdict};
use super::model::{LoadOptions, Model, ModelError};
use super::sampler::{SampleError, Sampler};
use super::tokenizer::{GgufVocab, StreamDecoder, Tokenizer, TokenizerError};

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
    /// A [`TokenConstraint`] refused the token it had allowed.
    #[error("constrained decoding: {0}")]
    Constraint(String),
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

/// Restricts which tokens a reply may take next, e.g. to text a JSON grammar accepts
/// ([`crate::engine::grammar::JsonConstraint`]).
pub trait TokenConstraint {
    /// Sets the logits of the ids that may not come next to `-inf` before sampling. The
    /// `stop_ids` end the reply: leave them finite only where the reply may end.
    fn mask(&mut self, logits: &mut [f32], stop_ids: &[u32]);
    /// Records the chosen id (never a stop id). `Ok(true)` when the constrained text is
    /// complete and nothing may follow, which ends the reply; `Err` names a token the mask
    /// should not have allowed.
    fn accept(&mut self, id: u32) -> Result<bool, String>;
}

/// A stage of loading a GGUF session, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStage {
    /// The GGUF header: metadata and the tensor index.
    Header,
    /// The tokenizer (from the GGUF's vocabulary, unless one was given) and chat template.
    Tokenizer,
    /// Every tensor read, converted for this target, and the KV cache allocated.
    Weights,
    /// The kernels run on small data ([`mimir_kernels::warm_up`]), so that the browser has
    /// compiled them optimised before the first prompt calls them (the worker's loads only).
    WarmUp,
}

impl LoadStage {
    /// The stage's name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Tokenizer => "tokenizer",
            Self::Weights => "weights",
            Self::WarmUp => "warm-up",
        }
    }
}

/// A model, its tokenizer and the ids its KV cache holds, so a chat turn only runs the
/// tokens that differ from the previous prompt.
#[derive(Debug)]
pub struct Session {
    model: Model,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    cached: Vec<u32>,
    /// The vocabulary as bytes for constrained decoding, built on first use.
    token_vocab: Option<Arc<TokenVocab>>,
}

impl Session {
    /// Wraps a loaded model, its tokenizer and its chat template.
    pub fn new(model: Model, tokenizer: Tokenizer, template: ChatTemplate) -> Self {
        Self {
            model,
            tokenizer,
            template,
            cached: Vec::new(),
            token_vocab: None,
        }
    }

    /// The vocabulary as bytes, for [`GrammarMasker`]s over this model (built once, on
    /// first use: one pass over the vocabulary).
    pub fn token_vocab(&mut self) -> Arc<TokenVocab> {
        self.token_vocab
            .get_or_insert_with(|| Arc::new(TokenVocab::new(&self.tokenizer)))
            .clone()
    }

    /// A masker constraining replies of this model to JSON matching `schema`.
    pub fn json_masker(
        &mut self,
        schema: &serde_json::Value,
    ) -> Result<GrammarMasker, GrammarError> {
        Ok(GrammarMasker::new(
            Grammar::from_schema(schema)?,
            self.token_vocab(),
        ))
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
        Self::from_gguf_staged(reader, source, options, tokenizer, &mut |_| {})
    }

    /// [`Session::from_gguf`], calling `on_stage` as each [`LoadStage`] ends, so a caller
    /// with a clock can say where a load's time goes.
    pub fn from_gguf_staged<R: Read + Seek>(
        reader: &mut R,
        source: &str,
        options: &LoadOptions,
        tokenizer: Option<Tokenizer>,
        on_stage: &mut dyn FnMut(LoadStage),
    ) -> Result<Self, GenerateError> {
        let file = GgufFile::read(reader, source).map_err(ModelError::from)?;
        on_stage(LoadStage::Header);
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
        on_stage(LoadStage::Tokenizer);
        let model = Model::from_gguf(&file, reader, options)?;
        on_stage(LoadStage::Weights);
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
    ///
    /// A thin loop over [`Session::start`] and [`Reply::step`].
    pub fn generate(
        &mut self,
        prompt: &[u32],
        config: &GenerationConfig,
        ignore_eos: bool,
        clock: &dyn Clock,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, GenerateError> {
        let mut reply = self.start(prompt, config, ignore_eos, clock)?;
        while let Some(text) = reply.step()? {
            if !on_text(&text) {
                reply.cancel();
            }
        }
        reply.finish()
    }

    /// Runs the prompt (reusing the cached prefix) and returns the reply, whose tokens are
    /// produced one [`Reply::step`] at a time, so a caller with an event loop (the browser
    /// worker) can look for a stop request between tokens.
    pub fn start<'a>(
        &'a mut self,
        prompt: &[u32],
        config: &GenerationConfig,
        ignore_eos: bool,
        clock: &'a dyn Clock,
    ) -> Result<Reply<'a>, GenerateError> {
        self.start_with(prompt, config, ignore_eos, clock, None)
    }

    /// [`Session::start`] with every sampled token restricted by `constraint` (its mask is
    /// applied to the logits before sampling); the reply ends when the constraint says its
    /// text is complete, or with a stop id where the constraint allows one.
    pub fn start_constrained<'a>(
        &'a mut self,
        prompt: &[u32],
        config: &GenerationConfig,
        clock: &'a dyn Clock,
        constraint: &'a mut dyn TokenConstraint,
    ) -> Result<Reply<'a>, GenerateError> {
        self.start_with(prompt, config, false, clock, Some(constraint))
    }

    fn start_with<'a>(
        &'a mut self,
        prompt: &[u32],
        config: &GenerationConfig,
        ignore_eos: bool,
        clock: &'a dyn Clock,
        constraint: Option<&'a mut dyn TokenConstraint>,
    ) -> Result<Reply<'a>, GenerateError> {
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
        let start_ms = clock.now_ms();
        // Keep the longest cached prefix, but always run at least the last prompt token.
        let reused = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1);
        self.model.truncate_cache(reused);
        self.cached.truncate(reused);
        let logits = run(&mut self.model, &mut self.cached, &prompt[reused..])?;
        let prefill_ms = clock.now_ms() - start_ms;
        let stop_ids = config
            .stop_ids
            .iter()
            .chain(self.tokenizer.eos_ids())
            .copied()
            .collect();
        Ok(Reply {
            model: &mut self.model,
            cached: &mut self.cached,
            tokenizer: &self.tokenizer,
            decoder: self.tokenizer.stream(),
            clock,
            sampler: Sampler::new(config),
            guard: LoopGuard::new(config.loop_guard.clone()),
            stop_ids,
            ignore_eos,
            max_tokens: config.max_tokens,
            capacity,
            history: prompt.to_vec(),
            tokens: Vec::new(),
            logits,
            pending: None,
            start_ms,
            prefill_ms,
            first_token_ms: None,
            prompt_tokens: prompt.len(),
            reused,
            stop: None,
            flushed: false,
            constraint,
        })
    }
}

/// A reply being generated: [`Reply::step`] yields its text piece by piece, and
/// [`Reply::finish`] gives the whole [`Generation`] once it has ended (or was cancelled).
pub struct Reply<'a> {
    model: &'a mut Model,
    cached: &'a mut Vec<u32>,
    tokenizer: &'a Tokenizer,
    decoder: StreamDecoder<'a>,
    clock: &'a dyn Clock,
    sampler: Sampler,
    guard: LoopGuard,
    stop_ids: Vec<u32>,
    ignore_eos: bool,
    max_tokens: usize,
    capacity: usize,
    history: Vec<u32>,
    tokens: Vec<u32>,
    logits: Vec<f32>,
    /// The last sampled id, still to be run through the model before the next sample.
    pending: Option<u32>,
    start_ms: f64,
    prefill_ms: f64,
    first_token_ms: Option<f64>,
    prompt_tokens: usize,
    reused: usize,
    stop: Option<StopReason>,
    /// The decoder's held-back text has been handed out after the stop.
    flushed: bool,
    /// Restricts the tokens sampled, when given.
    constraint: Option<&'a mut dyn TokenConstraint>,
}

impl std::fmt::Debug for Reply<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("tokens", &self.tokens.len())
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

impl Reply<'_> {
    /// Generates until the next piece of text and returns it; `None` once the reply has
    /// ended. The model runs only inside this call, so between calls nothing is computing.
    pub fn step(&mut self) -> Result<Option<String>, GenerateError> {
        loop {
            if self.stop.is_some() {
                if self.flushed {
                    return Ok(None);
                }
                self.flushed = true;
                return Ok(self.decoder.finish()?);
            }
            if let Some(id) = self.pending.take() {
                self.logits = run(self.model, self.cached, &[id])?;
            }
            if let Some(constraint) = self.constraint.as_deref_mut() {
                constraint.mask(&mut self.logits, &self.stop_ids);
            }
            let id = self.sampler.sample(&mut self.logits, &self.history)?;
            let clock = self.clock;
            let start_ms = self.start_ms;
            self.first_token_ms
                .get_or_insert_with(|| clock.now_ms() - start_ms);
            if !self.ignore_eos && self.stop_ids.contains(&id) {
                self.stop = Some(StopReason::EndOfTurn);
                continue;
            }
            self.tokens.push(id);
            self.history.push(id);
            let text = self.decoder.push(id)?;
            let complete = match self.constraint.as_deref_mut() {
                Some(constraint) => constraint.accept(id).map_err(GenerateError::Constraint)?,
                None => false,
            };
            self.stop = if complete {
                Some(StopReason::EndOfTurn)
            } else if self.guard.push(id) == LoopVerdict::Stop {
                Some(StopReason::Repetition)
            } else if self.tokens.len() >= self.max_tokens {
                Some(StopReason::MaxTokens)
            } else if self.cached.len() + 1 > self.capacity {
                Some(StopReason::ContextFull)
            } else {
                self.pending = Some(id);
                None
            };
            if text.is_some() {
                return Ok(text);
            }
        }
    }

    /// Ends the reply at the caller's request: the next [`Reply::step`] hands out any text
    /// still held back and then `None`.
    pub fn cancel(&mut self) {
        self.pending = None;
        self.stop = Some(StopReason::Cancelled);
    }

    /// The tokens generated so far.
    pub fn generated_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// The finished reply with its timings; a reply not yet ended counts as cancelled.
    pub fn finish(self) -> Result<Generation, GenerateError> {
        let total_ms = self.clock.now_ms() - self.start_ms;
        let first = self.first_token_ms.unwrap_or(total_ms);
        let per_s = |n: usize, ms: f64| {
            if ms > 0.0 {
                n as f64 * 1000.0 / ms
            } else {
                0.0
            }
        };
        let stats = GenerationStats {
            prompt_tokens: self.prompt_tokens,
            reused_tokens: self.reused,
            generated_tokens: self.tokens.len(),
            time_to_first_token_ms: first,
            prefill_tokens_per_s: per_s(self.prompt_tokens - self.reused, self.prefill_ms),
            decode_tokens_per_s: per_s(self.tokens.len().saturating_sub(1), total_ms - first),
            stop: self.stop.unwrap_or(StopReason::Cancelled),
        };
        let text = self.tokenizer.decode(&self.tokens, true)?;
        Ok(Generation {
            tokens: self.tokens,
            text,
            stats,
        })
    }
}

/// Positions a prompt runs in at once. The transient tensors of one pass over a 1000-token
/// prompt raised the Phi-3-shaped file's peak wasm memory from 3.01 to 3.59 GiB for good
/// (3.08 GiB in runs of 128). At the 2048-position cap a run's attention scores, 32 heads ×
/// 128 × 2048 in f32, and their softmax come to 67 MB; runs this long still prefill as fast
/// as one pass, the prompt kernels taking activation rows two at a time.
pub const PROMPT_CHUNK: usize = 128;

/// Runs `ids` after the cache and returns the last position's logits.
fn run(model: &mut Model, cached: &mut Vec<u32>, ids: &[u32]) -> Result<Vec<f32>, GenerateError> {
    let logits = model.forward_chunked(ids, PROMPT_CHUNK)?;
    cached.extend_from_slice(ids);
    logits
        .to_vec1()
        .map_err(|source| ModelError::Candle {
            context: "reading logits".into(),
            source,
        })
        .map_err(GenerateError::from)
}
