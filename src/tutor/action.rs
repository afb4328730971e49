//! The structured action: what the student's message asks for, before Mimir answers.
//!
//! [`classify_by_rules`] settles the cases that are certain (a greeting and nothing else,
//! a question about Mimir, a request to decline, an arithmetic answer to check, plain
//! arithmetic, a date question); [`Classifier`] asks the model for the rest through
//! grammar-constrained decoding against [`Action::schema`], so its answer always parses.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

use crate::engine::chat::ChatMessage;
use crate::engine::clock::Clock;
use crate::engine::generate::Session;
use crate::engine::generation_config::GenerationConfig;
use crate::engine::grammar::{generate_json, GrammarError, GrammarMasker, JsonError};
use crate::tools::{claim, route, ToolCall};

/// Why a message could not be classified.
#[derive(Debug, Error)]
pub enum ActionError {
    /// The action schema did not compile (a bug).
    #[error("action schema: {0}")]
    Schema(#[from] GrammarError),
    /// Constrained generation failed.
    #[error("classifying {message:?}: {source}")]
    Generate {
        /// The student's message.
        message: String,
        /// What failed (boxed: the engine's errors are large).
        source: Box<JsonError>,
    },
    /// The model's JSON, though it matched the grammar, did not deserialise.
    #[error("classifying {message:?}: the model wrote {value}, which is not an action: {source}")]
    Invalid {
        /// The student's message.
        message: String,
        /// The value the model wrote.
        value: Value,
        /// What serde said.
        source: serde_json::Error,
    },
}

/// What the student wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Hello, hi, good morning.
    Greeting,
    /// Explain a concept.
    Explain,
    /// Help solve a problem.
    Solve,
    /// Check the student's answer.
    CheckAnswer,
    /// Ask the student questions.
    QuizMe,
    /// Prepare for a test or exam.
    TestPrep,
    /// Arithmetic to compute.
    Calculate,
    /// Not about learning.
    OffTopic,
    /// Anything else (thanks, the date, questions about Mimir).
    Other,
}

impl ActionKind {
    /// Every kind, in schema order.
    pub const ALL: [ActionKind; 9] = [
        ActionKind::Greeting,
        ActionKind::Explain,
        ActionKind::Solve,
        ActionKind::CheckAnswer,
        ActionKind::QuizMe,
        ActionKind::TestPrep,
        ActionKind::Calculate,
        ActionKind::OffTopic,
        ActionKind::Other,
    ];

    /// The JSON name (`check_answer`).
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Greeting => "greeting",
            ActionKind::Explain => "explain",
            ActionKind::Solve => "solve",
            ActionKind::CheckAnswer => "check_answer",
            ActionKind::QuizMe => "quiz_me",
            ActionKind::TestPrep => "test_prep",
            ActionKind::Calculate => "calculate",
            ActionKind::OffTopic => "off_topic",
            ActionKind::Other => "other",
        }
    }
}

/// School subjects an action may name (the chip on the student's message).
pub const SUBJECTS: &[&str] = &[
    "math",
    "physics",
    "chemistry",
    "biology",
    "history",
    "geography",
    "literature",
    "english",
    "languages",
    "computer_science",
    "economics",
    "art",
    "music",
];

/// Longest topic the model may write.
pub const MAX_TOPIC_CHARS: usize = 40;

/// The classified message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// What the student wants.
    pub kind: ActionKind,
    /// The school subject (one of [`SUBJECTS`]), if any.
    pub subject: Option<String>,
    /// A few words naming the topic, if any.
    pub topic: Option<String>,
}

/// Where an action came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionSource {
    /// A deterministic rule.
    Rule,
    /// A cue phrase limited the kinds the model could choose from.
    Cue,
    /// The model, through constrained decoding.
    Model,
}

/// Fixed words a reply opens with when a rule settled the message, so the facts a small
/// model gets wrong (who it is, whether 9 + 8 = 16) are never left to it; the model writes
/// the rest of the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "opening")]
pub enum Opening {
    /// A greeting: Mimir greets back and says who it is.
    Greeting,
    /// A question about who or what Mimir is.
    Identity,
    /// A request Mimir declines (harm, cheating): it says so first.
    Decline,
    /// An arithmetic answer to check; the calculator's result says whether `claimed` is right.
    Verdict {
        /// The student's answer, as written.
        claimed: String,
    },
}

