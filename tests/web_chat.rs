//! Browser tests for the chat, the settings panel and the button group: hostile markdown
//! renders inert, Enter sends and Shift+Enter does not, Stop shows while generating,
//! invalid settings are refused, panels close with Escape, the model info panel shows
//! attempts and download progress, and the page state survives corrupt storage. Run in
//! headless Chromium.
#![cfg(target_arch = "wasm32")]

use leptos::prelude::*;
use mimir::catalog::Catalog;
use mimir::conversation::Conversation;
use mimir::engine::generate::{GenerationStats, StopReason};
use mimir::engine::generation_config::GenerationConfig;
use mimir::model_info::{LoadStatus, ModelInfo, ModelType};
use mimir::perf_log::{PerfLog, StageTime, ThreadWork, TierAttempt};
use mimir::protocol::FileProgress;
use mimir::server_config::ServerConfig;
use mimir::ui::button_group::ButtonGroup;
use mimir::ui::chat::ChatView;
use mimir::ui::info_panel::{format_bytes, InfoPanel};
use mimir::ui::settings::SettingsPanel;
use mimir::ui::state::TutorState;
use mimir::ui::storage::{self, CONVERSATION_KEY, PREFERENCES_KEY};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{
    Element, Event, EventInit, HtmlElement, HtmlInputElement, HtmlTextAreaElement, KeyboardEvent,
    KeyboardEventInit,
};

#[path = "support/dom.rs"]
mod dom;

use dom::{document, mount, settle};

wasm_bindgen_test_configure!(run_in_browser);

const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const SCRIPT: &str = "<script>alert(1)</script>";

fn find(root: &Element, selector: &str) -> Option<Element> {
    root.query_selector(selector).unwrap()
}

fn count(root: &Element, selector: &str) -> u32 {
    root.query_selector_all(selector).unwrap().length()
}

fn fire(target: &Element, kind: &str) {
    let init = EventInit::new();
    init.set_bubbles(true);
    let event = Event::new_with_event_init_dict(kind, &init).unwrap();
    target.dispatch_event(&event).unwrap();
}

fn press(target: &Element, key: &str, shift: bool) {
    let init = KeyboardEventInit::new();
    init.set_key(key);
    init.set_shift_key(shift);
    init.set_bubbles(true);
    init.set_cancelable(true);
    let event = KeyboardEvent::new_with_keyboard_event_init_dict("keydown", &init).unwrap();
    target.dispatch_event(&event).unwrap();
}

fn stats() -> GenerationStats {
    GenerationStats {
        prompt_tokens: 30,
        reused_tokens: 0,
        generated_tokens: 9,
        time_to_first_token_ms: 420.0,
        prefill_tokens_per_s: 80.0,
        decode_tokens_per_s: 11.25,
        stop: StopReason::EndOfTurn,
    }
}

/// A chat with recording callbacks.
struct Chat {
    root: HtmlElement,
    conversation: RwSignal<Conversation>,
    generating: RwSignal<bool>,
    sent: RwSignal<Vec<String>>,
    stops: RwSignal<usize>,
}

fn mount_chat(conversation: Conversation) -> Chat {
    let conversation = RwSignal::new(conversation);
    let generating = RwSignal::new(false);
    let sent = RwSignal::new(Vec::<String>::new());
    let stops = RwSignal::new(0usize);
    let notes = RwSignal::new(String::new());
    let root = mount(move || {
        view! {
            <ChatView
                conversation=conversation
                lesson_notes=notes
                generating=generating
                ready=Signal::derive(|| true)
                on_send=Callback::new(move |q: String| sent.update(|s| s.push(q)))
                on_stop=Callback::new(move |_| stops.update(|n| *n += 1))
            />
        }
    });
    Chat {
        root,
        conversation,
        generating,
        sent,
        stops,
    }
}

