//! The model info panel: what is live (`model_info`), each tier attempt with its time and
//! error, memory, the fallback count, download progress while loading, and the performance
//! log as a JSON download.

use leptos::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

use crate::catalog::HubChoice;
use crate::model_info::ModelInfo;
use crate::perf_log::{PerfLog, StageTime, TierAttempt};
use crate::protocol::FileProgress;

/// File name of the downloaded performance log.
pub const PERF_LOG_FILE: &str = "mimir-performance-log.json";

/// `bytes` as a short human-readable size.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Offers `json` as a file download, through a Blob URL (no server round trip).
pub fn download_json(file_name: &str, json: &str) -> Result<(), String> {
    let js = |e: JsValue| format!("download of {file_name} failed: {e:?}");
    let parts = js_sys::Array::of1(&JsValue::from_str(json));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/json");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).map_err(js)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(js)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| format!("download of {file_name} failed: no document"))?;
    let link: web_sys::HtmlAnchorElement =
        document.create_element("a").map_err(js)?.unchecked_into();
    link.set_href(&url);
    link.set_download(file_name);
    link.click();
    // Revoking at once can cancel the download in some browsers; give it a moment.
    let revoke = wasm_bindgen::closure::Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    web_sys::window()
        .ok_or_else(|| format!("download of {file_name} failed: no window"))?
        .set_timeout_with_callback_and_timeout_and_arguments_0(revoke.unchecked_ref(), 10_000)
        .map_err(js)?;
    Ok(())
}

/// The model info panel's content.
#[component]
pub fn InfoPanel(
    /// What is live, once a model is ready.
    #[prop(into)]
    model_info: Signal<Option<ModelInfo>>,
    /// Everything measured so far.
    #[prop(into)]
    perf: Signal<PerfLog>,
    /// Files being downloaded or read from the cache (empty once loaded).
    #[prop(into)]
    progress: Signal<Vec<FileProgress>>,
    /// The hub in use and where its address came from, once the catalog is read.
    #[prop(optional, into)]
    hub: Signal<Option<HubChoice>>,
) -> impl IntoView {
    let download_error = RwSignal::new(None::<String>);
    let download = move |_| {
        let json = perf.with_untracked(PerfLog::to_pretty_json);
        download_error.set(download_json(PERF_LOG_FILE, &json).err());
    };
    view! {
        <div class="info">
            <h3 class="panel-subtitle">"Live model"</h3>
            {move || match model_info.get() {
                Some(info) => model_info_view(info).into_any(),
                None => view! { <p class="field-hint">"No model is live yet."</p> }.into_any(),
            }}
            <Show when=move || progress.with(|p| !p.is_empty())>
                <h3 class="panel-subtitle">"Downloads"</h3>
                <ul class="progress-list">
                    {move || progress.get().into_iter().map(progress_view).collect_view()}
                </ul>
            </Show>
            <h3 class="panel-subtitle">"Hub"</h3>
            {move || hub.get().map(hub_view)}
            <h3 class="panel-subtitle">"Loading attempts"</h3>
            {move || perf.with(attempts_view)}
            <h3 class="panel-subtitle">"Memory"</h3>
            {move || perf.with(memory_view)}
            <p class="info-fallbacks">
                "Fallbacks used (all visits): "
                {move || perf.with(|p| p.fallback_activations)}
            </p>
            <Show when=move || perf.with(|p| !p.kernels.is_empty())>
                <p class="info-kernels">
                    "Engine kernels: " {move || perf.with(|p| p.kernels.clone())}
                    {move || perf.with(|p| p.thread_work.map(|w| format!(" ({w})")))}
                </p>
            </Show>
            <button type="button" class="button button-quiet" on:click=download>
                "Download log (JSON)"
            </button>
            <p class="field-error" role="alert">{move || download_error.get()}</p>
        </div>
    }
}

fn hub_view(choice: HubChoice) -> impl IntoView {
    let refused = choice.refused.map(|(from, why)| {
        view! { <p class="field-error info-hub-refused">"Refused from "{from.as_str()}": "{why}</p> }
    });
    view! {
        <p class="info-hub">{choice.url}" (from "{choice.source.as_str()}")"</p>
        {refused}
    }
}

