//! The loading order: fine-tuned → adapter → base from the hub, then the bundled compact
//! model. Each attempt is timed and logged; the first model that loads is returned.

use std::cell::RefCell;
use std::io::{BufReader, Read};

use super::cache::{CacheError, CachedFile, FileRequest, ModelCache};
use super::fetch::Abort;
use super::store::StorageError;
use crate::catalog::{BundledAdapter, BundledFile, Catalog, RepoFile, Tier};
use crate::engine::generate::{LoadStage, Session};
use crate::engine::generation_config::GenerationConfig;
use crate::engine::lora::Adapter;
use crate::engine::model::LoadOptions;
use crate::engine::tokenizer::Tokenizer;
use crate::model_info::{ModelInfo, ModelType};
use crate::perf_log::{MemorySample, PerfLog, StageTime, TierAttempt};
use crate::protocol::Event;
use crate::server_config::ServerConfig;

/// Memory a model needs per byte of its GGUF file: the weights themselves, the f32 copy of
/// the token embedding, the KV cache and the wasm heap's slack. Phi-3 mini's 2.4 GB Q4 file
/// needs about 3.8 GB, so a device that reports 2 GB (`navigator.deviceMemory`) goes
/// straight to the compact model, while the local hub's 5 MB test models pass anywhere.
pub const MEMORY_PER_FILE_BYTE: f64 = 1.6;

/// Read buffer between browser storage and the GGUF reader: few large reads instead of many small.
const READ_BUFFER: usize = 1 << 20;

/// Positions the KV cache holds.
const CONTEXT_CAP: usize = 2048;

/// A model that is live, and what it is.
#[derive(Debug)]
pub struct Loaded {
    /// The engine session.
    pub session: Session,
    /// What is live, for the page.
    pub model_info: ModelInfo,
    /// The model's generation settings.
    pub config: GenerationConfig,
}

/// Why no model was loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadError {
    /// The load was cancelled; nothing is live.
    Cancelled,
    /// Every tier failed: [`all_failed`]'s message.
    AllFailed(String),
}

/// What a load needs from its surroundings.
pub struct Loader<'a> {
    /// The model cache.
    pub cache: &'a ModelCache,
    /// Cancels the downloads.
    pub abort: &'a Abort,
    /// Where attempts, memory and warnings are recorded. Borrowed only for each update (never
    /// across an `await`), so the worker answers `Info` with the log as it is during a load.
    pub perf: &'a RefCell<PerfLog>,
    /// Receives `TierStarted`, `TierFailed` and `Progress` events.
    pub on_event: &'a mut dyn FnMut(Event),
    /// `navigator.deviceMemory` in GB, where the browser tells it.
    pub device_memory_gb: Option<f64>,
    /// The URL the compact model's relative URL is resolved against (the app's folder).
    pub base_url: String,
    network_bytes: u64,
    cache_bytes: u64,
    /// When the tier being tried started (`performance.now()`).
    tier_start_ms: f64,
    /// When the current stage of the attempt began (`now_ms`).
    stage_start_ms: f64,
    /// The attempt's finished stages.
    stages: Vec<StageTime>,
    tokenizer: Option<Option<Tokenizer>>,
    /// The server config, fetched once per load when a model is live; the error otherwise.
    settings: Option<Result<ServerConfig, String>>,
}

impl<'a> Loader<'a> {
    /// A loader over `cache` with cancel handle `abort`, logging to `perf`, telling `on_event`.
    pub fn new(
        cache: &'a ModelCache,
        abort: &'a Abort,
        perf: &'a RefCell<PerfLog>,
        on_event: &'a mut dyn FnMut(Event),
        base_url: String,
    ) -> Self {
        Self {
            cache,
            abort,
            perf,
            on_event,
            device_memory_gb: super::device_memory_gb(),
            base_url,
            network_bytes: 0,
            cache_bytes: 0,
            tier_start_ms: 0.0,
            stage_start_ms: 0.0,
            stages: Vec::new(),
            tokenizer: None,
            settings: None,
        }
    }

