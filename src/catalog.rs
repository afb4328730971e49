//! The model catalog (`public/catalog.json`): which hub to use and which files make up each
//! loading tier, in the order they are tried.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model_info::ModelType;

/// A problem with the catalog or with a hub address given by the user.
#[derive(Debug, Error, PartialEq)]
pub enum CatalogError {
    /// The catalog text is not valid JSON of the expected shape.
    #[error("{source_name}: not a valid catalog: {message}")]
    Parse {
        /// Where the catalog came from (file name or URL).
        source_name: String,
        /// What the JSON parser said.
        message: String,
    },
    /// A hub address that is not an absolute http(s) URL.
    #[error("hub address {0:?} is not an http:// or https:// URL")]
    BadHub(String),
    /// A tier that cannot be loaded as described.
    #[error("{source_name}: tier {index} ({kind}): {message}")]
    BadTier {
        /// Where the catalog came from.
        source_name: String,
        /// Position of the tier in `tiers`.
        index: usize,
        /// The tier's type.
        kind: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// One file in a hub repository, with what is known about it in advance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoFile {
    /// Repository id, `owner/name`.
    pub repo: String,
    /// Branch, tag or commit.
    #[serde(default = "default_revision")]
    pub revision: String,
    /// Path of the file inside the repository.
    pub path: String,
    /// Size in bytes, when known (used for the storage check before downloading).
    #[serde(default)]
    pub size: Option<u64>,
    /// Lowercase hex sha256, when known (the hub's `X-Linked-Etag` is used otherwise).
    #[serde(default)]
    pub sha256: Option<String>,
}

fn default_revision() -> String {
    "main".to_string()
}

impl RepoFile {
    /// The download URL on `hub`, as the Hugging Face Hub lays it out.
    pub fn url(&self, hub: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            hub.trim_end_matches('/'),
            self.repo,
            self.revision,
            self.path
        )
    }

    /// `repo/path`, the name shown to users and in `model_info`.
    pub fn display_path(&self) -> String {
        format!("{}/{}", self.repo, self.path)
    }
}

/// One hub tier: the files it needs and the model type it yields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tier {
    /// What this tier yields when it loads.
    #[serde(rename = "type")]
    pub model_type: ModelType,
    /// The GGUF weights (fine-tuned weights, or the base for `adapter` and `base`).
    pub weights: RepoFile,
    /// PEFT adapter files (`adapter_config.json`, `adapter_model.safetensors`), `adapter` tier only.
    #[serde(default)]
    pub adapter: Option<AdapterFiles>,
    /// The model's name in the server config ([`Catalog::settings`]): its generation settings.
    pub config: String,
}

/// The two files of a PEFT LoRA adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterFiles {
    /// `adapter_config.json`.
    pub config: RepoFile,
    /// `adapter_model.safetensors`.
    pub weights: RepoFile,
}

/// The bundled model served from the app's own origin, used when every hub tier fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactModel {
    /// Human-readable name (`SmolLM2-135M-Instruct`).
    pub name: String,
    /// URL relative to the page.
    pub url: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex sha256.
    pub sha256: String,
    /// The model's name in the server config ([`Catalog::settings`]): its generation settings.
    pub config: String,
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// Base URL of the hub (`https://huggingface.co`).
    pub hub: String,
    /// The tokenizer, always taken from the base repository.
    pub tokenizer: RepoFile,
    /// Hub tiers in the order they are tried.
    pub tiers: Vec<Tier>,
    /// The bundled offline model.
    pub compact: CompactModel,
    /// URL of `server_config.json` (generation settings per model), relative to the page.
    pub settings: String,
}