impl Opening {
    /// The fixed text of the openings that need no tool.
    pub fn fixed_text(&self) -> Option<&'static str> {
        match self {
            Opening::Greeting => Some("Hello! I am Mimir, a tutoring assistant."),
            Opening::Identity => Some("I am Mimir, a tutoring assistant."),
            Opening::Decline => Some("I can't help with that."),
            Opening::Verdict { .. } => None,
        }
    }
}

/// A classified message: its action, where that came from, the tool call a rule attached,
/// and the fixed opening a rule chose.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The action.
    pub action: Action,
    /// Rule, cue or model.
    pub source: ActionSource,
    /// The tool the message needs, when a rule routed one.
    pub call: Option<ToolCall>,
    /// How the reply must open, when a rule says so.
    pub opening: Option<Opening>,
}

impl Classified {
    fn rule(action: Action, call: Option<ToolCall>, opening: Option<Opening>) -> Self {
        Self {
            action,
            source: ActionSource::Rule,
            call,
            opening,
        }
    }
}

impl Action {
    /// The JSON schema the model's classification is constrained to.
    pub fn schema() -> Value {
        Self::schema_for(&ActionKind::ALL)
    }

    /// [`Action::schema`] with `kind` limited to `kinds`.
    /// When every kind is about no school subject (greeting, off topic), so is `subject`.
    pub fn schema_for(kinds: &[ActionKind]) -> Value {
        let no_subject = kinds
            .iter()
            .all(|k| matches!(k, ActionKind::Greeting | ActionKind::OffTopic));
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let mut subjects: Vec<Value> = if no_subject {
            Vec::new()
        } else {
            SUBJECTS.iter().map(|s| json!(s)).collect()
        };
        subjects.push(Value::Null);
        json!({
            "type": "object",
            "properties": {
                "kind": {"enum": kinds},
                "subject": {"enum": subjects},
                "topic": {"type": ["string", "null"], "maxLength": MAX_TOPIC_CHARS}
            },
            "required": ["kind", "subject", "topic"]
        })
    }

    fn new(kind: ActionKind, subject: Option<&str>, topic: Option<&str>) -> Self {
        Self {
            kind,
            subject: subject.map(str::to_owned),
            topic: topic.map(str::to_owned),
        }
    }
}

/// Words a message of greetings only is made of.
const GREETING_WORDS: &[&str] = &[
    "hi",
    "hello",
    "hey",
    "hiya",
    "howdy",
    "greetings",
    "good",
    "morning",
    "afternoon",
    "evening",
    "there",
    "mimir",
    "yo",
    "hallo",
    "bonjour",
    "hola",
    "how",
    "are",
    "you",
    "doing",
    "today",
    "nice",
    "to",
    "meet",
];

/// Words a message of thanks or goodbye only is made of.
const CLOSING_WORDS: &[&str] = &[
    "thanks", "thank", "you", "so", "much", "ok", "okay", "great", "cool", "bye", "goodbye", "see",
    "later", "that", "helped", "a", "lot", "cheers",
];

/// Whether the message opens with a greeting word (a pleasantry must start the message).
fn opens_with_greeting(words: &[String]) -> bool {
    const OPENERS: &[&str] = &[
        "hi",
        "hello",
        "hey",
        "hiya",
        "howdy",
        "greetings",
        "good",
        "yo",
    ];
    words.first().is_some_and(|w| OPENERS.contains(&w.as_str()))
}

/// A cue: phrases that limit the kinds a message can have.
struct Cue {
    /// The kinds the model may choose from when a phrase is present.
    kinds: &'static [ActionKind],
    /// The phrases, matched at word boundaries.
    phrases: &'static [&'static str],
    /// Whether a phrase must open the message.
    at_start: bool,
}

