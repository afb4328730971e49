//! The engine in the browser gives the numbers it gives natively: tiny Phi-3 and Llama F32
//! GGUFs with a PEFT adapter, loaded from bytes in headless Chromium, match the logits that
//! `mimir-train logits` printed natively for the same files (`make test-wasm` writes them
//! and serves them from the local hub under `mimir-check/`).
#![cfg(target_arch = "wasm32")]

use std::io::Cursor;

use gloo_net::http::Request;
use mimir::engine::gguf::GgufFile;
use mimir::engine::lora::Adapter;
use mimir::engine::model::{LoadOptions, Model};
use serde::Deserialize;
use wasm_bindgen_test::*;

#[path = "support/test_hub.rs"]
mod test_hub;

use test_hub::HUB;

wasm_bindgen_test_configure!(run_in_browser);

/// The ids `make test-wasm` passed to `mimir-train logits`.
const TOKENS: [u32; 5] = [1, 15043, 3186, 29892, 920];

/// What `mimir-train logits` prints.
#[derive(Deserialize)]
struct NativeLogits {
    argmax_all: Vec<u32>,
    last_logits: Vec<f32>,
}

async fn fetch(repo: &str, path: &str) -> Vec<u8> {
    let url = format!("{HUB}/mimir-check/{repo}/resolve/main/{path}");
    let response = Request::get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e} (is the test hub running?)"));
    assert!(response.ok(), "{url}: HTTP {}", response.status());
    response.binary().await.unwrap()
}

async fn check(repo: &str) {
    let native: NativeLogits = serde_json::from_slice(&fetch(repo, "logits.json").await).unwrap();
    let config = String::from_utf8(fetch(repo, "adapter/adapter_config.json").await).unwrap();
    let weights = fetch(repo, "adapter/adapter_model.safetensors").await;
    let adapter = Adapter::from_peft(&config, &weights, repo).unwrap();
    let mut reader = Cursor::new(fetch(repo, "model-f32.gguf").await);
    let file = GgufFile::read(&mut reader, repo).unwrap();
    let options = LoadOptions {
        context_cap: 64,
        adapter: Some(adapter),
        ..LoadOptions::default()
    };
    let mut model = Model::from_gguf(&file, &mut reader, &options).unwrap();
    let logits: Vec<Vec<f32>> = model.forward(&TOKENS, true).unwrap().to_vec2().unwrap();

    let argmax: Vec<u32> = logits
        .iter()
        .map(|row| {
            (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap() as u32
        })
        .collect();
    assert_eq!(
        argmax, native.argmax_all,
        "{repo}: argmax at every position"
    );
    let last = logits.last().unwrap();
    assert_eq!(
        last.len(),
        native.last_logits.len(),
        "{repo}: vocabulary size"
    );
    let diff = last
        .iter()
        .zip(&native.last_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff <= 1e-4, "{repo}: wasm vs native max abs diff {diff}");
}

#[wasm_bindgen_test]
async fn phi3_with_adapter_matches_native_logits() {
    check("tiny-phi3").await;
}

#[wasm_bindgen_test]
async fn llama_with_adapter_matches_native_logits() {
    check("tiny-llama").await;
}
