//! Model loading as the engine worker does it, in a dedicated worker of headless Chromium
//! (OPFS sync access handles exist only there), against the local hub that `make test-wasm`
//! starts on port 8091 with `mimir-train hub-data`'s tiny Phi-3 models. Faults are set per
//! test through `POST /_hub/faults`; `GET /_hub/log` shows what was asked for. Each test
//! has its own cache directory; the `cache_api_*` tests force the Cache API backend that
//! browsers without OPFS get.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;

use mimir::catalog::{BundledAdapter, BundledFile, Catalog};
use mimir::engine::chat::ChatMessage;
use mimir::engine::generate::{Generation, Session};
use mimir::engine::generation_config::GenerationConfig;
use mimir::model_info::ModelType;
use mimir::perf_log::{PerfLog, TierAttempt};
use mimir::protocol::Event;
use mimir::server_config::ServerConfig;
use mimir::worker::cache::{CacheError, ModelCache};
use mimir::worker::fetch::{self, Abort};
use mimir::worker::stats;
use mimir::worker::store::{Backend, StorageError, Store};
use mimir::worker::tiers::{LoadError, Loaded, Loader};
use mimir::worker::{global, js_error, BrowserClock};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{RequestInit, Response};

#[path = "support/test_hub.rs"]
mod test_hub;

use test_hub::HUB;

wasm_bindgen_test_configure!(run_in_dedicated_worker);

const FINE_TUNED: &str = "/jdesiree/Mimir-Phi-3.5/resolve/main/mimir-phi-3-mini-q4_k_m.gguf";
const BASE: &str =
    "/microsoft/Phi-3-mini-4k-instruct-gguf/resolve/main/Phi-3-mini-4k-instruct-q4.gguf";
/// The tiny base GGUF under another revision stands in for the bundled compact model.
const COMPACT: &str =
    "/microsoft/Phi-3-mini-4k-instruct-gguf/resolve/compact/Phi-3-mini-4k-instruct-q4.gguf";

async fn hub(method: &str, path: &str, body: Option<Value>) -> Value {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(&body.to_string()));
    }
    let url = format!("{HUB}{path}");
    let response: Response = JsFuture::from(global().fetch_with_str_and_init(&url, &init))
        .await
        .unwrap_or_else(|e| panic!("{url}: {} (is the test hub running?)", js_error(&e)))
        .unchecked_into();
    assert!(response.ok(), "{method} {url}: HTTP {}", response.status());
    let text = JsFuture::from(response.text().unwrap()).await.unwrap();
    serde_json::from_str(&text.as_string().unwrap()).unwrap()
}

/// Replaces the hub's faults and empties its request log.
async fn set_faults(faults: Value) {
    hub("POST", "/_hub/faults", Some(json!({ "faults": faults }))).await;
    hub("DELETE", "/_hub/log", None).await;
}

/// The GET requests the hub served for `path`.
async fn gets_of(path: &str) -> Vec<Value> {
    let log = hub("GET", "/_hub/log", None).await;
    log.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == "GET" && r["path"] == path)
        .cloned()
        .collect()
}

