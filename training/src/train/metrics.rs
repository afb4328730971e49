//! `metrics.jsonl` (one JSON object per optimiser step and per evaluation) and the progress
//! line on stderr.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::TrainError;

/// The metrics file's name inside a run folder.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// An optimiser step.
    Train {
        /// Steps completed (1-based).
        step: usize,
        /// 1-based epoch.
        epoch: usize,
        /// Mean loss per target token over the step's examples.
        loss: f64,
        /// The learning rate the step used.
        lr: f64,
        /// Global gradient norm before clipping.
        grad_norm: f64,
        /// Tokens run through the model in the step.
        tokens: usize,
        /// Those tokens per second of the step's wall time.
        tokens_per_s: f64,
        /// Seconds since the run (or its resumption) started.
        elapsed_s: f64,
    },
    /// An evaluation at the end of an epoch.
    Eval {
        /// Steps completed.
        step: usize,
        /// 1-based epoch just finished.
        epoch: usize,
        /// Mean loss per target token over the eval split.
        eval_loss: f64,
    },
}

impl Record {
    /// The step the record belongs to.
    pub fn step(&self) -> usize {
        match self {
            Record::Train { step, .. } | Record::Eval { step, .. } => *step,
        }
    }
}

/// Every record of `dir/metrics.jsonl` (none if the file does not exist).
pub fn read_metrics(dir: &Path) -> Result<Vec<Record>, TrainError> {
    let path = dir.join(METRICS_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::io(&path, "opening", e)),
    };
    let mut records = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| TrainError::io(&path, "reading", e))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line)
            .map_err(|e| TrainError::invalid(&path, format!("line {}: {e}", i + 1)))?;
        records.push(record);
    }
    Ok(records)
}

/// Rewrites `dir/metrics.jsonl` with only `records` (a resumed run drops what came after its
/// checkpoint).
pub fn write_metrics(dir: &Path, records: &[Record]) -> Result<(), TrainError> {
    let path = dir.join(METRICS_FILE);
    let mut text = String::new();
    for record in records {
        text.push_str(&serde_json::to_string(record).expect("record serialises"));
        text.push('\n');
    }
    std::fs::write(&path, text).map_err(|e| TrainError::io(&path, "writing", e))
}

/// Appends `record` to `dir/metrics.jsonl`.
pub fn append_metric(dir: &Path, record: &Record) -> Result<(), TrainError> {
    let path = dir.join(METRICS_FILE);
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| TrainError::io(&path, "opening", e))?;
    let line = serde_json::to_string(record).expect("record serialises");
    writeln!(file, "{line}").map_err(|e| TrainError::io(&path, "appending", e))
}

/// Prints the progress of a step on stderr: one line rewritten in place on a terminal, one
/// line per step otherwise (logs).
/// `resumed_at` is the step the run (re)started from, so the estimate uses this session's pace.
pub fn progress(record: &Record, total_steps: usize, epochs: usize, resumed_at: usize) {
    let Record::Train {
        step,
        epoch,
        loss,
        lr,
        tokens_per_s,
        elapsed_s,
        ..
    } = record
    else {
        return;
    };
    let width = 24;
    let done = width * step / total_steps.max(1);
    let bar: String = "#".repeat(done) + &"-".repeat(width - done);
    let pace = elapsed_s / step.saturating_sub(resumed_at).max(1) as f64;
    let eta = pace * total_steps.saturating_sub(*step) as f64;
    let line = format!(
        "[{bar}] step {step}/{total_steps} epoch {epoch}/{epochs} loss {loss:.4} lr {lr:.2e} \
         {tokens_per_s:.0} tok/s elapsed {elapsed_s:.0}s eta {eta:.0}s"
    );
    let mut err = std::io::stderr();
    if err.is_terminal() {
        let _ = write!(err, "\r{line}\x1b[K");
        if step == &total_steps {
            let _ = writeln!(err);
        }
    } else {
        let _ = writeln!(err, "{line}");
    }
}