/// Cues, checked in this order (so "test me" is a quiz before "test" means an exam, and
/// "how do I solve" is a problem before "how" opens a question).
const CUES: &[Cue] = &[
    Cue {
        kinds: &[ActionKind::CheckAnswer],
        phrases: &[
            "is that right",
            "is this right",
            "is it right",
            "is that correct",
            "is this correct",
            "is it correct",
            "am i right",
            "am i correct",
            "did i get it right",
            "check my answer",
            "check my work",
            "is my answer",
            "correct?",
        ],
        at_start: false,
    },
    Cue {
        kinds: &[ActionKind::QuizMe],
        phrases: &[
            "quiz me",
            "test me",
            "ask me questions",
            "ask me some questions",
            "practice questions",
            "give me a quiz",
            "a quick quiz",
            "test my knowledge",
        ],
        at_start: false,
    },
    Cue {
        kinds: &[ActionKind::TestPrep],
        phrases: &[
            "exam",
            "exams",
            "midterm",
            "finals",
            "test tomorrow",
            "a test",
            "my test",
            "revise for",
            "revising for",
            "revision",
            "study plan",
            "studying for",
            "study for",
            "prepare for",
            "get ready for",
        ],
        at_start: false,
    },
    Cue {
        kinds: &[ActionKind::Solve],
        phrases: &[
            "solve",
            "solving",
            "help me find",
            "find the",
            "find x",
            "stuck on",
            "work through",
            "balance the",
            "this problem",
            "this exercise",
            "this equation",
            "my homework",
            "how do i write",
            "how do i calculate",
            "how do i find",
        ],
        at_start: false,
    },
    Cue {
        kinds: &[ActionKind::OffTopic],
        phrases: &[
            "movie",
            "movies",
            "tv show",
            "netflix",
            "video game",
            "video games",
            "pizza",
            "restaurant",
            "recipe",
            "celebrity",
            "gossip",
            "flight",
            "hotel",
            "vacation",
            "should i buy",
            "recommend a",
            "game tonight",
            "match tonight",
            "football match",
            "basketball game",
            "boyfriend",
            "girlfriend",
            "lottery",
        ],
        at_start: false,
    },
    Cue {
        kinds: &[ActionKind::Explain, ActionKind::OffTopic, ActionKind::Other],
        phrases: &[
            "what",
            "what's",
            "why",
            "how",
            "who",
            "when",
            "where",
            "explain",
            "describe",
            "tell me about",
            "can you explain",
            "could you explain",
        ],
        at_start: true,
    },
];

/// Questions about who or what Mimir is, matched at word boundaries.
const IDENTITY_PHRASES: &[&str] = &[
    "who are you",
    "what are you",
    "what is your name",
    "what's your name",
    "whats your name",
    "who am i talking to",
    "who am i speaking to",
    "who am i chatting with",
    "who made you",
    "who created you",
    "are you a bot",
    "are you an ai",
    "are you a robot",
    "are you human",
    "are you a person",
    "introduce yourself",
    "tell me about yourself",
];

/// Words that may surround an identity question ("Hi, who are you exactly?").
const IDENTITY_FILLER: &[&str] = &[
    "exactly", "really", "anyway", "mimir", "again", "then", "so", "and", "hi", "hello", "hey",
    "please", "tell", "me", "by", "the", "way", "btw", "ok", "okay", "um",
];

/// Whether the message is a question about who or what Mimir is, and nothing more.
fn asks_identity(lower: &str) -> bool {
    IDENTITY_PHRASES.iter().any(|p| {
        contains_phrase(lower, p)
            && lower
                .replacen(p, " ", 1)
                .split_whitespace()
                .all(|w| IDENTITY_FILLER.contains(&w))
    })
}

/// Requests a tutor declines whatever the subject: harm, and handing in others' work.
const DECLINE_PHRASES: &[&str] = &[
    "make a weapon",
    "build a weapon",
    "make a gun",
    "make a bomb",
    "build a bomb",
    "make explosives",
    "make an explosive",
    "make poison",
    "poison someone",
    "hurt someone",
    "cheat on",
    "cheat in",
    "cheating on",
    "cheat at",
    "hack into",
    "as my own",
    "write my essay",
    "do my homework for me",
    "do my assignment for me",
];

/// Openings of a message that states an answer to check ("I think 9 + 8 = 16").
const CLAIM_OPENINGS: &[&str] = &[
    "is ",
    "does ",
    "i think",
    "i got",
    "i said",
    "i wrote",
    "i believe",
    "my answer",
    "check",
];

