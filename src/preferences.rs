//! What the student chose in the settings panel and keeps across visits: the system prompt,
//! the sampling values they changed, a hub address and their lesson notes. Platform-neutral;
//! the page stores it in `localStorage` as JSON.

use serde::{Deserialize, Serialize};

use crate::catalog::check_hub;
use crate::conversation::DEFAULT_SYSTEM_PROMPT;
use crate::engine::generation_config::GenerationConfig;

/// The sampling values the settings panel edits. Only these are kept: the rest of a
/// [`GenerationConfig`] (context length, stop ids) belongs to the model that is live.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// See [`GenerationConfig::temperature`].
    pub temperature: f32,
    /// See [`GenerationConfig::max_tokens`].
    pub max_tokens: usize,
    /// See [`GenerationConfig::top_k`].
    pub top_k: usize,
    /// See [`GenerationConfig::top_p`].
    pub top_p: f32,
    /// See [`GenerationConfig::repetition_penalty`].
    pub repetition_penalty: f32,
    /// See [`GenerationConfig::frequency_penalty`].
    pub frequency_penalty: f32,
    /// See [`GenerationConfig::presence_penalty`].
    pub presence_penalty: f32,
}

impl Sampling {
    /// The sampling values of `config`.
    pub fn of(config: &GenerationConfig) -> Self {
        Self {
            temperature: config.temperature,
            max_tokens: config.max_tokens,
            top_k: config.top_k,
            top_p: config.top_p,
            repetition_penalty: config.repetition_penalty,
            frequency_penalty: config.frequency_penalty,
            presence_penalty: config.presence_penalty,
        }
    }

    /// `model` with these values in place of its own; `model` unchanged when the result
    /// would not validate (a `max_tokens` beyond a smaller model's context, say).
    pub fn apply_to(&self, model: &GenerationConfig) -> GenerationConfig {
        let merged = self.merged(model);
        match merged.validate("settings") {
            Ok(()) => merged,
            Err(_) => model.clone(),
        }
    }

    /// `model` with only the values the student changed from `base` (the settings they
    /// started from) in place of its own; `model` unchanged when that would not validate.
    pub fn rebase(&self, base: &Sampling, model: &GenerationConfig) -> GenerationConfig {
        let own = Sampling::of(model);
        fn pick<T: PartialEq + Copy>(mine: T, base: T, model: T) -> T {
            if mine == base {
                model
            } else {
                mine
            }
        }
        let changed = Sampling {
            temperature: pick(self.temperature, base.temperature, own.temperature),
            max_tokens: pick(self.max_tokens, base.max_tokens, own.max_tokens),
            top_k: pick(self.top_k, base.top_k, own.top_k),
            top_p: pick(self.top_p, base.top_p, own.top_p),
            repetition_penalty: pick(
                self.repetition_penalty,
                base.repetition_penalty,
                own.repetition_penalty,
            ),
            frequency_penalty: pick(
                self.frequency_penalty,
                base.frequency_penalty,
                own.frequency_penalty,
            ),
            presence_penalty: pick(
                self.presence_penalty,
                base.presence_penalty,
                own.presence_penalty,
            ),
        };
        changed.apply_to(model)
    }

    /// `model` with these values in place of its own, not validated.
    fn merged(&self, model: &GenerationConfig) -> GenerationConfig {
        GenerationConfig {
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            ..model.clone()
        }
    }
}

/// Everything the settings keep across visits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preferences {
    /// The system prompt (Mimir's by default).
    pub system_prompt: String,
    /// Sampling values that differ from the model's own, when the student changed any.
    pub sampling: Option<Sampling>,
    /// A hub address chosen in the settings (an http(s) URL), used on the next load.
    pub hub: Option<String>,
    /// The lesson notes sent as context with each question.
    pub lesson_notes: String,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            system_prompt: DEFAULT_SYSTEM_PROMPT.to_string(),
            sampling: None,
            hub: None,
            lesson_notes: String::new(),
        }
    }
}

