//! The `data` and `eval` subcommands' arguments and glue (binary side: `anyhow` errors).

pub mod data;
pub mod eval;

use std::path::Path;

use anyhow::Context;
use mimir_train::config::ModelConfig;

/// Reads `path` as a `model_config.json` when given.
fn model_config(path: Option<&Path>) -> anyhow::Result<Option<ModelConfig>> {
    path.map(|p| ModelConfig::load(p).with_context(|| format!("loading {}", p.display())))
        .transpose()
}
