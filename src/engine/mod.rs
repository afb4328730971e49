//! The inference engine: file formats, tokenizer, models and generation. Compiles natively
//! and for wasm32; nothing here touches the DOM.

pub mod chat;
pub mod clock;
pub mod generate;
pub mod generation_config;
pub mod gguf;
pub mod grammar;
pub mod hf;
pub mod loop_guard;
pub mod lora;
pub mod model;
pub mod number_guard;
pub mod sampler;
pub mod tokenizer;
