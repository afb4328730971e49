//! `run.json`: what a run trains and on what, written when it starts; resuming checks it,
//! export reads it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::TrainError;
use crate::atomic_file::write_atomically;
use crate::config::TrainingConfig;

/// The file name inside a run folder.
pub const RUN_FILE: &str = "run.json";

/// A run's inputs and plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    /// The base model (GGUF file or Hugging Face folder).
    pub model: PathBuf,
    /// The `tokenizer.json` given instead of the model's own, if any.
    pub tokenizer: Option<PathBuf>,
    /// The hyper-parameters (the `training` section of `model_config.json`).
    pub training: TrainingConfig,
    /// `general.architecture` of the base.
    pub arch: String,
    /// Examples trained on.
    pub train_examples: usize,
    /// Examples evaluated each epoch.
    pub eval_examples: usize,
    /// Optimiser steps per epoch.
    pub steps_per_epoch: usize,
    /// Optimiser steps of the whole run.
    pub total_steps: usize,
}

impl RunInfo {
    /// Reads `dir/run.json`.
    pub fn load(dir: &Path) -> Result<Self, TrainError> {
        let path = dir.join(RUN_FILE);
        let text =
            std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, "reading", e))?;
        serde_json::from_str(&text).map_err(|e| TrainError::invalid(&path, e.to_string()))
    }

    /// Writes `dir/run.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), TrainError> {
        let path = dir.join(RUN_FILE);
        let mut text = serde_json::to_string_pretty(self).expect("run info serialises");
        text.push('\n');
        write_atomically(
            &path,
            |p, doing, e| TrainError::io(p, doing, e),
            |w| {
                std::io::Write::write_all(w, text.as_bytes())
                    .map_err(|e| TrainError::io(&path, "writing", e))
            },
        )
    }
}
