//! Answering rubric prompts through Mimir's tutor, as the browser worker does: the turn is
//! planned ([`Tutor::plan_turn`]: classification, strategy snippet, tool call with its result
//! as the `context_provider` turn) before the reply is generated from the plan's messages.

use std::time::{SystemTime, UNIX_EPOCH};

use mimir::engine::chat::ChatMessage;
use mimir::engine::clock::Clock;
use mimir::engine::generate::Session;
use mimir::engine::number_guard::NumberGuard;
use mimir::tools::{DateTimeError, LocalDateTime, ToolResult};
use mimir::tutor::{Action, ActionSource, TurnInput, Tutor};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Error reading a `--now` date and time.
#[derive(Debug, Error)]
pub enum NowError {
    /// The text is not `YYYY-MM-DDTHH:MM`.
    #[error("{text:?} is not a date and time written YYYY-MM-DDTHH:MM")]
    Format {
        /// What was given.
        text: String,
    },
    /// The date or time does not exist.
    #[error("{text:?}: {source}")]
    Invalid {
        /// What was given.
        text: String,
        /// Which field is out of range.
        source: DateTimeError,
    },
}

/// Reads `YYYY-MM-DDTHH:MM` (a space also separates date and time) as the student's local
/// date and time in `locale`.
pub fn parse_now(text: &str, locale: &str) -> Result<LocalDateTime, NowError> {
    let format = || NowError::Format {
        text: text.to_owned(),
    };
    let (date, time) = text.trim().split_once(['T', ' ']).ok_or_else(format)?;
    let numbers = |part: &str, sep: char, count: usize| -> Result<Vec<u32>, NowError> {
        let fields: Vec<&str> = part.split(sep).collect();
        if fields.len() != count || fields.iter().any(|f| f.is_empty() || f.len() > 4) {
            return Err(format());
        }
        fields
            .iter()
            .map(|f| f.parse::<u32>().map_err(|_| format()))
            .collect()
    };
    let date = numbers(date, '-', 3)?;
    let time = numbers(time, ':', 2)?;
    let now = LocalDateTime {
        year: date[0] as i32,
        month: date[1],
        day: date[2],
        hour: time[0],
        minute: time[1],
        locale: locale.to_owned(),
    };
    now.validate().map_err(|source| NowError::Invalid {
        text: text.to_owned(),
        source,
    })?;
    Ok(now)
}

/// The date and time `seconds` after the Unix epoch, in UTC, in `locale`.
pub fn utc_from_unix(seconds: u64, locale: &str) -> LocalDateTime {
    let days = (seconds / 86_400) as i64;
    let of_day = seconds % 86_400;
    // Days to the civil date (H. Hinnant's algorithm), eras of 400 years from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = (year_of_era + era * 400 + i64::from(month <= 2)) as i32;
    LocalDateTime {
        year,
        month,
        day,
        hour: (of_day / 3600) as u32,
        minute: (of_day % 3600 / 60) as u32,
        locale: locale.to_owned(),
    }
}

/// The system clock's date and time, in UTC (the evaluation's stand-in for the student's).
pub fn utc_now(locale: &str) -> LocalDateTime {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_from_unix(seconds, locale)
}

/// Mimir's tutor for one model and the student's date and time it plans with.
#[derive(Debug)]
pub struct TutorPlanning {
    /// The model's tutor (built once: it indexes the vocabulary).
    pub tutor: Tutor,
    /// Given to the `date_time` tool.
    pub now: LocalDateTime,
}

/// How a turn was planned, as the report records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnRecord {
    /// The classified message (absent when planning failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Whether a rule or the model classified it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ActionSource>,
    /// The tool call and its result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolResult>,
    /// Why planning failed; the reply was then generated from the plain messages, as the
    /// worker does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TurnRecord {
    fn failed(error: &str) -> Self {
        Self {
            action: None,
            source: None,
            tool: None,
            error: Some(error.to_owned()),
        }
    }

    /// One line: `calculate / math (rule); calculator: 7*8 = 56`.
    pub fn summary(&self) -> String {
        let action = match (&self.action, self.source) {
            (Some(action), source) => format!(
                "{} / {}{}",
                action.kind.as_str(),
                action.subject.as_deref().unwrap_or("-"),
                match source {
                    Some(ActionSource::Rule) => " (rule)",
                    Some(ActionSource::Cue) => " (cue)",
                    Some(ActionSource::Model) => " (model)",
                    None => "",
                }
            ),
            (None, _) => "no action".to_owned(),
        };
        let tool = self
            .tool
            .as_ref()
            .map(|t| format!("; {}", t.context_line()))
            .unwrap_or_default();
        let error = self
            .error
            .as_deref()
            .map(|e| format!("; planning failed: {e}"))
            .unwrap_or_default();
        format!("{action}{tool}{error}")
    }
}

