//! A CSV or JSONL file downloaded over http or https (one blocking `ureq` agent, rustls).

use std::time::Duration;

use super::jsonl::parse_jsonl;
use super::mimir_csv::parse_mimir_csv;
use super::source::{DataError, Loaded};

/// Largest body accepted (a dataset, not a model).
const MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Whole-request timeout.
const TIMEOUT: Duration = Duration::from_secs(120);

/// The formats a URL can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A Mimir CSV.
    Csv,
    /// JSONL conversations.
    Jsonl,
}

/// Downloads `url` and reads it as a Mimir CSV or JSONL: told by the path's extension
/// (`.csv`, `.jsonl`, `.json`), else the `Content-Type`, else a first character `{` meaning
/// JSONL. Non-2xx answers, transport errors and other schemes are errors naming the URL.
pub fn load_url(url: &str, system: &str) -> Result<Loaded, DataError> {
    let http = |problem: String| DataError::Http {
        url: url.to_owned(),
        problem,
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(http(
            "only http:// and https:// URLs are supported".to_owned(),
        ));
    }
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .build()
        .new_agent();
    let mut response = agent.get(url).call().map_err(|e| http(e.to_string()))?;
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_BYTES)
        .read_to_string()
        .map_err(|e| http(format!("reading the body: {e}")))?;
    match detect_format(url, &content_type, &text) {
        Some(Format::Csv) => parse_mimir_csv(&text, url, system),
        Some(Format::Jsonl) => Ok(parse_jsonl(&text, url, system)),
        None => Err(DataError::UnknownFormat {
            url: url.to_owned(),
            content_type,
        }),
    }
}

/// The format of a download, from the URL path, then the content type, then the text.
pub fn detect_format(url: &str, content_type: &str, text: &str) -> Option<Format> {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    if path.ends_with(".csv") {
        return Some(Format::Csv);
    }
    if path.ends_with(".jsonl") || path.ends_with(".json") {
        return Some(Format::Jsonl);
    }
    if content_type.contains("csv") {
        return Some(Format::Csv);
    }
    if content_type.contains("json") || text.trim_start().starts_with('{') {
        return Some(Format::Jsonl);
    }
    None
}
