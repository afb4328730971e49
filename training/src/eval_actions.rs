//! `mimir-train eval-actions`: how well the tutor classifies students' messages.
//!
//! Reads an action-labelled set (`training/data/actions.jsonl`: one
//! `{"message": ..., "kind": ..., "subject": ...}` per line), classifies every message the
//! way the app does ([`Classifier::classify`]: rules, then the model under the action
//! grammar, greedy) and reports kind and subject accuracy, per kind, and every miss.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use mimir::engine::clock::{Clock, SystemClock};
use mimir::engine::generate::{GenerateError, Session};
use mimir::engine::model::LoadOptions;
use mimir::engine::tokenizer::{Tokenizer, TokenizerError};
use mimir::tutor::{ActionError, ActionKind, ActionSource, Classifier};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why the evaluation could not run.
#[derive(Debug, Error)]
pub enum EvalError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A line of the data set is not an example.
    #[error("{path}:{line}: {source}")]
    Example {
        /// The data set.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The data set has no examples.
    #[error("{path}: no examples")]
    Empty {
        /// The data set.
        path: PathBuf,
    },
    /// The tokenizer file could not be used.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] GenerateError),
    /// A message could not be classified.
    #[error(transparent)]
    Action(#[from] ActionError),
}

/// One labelled message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionExample {
    /// What the student wrote.
    pub message: String,
    /// The expected kind.
    pub kind: ActionKind,
    /// The expected subject (`null` when none).
    pub subject: Option<String>,
    /// The expected topic, for reading (not scored: topics are free text).
    #[serde(default)]
    pub topic: Option<String>,
}

/// A message whose kind or subject was wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Miss {
    /// What the student wrote.
    pub message: String,
    /// Expected kind.
    pub expected_kind: ActionKind,
    /// Classified kind.
    pub kind: ActionKind,
    /// Expected subject.
    pub expected_subject: Option<String>,
    /// Classified subject.
    pub subject: Option<String>,
    /// Whether a rule or the model decided.
    pub source: ActionSource,
}

/// The evaluation's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionReport {
    /// Messages classified.
    pub total: usize,
    /// Kinds right.
    pub kind_correct: usize,
    /// Subjects right.
    pub subject_correct: usize,
    /// `kind_correct / total`.
    pub kind_accuracy: f64,
    /// `subject_correct / total`.
    pub subject_accuracy: f64,
    /// Messages a rule settled.
    pub by_rule: usize,
    /// Messages whose kind a cue phrase fixed.
    pub by_cue: usize,
    /// Per expected kind: (kinds right, messages).
    pub per_kind: BTreeMap<String, (usize, usize)>,
    /// Wall-clock seconds for all classifications.
    pub seconds: f64,
    /// Every message with a wrong kind or subject.
    pub misses: Vec<Miss>,
}

/// Reads a JSON-lines data set; blank lines are skipped.
pub fn read_examples(path: &Path) -> Result<Vec<ActionExample>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.into(),
        source,
    })?;
    let mut examples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        examples.push(
            serde_json::from_str(line).map_err(|source| EvalError::Example {
                path: path.into(),
                line: i + 1,
                source,
            })?,
        );
    }
    if examples.is_empty() {
        return Err(EvalError::Empty { path: path.into() });
    }
    Ok(examples)
}

/// Loads a GGUF model (its own vocabulary unless `tokenizer` names a `tokenizer.json`).
pub fn load_session(model: &Path, tokenizer: Option<&Path>) -> Result<Session, EvalError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EvalError::Io { path, source }
    };
    let tokenizer = match tokenizer {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(io(path))?;
            Some(Tokenizer::from_json_bytes(
                &bytes,
                &path.display().to_string(),
            )?)
        }
        None => None,
    };
    let mut reader = BufReader::new(File::open(model).map_err(io(model))?);
    Ok(Session::from_gguf(
        &mut reader,
        &model.display().to_string(),
        &LoadOptions::default(),
        tokenizer,
    )?)
}

