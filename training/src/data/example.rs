//! One training example as the pipeline stores it: a line of normalised JSONL,
//! `{"messages": [{"role": "system", "content": "…"}, {"role": "user", …}, {"role": "assistant", …}], "meta": {…}}`.
//!
//! The assistant turns are the targets (the fine-tuning loss covers only their tokens); `meta`
//! keeps what the source had beside the conversation (the Mimir CSV's model response and
//! issues, the source name, the line number).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use mimir::engine::chat::{ChatMessage, Role};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One conversation to learn from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// The turns, in order; at least one user turn and one assistant turn.
    pub messages: Vec<ChatMessage>,
    /// Whatever the source had beside the conversation.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
}

/// Error reading a normalised JSONL file; every message names the file and line.
#[derive(Debug, Error)]
pub enum ExampleError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is not an example.
    #[error("{path}:{line}: {problem}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
}

impl Example {
    /// A system + user + assistant example.
    pub fn new(system: &str, prompt: &str, response: &str) -> Self {
        let mut messages = Vec::with_capacity(3);
        if !system.trim().is_empty() {
            messages.push(ChatMessage::system(system));
        }
        messages.push(ChatMessage::user(prompt));
        messages.push(ChatMessage::assistant(response));
        Self {
            messages,
            meta: BTreeMap::new(),
        }
    }

    /// Why this example cannot be trained on, if it cannot: no user or assistant turn, or an
    /// empty turn.
    pub fn problem(&self) -> Option<String> {
        if let Some(i) = self
            .messages
            .iter()
            .position(|m| m.content.trim().is_empty())
        {
            return Some(format!("message {} is empty", i + 1));
        }
        let has = |role| self.messages.iter().any(|m| m.role == role);
        if !has(Role::User) {
            return Some("no user turn".to_owned());
        }
        if !has(Role::Assistant) {
            return Some("no assistant turn".to_owned());
        }
        None
    }

    /// Reads a normalised JSONL file (blank lines are skipped); the first bad line is an error.
    pub fn read_jsonl(path: &Path) -> Result<Vec<Self>, ExampleError> {
        let io = |source| ExampleError::Io {
            path: path.to_owned(),
            source,
        };
        let reader = BufReader::new(File::open(path).map_err(io)?);
        let mut examples = Vec::new();
        for (index, line) in reader.lines().enumerate() {
            let line = line.map_err(io)?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |problem: String| ExampleError::Line {
                path: path.to_owned(),
                line: index + 1,
                problem,
            };
            let example: Self = serde_json::from_str(&line).map_err(|e| bad(e.to_string()))?;
            if let Some(problem) = example.problem() {
                return Err(bad(problem));
            }
            examples.push(example);
        }
        Ok(examples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_jsonl() {
        let mut example = Example::new("You are Mimir.", "Hello!", "Hello! I am Mimir.");
        example
            .meta
            .insert("source".into(), "mimir_tutoring.csv:2".into());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.jsonl");
        let line = serde_json::to_string(&example).unwrap();
        std::fs::write(&path, format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(
            Example::read_jsonl(&path).unwrap(),
            vec![example.clone(), example]
        );
    }

    #[test]
    fn bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl");
        let good = serde_json::to_string(&Example::new("", "Hi", "Hello.")).unwrap();
        std::fs::write(
            &path,
            format!("{good}\n{{\"messages\": [{{\"role\": \"user\", \"content\": \"Hi\"}}]}}\n"),
        )
        .unwrap();
        let message = Example::read_jsonl(&path).unwrap_err().to_string();
        assert!(
            message.contains("bad.jsonl:2: no assistant turn"),
            "{message}"
        );
    }
}
