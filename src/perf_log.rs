//! The performance log: every tier attempt, memory, fallbacks and per-reply speed. The worker
//! fills it, the page shows it in the model info panel and offers it as a JSON download.

use serde::{Deserialize, Serialize};

use crate::engine::generate::GenerationStats;
use crate::model_info::ModelType;

/// How the engine's threads shared the matmuls and attention ([`mimir_kernels::pool::PoolWork`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadWork {
    /// Matmul and attention tasks shared out.
    pub tasks: u64,
    /// Of those, the tasks the other threads ran, not the engine's own.
    pub by_other_threads: u64,
}

impl std::fmt::Display for ThreadWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let share = 100.0 * self.by_other_threads as f64 / self.tasks.max(1) as f64;
        write!(
            f,
            "the other threads ran {share:.0} % of {} matmul and attention tasks",
            self.tasks
        )
    }
}

/// One try at loading a tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierAttempt {
    /// The tier tried.
    pub tier: ModelType,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_at_ms: f64,
    /// How long the attempt took, milliseconds.
    pub duration_ms: f64,
    /// Model bytes fetched over the network.
    pub network_bytes: u64,
    /// Model bytes read from the local cache.
    pub cache_bytes: u64,
    /// True when the tier's model became live.
    pub ok: bool,
    /// Why it failed, naming the file and the problem.
    pub error: Option<String>,
    /// Where the time went, in order: each file fetched (`fetch <file>`: downloaded or read
    /// from the cache, and verified), `parse <tokenizer.json>`, `adapter` (read and checked),
    /// the engine's load stages (`header`, `tokenizer`, `weights`) and the generation
    /// `settings`.
    #[serde(default)]
    pub stages: Vec<StageTime>,
}

/// One stage of a tier attempt and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    /// What was done (`fetch Phi-3-mini-4k-instruct-q4.gguf`, `weights`).
    pub stage: String,
    /// Milliseconds.
    pub ms: f64,
}

/// Memory in use at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemorySample {
    /// When, milliseconds since the Unix epoch.
    pub at_ms: f64,
    /// What was happening (`"after loading base"`).
    pub label: String,
    /// Size of the worker's wasm linear memory.
    pub wasm_bytes: u64,
    /// `performance.memory.usedJSHeapSize`, where the browser has it.
    pub js_heap_bytes: Option<u64>,
}

/// A change of what the status button shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    /// When, milliseconds since the Unix epoch.
    pub at_ms: f64,
    /// `loading`, `success`, `warning` or `error`.
    pub state: String,
    /// The tooltip text at that moment.
    pub detail: String,
}

/// Everything measured in this visit, plus the fallback count kept across visits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerfLog {
    /// Tier attempts in the order they were made.
    pub attempts: Vec<TierAttempt>,
    /// The tier being tried now, while a load runs: its time so far and the bytes of the
    /// files it has finished (the file in flight shows in the download progress instead).
    /// `ok` is false and `error` none until it ends and moves to `attempts`.
    #[serde(default)]
    pub in_progress: Option<TierAttempt>,
    /// How many loads ended on a lower tier than the first, over all visits.
    pub fallback_activations: u64,
    /// Memory samples, oldest first.
    pub memory: Vec<MemorySample>,
    /// Timing of each reply, oldest first.
    pub replies: Vec<GenerationStats>,
    /// Status button changes, oldest first (recorded by the page).
    #[serde(default)]
    pub status_changes: Vec<StatusChange>,
    /// The vector instructions the engine's kernels use ([`mimir_kernels::instructions`]) and
    /// its threads: which of the worker builds the page started.
    #[serde(default)]
    pub kernels: String,
    /// How the matmuls' work was shared among the threads, where there are several.
    #[serde(default)]
    pub thread_work: Option<ThreadWork>,
    /// Warnings that did not stop loading (a tokenizer taken from the GGUF instead of the
    /// base repo, a storage persistence request refused).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl PerfLog {
    /// The most recent attempt that made a model live.
    pub fn last_success(&self) -> Option<&TierAttempt> {
        self.attempts.iter().rev().find(|a| a.ok)
    }

    /// The pretty JSON offered as a download.
    pub fn to_pretty_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the log always serialises")
    }
}