/// A planned turn as the worker generates it: the messages, the reply's forced start, the
/// number guard, and what to record.
pub struct PlannedTurn {
    /// The messages the reply is generated from.
    pub messages: Vec<ChatMessage>,
    /// The text the reply starts with.
    pub prefix: Option<String>,
    /// Keeps the reply to the numbers of a calculator turn.
    pub guard: Option<NumberGuard>,
    /// The action, tool and any planning error.
    pub record: TurnRecord,
}

impl TutorPlanning {
    /// Plans the turn for the app's `messages` as the worker does; when planning fails the
    /// reply goes on from `messages` as they are and the record says why.
    pub fn plan(
        &mut self,
        session: &mut Session,
        messages: Vec<ChatMessage>,
        clock: &dyn Clock,
    ) -> PlannedTurn {
        let Some(input) = TurnInput::from_messages(&messages, Some(&self.now)) else {
            return PlannedTurn {
                messages,
                prefix: None,
                guard: None,
                record: TurnRecord::failed("the last message is not the student's"),
            };
        };
        match self.tutor.plan_turn(session, &input, clock) {
            Ok(plan) => PlannedTurn {
                messages: plan.messages.clone(),
                prefix: plan.reply_prefix(),
                guard: plan.number_guard(session),
                record: TurnRecord {
                    action: Some(plan.action),
                    source: Some(plan.source),
                    tool: plan.tool,
                    error: None,
                },
            },
            Err(e) => PlannedTurn {
                messages,
                prefix: None,
                guard: None,
                record: TurnRecord::failed(&e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mimir::tools::ToolCall;
    use mimir::tutor::ActionKind;

    #[test]
    fn now_reads_date_and_time_and_rejects_what_does_not_exist() {
        let now = parse_now("2025-03-04T09:05", "en-GB").unwrap();
        assert_eq!(
            (now.year, now.month, now.day, now.hour, now.minute),
            (2025, 3, 4, 9, 5)
        );
        assert_eq!(now.locale, "en-GB");
        assert_eq!(parse_now("2024-02-29 23:59", "en").unwrap().day, 29);
        for bad in [
            "2025-03-04",
            "2025/03/04T09:05",
            "2025-03-04T9",
            "x-1-2T3:4",
            "",
        ] {
            assert!(
                matches!(parse_now(bad, "en"), Err(NowError::Format { .. })),
                "{bad}"
            );
        }
        for bad in ["2025-02-29T10:00", "2025-13-01T10:00", "2025-01-01T24:00"] {
            let error = parse_now(bad, "en").unwrap_err();
            assert!(matches!(error, NowError::Invalid { .. }), "{bad}");
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn unix_seconds_become_the_utc_calendar_date() {
        let at = |s| {
            let t = utc_from_unix(s, "en");
            (t.year, t.month, t.day, t.hour, t.minute)
        };
        assert_eq!(at(0), (1970, 1, 1, 0, 0));
        assert_eq!(at(951_782_400), (2000, 2, 29, 0, 0));
        assert_eq!(at(1_709_251_199), (2024, 2, 29, 23, 59));
        assert_eq!(at(1_735_689_600 + 3_660), (2025, 1, 1, 1, 1));
        assert_eq!(at(4_107_542_400), (2100, 3, 1, 0, 0));
        utc_now("en").validate().unwrap();
    }

    #[test]
    fn a_record_summarises_action_source_and_tool() {
        let record = TurnRecord {
            action: Some(Action {
                kind: ActionKind::Calculate,
                subject: Some("math".to_owned()),
                topic: None,
            }),
            source: Some(ActionSource::Rule),
            tool: Some(ToolResult {
                call: ToolCall::Calculator {
                    expression: "7*8".to_owned(),
                },
                ok: true,
                text: "7*8 = 56".to_owned(),
            }),
            error: None,
        };
        assert_eq!(
            record.summary(),
            "calculate / math (rule); calculator: 7*8 = 56"
        );
        let failed = TurnRecord::failed("no JSON");
        assert_eq!(failed.summary(), "no action; planning failed: no JSON");
        let json = serde_json::to_string(&record).unwrap();
        assert_eq!(serde_json::from_str::<TurnRecord>(&json).unwrap(), record);
    }
}
