//! Evaluation against a tutoring rubric: each rubric prompt is answered by the model (greedy
//! by default, with the app's system prompt and the model's chat template), the reply is
//! checked against the item's regexes and against Mimir's tone rules, and the verdicts are
//! aggregated into a report. With a [`TutorPlanning`], each turn is first planned by Mimir's
//! tutor (action, strategy, tool) as the browser worker does.

mod report;
mod rubric;
mod run;
mod tone;
mod turn;

pub use report::{EvalReport, ItemResult, Rate, RunInfo};
pub use rubric::{load_rubric, parse_rubric, Pattern, RubricCheck, RubricError, RubricItem};
pub use run::{evaluate, EvalError, EvalOptions};
pub use tone::{check_tone, dash_marks, emoji, special_tokens, ToneCheck, ToneConfig, TONE_RULES};
pub use turn::{parse_now, utc_from_unix, utc_now, NowError, TurnRecord, TutorPlanning};