async fn bytes_of(path: &str) -> Vec<u8> {
    let abort = Abort::new().unwrap();
    let mut download = fetch::get(&format!("{HUB}{path}"), 0, &abort)
        .await
        .unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = download.next_chunk().await.unwrap() {
        bytes.extend_from_slice(&chunk);
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The shipped generation settings (trunk copies them next to the page).
const SERVER_CONFIG: &str = include_str!("../training/configs/server_config.json");

/// A `blob:` URL serving `text`, standing in for a file served with the page.
fn blob_url(text: &str) -> String {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let blob = web_sys::Blob::new_with_str_sequence(&parts).unwrap();
    web_sys::Url::create_object_url_with_blob(&blob).unwrap()
}

/// The shipped catalog pointed at the test hub, the compact model served by the hub too, the
/// shipped server config from a `blob:` URL.
async fn catalog() -> Catalog {
    set_faults(json!([])).await;
    let compact = bytes_of(COMPACT).await;
    let mut catalog = Catalog::from_json(include_str!("../public/catalog.json"), "catalog.json")
        .unwrap()
        .with_hub(HUB)
        .unwrap();
    catalog.compact.url = format!("{HUB}{COMPACT}");
    catalog.compact.size = compact.len() as u64;
    catalog.compact.sha256 = hex(&Sha256::digest(&compact));
    catalog.settings = blob_url(SERVER_CONFIG);
    catalog
}

struct Outcome {
    result: Result<Loaded, LoadError>,
    perf: PerfLog,
    events: Vec<Event>,
}

/// Loads `catalog` with the cache `dir`; `on_event` sees each event first,
/// with the performance log as it is at that moment (as the worker's `Info` answers it).
async fn load_with(
    dir: &TestCache,
    catalog: &Catalog,
    abort: &Abort,
    device_memory_gb: Option<f64>,
    on_event: &mut dyn FnMut(&Event, &PerfLog),
) -> Outcome {
    let cache = dir.open().await;
    let perf = RefCell::new(PerfLog::default());
    let mut events = Vec::new();
    let mut sink = |event: Event| {
        on_event(&event, &perf.borrow());
        events.push(event);
    };
    let mut loader = Loader::new(&cache, abort, &perf, &mut sink, HUB.to_string());
    loader.device_memory_gb = device_memory_gb;
    let result = loader.load(catalog).await;
    Outcome {
        result,
        perf: perf.into_inner(),
        events,
    }
}

async fn load(dir: &TestCache, catalog: &Catalog) -> Outcome {
    load_with(dir, catalog, &Abort::new().unwrap(), None, &mut |_, _| {}).await
}

/// One test's cache: where it is and which storage API holds it.
struct TestCache {
    path: String,
    backend: Backend,
}

impl TestCache {
    async fn open(&self) -> ModelCache {
        let cache = ModelCache::open_with(&self.path, self.backend)
            .await
            .unwrap();
        assert_eq!(cache.backend(), self.backend);
        cache
    }
}

/// A fresh OPFS cache directory for one test.
async fn fresh(name: &str) -> TestCache {
    fresh_in(name, Backend::Opfs).await
}

/// A fresh cache for one test in `backend`.
async fn fresh_in(name: &str, backend: Backend) -> TestCache {
    let dir = TestCache {
        path: format!("mimir-test/{name}"),
        backend,
    };
    dir.open().await.clear().await.unwrap();
    dir
}

fn loaded(outcome: &Outcome) -> &Loaded {
    match &outcome.result {
        Ok(loaded) => loaded,
        Err(e) => panic!(
            "nothing loaded: {e:?}; attempts {:#?}",
            outcome.perf.attempts
        ),
    }
}

fn tiers_tried(perf: &PerfLog) -> Vec<(ModelType, bool)> {
    perf.attempts.iter().map(|a| (a.tier, a.ok)).collect()
}

fn hub_key(catalog: &Catalog, path: &str) -> String {
    let file = catalog
        .tiers
        .iter()
        .map(|t| &t.weights)
        .find(|w| w.path == path)
        .unwrap();
    format!(
        "{}\n{}\n{}\n{}",
        catalog.hub, file.repo, file.revision, file.path
    )
}

#[wasm_bindgen_test]
async fn all_tiers_present_loads_the_fine_tuned_model_and_streams_a_reply() {
    let catalog = catalog().await;
    let dir = fresh("all-present").await;
    let mut outcome = load(&dir, &catalog).await;
    let info = loaded(&outcome).model_info.clone();
    assert_eq!(info.model_type, ModelType::FineTuned);
    assert!(!info.using_fallback && !info.is_adapter);
    assert_eq!(
        info.fine_tuned_path.as_deref(),
        Some("jdesiree/Mimir-Phi-3.5/mimir-phi-3-mini-q4_k_m.gguf")
    );
    assert_eq!(
        info.base_model_path,
        "microsoft/Phi-3-mini-4k-instruct-gguf/Phi-3-mini-4k-instruct-q4.gguf"
    );
    assert_eq!(
        info.tokenizer_source,
        "microsoft/Phi-3-mini-4k-instruct/tokenizer.json"
    );
    assert!(info.context_length > 0);

    let attempt = &outcome.perf.attempts[..];
    assert_eq!(tiers_tried(&outcome.perf), [(ModelType::FineTuned, true)]);
    assert!(attempt[0].network_bytes > 5_000_000, "{attempt:?}");
    assert_eq!(attempt[0].cache_bytes, 0);
    assert!(attempt[0].duration_ms > 0.0);
    // Where the time went: each file, the engine's stages, the settings; nothing else.
    let stages: Vec<&str> = attempt[0].stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "fetch microsoft/Phi-3-mini-4k-instruct/tokenizer.json",
            "parse microsoft/Phi-3-mini-4k-instruct/tokenizer.json",
            "fetch jdesiree/Mimir-Phi-3.5/mimir-phi-3-mini-q4_k_m.gguf",
            "header",
            "tokenizer",
            "weights",
            "warm-up",
            "settings"
        ]
    );
    let staged: f64 = attempt[0].stages.iter().map(|s| s.ms).sum();
    assert!(
        attempt[0].stages.iter().all(|s| s.ms >= 0.0) && staged <= attempt[0].duration_ms + 1.0,
        "{attempt:?}"
    );
    assert!(!outcome.perf.memory.is_empty() && outcome.perf.memory[0].wasm_bytes > 0);
    assert!(
        outcome.perf.warnings.is_empty(),
        "{:?}",
        outcome.perf.warnings
    );
    assert!(matches!(
        outcome.events[0],
        Event::TierStarted {
            tier: ModelType::FineTuned
        }
    ));
    let last_progress = outcome
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Progress(p) if p.file.ends_with(".gguf") => Some(p),
            _ => None,
        })
        .expect("progress events for the weights");
    assert_eq!(Some(last_progress.bytes), last_progress.total);
    assert!(!last_progress.from_cache);

    // The step API the worker uses: four tokens, one at a time.
    let session = &mut outcome.result.as_mut().unwrap().session;
    let prompt = question_ids(session);
    let config = GenerationConfig {
        max_tokens: 4,
        ..GenerationConfig::phi3()
    };
    let clock = BrowserClock;
    let mut reply = session.start(&prompt, &config, true, &clock).unwrap();
    let mut streamed = String::new();
    while let Some(piece) = reply.step().unwrap() {
        streamed.push_str(&piece);
    }
    let generation = reply.finish().unwrap();
    assert_eq!(generation.stats.generated_tokens, 4);
    assert_eq!(streamed, generation.text);
}

