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
    #[error("hub address {0:?} is not an http:// or https:// URL with a plain host")]
    BadHub(String),
    /// A file entry that would leave its repository or the app's origin, or a malformed hash.
    #[error("{source_name}: {field} {value:?}: {why}")]
    BadFile {
        /// Where the catalog came from.
        source_name: String,
        /// Which entry (`tiers[0].weights.path`, `compact.url`, ...).
        field: String,
        /// The offending value.
        value: String,
        /// The rule it breaks.
        why: &'static str,
    },
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
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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

/// A PEFT adapter shipped with the app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledAdapter {
    /// `adapter_config.json`.
    pub config: BundledFile,
    /// `adapter_model.safetensors`.
    pub weights: BundledFile,
}

/// A file shipped with the app, on its own origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledFile {
    /// URL relative to the page.
    pub url: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex sha256.
    pub sha256: String,
}

/// The two files of a PEFT LoRA adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterFiles {
    /// `adapter_config.json`.
    pub config: RepoFile,
    /// `adapter_model.safetensors`.
    pub weights: RepoFile,
}

/// The bundled model served from the app's own origin, used when every hub tier fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Mimir's PEFT LoRA adapter for it, applied when it loads (the model works without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<BundledAdapter>,
}

/// Where the hub address in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubSource {
    /// The page URL's `?hub=` parameter.
    Page,
    /// The hub saved in the settings.
    Settings,
    /// `public/catalog.json`.
    Catalog,
}

impl HubSource {
    /// How the info panel names it.
    pub fn as_str(self) -> &'static str {
        match self {
            HubSource::Page => "the page address (?hub=)",
            HubSource::Settings => "the settings",
            HubSource::Catalog => "the catalog",
        }
    }
}

/// The hub the app downloads from, where that address came from, and the first address that
/// was refused on the way (with why), for the info panel.
#[derive(Debug, Clone, PartialEq)]
pub struct HubChoice {
    /// The hub's base URL.
    pub url: String,
    /// Where it came from.
    pub source: HubSource,
    /// An address given but refused: where it came from and the error naming it.
    pub refused: Option<(HubSource, String)>,
}

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
        check_hub(&catalog.hub).map_err(|e| CatalogError::Parse {
            source_name: source_name.to_string(),
            message: format!("hub: {e}"),
        })?;
        catalog.check_files(source_name)?;
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

    /// Checks every file entry: repositories are `owner/name`, paths stay inside their
    /// repository, the compact model is a relative URL on the app's own origin, and hashes are
    /// 64 lowercase hex digits.
    fn check_files(&self, source_name: &str) -> Result<(), CatalogError> {
        let mut files = vec![("tokenizer".to_string(), &self.tokenizer)];
        for (index, tier) in self.tiers.iter().enumerate() {
            files.push((format!("tiers[{index}].weights"), &tier.weights));
            if let Some(adapter) = &tier.adapter {
                files.push((format!("tiers[{index}].adapter.config"), &adapter.config));
                files.push((format!("tiers[{index}].adapter.weights"), &adapter.weights));
            }
        }
        let bad = |field: String, value: &str, why| CatalogError::BadFile {
            source_name: source_name.to_string(),
            field,
            value: value.to_string(),
            why,
        };
        for (name, file) in files {
            let segments: Vec<&str> = file.repo.split('/').collect();
            if segments.len() != 2 || !segments.iter().all(|s| is_plain_segment(s)) {
                return Err(bad(format!("{name}.repo"), &file.repo, "not owner/name"));
            }
            if !is_plain_path(&file.revision) {
                return Err(bad(format!("{name}.revision"), &file.revision, PATH_RULE));
            }
            if !is_plain_path(&file.path) {
                return Err(bad(format!("{name}.path"), &file.path, PATH_RULE));
            }
            if let Some(hash) = file.sha256.as_deref().filter(|h| !is_sha256(h)) {
                return Err(bad(format!("{name}.sha256"), hash, SHA256_RULE));
            }
        }
        let mut bundled = vec![("compact", &self.compact.url, &self.compact.sha256)];
        if let Some(adapter) = &self.compact.adapter {
            bundled.push((
                "compact.adapter.config",
                &adapter.config.url,
                &adapter.config.sha256,
            ));
            bundled.push((
                "compact.adapter.weights",
                &adapter.weights.url,
                &adapter.weights.sha256,
            ));
        }
        for (name, url, sha256) in bundled {
            if !is_plain_path(url) {
                return Err(bad(format!("{name}.url"), url, PATH_RULE));
            }
            if !is_sha256(sha256) {
                return Err(bad(format!("{name}.sha256"), sha256, SHA256_RULE));
            }
        }
        Ok(())
    }

    /// Picks the hub: the page's `?hub=` first, then the one saved in the settings, then the
    /// catalog's own. An address that is not an http(s) URL is refused (kept in
    /// [`HubChoice::refused`] for the info panel) and the next one is tried.
    pub fn choose_hub(mut self, page: Option<&str>, saved: Option<&str>) -> (Catalog, HubChoice) {
        let mut refused = None;
        for (candidate, source) in [(page, HubSource::Page), (saved, HubSource::Settings)] {
            let Some(candidate) = candidate else { continue };
            match check_hub(candidate) {
                Ok(()) => {
                    self.hub = candidate.trim_end_matches('/').to_string();
                    let choice = HubChoice {
                        url: self.hub.clone(),
                        source,
                        refused,
                    };
                    return (self, choice);
                }
                Err(e) => {
                    refused.get_or_insert((source, e.to_string()));
                }
            }
        }
        let choice = HubChoice {
            url: self.hub.clone(),
            source: HubSource::Catalog,
            refused,
        };
        (self, choice)
    }

    /// Replaces the hub address (the page's `?hub=` parameter); only http(s) URLs are taken.
    pub fn with_hub(mut self, hub: &str) -> Result<Self, CatalogError> {
        check_hub(hub)?;
        self.hub = hub.trim_end_matches('/').to_string();
        Ok(self)
    }
}