    /// Tries the catalog's tiers in order and returns the first model that loads.
    pub async fn load(&mut self, catalog: &Catalog) -> Result<Loaded, LoadError> {
        let mut failures: Vec<(ModelType, String)> = Vec::new();
        let tiers = catalog.tiers.iter().map(Some).chain(std::iter::once(None));
        for tier in tiers {
            let model_type = tier.map_or(ModelType::Compact, |t| t.model_type);
            let started_at_ms = js_sys::Date::now();
            self.tier_start_ms = super::now_ms();
            self.stage_start_ms = self.tier_start_ms;
            self.stages.clear();
            self.network_bytes = 0;
            self.cache_bytes = 0;
            self.perf.borrow_mut().in_progress = Some(self.attempt(model_type, started_at_ms));
            (self.on_event)(Event::TierStarted { tier: model_type });
            let result = match tier {
                Some(tier) => self.hub_tier(catalog, tier).await,
                None => self.compact_tier(catalog).await,
            };
            let attempt = TierAttempt {
                ok: result.is_ok(),
                error: result.as_ref().err().cloned(),
                ..self.attempt(model_type, started_at_ms)
            };
            {
                let mut perf = self.perf.borrow_mut();
                perf.in_progress = None;
                perf.attempts.push(attempt);
                perf.memory.push(memory_sample(&format!(
                    "after trying {}",
                    model_type.as_str()
                )));
            }
            match result {
                Ok(mut loaded) => {
                    if let Some((_, reason)) = failures.into_iter().next() {
                        loaded.model_info.using_fallback = true;
                        loaded.model_info.fallback_reason = Some(reason);
                    }
                    return Ok(loaded);
                }
                Err(reason) => {
                    (self.on_event)(Event::TierFailed {
                        tier: model_type,
                        reason: reason.clone(),
                    });
                    if self.abort.is_aborted() {
                        return Err(LoadError::Cancelled);
                    }
                    failures.push((model_type, reason));
                }
            }
        }
        Err(LoadError::AllFailed(all_failed(&failures)))
    }

    async fn hub_tier(&mut self, catalog: &Catalog, tier: &Tier) -> Result<Loaded, String> {
        let max_size = self.device_limit();
        if let (Some(size), Some((max, reason))) = (tier.weights.size, &max_size) {
            if size > *max {
                return Err(format!(
                    "{}: {size} bytes is more than this device can hold ({reason})",
                    tier.weights.display_path()
                ));
            }
        }
        let mut options = LoadOptions {
            context_cap: CONTEXT_CAP,
            ..LoadOptions::default()
        };
        let mut fine_tuned_path = None;
        if let Some(adapter) = &tier.adapter {
            // Each file is read and its exclusive OPFS handle closed before the next is opened.
            let config = self.fetch_hub(catalog, &adapter.config, None).await?;
            let config = read_all(&config, &adapter.config.display_path())?;
            let weights = self.fetch_hub(catalog, &adapter.weights, None).await?;
            let weights = read_all(&weights, &adapter.weights.display_path())?;
            options = adapter_options(
                options,
                (&config, &adapter.config.display_path()),
                (&weights, &adapter.weights.display_path()),
            )?;
            self.stage_done("adapter".to_string());
            fine_tuned_path = Some(adapter.weights.display_path());
        }
        let tokenizer = self.hub_tokenizer(catalog).await;
        let weights = self.fetch_hub(catalog, &tier.weights, max_size).await?;
        let tokenizer_source = match &tokenizer {
            Some(_) => catalog.tokenizer.display_path(),
            None => format!("GGUF vocabulary of {}", tier.weights.display_path()),
        };
        let session = load_session(
            &weights,
            &tier.weights.display_path(),
            &options,
            tokenizer,
            &mut |stage| self.stage_done(stage.as_str().to_string()),
        )?;
        let config = self.generation_config(catalog, &tier.config).await;
        self.stage_done("settings".to_string());
        let weights_path = tier.weights.display_path();
        let (fine_tuned_path, base_model_path) = match tier.model_type {
            ModelType::FineTuned => (Some(weights_path), base_weights_path(catalog)),
            _ => (fine_tuned_path, weights_path),
        };
        Ok(Loaded {
            model_info: model_info(
                &session,
                tier.model_type,
                fine_tuned_path,
                base_model_path,
                tokenizer_source,
            ),
            session,
            config,
        })
    }