#[wasm_bindgen_test]
async fn fine_tuned_missing_loads_the_adapter_tier() {
    let catalog = catalog().await;
    let dir = fresh("adapter").await;
    set_faults(json!([{ "path": FINE_TUNED, "status": 404 }])).await;
    let outcome = load(&dir, &catalog).await;
    let info = &loaded(&outcome).model_info;
    assert_eq!(
        tiers_tried(&outcome.perf),
        [(ModelType::FineTuned, false), (ModelType::Adapter, true)]
    );
    let first_error = outcome.perf.attempts[0].error.as_deref().unwrap();
    assert!(first_error.contains("HTTP 404"), "{first_error}");
    for file in ["adapter_config.json", "adapter_model.safetensors"] {
        let gets = gets_of(&format!("/jdesiree/Mimir-Phi-3.5/resolve/main/{file}")).await;
        assert_eq!(gets.len(), 1, "{file}: {gets:?}");
        assert_eq!(gets[0]["status"], 200);
    }
    assert_eq!(info.model_type, ModelType::Adapter);
    assert!(info.is_adapter);
    assert!(info.using_fallback, "the fine-tuned tier was better");
    assert_eq!(
        info.fine_tuned_path.as_deref(),
        Some("jdesiree/Mimir-Phi-3.5/adapter_model.safetensors")
    );
    // The tokenizer was fetched and parsed in the first attempt; this one reuses it.
    let stages: Vec<&str> = outcome.perf.attempts[1]
        .stages
        .iter()
        .map(|s| s.stage.as_str())
        .collect();
    assert_eq!(
        stages,
        [
            "fetch jdesiree/Mimir-Phi-3.5/adapter_config.json",
            "fetch jdesiree/Mimir-Phi-3.5/adapter_model.safetensors",
            "adapter",
            "fetch microsoft/Phi-3-mini-4k-instruct-gguf/Phi-3-mini-4k-instruct-q4.gguf",
            "header",
            "tokenizer",
            "weights",
            "warm-up",
            "settings"
        ]
    );
}

#[wasm_bindgen_test]
async fn a_corrupt_adapter_falls_back_to_base_and_keeps_its_error() {
    let mut catalog = catalog().await;
    let adapter = catalog.tiers[1].adapter.as_mut().unwrap();
    adapter.weights.path = "adapter_config.json".into();
    catalog.tiers.remove(0);
    let dir = fresh("adapter-corrupt").await;
    let outcome = load(&dir, &catalog).await;
    let info = &loaded(&outcome).model_info;
    assert_eq!(info.model_type, ModelType::Base);
    assert!(info.using_fallback);
    let adapter_attempt = &outcome.perf.attempts[0];
    assert_eq!(adapter_attempt.tier, ModelType::Adapter);
    assert!(!adapter_attempt.ok);
    assert!(adapter_attempt
        .error
        .as_deref()
        .unwrap()
        .contains("jdesiree/Mimir-Phi-3.5/adapter_config.json"));
}

#[wasm_bindgen_test]
async fn every_hub_tier_failing_loads_the_compact_model() {
    let catalog = catalog().await;
    let dir = fresh("compact").await;
    set_faults(json!([
        { "path": "/microsoft/*/resolve/main/*", "status": 500 },
        { "path": "/jdesiree/*", "status": 500 }
    ]))
    .await;
    let outcome = load(&dir, &catalog).await;
    let info = &loaded(&outcome).model_info;
    assert_eq!(info.model_type, ModelType::Compact);
    assert!(info.using_fallback);
    let settings = ServerConfig::from_json(SERVER_CONFIG, "server_config.json").unwrap();
    assert_eq!(
        loaded(&outcome).config,
        settings.models["smollm2-135m-instruct"],
        "the compact model's own settings"
    );
    assert_eq!(
        tiers_tried(&outcome.perf),
        [
            (ModelType::FineTuned, false),
            (ModelType::Adapter, false),
            (ModelType::Base, false),
            (ModelType::Compact, true)
        ]
    );
    assert!(outcome.perf.attempts[..3].iter().all(|a| a
        .error
        .as_deref()
        .unwrap()
        .contains("HTTP 500")));
    assert!(
        outcome
            .perf
            .warnings
            .iter()
            .any(|w| w.contains("tokenizer")),
        "the tokenizer's failure is logged: {:?}",
        outcome.perf.warnings
    );
}

/// The adapter files under the compact revision, as a bundled adapter entry.
async fn compact_adapter(weights_path: &str) -> BundledAdapter {
    let file = |path: &str| {
        let path = path.to_owned();
        async move {
            let url = format!("/jdesiree/Mimir-Phi-3.5/resolve/compact/{path}");
            let bytes = bytes_of(&url).await;
            BundledFile {
                url: format!("{HUB}{url}"),
                size: bytes.len() as u64,
                sha256: hex(&Sha256::digest(&bytes)),
            }
        }
    };
    BundledAdapter {
        config: file("adapter_config.json").await,
        weights: file(weights_path).await,
    }
}

#[wasm_bindgen_test]
async fn the_compact_model_loads_with_its_bundled_adapter() {
    let mut catalog = catalog().await;
    catalog.tiers.clear();
    catalog.compact.adapter = Some(compact_adapter("adapter_model.safetensors").await);
    let dir = fresh("compact-adapter").await;
    let mut outcome = load(&dir, &catalog).await;
    let info = &loaded(&outcome).model_info;
    assert_eq!(info.model_type, ModelType::Compact);
    assert!(info.is_adapter);
    let adapter_url = &catalog.compact.adapter.as_ref().unwrap().weights.url;
    assert_eq!(info.fine_tuned_path.as_ref(), Some(adapter_url));
    assert!(outcome.perf.warnings.iter().all(|w| !w.contains("adapter")));
    // The adapter changes the model: its greedy tokens differ from the plain model's.
    let with = greedy(&mut outcome, 16).tokens;
    catalog.compact.adapter = None;
    let mut plain = load(&fresh("compact-plain").await, &catalog).await;
    assert!(!loaded(&plain).model_info.is_adapter);
    assert_ne!(
        with,
        greedy(&mut plain, 16).tokens,
        "the adapter changed nothing"
    );
}