/// The action when a rule is certain: a message of greeting words only, a question about
/// Mimir, a request to decline, an arithmetic answer to check, plain arithmetic or a date
/// question (with the tool call and opening they need); `None` otherwise.
pub fn classify_by_rules(message: &str) -> Option<Classified> {
    let words: Vec<String> = message
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let lower = format!(" {} ", words.join(" "));
    if opens_with_greeting(&words) && words.iter().all(|w| GREETING_WORDS.contains(&w.as_str())) {
        let action = Action::new(ActionKind::Greeting, None, None);
        return Some(Classified::rule(action, None, Some(Opening::Greeting)));
    }
    if !words.is_empty() && words.iter().all(|w| CLOSING_WORDS.contains(&w.as_str())) {
        return Some(Classified::rule(
            Action::new(ActionKind::Other, None, None),
            None,
            None,
        ));
    }
    if DECLINE_PHRASES.iter().any(|p| contains_phrase(&lower, p)) {
        let action = Action::new(ActionKind::OffTopic, None, None);
        return Some(Classified::rule(action, None, Some(Opening::Decline)));
    }
    if asks_identity(&lower) {
        let action = Action::new(ActionKind::Other, None, Some("Mimir"));
        return Some(Classified::rule(action, None, Some(Opening::Identity)));
    }
    if let Some(found) = claim(message) {
        let start = message.trim_start().to_lowercase();
        if cue_kinds(message) == Some(&[ActionKind::CheckAnswer])
            || CLAIM_OPENINGS.iter().any(|o| start.starts_with(o))
        {
            let action = Action::new(ActionKind::CheckAnswer, Some("math"), Some("arithmetic"));
            let call = ToolCall::Calculator {
                expression: found.expression,
            };
            let opening = Opening::Verdict {
                claimed: found.claimed,
            };
            return Some(Classified::rule(action, Some(call), Some(opening)));
        }
    }
    match route(message)? {
        call @ ToolCall::Calculator { .. } => Some(Classified::rule(
            Action::new(ActionKind::Calculate, Some("math"), Some("arithmetic")),
            Some(call),
            None,
        )),
        ToolCall::DateTime => Some(Classified::rule(
            Action::new(ActionKind::Other, None, Some("date and time")),
            Some(ToolCall::DateTime),
            None,
        )),
    }
}

/// The kinds a cue phrase in `message` limits it to, if any (see [`CUES`]).
pub fn cue_kinds(message: &str) -> Option<&'static [ActionKind]> {
    cue_index(message).map(|i| CUES[i].kinds)
}

fn cue_index(message: &str) -> Option<usize> {
    let lower = format!(" {} ", message.trim().to_lowercase().replace('’', "'"));
    CUES.iter().position(|cue| {
        cue.phrases.iter().any(|p| {
            if cue.at_start {
                lower[1..].starts_with(p) && contains_phrase(&lower[..p.len() + 2], p)
            } else {
                contains_phrase(&lower, p)
            }
        })
    })
}

/// Whether `phrase` occurs in `text` (padded with spaces) at word boundaries.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + phrase.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric)
            && (phrase.ends_with('?') || !after.is_some_and(char::is_alphanumeric))
    })
}

/// The classification prompt: what each kind means, then worked examples as earlier turns
/// (small models follow demonstrated turns better than descriptions).
const CLASSIFY_SYSTEM: &str = "You classify a student's message for a tutoring app. Answer \
with JSON only: kind, subject, topic.\n\
kind: greeting = says hello; explain = asks what something is, why or how it works; \
solve = asks for help solving a problem or exercise; check_answer = gives their own answer \
and asks if it is right; quiz_me = asks to be quizzed or tested with questions; \
test_prep = preparing or studying for an exam or test; calculate = arithmetic to compute; \
off_topic = not about learning (games, food, sports, gossip); other = anything else.\n\
subject: the school subject, or null.\ntopic: two or three words, or null.";

