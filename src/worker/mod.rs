//! The engine worker: a dedicated Web Worker that downloads, caches, verifies and loads the
//! model (see [`tiers`]) and streams replies to the page, one [`Request`] and [`Event`] JSON
//! message at a time. Generation returns to the event loop between tokens, so a `Stop`
//! arrives while a reply is being written.

pub mod cache;
pub mod cache_api;
pub mod fetch;
pub mod opfs;
pub mod stats;
pub mod store;
#[cfg(target_feature = "atomics")]
pub mod threads;
pub mod tiers;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, WorkerGlobalScope};

use crate::engine::chat::ChatMessage;
use crate::engine::clock::Clock;
use crate::engine::generate::Session;
use crate::engine::generation_config::GenerationConfig;
use crate::engine::number_guard::NumberGuard;
use crate::model_info::ModelInfo;
use crate::perf_log::{PerfLog, ThreadWork};
use crate::protocol::{Event, Request};
use crate::tools::LocalDateTime;
use crate::tutor::{TurnInput, TurnPlan, Tutor};
use cache::ModelCache;
use fetch::Abort;
use tiers::{LoadError, Loaded, Loader};

/// Where the app keeps its files (an OPFS directory, or the start of its caches' names in the Cache API).
pub const APP_DIR: &str = "mimir";

/// The worker's global scope (`self`).
pub fn global() -> WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

/// Milliseconds from `performance.now()`.
pub fn now_ms() -> f64 {
    global()
        .performance()
        .map_or_else(js_sys::Date::now, |p| p.now())
}

/// The browser clock for the engine.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrowserClock;

impl Clock for BrowserClock {
    fn now_ms(&self) -> f64 {
        now_ms()
    }
}

/// A JS error as text (`name: message`, or its string form).
pub fn js_error(error: &JsValue) -> String {
    if let Some(e) = error.dyn_ref::<js_sys::Error>() {
        format!("{}: {}", String::from(e.name()), String::from(e.message()))
    } else {
        error.as_string().unwrap_or_else(|| format!("{error:?}"))
    }
}

/// `navigator.deviceMemory` in GB (Chromium only; read by name, the binding is unstable).
pub fn device_memory_gb() -> Option<f64> {
    Reflect::get(&global().navigator(), &JsValue::from_str("deviceMemory"))
        .ok()
        .and_then(|v| v.as_f64())
}

/// Size of this wasm instance's linear memory.
pub fn wasm_memory_bytes() -> u64 {
    wasm_bindgen::memory()
        .unchecked_into::<js_sys::WebAssembly::Memory>()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as u64
}

/// `performance.memory.usedJSHeapSize`, where the browser has it.
pub fn js_heap_bytes() -> Option<u64> {
    let performance = global().performance()?;
    let memory = Reflect::get(&performance, &JsValue::from_str("memory")).ok()?;
    Reflect::get(&memory, &JsValue::from_str("usedJSHeapSize"))
        .ok()?
        .as_f64()
        .map(|b| b as u64)
}

/// `navigator.storage.estimate()` as `(usage, quota)`, where the browser answers.
pub async fn storage_estimate() -> Option<(u64, u64)> {
    let promise = global().navigator().storage().estimate().ok()?;
    let estimate = JsFuture::from(promise).await.ok()?;
    let field = |name: &str| {
        Reflect::get(&estimate, &JsValue::from_str(name))
            .ok()?
            .as_f64()
            .map(|v| v as u64)
    };
    Some((field("usage")?, field("quota")?))
}

/// Asks for persistent storage (`navigator.storage.persist()`); false when refused.
pub async fn request_persistence() -> bool {
    let Ok(promise) = global().navigator().storage().persist() else {
        return false;
    };
    JsFuture::from(promise)
        .await
        .is_ok_and(|granted| granted.is_truthy())
}

/// A `MessageChannel` whose messages to itself wake the waiting [`yield_to_events`] calls,
/// oldest first.
struct YieldChannel {
    channel: web_sys::MessageChannel,
    waiting: Rc<RefCell<VecDeque<js_sys::Function>>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl YieldChannel {
    fn new() -> Option<Self> {
        let channel = web_sys::MessageChannel::new().ok()?;
        let waiting: Rc<RefCell<VecDeque<js_sys::Function>>> = Rc::default();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
            let waiting = Rc::clone(&waiting);
            move |_| {
                let next = waiting.borrow_mut().pop_front();
                if let Some(resolve) = next {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            }
        });
        channel
            .port1()
            .set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Some(Self {
            channel,
            waiting,
            _on_message: on_message,
        })
    }
}

