//! Per-model generation settings (`model_config.json`).
//!
//! The same [`GenerationConfig`] struct is read by the app (to drive the
//! sampler and the generation loop) and by the training crate, which embeds it
//! in a bigger file such as `{"generation": {...}, "training": {...}}`.
//!
//! Every field is optional in JSON (missing fields take the documented
//! default) and unknown fields are rejected, so a typo such as `"tempreature"`
//! is an error instead of a silently ignored setting.
//!
//! [`GenerationConfig::from_json`] parses *and* validates; code that
//! deserialises the struct itself (e.g. as part of a bigger file) should call
//! [`GenerationConfig::validate`] afterwards.

use std::fmt::Display;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Error produced while reading or validating a [`GenerationConfig`].
///
/// Every message starts with the source (usually a file name) so the user
/// knows which file to fix, e.g.
/// `model_config.json: top_p must be in (0, 1], got 1.5`.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The text is not valid JSON for this struct: a syntax error, a value of
    /// the wrong type, or an unknown field.
    #[error("{file}: invalid generation config: {error}")]
    Parse {
        /// Where the text came from (file name or other description).
        file: String,
        /// The underlying JSON error (it carries the line and column).
        #[source]
        error: serde_json::Error,
    },
    /// A field parsed correctly but its value is outside the allowed range.
    #[error("{file}: {field} {requirement}, got {value}")]
    Invalid {
        /// Where the config came from (file name or other description).
        file: String,
        /// The offending field, dotted for nested fields (`loop_guard.max_repeats`).
        field: String,
        /// What the field must satisfy, e.g. `must be in (0, 1]`.
        requirement: String,
        /// The offending value, formatted for display.
        value: String,
    },
}

/// Settings of the n-gram [loop guard](crate::engine::loop_guard::LoopGuard)
/// that stops generation when the model starts repeating itself.
///
/// Defaults: `ngram` 4, `max_repeats` 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoopGuardConfig {
    /// Length of the n-grams that are counted; 0 disables the guard.
    /// Default 4.
    pub ngram: usize,
    /// Generation stops when the most recent n-gram has occurred this many
    /// times among the generated tokens. Must be ≥ 2 while the guard is on.
    /// Default 3.
    pub max_repeats: usize,
}

impl Default for LoopGuardConfig {
    fn default() -> Self {
        Self {
            ngram: 4,
            max_repeats: 3,
        }
    }
}

/// Generation settings of one model, as stored in `model_config.json`.
///
/// All fields are optional in JSON; the defaults (see each field and
/// [`Default`]) are:
///
/// | field | default | meaning of "off" |
/// |---|---|---|
/// | `temperature` | 0.7 | 0 = greedy |
/// | `max_tokens` | 512 | |
/// | `top_k` | 40 | 0 |
/// | `top_p` | 0.9 | 1 |
/// | `repetition_penalty` | 1.1 | 1 |
/// | `frequency_penalty` | 0 | 0 |
/// | `presence_penalty` | 0 | 0 |
/// | `penalty_last_n` | 64 | 0 = whole history |
/// | `seed` | 42 | |
/// | `context_length` | 2048 | |
/// | `stop_ids` | `[]` | |
/// | `loop_guard` | `{"ngram": 4, "max_repeats": 3}` | `ngram` 0 |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// Softmax temperature; 0 means greedy (argmax) decoding. Must be finite
    /// and ≥ 0. Default 0.7.
    pub temperature: f32,
    /// Maximum number of tokens generated per answer. Must be ≥ 1 and less
    /// than `context_length`. Default 512.
    pub max_tokens: usize,
    /// Keep only the `top_k` most likely tokens before sampling; 0 = off.
    /// Default 40.
    pub top_k: usize,
    /// Nucleus sampling: keep the smallest set of most likely tokens whose
    /// probability sums to at least `top_p`; 1 = off. Must be in (0, 1].
    /// Default 0.9.
    pub top_p: f32,
    /// Hugging Face style repetition penalty for tokens seen in the last
    /// `penalty_last_n` tokens (positive logits are divided by it, negative
    /// ones multiplied); 1 = off. Must be finite and > 0. Default 1.1.
    pub repetition_penalty: f32,
    /// OpenAI style frequency penalty: subtracted from a token's logit once per
    /// occurrence in the penalty window; 0 = off. Must be in [-2, 2].
    /// Default 0.
    pub frequency_penalty: f32,
    /// OpenAI style presence penalty: subtracted once from the logit of every
    /// token present in the penalty window; 0 = off. Must be in [-2, 2].
    /// Default 0.
    pub presence_penalty: f32,
    /// How many of the most recent tokens (prompt + generated) the penalties
    /// look at; 0 = the whole history. Default 64.
    pub penalty_last_n: usize,
    /// Seed of the sampler's pseudo-random generator; the same seed and inputs
    /// give the same tokens on every platform. Default 42.
    pub seed: u64,
    /// Context window of the model in tokens. Must be ≥ 16. Default 2048.
    pub context_length: usize,
    /// Token ids that end generation (in addition to whatever the engine
    /// derives from the tokenizer). Default empty.
    pub stop_ids: Vec<u32>,
    /// Repetition loop detection, see [`LoopGuardConfig`].
    pub loop_guard: LoopGuardConfig,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            temperature: 0.7,
            max_tokens: 512,
            top_k: 40,
            top_p: 0.9,
            repetition_penalty: 1.1,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            penalty_last_n: 64,
            seed: 42,
            context_length: 2048,
            stop_ids: Vec::new(),
            loop_guard: LoopGuardConfig::default(),
        }
    }
}