    async fn compact_tier(&mut self, catalog: &Catalog) -> Result<Loaded, String> {
        let compact = &catalog.compact;
        let mut options = LoadOptions {
            context_cap: CONTEXT_CAP,
            ..LoadOptions::default()
        };
        let mut adapter_url = None;
        if let Some(adapter) = &compact.adapter {
            // The offline tier must answer: an adapter that cannot be had or does not fit is
            // a warning, and the model runs without it.
            let with_adapter = self.bundled_adapter(adapter, options.clone()).await;
            self.stage_done("adapter".to_string());
            match with_adapter {
                Ok(with_adapter) => {
                    options = with_adapter;
                    adapter_url = Some(adapter.weights.url.clone());
                }
                Err(e) if self.abort.is_aborted() => return Err(e),
                Err(e) => self.perf.borrow_mut().warnings.push(format!(
                    "compact adapter: {e}; {} runs without it",
                    compact.name
                )),
            }
        }
        let file = self
            .fetch(&self.bundled_request(
                &compact.url,
                &compact.name,
                &compact.sha256,
                compact.size,
            )?)
            .await?;
        let session = load_session(&file, &compact.name, &options, None, &mut |stage| {
            self.stage_done(stage.as_str().to_string())
        })?;
        let mut info = model_info(
            &session,
            ModelType::Compact,
            adapter_url.clone(),
            compact.url.clone(),
            format!("GGUF vocabulary of {}", compact.name),
        );
        info.is_adapter = adapter_url.is_some();
        let config = self.generation_config(catalog, &compact.config).await;
        self.stage_done("settings".to_string());
        Ok(Loaded {
            model_info: info,
            session,
            config,
        })
    }

    /// `options` with the bundled `adapter` (both files fetched through the cache and checked
    /// against their sha256).
    async fn bundled_adapter(
        &mut self,
        adapter: &BundledAdapter,
        options: LoadOptions,
    ) -> Result<LoadOptions, String> {
        let read = |file: &BundledFile| -> Result<FileRequest, String> {
            self.bundled_request(&file.url, &file.url, &file.sha256, file.size)
        };
        let (config_request, weights_request) = (read(&adapter.config)?, read(&adapter.weights)?);
        // Each file is read and its exclusive OPFS handle closed before the next is opened.
        let config = self.fetch(&config_request).await?;
        let config = read_all(&config, &adapter.config.url)?;
        let weights = self.fetch(&weights_request).await?;
        let weights = read_all(&weights, &adapter.weights.url)?;
        adapter_options(
            options,
            (&config, &adapter.config.url),
            (&weights, &adapter.weights.url),
        )
    }

    /// The request for a file shipped with the app at `url` (relative to the app's folder).
    fn bundled_request(
        &self,
        url: &str,
        display: &str,
        sha256: &str,
        size: u64,
    ) -> Result<FileRequest, String> {
        let absolute = web_sys::Url::new_with_base(url, &self.base_url)
            .map(|u| u.href())
            .map_err(|e| format!("{url}: not a URL: {}", super::js_error(&e)))?;
        Ok(FileRequest {
            key: format!("compact\n{absolute}"),
            url: absolute,
            display: display.to_owned(),
            sha256: Some(sha256.to_owned()),
            size: Some(size),
            max_size: None,
        })
    }

