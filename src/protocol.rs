//! The messages between the page and the engine worker. Both sides serialise them as JSON
//! strings with serde, so the page (Leptos) and the worker (engine) share one definition and
//! native tests can check the wire format.

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::engine::chat::ChatMessage;
use crate::engine::generate::GenerationStats;
use crate::engine::generation_config::GenerationConfig;
use crate::model_info::{ModelInfo, ModelType};
use crate::perf_log::PerfLog;
use crate::tools::ToolResult;
use crate::tutor::Action;

/// What the page asks of the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Find the best model the catalog (with its hub already chosen) allows and load it.
    Load {
        /// The catalog, with `?hub=` applied.
        catalog: Box<Catalog>,
    },
    /// Answer the conversation; `messages` ends with the student's turn.
    Generate {
        /// System prompt, optional `context_provider` turn, history and the user turn.
        messages: Vec<ChatMessage>,
        /// Sampling settings for this reply.
        config: GenerationConfig,
    },
    /// Generate from raw token ids, past end-of-turn tokens, for `make bench`: the same
    /// prefill and decode path as [`Request::Generate`], with an exact prompt length.
    Bench {
        /// Prompt token ids, used as they are.
        prompt: Vec<u32>,
        /// Sampling settings (the benchmark asks for greedy, loop guard off).
        config: GenerationConfig,
    },
    /// Stop the reply being generated, or cancel the load in progress.
    Stop,
    /// Send the current `model_info` and performance log.
    Info,
    /// Delete every cached model file (not while a load is running).
    ClearCache,
}

/// Progress of one file's download or cache read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileProgress {
    /// `repo/path`, or the bundled model's URL.
    pub file: String,
    /// Bytes available so far (cached plus downloaded).
    pub bytes: u64,
    /// Total size, when known.
    pub total: Option<u64>,
    /// Download rate over the recent past, bytes per second.
    pub rate_bytes_per_s: f64,
    /// Estimated seconds left, when the total and a rate are known.
    pub eta_s: Option<f64>,
    /// True when the bytes come from the local cache rather than the network.
    pub from_cache: bool,
}

/// What the worker tells the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The worker's wasm has started and takes requests.
    Started,
    /// A file's bytes are arriving.
    Progress(FileProgress),
    /// A tier is being tried.
    TierStarted {
        /// The tier.
        tier: ModelType,
    },
    /// A tier could not be loaded; the next one is tried.
    TierFailed {
        /// The tier.
        tier: ModelType,
        /// Why, naming the file and the problem.
        reason: String,
    },
    /// A model is live.
    Ready {
        /// What is live.
        model_info: ModelInfo,
        /// The model's own generation settings (`model_config.json`, or the defaults).
        config: GenerationConfig,
    },
    /// Every tier failed; the first error (the page stays usable).
    LoadFailed {
        /// The first tier's error.
        message: String,
    },
    /// A piece of the reply being generated.
    Token {
        /// Text to append (never a partial UTF-8 character, never a special token).
        text: String,
    },
    /// What the engine decided before answering: the student's message classified, and
    /// the tool it ran (its result is in the reply's context). Sent before the first token.
    Turn {
        /// The classified message.
        action: Action,
        /// The tool call and its answer, if one ran.
        tool: Option<ToolResult>,
    },
    /// The reply is complete (or was stopped).
    Done {
        /// Timing and why it ended.
        stats: GenerationStats,
    },
    /// The answer to [`Request::Info`].
    Info {
        /// What is live, if anything.
        model_info: Option<ModelInfo>,
        /// Everything measured so far.
        perf: PerfLog,
    },
    /// The model cache was emptied.
    CacheCleared {
        /// How many bytes were freed.
        freed_bytes: u64,
    },
    /// A request failed (bad request, generation error); names the problem.
    Error {
        /// What went wrong.
        message: String,
    },
}

impl Request {
    /// The JSON text sent over `postMessage`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("requests always serialise")
    }

    /// Parses a request received by the worker.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl Event {
    /// The JSON text sent over `postMessage`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialise")
    }

    /// Parses an event received by the page.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_with_a_type_tag() {
        let request = Request::Generate {
            messages: vec![ChatMessage::system("Be Mimir."), ChatMessage::user("Hi")],
            config: GenerationConfig::default(),
        };
        let json = request.to_json();
        assert!(json.starts_with(r#"{"type":"generate""#), "{json}");
        assert_eq!(Request::from_json(&json).unwrap(), request);
        assert_eq!(
            Request::from_json(r#"{"type":"stop"}"#).unwrap(),
            Request::Stop
        );
        let bench = Request::Bench {
            prompt: vec![1, 2, 3],
            config: GenerationConfig::default(),
        };
        assert_eq!(Request::from_json(&bench.to_json()).unwrap(), bench);
    }

    #[test]
    fn events_round_trip() {
        let events = [
            Event::TierFailed {
                tier: ModelType::FineTuned,
                reason: "jdesiree/Mimir-Phi-3.5/x.gguf: HTTP 404".into(),
            },
            Event::Token {
                text: "Paris".into(),
            },
            Event::Progress(FileProgress {
                file: "a/b.gguf".into(),
                bytes: 10,
                total: Some(20),
                rate_bytes_per_s: 5.0,
                eta_s: Some(2.0),
                from_cache: false,
            }),
        ];
        for event in events {
            assert_eq!(Event::from_json(&event.to_json()).unwrap(), event);
        }
        assert!(
            Event::from_json(r#"{"type":"tier_failed","tier":"adapter","reason":"x"}"#).is_ok()
        );
    }

    #[test]
    fn unknown_messages_are_errors() {
        assert!(Request::from_json(r#"{"type":"format_disk"}"#).is_err());
        assert!(Request::from_json("not json").is_err());
    }
}
