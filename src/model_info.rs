//! What the app reports about the model that is live: the `model_info` object and the
//! load status the status button shows.

use serde::{Deserialize, Serialize};

/// Which tier of the loading order produced the live model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelType {
    /// The fine-tuned tutor weights, as one quantized GGUF.
    FineTuned,
    /// The base weights with the tutor's PEFT LoRA adapter on top.
    Adapter,
    /// The base weights alone (a fallback).
    Base,
    /// The small bundled model that works offline (a fallback).
    Compact,
}

impl ModelType {
    /// The name used in `model_info` and the UI (`fine-tuned`, `adapter`, `base`, `compact`).
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::FineTuned => "fine-tuned",
            ModelType::Adapter => "adapter",
            ModelType::Base => "base",
            ModelType::Compact => "compact",
        }
    }

    /// True for the tiers that carry the tutor's training (fine-tuned weights or adapter).
    pub fn is_tutor(self) -> bool {
        matches!(self, ModelType::FineTuned | ModelType::Adapter)
    }
}

/// The `model_info` object: what is loaded, from where, and whether it is a fallback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// `"ready"` once a model answers.
    pub status: String,
    /// The tier that produced the live model.
    pub model_type: ModelType,
    /// True when the live model is base weights plus a LoRA adapter.
    pub is_adapter: bool,
    /// Repo/path of the fine-tuned weights or of the adapter, when one is live.
    pub fine_tuned_path: Option<String>,
    /// Repo/path of the base weights (or of the compact model).
    pub base_model_path: String,
    /// True when a better tier failed and a lower one is live.
    pub using_fallback: bool,
    /// Why the better tiers were not used (the first tier error), when falling back.
    pub fallback_reason: Option<String>,
    /// Where the tokenizer came from (`tokenizer.json` of a repo, or the GGUF's own vocabulary).
    pub tokenizer_source: String,
    /// The context length the engine uses for this model.
    pub context_length: usize,
}

/// Where loading stands, as the status button shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum LoadStatus {
    /// Still working: what is happening, and the fraction done when known.
    Loading {
        /// What is being done ("Downloading Phi-3-mini-4k-instruct-q4.gguf").
        detail: String,
        /// Fraction done in `0.0..=1.0`, when known.
        progress: Option<f32>,
    },
    /// A model is live.
    Ready(ModelInfo),
    /// Nothing could be loaded; the first error.
    Failed(String),
}
