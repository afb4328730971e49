//! The conversation the student has with Mimir: the turns shown in the chat, the reply being
//! streamed, and the message list sent to the engine. Platform-neutral: the page keeps one in
//! a signal and stores it in `localStorage` as JSON.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::engine::chat::{build_prompt, ChatMessage};
use crate::engine::generate::{GenerationStats, StopReason};

/// The system prompt that makes the model Mimir. Editable in the settings panel.
pub const DEFAULT_SYSTEM_PROMPT: &str = "You are Mimir, a tutoring assistant. Help the student \
understand the subject instead of only handing over answers: explain concepts step by step, \
give a short example when it helps, and check understanding with a brief question when useful. \
Correct mistakes plainly and kindly. Keep a professional, clear and concise tone. Do not use \
emoticons or emoji, do not use flowery or exaggerated language, and do not use excessive \
hyphens or dashes. When lesson notes are given as context, base your answer on them and say \
when a question goes beyond them. If you are not sure of something, say so.";

/// Version of the stored JSON; a different version is treated as unreadable.
const STORAGE_VERSION: u32 = 1;

/// What was wrong with a conversation operation or with stored conversation data.
#[derive(Debug, Error, PartialEq)]
pub enum ConversationError {
    /// The stored text is not a conversation this build can read.
    #[error("stored conversation ({bytes} bytes) is unreadable, starting a new one: {message}")]
    Corrupt {
        /// Size of the stored text.
        bytes: usize,
        /// What the JSON parser said, or the unknown version.
        message: String,
    },
    /// Messages for the engine were asked for, but the last turn is not the student's.
    #[error("the conversation does not end with a student turn (last turn: {last})")]
    NoQuestion {
        /// What the last turn is (`assistant reply` or `nothing`).
        last: &'static str,
    },
}

/// A reply of the model, possibly still streaming.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The text received so far.
    pub text: String,
    /// True while tokens are still arriving.
    pub streaming: bool,
    /// Timing of the finished reply.
    pub stats: Option<GenerationStats>,
    /// Why the reply ended early (a generation error or an interrupted page).
    pub error: Option<String>,
    /// The tool the engine ran for this reply and what it answered
    /// (`calculator: 7*8 = 56`), shown as a small note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_note: Option<String>,
}

impl Reply {
    /// The subtle line under a finished reply: time to first token, decoding speed, length,
    /// and why it stopped when that was not the end of the model's turn.
    pub fn stats_line(&self) -> Option<String> {
        let stats = self.stats.as_ref()?;
        let mut line = format!(
            "{:.0} ms to first token \u{b7} {:.1} tok/s \u{b7} {} tokens",
            stats.time_to_first_token_ms, stats.decode_tokens_per_s, stats.generated_tokens
        );
        let why = match stats.stop {
            StopReason::EndOfTurn => None,
            StopReason::MaxTokens => Some("stopped at the token limit"),
            StopReason::ContextFull => Some("stopped: the context is full"),
            StopReason::Repetition => Some("stopped: the reply was repeating itself"),
            StopReason::Cancelled => Some("stopped"),
        };
        if let Some(why) = why {
            line.push_str(" \u{b7} ");
            line.push_str(why);
        }
        Some(line)
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Turn {
    /// The student's message, shown as plain text.
    User {
        /// What the student wrote.
        text: String,
        /// The subject the engine detected in it, shown as a chip.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
    },
    /// Mimir's reply, rendered as safe markdown.
    Assistant(Reply),
}

/// The turns of one conversation, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    turns: Vec<Turn>,
}

/// The stored form: a version tag around the turns.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    turns: Vec<Turn>,
}

impl Conversation {
    /// An empty conversation.
    pub fn new() -> Self {
        Self::default()
    }