/// The prompt ids of a fixed question in the model's chat template.
fn question_ids(session: &Session) -> Vec<u32> {
    let pieces = session
        .template()
        .render(&[ChatMessage::user("What is 2 plus 2?")], true);
    session.tokenizer().encode_prompt(&pieces, true).unwrap()
}

/// The loaded model's greedy reply to a fixed question, `max_tokens` long (stop ids ignored).
fn greedy(outcome: &mut Outcome, max_tokens: usize) -> Generation {
    let session = &mut outcome.result.as_mut().unwrap().session;
    let prompt = question_ids(session);
    let config = GenerationConfig {
        max_tokens,
        temperature: 0.0,
        ..GenerationConfig::phi3()
    };
    session
        .generate(&prompt, &config, true, &BrowserClock, &mut |_| true)
        .unwrap()
}

#[wasm_bindgen_test]
async fn a_broken_bundled_adapter_leaves_the_compact_model_working() {
    let mut catalog = catalog().await;
    catalog.tiers.clear();
    // The config file where the weights should be: the adapter cannot load.
    catalog.compact.adapter = Some(compact_adapter("adapter_config.json").await);
    let outcome = load(&fresh("compact-adapter-broken").await, &catalog).await;
    let info = &loaded(&outcome).model_info;
    assert_eq!(info.model_type, ModelType::Compact);
    assert!(!info.is_adapter);
    assert_eq!(info.fine_tuned_path, None);
    assert!(
        outcome
            .perf
            .warnings
            .iter()
            .any(|w| w.contains("compact adapter") && w.contains("adapter_config.json")),
        "{:?}",
        outcome.perf.warnings
    );
}

#[wasm_bindgen_test]
async fn everything_failing_reports_the_offline_and_first_errors_and_stays_usable() {
    let catalog = catalog().await;
    let dir = fresh("nothing").await;
    set_faults(json!([{ "path": "*", "status": 500 }])).await;
    let outcome = load(&dir, &catalog).await;
    match &outcome.result {
        Err(LoadError::AllFailed(message)) => {
            // The bundled model's error leads (the tooltip shows 50 characters), then the
            // first tier's.
            let (offline, first) = message.split_once("; fine-tuned: ").expect(message);
            assert!(offline.starts_with("compact: "), "{message}");
            assert!(offline.ends_with(": HTTP 500"), "{message}");
            assert!(
                first.contains(&format!("{HUB}{FINE_TUNED}: HTTP 500")),
                "{message}"
            );
        }
        other => panic!(
            "expected every tier to fail, got {:?}",
            other.as_ref().err()
        ),
    }
    assert_eq!(outcome.perf.attempts.len(), 4);
    assert!(outcome.perf.attempts.iter().all(|a| !a.ok));
    let failed = outcome
        .events
        .iter()
        .filter(|e| matches!(e, Event::TierFailed { .. }))
        .count();
    assert_eq!(failed, 4);

    // The same loader works again once the hub is back.
    set_faults(json!([])).await;
    let again = load(&dir, &catalog).await;
    assert_eq!(loaded(&again).model_info.model_type, ModelType::FineTuned);
}

#[wasm_bindgen_test]
async fn a_cut_download_resumes_with_a_range_request_and_is_verified() {
    let catalog = catalog().await;
    let dir = fresh("resume").await;
    let half = 2_600_000;
    set_faults(json!([{ "path": FINE_TUNED, "cut_after": half, "times": 1 }])).await;
    let first = load(&dir, &catalog).await;
    assert_eq!(first.perf.attempts[0].tier, ModelType::FineTuned);
    assert!(!first.perf.attempts[0].ok, "{:#?}", first.perf.attempts);
    assert!(first.perf.attempts[0]
        .error
        .as_deref()
        .unwrap()
        .contains("mimir-phi-3-mini-q4_k_m.gguf"));
    let cache = dir.open().await;
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    assert!(!cache.is_complete(&key).await.unwrap());

    set_faults(json!([])).await;
    let second = load(&dir, &catalog).await;
    assert_eq!(loaded(&second).model_info.model_type, ModelType::FineTuned);
    let gets = gets_of(FINE_TUNED).await;
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0]["status"], 206);
    let range = gets[0]["range"].as_str().unwrap();
    let from: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .unwrap()
        .parse()
        .unwrap();
    assert!(from > 0 && from <= half, "{range}");
    let attempt = &second.perf.attempts[0];
    assert!(attempt.ok);
    assert_eq!(attempt.cache_bytes, from + tokenizer_bytes(&second));
    assert!(cache.is_complete(&key).await.unwrap());
}

/// Bytes of the tokenizer read from the cache in a load (it is cached by the first load).
fn tokenizer_bytes(outcome: &Outcome) -> u64 {
    outcome
        .events
        .iter()
        .find_map(|e| match e {
            Event::Progress(p) if p.file.ends_with("tokenizer.json") && p.from_cache => {
                Some(p.bytes)
            }
            _ => None,
        })
        .unwrap_or(0)
}