#[wasm_bindgen_test]
async fn hostile_markdown_renders_as_inert_text() {
    let mut conversation = Conversation::new();
    conversation.push_user(format!("{HOSTILE} and {SCRIPT}"));
    conversation.start_reply();
    conversation.append(&format!(
        "{SCRIPT}\n\n{HOSTILE}\n\nSee [x](javascript:alert(1)), [y](data:text/html,hi) and \
         [the docs](https://example.org/docs). Inline {HOSTILE} with **bold** and `code`.\n\n\
         ![pic](https://example.org/p.png)"
    ));
    conversation.finish(stats());
    let chat = mount_chat(conversation);
    settle().await;
    let root: &Element = &chat.root;

    assert_eq!(
        count(root, "img, script, iframe"),
        0,
        "{}",
        root.inner_html()
    );
    let links = root.query_selector_all("a").unwrap();
    assert_eq!(links.length(), 1);
    let link: Element = links.item(0).unwrap().unchecked_into();
    assert_eq!(
        link.get_attribute("href").as_deref(),
        Some("https://example.org/docs")
    );
    assert_eq!(
        link.get_attribute("rel").as_deref(),
        Some("noopener noreferrer")
    );
    assert_eq!(count(root, "[onerror]"), 0);

    let user = find(root, ".message-user").unwrap().text_content().unwrap();
    assert!(user.contains(&format!("{HOSTILE} and {SCRIPT}")), "{user}");
    let reply = find(root, ".message-assistant .markdown").unwrap();
    let text = reply.text_content().unwrap();
    for visible in [SCRIPT, HOSTILE, "See x, y and the docs", "bold", "pic"] {
        assert!(text.contains(visible), "{visible:?} not in {text:?}");
    }
    assert_eq!(
        find(&reply, "strong").unwrap().text_content().unwrap(),
        "bold"
    );
    assert_eq!(
        find(&reply, "code").unwrap().text_content().unwrap(),
        "code"
    );
    let stats_line = find(root, ".message-stats")
        .unwrap()
        .text_content()
        .unwrap();
    assert!(
        stats_line.starts_with("420 ms to first token"),
        "{stats_line}"
    );
    assert!(stats_line.contains("11.2 tok/s"), "{stats_line}");
}

#[wasm_bindgen_test]
async fn hostile_link_and_html_variants_stay_inert() {
    let payloads = [
        "[a](JaVaScRiPt:alert(1))",
        "[b]( javascript:alert(1) )",
        "[c](javascript&colon;alert(1))",
        "[d](https://example.org/\" onclick=\"alert(1))",
        "[e](//evil.example/x)",
        "[f](vbscript:msgbox(1))",
        "<javascript:alert(1)>",
        "[g][1]\n\n[1]: javascript:alert(1)",
        "<svg onload=alert(1)><a href=\"javascript:alert(1)\">h</a></svg>",
        "<!-- <script>alert(1)</script> -->",
        "```\n</code></pre><script>alert(1)</script>\n```",
        "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
        "<style>*{display:none}</style><link rel=stylesheet href=//evil.example/x.css>",
        "![i](javascript:alert(1)) <object data=x></object> <form action=//evil.example>",
    ];
    let mut conversation = Conversation::new();
    conversation.push_user(payloads.join("\n\n"));
    conversation.start_reply();
    conversation.append(&payloads.join("\n\n"));
    conversation.finish(stats());
    let chat = mount_chat(conversation);
    settle().await;
    // The messages only: the page's own composer is a form.
    let messages = find(&chat.root, ".message-list").unwrap();
    let root = &messages;
    assert_eq!(
        count(
            root,
            "img, script, iframe, svg, style, link, object, form, [onclick], [onload], [srcdoc]"
        ),
        0,
        "{}",
        root.inner_html()
    );
    let links = root.query_selector_all("a").unwrap();
    for i in 0..links.length() {
        let link: Element = links.item(i).unwrap().unchecked_into();
        let href = link.get_attribute("href").unwrap_or_default();
        assert!(href.starts_with("https://"), "link to {href:?}");
    }
    let reply = find(root, ".message-assistant .markdown")
        .unwrap()
        .text_content()
        .unwrap();
    assert!(reply.contains("<script>alert(1)</script>"), "{reply}");
}