    /// The turns, oldest first.
    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// True when there are no turns.
    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }

    /// True while the last reply is still streaming.
    pub fn is_streaming(&self) -> bool {
        matches!(self.turns.last(), Some(Turn::Assistant(r)) if r.streaming)
    }

    /// Adds the student's message.
    pub fn push_user(&mut self, text: impl Into<String>) {
        self.turns.push(Turn::User {
            text: text.into(),
            subject: None,
        });
    }

    /// Opens an empty, streaming reply.
    pub fn start_reply(&mut self) {
        self.turns.push(Turn::Assistant(Reply {
            streaming: true,
            ..Reply::default()
        }));
    }

    /// Appends streamed text to the reply in progress. Returns false (and changes nothing)
    /// when no reply is streaming, e.g. a token that arrives after the chat was cleared.
    pub fn append(&mut self, text: &str) -> bool {
        match self.streaming_reply() {
            Some(reply) => {
                reply.text.push_str(text);
                true
            }
            None => false,
        }
    }

    /// Ends the reply in progress with its timing. Returns false when none was streaming.
    pub fn finish(&mut self, stats: GenerationStats) -> bool {
        match self.streaming_reply() {
            Some(reply) => {
                reply.streaming = false;
                reply.stats = Some(stats);
                true
            }
            None => false,
        }
    }

    /// Ends the reply in progress with an error, keeping the text received so far. Returns
    /// false when none was streaming.
    pub fn fail(&mut self, message: impl Into<String>) -> bool {
        match self.streaming_reply() {
            Some(reply) => {
                reply.streaming = false;
                reply.error = Some(message.into());
                true
            }
            None => false,
        }
    }

    /// Marks the reply in progress with what the engine decided for it: the detected
    /// subject goes on the student's message before it, the tool note on the reply. Returns
    /// false (and changes nothing) when no reply is streaming.
    pub fn annotate(&mut self, subject: Option<String>, tool_note: Option<String>) -> bool {
        let Some(reply) = self.streaming_reply() else {
            return false;
        };
        reply.tool_note = tool_note;
        let before = self.turns.len().checked_sub(2);
        if let Some(Turn::User { subject: chip, .. }) = before.and_then(|i| self.turns.get_mut(i)) {
            *chip = subject;
        }
        true
    }

    /// Removes every turn.
    pub fn clear(&mut self) {
        self.turns.clear();
    }

    fn streaming_reply(&mut self) -> Option<&mut Reply> {
        match self.turns.last_mut() {
            Some(Turn::Assistant(reply)) if reply.streaming => Some(reply),
            _ => None,
        }
    }

    /// The messages for the engine: the system prompt, the earlier turns, the optional
    /// lesson notes as the `context_provider` turn (`Context: …`, added by
    /// [`ChatMessage::context`]) and the student's last turn.
    ///
    /// Replies that produced no text (failed before the first token) are left out, so the
    /// model never sees an empty assistant turn.
    pub fn to_messages(
        &self,
        system_prompt: &str,
        context: Option<&str>,
    ) -> Result<Vec<ChatMessage>, ConversationError> {
        let (question, earlier) = match self.turns.split_last() {
            Some((Turn::User { text, .. }, earlier)) => (text, earlier),
            Some((Turn::Assistant(_), _)) => {
                return Err(ConversationError::NoQuestion {
                    last: "assistant reply",
                })
            }
            None => return Err(ConversationError::NoQuestion { last: "nothing" }),
        };
        let history: Vec<ChatMessage> = earlier
            .iter()
            .filter_map(|turn| match turn {
                Turn::User { text, .. } => Some(ChatMessage::user(text.as_str())),
                Turn::Assistant(reply) if !reply.text.trim().is_empty() => {
                    Some(ChatMessage::assistant(reply.text.as_str()))
                }
                Turn::Assistant(_) => None,
            })
            .collect();
        Ok(build_prompt(system_prompt, context, &history, question))
    }

    /// Adds the student's `question`, returns the messages for the engine and opens the
    /// streaming reply: the three steps of sending, in the order they must happen.
    pub fn ask(
        &mut self,
        question: impl Into<String>,
        system_prompt: &str,
        context: Option<&str>,
    ) -> Vec<ChatMessage> {
        self.push_user(question);
        let messages = self
            .to_messages(system_prompt, context)
            .expect("the last turn was just added by the student");
        self.start_reply();
        messages
    }

    /// The JSON text kept in storage.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Stored {
            version: STORAGE_VERSION,
            turns: self.turns.clone(),
        })
        .expect("conversations always serialise")
    }

    /// Reads stored JSON. A reply that was still streaming when the page closed is kept
    /// with the text it had and marked as interrupted.
    pub fn from_json(text: &str) -> Result<Self, ConversationError> {
        let corrupt = |message: String| ConversationError::Corrupt {
            bytes: text.len(),
            message,
        };
        let stored: Stored = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        if stored.version != STORAGE_VERSION {
            return Err(corrupt(format!(
                "version {} (this build reads {STORAGE_VERSION})",
                stored.version
            )));
        }
        let mut conversation = Self {
            turns: stored.turns,
        };
        conversation.fail("interrupted: the page was closed while this reply was streaming");
        Ok(conversation)
    }

    /// Restores what storage held: the conversation, or an empty one and the reason when
    /// the stored text is unreadable. `None` (nothing stored) is an empty conversation.
    pub fn restore(stored: Option<&str>) -> (Self, Option<ConversationError>) {
        match stored.map(Self::from_json) {
            None => (Self::new(), None),
            Some(Ok(conversation)) => (conversation, None),
            Some(Err(error)) => (Self::new(), Some(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::chat::Role;

    fn stats() -> GenerationStats {
        GenerationStats {
            prompt_tokens: 40,
            reused_tokens: 0,
            generated_tokens: 12,
            time_to_first_token_ms: 310.0,
            prefill_tokens_per_s: 120.0,
            decode_tokens_per_s: 14.5,
            stop: StopReason::EndOfTurn,
        }
    }

    #[test]
    fn streaming_reply_collects_tokens_then_finishes() {
        let mut c = Conversation::new();
        c.push_user("What is a prime?");
        c.start_reply();
        assert!(c.is_streaming());
        assert!(c.append("A prime "));
        assert!(c.append("has two divisors."));
        assert!(c.finish(stats()));
        assert!(!c.is_streaming());
        assert_eq!(
            c.turns()[1],
            Turn::Assistant(Reply {
                text: "A prime has two divisors.".into(),
                streaming: false,
                stats: Some(stats()),
                error: None,
                tool_note: None,
            })
        );
        // Late tokens after the end change nothing.
        assert!(!c.append("late"));
        assert!(!c.finish(stats()));
        assert!(!c.fail("late"));
    }

    #[test]
    fn annotate_marks_the_message_and_the_reply_in_progress_and_survives_a_reload() {
        let mut c = Conversation::new();
        c.push_user("What is 7 times 8?");
        assert!(
            !c.annotate(Some("mathematics".into()), None),
            "no reply yet"
        );
        c.start_reply();
        let note = "calculator: 7*8 = 56".to_owned();
        assert!(c.annotate(Some("mathematics".into()), Some(note.clone())));
        assert!(matches!(&c.turns()[0], Turn::User { subject: Some(s), .. } if s == "mathematics"));
        assert!(matches!(&c.turns()[1], Turn::Assistant(r) if r.tool_note == Some(note.clone())));
        c.finish(stats());
        assert!(!c.annotate(None, None), "the reply has ended");
        assert_eq!(Conversation::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn failure_keeps_partial_text() {
        let mut c = Conversation::new();
        c.push_user("Q");
        c.start_reply();
        c.append("Half an answer");
        assert!(c.fail("generation: the prompt has 3000 tokens; the context holds 2048"));
        let Turn::Assistant(reply) = &c.turns()[1] else {
            panic!("not a reply")
        };
        assert_eq!(reply.text, "Half an answer");
        assert!(reply.error.as_deref().unwrap().contains("3000 tokens"));
        assert!(!reply.streaming);
    }

    #[test]
    fn messages_have_system_history_context_and_question_in_order() {
        let mut c = Conversation::new();
        c.push_user("What is 2+2?");
        c.start_reply();
        c.append("4.");
        c.finish(stats());
        c.push_user("Why did that fail?");
        c.start_reply();
        c.fail("worker stopped");
        let messages = c.ask("And 3+3?", "SYS", Some("Addition of small numbers"));
        assert_eq!(
            messages,
            vec![
                ChatMessage::system("SYS"),
                ChatMessage::user("What is 2+2?"),
                ChatMessage::assistant("4."),
                ChatMessage::user("Why did that fail?"),
                ChatMessage::new(Role::ContextProvider, "Context: Addition of small numbers"),
                ChatMessage::user("And 3+3?"),
            ]
        );
        assert!(c.is_streaming());
        assert_eq!(c.turns().len(), 6);
    }

    #[test]
    fn blank_context_and_system_prompt_are_left_out() {
        let mut c = Conversation::new();
        c.push_user("Hi");
        let messages = c.to_messages("  ", Some(" \n")).unwrap();
        assert_eq!(messages, vec![ChatMessage::user("Hi")]);
    }

    #[test]
    fn messages_need_a_final_student_turn() {
        let mut c = Conversation::new();
        assert_eq!(
            c.to_messages("SYS", None),
            Err(ConversationError::NoQuestion { last: "nothing" })
        );
        c.push_user("Q");
        c.start_reply();
        assert_eq!(
            c.to_messages("SYS", None),
            Err(ConversationError::NoQuestion {
                last: "assistant reply"
            })
        );
    }

    #[test]
    fn json_round_trips_and_interrupted_replies_are_marked() {
        let mut c = Conversation::new();
        c.push_user("<script>alert(1)</script>");
        c.start_reply();
        c.append("Partial");
        let json = c.to_json();
        assert!(
            json.starts_with(r#"{"version":1,"turns":[{"role":"user""#),
            "{json}"
        );
        let back = Conversation::from_json(&json).unwrap();
        assert!(!back.is_streaming());
        let Turn::Assistant(reply) = &back.turns()[1] else {
            panic!("not a reply")
        };
        assert_eq!(reply.text, "Partial");
        assert!(reply.error.as_deref().unwrap().starts_with("interrupted"));

        c.fail("x");
        assert_eq!(Conversation::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn corrupt_storage_starts_empty_and_says_why() {
        assert_eq!(Conversation::restore(None), (Conversation::new(), None));
        for bad in [
            "not json",
            "{\"version\":1,\"turns\":[{\"role\":\"wizard\"}]}",
            "{\"version\":99,\"turns\":[]}",
            "[]",
            "",
        ] {
            let (c, error) = Conversation::restore(Some(bad));
            assert!(c.is_empty(), "{bad:?}");
            let error = error.unwrap_or_else(|| panic!("no error for {bad:?}"));
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("stored conversation ({} bytes)", bad.len())),
                "{text}"
            );
        }
        let (_, error) = Conversation::restore(Some("{\"version\":99,\"turns\":[]}"));
        assert!(error.unwrap().to_string().contains("version 99"));
    }

    #[test]
    fn stats_line_shows_speed_and_unusual_stops() {
        let mut reply = Reply {
            stats: Some(stats()),
            ..Reply::default()
        };
        assert_eq!(
            reply.stats_line().unwrap(),
            "310 ms to first token \u{b7} 14.5 tok/s \u{b7} 12 tokens"
        );
        reply.stats.as_mut().unwrap().stop = StopReason::Cancelled;
        assert!(reply
            .stats_line()
            .unwrap()
            .ends_with("tokens \u{b7} stopped"));
        assert_eq!(Reply::default().stats_line(), None);
    }

    #[test]
    fn clear_empties_everything() {
        let mut c = Conversation::new();
        c.ask("Q", DEFAULT_SYSTEM_PROMPT, None);
        c.clear();
        assert!(c.is_empty());
        assert!(!c.append("token after clear"));
    }

    #[test]
    fn default_prompt_has_no_emoticons_or_dashes() {
        assert!(DEFAULT_SYSTEM_PROMPT.starts_with("You are Mimir"));
        assert!(DEFAULT_SYSTEM_PROMPT.is_ascii());
        assert!(!DEFAULT_SYSTEM_PROMPT.contains(" - "));
        assert!(!DEFAULT_SYSTEM_PROMPT.contains(":)"));
    }
}