#[wasm_bindgen_test]
async fn a_sha256_mismatch_is_rejected_and_never_loaded() {
    let mut catalog = catalog().await;
    catalog.tiers[0].weights.sha256 = Some("0".repeat(64));
    let dir = fresh("mismatch").await;
    let outcome = load(&dir, &catalog).await;
    let error = outcome.perf.attempts[0].error.as_deref().unwrap();
    assert!(
        error.contains("jdesiree/Mimir-Phi-3.5/mimir-phi-3-mini-q4_k_m.gguf"),
        "{error}"
    );
    assert!(error.contains("sha256 mismatch"), "{error}");
    assert!(error.contains(&"0".repeat(64)), "{error}");
    assert_ne!(loaded(&outcome).model_info.model_type, ModelType::FineTuned);
    let cache = dir.open().await;
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    assert!(!cache.is_complete(&key).await.unwrap());
}

#[wasm_bindgen_test]
async fn a_reload_is_served_from_the_cache_without_model_requests() {
    let catalog = catalog().await;
    let dir = fresh("reload").await;
    let first = load(&dir, &catalog).await;
    assert_eq!(loaded(&first).model_info.model_type, ModelType::FineTuned);
    hub("DELETE", "/_hub/log", None).await;
    let second = load(&dir, &catalog).await;
    assert_eq!(loaded(&second).model_info.model_type, ModelType::FineTuned);
    let log = hub("GET", "/_hub/log", None).await;
    assert_eq!(log, json!([]), "no requests to the hub on reload");
    let attempt = &second.perf.attempts[0];
    assert_eq!(attempt.network_bytes, 0);
    assert!(attempt.cache_bytes > 5_000_000);
    assert!(second
        .events
        .iter()
        .all(|e| !matches!(e, Event::Progress(p) if !p.from_cache)));
}

#[wasm_bindgen_test]
async fn a_cancelled_download_leaves_no_complete_entry() {
    let catalog = catalog().await;
    let dir = fresh("cancel").await;
    set_faults(json!([{ "path": FINE_TUNED, "rate": 200_000 }])).await;
    let abort = Abort::new().unwrap();
    let canceller = abort.clone();
    let outcome = load_with(&dir, &catalog, &abort, None, &mut |event, _| {
        if matches!(event, Event::Progress(p) if p.file.ends_with(".gguf") && p.bytes > 0) {
            canceller.abort();
        }
    })
    .await;
    assert_eq!(outcome.result.as_ref().err(), Some(&LoadError::Cancelled));
    assert_eq!(tiers_tried(&outcome.perf), [(ModelType::FineTuned, false)]);
    assert!(outcome.perf.attempts[0]
        .error
        .as_deref()
        .unwrap()
        .contains("cancelled"));
    let cache = dir.open().await;
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    assert!(!cache.is_complete(&key).await.unwrap());

    set_faults(json!([])).await;
    let again = load(&dir, &catalog).await;
    assert_eq!(loaded(&again).model_info.model_type, ModelType::FineTuned);
    let gets = gets_of(FINE_TUNED).await;
    assert_eq!(gets[0]["status"], 206, "the part is resumed: {gets:?}");
}

#[wasm_bindgen_test]
async fn a_device_too_small_for_the_hub_models_gets_the_compact_model_with_the_reason() {
    let mut catalog = catalog().await;
    // The base weights' size is in the catalog (for the adapter and base tiers, which share
    // the file): refused before any request.
    catalog.tiers[1].weights.size = Some(5_211_776);
    catalog.tiers[2].weights.size = Some(5_211_776);
    let dir = fresh("small-device").await;
    // 4 MiB of device memory: too little for the 5 MB hub models, and the compact model is
    // not held to the hub tiers' limit.
    let outcome = load_with(
        &dir,
        &catalog,
        &Abort::new().unwrap(),
        Some(0.004),
        &mut |_, _| {},
    )
    .await;
    let info = &loaded(&outcome).model_info;
    assert_eq!(info.model_type, ModelType::Compact);
    let reason = info.fallback_reason.as_deref().unwrap();
    assert!(
        reason.contains(
            "mimir-phi-3-mini-q4_k_m.gguf: 5211776 bytes is more than this device can hold"
        ),
        "{reason}"
    );
    assert!(reason.contains("0.004 GB"), "{reason}");
    assert!(
        gets_of(BASE).await.is_empty(),
        "the base file, whose size the catalog gives, is not asked for"
    );
    assert!(
        !outcome
            .events
            .iter()
            .any(|e| matches!(e, Event::Progress(p) if p.file.ends_with(".gguf"))),
        "no hub weights byte is stored: the fine-tuned file is refused on its Content-Length"
    );
}

#[wasm_bindgen_test]
async fn clearing_the_cache_frees_the_models_and_forgets_them() {
    let catalog = catalog().await;
    let dir = fresh("clear").await;
    let outcome = load(&dir, &catalog).await;
    assert_eq!(loaded(&outcome).model_info.model_type, ModelType::FineTuned);
    let cache = dir.open().await;
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    assert!(cache.is_complete(&key).await.unwrap());
    let freed = cache.clear().await.unwrap();
    assert!(freed > 5_211_776, "freed {freed}");
    let cache = dir.open().await;
    assert!(!cache.is_complete(&key).await.unwrap());
}

