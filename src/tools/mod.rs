//! Function tools the tutor can call: an exact [`calculator`] and [`date_time`].
//!
//! A [`ToolCall`] is what the model emits as constrained JSON
//! (`{"tool": "calculator", "expression": "7*8"}`) or what [`route`] derives from an obvious
//! student message ("What is 7 times 8?"). [`run`] executes it; the [`ToolResult`] goes back
//! to the model as the context line `calculator: 7*8 = 56` (see
//! [`ToolResult::context_line`]) and to the chat as a small note. [`claim`] finds an
//! arithmetic answer a student wants checked, so the calculator can say whether it is right.

pub mod calculator;
pub mod date_time;
mod rational;

use serde::{Deserialize, Serialize};

pub use calculator::{calculate, CalcError, Calculation};
pub use date_time::{DateTimeError, LocalDateTime};
pub use rational::Rational;

/// The longest expression a model-written calculator call may hold.
pub const MAX_EXPRESSION_CHARS: usize = 80;

/// A call of one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolCall {
    /// Exact arithmetic on `expression`.
    Calculator {
        /// The expression, e.g. `7*8` or `1/2 + 1/4`.
        expression: String,
    },
    /// Today's date and time in the student's locale.
    DateTime,
}

impl ToolCall {
    /// The tool's name as it appears in JSON and in the context line.
    pub fn name(&self) -> &'static str {
        match self {
            ToolCall::Calculator { .. } => "calculator",
            ToolCall::DateTime => "date_time",
        }
    }

    /// The JSON schema of a calculator call, for constrained decoding.
    pub fn calculator_schema() -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": {
                "tool": {"enum": ["calculator"]},
                "expression": {"type": "string", "minLength": 1, "maxLength": MAX_EXPRESSION_CHARS}
            },
            "required": ["tool", "expression"]
        })
    }
}

/// What a tool answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// The call that was run.
    pub call: ToolCall,
    /// Whether the tool succeeded.
    pub ok: bool,
    /// The answer (`7*8 = 56`) or what went wrong (`` `5/0`: division by zero is undefined ``).
    pub text: String,
}

impl ToolResult {
    /// The line given to the model as context: `calculator: 7*8 = 56`.
    pub fn context_line(&self) -> String {
        format!("{}: {}", self.call.name(), self.text)
    }
}

/// Runs `call`. `now` is the student's local date and time (the engine has no clock);
/// without it `date_time` answers that the date is not available.
pub fn run(call: &ToolCall, now: Option<&LocalDateTime>) -> ToolResult {
    let outcome = match call {
        ToolCall::Calculator { expression } => calculate(expression)
            .map(|c| c.summary())
            .map_err(|e| strip_tool_prefix(&e.to_string(), "calculator")),
        ToolCall::DateTime => match now {
            Some(now) => now
                .format()
                .map(|text| format!("today is {text}"))
                .map_err(|e| strip_tool_prefix(&e.to_string(), "date_time")),
            None => Err("the date and time are not available".to_owned()),
        },
    };
    let (ok, text) = match outcome {
        Ok(text) => (true, text),
        Err(text) => (false, text),
    };
    ToolResult {
        call: call.clone(),
        ok,
        text,
    }
}

fn strip_tool_prefix(message: &str, tool: &str) -> String {
    message
        .strip_prefix(tool)
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(message)
        .to_owned()
}

/// Phrases that ask for the date or time.
const DATE_PHRASES: &[&str] = &[
    "today's date",
    "todays date",
    "the date today",
    "what date is it",
    "what is the date",
    "what's the date",
    "whats the date",
    "what day is it",
    "what day is today",
    "which day is today",
    "what is today",
    "what time is it",
    "what's the time",
    "what is the time",
    "current date",
    "current time",
];

/// Openings of arithmetic questions, removed before the rest is read as an expression.
const ARITHMETIC_OPENINGS: &[&str] = &[
    "please",
    "can you",
    "could you",
    "tell me",
    "what is",
    "what's",
    "whats",
    "how much is",
    "what does",
    "calculate",
    "compute",
    "evaluate",
    "work out",
    "find",
];

