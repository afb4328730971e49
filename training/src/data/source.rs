//! What every source hands to the pipeline: the examples it read, how many rows were empty,
//! and the rows it could not read (each with its line), plus the error type of the module.

use std::fmt;
use std::path::PathBuf;

use mimir::engine::chat::{ChatMessage, Role};
use thiserror::Error;

use super::Example;

/// Error that stops a source from being read at all (a malformed row does not: it becomes a
/// [`Malformed`] entry and the rest of the source is kept).
#[derive(Debug, Error)]
pub enum DataError {
    /// A file could not be read or written.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A Mimir CSV lacks a required column.
    #[error("{source_name}: the header has no {column:?} column (found {found:?})")]
    MissingColumn {
        /// The file or URL.
        source_name: String,
        /// The column looked for.
        column: &'static str,
        /// The header as read.
        found: Vec<String>,
    },
    /// A CSV could not be read past some point.
    #[error("{source_name}: {problem}")]
    Csv {
        /// The file or URL.
        source_name: String,
        /// What the CSV reader reported.
        problem: String,
    },
    /// A download failed.
    #[error("{url}: {problem}")]
    Http {
        /// The URL.
        url: String,
        /// Status or transport error.
        problem: String,
    },
    /// The format of a URL's content could not be told from its path, type or first byte.
    #[error("{url}: cannot tell CSV from JSONL (content type {content_type:?}); end the path in .csv or .jsonl")]
    UnknownFormat {
        /// The URL.
        url: String,
        /// The `Content-Type` the server sent.
        content_type: String,
    },
    /// The split settings are out of range.
    #[error("eval_fraction must be in [0, 1), got {0}")]
    EvalFraction(f64),
}

/// A row that could not be read, with its place: `file:line: problem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The file or URL.
    pub source: String,
    /// 1-based line where the row starts.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.source, self.line, self.problem)
    }
}

/// What one source produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The file, URL or generator it came from.
    pub source: String,
    /// The examples read, in source order, each with Mimir's system prompt.
    pub examples: Vec<Example>,
    /// Rows dropped because their prompt or response was empty.
    pub empty: usize,
    /// Rows that could not be read.
    pub malformed: Vec<Malformed>,
}

impl Loaded {
    /// An empty result for `source`.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            ..Self::default()
        }
    }

    /// Records a malformed row at `line`.
    pub(crate) fn malformed(&mut self, line: usize, problem: impl Into<String>) {
        self.malformed.push(Malformed {
            source: self.source.clone(),
            line,
            problem: problem.into(),
        });
    }

    /// Keeps `example` read at `line`: empty turns count as an empty row, a missing user or
    /// assistant turn as malformed; otherwise Mimir's system prompt is added when the example
    /// has none, and `meta.source` records `source:line`.
    pub(crate) fn push(&mut self, line: usize, mut example: Example, system: &str) {
        if example.messages.iter().any(|m| m.content.trim().is_empty()) {
            self.empty += 1;
            return;
        }
        if let Some(problem) = example.problem() {
            self.malformed(line, problem);
            return;
        }
        with_system(&mut example, system);
        example
            .meta
            .insert("source".to_owned(), format!("{}:{line}", self.source));
        self.examples.push(example);
    }
}

/// Puts `system` first in `example` unless it already has a system message.
fn with_system(example: &mut Example, system: &str) {
    let has_system = example.messages.iter().any(|m| m.role == Role::System);
    if !has_system && !system.trim().is_empty() {
        example.messages.insert(0, ChatMessage::system(system));
    }
}