fn invalid(source: &str, field: &str, requirement: &str, value: impl Display) -> ConfigError {
    ConfigError::Invalid {
        file: source.to_owned(),
        field: field.to_owned(),
        requirement: requirement.to_owned(),
        value: value.to_string(),
    }
}

impl GenerationConfig {
    /// Preset for Phi-3 mini (4k): the defaults with a 2048-token context and
    /// the stop ids `<|endoftext|>` (32000), `<|assistant|>` (32001) and
    /// `<|end|>` (32007).
    pub fn phi3() -> Self {
        Self {
            context_length: 2048,
            stop_ids: vec![32000, 32001, 32007],
            ..Self::default()
        }
    }

    /// Parses `text` (the contents of e.g. `model_config.json`) and validates
    /// the result. `source` names the file in error messages.
    ///
    /// Missing fields take their defaults; unknown fields are an error.
    pub fn from_json(text: &str, source: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_json::from_str(text).map_err(|error| ConfigError::Parse {
            file: source.to_owned(),
            error,
        })?;
        config.validate(source)?;
        Ok(config)
    }

    /// Checks every field's range and returns the first violation.
    ///
    /// `source` is put at the start of the error message; callers embedding
    /// this struct in a bigger file can pass e.g. `"train.json: generation"`.
    ///
    /// Rules:
    /// - `temperature` finite and ≥ 0;
    /// - `max_tokens` ≥ 1 and less than `context_length`;
    /// - `top_p` in (0, 1];
    /// - `repetition_penalty` finite and greater than 0;
    /// - `frequency_penalty` and `presence_penalty` in [-2, 2];
    /// - `context_length` ≥ 16;
    /// - `loop_guard.max_repeats` ≥ 2 when `loop_guard.ngram` is not 0.
    pub fn validate(&self, source: &str) -> Result<(), ConfigError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(invalid(
                source,
                "temperature",
                "must be a finite number >= 0 (0 = greedy)",
                self.temperature,
            ));
        }
        if self.max_tokens < 1 {
            return Err(invalid(
                source,
                "max_tokens",
                "must be >= 1",
                self.max_tokens,
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(invalid(source, "top_p", "must be in (0, 1]", self.top_p));
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(invalid(
                source,
                "repetition_penalty",
                "must be a finite number > 0 (1 = off)",
                self.repetition_penalty,
            ));
        }
        for (field, value) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if !(-2.0..=2.0).contains(&value) {
                return Err(invalid(source, field, "must be in [-2, 2]", value));
            }
        }
        if self.context_length < 16 {
            return Err(invalid(
                source,
                "context_length",
                "must be >= 16",
                self.context_length,
            ));
        }
        if self.max_tokens >= self.context_length {
            return Err(invalid(
                source,
                "max_tokens",
                &format!("must be less than context_length ({})", self.context_length),
                self.max_tokens,
            ));
        }
        if self.loop_guard.ngram > 0 && self.loop_guard.max_repeats < 2 {
            return Err(invalid(
                source,
                "loop_guard.max_repeats",
                "must be >= 2 when loop_guard.ngram > 0",
                self.loop_guard.max_repeats,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_text(json: &str) -> String {
        GenerationConfig::from_json(json, "model_config.json")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_are_documented_values() {
        let c = GenerationConfig::default();
        assert_eq!(c.temperature, 0.7);
        assert_eq!(c.max_tokens, 512);
        assert_eq!(c.top_k, 40);
        assert_eq!(c.top_p, 0.9);
        assert_eq!(c.repetition_penalty, 1.1);
        assert_eq!(c.frequency_penalty, 0.0);
        assert_eq!(c.presence_penalty, 0.0);
        assert_eq!(c.penalty_last_n, 64);
        assert_eq!(c.seed, 42);
        assert_eq!(c.context_length, 2048);
        assert!(c.stop_ids.is_empty());
        assert_eq!(
            c.loop_guard,
            LoopGuardConfig {
                ngram: 4,
                max_repeats: 3
            }
        );
        c.validate("defaults").unwrap();
    }

    #[test]
    fn empty_object_gives_defaults() {
        let c = GenerationConfig::from_json("{}", "model_config.json").unwrap();
        assert_eq!(c, GenerationConfig::default());
        let c = GenerationConfig::from_json(r#"{"loop_guard": {"ngram": 0}}"#, "m").unwrap();
        assert_eq!(c.loop_guard.ngram, 0);
        assert_eq!(c.loop_guard.max_repeats, 3);
    }

    #[test]
    fn phi3_preset() {
        let c = GenerationConfig::phi3();
        assert_eq!(c.context_length, 2048);
        assert_eq!(c.stop_ids, vec![32000, 32001, 32007]);
        c.validate("phi3").unwrap();
    }

    #[test]
    fn full_json_round_trips() {
        let json = r#"{
            "temperature": 0.25,
            "max_tokens": 300,
            "top_k": 7,
            "top_p": 0.95,
            "repetition_penalty": 1.3,
            "frequency_penalty": -0.5,
            "presence_penalty": 1.5,
            "penalty_last_n": 0,
            "seed": 18446744073709551615,
            "context_length": 4096,
            "stop_ids": [2, 32007],
            "loop_guard": {"ngram": 6, "max_repeats": 4}
        }"#;
        let c = GenerationConfig::from_json(json, "model_config.json").unwrap();
        let expected = GenerationConfig {
            temperature: 0.25,
            max_tokens: 300,
            top_k: 7,
            top_p: 0.95,
            repetition_penalty: 1.3,
            frequency_penalty: -0.5,
            presence_penalty: 1.5,
            penalty_last_n: 0,
            seed: u64::MAX,
            context_length: 4096,
            stop_ids: vec![2, 32007],
            loop_guard: LoopGuardConfig {
                ngram: 6,
                max_repeats: 4,
            },
        };
        assert_eq!(c, expected);
        let written = serde_json::to_string_pretty(&c).unwrap();
        let back = GenerationConfig::from_json(&written, "written.json").unwrap();
        assert_eq!(back, c);
        // Every field is written out.
        let value: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(value.as_object().unwrap().len(), 12);
    }

    #[test]
    fn embeds_in_training_file() {
        #[derive(Deserialize)]
        struct TrainFile {
            generation: GenerationConfig,
            #[allow(dead_code)]
            training: serde_json::Value,
        }
        let text = r#"{"generation": {"top_p": 2.0}, "training": {"lr": 0.001}}"#;
        let file: TrainFile = serde_json::from_str(text).unwrap();
        let err = file
            .generation
            .validate("train.json: generation")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "train.json: generation: top_p must be in (0, 1], got 2"
        );
    }

    #[test]
    fn error_names_file_field_and_value() {
        assert_eq!(
            err_text(r#"{"top_p": 1.5}"#),
            "model_config.json: top_p must be in (0, 1], got 1.5"
        );
        assert_eq!(
            err_text(r#"{"top_p": 0}"#),
            "model_config.json: top_p must be in (0, 1], got 0"
        );
        assert_eq!(
            err_text(r#"{"temperature": -0.5}"#),
            "model_config.json: temperature must be a finite number >= 0 (0 = greedy), got -0.5"
        );
        assert_eq!(
            err_text(r#"{"max_tokens": 0}"#),
            "model_config.json: max_tokens must be >= 1, got 0"
        );
        assert_eq!(
            err_text(r#"{"repetition_penalty": 0}"#),
            "model_config.json: repetition_penalty must be a finite number > 0 (1 = off), got 0"
        );
        assert_eq!(
            err_text(r#"{"frequency_penalty": 2.5}"#),
            "model_config.json: frequency_penalty must be in [-2, 2], got 2.5"
        );
        assert_eq!(
            err_text(r#"{"presence_penalty": -3}"#),
            "model_config.json: presence_penalty must be in [-2, 2], got -3"
        );
        assert_eq!(
            err_text(r#"{"context_length": 8}"#),
            "model_config.json: context_length must be >= 16, got 8"
        );
        assert_eq!(
            err_text(r#"{"context_length": 256}"#),
            "model_config.json: max_tokens must be less than context_length (256), got 512"
        );
        assert_eq!(
            err_text(r#"{"loop_guard": {"max_repeats": 1}}"#),
            "model_config.json: loop_guard.max_repeats must be >= 2 when loop_guard.ngram > 0, got 1"
        );
    }

    #[test]
    fn non_finite_values_rejected_by_validate() {
        let mut c = GenerationConfig {
            temperature: f32::NAN,
            ..GenerationConfig::default()
        };
        assert!(c.validate("x").is_err());
        c.temperature = f32::INFINITY;
        assert!(c.validate("x").is_err());
        c.temperature = 0.0;
        c.validate("x").unwrap();
        c.top_p = f32::NAN;
        assert!(c.validate("x").is_err());
        c.top_p = 1.0;
        c.repetition_penalty = f32::INFINITY;
        assert!(c.validate("x").is_err());
        c.repetition_penalty = 1.0;
        c.presence_penalty = f32::NAN;
        assert!(c.validate("x").is_err());
    }

    #[test]
    fn parse_errors_name_the_file() {
        let e = err_text(r#"{"tempreature": 0.5}"#);
        assert!(
            e.starts_with("model_config.json: invalid generation config:"),
            "{e}"
        );
        assert!(e.contains("tempreature"), "{e}");
        let e = err_text(r#"{"loop_guard": {"n": 3}}"#);
        assert!(e.contains("unknown field `n`"), "{e}");
        let e = err_text(r#"{"top_k": -1}"#);
        assert!(e.starts_with("model_config.json: "), "{e}");
        let e = err_text("not json");
        assert!(e.starts_with("model_config.json: "), "{e}");
    }
}
