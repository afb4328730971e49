//! Planning one tutoring turn: classify, call a tool if needed, and build the messages the
//! reply is generated from.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::action::{
    constrained_config, Action, ActionError, ActionKind, ActionSource, Classified, Classifier,
    Opening,
};
use super::strategy::snippet;
use crate::engine::chat::{build_prompt, ChatMessage, Role};
use crate::engine::clock::Clock;
use crate::engine::generate::Session;
use crate::engine::generation_config::GenerationConfig;
use crate::engine::grammar::{generate_json, GrammarError, GrammarMasker, JsonError};
use crate::engine::number_guard::NumberGuard;
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
        /// What failed (boxed: the engine's errors are large).
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

impl<'a> TurnInput<'a> {
    /// Splits the messages the app sends ([`build_prompt`]'s order: system, history, the
    /// optional `Context: …` turn, the student's message) back into a turn's parts. `None`
    /// when the last message is not the student's.
    pub fn from_messages(
        messages: &'a [ChatMessage],
        now: Option<&'a LocalDateTime>,
    ) -> Option<Self> {
        let (last, rest) = messages.split_last()?;
        if last.role != Role::User {
            return None;
        }
        let (system, rest) = match rest.split_first() {
            Some((first, rest)) if first.role == Role::System => (first.content.as_str(), rest),
            _ => ("", rest),
        };
        let (notes, history) = match rest.split_last() {
            Some((notes, history)) if notes.role == Role::ContextProvider => {
                let text = notes.content.as_str();
                (
                    Some(text.strip_prefix("Context: ").unwrap_or(text)),
                    history,
                )
            }
            _ => (None, rest),
        };
        Some(Self {
            system,
            notes,
            history,
            message: &last.content,
            now,
        })
    }
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
    /// How the reply opens, when a rule fixed it.
    #[serde(default)]
    pub opening: Option<Opening>,
    /// System prompt with the strategy snippet, history, context, and the message.
    pub messages: Vec<ChatMessage>,
}

impl TurnPlan {
    /// The settings to generate this turn's reply with: `base`, decoded greedily when a tool
    /// answered, so the reply restates the tool's exact result instead of sampling around it
    /// (a small model at temperature 0.7 often drifts away from the number).
    pub fn generation_config(&self, base: &GenerationConfig) -> GenerationConfig {
        let mut config = base.clone();
        if self.tool.as_ref().is_some_and(|tool| tool.ok) {
            config.temperature = 0.0;
        }
        config
    }

    /// The guard that keeps the reply to the numbers it was given, for a turn the calculator
    /// answered: every number the model writes must occur in the student's message or the
    /// result, so it cannot restate the result wrongly after the prefix.
    pub fn number_guard(&self, session: &mut Session) -> Option<NumberGuard> {
        let tool = self.tool.as_ref().filter(|tool| tool.ok)?;
        if !matches!(tool.call, ToolCall::Calculator { .. }) {
            return None;
        }
        let message = self
            .messages
            .last()
            .filter(|m| m.role == Role::User)
            .map_or("", |m| m.content.as_str());
        Some(NumberGuard::new(
            session.token_vocab(),
            &[message, &tool.text],
        ))
    }

    /// The text the reply starts with, streamed first and then continued by the model: a
    /// rule's fixed opening ("I am Mimir, a tutoring assistant."), the verdict on a checked
    /// answer ("Not quite: 9 + 8 = 17, not 16."), or a tool's exact result ("7*8 = 56.").
    /// Context alone is not enough for a small model: SmolLM2-135M, given
    /// `calculator: 7*8 = 56`, still wrote "7 * 8 equals 54".
    pub fn reply_prefix(&self) -> Option<String> {
        if let Some(text) = self.opening.as_ref().and_then(Opening::fixed_text) {
            return Some(text.to_owned());
        }
        let tool = self.tool.as_ref().filter(|tool| tool.ok)?;
        if let Some(Opening::Verdict { claimed }) = &self.opening {
            let ToolCall::Calculator { expression } = &tool.call else {
                return None;
            };
            let check = crate::tools::Claim {
                expression: expression.clone(),
                claimed: claimed.clone(),
            };
            return match check.is_right()? {
                true => Some(format!("Yes, that is right: {}.\n\n", tool.text)),
                false => Some(format!("Not quite: {}, not {claimed}.\n\n", tool.text)),
            };
        }
        let mut text = tool.text.clone();
        if let Some(first) = text.get(..1) {
            let upper = first.to_uppercase();
            text.replace_range(..1, &upper);
        }
        Some(format!("{text}.\n\n"))
    }
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
        let Classified {
            action,
            source,
            call: routed,
            opening,
        } = self.classifier.classify(session, input.message, clock)?;
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
            opening,
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
    use crate::tutor::classify_by_rules;

