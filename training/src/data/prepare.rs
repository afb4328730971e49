//! From loaded sources to the files fine-tuning reads: duplicates dropped (first occurrence
//! kept), a seeded train/eval split, normalised JSONL, and the counts of what was dropped.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use mimir::engine::chat::Role;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::atomic_file::write_atomically;

use super::source::{DataError, Loaded, Malformed};
use super::Example;

/// How the examples are split.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitOptions {
    /// Fraction held out for evaluation, in [0, 1).
    pub eval_fraction: f64,
    /// Seed of the shuffle that picks the held-out examples.
    pub seed: u64,
}

/// Counts for one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceCounts {
    /// The file, URL or generator.
    pub source: String,
    /// Examples read (before duplicates were dropped).
    pub read: usize,
    /// Examples dropped as duplicates of an earlier one.
    pub duplicates: usize,
    /// Rows dropped because a prompt or response was empty.
    pub empty: usize,
    /// Rows that could not be read.
    pub malformed: usize,
}

/// What [`prepare`] did, for the report printed after `mimir-train data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Per source, in the order given.
    pub sources: Vec<SourceCounts>,
    /// Examples kept (train + eval).
    pub kept: usize,
    /// Examples in the training split.
    pub train: usize,
    /// Examples in the evaluation split.
    pub eval: usize,
    /// Duplicates dropped, all sources.
    pub duplicates: usize,
    /// Empty rows dropped, all sources.
    pub empty: usize,
    /// Malformed rows, all sources.
    pub malformed: usize,
}

/// The split examples and what was dropped on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// Examples to train on, in source order.
    pub train: Vec<Example>,
    /// Held-out examples, in source order.
    pub eval: Vec<Example>,
    /// Every malformed row, `file:line: problem`.
    pub malformed: Vec<Malformed>,
    /// The counts.
    pub summary: Summary,
}

/// What makes two examples the same: what the student said (every turn but the system prompt
/// and the replies), case and spacing ignored. Keying on the prompt side keeps one target per
/// prompt, so a prompt never lands in both splits with different answers.
fn dedup_key(example: &Example) -> Vec<(Role, String)> {
    example
        .messages
        .iter()
        .filter(|m| !matches!(m.role, Role::System | Role::Assistant))
        .map(|m| {
            let words: Vec<&str> = m.content.split_whitespace().collect();
            (m.role, words.join(" ").to_lowercase())
        })
        .collect()
}

/// Number of held-out examples out of `n`: `round(n × fraction)`, at least one when the
/// fraction is positive and there are two examples or more, and never all of them.
pub fn eval_count(n: usize, fraction: f64) -> usize {
    if fraction <= 0.0 || n < 2 {
        return 0;
    }
    ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
}

/// Drops duplicates (same prompt) across `sources`, keeping the first occurrence, and splits
/// the rest.
/// The same sources and options always give the same split.
pub fn prepare(sources: Vec<Loaded>, options: SplitOptions) -> Result<Prepared, DataError> {
    if !(0.0..1.0).contains(&options.eval_fraction) {
        return Err(DataError::EvalFraction(options.eval_fraction));
    }
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    let mut counts = Vec::with_capacity(sources.len());
    let mut malformed = Vec::new();
    for loaded in sources {
        let read = loaded.examples.len();
        let before = kept.len();
        kept.extend(
            loaded
                .examples
                .into_iter()
                .filter(|example| seen.insert(dedup_key(example))),
        );
        counts.push(SourceCounts {
            source: loaded.source,
            read,
            duplicates: read - (kept.len() - before),
            empty: loaded.empty,
            malformed: loaded.malformed.len(),
        });
        malformed.extend(loaded.malformed);
    }

    let mut order: Vec<usize> = (0..kept.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(options.seed));
    let held_out: HashSet<usize> = order[..eval_count(kept.len(), options.eval_fraction)]
        .iter()
        .copied()
        .collect();
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for (index, example) in kept.into_iter().enumerate() {
        if held_out.contains(&index) {
            eval.push(example);
        } else {
            train.push(example);
        }
    }

    let summary = Summary {
        kept: train.len() + eval.len(),
        train: train.len(),
        eval: eval.len(),
        duplicates: counts.iter().map(|c| c.duplicates).sum(),
        empty: counts.iter().map(|c| c.empty).sum(),
        malformed: malformed.len(),
        sources: counts,
    };
    Ok(Prepared {
        train,
        eval,
        malformed,
        summary,
    })
}

/// Writes `examples` as normalised JSONL (one example per line), atomically.
pub fn write_jsonl(path: &Path, examples: &[Example]) -> Result<(), DataError> {
    let io = |path: &Path, what, source| DataError::Io {
        path: path.to_owned(),
        what,
        source,
    };
    write_atomically(path, io, |out| {
        for example in examples {
            let line = serde_json::to_string(example).expect("examples serialise");
            writeln!(out, "{line}").map_err(|e| io(path, "writing", e))?;
        }
        Ok(())
    })
}

impl Summary {
    /// A readable table of the counts.
    pub fn table(&self) -> String {
        let width = self
            .sources
            .iter()
            .map(|s| s.source.chars().count())
            .chain([6])
            .max()
            .unwrap_or(6);
        let mut out = format!(
            "{:<width$}  {:>6}  {:>10}  {:>6}  {:>9}\n",
            "source", "read", "duplicates", "empty", "malformed"
        );
        for s in &self.sources {
            out += &format!(
                "{:<width$}  {:>6}  {:>10}  {:>6}  {:>9}\n",
                s.source, s.read, s.duplicates, s.empty, s.malformed
            );
        }
        out += &format!(
            "kept {} examples: {} train, {} eval; dropped {} duplicates and {} empty rows; {} malformed rows\n",
            self.kept, self.train, self.eval, self.duplicates, self.empty, self.malformed
        );
        out
    }
}
