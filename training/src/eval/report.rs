//! The evaluation report: every reply with its rubric and tone verdicts, pass rates per
//! check, per prompt and per tone rule, as JSON and as a readable table.

use std::collections::BTreeMap;

use mimir::engine::generate::StopReason;
use serde::{Deserialize, Serialize};

use super::rubric::RubricCheck;
use super::tone::ToneCheck;
use super::turn::TurnRecord;

/// What one rubric item got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemResult {
    /// The rubric item's id.
    pub id: String,
    /// The student's message.
    pub prompt: String,
    /// Lesson notes sent as context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// How the tutor planned the turn (with `--tutor` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<TurnRecord>,
    /// The model's reply.
    pub reply: String,
    /// Why generation stopped.
    pub stop: StopReason,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Seconds the reply took (planning and prefill included).
    pub seconds: f64,
    /// The rubric's checks.
    pub rubric: Vec<RubricCheck>,
    /// The tone rules.
    pub tone: Vec<ToneCheck>,
}

impl ItemResult {
    /// Every rubric check passed.
    pub fn rubric_passed(&self) -> bool {
        self.rubric.iter().all(|c| c.passed)
    }

    /// Every tone rule held.
    pub fn tone_passed(&self) -> bool {
        self.tone.iter().all(|c| c.passed)
    }

    /// Both.
    pub fn passed(&self) -> bool {
        self.rubric_passed() && self.tone_passed()
    }

    /// What failed, one line per check.
    pub fn failures(&self) -> Vec<String> {
        let rubric = self
            .rubric
            .iter()
            .filter(|c| !c.passed)
            .map(|c| match c.kind.as_str() {
                "forbid" => format!("forbid: matched {}", c.pattern),
                "expect_any" => format!("expect_any: none of {}", c.pattern),
                _ => format!("{}: no match for {}", c.kind, c.pattern),
            });
        let tone = self
            .tone
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("tone {}: {}", c.rule, c.detail));
        rubric.chain(tone).collect()
    }
}

/// `passed` out of `total`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Rate {
    /// How many passed.
    pub passed: usize,
    /// How many there were.
    pub total: usize,
    /// `passed / total` (1 when there were none).
    pub rate: f64,
}

impl Rate {
    /// Counts the `true`s.
    pub fn of(results: impl IntoIterator<Item = bool>) -> Self {
        let mut rate = Self::default();
        for passed in results {
            rate.total += 1;
            rate.passed += usize::from(passed);
        }
        rate.rate = if rate.total == 0 {
            1.0
        } else {
            rate.passed as f64 / rate.total as f64
        };
        rate
    }

    fn percent(&self) -> String {
        format!(
            "{}/{} ({:.1} %)",
            self.passed,
            self.total,
            self.rate * 100.0
        )
    }
}

/// How the replies were generated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The model file or folder.
    pub model: String,
    /// The adapter folder, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// The rubric file.
    pub rubric: String,
    /// Items in the rubric; a report with fewer `items` is a run still going or cut short.
    pub planned: usize,
    /// `greedy` or `sampled (temperature …, seed …)`.
    pub decoding: String,
    /// Token cap per reply.
    pub max_tokens: usize,
    /// With `--tutor`: the date and time given to the tutor's `date_time` tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tutor_now: Option<String>,
    /// Wall time of the whole run, model loading included.
    pub seconds: f64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// How the replies were generated.
    pub run: RunInfo,
    /// Rubric (content) checks passed, all items.
    pub checks: Rate,
    /// Rubric checks and tone rules together.
    #[serde(default)]
    pub all_checks: Rate,
    /// Items whose rubric checks and tone rules all passed.
    pub prompts: Rate,
    /// Items whose rubric checks all passed.
    pub prompts_rubric: Rate,
    /// Tone rule verdicts passed, all replies.
    pub tone: Rate,
    /// Replies that kept every tone rule.
    pub tone_replies: Rate,
    /// Replies cut off by the token cap or the context.
    pub capped: usize,
    /// Replies the loop guard stopped.
    #[serde(default)]
    pub looped: usize,
    /// Pass rate per kind of check: `expect_all`, `expect_any`, `forbid`, `tone:<rule>`.
    pub by_check: BTreeMap<String, Rate>,
    /// Every item's result, in rubric order.
    pub items: Vec<ItemResult>,
}