const PATH_RULE: &str = "must be a relative path of plain names (letters, digits, . _ - /; no \
     empty, `.` or `..` part)";
const SHA256_RULE: &str = "must be 64 lowercase hex digits";

/// A name of letters, digits, `.`, `_` and `-`, other than `.` and `..`.
fn is_plain_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Plain names joined by `/`: nothing that could leave a repository or the app's folder
/// (`..`, a leading `/`, a scheme, `?`, `#`, `%` escapes, backslashes).
fn is_plain_path(path: &str) -> bool {
    path.split('/').all(is_plain_segment)
}

fn is_sha256(hash: &str) -> bool {
    hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks that `hub` is an absolute `http://` or `https://` URL whose host (and optional port
/// and path) hold no user name, query, fragment, escape or white space: the rule for `?hub=`
/// and for the hub field of the settings. `https://huggingface.co@evil.example` is refused.
pub fn check_hub(hub: &str) -> Result<(), CatalogError> {
    let rest = hub
        .strip_prefix("https://")
        .or_else(|| hub.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Err(CatalogError::BadHub(hub.to_string()));
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority, |(host, _)| host);
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    let path_ok = path.is_empty() || path.trim_end_matches('/').split('/').all(is_plain_segment);
    if host_ok && path_ok {
        Ok(())
    } else {
        Err(CatalogError::BadHub(hub.to_string()))
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
    fn the_shipped_compact_adapter_matches_its_catalog_entry() {
        use sha2::{Digest, Sha256};
        let catalog = Catalog::from_json(SHIPPED, "public/catalog.json").unwrap();
        let adapter = catalog
            .compact
            .adapter
            .expect("the compact tier has Mimir's adapter");
        for file in [adapter.config, adapter.weights] {
            // URLs are relative to the page, whose folder holds `public/` as the repo does.
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(&file.url);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(bytes.len() as u64, file.size, "{}", file.url);
            let digest: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(digest, file.sha256, "{}", file.url);
        }
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
        for good in [
            "https://huggingface.co",
            "http://localhost:8081",
            "http://[::1]:8081/",
            "https://mirror.example/hf",
        ] {
            assert!(check_hub(good).is_ok(), "{good}");
        }
        for bad in [
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://",
            "ftp://x",
            "//evil",
            "https://huggingface.co@evil.example",
            "https://evil.example\\@huggingface.co",
            "https://huggingface.co/?x=1",
            "https://huggingface.co#frag",
            "https://huggingface.co/%2e%2e",
            "https://huggingface.co/../x",
            "https://hugging face.co",
            "http://:8081",
            "https://h\u{0}st",
        ] {
            assert_eq!(
                catalog.clone().with_hub(bad),
                Err(CatalogError::BadHub(bad.to_string()))
            );
        }
    }

    #[test]
    fn hub_choice_refuses_non_http_addresses_and_says_so() {
        let catalog = Catalog::from_json(SHIPPED, "catalog").unwrap();
        let (local, choice) = catalog.clone().choose_hub(
            Some("http://127.0.0.1:8081/"),
            Some("https://saved.example"),
        );
        assert_eq!(local.hub, "http://127.0.0.1:8081");
        assert_eq!(
            choice,
            HubChoice {
                url: "http://127.0.0.1:8081".into(),
                source: HubSource::Page,
                refused: None
            }
        );
        let hostile = "javascript:alert(document.domain)";
        let (saved, choice) = catalog
            .clone()
            .choose_hub(Some(hostile), Some("https://saved.example"));
        assert_eq!(saved.hub, "https://saved.example");
        assert_eq!(choice.source, HubSource::Settings);
        let (from, why) = choice.refused.unwrap();
        assert_eq!(from, HubSource::Page);
        assert!(why.contains(hostile), "{why}");
        let (same, choice) = catalog.clone().choose_hub(Some("data:text/html,x"), None);
        assert_eq!(same.hub, "https://huggingface.co");
        assert_eq!(choice.source, HubSource::Catalog);
        assert!(choice.refused.is_some());
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
    fn file_entries_stay_in_their_repository_and_the_apps_origin() {
        for (from, to, field) in [
            (
                "\"repo\": \"jdesiree/Mimir-Phi-3.5\"",
                "\"repo\": \"jdesiree/../../evil\"",
                "tiers[0].weights.repo",
            ),
            (
                "\"path\": \"tokenizer.json\"",
                "\"path\": \"../../x/tokenizer.json\"",
                "tokenizer.path",
            ),
            (
                "\"path\": \"adapter_config.json\"",
                "\"path\": \"a?x=1\"",
                "tiers[1].adapter.config.path",
            ),
            (
                "\"url\": \"models/SmolLM2-135M-Instruct.Q8_0.gguf\"",
                "\"url\": \"https://evil.example/m.gguf\"",
                "compact.url",
            ),
            (
                "\"url\": \"models/SmolLM2-135M-Instruct.Q8_0.gguf\"",
                "\"url\": \"/models/m.gguf\"",
                "compact.url",
            ),
            (
                "\"sha256\": \"0c1d33",
                "\"sha256\": \"0C1D33",
                "compact.sha256",
            ),
        ] {
            let text = SHIPPED.replacen(from, to, 1);
            assert_ne!(text, SHIPPED, "{from} is in the shipped catalog");
            let err = Catalog::from_json(&text, "catalog.json").unwrap_err();
            assert!(
                err.to_string()
                    .starts_with(&format!("catalog.json: {field} ")),
                "{err}"
            );
        }
    }

    #[test]
    fn malformed_json_names_the_source() {
        let err = Catalog::from_json("{", "public/catalog.json").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("public/catalog.json: not a valid catalog"));
    }
}