#[wasm_bindgen_test]
async fn the_fallback_count_is_kept_in_either_backend() {
    for backend in [Backend::Opfs, Backend::CacheApi] {
        let dir = Store::open_with("mimir-test/stats", backend).await.unwrap();
        dir.remove("stats.json").await.unwrap();
        assert_eq!(stats::fallback_count(&dir).await, 0, "{backend:?}");
        assert_eq!(stats::count_fallback(&dir).await, 1, "{backend:?}");
        assert_eq!(stats::count_fallback(&dir).await, 2, "{backend:?}");
        let reopened = Store::open_with("mimir-test/stats", backend).await.unwrap();
        assert_eq!(stats::fallback_count(&reopened).await, 2, "{backend:?}");
    }
}

#[wasm_bindgen_test]
async fn the_log_is_current_while_a_load_runs() {
    let catalog = catalog().await;
    let dir = fresh("live-log").await;
    set_faults(json!([
        { "path": FINE_TUNED, "status": 404 },
        { "path": BASE, "rate": 2_000_000 }
    ]))
    .await;
    let mut seen: Vec<(String, Vec<TierAttempt>, Option<TierAttempt>)> = Vec::new();
    let outcome = load_with(
        &dir,
        &catalog,
        &Abort::new().unwrap(),
        None,
        &mut |event, perf| {
            let what = match event {
                Event::TierStarted { tier } => format!("started {}", tier.as_str()),
                Event::TierFailed { tier, .. } => format!("failed {}", tier.as_str()),
                Event::Progress(p) if p.file.ends_with(".gguf") && !p.from_cache => {
                    "gguf progress".to_string()
                }
                _ => return,
            };
            seen.push((what, perf.attempts.clone(), perf.in_progress.clone()));
        },
    )
    .await;
    assert_eq!(loaded(&outcome).model_info.model_type, ModelType::Adapter);

    let (_, attempts, current) = &seen[0];
    assert_eq!(seen[0].0, "started fine-tuned");
    assert!(attempts.is_empty());
    assert_eq!(current.as_ref().unwrap().tier, ModelType::FineTuned);
    let failed = seen
        .iter()
        .position(|s| s.0 == "failed fine-tuned")
        .unwrap();
    assert_eq!(
        seen[failed].1.len(),
        1,
        "the failure is logged before its event"
    );
    assert!(seen[failed].2.is_none());
    let started = &seen[failed + 1];
    assert_eq!(started.0, "started adapter");
    assert!(started.1[0].error.as_deref().unwrap().contains("HTTP 404"));
    let progress: Vec<_> = seen.iter().filter(|s| s.0 == "gguf progress").collect();
    assert!(
        progress.len() >= 2,
        "the 5 MB base file at 2 MB/s: {}",
        seen.len()
    );
    let first = progress[0].2.as_ref().unwrap();
    let last = progress[progress.len() - 1].2.as_ref().unwrap();
    assert_eq!(first.tier, ModelType::Adapter);
    assert!(!first.ok && first.error.is_none());
    assert!(last.duration_ms > first.duration_ms, "{first:?} {last:?}");
    assert!(
        last.network_bytes > 0,
        "the adapter's finished files count: {last:?}"
    );
    assert!(outcome.perf.in_progress.is_none());
    assert_eq!(outcome.perf.attempts.len(), 2);
}

#[wasm_bindgen_test]
async fn generation_settings_come_from_the_server_config_or_default_with_a_warning() {
    let mut catalog = catalog().await;
    let dir = fresh("settings").await;
    let mut settings: Value = serde_json::from_str(SERVER_CONFIG).unwrap();
    settings["models"]["phi-3-mini-4k-instruct"]["temperature"] = json!(0.25);
    catalog.settings = blob_url(&settings.to_string());
    let outcome = load(&dir, &catalog).await;
    let config = &loaded(&outcome).config;
    assert_eq!(config.temperature, 0.25);
    assert_eq!(config.stop_ids, [32000, 32001, 32007]);
    assert!(
        outcome.perf.warnings.is_empty(),
        "{:?}",
        outcome.perf.warnings
    );

    let bad = [
        (
            blob_url(r#"{"models": {"phi-3-mini-4k-instruct": {"top_p": 1.5}}}"#),
            "models.phi-3-mini-4k-instruct: top_p must be in (0, 1], got 1.5",
        ),
        (
            blob_url(r#"{"models": {"other": {}}}"#),
            r#"no settings for model "phi-3-mini-4k-instruct" (it has other)"#,
        ),
        (blob_url("{"), "not a valid server config"),
        (format!("{HUB}/server_config.json"), "HTTP 404"),
    ];
    for (url, problem) in bad {
        catalog.settings = url.clone();
        let outcome = load(&dir, &catalog).await;
        assert_eq!(loaded(&outcome).config, GenerationConfig::phi3());
        let warnings = &outcome.perf.warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&url) && warnings[0].contains(problem),
            "{url}: {warnings:?}"
        );
        assert!(warnings[0].ends_with("using the built-in defaults"));
    }
}