    #[test]
    fn a_tool_answer_is_restated_greedily() {
        let base = GenerationConfig::default();
        let mut plan = TurnPlan {
            action: Action {
                kind: ActionKind::Calculate,
                subject: Some("math".into()),
                topic: None,
            },
            source: ActionSource::Rule,
            tool: Some(run(
                &crate::tools::route("What is 7 times 8?").unwrap(),
                None,
            )),
            opening: None,
            messages: Vec::new(),
        };
        assert_eq!(plan.generation_config(&base).temperature, 0.0);
        assert_eq!(plan.reply_prefix().as_deref(), Some("7*8 = 56.\n\n"));
        plan.tool = Some(run(
            &ToolCall::Calculator {
                expression: "5/0".into(),
            },
            None,
        ));
        assert!(!plan.tool.as_ref().unwrap().ok);
        assert_eq!(
            plan.generation_config(&base),
            base,
            "a failed tool changes nothing"
        );
        plan.tool = None;
        assert_eq!(plan.generation_config(&base), base);
    }

    #[test]
    fn rules_fix_the_opening_of_the_reply() {
        let plan_for = |message: &str| {
            let classified = classify_by_rules(message).unwrap();
            TurnPlan {
                action: classified.action,
                source: classified.source,
                tool: classified.call.map(|call| run(&call, None)),
                opening: classified.opening,
                messages: Vec::new(),
            }
        };
        let prefix = |message: &str| plan_for(message).reply_prefix();
        assert_eq!(
            prefix("I think 9 + 8 = 16. Am I right?").as_deref(),
            Some("Not quite: 9 + 8 = 17, not 16.\n\n")
        );
        assert_eq!(
            prefix("Check my answer: 5 × 5 = 25.").as_deref(),
            Some("Yes, that is right: 5*5 = 25.\n\n")
        );
        assert_eq!(
            prefix("Hello!").as_deref(),
            Some("Hello! I am Mimir, a tutoring assistant.")
        );
        assert_eq!(
            prefix("Who are you?").as_deref(),
            Some("I am Mimir, a tutoring assistant.")
        );
        assert_eq!(
            prefix("Write my history essay for me so I can hand it in as my own.").as_deref(),
            Some("I can't help with that.")
        );
        // A check whose expression does not compute opens with nothing fixed.
        assert_eq!(prefix("Is 5/0 = 0?"), None);
        let plan = plan_for("Is 7 times 8 equal to 54?");
        assert_eq!(
            plan.generation_config(&GenerationConfig::default())
                .temperature,
            0.0
        );
        let json = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<TurnPlan>(&json).unwrap(), plan);
    }

    #[test]
    fn the_apps_messages_split_back_into_a_turn() {
        let history = [ChatMessage::user("Hi"), ChatMessage::assistant("Hello.")];
        let messages = build_prompt("Be Mimir.", Some("Notes"), &history, "What is 7 times 8?");
        let input = TurnInput::from_messages(&messages, None).unwrap();
        assert_eq!(input.system, "Be Mimir.");
        assert_eq!(input.notes, Some("Notes"));
        assert_eq!(input.history, history);
        assert_eq!(input.message, "What is 7 times 8?");

        let bare = build_prompt("", None, &[], "Hello!");
        let input = TurnInput::from_messages(&bare, None).unwrap();
        assert_eq!(
            (input.system, input.notes, input.history.len()),
            ("", None, 0)
        );
        assert!(TurnInput::from_messages(&history, None).is_none());
    }

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