fn model_info_view(info: ModelInfo) -> impl IntoView {
    let rows: Vec<(&str, String)> = vec![
        ("Type", info.model_type.as_str().to_string()),
        ("Status", info.status),
        (
            "Adapter",
            if info.is_adapter { "yes" } else { "no" }.to_string(),
        ),
        (
            "Fine-tuned or adapter path",
            info.fine_tuned_path.unwrap_or_else(|| "none".into()),
        ),
        ("Base model path", info.base_model_path),
        (
            "Fallback",
            if info.using_fallback { "yes" } else { "no" }.to_string(),
        ),
        (
            "Fallback reason",
            info.fallback_reason.unwrap_or_else(|| "none".into()),
        ),
        ("Tokenizer", info.tokenizer_source),
        ("Context length", info.context_length.to_string()),
    ];
    view! {
        <dl class="info-list">
            {rows
                .into_iter()
                .map(|(name, value)| view! { <dt>{name}</dt><dd>{value}</dd> })
                .collect_view()}
        </dl>
    }
}

fn progress_view(file: FileProgress) -> impl IntoView {
    let mut detail = match file.total {
        Some(total) => format!("{} of {}", format_bytes(file.bytes), format_bytes(total)),
        None => format_bytes(file.bytes),
    };
    if file.from_cache {
        detail.push_str(", from the cache");
    } else if file.rate_bytes_per_s > 0.0 {
        detail.push_str(&format!(
            ", {}/s",
            format_bytes(file.rate_bytes_per_s as u64)
        ));
    }
    if let Some(eta) = file.eta_s {
        detail.push_str(&format!(", about {eta:.0} s left"));
    }
    // Without a total the bar is indeterminate (no value attribute).
    let (max, value) = match file.total {
        Some(total) if total > 0 => (
            Some(total.to_string()),
            Some(file.bytes.min(total).to_string()),
        ),
        _ => (None, None),
    };
    view! {
        <li class="progress-item">
            <span class="progress-file">{file.file.clone()}</span>
            <progress max=max value=value aria-label=file.file></progress>
            <span class="progress-detail">{detail}</span>
        </li>
    }
}

fn attempts_view(perf: &PerfLog) -> AnyView {
    if perf.attempts.is_empty() && perf.in_progress.is_none() {
        return view! { <p class="field-hint">"None yet."</p> }.into_any();
    }
    let row = |a: &TierAttempt, loading: bool| {
        let outcome = match (&a.error, a.ok) {
            _ if loading => "loading…".to_string(),
            (_, true) => "loaded".to_string(),
            (Some(e), false) => e.clone(),
            (None, false) => "failed".to_string(),
        };
        view! {
            <tr class:attempt-failed=!a.ok && !loading class:attempt-loading=loading>
                <td>{a.tier.as_str()}</td>
                <td>{format!("{:.1} s", a.duration_ms / 1000.0)}</td>
                <td>{format_bytes(a.network_bytes)}" / "{format_bytes(a.cache_bytes)}</td>
                <td class="attempt-outcome">
                    {outcome}
                    {(!a.stages.is_empty())
                        .then(|| view! { <span class="attempt-stages">{stages_text(&a.stages)}</span> })}
                </td>
            </tr>
        }
    };
    let rows = perf
        .attempts
        .iter()
        .map(|a| row(a, false))
        .chain(perf.in_progress.iter().map(|a| row(a, true)))
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="attempts">
                <thead>
                    <tr>
                        <th scope="col">"Tier"</th>
                        <th scope="col">"Time"</th>
                        <th scope="col">"Network / cache"</th>
                        <th scope="col">"Outcome"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}

/// `fetch model.gguf 40 ms · header 1 ms · weights 310 ms`: where an attempt's time went.
pub fn stages_text(stages: &[StageTime]) -> String {
    stages
        .iter()
        .map(|s| format!("{} {:.0} ms", s.stage, s.ms))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn memory_view(perf: &PerfLog) -> AnyView {
    match perf.memory.last() {
        None => view! { <p class="field-hint">"Not measured yet."</p> }.into_any(),
        Some(sample) => {
            let mut text = format!(
                "{}: wasm memory {}",
                sample.label,
                format_bytes(sample.wasm_bytes)
            );
            if let Some(heap) = sample.js_heap_bytes {
                text.push_str(&format!(", JavaScript heap {}", format_bytes(heap)));
            }
            view! { <p>{text}</p> }.into_any()
        }
    }
}