/// Classifies every example with `session`'s model.
pub fn evaluate(
    session: &mut Session,
    examples: &[ActionExample],
) -> Result<ActionReport, EvalError> {
    let clock = SystemClock::default();
    let start = clock.now_ms();
    let mut classifier = Classifier::new(session)?;
    let mut report = ActionReport {
        total: examples.len(),
        kind_correct: 0,
        subject_correct: 0,
        kind_accuracy: 0.0,
        subject_accuracy: 0.0,
        by_rule: 0,
        by_cue: 0,
        per_kind: BTreeMap::new(),
        seconds: 0.0,
        misses: Vec::new(),
    };
    for example in examples {
        let classified = classifier.classify(session, &example.message, &clock)?;
        let (action, source) = (classified.action, classified.source);
        eprintln!(
            "{:<12} {:<12} {}",
            example.kind.as_str(),
            action.kind.as_str(),
            example.message
        );
        let kind_ok = action.kind == example.kind;
        let subject_ok = action.subject == example.subject;
        report.kind_correct += usize::from(kind_ok);
        report.subject_correct += usize::from(subject_ok);
        report.by_rule += usize::from(source == ActionSource::Rule);
        report.by_cue += usize::from(source == ActionSource::Cue);
        let entry = report
            .per_kind
            .entry(example.kind.as_str().to_owned())
            .or_default();
        entry.0 += usize::from(kind_ok);
        entry.1 += 1;
        if !(kind_ok && subject_ok) {
            report.misses.push(Miss {
                message: example.message.clone(),
                expected_kind: example.kind,
                kind: action.kind,
                expected_subject: example.subject.clone(),
                subject: action.subject,
                source,
            });
        }
    }
    report.kind_accuracy = report.kind_correct as f64 / report.total as f64;
    report.subject_accuracy = report.subject_correct as f64 / report.total as f64;
    report.seconds = (clock.now_ms() - start) / 1000.0;
    Ok(report)
}

/// The report as a table for people.
pub fn render(report: &ActionReport) -> String {
    let mut out = String::new();
    let pct = |n: usize, d: usize| 100.0 * n as f64 / d.max(1) as f64;
    let _ = writeln!(
        out,
        "kind accuracy    {:5.1} % ({}/{})\nsubject accuracy {:5.1} % ({}/{})\n\
         settled by rules {} of {}, kind fixed by a cue phrase {}; {:.1} s in all\n",
        pct(report.kind_correct, report.total),
        report.kind_correct,
        report.total,
        pct(report.subject_correct, report.total),
        report.subject_correct,
        report.total,
        report.by_rule,
        report.total,
        report.by_cue,
        report.seconds
    );
    let _ = writeln!(out, "{:<14} {:>7}", "kind", "right");
    for (kind, (right, all)) in &report.per_kind {
        let _ = writeln!(out, "{kind:<14} {right:>3}/{all:<3}");
    }
    if !report.misses.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<14} {:<14} {:<18} {:<18} {:<5} message",
            "expected", "got", "expected subject", "got subject", "by"
        );
    }
    let show = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
    for miss in &report.misses {
        let _ = writeln!(
            out,
            "{:<14} {:<14} {:<18} {:<18} {:<5} {}",
            miss.expected_kind.as_str(),
            miss.kind.as_str(),
            show(&miss.expected_subject),
            show(&miss.subject),
            match miss.source {
                ActionSource::Rule => "rule",
                ActionSource::Cue => "cue",
                ActionSource::Model => "model",
            },
            miss.message
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_set_is_well_formed_and_covers_every_kind() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/actions.jsonl");
        let examples = read_examples(&path).unwrap();
        assert!(examples.len() >= 60, "{} examples", examples.len());
        for kind in ActionKind::ALL {
            let n = examples.iter().filter(|e| e.kind == kind).count();
            assert!(n >= 5, "{} examples of {kind:?}", n);
        }
        for e in &examples {
            if let Some(subject) = &e.subject {
                assert!(
                    mimir::tutor::SUBJECTS.contains(&subject.as_str()),
                    "{subject}"
                );
            }
        }
    }

    #[test]
    fn bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(
            &path,
            "{\"message\": \"hi\", \"kind\": \"greeting\", \"subject\": null}\n\n{\"message\": \"x\", \"kind\": \"chat\", \"subject\": null}\n",
        )
        .unwrap();
        let err = read_examples(&path).unwrap_err().to_string();
        assert!(err.contains("a.jsonl:3: unknown variant `chat`"), "{err}");
    }
}
