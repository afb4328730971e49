//! `server_config.json`: the generation settings of every model the app can run, keyed by
//! the names the catalog's tiers give in their `config` field (`phi-3-mini-4k-instruct`).
//! `training/configs/server_config.json` collects them from each model's
//! `model_config.json`; trunk copies it next to the page and the worker reads it when a
//! model is live, so the settings panel starts from that model's own values.

use std::collections::BTreeMap;

use serde::Deserialize;
use thiserror::Error;

use crate::engine::generation_config::{ConfigError, GenerationConfig};

/// A problem with `server_config.json` or with a model it lacks.
#[derive(Debug, Error)]
pub enum ServerConfigError {
    /// Not JSON of the expected shape (`{"models": {NAME: {...}}}`).
    #[error("{source_name}: not a valid server config: {message}")]
    Parse {
        /// Where the file came from.
        source_name: String,
        /// What the JSON parser said.
        message: String,
    },
    /// A model's settings are out of range.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The catalog names a model the file has no settings for.
    #[error("{source_name}: no settings for model {model:?} (it has {known})")]
    UnknownModel {
        /// Where the file came from.
        source_name: String,
        /// The name the catalog gave.
        model: String,
        /// The names the file has, comma-separated.
        known: String,
    },
}

/// The generation settings of each model, by name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Settings per model name.
    pub models: BTreeMap<String, GenerationConfig>,
}

impl ServerConfig {
    /// Parses the file and validates every model's settings; `source_name` names the file
    /// in errors (`server_config.json: models.smollm2-135m-instruct: top_p must be ...`).
    pub fn from_json(text: &str, source_name: &str) -> Result<Self, ServerConfigError> {
        let config: Self = serde_json::from_str(text).map_err(|e| ServerConfigError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        for (name, model) in &config.models {
            model.validate(&format!("{source_name}: models.{name}"))?;
        }
        Ok(config)
    }

    /// The settings of model `name`.
    pub fn model(
        &self,
        name: &str,
        source_name: &str,
    ) -> Result<&GenerationConfig, ServerConfigError> {
        self.models
            .get(name)
            .ok_or_else(|| ServerConfigError::UnknownModel {
                source_name: source_name.to_string(),
                model: name.to_string(),
                known: self.models.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../training/configs/server_config.json");

    #[test]
    fn shipped_file_has_each_models_own_settings() {
        let config = ServerConfig::from_json(SHIPPED, "server_config.json").unwrap();
        let phi3 = config.model("phi-3-mini-4k-instruct", "s").unwrap();
        assert_eq!(phi3, &GenerationConfig::phi3());
        let smol = config.model("smollm2-135m-instruct", "s").unwrap();
        assert_eq!(smol.max_tokens, 384);
        assert_eq!(smol.stop_ids, [0, 2]);
    }

    #[test]
    fn shipped_file_matches_each_model_config() {
        let config = ServerConfig::from_json(SHIPPED, "server_config.json").unwrap();
        for (name, text) in [
            (
                "phi-3-mini-4k-instruct",
                include_str!("../training/configs/phi-3-mini-4k-instruct/model_config.json"),
            ),
            (
                "smollm2-135m-instruct",
                include_str!("../training/configs/smollm2-135m-instruct/model_config.json"),
            ),
        ] {
            let file: serde_json::Value = serde_json::from_str(text).unwrap();
            let generation: GenerationConfig =
                serde_json::from_value(file["generation"].clone()).unwrap();
            assert_eq!(config.model(name, "s").unwrap(), &generation, "{name}");
        }
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let err = ServerConfig::from_json("{", "server_config.json").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("server_config.json: not a valid server config"));
        let err = ServerConfig::from_json(
            r#"{"models": {"tiny": {"top_p": 1.5}}}"#,
            "server_config.json",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "server_config.json: models.tiny: top_p must be in (0, 1], got 1.5"
        );
        let err = ServerConfig::from_json(r#"{"model": {}}"#, "s.json").unwrap_err();
        assert!(err.to_string().contains("unknown field `model`"), "{err}");
        let config =
            ServerConfig::from_json(r#"{"models": {"a": {}, "b": {}}}"#, "s.json").unwrap();
        assert_eq!(
            config.model("c", "s.json").unwrap_err().to_string(),
            r#"s.json: no settings for model "c" (it has a, b)"#
        );
    }
}
