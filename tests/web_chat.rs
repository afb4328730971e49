//! Browser tests for the chat, the settings panel and the button group: hostile markdown
//! renders inert, Enter sends and Shift+Enter does not, Stop shows while generating,
//! invalid settings are refused, panels close with Escape. Run in headless Chromium.
#![cfg(target_arch = "wasm32")]

use leptos::prelude::*;
use mimir::conversation::Conversation;
use mimir::engine::generate::{GenerationStats, StopReason};
use mimir::engine::generation_config::GenerationConfig;
use mimir::model_info::LoadStatus;
use mimir::ui::button_group::ButtonGroup;
use mimir::ui::chat::ChatView;
use mimir::ui::settings::SettingsPanel;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{
    Element, Event, EventInit, HtmlElement, HtmlInputElement, HtmlTextAreaElement, KeyboardEvent,
    KeyboardEventInit,
};

wasm_bindgen_test_configure!(run_in_browser);

const HOSTILE: &str = "<img src=x onerror=alert(1)>";
const SCRIPT: &str = "<script>alert(1)</script>";

fn document() -> web_sys::Document {
    web_sys::window().unwrap().document().unwrap()
}

/// Mounts `view` into a fresh container and returns the container.
fn mount<V: IntoView + 'static>(view: impl FnOnce() -> V + 'static) -> HtmlElement {
    let doc = document();
    let container: HtmlElement = doc.create_element("div").unwrap().unchecked_into();
    doc.body().unwrap().append_child(&container).unwrap();
    leptos::mount::mount_to(container.clone(), view).forget();
    container
}

/// Lets Leptos run the effects scheduled by a signal change.
async fn settle() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 10)
            .unwrap();
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.unwrap();
}

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