impl Preferences {
    /// The JSON text kept in storage.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("preferences always serialise")
    }

    /// Reads stored preferences. Unreadable text gives the defaults and the parser's message;
    /// a stored hub that is not http(s) or sampling values that do not validate are dropped
    /// (with a message) and the rest kept.
    pub fn restore(stored: Option<&str>) -> (Self, Vec<String>) {
        let Some(text) = stored else {
            return (Self::default(), Vec::new());
        };
        let mut prefs: Self = match serde_json::from_str(text) {
            Ok(prefs) => prefs,
            Err(e) => {
                return (
                    Self::default(),
                    vec![format!(
                        "stored settings ({} bytes) are unreadable, using the defaults: {e}",
                        text.len()
                    )],
                )
            }
        };
        let mut problems = Vec::new();
        if let Some(hub) = prefs.hub.take() {
            match check_hub(&hub) {
                Ok(()) => prefs.hub = Some(hub),
                Err(e) => problems.push(format!("stored settings: {e}; dropped")),
            }
        }
        if let Some(sampling) = prefs.sampling {
            let merged = sampling.merged(&GenerationConfig::default());
            if let Err(e) = merged.validate("stored settings") {
                problems.push(format!("{e}; dropped"));
                prefs.sampling = None;
            }
        }
        (prefs, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_fields_take_defaults() {
        let prefs = Preferences {
            system_prompt: "Be brief.".into(),
            sampling: Some(Sampling {
                temperature: 0.2,
                ..Sampling::of(&GenerationConfig::default())
            }),
            hub: Some("http://127.0.0.1:8081".into()),
            lesson_notes: "Fractions".into(),
        };
        assert_eq!(
            Preferences::restore(Some(&prefs.to_json())),
            (prefs, vec![])
        );
        let (partial, problems) = Preferences::restore(Some(r#"{"lesson_notes":"x"}"#));
        assert!(problems.is_empty());
        assert_eq!(partial.system_prompt, DEFAULT_SYSTEM_PROMPT);
        assert_eq!(partial.lesson_notes, "x");
    }

    #[test]
    fn bad_stored_values_are_dropped_with_a_reason() {
        let (prefs, problems) = Preferences::restore(Some("{oops"));
        assert_eq!(prefs, Preferences::default());
        assert!(problems[0].starts_with("stored settings (5 bytes) are unreadable"));

        let text = r#"{"hub":"javascript:alert(1)","system_prompt":"Hi"}"#;
        let (prefs, problems) = Preferences::restore(Some(text));
        assert_eq!(prefs.hub, None);
        assert_eq!(prefs.system_prompt, "Hi");
        assert!(problems[0].contains("javascript:alert(1)"), "{problems:?}");

        let mut sampling = Sampling::of(&GenerationConfig::default());
        sampling.temperature = -1.0;
        let stored = Preferences {
            sampling: Some(sampling),
            ..Preferences::default()
        };
        let (prefs, problems) = Preferences::restore(Some(&stored.to_json()));
        assert_eq!(prefs.sampling, None);
        assert!(problems[0].contains("temperature"), "{problems:?}");
    }

    #[test]
    fn sampling_overrides_only_sampling_fields() {
        let model = GenerationConfig::phi3();
        let mut sampling = Sampling::of(&model);
        sampling.temperature = 0.0;
        sampling.top_k = 5;
        let merged = sampling.apply_to(&model);
        assert_eq!(merged.temperature, 0.0);
        assert_eq!(merged.top_k, 5);
        assert_eq!(merged.stop_ids, model.stop_ids);
        // Too many tokens for a small context: the model's own values win.
        let small = GenerationConfig {
            context_length: 256,
            max_tokens: 128,
            ..GenerationConfig::default()
        };
        sampling.max_tokens = 1000;
        assert_eq!(sampling.apply_to(&small), small);
    }

    #[test]
    fn rebase_keeps_only_what_the_student_changed() {
        let base = GenerationConfig::default();
        let mut mine = Sampling::of(&base);
        mine.temperature = 0.3;
        let model = GenerationConfig {
            max_tokens: 384,
            top_k: 20,
            stop_ids: vec![0, 2],
            ..GenerationConfig::default()
        };
        let rebased = mine.rebase(&Sampling::of(&base), &model);
        assert_eq!(rebased.temperature, 0.3);
        assert_eq!(rebased.max_tokens, 384);
        assert_eq!(rebased.top_k, 20);
        assert_eq!(rebased.stop_ids, [0, 2]);
    }
}