impl Catalog {
    /// Parses and checks a catalog; `source_name` names it in errors.
    pub fn from_json(text: &str, source_name: &str) -> Result<Self, CatalogError> {
        let catalog: Catalog = serde_json::from_str(text).map_err(|e| CatalogError::Parse {
            source_name: source_name.to_string(),
            message: e.to_string(),
        })?;
        check_hub(&catalog.hub)?;
        for (index, tier) in catalog.tiers.iter().enumerate() {
            let problem = match (tier.model_type, &tier.adapter) {
                (ModelType::Adapter, None) => Some("needs an `adapter` entry"),
                (ModelType::Compact, _) => Some("the compact model is not a hub tier"),
                (ModelType::FineTuned | ModelType::Base, Some(_)) => {
                    Some("only the adapter tier takes an `adapter` entry")
                }
                _ => None,
            };
            if let Some(message) = problem {
                return Err(CatalogError::BadTier {
                    source_name: source_name.to_string(),
                    index,
                    kind: tier.model_type.as_str(),
                    message: message.to_string(),
                });
            }
        }
        Ok(catalog)
    }

    /// Replaces the hub address (the page's `?hub=` parameter); only http(s) URLs are taken.
    pub fn with_hub(mut self, hub: &str) -> Result<Self, CatalogError> {
        check_hub(hub)?;
        self.hub = hub.trim_end_matches('/').to_string();
        Ok(self)
    }
}

/// Checks that `hub` is an absolute `http://` or `https://` URL with a host: the rule for
/// `?hub=` and for the hub field of the settings.
pub fn check_hub(hub: &str) -> Result<(), CatalogError> {
    let rest = hub
        .strip_prefix("https://")
        .or_else(|| hub.strip_prefix("http://"));
    match rest {
        Some(host)
            if !host.is_empty()
                && !host.starts_with('/')
                && !host.contains(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => Err(CatalogError::BadHub(hub.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../public/catalog.json");

    #[test]
    fn shipped_catalog_lists_the_tiers_in_order() {
        let catalog = Catalog::from_json(SHIPPED, "public/catalog.json").unwrap();
        let order: Vec<_> = catalog.tiers.iter().map(|t| t.model_type).collect();
        assert_eq!(
            order,
            [ModelType::FineTuned, ModelType::Adapter, ModelType::Base]
        );
        assert_eq!(catalog.tokenizer.repo, "microsoft/Phi-3-mini-4k-instruct");
        assert_eq!(
            catalog.tiers[2].weights.url(&catalog.hub),
            "https://huggingface.co/microsoft/Phi-3-mini-4k-instruct-gguf/resolve/main/Phi-3-mini-4k-instruct-q4.gguf"
        );
    }

    #[test]
    fn every_model_has_settings_in_the_server_config() {
        let catalog = Catalog::from_json(SHIPPED, "public/catalog.json").unwrap();
        let settings = crate::server_config::ServerConfig::from_json(
            include_str!("../training/configs/server_config.json"),
            &catalog.settings,
        )
        .unwrap();
        let names = catalog.tiers.iter().map(|t| &t.config);
        for name in names.chain([&catalog.compact.config]) {
            settings.model(name, &catalog.settings).unwrap();
        }
        assert_eq!(catalog.compact.config, "smollm2-135m-instruct");
    }

    #[test]
    fn hub_override_accepts_only_http_urls() {
        let catalog = Catalog::from_json(SHIPPED, "catalog").unwrap();
        let local = catalog.clone().with_hub("http://127.0.0.1:8081/").unwrap();
        assert_eq!(local.hub, "http://127.0.0.1:8081");
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://",
            "ftp://x",
            "//evil",
        ] {
            assert_eq!(
                catalog.clone().with_hub(bad),
                Err(CatalogError::BadHub(bad.to_string()))
            );
        }
    }

    #[test]
    fn adapter_tier_without_adapter_files_is_rejected() {
        let text = SHIPPED.replacen("\"type\": \"base\"", "\"type\": \"adapter\"", 1);
        let err = Catalog::from_json(&text, "catalog.json").unwrap_err();
        assert!(
            err.to_string().contains("catalog.json: tier 2 (adapter)"),
            "{err}"
        );
    }

    #[test]
    fn malformed_json_names_the_source() {
        let err = Catalog::from_json("{", "public/catalog.json").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("public/catalog.json: not a valid catalog"));
    }
}
