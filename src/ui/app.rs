//! The page: header, the chat, and the bottom-right button group.

use gloo_net::http::Request;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::button_group::ButtonGroup;
use super::chat::ChatView;
use super::info_panel::InfoPanel;
use super::settings::SettingsPanel;
use super::state::TutorState;
use crate::catalog::Catalog;
use crate::model_info::LoadStatus;
use crate::perf_log::PerfLog;
use crate::protocol::FileProgress;

/// Where the catalog is served from, relative to the page.
const CATALOG_URL: &str = "public/catalog.json";

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let state = TutorState::restore();
    let status = RwSignal::new(LoadStatus::Loading {
        detail: "Reading the model catalog".to_string(),
        progress: None,
    });
    let perf = RwSignal::new(PerfLog::default());
    let progress = RwSignal::new(Vec::<FileProgress>::new());
    let model_info = Signal::derive(move || match status.get() {
        LoadStatus::Ready(info) => Some(info),
        _ => None,
    });
    spawn_local(async move {
        status.set(match fetch_catalog().await {
            Ok(catalog) => LoadStatus::Failed(format!(
                "Catalog read ({} hub tiers and {}), but this build has no inference engine yet",
                catalog.tiers.len(),
                catalog.compact.name
            )),
            Err(e) => LoadStatus::Failed(e),
        });
    });
    let ready = Signal::derive(move || matches!(status.get(), LoadStatus::Ready(_)));
    let on_send = Callback::new(move |question: String| {
        state.ask(question);
        let reason = match status.get_untracked() {
            LoadStatus::Failed(e) => e,
            _ => "no model is live".to_string(),
        };
        state.conversation.update(|c| {
            c.fail(reason);
        });
    });

    view! {
        <div class="app">
            <header class="app-header">
                <h1>"Mimir"</h1>
                <p class="tagline">"A tutor that runs entirely in your browser"</p>
            </header>
            <ChatView
                conversation=state.conversation
                lesson_notes=state.lesson_notes
                generating=Signal::derive(move || state.conversation.with(|c| c.is_streaming()))
                ready=ready
                on_send=on_send
                on_stop=Callback::new(|_| ())
            />
            <ButtonGroup
                status=status
                settings=move || {
                    view! {
                        <SettingsPanel
                            system_prompt=state.system_prompt
                            config=state.config
                            defaults=Signal::derive(move || {
                                state.model_config.get().unwrap_or_default()
                            })
                            hub=state.hub
                            on_clear_cache=Callback::new(|_| ())
                        />
                    }
                }
                info=move || view! { <InfoPanel model_info=model_info perf=perf progress=progress /> }
            />
        </div>
    }
}

async fn fetch_catalog() -> Result<Catalog, String> {
    let response = Request::get(CATALOG_URL)
        .send()
        .await
        .map_err(|e| format!("{CATALOG_URL}: {e}"))?;
    if !response.ok() {
        return Err(format!("{CATALOG_URL}: HTTP {}", response.status()));
    }
    let text = response
        .text()
        .await
        .map_err(|e| format!("{CATALOG_URL}: {e}"))?;
    Catalog::from_json(&text, CATALOG_URL).map_err(|e| e.to_string())
}
