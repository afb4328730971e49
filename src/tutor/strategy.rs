//! The tutoring strategy per action: a short system-prompt snippet added after Mimir's
//! system prompt, chosen by the action's kind (the "snippets chosen by relevance").

use super::action::ActionKind;

/// The instruction for replying to a message of `kind`.
pub fn snippet(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Greeting => {
            "The student is greeting you. Greet them back in one or two sentences, say you \
             are Mimir, their tutor, and ask what they would like to learn."
        }
        ActionKind::Explain => {
            "Explain the concept in a few short steps in plain words, give one simple \
             example, and end with one short question that checks understanding."
        }
        ActionKind::Solve => {
            "Guide the student through the problem step by step, showing the reasoning of \
             each step, and state the final answer clearly at the end."
        }
        ActionKind::CheckAnswer => {
            "The student wants their answer checked. Say first, clearly, whether it is right \
             or wrong, then explain why; if it is wrong, show the correct working."
        }
        ActionKind::QuizMe => {
            "Quiz the student: ask one question at a time about the topic and do not give \
             the answer in the same message. Wait for their reply."
        }
        ActionKind::TestPrep => {
            "Help the student prepare for their test: list the key points to review, give \
             one practice question, and suggest a short study plan."
        }
        ActionKind::Calculate => {
            "A calculator result is given as context and it is exact: state that value as \
             the answer and show briefly how it is obtained. Never change the number."
        }
        ActionKind::OffTopic => {
            "The message is not about learning. Decline politely in one sentence and invite \
             the student back to their studies."
        }
        ActionKind::Other => "Answer helpfully and briefly.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_short_snippet() {
        let all: Vec<&str> = ActionKind::ALL.iter().map(|&k| snippet(k)).collect();
        for (i, s) in all.iter().enumerate() {
            assert!(!s.is_empty() && s.len() < 300, "{s}");
            assert!(!all[..i].contains(s), "duplicate snippet {s}");
        }
        assert!(snippet(ActionKind::CheckAnswer).contains("right or wrong"));
        assert!(snippet(ActionKind::OffTopic).contains("Decline politely"));
    }
}
