//! Mimir: a tutor that runs a quantized language model inside the student's browser.
//!
//! The crate is split so that everything except the user interface compiles both natively
//! and for `wasm32-unknown-unknown`: the `training/` crate and the native tests reuse the
//! same catalog and model-info types the browser uses. The Leptos UI lives behind the
//! default `web` feature and exists only on wasm32.

pub mod catalog;
pub mod conversation;
pub mod download_progress;
pub mod engine;
pub mod markdown;
pub mod model_info;
pub mod perf_log;
pub mod preferences;
pub mod protocol;
pub mod server_config;
pub mod tools;
pub mod tutor;

#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod ui;

#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod worker;