/// Endings of arithmetic questions (`equal`, `please`) removed likewise.
const ARITHMETIC_ENDINGS: &[&str] = &["equals", "equal", "please", "="];

/// The tool call an obvious message asks for: a date or time question, or a message that is
/// plain arithmetic once the question words are removed ("What is 7 times 8?",
/// "what's 1/2 + 1/4", "square root of 144"). `None` when in doubt.
pub fn route(message: &str) -> Option<ToolCall> {
    let lower = message.trim().to_lowercase().replace('’', "'");
    let plain = lower.trim_end_matches(['?', '!', '.', ' ']);
    if DATE_PHRASES.iter().any(|p| plain.contains(p)) {
        return Some(ToolCall::DateTime);
    }
    let expression = strip_question(plain);
    let expr = calculator::parse(expression).ok()?;
    expr.is_operation().then(|| ToolCall::Calculator {
        expression: expr.to_string(),
    })
}

/// An arithmetic answer the student states for checking: "I think 9 + 8 = 16",
/// "Is 7 times 8 equal to 54?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The calculation, canonical (`9 + 8`).
    pub expression: String,
    /// The answer the student gave, as written (`16`).
    pub claimed: String,
}

impl Claim {
    /// Whether the claimed value is the expression's exact value (`None` when either does
    /// not compute, e.g. a division by zero).
    pub fn is_right(&self) -> Option<bool> {
        let value = calculate(&self.expression).ok()?.value;
        Some(calculate(&self.claimed).ok()?.value == value)
    }
}

/// Words an arithmetic expression may contain besides numbers and operator signs.
const ARITHMETIC_WORDS: &[&str] = &[
    "plus",
    "minus",
    "times",
    "x",
    "multiplied",
    "divided",
    "by",
    "over",
    "of",
    "squared",
    "cubed",
    "square",
    "root",
    "sqrt",
];

/// The arithmetic claim in `message`: exactly one `=` (or "equals", "equal to") with an
/// arithmetic expression before it and a number after it. Variables (`3x + 2 = 14`), two
/// equations, or words in the expression give `None`, since the check must be certain.
pub fn claim(message: &str) -> Option<Claim> {
    let lower = format!(" {} ", message.to_lowercase().replace('’', "'"));
    let text = lower
        .replace(" is equal to ", " = ")
        .replace(" equal to ", " = ")
        .replace(" equals ", " = ");
    let (left, right) = text.split_once('=')?;
    if right.contains('=') {
        return None;
    }
    let claimed: String = right
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '/' | '-' | ','))
        .collect();
    let claimed = claimed.trim_end_matches(['.', ',']).replace(',', "");
    if claimed.is_empty() || calculate(&claimed).is_err() {
        return None;
    }
    let words: Vec<&str> = left.split_whitespace().collect();
    let arithmetic = |word: &str| {
        ARITHMETIC_WORDS.contains(&word)
            || word
                .chars()
                .all(|c| c.is_ascii_digit() || "+-*/×÷^().,%√·".contains(c))
    };
    (0..words.len()).find_map(|start| {
        let part = &words[start..];
        if !part.iter().all(|w| arithmetic(w)) {
            return None;
        }
        let expr = calculator::parse(&part.join(" ")).ok()?;
        expr.is_operation().then(|| Claim {
            expression: expr.to_string(),
            claimed: claimed.clone(),
        })
    })
}