thread_local! {
    static YIELD_CHANNEL: Option<YieldChannel> = YieldChannel::new();
}

/// Lets the event loop run, so queued messages (a `Stop`) are handled. A message posted to
/// ourselves through a `MessageChannel` is a task of its own that runs at once; `setTimeout(0)`
/// is clamped to 4 ms once timers nest five deep, which a token loop reaches after five tokens
/// (`make bench` measures both). Falls back to `setTimeout(0)` without a channel.
pub async fn yield_to_events() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let posted = YIELD_CHANNEL.with(|yielder| {
            yielder.as_ref().is_some_and(|y| {
                // The message arrives in a later task, after the resolver is queued.
                let posted = y.channel.port2().post_message(&JsValue::NULL).is_ok();
                if posted {
                    y.waiting.borrow_mut().push_back(resolve.clone());
                }
                posted
            })
        });
        if !posted {
            let _ = global().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 0);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// What the worker holds between messages.
#[derive(Default)]
struct State {
    /// The live model; taken out while a reply is generated.
    session: RefCell<Option<Session>>,
    /// The turn planner for the live model, built at its first reply.
    tutor: RefCell<Option<Tutor>>,
    /// What is live, and its generation settings.
    live: RefCell<Option<(ModelInfo, GenerationConfig)>>,
    perf: RefCell<PerfLog>,
    loading: RefCell<Option<Abort>>,
    generating: Cell<bool>,
    stop: Cell<bool>,
}

