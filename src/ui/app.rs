//! The page: header, the chat and the bottom-right button group. The engine runs in a worker
//! ([`WorkerClient`]); this component reads the catalog, asks the worker to load, turns the
//! worker's events into the status button, the conversation, the download progress and the
//! performance log, and sends the student's questions.

use gloo_net::http::Request as HttpRequest;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::button_group::ButtonGroup;
use super::chat::ChatView;
use super::info_panel::InfoPanel;
use super::settings::SettingsPanel;
use super::state::TutorState;
use super::status_button::status_view;
use super::worker_client::WorkerClient;
use crate::catalog::{Catalog, HubChoice};
use crate::conversation::Conversation;
use crate::model_info::LoadStatus;
use crate::perf_log::{PerfLog, StatusChange};
use crate::protocol::{Event, FileProgress, Request};
use crate::tools::ToolResult;

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
    // Status changes are recorded by the page; the worker's log replaces the rest.
    let status_changes = RwSignal::new(Vec::<StatusChange>::new());
    let progress = RwSignal::new(Vec::<FileProgress>::new());
    let client = StoredValue::new_local(None::<WorkerClient>);
    // Why the last reply ended (`end_of_turn`, `cancelled`, ...), shown as `data-stop`.
    let stop_reason = RwSignal::new(None::<String>);
    let hub_choice = RwSignal::new(None::<HubChoice>);

    Effect::new(move |_| {
        let view = status.with(status_view);
        status_changes.update(|changes| {
            changes.push(StatusChange {
                at_ms: js_sys::Date::now(),
                state: view.class.trim_start_matches("status-button-").to_string(),
                detail: view.tooltip,
            })
        });
    });
    let send = move |request: Request| {
        client.with_value(|c| match c {
            Some(c) => c.send(&request),
            None => Err("the engine worker is not running".to_string()),
        })
    };

    spawn_local(async move {
        let catalog = match fetch_catalog(state.hub.get_untracked()).await {
            Ok((catalog, choice)) => {
                hub_choice.set(Some(choice));
                catalog
            }
            Err(e) => return status.set(LoadStatus::Failed(e)),
        };
        let on_event = move |event: Event| match event {
            Event::Started => {
                if let Err(e) = send(Request::Load {
                    catalog: Box::new(catalog.clone()),
                }) {
                    status.set(LoadStatus::Failed(e));
                }
            }
            // Each loading event also asks for the log, so the info panel follows the load.
            Event::TierStarted { tier } => {
                status.set(LoadStatus::Loading {
                    detail: format!("Trying the {} model", tier.as_str()),
                    progress: None,
                });
                let _ = send(Request::Info);
            }
            Event::TierFailed { tier, reason } => {
                status.set(LoadStatus::Loading {
                    detail: format!("The {} model failed: {reason}", tier.as_str()),
                    progress: None,
                });
                let _ = send(Request::Info);
            }
            Event::Progress(p) => {
                status.set(progress_status(&p));
                progress.update(|files| match files.iter_mut().find(|f| f.file == p.file) {
                    Some(file) => *file = p,
                    None => files.push(p),
                });
                let _ = send(Request::Info);
            }
            Event::Ready {
                model_info,
                config: model_config,
            } => {
                state.model_ready(model_config);
                status.set(LoadStatus::Ready(model_info));
                let _ = send(Request::Info);
            }
            Event::LoadFailed { message } => {
                status.set(LoadStatus::Failed(message));
                let _ = send(Request::Info);
            }
            Event::Turn { action, tool } => state.conversation.update(|c| {
                c.annotate(action.subject, tool.as_ref().map(ToolResult::context_line));
            }),
            Event::Token { text } => state.conversation.update(|c| {
                c.append(&text);
            }),
            Event::Done { stats } => {
                stop_reason.set(
                    serde_json::to_value(stats.stop)
                        .ok()
                        .and_then(|r| r.as_str().map(str::to_string)),
                );
                state.conversation.update(|c| {
                    c.finish(stats);
                });
                let _ = send(Request::Info);
            }
            Event::Error { message } => {
                // The page sends one load, so an error while loading (the worker crashed,
                // ran out of memory) ends that load.
                if matches!(status.get_untracked(), LoadStatus::Loading { .. }) {
                    status.set(LoadStatus::Failed(message.clone()));
                }
                state.conversation.update(|c| {
                    c.fail(message);
                });
            }
            Event::Info { perf: log, .. } => perf.set(log),
            Event::CacheCleared { freed_bytes } => {
                let mb = freed_bytes as f64 / 1e6;
                perf.update(|p| {
                    p.warnings
                        .push(format!("cached models cleared ({mb:.1} MB)"))
                });
            }
        };
        match WorkerClient::spawn(on_event) {
            Ok(c) => client.set_value(Some(c)),
            Err(e) => status.set(LoadStatus::Failed(e)),
        }
    });

    let model_info = Signal::derive(move || match status.get() {
        LoadStatus::Ready(info) => Some(info),
        _ => None,
    });
    let ready = Signal::derive(move || matches!(status.get(), LoadStatus::Ready(_)));
    let generating = Signal::derive(move || state.conversation.with(Conversation::is_streaming));
    let perf_view = Signal::derive(move || {
        let mut log = perf.get();
        log.status_changes = status_changes.get();
        log
    });
    let on_send = Callback::new(move |question: String| {
        stop_reason.set(None);
        let messages = state.ask(question);
        let config = state.config.get_untracked();
        if let Err(e) = send(Request::Generate { messages, config }) {
            state.conversation.update(|c| {
                c.fail(e);
            });
        }
    });
    let on_stop = Callback::new(move |_| {
        let _ = send(Request::Stop);
    });
    let on_clear_cache = Callback::new(move |_| {
        let _ = send(Request::ClearCache);
    });

    view! {
        <div class="app">
            <header class="app-header">
                <h1>"Mimir"</h1>
                <p class="tagline">"A tutor that runs entirely in your browser"</p>
            </header>
            <main class="conversation" aria-label="Conversation" data-stop=move || stop_reason.get()>
                <ChatView
                    conversation=state.conversation
                    lesson_notes=state.lesson_notes
                    generating=generating
                    ready=ready
                    on_send=on_send
                    on_stop=on_stop
                />
            </main>
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
                            on_clear_cache=on_clear_cache
                        />
                    }
                }
                info=move || {
                    view! { <InfoPanel model_info=model_info perf=perf_view progress=progress hub=hub_choice /> }
                }
            />
        </div>
    }
}

