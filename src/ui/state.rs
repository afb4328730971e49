//! The tutor's page state as signals, restored from and saved to `localStorage`: the
//! conversation, the lesson notes, the system prompt, the generation settings and the hub.

use leptos::prelude::*;

use super::storage::{self, CONVERSATION_KEY, PREFERENCES_KEY};
use crate::conversation::Conversation;
use crate::engine::chat::ChatMessage;
use crate::engine::generation_config::GenerationConfig;
use crate::preferences::{Preferences, Sampling};

/// Signals the chat, the settings panel and the worker wiring share.
#[derive(Clone, Copy)]
pub struct TutorState {
    /// The conversation shown in the chat.
    pub conversation: RwSignal<Conversation>,
    /// Lesson notes sent as context.
    pub lesson_notes: RwSignal<String>,
    /// The system prompt.
    pub system_prompt: RwSignal<String>,
    /// The generation settings used for the next reply.
    pub config: RwSignal<GenerationConfig>,
    /// The live model's own settings (`model_config.json`), once a model is ready.
    pub model_config: RwSignal<Option<GenerationConfig>>,
    /// A hub address chosen in the settings, for the next load.
    pub hub: RwSignal<Option<String>>,
    /// Problems with stored data or with saving, for the info panel.
    pub storage_problems: RwSignal<Vec<String>>,
}

impl TutorState {
    /// Restores what `localStorage` holds (unreadable data gives defaults and a problem
    /// message) and saves every later change.
    pub fn restore() -> Self {
        let (conversation, conversation_error) =
            Conversation::restore(storage::load(CONVERSATION_KEY).as_deref());
        let (prefs, mut problems) = Preferences::restore(storage::load(PREFERENCES_KEY).as_deref());
        problems.extend(conversation_error.map(|e| e.to_string()));
        let config = match prefs.sampling {
            Some(sampling) => sampling.apply_to(&GenerationConfig::default()),
            None => GenerationConfig::default(),
        };
        let state = Self {
            conversation: RwSignal::new(conversation),
            lesson_notes: RwSignal::new(prefs.lesson_notes),
            system_prompt: RwSignal::new(prefs.system_prompt),
            config: RwSignal::new(config),
            model_config: RwSignal::new(None),
            hub: RwSignal::new(prefs.hub),
            storage_problems: RwSignal::new(problems),
        };
        state.save_changes(prefs.sampling);
        state
    }

    fn save_changes(self, stored_sampling: Option<Sampling>) {
        let report = move |result: Result<(), String>| {
            if let Err(e) = result {
                self.storage_problems.update(|p| p.push(e));
            }
        };
        // Saving on every token would rewrite the whole conversation many times a second.
        Effect::new(move |_| {
            let json = self
                .conversation
                .with(|c| (!c.is_streaming()).then(|| c.to_json()));
            if let Some(json) = json {
                report(storage::save(CONVERSATION_KEY, &json));
            }
        });
        Effect::new(move |_| {
            let sampling = Sampling::of(&self.config.get());
            // Keep only what differs from the live model's own values; before a model is
            // ready, keep what was stored.
            let sampling = match self.model_config.get() {
                Some(model) => (Sampling::of(&model) != sampling).then_some(sampling),
                None => stored_sampling.map(|_| sampling),
            };
            let prefs = Preferences {
                system_prompt: self.system_prompt.get(),
                sampling,
                hub: self.hub.get(),
                lesson_notes: self.lesson_notes.get(),
            };
            report(storage::save(PREFERENCES_KEY, &prefs.to_json()));
        });
    }

    /// A model is live with its own settings: they replace the defaults, with the values the
    /// student changed (from the previous model's, or the built-in defaults) kept on top
    /// when they fit the new model.
    pub fn model_ready(&self, model: GenerationConfig) {
        let current = Sampling::of(&self.config.get_untracked());
        let base = self.model_config.get_untracked().unwrap_or_default();
        let config = current.rebase(&Sampling::of(&base), &model);
        self.model_config.set(Some(model));
        self.config.set(config);
    }

    /// Adds `question` to the conversation, opens the streaming reply and returns the
    /// messages for [`crate::protocol::Request::Generate`].
    pub fn ask(&self, question: String) -> Vec<ChatMessage> {
        let system = self.system_prompt.get_untracked();
        let notes = self.lesson_notes.get_untracked();
        let mut messages = Vec::new();
        self.conversation
            .update(|c| messages = c.ask(question, &system, Some(notes.as_str())));
        messages
    }
}
