//! Browser tests for the status button: classes, tooltip, accessibility and the colours the
//! stylesheet gives each state (normal and `:hover`). Run in headless Chromium.
#![cfg(target_arch = "wasm32")]

use leptos::prelude::*;
use mimir::model_info::{LoadStatus, ModelInfo, ModelType};
use mimir::ui::status_button::StatusButton;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;
use web_sys::{CssStyleRule, CssStyleSheet, Element};

#[path = "support/dom.rs"]
mod dom;

use dom::{document, settle};

wasm_bindgen_test_configure!(run_in_browser);

const STYLESHEET: &str = include_str!("../style/main.css");

fn install_stylesheet() {
    let doc = document();
    if doc.get_element_by_id("mimir-test-css").is_none() {
        let style = doc.create_element("style").unwrap();
        style.set_id("mimir-test-css");
        style.set_text_content(Some(STYLESHEET));
        doc.head().unwrap().append_child(&style).unwrap();
    }
}

/// Mounts a status button driven by `status` into a fresh container and returns the button.
fn mount(status: RwSignal<LoadStatus>) -> Element {
    install_stylesheet();
    dom::mount(move || view! { <StatusButton status=status /> })
        .query_selector("button")
        .unwrap()
        .unwrap()
}

fn rgb(css: &str) -> (u8, u8, u8) {
    let css = css.trim();
    if let Some(hex) = css.strip_prefix('#') {
        let v = u32::from_str_radix(hex, 16).unwrap();
        return ((v >> 16) as u8, (v >> 8) as u8, v as u8);
    }
    let inner = css
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')');
    let parts: Vec<u8> = inner
        .split(',')
        .take(3)
        .map(|p| p.trim().parse().unwrap())
        .collect();
    (parts[0], parts[1], parts[2])
}

fn computed(el: &Element, pseudo: Option<&str>, property: &str) -> String {
    let window = web_sys::window().unwrap();
    let style = match pseudo {
        Some(p) => window.get_computed_style_with_pseudo_elt(el, p),
        None => window.get_computed_style(el),
    };
    style
        .unwrap()
        .unwrap()
        .get_property_value(property)
        .unwrap()
}

/// The `background-color` a stylesheet rule with exactly this selector sets.
fn rule_background(selector: &str) -> String {
    let sheets = document().style_sheets();
    for i in 0..sheets.length() {
        let Some(sheet) = sheets.item(i) else {
            continue;
        };
        let Ok(sheet) = sheet.dyn_into::<CssStyleSheet>() else {
            continue;
        };
        let Ok(rules) = sheet.css_rules() else {
            continue;
        };
        for j in 0..rules.length() {
            let Some(rule) = rules.item(j) else { continue };
            let Ok(rule) = rule.dyn_into::<CssStyleRule>() else {
                continue;
            };
            if rule
                .selector_text()
                .split(',')
                .any(|s| s.trim() == selector)
            {
                return rule.style().get_property_value("background-color").unwrap();
            }
        }
    }
    panic!("no stylesheet rule for {selector}");
}

fn info(model_type: ModelType, using_fallback: bool) -> LoadStatus {
    LoadStatus::Ready(ModelInfo {
        status: "ready".into(),
        model_type,
        is_adapter: model_type == ModelType::Adapter,
        fine_tuned_path: Some("jdesiree/Mimir-Phi-3.5/mimir.gguf".into()),
        base_model_path: "microsoft/Phi-3-mini-4k-instruct-gguf/Phi-3-mini-4k-instruct-q4.gguf"
            .into(),
        using_fallback,
        fallback_reason: using_fallback.then(|| "fine-tuned: HTTP 404".to_string()),
        tokenizer_source: "microsoft/Phi-3-mini-4k-instruct/tokenizer.json".into(),
        context_length: 2048,
    })
}

#[wasm_bindgen_test]
async fn each_state_has_its_class_colours_and_tooltip() {
    let cases = [
        (
            info(ModelType::FineTuned, false),
            "status-button-success",
            (0x38, 0xa1, 0x69),
            (0x2f, 0x85, 0x5a),
        ),
        (
            info(ModelType::Adapter, false),
            "status-button-success",
            (0x38, 0xa1, 0x69),
            (0x2f, 0x85, 0x5a),
        ),
        (
            info(ModelType::Base, true),
            "status-button-warning",
            (0xdd, 0x6b, 0x20),
            (0xc0, 0x56, 0x21),
        ),
        (
            info(ModelType::Compact, true),
            "status-button-warning",
            (0xdd, 0x6b, 0x20),
            (0xc0, 0x56, 0x21),
        ),
        (
            LoadStatus::Failed("hub unreachable".into()),
            "status-button-error",
            (0xe5, 0x3e, 0x3e),
            (0xc5, 0x30, 0x30),
        ),
    ];
    for (status, class, normal, hover) in cases {
        let expected_tooltip = mimir::ui::status_button::status_view(&status).tooltip;
        let button = mount(RwSignal::new(status));
        settle().await;
        assert!(
            button.class_list().contains(class),
            "{class}: {}",
            button.class_name()
        );
        assert_eq!(
            rgb(&computed(&button, None, "background-color")),
            normal,
            "{class}"
        );
        assert_eq!(
            rgb(&rule_background(&format!(".{class}:hover"))),
            hover,
            "{class}:hover"
        );
        assert_eq!(
            button.get_attribute("data-tooltip").unwrap(),
            expected_tooltip
        );
        assert_eq!(button.get_attribute("role").as_deref(), Some("status"));
        assert_eq!(button.get_attribute("aria-live").as_deref(), Some("polite"));
        assert_eq!(
            button.get_attribute("aria-disabled").as_deref(),
            Some("true")
        );
        let name = button.get_attribute("aria-label").unwrap();
        assert!(name.contains(&expected_tooltip), "accessible name {name:?}");
    }
}

#[wasm_bindgen_test]
async fn tooltip_is_a_dark_css_pseudo_element_that_ignores_the_pointer() {
    let button = mount(RwSignal::new(LoadStatus::Failed("x".into())));
    settle().await;
    assert_eq!(
        rgb(&computed(&button, Some("::after"), "background-color")),
        (0x2d, 0x37, 0x48)
    );
    assert_eq!(computed(&button, Some("::after"), "pointer-events"), "none");
    let content = computed(&button, Some("::after"), "content");
    assert!(
        content.contains("data-tooltip") || content == "\"x\"",
        "content {content}"
    );
}

#[wasm_bindgen_test]
async fn long_errors_show_fifty_characters_and_an_ellipsis() {
    let error: String = ('a'..='z').cycle().take(120).collect();
    let button = mount(RwSignal::new(LoadStatus::Failed(error.clone())));
    settle().await;
    let tooltip = button.get_attribute("data-tooltip").unwrap();
    assert_eq!(tooltip, format!("{}…", &error[..50]));
}

#[wasm_bindgen_test]
async fn the_button_follows_status_changes() {
    let status = RwSignal::new(LoadStatus::Loading {
        detail: "Downloading".into(),
        progress: Some(0.5),
    });
    let button = mount(status);
    settle().await;
    assert!(button.class_list().contains("status-button-loading"));
    assert_eq!(button.text_content().unwrap().trim(), "Loading 50%");
    status.set(info(ModelType::Adapter, false));
    settle().await;
    assert!(button.class_list().contains("status-button-success"));
    assert_eq!(button.text_content().unwrap().trim(), "Tutor adapter");
}
