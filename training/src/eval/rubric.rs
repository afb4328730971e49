//! The rubric: one JSON object per line,
//! `{"id", "prompt", "context"?, "expect_all": [regex…], "expect_any": [regex…], "forbid": [regex…]}`.
//! Regexes match case-insensitively anywhere in the reply.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use regex::{Regex, RegexBuilder};
use serde::Deserialize;
use thiserror::Error;

/// Error reading a rubric; line errors name the file and the 1-based line.
#[derive(Debug, Error)]
pub enum RubricError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The rubric file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is not a rubric item.
    #[error("{path}:{line}: {problem}")]
    Line {
        /// The rubric file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The file holds no items.
    #[error("{0}: the rubric has no items")]
    Empty(PathBuf),
}

/// One line as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    id: String,
    prompt: String,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    expect_all: Vec<String>,
    #[serde(default)]
    expect_any: Vec<String>,
    #[serde(default)]
    forbid: Vec<String>,
}

/// A compiled pattern and the text it was written as.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The pattern as written in the rubric.
    pub source: String,
    /// Compiled, case-insensitive.
    pub regex: Regex,
}

/// One rubric item.
#[derive(Debug, Clone)]
pub struct RubricItem {
    /// Unique name of the item.
    pub id: String,
    /// The student's message.
    pub prompt: String,
    /// Lesson notes sent as context, if any.
    pub context: Option<String>,
    /// Every one of these must match.
    pub expect_all: Vec<Pattern>,
    /// At least one of these must match (no check when empty).
    pub expect_any: Vec<Pattern>,
    /// None of these may match.
    pub forbid: Vec<Pattern>,
    /// 1-based line of the item in its file.
    pub line: usize,
}