#[wasm_bindgen_test]
async fn a_file_larger_than_the_free_storage_is_refused_before_any_request() {
    let mut catalog = catalog().await;
    let huge = 1u64 << 50;
    catalog.tiers[0].weights.size = Some(huge);
    let dir = fresh("quota").await;
    let outcome = load(&dir, &catalog).await;
    assert_eq!(loaded(&outcome).model_info.model_type, ModelType::Adapter);
    let error = outcome.perf.attempts[0].error.as_deref().unwrap();
    assert!(
        error.starts_with(&format!(
            "jdesiree/Mimir-Phi-3.5/mimir-phi-3-mini-q4_k_m.gguf: needs {huge} more bytes but the browser allows only "
        )),
        "{error}"
    );
    let free: u64 = error
        .split("allows only ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(free > 0 && free < huge, "{error}");
    assert!(
        gets_of(FINE_TUNED).await.is_empty(),
        "nothing was asked for"
    );
    let cache = dir.open().await;
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    assert_eq!(
        cache.stored_files(&key).await.unwrap(),
        Vec::<String>::new()
    );
}

#[wasm_bindgen_test]
async fn storage_filling_up_mid_download_is_a_clear_error_and_leaves_no_entry() {
    let catalog = catalog().await;
    let dir = fresh("full").await;
    let stored = 2_600_000;
    set_faults(json!([{ "path": FINE_TUNED, "cut_after": stored, "times": 1 }])).await;
    load(&dir, &catalog).await;
    let cache = dir.open().await;
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    let entry = mimir::worker::cache::entry_name(&key);
    assert_eq!(
        cache.stored_files(&key).await.unwrap(),
        [format!("{entry}.bin"), format!("{entry}.part")],
        "a cut download keeps its part"
    );

    // What the browser throws when a write finds the quota full, as the download loop gets it.
    let thrown = web_sys::DomException::new_with_message_and_name(
        "The operation failed because it would cause the application to exceed its storage quota.",
        "QuotaExceededError",
    )
    .unwrap();
    let display = "jdesiree/Mimir-Phi-3.5/mimir-phi-3-mini-q4_k_m.gguf";
    let error = CacheError::write_failed(
        display,
        stored,
        StorageError::new("writing", &format!("{}/{entry}.bin", dir.path), &thrown),
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{display}: the browser's storage filled up after {stored} bytes (QuotaExceededError: \
             The operation failed because it would cause the application to exceed its storage \
             quota.); the partial download was deleted; free some space or clear cached models"
        )
    );
    assert!(error.discards_entry());
    cache.discard(&key).await.unwrap();
    assert_eq!(
        cache.stored_files(&key).await.unwrap(),
        Vec::<String>::new()
    );

    // Nothing is resumed from: the next load downloads the whole file and verifies it.
    set_faults(json!([])).await;
    let again = load(&dir, &catalog).await;
    assert_eq!(loaded(&again).model_info.model_type, ModelType::FineTuned);
    let gets = gets_of(FINE_TUNED).await;
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0]["status"], 200);
    assert!(gets[0]["range"].is_null(), "{gets:?}");
}

#[wasm_bindgen_test]
async fn a_part_that_is_already_the_whole_file_is_verified_without_a_request() {
    let catalog = catalog().await;
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    let entry = mimir::worker::cache::entry_name(&key);
    for backend in [Backend::Opfs, Backend::CacheApi] {
        let dir = fresh_in(&format!("whole-part-{backend:?}"), backend).await;
        loaded(&load(&dir, &catalog).await);
        // The tab closed after the last byte was stored and before `.done` was written.
        let store = Store::open_with(&dir.path, backend).await.unwrap();
        let record = store.read_text(&format!("{entry}.done")).await.unwrap();
        store
            .write_text(&format!("{entry}.part"), &record.unwrap())
            .await
            .unwrap();
        store.remove(&format!("{entry}.done")).await.unwrap();

        hub("DELETE", "/_hub/log", None).await;
        let again = load(&dir, &catalog).await;
        assert_eq!(loaded(&again).model_info.model_type, ModelType::FineTuned);
        assert_eq!(
            gets_of(FINE_TUNED).await,
            Vec::<Value>::new(),
            "{backend:?}"
        );
        assert_eq!(again.perf.attempts[0].network_bytes, 0, "{backend:?}");
        assert_eq!(
            dir.open().await.stored_files(&key).await.unwrap(),
            [format!("{entry}.bin"), format!("{entry}.done")],
            "{backend:?}"
        );
    }
}

#[wasm_bindgen_test]
async fn chromium_gets_opfs_and_a_browser_without_get_directory_the_cache_api() {
    assert_eq!(Backend::available(), Backend::Opfs);
    let cache = ModelCache::open("mimir-test/detected").await.unwrap();
    assert_eq!(cache.backend(), Backend::Opfs);

    // Hide `getDirectory` on this worker's StorageManager, as browsers without OPFS lack it.
    let storage: JsValue = global().navigator().storage().into();
    let name = JsValue::from_str("getDirectory");
    js_sys::Reflect::set(&storage, &name, &JsValue::UNDEFINED).unwrap();
    let picked = Backend::available();
    let cache = ModelCache::open("mimir-test/detected").await;
    js_sys::Reflect::delete_property(storage.unchecked_ref::<js_sys::Object>(), &name).unwrap();
    assert_eq!(picked, Backend::CacheApi);
    assert_eq!(cache.unwrap().backend(), Backend::CacheApi);
    assert_eq!(Backend::available(), Backend::Opfs, "restored");
}