/// `text` without question openings and endings: "can you calculate 7 x 8 please" →
/// "7 x 8".
fn strip_question(mut text: &str) -> &str {
    loop {
        let before = text;
        text = text.trim_matches([' ', ',', ':', '?', '!', '.']);
        for opening in ARITHMETIC_OPENINGS {
            if let Some(rest) = text.strip_prefix(opening) {
                if rest.is_empty() || rest.starts_with([' ', ',', ':']) {
                    text = rest;
                }
            }
        }
        for ending in ARITHMETIC_ENDINGS {
            if let Some(rest) = text.strip_suffix(ending) {
                text = rest;
            }
        }
        if text == before {
            return text;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(expression: &str) -> ToolCall {
        ToolCall::Calculator {
            expression: expression.into(),
        }
    }

    #[test]
    fn calls_serialise_as_the_model_writes_them() {
        let call: ToolCall =
            serde_json::from_str(r#"{"tool":"calculator","expression":"7*8"}"#).unwrap();
        assert_eq!(call, calc("7*8"));
        assert_eq!(
            serde_json::to_string(&call).unwrap(),
            r#"{"tool":"calculator","expression":"7*8"}"#
        );
        let date: ToolCall = serde_json::from_str(r#"{"tool":"date_time"}"#).unwrap();
        assert_eq!(date, ToolCall::DateTime);
        assert_eq!(
            serde_json::to_string(&date).unwrap(),
            r#"{"tool":"date_time"}"#
        );
        assert!(serde_json::from_str::<ToolCall>(r#"{"tool":"shell","cmd":"ls"}"#).is_err());
    }

    #[test]
    fn routes_obvious_messages() {
        for (message, call) in [
            ("What is 7 times 8?", Some(calc("7*8"))),
            ("what's 1/2 + 1/4", Some(calc("1/2 + 1/4"))),
            ("square root of 144", Some(calc("sqrt(144)"))),
            ("What is the square root of 144?", Some(calc("sqrt(144)"))),
            (
                "Can you calculate 15% of 80 please?",
                Some(calc("15% of 80")),
            ),
            ("12 x 12 =", Some(calc("12*12"))),
            ("What does 2^10 equal?", Some(calc("2^10"))),
            ("what is today's date", Some(ToolCall::DateTime)),
            ("What time is it?", Some(ToolCall::DateTime)),
            ("What is 5?", None),
            ("What is photosynthesis?", None),
            ("Solve 2x + 3 = 7", None),
            ("Is 7 times 8 equal to 54?", None),
            ("Explain why 1/2 + 1/4 = 3/4", None),
        ] {
            assert_eq!(route(message), call, "{message}");
        }
    }

    #[test]
    fn claims_are_found_only_when_certain() {
        let found =
            |m: &str| claim(m).map(|c| (c.expression.clone(), c.claimed.clone(), c.is_right()));
        let claim_of = |e: &str, v: &str, right| Some((e.to_owned(), v.to_owned(), Some(right)));
        assert_eq!(
            found("I think 9 + 8 = 16. Am I right?"),
            claim_of("9 + 8", "16", false)
        );
        assert_eq!(
            found("Check my answer: 5 × 5 = 25."),
            claim_of("5*5", "25", true)
        );
        assert_eq!(
            found("Is 7 times 8 equal to 54?"),
            claim_of("7*8", "54", false)
        );
        assert_eq!(
            found("1/2 + 1/4 equals 3/4, right?"),
            claim_of("1/2 + 1/4", "3/4", true)
        );
        assert_eq!(
            found("0.1 + 0.2 = 0.3?"),
            claim_of("0.1 + 0.2", "0.3", true)
        );
        for message in [
            "I got x = 4 for 3x + 2 = 14. Is that right?",
            "Is 3x + 2 = 14 when x = 4?",
            "Solve 2x + 3 = 7",
            "E = mc^2, right?",
            "The answer = forty",
            "What is 7 times 8?",
            "5 = 5",
        ] {
            assert_eq!(claim(message), None, "{message}");
        }
        let undefined = claim("Is 5/0 = 0?").unwrap();
        assert_eq!(undefined.is_right(), None);
    }

    #[test]
    fn results_become_context_lines() {
        let result = run(&calc("7*8"), None);
        assert!(result.ok);
        assert_eq!(result.context_line(), "calculator: 7*8 = 56");
        let result = run(&calc("5/0"), None);
        assert!(!result.ok);
        assert_eq!(
            result.context_line(),
            "calculator: `5/0`: division by zero is undefined"
        );
        let now = LocalDateTime {
            year: 2025,
            month: 3,
            day: 4,
            hour: 15,
            minute: 7,
            locale: "en-US".into(),
        };
        assert_eq!(
            run(&ToolCall::DateTime, Some(&now)).context_line(),
            "date_time: today is Tuesday, March 4, 2025, 3:07 PM"
        );
        let missing = run(&ToolCall::DateTime, None);
        assert!(!missing.ok);
        assert_eq!(
            missing.context_line(),
            "date_time: the date and time are not available"
        );
    }
}