#[wasm_bindgen_test]
async fn info_panel_shows_the_hub_and_a_refused_address_as_text() {
    let hostile = format!("javascript:{HOSTILE}");
    let catalog = Catalog::from_json(include_str!("../public/catalog.json"), "catalog").unwrap();
    let (_, choice) = catalog.choose_hub(Some(&hostile), None);
    let hub = RwSignal::new(Some(choice));
    let perf = RwSignal::new(PerfLog::default());
    let progress = RwSignal::new(Vec::<FileProgress>::new());
    let info = RwSignal::new(None::<ModelInfo>);
    let root =
        mount(move || view! { <InfoPanel model_info=info perf=perf progress=progress hub=hub /> });
    settle().await;
    assert_eq!(
        find(&root, ".info-hub").unwrap().text_content().unwrap(),
        "https://huggingface.co (from the catalog)"
    );
    let refused = find(&root, ".info-hub-refused")
        .unwrap()
        .text_content()
        .unwrap();
    assert!(refused.contains("the page address (?hub=)"), "{refused}");
    assert!(refused.contains(HOSTILE), "{refused}");
    assert_eq!(count(&root, "img"), 0, "{}", root.inner_html());
}

#[wasm_bindgen_test]
async fn enter_sends_and_shift_enter_does_not() {
    let chat = mount_chat(Conversation::new());
    settle().await;
    let input: HtmlTextAreaElement = find(&chat.root, "textarea#chat-input")
        .unwrap()
        .unchecked_into();
    input.set_value("What is a prime number?\nPlease explain.");
    fire(&input, "input");
    settle().await;

    press(&input, "Enter", true);
    settle().await;
    assert!(chat.sent.get_untracked().is_empty());
    assert_eq!(input.value(), "What is a prime number?\nPlease explain.");

    press(&input, "Enter", false);
    settle().await;
    assert_eq!(
        chat.sent.get_untracked(),
        vec!["What is a prime number?\nPlease explain.".to_string()]
    );
    assert_eq!(input.value(), "");

    // Blank questions are not sent.
    input.set_value("   \n");
    fire(&input, "input");
    press(&input, "Enter", false);
    settle().await;
    assert_eq!(chat.sent.get_untracked().len(), 1);
}

#[wasm_bindgen_test]
async fn stop_replaces_send_while_generating_and_tokens_stream_in() {
    let chat = mount_chat(Conversation::new());
    settle().await;
    assert!(find(&chat.root, ".composer-send").is_some());
    assert!(find(&chat.root, ".composer-stop").is_none());

    chat.conversation
        .update(|c| drop(c.ask("Name a prime.", "SYS", None)));
    chat.generating.set(true);
    settle().await;
    assert!(find(&chat.root, ".composer-send").is_none());
    let stop: HtmlElement = find(&chat.root, ".composer-stop").unwrap().unchecked_into();
    assert_eq!(stop.text_content().unwrap().trim(), "Stop");
    assert!(find(&chat.root, ".message-streaming").is_some());

    // Enter does not send while a reply streams.
    let input: HtmlTextAreaElement = find(&chat.root, "textarea").unwrap().unchecked_into();
    input.set_value("Another one");
    fire(&input, "input");
    press(&input, "Enter", false);

    for (token, so_far) in [
        ("Seven", "Seven"),
        (" is", "Seven is"),
        (" prime.", "Seven is prime."),
    ] {
        chat.conversation.update(|c| {
            c.append(token);
        });
        settle().await;
        let shown = find(&chat.root, ".message-streaming .markdown")
            .unwrap()
            .text_content()
            .unwrap();
        assert_eq!(shown, so_far);
    }
    stop.click();
    settle().await;
    assert_eq!(chat.stops.get_untracked(), 1);
    assert!(chat.sent.get_untracked().is_empty());

    chat.conversation.update(|c| {
        c.finish(stats());
    });
    chat.generating.set(false);
    settle().await;
    assert!(find(&chat.root, ".message-streaming").is_none());
    assert!(find(&chat.root, ".composer-stop").is_none());
    assert!(find(&chat.root, ".composer-send").is_some());

    let clear: HtmlElement = find(&chat.root, ".chat-clear").unwrap().unchecked_into();
    clear.click();
    settle().await;
    assert!(chat.conversation.with_untracked(Conversation::is_empty));
    assert_eq!(count(&chat.root, ".message-user"), 0);
}

