//! The page: header, conversation area and the bottom-right button group. The engine runs in
//! a worker ([`WorkerClient`]); this component reads the catalog, asks the worker to load,
//! drives the status button from the worker's events, and offers a minimal ask box whose
//! answer streams in token by token.

use gloo_net::http::Request as HttpRequest;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::status_button::StatusButton;
use super::worker_client::WorkerClient;
use crate::catalog::Catalog;
use crate::engine::chat::ChatMessage;
use crate::engine::generation_config::GenerationConfig;
use crate::model_info::LoadStatus;
use crate::protocol::{Event, FileProgress, Request};

/// Where the catalog is served from, relative to the page.
const CATALOG_URL: &str = "public/catalog.json";

/// The system prompt of every reply.
const SYSTEM_PROMPT: &str = "You are Mimir, a tutoring assistant. Answer clearly and correctly, \
                             and help the student understand rather than only giving answers.";

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let status = RwSignal::new(LoadStatus::Loading {
        detail: "Reading the model catalog".to_string(),
        progress: None,
    });
    let answer = RwSignal::new(String::new());
    let generating = RwSignal::new(false);
    let config = RwSignal::new(None::<GenerationConfig>);
    let client = StoredValue::new_local(None::<WorkerClient>);
    let question = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    // Why the last reply ended (`end_of_turn`, `cancelled`, ...), shown as `data-stop`.
    let stop_reason = RwSignal::new(None::<String>);

    spawn_local(async move {
        let catalog = match fetch_catalog().await {
            Ok(catalog) => catalog,
            Err(e) => return status.set(LoadStatus::Failed(e)),
        };
        let on_event = move |event: Event| match event {
            Event::Started => client.with_value(|c| {
                if let Some(c) = c {
                    let _ = c.send(&Request::Load {
                        catalog: catalog.clone(),
                    });
                }
            }),
            Event::TierStarted { tier } => status.set(LoadStatus::Loading {
                detail: format!("Trying the {} model", tier.as_str()),
                progress: None,
            }),
            Event::TierFailed { tier, reason } => status.set(LoadStatus::Loading {
                detail: format!("The {} model failed: {reason}", tier.as_str()),
                progress: None,
            }),
            Event::Progress(p) => status.set(progress_status(&p)),
            Event::Ready {
                model_info,
                config: model_config,
            } => {
                config.set(Some(model_config));
                status.set(LoadStatus::Ready(model_info));
            }
            Event::LoadFailed { message } => status.set(LoadStatus::Failed(message)),
            Event::Token { text } => answer.update(|a| a.push_str(&text)),
            Event::Done { stats } => {
                let reason = serde_json::to_value(stats.stop).ok();
                stop_reason.set(reason.and_then(|r| r.as_str().map(str::to_string)));
                generating.set(false);
            }
            Event::Error { message } => {
                // The page sends one load, so an error while loading (the worker crashed,
                // ran out of memory) ends that load.
                if matches!(status.get_untracked(), LoadStatus::Loading { .. }) {
                    status.set(LoadStatus::Failed(message.clone()));
                }
                generating.set(false);
                error.set(Some(message));
            }
            Event::Info { .. } | Event::CacheCleared { .. } => {}
        };
        match WorkerClient::spawn(on_event) {
            Ok(c) => client.set_value(Some(c)),
            Err(e) => status.set(LoadStatus::Failed(e)),
        }
    });

    let ask = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let text = question.get_untracked();
        let Some(model_config) = config.get_untracked() else {
            return;
        };
        if text.trim().is_empty() || generating.get_untracked() {
            return;
        }
        answer.set(String::new());
        error.set(None);
        stop_reason.set(None);
        generating.set(true);
        client.with_value(|c| {
            if let Some(c) = c {
                let _ = c.send(&Request::Generate {
                    messages: vec![ChatMessage::system(SYSTEM_PROMPT), ChatMessage::user(text)],
                    config: model_config,
                });
            }
        });
    };
    let stop = move |_| {
        client.with_value(|c| {
            if let Some(c) = c {
                let _ = c.send(&Request::Stop);
            }
        })
    };

    view! {
        <div class="app">
            <header class="app-header">
                <h1>"Mimir"</h1>
                <p class="tagline">"A tutor that runs entirely in your browser"</p>
            </header>
            <main class="conversation" aria-label="Conversation" data-stop=move || stop_reason.get()>
                <p class="message message-assistant">
                    "Hello! I am Mimir, a tutoring assistant. Is there a subject you would like to explore, or a test you'd like to prepare for?"
                </p>
                <Show when=move || !answer.get().is_empty()>
                    <p class="message message-assistant answer" aria-live="polite">{move || answer.get()}</p>
                </Show>
                {move || error.get().map(|e| view! { <p class="ask-error" role="alert">{e}</p> })}
            </main>
            <form class="ask" on:submit=ask>
                <input
                    class="ask-input"
                    type="text"
                    aria-label="Your question"
                    placeholder="Ask Mimir a question"
                    prop:value=move || question.get()
                    on:input=move |ev| question.set(event_target_value(&ev))
                />
                <button class="ask-send" type="submit" disabled=move || config.get().is_none() || generating.get()>"Ask"</button>
                <button class="ask-stop" type="button" on:click=stop disabled=move || !generating.get()>"Stop"</button>
            </form>
            <div class="button-group" aria-label="Model and settings">
                <StatusButton status=status />
            </div>
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

/// The catalog, with the page's `?hub=` applied when given.
async fn fetch_catalog() -> Result<Catalog, String> {
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
    match hub_parameter() {
        Some(hub) => catalog.with_hub(&hub).map_err(|e| e.to_string()),
        None => Ok(catalog),
    }
}

/// The page URL's `hub` parameter.
fn hub_parameter() -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get("hub")
}
