//! Mimir's tone rules, applied to every reply the evaluation generates: no emoticons or
//! emoji, no leaked special tokens, at most a few dash or hyphen punctuation marks, a length
//! within bounds, none of a list of flowery phrases, and not cut off by the token cap.

use std::sync::LazyLock;

use mimir::engine::generate::StopReason;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The configurable side of the tone rules (`eval` in `model_config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToneConfig {
    /// Fewest words a reply may have.
    pub min_words: usize,
    /// Most words a reply may have.
    pub max_words: usize,
    /// Most dash or hyphen punctuation marks a reply may use (see [`dash_marks`]).
    pub max_dashes: usize,
    /// Phrases a reply must not contain (matched case-insensitively).
    pub flowery_phrases: Vec<String>,
}

impl Default for ToneConfig {
    fn default() -> Self {
        Self {
            min_words: 1,
            max_words: 250,
            max_dashes: 2,
            flowery_phrases: [
                "embark on",
                "learning journey",
                "delve into",
                "tapestry",
                "treasure trove",
                "dive into",
                "buckle up",
                "magical",
                "a testament to",
                "captivating",
                "enchanting",
                "unlock the secrets",
                "fascinating world",
                "whimsical",
                "in the realm of",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

/// One tone rule's verdict on one reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToneCheck {
    /// The rule's name (`no_emoji`, `no_special_tokens`, `max_dashes`, `length`,
    /// `no_flowery`, `not_truncated`).
    pub rule: String,
    /// Whether the reply keeps the rule.
    pub passed: bool,
    /// What was found when it does not.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The names of the rules, in the order [`check_tone`] reports them.
pub const TONE_RULES: [&str; 6] = [
    "no_emoji",
    "no_special_tokens",
    "max_dashes",
    "length",
    "no_flowery",
    "not_truncated",
];

static EMOJI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        "[\u{1F000}-\u{1FAFF}\u{2600}-\u{27BF}\u{2B00}-\u{2BFF}\u{FE0F}\u{200D}\u{231A}\u{231B}\u{23E9}-\u{23FA}]",
        // ASCII emoticons: :) ;-) :D :P :( =) and friends, <3, ^_^, xD
        r"|(?:^|\s)[:;=][-']?[)(DPp/\\|\]\[O]+(?:$|[\s.,!?])",
        r"|<3|\^_?\^|(?:^|\s)[xX]D(?:$|\s)",
    ))
    .expect("emoji pattern")
});

static SPECIAL_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"<\|[A-Za-z0-9_]{1,32}\|>|</?s>|\[/?INST\]").expect("special token pattern")
});

/// Emoji and emoticons found in `text`.
pub fn emoji(text: &str) -> Vec<String> {
    EMOJI
        .find_iter(text)
        .map(|m| m.as_str().trim().to_owned())
        .collect()
}

/// Special tokens written out in `text` (`<|end|>`, `<|im_end|>`, `</s>`, `[INST]`).
pub fn special_tokens(text: &str) -> Vec<String> {
    SPECIAL_TOKEN
        .find_iter(text)
        .map(|m| m.as_str().to_owned())
        .collect()
}

/// Dash and hyphen punctuation marks in `text`: em, en and figure dashes and horizontal bars;
/// runs of two or more hyphens (`--`); a hyphen opening a bullet line; and a hyphen with
/// spaces on both sides, unless it stands between two numbers or one-letter names, where it
/// is a minus sign (`12 - 5`, `x - 3`). Hyphens inside words (`step-by-step`) and before a
/// number (`-3`) are not punctuation.
pub fn dash_marks(text: &str) -> usize {
    let mut count = 0;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, word) in words.iter().enumerate() {
            count += word
                .chars()
                .filter(|c| matches!(c, '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'))
                .count();
            if word.contains("--") {
                count += 1;
            } else if *word == "-" {
                let bullet = i == 0;
                let minus = i > 0
                    && i + 1 < words.len()
                    && is_operand(words[i - 1])
                    && is_operand(words[i + 1]);
                if bullet || !minus {
                    count += 1;
                }
            }
        }
    }
    count
}

/// A number or a one-letter name, possibly in brackets or with an exponent: what can stand on
/// either side of a minus sign.
fn is_operand(word: &str) -> bool {
    let core = word.trim_matches(|c: char| "()[]{}.,;:=".contains(c));
    let has_digit = core.chars().any(|c| c.is_ascii_digit());
    let single_letter = core.chars().count() == 1 && core.chars().all(char::is_alphabetic);
    !core.is_empty()
        && (single_letter
            || (has_digit
                && core
                    .chars()
                    .all(|c| c.is_alphanumeric() || "^²³.,/×*+".contains(c))))
}

/// Applies every rule to `reply`, which stopped for `stop`.
pub fn check_tone(reply: &str, stop: StopReason, config: &ToneConfig) -> Vec<ToneCheck> {
    let check = |rule: &str, problems: Vec<String>| ToneCheck {
        rule: rule.to_owned(),
        passed: problems.is_empty(),
        detail: problems.join(", "),
    };
    let dashes = dash_marks(reply);
    let words = reply.split_whitespace().count();
    let lower = reply.to_lowercase();
    let truncated = matches!(stop, StopReason::MaxTokens | StopReason::ContextFull);
    vec![
        check("no_emoji", emoji(reply)),
        check("no_special_tokens", special_tokens(reply)),
        check(
            "max_dashes",
            (dashes > config.max_dashes)
                .then(|| format!("{dashes} dash marks, at most {}", config.max_dashes))
                .into_iter()
                .collect(),
        ),
        check(
            "length",
            (!(config.min_words..=config.max_words).contains(&words))
                .then(|| {
                    format!(
                        "{words} words, expected {} to {}",
                        config.min_words, config.max_words
                    )
                })
                .into_iter()
                .collect(),
        ),
        check(
            "no_flowery",
            config
                .flowery_phrases
                .iter()
                .filter(|phrase| lower.contains(&phrase.to_lowercase()))
                .map(|phrase| format!("{phrase:?}"))
                .collect(),
        ),
        check(
            "not_truncated",
            truncated
                .then(|| format!("stopped by {stop:?}: the reply hit the length cap"))
                .into_iter()
                .collect(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(reply: &str, stop: StopReason) -> Vec<String> {
        check_tone(reply, stop, &ToneConfig::default())
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.rule)
            .collect()
    }

    #[test]
    fn seed_reply_passes_every_rule() {
        let reply = "Hello! I am Mimir, a tutoring assistant. Is there a subject you would like to explore, or a test you'd like to prepare for?";
        assert!(failed(reply, StopReason::EndOfTurn).is_empty());
        let rules: Vec<String> = check_tone(reply, StopReason::EndOfTurn, &ToneConfig::default())
            .into_iter()
            .map(|c| c.rule)
            .collect();
        assert_eq!(rules, TONE_RULES);
    }

    #[test]
    fn emoji_and_emoticons_are_caught() {
        for reply in [
            "Great job 😊",
            "Sunny ☀️ today.",
            "Well done :)",
            "Nice ;-) work",
            "Ha :D",
            "Oh no :(",
            "I <3 maths",
            "yay ^_^",
            "lol xD",
            "Flag 🇫🇷.",
        ] {
            assert_eq!(
                failed(reply, StopReason::EndOfTurn),
                ["no_emoji"],
                "{reply}"
            );
        }
        for reply in [
            "Note: (a) is right.",
            "The ratio is 3:2.",
            "Use f(x) = x².",
            "Time: 10:30.",
            "2 × 3 → 6, and 6 ÷ 2 = 3.",
            "Na⁺ and Cl⁻ attract.",
        ] {
            assert!(emoji(reply).is_empty(), "{reply}: {:?}", emoji(reply));
        }
    }

    #[test]
    fn leaked_special_tokens_are_caught() {
        for reply in ["Done.<|end|>", "Done<|im_end|>", "ok </s>", "[INST] next"] {
            assert_eq!(
                failed(reply, StopReason::EndOfTurn),
                ["no_special_tokens"],
                "{reply}"
            );
        }
        assert!(special_tokens("Use a < b and c | d > e.").is_empty());
    }

    #[test]
    fn dashes_count_punctuation_not_hyphenated_words_or_minus_signs() {
        assert_eq!(dash_marks("A well-known step-by-step method."), 0);
        assert_eq!(dash_marks("12 - 5 = 7 and x - 3 = 1 and (a + b) - c"), 0);
        assert_eq!(dash_marks("It is -3 degrees."), 0);
        assert_eq!(dash_marks("Paris — the capital — is large."), 2);
        assert_eq!(dash_marks("Paris - the capital - is large."), 2);
        assert_eq!(dash_marks("pages 10–12"), 1);
        assert_eq!(dash_marks("Wait -- what?"), 1);
        assert_eq!(dash_marks("- one\n- two\n- three"), 3);
        assert_eq!(
            failed("A — b — c — d.", StopReason::EndOfTurn),
            ["max_dashes"]
        );
        assert!(failed("A — b — c.", StopReason::EndOfTurn).is_empty());
    }

    #[test]
    fn length_bounds_and_cap() {
        let config = ToneConfig {
            min_words: 2,
            max_words: 5,
            ..ToneConfig::default()
        };
        let rules = |reply: &str, stop| -> Vec<String> {
            check_tone(reply, stop, &config)
                .into_iter()
                .filter(|c| !c.passed)
                .map(|c| c.rule)
                .collect()
        };
        assert_eq!(rules("Yes.", StopReason::EndOfTurn), ["length"]);
        assert_eq!(rules("", StopReason::EndOfTurn), ["length"]);
        assert!(rules("Yes, it is.", StopReason::EndOfTurn).is_empty());
        assert_eq!(
            rules("one two three four five six", StopReason::EndOfTurn),
            ["length"]
        );
        assert_eq!(
            rules("Yes, it is.", StopReason::MaxTokens),
            ["not_truncated"]
        );
        assert_eq!(
            rules("Yes, it is.", StopReason::ContextFull),
            ["not_truncated"]
        );
        assert!(rules("Yes, it is.", StopReason::Repetition).is_empty());
    }

    #[test]
    fn flowery_phrases_are_configurable() {
        assert_eq!(
            failed("Let us embark on a Magical journey.", StopReason::EndOfTurn),
            ["no_flowery"]
        );
        let config = ToneConfig {
            flowery_phrases: vec!["splendid".into()],
            ..ToneConfig::default()
        };
        let checks = check_tone("A splendid answer.", StopReason::EndOfTurn, &config);
        let flowery = checks.iter().find(|c| c.rule == "no_flowery").unwrap();
        assert!(!flowery.passed);
        assert_eq!(flowery.detail, "\"splendid\"");
    }
}