#[wasm_bindgen_test]
async fn settings_refuse_invalid_values() {
    let config = RwSignal::new(GenerationConfig::default());
    let hub = RwSignal::new(None::<String>);
    let prompt = RwSignal::new("SYS".to_string());
    let root = mount(move || {
        view! {
            <SettingsPanel
                system_prompt=prompt
                config=config
                defaults=Signal::derive(GenerationConfig::default)
                hub=hub
                on_clear_cache=Callback::new(|_| ())
            />
        }
    });
    settle().await;
    let temperature: HtmlInputElement = find(&root, "#setting-temperature")
        .unwrap()
        .unchecked_into();
    let error = || {
        find(&root, "#setting-temperature-error")
            .unwrap()
            .text_content()
            .unwrap()
    };
    temperature.set_value("-1");
    fire(&temperature, "change");
    settle().await;
    assert!(
        error().contains("temperature must be a finite number >= 0"),
        "{}",
        error()
    );
    assert_eq!(
        temperature.get_attribute("aria-invalid").as_deref(),
        Some("true")
    );
    assert_eq!(config.get_untracked().temperature, 0.7);

    temperature.set_value("0.25");
    fire(&temperature, "change");
    settle().await;
    assert_eq!(error(), "");
    assert_eq!(config.get_untracked().temperature, 0.25);

    let max_tokens: HtmlInputElement = find(&root, "#setting-max-tokens").unwrap().unchecked_into();
    max_tokens.set_value("5000");
    fire(&max_tokens, "change");
    settle().await;
    assert_eq!(config.get_untracked().max_tokens, 512);

    let hub_input: HtmlInputElement = find(&root, "#setting-hub").unwrap().unchecked_into();
    let hub_error = || {
        find(&root, "#setting-hub-error")
            .unwrap()
            .text_content()
            .unwrap()
    };
    hub_input.set_value("javascript:alert(1)");
    fire(&hub_input, "change");
    settle().await;
    assert!(
        hub_error().contains("javascript:alert(1)"),
        "{}",
        hub_error()
    );
    assert_eq!(hub.get_untracked(), None);

    hub_input.set_value("http://127.0.0.1:8081/");
    fire(&hub_input, "change");
    settle().await;
    assert_eq!(hub_error(), "");
    assert_eq!(
        hub.get_untracked().as_deref(),
        Some("http://127.0.0.1:8081")
    );
}