impl EvalReport {
    /// Aggregates `items`.
    pub fn new(run: RunInfo, items: Vec<ItemResult>) -> Self {
        let mut groups: BTreeMap<String, Vec<bool>> = BTreeMap::new();
        for item in &items {
            for check in &item.rubric {
                groups
                    .entry(check.kind.clone())
                    .or_default()
                    .push(check.passed);
            }
            for check in &item.tone {
                groups
                    .entry(format!("tone:{}", check.rule))
                    .or_default()
                    .push(check.passed);
            }
        }
        Self {
            run,
            checks: Rate::of(items.iter().flat_map(|i| i.rubric.iter().map(|c| c.passed))),
            all_checks: Rate::of(items.iter().flat_map(|i| {
                let rubric = i.rubric.iter().map(|c| c.passed);
                rubric.chain(i.tone.iter().map(|c| c.passed))
            })),
            prompts: Rate::of(items.iter().map(ItemResult::passed)),
            prompts_rubric: Rate::of(items.iter().map(ItemResult::rubric_passed)),
            tone: Rate::of(items.iter().flat_map(|i| i.tone.iter().map(|c| c.passed))),
            tone_replies: Rate::of(items.iter().map(ItemResult::tone_passed)),
            capped: items
                .iter()
                .filter(|i| matches!(i.stop, StopReason::MaxTokens | StopReason::ContextFull))
                .count(),
            looped: items
                .iter()
                .filter(|i| i.stop == StopReason::Repetition)
                .count(),
            by_check: groups
                .into_iter()
                .map(|(kind, results)| (kind, Rate::of(results)))
                .collect(),
            items,
        }
    }

    /// Pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("report serialises");
        text.push('\n');
        text
    }

    /// The summary, the per-check rates, and each failing item with its reply.
    pub fn table(&self) -> String {
        let run = &self.run;
        let mut out = format!(
            "model {}{}{}\nrubric {} ({} of {} items), {} decoding, max {} tokens, {:.1} s\n\n",
            run.model,
            run.adapter
                .as_deref()
                .map(|a| format!(" + adapter {a}"))
                .unwrap_or_default(),
            run.tutor_now
                .as_deref()
                .map(|now| format!(", tutor (actions and tools, now {now})"))
                .unwrap_or_default(),
            run.rubric,
            self.items.len(),
            run.planned,
            run.decoding,
            run.max_tokens,
            run.seconds,
        );
        let rows = [
            ("rubric checks", self.checks),
            ("all checks (rubric + tone)", self.all_checks),
            ("prompts (rubric + tone)", self.prompts),
            ("prompts (rubric only)", self.prompts_rubric),
            ("tone rules", self.tone),
            ("replies keeping every tone rule", self.tone_replies),
        ];
        for (name, rate) in rows {
            out += &format!("{name:<34} {}\n", rate.percent());
        }
        out += &format!("{:<34} {}\n", "replies cut by the token cap", self.capped);
        out += &format!(
            "{:<34} {}\n\n",
            "replies stopped by the loop guard", self.looped
        );
        out += &format!("{:<34} pass rate\n", "check");
        for (kind, rate) in &self.by_check {
            out += &format!("{kind:<34} {}\n", rate.percent());
        }
        let turns: Vec<(&str, String)> = self
            .items
            .iter()
            .filter_map(|i| Some((i.id.as_str(), i.turn.as_ref()?.summary())))
            .collect();
        if !turns.is_empty() {
            out += "\nturns (action / subject (source); tool):\n";
        }
        for (id, summary) in turns {
            out += &format!("  [{id}] {summary}\n");
        }
        let failing: Vec<&ItemResult> = self.items.iter().filter(|i| !i.passed()).collect();
        if !failing.is_empty() {
            out += &format!("\nfailures ({}):\n", failing.len());
        }
        for item in failing {
            out += &format!("\n[{}] {}\n", item.id, item.prompt);
            if let Some(turn) = &item.turn {
                out += &format!("  turn: {}\n", turn.summary());
            }
            for failure in item.failures() {
                out += &format!("  x {failure}\n");
            }
            out += "  reply:\n";
            for line in item.reply.lines() {
                out += &format!("    | {line}\n");
            }
        }
        out
    }
}