/// Worked examples: (message, answer). Written for the prompt; the evaluation set in
/// `training/data/actions.jsonl` is separate.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "Hey, good afternoon!",
        r#"{"kind": "greeting", "subject": null, "topic": null}"#,
    ),
    (
        "Why does ice float on water?",
        r#"{"kind": "explain", "subject": "physics", "topic": "density"}"#,
    ),
    (
        "Can you help me solve 3x - 5 = 10?",
        r#"{"kind": "solve", "subject": "math", "topic": "linear equations"}"#,
    ),
    (
        "I think the capital of Australia is Sydney, am I right?",
        r#"{"kind": "check_answer", "subject": "geography", "topic": "capitals"}"#,
    ),
    (
        "Quiz me on the French Revolution.",
        r#"{"kind": "quiz_me", "subject": "history", "topic": "French Revolution"}"#,
    ),
    (
        "My chemistry exam is on Friday, how should I revise?",
        r#"{"kind": "test_prep", "subject": "chemistry", "topic": "exam revision"}"#,
    ),
    (
        "What is 36 divided by 4?",
        r#"{"kind": "calculate", "subject": "math", "topic": "division"}"#,
    ),
    (
        "Who won the football match last night?",
        r#"{"kind": "off_topic", "subject": null, "topic": null}"#,
    ),
    (
        "Thanks, that helped a lot.",
        r#"{"kind": "other", "subject": null, "topic": null}"#,
    ),
];

/// The messages that ask the model to classify `message`.
pub fn classification_prompt(message: &str) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::system(CLASSIFY_SYSTEM)];
    for (question, answer) in EXAMPLES {
        messages.push(ChatMessage::user(*question));
        messages.push(ChatMessage::assistant(*answer));
    }
    messages.push(ChatMessage::user(message));
    messages
}

/// Greedy decoding without penalties: JSON repeats quotes and keys by design.
pub(crate) fn constrained_config() -> GenerationConfig {
    GenerationConfig {
        temperature: 0.0,
        repetition_penalty: 1.0,
        frequency_penalty: 0.0,
        presence_penalty: 0.0,
        ..GenerationConfig::default()
    }
}

/// Classifies messages with rules first and the model second. Keep one per loaded model:
/// it holds the action grammar's token masks.
#[derive(Debug)]
pub struct Classifier {
    masker: GrammarMasker,
    /// One masker per entry of [`CUES`], whose grammar allows only the cue's kinds.
    cued: Vec<GrammarMasker>,
}

impl Classifier {
    /// A classifier for the model of `session`.
    pub fn new(session: &mut Session) -> Result<Self, ActionError> {
        let mut cued = Vec::new();
        for cue in CUES {
            cued.push(session.json_masker(&Action::schema_for(cue.kinds))?);
        }
        Ok(Self {
            masker: session.json_masker(&Action::schema())?,
            cued,
        })
    }

    /// The action of `message`, where it came from, and the tool call and opening a rule
    /// attached.
    pub fn classify(
        &mut self,
        session: &mut Session,
        message: &str,
        clock: &dyn Clock,
    ) -> Result<Classified, ActionError> {
        if let Some(classified) = classify_by_rules(message) {
            return Ok(classified);
        }
        let prompt = classification_prompt(message);
        let (masker, source) = match cue_index(message) {
            Some(i) => (&mut self.cued[i], ActionSource::Cue),
            None => (&mut self.masker, ActionSource::Model),
        };
        let value = generate_json(session, masker, &prompt, &constrained_config(), clock).map_err(
            |source| ActionError::Generate {
                message: message.to_owned(),
                source: Box::new(source),
            },
        )?;
        let action =
            serde_json::from_value(value.clone()).map_err(|source| ActionError::Invalid {
                message: message.to_owned(),
                value,
                source,
            })?;
        Ok(Classified {
            action,
            source,
            call: None,
            opening: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::grammar::{Grammar, MatchState};

    #[test]
    fn actions_round_trip_through_serde() {
        let action = Action::new(ActionKind::CheckAnswer, Some("math"), Some("fractions"));
        let text = serde_json::to_string(&action).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"check_answer","subject":"math","topic":"fractions"}"#
        );
        assert_eq!(serde_json::from_str::<Action>(&text).unwrap(), action);
        let bare: Action =
            serde_json::from_str(r#"{"kind":"greeting","subject":null,"topic":null}"#).unwrap();
        assert_eq!(bare, Action::new(ActionKind::Greeting, None, None));
        for kind in ActionKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ActionKind>(&json).unwrap(), kind);
        }
        assert!(serde_json::from_str::<ActionKind>("\"homework\"").is_err());
    }