#[wasm_bindgen_test]
async fn cache_api_first_load_verifies_and_a_reload_makes_no_model_requests() {
    let catalog = catalog().await;
    let dir = fresh_in("cache-api-reload", Backend::CacheApi).await;
    let first = load(&dir, &catalog).await;
    assert_eq!(loaded(&first).model_info.model_type, ModelType::FineTuned);
    let attempt = &first.perf.attempts[0];
    assert!(attempt.network_bytes > 5_000_000, "{attempt:?}");
    assert_eq!(attempt.cache_bytes, 0);
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    let entry = mimir::worker::cache::entry_name(&key);
    let cache = dir.open().await;
    assert_eq!(
        cache.stored_files(&key).await.unwrap(),
        [format!("{entry}.bin"), format!("{entry}.done")]
    );

    hub("DELETE", "/_hub/log", None).await;
    let mut second = load(&dir, &catalog).await;
    assert_eq!(loaded(&second).model_info.model_type, ModelType::FineTuned);
    let log = hub("GET", "/_hub/log", None).await;
    assert_eq!(log, json!([]), "no requests to the hub on reload");
    let attempt = &second.perf.attempts[0];
    assert_eq!(attempt.network_bytes, 0);
    assert!(attempt.cache_bytes > 5_000_000, "{attempt:?}");

    // The weights read from the cached Blob give the same reply as a fresh download's.
    let mut first = first;
    assert_eq!(greedy(&mut first, 4).text, greedy(&mut second, 4).text);
}

#[wasm_bindgen_test]
async fn cache_api_sha256_mismatch_is_rejected_and_nothing_stored() {
    let mut catalog = catalog().await;
    catalog.tiers[0].weights.sha256 = Some("0".repeat(64));
    let dir = fresh_in("cache-api-mismatch", Backend::CacheApi).await;
    let outcome = load(&dir, &catalog).await;
    let error = outcome.perf.attempts[0].error.as_deref().unwrap();
    assert!(error.contains("sha256 mismatch"), "{error}");
    assert!(error.contains(&"0".repeat(64)), "{error}");
    assert_ne!(loaded(&outcome).model_info.model_type, ModelType::FineTuned);
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    assert_eq!(
        dir.open().await.stored_files(&key).await.unwrap(),
        Vec::<String>::new()
    );
}

#[wasm_bindgen_test]
async fn cache_api_clearing_empties_the_cache() {
    let catalog = catalog().await;
    let dir = fresh_in("cache-api-clear", Backend::CacheApi).await;
    let outcome = load(&dir, &catalog).await;
    assert_eq!(loaded(&outcome).model_info.model_type, ModelType::FineTuned);
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    let cache = dir.open().await;
    assert!(cache.is_complete(&key).await.unwrap());
    let freed = cache.clear().await.unwrap();
    assert!(freed > 5_211_776, "freed {freed}");
    let store = Store::open_with(&dir.path, Backend::CacheApi)
        .await
        .unwrap();
    assert_eq!(store.entry_names().await.unwrap(), Vec::<String>::new());
    assert!(!dir.open().await.is_complete(&key).await.unwrap());
}

#[wasm_bindgen_test]
async fn cache_api_a_cut_download_keeps_its_part_and_resumes_verified() {
    let catalog = catalog().await;
    let dir = fresh_in("cache-api-resume", Backend::CacheApi).await;
    let half = 2_600_000;
    set_faults(json!([{ "path": FINE_TUNED, "cut_after": half, "times": 1 }])).await;
    let first = load(&dir, &catalog).await;
    assert!(!first.perf.attempts[0].ok, "{:#?}", first.perf.attempts);
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    let entry = mimir::worker::cache::entry_name(&key);
    let cache = dir.open().await;
    assert!(!cache.is_complete(&key).await.unwrap());
    assert_eq!(
        cache.stored_files(&key).await.unwrap(),
        [format!("{entry}.bin"), format!("{entry}.part")],
        "the part is stored when the download breaks"
    );

    set_faults(json!([])).await;
    let second = load(&dir, &catalog).await;
    assert_eq!(loaded(&second).model_info.model_type, ModelType::FineTuned);
    let gets = gets_of(FINE_TUNED).await;
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0]["status"], 206);
    let range = gets[0]["range"].as_str().unwrap();
    let from: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .unwrap()
        .parse()
        .unwrap();
    assert!(from > 0 && from <= half, "{range}");
    assert_eq!(
        second.perf.attempts[0].cache_bytes,
        from + tokenizer_bytes(&second)
    );
    assert!(cache.is_complete(&key).await.unwrap());
    assert_eq!(
        cache.stored_files(&key).await.unwrap(),
        [format!("{entry}.bin"), format!("{entry}.done")]
    );
}

#[wasm_bindgen_test]
async fn cache_api_a_cancelled_download_is_never_complete_and_resumes() {
    let catalog = catalog().await;
    let dir = fresh_in("cache-api-cancel", Backend::CacheApi).await;
    set_faults(json!([{ "path": FINE_TUNED, "rate": 200_000 }])).await;
    let abort = Abort::new().unwrap();
    let canceller = abort.clone();
    let outcome = load_with(&dir, &catalog, &abort, None, &mut |event, _| {
        if matches!(event, Event::Progress(p) if p.file.ends_with(".gguf") && p.bytes > 0) {
            canceller.abort();
        }
    })
    .await;
    assert_eq!(outcome.result.as_ref().err(), Some(&LoadError::Cancelled));
    let key = hub_key(&catalog, "mimir-phi-3-mini-q4_k_m.gguf");
    assert!(!dir.open().await.is_complete(&key).await.unwrap());

    set_faults(json!([])).await;
    let again = load(&dir, &catalog).await;
    assert_eq!(loaded(&again).model_info.model_type, ModelType::FineTuned);
    let gets = gets_of(FINE_TUNED).await;
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert_eq!(gets[0]["status"], 206, "the part is resumed: {gets:?}");
}