#[wasm_bindgen_test]
async fn settings_show_the_live_models_defaults_under_the_students_values() {
    let settings = ServerConfig::from_json(
        include_str!("../training/configs/server_config.json"),
        "server_config.json",
    )
    .unwrap();
    let smollm2 = settings.models["smollm2-135m-instruct"].clone();
    // Another test's saved settings would count as the student's.
    let local = web_sys::window().unwrap().local_storage().unwrap().unwrap();
    local.clear().unwrap();
    let state = TutorState::restore();
    state.config.update(|c| c.temperature = 0.3);
    state.model_ready(smollm2.clone());
    let root = mount(move || {
        view! {
            <SettingsPanel
                system_prompt=state.system_prompt
                config=state.config
                defaults=Signal::derive(move || state.model_config.get().unwrap_or_default())
                hub=state.hub
                on_clear_cache=Callback::new(|_| ())
            />
        }
    });
    settle().await;
    let value = |id: &str| {
        find(&root, id)
            .unwrap()
            .unchecked_into::<HtmlInputElement>()
            .value()
    };
    let default_of = |id: &str| find(&root, &format!("{id} ~ .field-default")).unwrap();
    assert_eq!(value("#setting-max-tokens"), "384", "the model's own value");
    assert_eq!(
        default_of("#setting-max-tokens").text_content().unwrap(),
        "Model default: 384"
    );
    assert!(!default_of("#setting-max-tokens")
        .class_list()
        .contains("field-changed"));
    assert_eq!(
        value("#setting-temperature"),
        "0.3",
        "the student's value stays"
    );
    let temperature_default = default_of("#setting-temperature");
    assert_eq!(
        temperature_default.text_content().unwrap(),
        "Model default: 0.7"
    );
    assert!(temperature_default.class_list().contains("field-changed"));

    let restore: HtmlElement = root
        .query_selector_all(".settings-generation button")
        .unwrap()
        .item(0)
        .unwrap()
        .unchecked_into();
    restore.click();
    settle().await;
    assert_eq!(state.config.get_untracked(), smollm2);
    assert_eq!(value("#setting-temperature"), "0.7");
    assert!(!temperature_default.class_list().contains("field-changed"));
}

#[wasm_bindgen_test]
async fn panels_open_from_the_group_and_close_with_escape() {
    let root = mount(|| {
        view! {
            <ButtonGroup
                status=Signal::derive(|| LoadStatus::Failed("offline".into()))
                settings=|| view! { <p class="settings-content">"settings here"</p> }
                info=|| view! { <p class="info-content">"info here"</p> }
            />
        }
    });
    settle().await;
    let panel: HtmlElement = find(&root, "#settings-panel").unwrap().unchecked_into();
    assert!(panel.hidden());
    assert_eq!(panel.get_attribute("role").as_deref(), Some("dialog"));
    let toggle: HtmlElement = find(&root, "[aria-controls=settings-panel]")
        .unwrap()
        .unchecked_into();
    toggle.click();
    settle().await;
    assert!(!panel.hidden());
    assert_eq!(
        toggle.get_attribute("aria-expanded").as_deref(),
        Some("true")
    );
    assert_eq!(
        document().active_element().map(|e| e.id()).as_deref(),
        Some("settings-panel")
    );
    assert!(find(&root, "#settings-panel .settings-content").is_some());

    press(&panel, "Escape", false);
    settle().await;
    assert!(panel.hidden());
    assert_eq!(
        toggle.get_attribute("aria-expanded").as_deref(),
        Some("false")
    );
    assert_eq!(
        document()
            .active_element()
            .and_then(|e| e.get_attribute("aria-controls"))
            .as_deref(),
        Some("settings-panel")
    );

    // Opening the other panel closes the first.
    let info_toggle: HtmlElement = find(&root, "[aria-controls=info-panel]")
        .unwrap()
        .unchecked_into();
    toggle.click();
    info_toggle.click();
    settle().await;
    assert!(panel.hidden());
    let info: HtmlElement = find(&root, "#info-panel").unwrap().unchecked_into();
    assert!(!info.hidden());
    assert!(find(&root, ".status-button-error").is_some());
}