/// Parses rubric `text`; `path` names the file in errors. Blank lines are skipped. Each item
/// needs a non-empty unique `id`, a non-empty `prompt`, valid regexes and at least one check.
pub fn parse_rubric(text: &str, path: &Path) -> Result<Vec<RubricItem>, RubricError> {
    let mut items = Vec::new();
    let mut ids = HashSet::new();
    for (index, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let line = index + 1;
        let bad = |problem: String| RubricError::Line {
            path: path.to_owned(),
            line,
            problem,
        };
        let item: RawItem = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        if item.id.trim().is_empty() {
            return Err(bad("\"id\" is empty".to_owned()));
        }
        if !ids.insert(item.id.clone()) {
            return Err(bad(format!("duplicate id {:?}", item.id)));
        }
        if item.prompt.trim().is_empty() {
            return Err(bad(format!("item {:?}: \"prompt\" is empty", item.id)));
        }
        if item.expect_all.is_empty() && item.expect_any.is_empty() && item.forbid.is_empty() {
            return Err(bad(format!(
                "item {:?} has no expect_all, expect_any or forbid pattern",
                item.id
            )));
        }
        let compile = |field: &str, patterns: Vec<String>| {
            patterns
                .into_iter()
                .map(|source| {
                    RegexBuilder::new(&source)
                        .case_insensitive(true)
                        .build()
                        .map(|regex| Pattern {
                            source: source.clone(),
                            regex,
                        })
                        .map_err(|e| {
                            bad(format!(
                                "item {:?}: {field} pattern {source:?}: {e}",
                                item.id
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        items.push(RubricItem {
            expect_all: compile("expect_all", item.expect_all)?,
            expect_any: compile("expect_any", item.expect_any)?,
            forbid: compile("forbid", item.forbid)?,
            id: item.id,
            prompt: item.prompt,
            context: item.context.filter(|c| !c.trim().is_empty()),
            line,
        });
    }
    if items.is_empty() {
        return Err(RubricError::Empty(path.to_owned()));
    }
    Ok(items)
}

/// Reads and parses a rubric file.
pub fn load_rubric(path: &Path) -> Result<Vec<RubricItem>, RubricError> {
    let text = std::fs::read_to_string(path).map_err(|source| RubricError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_rubric(&text, path)
}

/// One rubric check's verdict on one reply.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RubricCheck {
    /// `expect_all`, `expect_any` or `forbid`.
    pub kind: String,
    /// The pattern (for `expect_any`, the alternatives joined by ` | `).
    pub pattern: String,
    /// Whether the reply satisfies it.
    pub passed: bool,
}

impl RubricItem {
    /// Checks `reply`: one check per `expect_all` pattern, one for the whole `expect_any`
    /// list (when not empty), one per `forbid` pattern.
    pub fn check(&self, reply: &str) -> Vec<RubricCheck> {
        let check = |kind: &str, pattern: String, passed| RubricCheck {
            kind: kind.to_owned(),
            pattern,
            passed,
        };
        let mut checks: Vec<RubricCheck> = self
            .expect_all
            .iter()
            .map(|p| check("expect_all", p.source.clone(), p.regex.is_match(reply)))
            .collect();
        if !self.expect_any.is_empty() {
            let joined = self
                .expect_any
                .iter()
                .map(|p| p.source.as_str())
                .collect::<Vec<_>>()
                .join(" | ");
            let any = self.expect_any.iter().any(|p| p.regex.is_match(reply));
            checks.push(check("expect_any", joined, any));
        }
        checks.extend(
            self.forbid
                .iter()
                .map(|p| check("forbid", p.source.clone(), !p.regex.is_match(reply))),
        );
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<RubricItem>, RubricError> {
        parse_rubric(text, Path::new("rubric.jsonl"))
    }

    #[test]
    fn parses_and_checks_case_insensitively() {
        let items = parse(concat!(
            r#"{"id": "paris", "prompt": "Capital of France?", "expect_all": ["\\bparis\\b"], "forbid": ["lyon"]}"#,
            "\n\n",
            r#"{"id": "mult", "prompt": "7*8?", "context": "notes", "expect_any": ["\\b56\\b", "fifty.six"]}"#,
        ))
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1].line, 3);
        assert_eq!(items[1].context.as_deref(), Some("notes"));
        let passed = |item: &RubricItem, reply| -> Vec<bool> {
            item.check(reply).iter().map(|c| c.passed).collect()
        };
        assert_eq!(passed(&items[0], "It is PARIS."), [true, true]);
        assert_eq!(passed(&items[0], "Lyon, not Paris."), [true, false]);
        assert_eq!(passed(&items[0], "Comparison"), [false, true]);
        assert_eq!(passed(&items[1], "Fifty six"), [true]);
        assert_eq!(passed(&items[1], "560"), [false]);
        assert_eq!(items[1].check("x")[0].pattern, r"\b56\b | fifty.six");
    }

    #[test]
    fn errors_name_file_and_line() {
        let good = r#"{"id": "a", "prompt": "p", "expect_all": ["x"]}"#;
        let cases = [
            (format!("{good}\nnot json"), "rubric.jsonl:2: expected"),
            (
                format!(
                    "{good}\n{}",
                    r#"{"id": "b", "prompt": "p", "expect_all": ["(unclosed"]}"#
                ),
                "rubric.jsonl:2: item \"b\": expect_all pattern \"(unclosed\"",
            ),
            (
                format!("{good}\n\n{good}"),
                "rubric.jsonl:3: duplicate id \"a\"",
            ),
            (
                r#"{"id": "a", "prompt": " ", "expect_all": ["x"]}"#.to_owned(),
                "rubric.jsonl:1: item \"a\": \"prompt\" is empty",
            ),
            (
                r#"{"id": "a", "prompt": "p"}"#.to_owned(),
                "rubric.jsonl:1: item \"a\" has no expect_all",
            ),
            (
                r#"{"id": "a", "prompt": "p", "expect": ["x"]}"#.to_owned(),
                "rubric.jsonl:1: unknown field `expect`",
            ),
            (
                r#"{"prompt": "p", "forbid": ["x"]}"#.to_owned(),
                "rubric.jsonl:1: missing field `id`",
            ),
            ("\n \n".to_owned(), "rubric.jsonl: the rubric has no items"),
        ];
        for (text, expected) in cases {
            let message = parse(&text).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{message} vs {expected}");
        }
    }
}