/// The status while a file arrives: its name, and the fraction done when the size is known.
fn progress_status(p: &FileProgress) -> LoadStatus {
    let fraction = p
        .total
        .filter(|&t| t > 0)
        .map(|t| p.bytes as f32 / t as f32);
    let detail = if p.from_cache {
        format!("Reading {} from the cache", p.file)
    } else {
        let eta = p
            .eta_s
            .map(|s| format!(", {s:.0} s left"))
            .unwrap_or_default();
        format!(
            "Downloading {} ({:.1} MB/s{eta})",
            p.file,
            p.rate_bytes_per_s / 1e6
        )
    };
    LoadStatus::Loading {
        detail,
        progress: fraction,
    }
}

/// The catalog with its hub chosen: the page's `?hub=` first, then the hub saved in
/// settings, then the catalog's own (see [`Catalog::choose_hub`]).
async fn fetch_catalog(saved_hub: Option<String>) -> Result<(Catalog, HubChoice), String> {
    let response = HttpRequest::get(CATALOG_URL)
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
    let catalog = Catalog::from_json(&text, CATALOG_URL).map_err(|e| e.to_string())?;
    let hub = super::page_parameter("hub");
    Ok(catalog.choose_hub(hub.as_deref(), saved_hub.as_deref()))
}
