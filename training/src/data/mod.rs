//! Training data: the normalised example format and the sources that produce it (the Mimir
//! CSV, JSONL, a URL holding either, and a seeded synthetic generator), then deduplication,
//! a seeded train/eval split and normalised JSONL output.
//!
//! Every example gets Mimir's system prompt ([`mimir::conversation::DEFAULT_SYSTEM_PROMPT`],
//! the app's default) unless the source gave one, so the model is tuned under the prompt the
//! app sends.

mod example;
mod jsonl;
mod mimir_csv;
mod prepare;
mod source;
mod synthetic;
mod url;

use std::path::Path;

pub use example::{Example, ExampleError};
pub use jsonl::parse_jsonl;
pub use mimir_csv::{parse_mimir_csv, IDEAL_RESPONSE, ISSUES, MODEL_RESPONSE, PROMPT};
pub use prepare::{
    eval_count, prepare, write_jsonl, Prepared, SourceCounts, SplitOptions, Summary,
};
pub use source::{DataError, Loaded, Malformed};
pub use synthetic::{generate as generate_synthetic, synthetic, Kind};
pub use url::{detect_format, load_url, Format};

/// Reads a text file for a source.
fn read_text(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_owned(),
        what: "reading",
        source,
    })
}

/// Reads a Mimir CSV file (see [`parse_mimir_csv`]).
pub fn load_mimir_csv(path: &Path, system: &str) -> Result<Loaded, DataError> {
    parse_mimir_csv(&read_text(path)?, &path.display().to_string(), system)
}

/// Reads a JSONL file (see [`parse_jsonl`]).
pub fn load_jsonl(path: &Path, system: &str) -> Result<Loaded, DataError> {
    Ok(parse_jsonl(
        &read_text(path)?,
        &path.display().to_string(),
        system,
    ))
}
