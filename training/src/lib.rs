//! Mimir's native tools: the local Hugging Face-style hub used in development and tests,
//! and (as they land) dataset acquisition, LoRA fine-tuning, evaluation and export.

mod atomic_file;
pub mod config;
pub mod convert;
pub mod data;
pub mod eval;
pub mod eval_actions;
pub mod export;
pub mod hub;
pub mod session;
pub mod tiny;
pub mod train;
