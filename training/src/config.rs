//! Per-model configuration: `training/configs/<model>/model_config.json` holds the
//! generation settings the app uses and the fine-tuning hyper-parameters, and
//! `training/configs/server_config.json` collects every model's generation settings for the
//! web app (which fetches that one file).
//!
//! ```json
//! {"generation": {"temperature": 0.7, ...}, "training": {"epochs": 5, "lora": {"r": 16, ...}, ...}}
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use mimir::engine::generation_config::{ConfigError, GenerationConfig};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::eval::ToneConfig;

/// The file name of a model's configuration inside its folder.
pub const MODEL_CONFIG: &str = "model_config.json";
/// The file collecting every model's generation settings.
pub const SERVER_CONFIG: &str = "server_config.json";

/// Error reading or validating a configuration file; every message names the file.
#[derive(Debug, Error)]
pub enum ModelConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid JSON for its schema (syntax, type or unknown field).
    #[error("{path}: invalid configuration: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error, with line and column.
        source: serde_json::Error,
    },
    /// The generation section is out of range.
    #[error(transparent)]
    Generation(#[from] ConfigError),
    /// A training field is out of range.
    #[error("{path}: training.{field} {requirement}, got {value}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending field, dotted (`lora.r`).
        field: &'static str,
        /// What the field must satisfy.
        requirement: &'static str,
        /// The offending value.
        value: String,
    },
}

/// LoRA settings of a fine-tuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraSettings {
    /// Rank of the update matrices (≥ 1).
    pub r: usize,
    /// Scale numerator: the update is scaled by `alpha / r` (`alpha / sqrt(r)` with rsLoRA).
    pub alpha: f64,
    /// Dropout probability on the LoRA input, in [0, 1).
    #[serde(default)]
    pub dropout: f64,
    /// Projection names the adapter targets (`qkv_proj`, `o_proj`, … or llama's `q_proj`, …).
    pub target_modules: Vec<String>,
    /// Use rank-stabilised scaling `alpha / sqrt(r)`.
    #[serde(default)]
    pub use_rslora: bool,
}

/// Fine-tuning hyper-parameters (the seed's values are the Phi-3 defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// The Hub id of the base model, written into the exported adapter's config.
    pub base_model: String,
    /// LoRA settings.
    pub lora: LoraSettings,
    /// Passes over the training split (≥ 1).
    pub epochs: usize,
    /// Examples per forward pass (≥ 1).
    pub batch_size: usize,
    /// Batches whose gradients are summed before one optimiser step (≥ 1).
    pub gradient_accumulation_steps: usize,
    /// Peak learning rate of AdamW (> 0).
    pub learning_rate: f64,
    /// Fraction of the optimiser steps spent warming up linearly, in [0, 1).
    pub warmup_ratio: f64,
    /// AdamW decoupled weight decay (≥ 0).
    #[serde(default)]
    pub weight_decay: f64,
    /// Global gradient-norm clipping threshold (> 0).
    pub max_grad_norm: f64,
    /// Fraction of the examples held out for evaluation, in [0, 1).
    pub eval_fraction: f64,
    /// Examples longer than this many tokens are truncated (≥ 16).
    pub max_seq_len: usize,
    /// Seed of the split, the initialisation and dropout.
    pub seed: u64,
}

/// One model's `model_config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// What the app samples with.
    pub generation: GenerationConfig,
    /// How the model is fine-tuned.
    pub training: TrainingConfig,
    /// The tone rules `mimir-train eval` applies to every reply (defaults when absent).
    #[serde(default)]
    pub eval: ToneConfig,
}

/// `server_config.json`: every model's generation settings, keyed by the model's folder name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Model key (`smollm2-135m-instruct`) → its generation settings.
    pub models: BTreeMap<String, GenerationConfig>,
}