#[wasm_bindgen_test]
async fn info_panel_shows_attempts_progress_and_offers_the_log() {
    let attempt = |tier, ok, error: Option<&str>| TierAttempt {
        tier,
        started_at_ms: 0.0,
        duration_ms: 1530.0,
        network_bytes: 2_500_000,
        cache_bytes: 0,
        ok,
        error: error.map(str::to_string),
        stages: [("fetch model.gguf", 1200.4), ("weights", 329.6)]
            .map(|(stage, ms)| StageTime {
                stage: stage.into(),
                ms,
            })
            .into(),
    };
    let perf = RwSignal::new(PerfLog {
        attempts: vec![
            attempt(ModelType::FineTuned, false, Some("mimir.gguf: HTTP 404")),
            attempt(ModelType::Compact, true, None),
        ],
        fallback_activations: 3,
        kernels: "SIMD128 + relaxed SIMD, 2 threads".into(),
        thread_work: Some(ThreadWork {
            tasks: 400,
            by_other_threads: 191,
        }),
        ..PerfLog::default()
    });
    let progress = RwSignal::new(vec![
        FileProgress {
            file: "microsoft/phi3/model.gguf".into(),
            bytes: 250,
            total: Some(1000),
            rate_bytes_per_s: 100.0,
            eta_s: Some(7.5),
            from_cache: false,
        },
        FileProgress {
            file: "tokenizer.json".into(),
            bytes: 10,
            total: None,
            rate_bytes_per_s: 0.0,
            eta_s: None,
            from_cache: true,
        },
    ]);
    let info = RwSignal::new(None::<ModelInfo>);
    let root = mount(move || view! { <InfoPanel model_info=info perf=perf progress=progress /> });
    settle().await;

    let bars = root.query_selector_all("progress").unwrap();
    assert_eq!(bars.length(), 2);
    let first: Element = bars.item(0).unwrap().unchecked_into();
    assert_eq!(first.get_attribute("max").as_deref(), Some("1000"));
    assert_eq!(first.get_attribute("value").as_deref(), Some("250"));
    let second: Element = bars.item(1).unwrap().unchecked_into();
    assert_eq!(
        second.get_attribute("value"),
        None,
        "no total: indeterminate"
    );
    let details = root.text_content().unwrap();
    assert!(
        details.contains("250 B of 1.0 KB, 100 B/s, about 8 s left"),
        "{details}"
    );
    assert!(details.contains("10 B, from the cache"), "{details}");
    assert_eq!(count(&root, ".attempts tbody tr"), 2);
    assert_eq!(count(&root, ".attempt-failed"), 1);
    assert!(details.contains("mimir.gguf: HTTP 404"));
    assert_eq!(count(&root, ".attempt-stages"), 2);
    assert!(
        details.contains("fetch model.gguf 1200 ms · weights 330 ms"),
        "{details}"
    );
    assert!(details.contains("Fallbacks used (all visits): 3"));
    assert_eq!(
        find(&root, ".info-kernels")
            .unwrap()
            .text_content()
            .unwrap(),
        "Engine kernels: SIMD128 + relaxed SIMD, 2 threads \
         (the other threads ran 48 % of 400 matmul and attention tasks)"
    );
    assert!(details.contains("No model is live yet."));

    progress.set(Vec::new());
    info.set(Some(ModelInfo {
        status: "ready".into(),
        model_type: ModelType::Compact,
        is_adapter: false,
        fine_tuned_path: None,
        base_model_path: "models/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        using_fallback: true,
        fallback_reason: Some("fine-tuned: HTTP 404".into()),
        tokenizer_source: "gguf".into(),
        context_length: 2048,
    }));
    settle().await;
    assert_eq!(count(&root, "progress"), 0);
    let details = root.text_content().unwrap();
    assert!(
        details.contains("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
        "{details}"
    );
    assert!(details.contains("fine-tuned: HTTP 404"));

    let download: HtmlElement = root
        .query_selector_all("button")
        .unwrap()
        .item(0)
        .unwrap()
        .unchecked_into();
    assert_eq!(download.text_content().unwrap(), "Download log (JSON)");
    download.click();
    settle().await;
    assert_eq!(
        find(&root, ".field-error").unwrap().text_content().unwrap(),
        ""
    );
    assert_eq!(format_bytes(2_500_000), "2.5 MB");
}

#[wasm_bindgen_test]
async fn info_panel_follows_a_load_as_the_log_changes() {
    let attempt = |tier, duration_ms, error: Option<&str>| TierAttempt {
        tier,
        started_at_ms: 0.0,
        duration_ms,
        network_bytes: 1_000_000,
        cache_bytes: 0,
        ok: false,
        error: error.map(str::to_string),
        stages: Vec::new(),
    };
    let perf = RwSignal::new(PerfLog {
        in_progress: Some(attempt(ModelType::FineTuned, 500.0, None)),
        ..PerfLog::default()
    });
    let root = mount(move || {
        view! { <InfoPanel model_info=Signal::derive(|| None) perf=perf progress=Signal::derive(Vec::new) /> }
    });
    settle().await;
    let loading = find(&root, ".attempts tbody tr.attempt-loading").unwrap();
    assert!(loading.text_content().unwrap().contains("fine-tuned0.5 s"));
    assert!(loading.text_content().unwrap().ends_with("loading…"));
    assert_eq!(count(&root, ".attempt-failed"), 0);

    // The worker's next answer: the tier failed, the next one is being tried.
    perf.set(PerfLog {
        attempts: vec![attempt(
            ModelType::FineTuned,
            900.0,
            Some("x.gguf: HTTP 404"),
        )],
        in_progress: Some(attempt(ModelType::Adapter, 2500.0, None)),
        ..PerfLog::default()
    });
    settle().await;
    assert_eq!(count(&root, ".attempts tbody tr"), 2);
    assert!(find(&root, ".attempt-failed")
        .unwrap()
        .text_content()
        .unwrap()
        .contains("x.gguf: HTTP 404"));
    let loading = find(&root, ".attempt-loading").unwrap();
    assert!(loading.text_content().unwrap().starts_with("adapter2.5 s"));
}

#[wasm_bindgen_test]
async fn page_state_survives_corrupt_storage_and_saves_finished_replies() {
    storage::save(CONVERSATION_KEY, "{not json").unwrap();
    storage::save(
        PREFERENCES_KEY,
        r#"{"hub":"javascript:alert(1)","lesson_notes":"Fractions"}"#,
    )
    .unwrap();
    let state = TutorState::restore();
    assert!(state.conversation.with_untracked(Conversation::is_empty));
    assert_eq!(state.lesson_notes.get_untracked(), "Fractions");
    assert_eq!(state.hub.get_untracked(), None);
    let problems = state.storage_problems.get_untracked();
    assert_eq!(problems.len(), 2, "{problems:?}");

    let messages = state.ask("What is 1/2 + 1/4?".into());
    assert_eq!(messages.last().unwrap().content, "What is 1/2 + 1/4?");
    assert_eq!(messages[messages.len() - 2].content, "Context: Fractions");
    state.conversation.update(|c| {
        c.append("3/4");
    });
    settle().await;
    // Not saved while streaming.
    assert_eq!(
        storage::load(CONVERSATION_KEY).as_deref(),
        Some("{not json")
    );
    state.conversation.update(|c| {
        c.finish(stats());
    });
    settle().await;
    let saved = Conversation::from_json(&storage::load(CONVERSATION_KEY).unwrap()).unwrap();
    assert_eq!(saved, state.conversation.get_untracked());

    // A model with its own settings: the student's changed temperature stays on top.
    state.config.update(|c| c.temperature = 0.1);
    state.model_ready(GenerationConfig::phi3());
    assert_eq!(state.config.get_untracked().temperature, 0.1);
    assert_eq!(
        state.config.get_untracked().stop_ids,
        vec![32000, 32001, 32007]
    );
    settle().await;
    let prefs = storage::load(PREFERENCES_KEY).unwrap();
    assert!(prefs.contains(r#""temperature":0.1"#), "{prefs}");
}