    /// Model `name`'s generation settings from the catalog's server config; Phi-3's defaults
    /// (with a warning in the log naming the file and the problem) when the file cannot be
    /// had, is invalid or lacks the model.
    async fn generation_config(&mut self, catalog: &Catalog, name: &str) -> GenerationConfig {
        if self.settings.is_none() {
            self.settings = Some(self.fetch_settings(catalog).await);
        }
        let found = match self.settings.as_ref().expect("fetched above") {
            Ok(settings) => settings
                .model(name, &catalog.settings)
                .cloned()
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.clone()),
        };
        found.unwrap_or_else(|e| {
            self.perf.borrow_mut().warnings.push(format!(
                "generation settings: {e}; using the built-in defaults"
            ));
            GenerationConfig::phi3()
        })
    }

    async fn fetch_settings(&self, catalog: &Catalog) -> Result<ServerConfig, String> {
        let url = web_sys::Url::new_with_base(&catalog.settings, &self.base_url)
            .map(|u| u.href())
            .map_err(|e| format!("{}: not a URL: {}", catalog.settings, super::js_error(&e)))?;
        let bytes = super::fetch::get_bytes(&url, self.abort)
            .await
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8(bytes)
            .map_err(|e| format!("{}: not UTF-8: {e}", catalog.settings))?;
        ServerConfig::from_json(&text, &catalog.settings).map_err(|e| e.to_string())
    }

    /// The tokenizer from the catalog's base repo, fetched once per load; `None` (with a
    /// warning in the log) when it cannot be had, so the GGUF's own vocabulary is used.
    async fn hub_tokenizer(&mut self, catalog: &Catalog) -> Option<Tokenizer> {
        if let Some(tokenizer) = &self.tokenizer {
            return tokenizer.clone();
        }
        let display = catalog.tokenizer.display_path();
        let result = match self.fetch_hub(catalog, &catalog.tokenizer, None).await {
            Ok(file) => {
                let parsed = read_all(&file, &display).and_then(|bytes| {
                    Tokenizer::from_json_bytes(&bytes, &display).map_err(|e| e.to_string())
                });
                self.stage_done(format!("parse {display}"));
                parsed
            }
            Err(e) => Err(e),
        };
        let tokenizer = match result {
            Ok(t) => Some(t),
            Err(e) => {
                self.perf
                    .borrow_mut()
                    .warnings
                    .push(format!("tokenizer: {e}; using the GGUF's own vocabulary"));
                None
            }
        };
        self.tokenizer = Some(tokenizer.clone());
        tokenizer
    }

    async fn fetch_hub(
        &mut self,
        catalog: &Catalog,
        file: &RepoFile,
        max_size: Option<(u64, String)>,
    ) -> Result<CachedFile, String> {
        let request = FileRequest {
            key: format!(
                "{}\n{}\n{}\n{}",
                catalog.hub, file.repo, file.revision, file.path
            ),
            url: file.url(&catalog.hub),
            display: file.display_path(),
            sha256: file.sha256.clone(),
            size: file.size,
            max_size,
        };
        self.fetch(&request).await
    }

    async fn fetch(&mut self, request: &FileRequest) -> Result<CachedFile, String> {
        let on_event = &mut *self.on_event;
        let (perf, tier_start_ms) = (self.perf, self.tier_start_ms);
        let mut on_progress = |p| {
            if let Some(current) = perf.borrow_mut().in_progress.as_mut() {
                current.duration_ms = super::now_ms() - tier_start_ms;
            }
            on_event(Event::Progress(p));
        };
        let result = self
            .cache
            .fetch(request, self.abort, &mut on_progress)
            .await;
        self.stage_done(format!("fetch {}", request.display));
        match result {
            Ok(file) => {
                self.network_bytes += file.network_bytes;
                self.cache_bytes += file.cache_bytes;
                let mut perf = self.perf.borrow_mut();
                if let Some(current) = perf.in_progress.as_mut() {
                    *current = self.attempt(current.tier, current.started_at_ms);
                }
                Ok(file)
            }
            Err(CacheError::Storage(e)) => Err(format!("{}: {e}", request.display)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The attempt at `tier` as it stands: time so far and the bytes of its finished files.
    fn attempt(&self, tier: ModelType, started_at_ms: f64) -> TierAttempt {
        TierAttempt {
            tier,
            started_at_ms,
            duration_ms: super::now_ms() - self.tier_start_ms,
            network_bytes: self.network_bytes,
            cache_bytes: self.cache_bytes,
            ok: false,
            error: None,
            stages: self.stages.clone(),
        }
    }

    /// Records that `stage` ended now; it began when the previous one ended.
    fn stage_done(&mut self, stage: String) {
        let now = super::now_ms();
        self.stages.push(StageTime {
            stage,
            ms: now - self.stage_start_ms,
        });
        self.stage_start_ms = now;
    }

    /// The largest weights file this device can hold, from `navigator.deviceMemory`.
    fn device_limit(&self) -> Option<(u64, String)> {
        self.device_memory_gb.map(|gb| {
            let max = gb * (1u64 << 30) as f64 / MEMORY_PER_FILE_BYTE;
            (
                max as u64,
                format!(
                    "the device reports {gb} GB of memory, enough for model files up to {:.1} GB",
                    max / 1e9
                ),
            )
        })
    }
}

/// The engine options with a PEFT adapter parsed from its `adapter_config.json` and
/// `adapter_model.safetensors` bytes, each given with the name its errors use (shapes are
/// checked against the base weights when the model loads).
fn adapter_options(
    options: LoadOptions,
    (config, config_name): (&[u8], &str),
    (weights, weights_name): (&[u8], &str),
) -> Result<LoadOptions, String> {
    let config =
        std::str::from_utf8(config).map_err(|e| format!("{config_name}: not UTF-8: {e}"))?;
    let adapter = Adapter::from_peft(config, weights, weights_name).map_err(|e| e.to_string())?;
    Ok(LoadOptions {
        adapter: Some(adapter),
        ..options
    })
}

fn base_weights_path(catalog: &Catalog) -> String {
    catalog
        .tiers
        .iter()
        .find(|t| t.model_type == ModelType::Base)
        .map(|t| t.weights.display_path())
        .unwrap_or_default()
}

fn read_all(file: &CachedFile, display: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    file.file
        .reader()
        .map_err(|e: StorageError| e.to_string())?
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{display}: {e}"))?;
    Ok(bytes)
}

fn load_session(
    file: &CachedFile,
    display: &str,
    options: &LoadOptions,
    tokenizer: Option<Tokenizer>,
    on_stage: &mut dyn FnMut(LoadStage),
) -> Result<Session, String> {
    let reader = file.file.reader().map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let session = Session::from_gguf_staged(&mut reader, display, options, tokenizer, on_stage)
        .map_err(|e| e.to_string())?;
    mimir_kernels::warm_up();
    on_stage(LoadStage::WarmUp);
    Ok(session)
}

fn model_info(
    session: &Session,
    model_type: ModelType,
    fine_tuned_path: Option<String>,
    base_model_path: String,
    tokenizer_source: String,
) -> ModelInfo {
    ModelInfo {
        status: "ready".into(),
        model_type,
        is_adapter: model_type == ModelType::Adapter,
        fine_tuned_path,
        base_model_path,
        using_fallback: false,
        fallback_reason: None,
        tokenizer_source,
        context_length: session.model().context_length(),
    }
}

/// The worker's memory now: wasm linear memory, and the JS heap where Chrome tells it.
pub fn memory_sample(label: &str) -> MemorySample {
    MemorySample {
        at_ms: js_sys::Date::now(),
        label: label.to_string(),
        wasm_bytes: super::wasm_memory_bytes(),
        js_heap_bytes: super::js_heap_bytes(),
    }
}

/// The message when no tier loaded. The bundled model's error leads: it is the last resort,
/// so it decides whether the tutor works at all, and the status tooltip shows only its first
/// 50 characters. The first tier's error follows when it differs, as the reason the hub did
/// not serve (every hub tier usually fails for the same reason).
fn all_failed(failures: &[(ModelType, String)]) -> String {
    match (failures.last(), failures.first()) {
        (Some((last_tier, last)), Some((first_tier, first))) if first != last => format!(
            "{}: {last}; {}: {first}",
            last_tier.as_str(),
            first_tier.as_str()
        ),
        (Some((tier, reason)), _) => format!("{}: {reason}", tier.as_str()),
        (None, _) => "no model to load".to_string(),
    }
}
