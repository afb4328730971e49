//! The settings panel: system prompt, generation parameters, hub address and the cache.
//! Every value is checked before it is taken; a rejected value leaves the setting as it was
//! and says why next to the field.

use leptos::prelude::*;

use crate::catalog::check_hub;
use crate::conversation::DEFAULT_SYSTEM_PROMPT;
use crate::engine::generation_config::GenerationConfig;

/// One numeric field of [`GenerationConfig`] the panel edits.
struct NumberField {
    id: &'static str,
    label: &'static str,
    hint: &'static str,
    step: &'static str,
    get: fn(&GenerationConfig) -> String,
    set: fn(&mut GenerationConfig, &str) -> Result<(), String>,
}

fn number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{:?} is not a valid number", text.trim()))
}

const FIELDS: &[NumberField] = &[
    NumberField {
        id: "setting-temperature",
        label: "Temperature",
        hint: "0 always picks the likeliest word; higher values vary more.",
        step: "0.05",
        get: |c| c.temperature.to_string(),
        set: |c, v| {
            c.temperature = number(v)?;
            Ok(())
        },
    },
    NumberField {
        id: "setting-max-tokens",
        label: "Maximum reply length (tokens)",
        hint: "Must be less than the model's context length.",
        step: "1",
        get: |c| c.max_tokens.to_string(),
        set: |c, v| {
            c.max_tokens = number(v)?;
            Ok(())
        },
    },
    NumberField {
        id: "setting-top-k",
        label: "Top k",
        hint: "Consider only the k likeliest tokens; 0 turns this off.",
        step: "1",
        get: |c| c.top_k.to_string(),
        set: |c, v| {
            c.top_k = number(v)?;
            Ok(())
        },
    },
    NumberField {
        id: "setting-top-p",
        label: "Top p",
        hint: "Consider the likeliest tokens up to this total probability (0 to 1).",
        step: "0.01",
        get: |c| c.top_p.to_string(),
        set: |c, v| {
            c.top_p = number(v)?;
            Ok(())
        },
    },
    NumberField {
        id: "setting-repetition-penalty",
        label: "Repetition penalty",
        hint: "1 is off; higher values discourage repeating words.",
        step: "0.05",
        get: |c| c.repetition_penalty.to_string(),
        set: |c, v| {
            c.repetition_penalty = number(v)?;
            Ok(())
        },
    },
    NumberField {
        id: "setting-frequency-penalty",
        label: "Frequency penalty",
        hint: "From -2 to 2; 0 is off.",
        step: "0.1",
        get: |c| c.frequency_penalty.to_string(),
        set: |c, v| {
            c.frequency_penalty = number(v)?;
            Ok(())
        },
    },
    NumberField {
        id: "setting-presence-penalty",
        label: "Presence penalty",
        hint: "From -2 to 2; 0 is off.",
        step: "0.1",
        get: |c| c.presence_penalty.to_string(),
        set: |c, v| {
            c.presence_penalty = number(v)?;
            Ok(())
        },
    },
];

/// `config` with the field set from `text`, if the result is a valid configuration.
fn edited(
    config: &GenerationConfig,
    field: &NumberField,
    text: &str,
) -> Result<GenerationConfig, String> {
    let mut candidate = config.clone();
    (field.set)(&mut candidate, text).map_err(|e| format!("{}: {e}", field.label))?;
    candidate.validate("settings").map_err(|e| e.to_string())?;
    Ok(candidate)
}

/// The settings panel's content.
#[component]
pub fn SettingsPanel(
    /// The system prompt.
    system_prompt: RwSignal<String>,
    /// The generation settings for the next reply.
    config: RwSignal<GenerationConfig>,
    /// The live model's own settings (its entry in `server_config.json`): shown beside each
    /// field, and what "Use the model's defaults" restores.
    #[prop(into)]
    defaults: Signal<GenerationConfig>,
    /// Hub address for the next load; `None` uses the catalog's.
    hub: RwSignal<Option<String>>,
    /// Asks for every cached model file to be deleted.
    on_clear_cache: Callback<()>,
) -> impl IntoView {
    let field_views = FIELDS
        .iter()
        .map(|field| {
            let error = RwSignal::new(None::<String>);
            let error_id = format!("{}-error", field.id);
            let on_change = move |ev| {
                let text = event_target_value(&ev);
                match config.with_untracked(|c| edited(c, field, &text)) {
                    Ok(new) => {
                        error.set(None);
                        config.set(new);
                    }
                    Err(e) => error.set(Some(e)),
                }
            };
            view! {
                <div class="field">
                    <label for=field.id>{field.label}</label>
                    <input
                        id=field.id
                        type="number"
                        inputmode="decimal"
                        step=field.step
                        prop:value=move || config.with(field.get)
                        aria-invalid=move || error.with(Option::is_some).to_string()
                        aria-describedby=error_id.clone()
                        on:change=on_change
                    />
                    <p class="field-hint">{field.hint}</p>
                    <p
                        class="field-default"
                        class:field-changed=move || {
                            config.with(field.get) != defaults.with(field.get)
                        }
                    >
                        "Model default: "
                        {move || defaults.with(field.get)}
                    </p>
                    <p id=error_id class="field-error" role="alert">
                        {move || error.get()}
                    </p>
                </div>
            }
        })
        .collect_view();

    let hub_error = RwSignal::new(None::<String>);
    let on_hub_change = move |ev| {
        let text = event_target_value(&ev).trim().to_string();
        if text.is_empty() {
            hub_error.set(None);
            hub.set(None);
            return;
        }
        match check_hub(&text) {
            Ok(()) => {
                hub_error.set(None);
                hub.set(Some(text.trim_end_matches('/').to_string()));
            }
            Err(e) => hub_error.set(Some(e.to_string())),
        }
    };

    view! {
        <div class="settings">
            <div class="field">
                <label for="setting-system-prompt">"System prompt"</label>
                <textarea
                    id="setting-system-prompt"
                    rows="6"
                    prop:value=move || system_prompt.get()
                    on:change=move |ev| system_prompt.set(event_target_value(&ev))
                ></textarea>
                <button
                    type="button"
                    class="button button-quiet"
                    on:click=move |_| system_prompt.set(DEFAULT_SYSTEM_PROMPT.to_string())
                >
                    "Restore Mimir's prompt"
                </button>
            </div>
            <fieldset class="settings-generation">
                <legend>"Generation"</legend>
                {field_views}
                <button
                    type="button"
                    class="button button-quiet"
                    on:click=move |_| config.set(defaults.get_untracked())
                >
                    "Use the model's defaults"
                </button>
            </fieldset>
            <div class="field">
                <label for="setting-hub">"Hub address"</label>
                <input
                    id="setting-hub"
                    type="url"
                    placeholder="https://huggingface.co"
                    prop:value=move || hub.get().unwrap_or_default()
                    aria-invalid=move || hub_error.with(Option::is_some).to_string()
                    aria-describedby="setting-hub-error"
                    on:change=on_hub_change
                />
                <p class="field-hint">
                    "Leave empty for the default. Used the next time the page loads."
                </p>
                <p id="setting-hub-error" class="field-error" role="alert">
                    {move || hub_error.get()}
                </p>
            </div>
            <div class="field">
                <button
                    type="button"
                    class="button button-danger"
                    on:click=move |_| on_clear_cache.run(())
                >
                    "Clear cached models"
                </button>
                <p class="field-hint">
                    "Deletes downloaded model files; they are fetched again on the next load."
                </p>
            </div>
        </div>
    }
}