/// Starts the worker: answers messages until the page terminates it.
pub fn run() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let state = Rc::new(State::default());
    start_threads(&mut state.perf.borrow_mut());
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new({
        let state = Rc::clone(&state);
        move |message: MessageEvent| {
            let text = message.data().as_string().unwrap_or_default();
            match Request::from_json(&text) {
                Ok(request) => handle(&state, request),
                Err(e) => post(&Event::Error {
                    message: format!("not a request: {e}"),
                }),
            }
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    spawn_local(async move {
        if let Ok(dir) = store::Store::open(APP_DIR).await {
            state.perf.borrow_mut().fallback_activations = stats::fallback_count(&dir).await;
        }
        post(&Event::Started);
    });
}

/// Starts the matmul threads where this build has shared memory, and records the kernels
/// and threads the engine runs on.
fn start_threads(perf: &mut PerfLog) {
    let instructions = mimir_kernels::instructions();
    #[cfg(target_feature = "atomics")]
    let threads = match threads::wanted(&global()) {
        1 => 1,
        wanted => match threads::start(wanted) {
            Ok(()) => wanted,
            Err(e) => {
                perf.warnings
                    .push(format!("the engine runs on one thread: {e}"));
                1
            }
        },
    };
    #[cfg(not(target_feature = "atomics"))]
    let threads = 1;
    let plural = if threads == 1 { "" } else { "s" };
    perf.kernels = format!("{instructions}, {threads} thread{plural}");
}

/// Sends an event to the page.
pub fn post(event: &Event) {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let _ = scope.post_message(&JsValue::from_str(&event.to_json()));
}

fn handle(state: &Rc<State>, request: Request) {
    let busy = |what: &str| {
        post(&Event::Error {
            message: format!("{what} is already running"),
        })
    };
    match request {
        Request::Load { catalog } => {
            if state.loading.borrow().is_some() {
                return busy("a load");
            }
            if state.generating.get() {
                return busy("a reply");
            }
            let abort = match Abort::new() {
                Ok(a) => a,
                Err(message) => return post(&Event::Error { message }),
            };
            *state.loading.borrow_mut() = Some(abort.clone());
            let state = Rc::clone(state);
            spawn_local(async move {
                load(&state, &catalog, &abort).await;
                *state.loading.borrow_mut() = None;
            });
        }
        Request::Generate { messages, config } => {
            start_reply(state, Prompt::Chat(messages), config)
        }
        Request::Bench { prompt, config } => start_reply(state, Prompt::Tokens(prompt), config),
        Request::Stop => {
            state.stop.set(true);
            if let Some(abort) = state.loading.borrow().as_ref() {
                abort.abort();
            }
        }
        Request::Info => {
            state.perf.borrow_mut().thread_work =
                mimir_kernels::pool::global_work().map(|work| ThreadWork {
                    tasks: work.tasks,
                    by_other_threads: work.by_workers,
                });
            post(&Event::Info {
                model_info: state.live.borrow().as_ref().map(|l| l.0.clone()),
                perf: state.perf.borrow().clone(),
            })
        }
        Request::ClearCache => {
            if state.loading.borrow().is_some() {
                return busy("a load");
            }
            spawn_local(async {
                let cleared = async { ModelCache::open(&cache_path(APP_DIR)).await?.clear().await };
                post(&match cleared.await {
                    Ok(freed_bytes) => Event::CacheCleared { freed_bytes },
                    Err(e) => Event::Error {
                        message: format!("clearing cached models: {e}"),
                    },
                });
            });
        }
    }
}

/// What a reply answers: a conversation, or raw token ids (the benchmark, past end-of-turn).
enum Prompt {
    Chat(Vec<ChatMessage>),
    Tokens(Vec<u32>),
}

fn start_reply(state: &Rc<State>, prompt: Prompt, config: GenerationConfig) {
    if state.generating.get() {
        return post(&Event::Error {
            message: "a reply is already running".into(),
        });
    }
    if state.live.borrow().is_none() {
        return post(&Event::Error {
            message: "no model is loaded yet".into(),
        });
    }
    state.generating.set(true);
    state.stop.set(false);
    let state = Rc::clone(state);
    spawn_local(async move {
        if let Err(message) = generate(&state, &prompt, &config).await {
            post(&Event::Error { message });
        }
        state.generating.set(false);
    });
}

/// The cache directory under an app directory.
pub fn cache_path(app_dir: &str) -> String {
    format!("{app_dir}/models")
}

async fn load(state: &State, catalog: &crate::catalog::Catalog, abort: &Abort) {
    // The loader writes to the shared log as it goes (borrowing it only for each update),
    // so `Info` during a load answers with the attempts and warnings so far.
    if !request_persistence().await {
        state.perf.borrow_mut().warnings.push(
            "the browser did not grant persistent storage; cached models may be evicted".into(),
        );
    }
    let result = match ModelCache::open(&cache_path(APP_DIR)).await {
        Ok(cache) => {
            let base_url = global().location().href();
            let mut on_event = |event: Event| post(&event);
            Loader::new(&cache, abort, &state.perf, &mut on_event, base_url)
                .load(catalog)
                .await
        }
        Err(e) => Err(LoadError::AllFailed(e.to_string())),
    };
    match result {
        Ok(Loaded {
            session,
            model_info,
            config,
        }) => {
            if model_info.using_fallback {
                if let Ok(dir) = store::Store::open(APP_DIR).await {
                    let count = stats::count_fallback(&dir).await;
                    state.perf.borrow_mut().fallback_activations = count;
                }
            }
            post(&Event::Ready {
                model_info: model_info.clone(),
                config: config.clone(),
            });
            *state.session.borrow_mut() = Some(session);
            state.tutor.take();
            *state.live.borrow_mut() = Some((model_info, config));
        }
        Err(LoadError::Cancelled) => post(&Event::LoadFailed {
            message: "loading was cancelled".into(),
        }),
        Err(LoadError::AllFailed(message)) => post(&Event::LoadFailed { message }),
    }
}

async fn generate(state: &State, prompt: &Prompt, config: &GenerationConfig) -> Result<(), String> {
    let mut session = state
        .session
        .take()
        .ok_or("no model is loaded yet (or a load replaced it)")?;
    let result = reply(state, &mut session, prompt, config).await;
    *state.session.borrow_mut() = Some(session);
    result
}

/// Classifies the message and runs its tool with the live model's [`Tutor`] (built on first
/// use: it indexes the vocabulary once).
fn plan_turn(
    state: &State,
    session: &mut Session,
    input: &TurnInput<'_>,
    clock: &dyn Clock,
) -> Result<TurnPlan, String> {
    let mut tutor = state.tutor.borrow_mut();
    if tutor.is_none() {
        *tutor = Some(Tutor::new(session).map_err(|e| e.to_string())?);
    }
    let tutor = tutor.as_mut().expect("just built");
    tutor
        .plan_turn(session, input, clock)
        .map_err(|e| e.to_string())
}

/// The student's local date and time and language, for the `date_time` tool.
fn local_now() -> LocalDateTime {
    let date = js_sys::Date::new_0();
    let locale = js_sys::Reflect::get(&global().navigator(), &"language".into())
        .ok()
        .and_then(|l| l.as_string())
        .unwrap_or_else(|| "en".to_owned());
    LocalDateTime {
        year: date.get_full_year() as i32,
        month: date.get_month() + 1,
        day: date.get_date(),
        hour: date.get_hours(),
        minute: date.get_minutes(),
        locale,
    }
}

/// The messages, the reply's forced start and the settings a chat reply is generated from:
/// the turn planned by the tutor (strategy, tool result as context and as the reply's first
/// line; [`Event::Turn`] tells the page), or, when planning fails, the page's messages as
/// they are, with a warning in the log.
fn plan_reply(
    state: &State,
    session: &mut Session,
    messages: &[ChatMessage],
    config: &GenerationConfig,
    clock: &dyn Clock,
) -> (
    Vec<ChatMessage>,
    Option<String>,
    GenerationConfig,
    Option<NumberGuard>,
) {
    let now = local_now();
    let Some(input) = TurnInput::from_messages(messages, Some(&now)) else {
        return (messages.to_vec(), None, config.clone(), None);
    };
    match plan_turn(state, session, &input, clock) {
        Ok(plan) => {
            let config = plan.generation_config(config);
            let prefix = plan.reply_prefix();
            let guard = plan.number_guard(session);
            post(&Event::Turn {
                action: plan.action,
                tool: plan.tool,
            });
            (plan.messages, prefix, config, guard)
        }
        Err(e) => {
            // The reply goes on without a strategy or tool rather than not at all.
            state
                .perf
                .borrow_mut()
                .warnings
                .push(format!("planning the turn failed, answering directly: {e}"));
            (messages.to_vec(), None, config.clone(), None)
        }
    }
}

async fn reply(
    state: &State,
    session: &mut Session,
    prompt: &Prompt,
    config: &GenerationConfig,
) -> Result<(), String> {
    let clock = BrowserClock;
    let (ids, ignore_eos, config, mut guard) = match prompt {
        Prompt::Chat(messages) => {
            let (messages, prefix, config, guard) =
                plan_reply(state, session, messages, config, &clock);
            let pieces = session.template().render(&messages, true);
            let mut ids = session
                .tokenizer()
                .encode_prompt(&pieces, true)
                .map_err(|e| e.to_string())?;
            if let Some(prefix) = prefix {
                // The reply starts with the tool's exact result; the model continues it.
                let prefix_ids = session
                    .tokenizer()
                    .encode(&prefix, false)
                    .map_err(|e| e.to_string())?;
                ids.extend(prefix_ids);
                post(&Event::Token { text: prefix });
            }
            (ids, false, config, guard)
        }
        Prompt::Tokens(ids) => (ids.clone(), true, config.clone(), None),
    };
    let started = match guard.as_mut() {
        Some(guard) => session.start_constrained(&ids, &config, &clock, guard),
        None => session.start(&ids, &config, ignore_eos, &clock),
    };
    let mut reply = started.map_err(|e| e.to_string())?;
    loop {
        if state.stop.get() {
            reply.cancel();
        }
        match reply.step().map_err(|e| e.to_string())? {
            Some(text) => post(&Event::Token { text }),
            None => break,
        }
        yield_to_events().await;
    }
    let generation = reply.finish().map_err(|e| e.to_string())?;
    let mut perf = state.perf.borrow_mut();
    perf.replies.push(generation.stats.clone());
    // Linear memory only grows, so the sample after a reply is the peak so far.
    perf.memory.push(tiers::memory_sample("after a reply"));
    drop(perf);
    post(&Event::Done {
        stats: generation.stats,
    });
    Ok(())
}
