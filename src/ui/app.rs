//! The page: header, conversation area and the bottom-right button group.

use gloo_net::http::Request;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::status_button::StatusButton;
use crate::catalog::Catalog;
use crate::model_info::LoadStatus;

/// Where the catalog is served from, relative to the page.
const CATALOG_URL: &str = "public/catalog.json";

/// The whole app.
#[component]
pub fn App() -> impl IntoView {
    let status = RwSignal::new(LoadStatus::Loading {
        detail: "Reading the model catalog".to_string(),
        progress: None,
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

    view! {
        <div class="app">
            <header class="app-header">
                <h1>"Mimir"</h1>
                <p class="tagline">"A tutor that runs entirely in your browser"</p>
            </header>
            <main class="conversation" aria-label="Conversation">
                <p class="message message-assistant">
                    "Hello! I am Mimir, a tutoring assistant. Is there a subject you would like to explore, or a test you'd like to prepare for?"
                </p>
            </main>
            <div class="button-group" aria-label="Model and settings">
                <StatusButton status=status />
            </div>
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