fn read(path: &Path) -> Result<String, ModelConfigError> {
    fs::read_to_string(path).map_err(|source| ModelConfigError::Io {
        path: path.to_owned(),
        source,
    })
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, ModelConfigError> {
    serde_json::from_str(text).map_err(|source| ModelConfigError::Parse {
        path: path.to_owned(),
        source,
    })
}

impl ModelConfig {
    /// Reads and validates a `model_config.json`.
    pub fn load(path: &Path) -> Result<Self, ModelConfigError> {
        Self::from_json(&read(path)?, path)
    }

    /// Parses and validates `text`; `path` names the file in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self, ModelConfigError> {
        let config: Self = parse(path, text)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks both sections' ranges and returns the first violation.
    pub fn validate(&self, path: &Path) -> Result<(), ModelConfigError> {
        self.generation
            .validate(&format!("{}: generation", path.display()))?;
        let t = &self.training;
        let invalid = |field, requirement, value: String| ModelConfigError::Invalid {
            path: path.to_owned(),
            field,
            requirement,
            value,
        };
        let checks: [(bool, &'static str, &'static str, String); 10] = [
            (t.lora.r >= 1, "lora.r", "must be ≥ 1", t.lora.r.to_string()),
            (
                t.lora.alpha.is_finite() && t.lora.alpha > 0.0,
                "lora.alpha",
                "must be > 0",
                t.lora.alpha.to_string(),
            ),
            (
                (0.0..1.0).contains(&t.lora.dropout),
                "lora.dropout",
                "must be in [0, 1)",
                t.lora.dropout.to_string(),
            ),
            (
                !t.lora.target_modules.is_empty(),
                "lora.target_modules",
                "must name at least one module",
                "[]".to_owned(),
            ),
            (t.epochs >= 1, "epochs", "must be ≥ 1", t.epochs.to_string()),
            (
                t.batch_size >= 1 && t.gradient_accumulation_steps >= 1,
                "batch_size/gradient_accumulation_steps",
                "must be ≥ 1",
                format!("{}/{}", t.batch_size, t.gradient_accumulation_steps),
            ),
            (
                t.learning_rate.is_finite() && t.learning_rate > 0.0,
                "learning_rate",
                "must be > 0",
                t.learning_rate.to_string(),
            ),
            (
                (0.0..1.0).contains(&t.warmup_ratio) && (0.0..1.0).contains(&t.eval_fraction),
                "warmup_ratio/eval_fraction",
                "must be in [0, 1)",
                format!("{}/{}", t.warmup_ratio, t.eval_fraction),
            ),
            (
                t.max_grad_norm.is_finite() && t.max_grad_norm > 0.0 && t.weight_decay >= 0.0,
                "max_grad_norm/weight_decay",
                "must be > 0 / ≥ 0",
                format!("{}/{}", t.max_grad_norm, t.weight_decay),
            ),
            (
                t.max_seq_len >= 16,
                "max_seq_len",
                "must be ≥ 16",
                t.max_seq_len.to_string(),
            ),
        ];
        match checks.into_iter().find(|(ok, ..)| !ok) {
            Some((_, field, requirement, value)) => Err(invalid(field, requirement, value)),
            None => Ok(()),
        }
    }
}

impl ServerConfig {
    /// Reads and validates a `server_config.json`.
    pub fn load(path: &Path) -> Result<Self, ModelConfigError> {
        let config: Self = parse(path, &read(path)?)?;
        for (key, generation) in &config.models {
            generation.validate(&format!("{}: models.{key}", path.display()))?;
        }
        Ok(config)
    }

    /// Collects the generation section of every `<dir>/<model>/model_config.json`.
    pub fn collect(dir: &Path) -> Result<Self, ModelConfigError> {
        let io = |source| ModelConfigError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut models = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io)? {
            let folder = entry.map_err(io)?.path();
            let file = folder.join(MODEL_CONFIG);
            if file.is_file() {
                let key = folder
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                models.insert(key, ModelConfig::load(&file)?.generation);
            }
        }
        Ok(Self { models })
    }

    /// The file's text: pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("config serialises");
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
    }

    #[test]
    fn shipped_model_configs_are_valid() {
        let server = ServerConfig::collect(&configs_dir()).unwrap();
        assert!(server.models.contains_key("phi-3-mini-4k-instruct"));
        assert!(server.models.contains_key("smollm2-135m-instruct"));
    }

    #[test]
    fn server_config_matches_the_model_configs() {
        let collected = ServerConfig::collect(&configs_dir()).unwrap();
        let shipped = ServerConfig::load(&configs_dir().join(SERVER_CONFIG)).unwrap();
        assert_eq!(
            shipped, collected,
            "server_config.json is stale: run `mimir-train configs --dir training/configs`"
        );
    }

    #[test]
    fn out_of_range_training_field_names_file_and_field() {
        let path = configs_dir()
            .join("smollm2-135m-instruct")
            .join(MODEL_CONFIG);
        let mut value: serde_json::Value = serde_json::from_str(&read(&path).unwrap()).unwrap();
        value["training"]["lora"]["dropout"] = 1.5.into();
        let error = ModelConfig::from_json(&value.to_string(), &path).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("model_config.json"), "{message}");
        assert!(message.contains("training.lora.dropout"), "{message}");
    }

    #[test]
    fn unknown_training_field_is_rejected() {
        let path = configs_dir()
            .join("smollm2-135m-instruct")
            .join(MODEL_CONFIG);
        let mut value: serde_json::Value = serde_json::from_str(&read(&path).unwrap()).unwrap();
        value["training"]["epochz"] = 3.into();
        let error = ModelConfig::from_json(&value.to_string(), &path).unwrap_err();
        assert!(error.to_string().contains("epochz"), "{error}");
    }
}
