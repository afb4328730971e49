//! The status button in the bottom-right group: which model is live, as a colour and a
//! CSS tooltip. It is announced to screen readers but does nothing when clicked.

use leptos::prelude::*;

use crate::model_info::{LoadStatus, ModelType};

/// Longest error text the tooltip shows before cutting it with an ellipsis.
pub const TOOLTIP_ERROR_CHARS: usize = 50;

/// What the button draws for one [`LoadStatus`].
#[derive(Debug, Clone, PartialEq)]
pub struct StatusView {
    /// CSS classes; the second one selects the colour.
    pub class: &'static str,
    /// The short visible text.
    pub label: String,
    /// The tooltip text (the `data-tooltip` attribute).
    pub tooltip: String,
}

impl StatusView {
    /// The accessible name: the label followed by the tooltip, so screen readers hear both.
    pub fn accessible_name(&self) -> String {
        format!("Model status: {}. {}", self.label, self.tooltip)
    }
}

/// Maps a load status to the button's class, label and tooltip.
pub fn status_view(status: &LoadStatus) -> StatusView {
    match status {
        LoadStatus::Loading { detail, progress } => StatusView {
            class: "status-button status-button-loading",
            label: match progress {
                Some(p) => format!("Loading {:.0}%", (p.clamp(0.0, 1.0) * 100.0).floor()),
                None => "Loading".to_string(),
            },
            tooltip: detail.clone(),
        },
        LoadStatus::Ready(info) if info.model_type.is_tutor() && !info.using_fallback => {
            let (label, tooltip) = match info.model_type {
                ModelType::Adapter => (
                    "Tutor adapter",
                    format!(
                        "adapter: {} on {}",
                        info.fine_tuned_path.as_deref().unwrap_or("unknown"),
                        info.base_model_path
                    ),
                ),
                _ => (
                    "Tutor model",
                    format!(
                        "fine-tuned: {}",
                        info.fine_tuned_path
                            .as_deref()
                            .unwrap_or(&info.base_model_path)
                    ),
                ),
            };
            StatusView {
                class: "status-button status-button-success",
                label: label.to_string(),
                tooltip,
            }
        }
        LoadStatus::Ready(info) => StatusView {
            class: "status-button status-button-warning",
            label: match info.model_type {
                ModelType::Compact => "Compact model".to_string(),
                _ => "Base model".to_string(),
            },
            tooltip: match &info.fine_tuned_path {
                Some(adapter) if info.is_adapter => format!(
                    "{}: {} with adapter {} ({})",
                    info.model_type.as_str(),
                    info.base_model_path,
                    adapter,
                    info.fallback_reason.as_deref().unwrap_or("fallback")
                ),
                _ => format!(
                    "{}: {} ({})",
                    info.model_type.as_str(),
                    info.base_model_path,
                    info.fallback_reason.as_deref().unwrap_or("fallback")
                ),
            },
        },
        LoadStatus::Failed(error) => StatusView {
            class: "status-button status-button-error",
            label: "Error".to_string(),
            tooltip: cut_chars(error, TOOLTIP_ERROR_CHARS),
        },
    }
}

/// Cuts `text` to `max` characters (not bytes), adding an ellipsis when it was longer.
pub fn cut_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The status button. Focusable so keyboard users can read the tooltip, `aria-disabled`
/// because clicking it does nothing, and a polite live region so changes are announced.
#[component]
pub fn StatusButton(#[prop(into)] status: Signal<LoadStatus>) -> impl IntoView {
    let view = Memo::new(move |_| status.with(status_view));
    view! {
        <button
            type="button"
            class=move || view.with(|v| v.class)
            role="status"
            aria-live="polite"
            aria-disabled="true"
            aria-label=move || view.with(StatusView::accessible_name)
            data-tooltip=move || view.with(|v| v.tooltip.clone())
        >
            {move || view.with(|v| v.label.clone())}
        </button>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_info::ModelInfo;
    use wasm_bindgen_test::{wasm_bindgen_test as test, wasm_bindgen_test_configure};

    // The library's browser-only unit tests (this module is wasm32-only) run in Chromium.
    wasm_bindgen_test_configure!(run_in_browser);

    fn ready(model_type: ModelType, using_fallback: bool) -> LoadStatus {
        LoadStatus::Ready(ModelInfo {
            status: "ready".into(),
            model_type,
            is_adapter: model_type == ModelType::Adapter,
            fine_tuned_path: Some("jdesiree/Mimir-Phi-3.5/adapter_model.safetensors".into()),
            base_model_path: "microsoft/Phi-3-mini-4k-instruct-gguf/Phi-3-mini-4k-instruct-q4.gguf"
                .into(),
            using_fallback,
            fallback_reason: using_fallback.then(|| "adapter: bad shape".to_string()),
            tokenizer_source: "microsoft/Phi-3-mini-4k-instruct/tokenizer.json".into(),
            context_length: 2048,
        })
    }

    #[test]
    fn tutor_tiers_are_green_and_fallbacks_orange() {
        assert!(status_view(&ready(ModelType::FineTuned, false))
            .class
            .ends_with("status-button-success"));
        let adapter = status_view(&ready(ModelType::Adapter, false));
        assert!(adapter.class.ends_with("status-button-success"));
        assert!(adapter
            .tooltip
            .starts_with("adapter: jdesiree/Mimir-Phi-3.5/"));
        let base = status_view(&ready(ModelType::Base, true));
        assert!(base.class.ends_with("status-button-warning"));
        assert_eq!(
            base.tooltip,
            "base: microsoft/Phi-3-mini-4k-instruct-gguf/Phi-3-mini-4k-instruct-q4.gguf (adapter: bad shape)"
        );
        assert_eq!(
            status_view(&ready(ModelType::Compact, true)).label,
            "Compact model"
        );
        let LoadStatus::Ready(mut tuned) = ready(ModelType::Compact, true) else {
            unreachable!()
        };
        tuned.is_adapter = true;
        tuned.base_model_path = "models/SmolLM2-135M-Instruct.Q8_0.gguf".into();
        tuned.fine_tuned_path = Some("public/adapters/smollm2/adapter_model.safetensors".into());
        let compact = status_view(&LoadStatus::Ready(tuned));
        assert!(
            compact.class.ends_with("status-button-warning"),
            "a fallback"
        );
        assert_eq!(
            compact.tooltip,
            "compact: models/SmolLM2-135M-Instruct.Q8_0.gguf with adapter \
             public/adapters/smollm2/adapter_model.safetensors (adapter: bad shape)"
        );
    }

    #[test]
    fn errors_are_cut_to_fifty_characters() {
        let long = "é".repeat(120);
        let v = status_view(&LoadStatus::Failed(long));
        assert!(v.class.ends_with("status-button-error"));
        assert_eq!(v.tooltip.chars().count(), TOOLTIP_ERROR_CHARS + 1);
        assert!(v.tooltip.ends_with('…'));
        let short = status_view(&LoadStatus::Failed("404".into()));
        assert_eq!(short.tooltip, "404");
        assert_eq!(cut_chars(&"x".repeat(50), 50), "x".repeat(50));
    }

    #[test]
    fn loading_shows_progress() {
        let v = status_view(&LoadStatus::Loading {
            detail: "Downloading model.gguf".into(),
            progress: Some(0.426),
        });
        assert_eq!(v.label, "Loading 42%");
        assert_eq!(
            v.accessible_name(),
            "Model status: Loading 42%. Downloading model.gguf"
        );
    }
}
