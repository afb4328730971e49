//! Planning one tutoring turn: classify, call a tool if needed, and build the messages the
//! reply is generated from.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::action::{
    constrained_config, Action, ActionError, ActionKind, ActionSource, Classifier,
};
use super::strategy::snippet;
use crate::engine::chat::{build_prompt, ChatMessage};
use crate::engine::clock::Clock;
use crate::engine::generate::Session;
use crate::engine::grammar::{generate_json, GrammarError, GrammarMasker, JsonError};
use crate::tools::{calculator, run, LocalDateTime, ToolCall, ToolResult};

/// Why a turn could not be planned.
#[derive(Debug, Error)]
pub enum TurnError {
    /// Classification failed.
    #[error(transparent)]
    Action(#[from] ActionError),
    /// The tool-call schema did not compile (a bug).
    #[error("tool-call schema: {0}")]
    Schema(#[from] GrammarError),
    /// The model's constrained tool call failed.
    #[error("asking the model for a calculator call for {message:?}: {source}")]
    ToolCall {
        /// The student's message.
        message: String,
        /// What failed.
        source: Box<JsonError>,
    },
}

/// What a turn needs besides the session.
#[derive(Debug, Clone, Copy)]
pub struct TurnInput<'a> {
    /// Mimir's system prompt (the settings' text).
    pub system: &'a str,
    /// Lesson notes given as context, if any.
    pub notes: Option<&'a str>,
    /// The conversation before this message.
    pub history: &'a [ChatMessage],
    /// The student's message.
    pub message: &'a str,
    /// The student's local date and time, for `date_time` (the engine has no clock).
    pub now: Option<&'a LocalDateTime>,
}

/// A planned turn: show `action` and `tool` in the chat, then generate from `messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnPlan {
    /// The classified message.
    pub action: Action,
    /// Whether a rule or the model classified it.
    pub source: ActionSource,
    /// The tool that ran and what it answered.
    pub tool: Option<ToolResult>,
    /// System prompt with the strategy snippet, history, context, and the message.
    pub messages: Vec<ChatMessage>,
}

/// Shown to the model when it must write a calculator call.
const TOOL_SYSTEM: &str = "Write the arithmetic in the student's message as a calculator \
call. Use numbers and + - * / ^ ( ) sqrt( ) and %, nothing else.";

/// Worked calculator calls (message, call).
const TOOL_EXAMPLES: &[(&str, &str)] = &[
    (
        "How much is three quarters of 200?",
        r#"{"tool": "calculator", "expression": "3/4*200"}"#,
    ),
    (
        "I have 12 apples and eat 5, then buy 9 more. How many now?",
        r#"{"tool": "calculator", "expression": "12 - 5 + 9"}"#,
    ),
];

/// Plans turns for one loaded model: keeps the classifier and the tool-call grammar.
#[derive(Debug)]
pub struct Tutor {
    classifier: Classifier,
    tool_masker: GrammarMasker,
}

impl Tutor {
    /// A tutor for the model of `session` (builds its vocabulary trie once).
    pub fn new(session: &mut Session) -> Result<Self, TurnError> {
        Ok(Self {
            classifier: Classifier::new(session)?,
            tool_masker: session.json_masker(&ToolCall::calculator_schema())?,
        })
    }

    /// Classifies the message, runs the tool it needs (routed by rules; for a `calculate`
    /// action no rule could route, asked of the model as a constrained JSON call), and
    /// builds the messages: system prompt + strategy snippet, history, the lesson notes
    /// and tool result as one `context_provider` turn (`Context: calculator: 7*8 = 56`),
    /// the student's message.
    pub fn plan_turn(
        &mut self,
        session: &mut Session,
        input: &TurnInput<'_>,
        clock: &dyn Clock,
    ) -> Result<TurnPlan, TurnError> {
        let (action, source, routed) = self.classifier.classify(session, input.message, clock)?;
        let call = match routed {
            Some(call) => Some(call),
            None if action.kind == ActionKind::Calculate => {
                self.model_calculator_call(session, input.message, clock)?
            }
            None => None,
        };
        let tool = call.map(|call| run(&call, input.now));
        let system = format!("{}\n\n{}", input.system.trim(), snippet(action.kind));
        let context: Vec<String> = input
            .notes
            .map(str::to_owned)
            .into_iter()
            .chain(tool.as_ref().map(ToolResult::context_line))
            .collect();
        let context = (!context.is_empty()).then(|| context.join("\n"));
        let messages = build_prompt(&system, context.as_deref(), input.history, input.message);
        Ok(TurnPlan {
            action,
            source,
            tool,
            messages,
        })
    }

    /// The calculator call the model writes for `message`, or `None` when what it wrote is
    /// not an expression the calculator reads (a wrong call is worse than none).
    fn model_calculator_call(
        &mut self,
        session: &mut Session,
        message: &str,
        clock: &dyn Clock,
    ) -> Result<Option<ToolCall>, TurnError> {
        let mut prompt = vec![ChatMessage::system(TOOL_SYSTEM)];
        for (question, call) in TOOL_EXAMPLES {
            prompt.push(ChatMessage::user(*question));
            prompt.push(ChatMessage::assistant(*call));
        }
        prompt.push(ChatMessage::user(message));
        let value = generate_json(
            session,
            &mut self.tool_masker,
            &prompt,
            &constrained_config(),
            clock,
        )
        .map_err(|source| TurnError::ToolCall {
            message: message.to_owned(),
            source: Box::new(source),
        })?;
        let call: Option<ToolCall> = serde_json::from_value(value).ok();
        Ok(call.filter(|call| match call {
            ToolCall::Calculator { expression } => calculator::parse(expression).is_ok(),
            ToolCall::DateTime => true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::grammar::{Grammar, MatchState};

    #[test]
    fn tool_examples_match_the_tool_schema() {
        let grammar = Grammar::from_schema(&ToolCall::calculator_schema()).unwrap();
        for (_, call) in TOOL_EXAMPLES {
            let mut state = MatchState::new(&grammar);
            state.feed_all(&grammar, call.as_bytes()).unwrap();
            assert!(state.is_finished(), "{call}");
            let ToolCall::Calculator { expression } = serde_json::from_str(call).unwrap() else {
                panic!("{call} is not a calculator call");
            };
            calculator::calculate(&expression).unwrap();
        }
    }
}