    #[test]
    fn the_schema_accepts_every_action_and_the_prompt_examples() {
        let grammar = Grammar::from_schema(&Action::schema()).unwrap();
        let accepts = |text: &str| {
            let mut state = MatchState::new(&grammar);
            state.feed_all(&grammar, text.as_bytes()).is_ok() && state.is_complete()
        };
        for kind in ActionKind::ALL {
            for subject in SUBJECTS.iter().map(|s| Some(*s)).chain([None]) {
                let action = Action::new(kind, subject, Some("a topic"));
                assert!(accepts(&serde_json::to_string(&action).unwrap()));
            }
        }
        for (_, answer) in EXAMPLES {
            assert!(accepts(answer), "{answer}");
            serde_json::from_str::<Action>(answer).unwrap();
        }
        assert!(!accepts(
            r#"{"kind":"explain","subject":"astrology","topic":null}"#
        ));
    }

    #[test]
    fn cue_phrases_limit_the_kinds_at_word_boundaries() {
        use ActionKind::*;
        let one = |m: &str| cue_kinds(m).filter(|k| k.len() == 1).map(|k| k[0]);
        assert_eq!(one("Quiz me on rivers"), Some(QuizMe));
        assert_eq!(one("Can you test me on verbs?"), Some(QuizMe));
        assert_eq!(one("My exam is next week"), Some(TestPrep));
        assert_eq!(one("I said 12. Is that right?"), Some(CheckAnswer));
        assert_eq!(one("x = 3, correct?"), Some(CheckAnswer));
        assert_eq!(one("How do I solve 2x = 8?"), Some(Solve));
        assert_eq!(
            cue_kinds("Why is the sky blue?"),
            Some(&[Explain, OffTopic, Other][..])
        );
        assert_eq!(cue_kinds("Somehow this is hard"), None);
        assert_eq!(one("What movie should I watch?"), Some(OffTopic));
        let off = Action::schema_for(&[OffTopic]);
        assert_eq!(off["properties"]["subject"], json!({"enum": [null]}));
        assert_eq!(cue_kinds("Please help with my essay"), None);
    }

    #[test]
    fn rules_settle_only_the_certain_cases() {
        let kind = |m: &str| classify_by_rules(m).map(|c| c.action.kind);
        assert_eq!(kind("Hello!"), Some(ActionKind::Greeting));
        assert_eq!(kind("good morning Mimir"), Some(ActionKind::Greeting));
        assert_eq!(kind("What is 7 times 8?"), Some(ActionKind::Calculate));
        assert_eq!(kind("what's today's date?"), Some(ActionKind::Other));
        assert_eq!(kind("Hello, can you explain gravity?"), None);
        assert_eq!(kind("Hi, how are you today?"), Some(ActionKind::Greeting));
        assert_eq!(kind("Thanks a lot, bye!"), Some(ActionKind::Other));
        assert_eq!(kind("you are great"), None);
        assert_eq!(
            kind("Is 7 times 8 equal to 54?"),
            Some(ActionKind::CheckAnswer)
        );
        assert_eq!(kind("Explain why 7 times 8 = 56"), None);
        assert_eq!(kind("I got x = 4 for 3x + 2 = 14. Is that right?"), None);
        assert_eq!(kind(""), None);
        let opening = |m: &str| classify_by_rules(m).and_then(|c| c.opening);
        assert_eq!(opening("Hi there!"), Some(Opening::Greeting));
        assert_eq!(opening("Who are you?"), Some(Opening::Identity));
        assert_eq!(opening("What are you exactly?"), Some(Opening::Identity));
        assert_eq!(opening("What are your opening hours?"), None);
        assert_eq!(opening("What are you studying today?"), None);
        assert_eq!(opening("Hi, who are you?"), Some(Opening::Identity));
        assert_eq!(
            opening("Tell me how to cheat on my exam."),
            Some(Opening::Decline)
        );
        assert_eq!(
            opening("How do I make a weapon at home?"),
            Some(Opening::Decline)
        );
        assert_eq!(opening("How do vaccines teach cells to fight germs?"), None);
        assert_eq!(
            opening("I think 9 + 8 = 16. Am I right?"),
            Some(Opening::Verdict {
                claimed: "16".into()
            })
        );
        let call = classify_by_rules("square root of 144").unwrap().call;
        assert_eq!(
            call,
            Some(ToolCall::Calculator {
                expression: "sqrt(144)".into()
            })
        );
    }
}
