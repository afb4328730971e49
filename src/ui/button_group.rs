//! The fixed group in the bottom-right corner: the status button and the toggles of the
//! settings and model info panels. A panel is a non-modal dialog: opening it moves focus
//! into it, Escape or its Close button closes it and gives focus back to its toggle.

use leptos::ev::KeyboardEvent;
use leptos::html::{Button, Section};
use leptos::prelude::*;

use super::status_button::StatusButton;
use crate::model_info::LoadStatus;

/// Which panel is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panel {
    /// The settings panel.
    Settings,
    /// The model info panel.
    Info,
}

impl Panel {
    fn id(self) -> &'static str {
        match self {
            Panel::Settings => "settings-panel",
            Panel::Info => "info-panel",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Panel::Settings => "Settings",
            Panel::Info => "Model info",
        }
    }
}

/// The button group with its two panels; the panels' contents come from the caller.
#[component]
pub fn ButtonGroup(
    /// What the status button shows.
    #[prop(into)]
    status: Signal<LoadStatus>,
    /// Content of the settings panel (drawn once, kept while closed).
    #[prop(into)]
    settings: ViewFn,
    /// Content of the model info panel (drawn once, kept while closed).
    #[prop(into)]
    info: ViewFn,
) -> impl IntoView {
    let open = RwSignal::new(None::<Panel>);
    let settings_toggle = NodeRef::<Button>::new();
    let info_toggle = NodeRef::<Button>::new();
    let toggle_of = move |panel| match panel {
        Panel::Settings => settings_toggle,
        Panel::Info => info_toggle,
    };
    let close = move || {
        if let Some(panel) = open.get_untracked() {
            open.set(None);
            if let Some(button) = toggle_of(panel).get_untracked() {
                let _ = button.focus();
            }
        }
    };
    let on_keydown = move |ev: KeyboardEvent| {
        if ev.key() == "Escape" && open.get_untracked().is_some() {
            ev.prevent_default();
            close();
        }
    };
    let toggle = move |panel: Panel| {
        move |_| open.update(|o| *o = if *o == Some(panel) { None } else { Some(panel) })
    };
    let panel_view = move |panel: Panel, content: ViewFn| {
        let node = NodeRef::<Section>::new();
        Effect::new(move |_| {
            if open.get() == Some(panel) {
                if let Some(el) = node.get() {
                    let _ = el.focus();
                }
            }
        });
        let title_id = format!("{}-title", panel.id());
        let labelled_by = title_id.clone();
        view! {
            <section
                id=panel.id()
                class="panel"
                role="dialog"
                aria-labelledby=labelled_by
                tabindex="-1"
                node_ref=node
                hidden=move || open.get() != Some(panel)
            >
                <header class="panel-header">
                    <h2 id=title_id class="panel-title">{panel.title()}</h2>
                    <button
                        type="button"
                        class="button button-quiet panel-close"
                        aria-label=format!("Close {}", panel.title().to_lowercase())
                        on:click=move |_| close()
                    >
                        "Close"
                    </button>
                </header>
                <div class="panel-body">{content.run()}</div>
            </section>
        }
    };

    view! {
        <div class="button-group-area" on:keydown=on_keydown>
            {panel_view(Panel::Settings, settings)}
            {panel_view(Panel::Info, info)}
            <div class="button-group" role="group" aria-label="Model and settings">
                <button
                    type="button"
                    class="button group-toggle"
                    node_ref=settings_toggle
                    aria-haspopup="dialog"
                    aria-controls=Panel::Settings.id()
                    aria-expanded=move || (open.get() == Some(Panel::Settings)).to_string()
                    on:click=toggle(Panel::Settings)
                >
                    "Settings"
                </button>
                <button
                    type="button"
                    class="button group-toggle"
                    node_ref=info_toggle
                    aria-haspopup="dialog"
                    aria-controls=Panel::Info.id()
                    aria-expanded=move || (open.get() == Some(Panel::Info)).to_string()
                    on:click=toggle(Panel::Info)
                >
                    "Model info"
                </button>
                <StatusButton status=status />
            </div>
        </div>
    }
}
