//! Examples as token ids, rendered with the model's chat template exactly as the engine
//! renders prompts, with the tokens the loss covers marked: each assistant reply and the
//! end-of-turn token that closes it, never the system prompt, the student or the template.

use mimir::engine::chat::{ChatTemplate, PromptPiece, Role};
use mimir::engine::tokenizer::Tokenizer;

use super::error::TrainError;
use crate::data::Example;

/// One tokenised example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The conversation's token ids (BOS first when the tokenizer adds one).
    pub ids: Vec<u32>,
    /// `targets[i]`: `ids[i]` is an assistant token the loss covers.
    pub targets: Vec<bool>,
}

impl Encoded {
    /// How many tokens the loss covers.
    pub fn target_count(&self) -> usize {
        self.targets.iter().filter(|&&t| t).count()
    }
}

/// Encodes `example` and cuts it to `max_seq_len` tokens.
///
/// For each assistant turn, the tokens after what the engine would feed the model as the
/// prompt (`render(turns before it, add_generation_prompt = true)`) up to and including its
/// end-of-turn token are targets. Encoding the turns one prefix at a time keeps the ids
/// exactly those of the whole conversation; where the prompt's last text piece merges with
/// the reply's first characters into other tokens, the targets start at the first token the
/// two encodings disagree on.
pub fn encode_example(
    example: &Example,
    tokenizer: &Tokenizer,
    template: ChatTemplate,
    max_seq_len: usize,
) -> Result<Encoded, TrainError> {
    let messages = &example.messages;
    let encode = |pieces: &[PromptPiece]| tokenizer.encode_prompt(pieces, true);
    let ids = encode(&template.render(messages, false))?;
    let mut targets = vec![false; ids.len()];
    for (i, message) in messages.iter().enumerate() {
        if message.role != Role::Assistant {
            continue;
        }
        let prompt = encode(&template.render(&messages[..i], true))?;
        let mut turn = template.render(&messages[..=i], false);
        // The text after the end-of-turn token ("\n") is not part of the reply.
        if matches!(turn.last(), Some(PromptPiece::Text(_))) {
            turn.pop();
        }
        let turn = encode(&turn)?;
        let start = prompt.iter().zip(&turn).take_while(|(a, b)| a == b).count();
        for target in targets.iter_mut().take(turn.len()).skip(start) {
            *target = true;
        }
    }
    let keep = ids.len().min(max_seq_len);
    Ok(Encoded {
        ids: ids[..keep].to_vec(),
        targets: targets[..keep].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use mimir::engine::chat::ChatMessage;

    use super::*;

    fn phi3_tokenizer() -> Tokenizer {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|dir| dir.join("shared/phi3-tokenizer/tokenizer.json"))
            .find(|p| p.is_file())
            .expect("shared/phi3-tokenizer/tokenizer.json in an ancestor folder");
        Tokenizer::from_json_bytes(&std::fs::read(&path).unwrap(), "phi3").unwrap()
    }

    /// Each run of consecutive targets, decoded.
    fn target_texts(tokenizer: &Tokenizer, encoded: &Encoded) -> Vec<String> {
        let mut runs: Vec<Vec<u32>> = Vec::new();
        for (i, (&id, &target)) in encoded.ids.iter().zip(&encoded.targets).enumerate() {
            match runs.last_mut() {
                Some(run) if target && encoded.targets[i - 1] => run.push(id),
                _ if target => runs.push(vec![id]),
                _ => {}
            }
        }
        runs.iter()
            .map(|ids| tokenizer.decode(ids, false).unwrap())
            .collect()
    }

    #[test]
    fn only_assistant_replies_and_their_end_tokens_are_targets() {
        let tokenizer = phi3_tokenizer();
        let mut example = Example::new("You are Mimir.", "Hello!", "Hello! I am Mimir.");
        example.messages.push(ChatMessage::user("Thanks."));
        example
            .messages
            .push(ChatMessage::assistant("You are welcome."));
        let encoded = encode_example(&example, &tokenizer, ChatTemplate::Phi3, 512).unwrap();
        let whole = tokenizer
            .encode_prompt(&ChatTemplate::Phi3.render(&example.messages, false), true)
            .unwrap();
        assert_eq!(
            encoded.ids, whole,
            "the engine's encoding of the conversation"
        );
        assert_eq!(
            target_texts(&tokenizer, &encoded),
            ["Hello! I am Mimir.<|end|>", "You are welcome.<|end|>"]
        );
        // The prompt the engine would send before the first reply is never a target.
        let prompt = tokenizer
            .encode_prompt(
                &ChatTemplate::Phi3.render(&example.messages[..2], true),
                true,
            )
            .unwrap();
        assert!(encoded.targets[..prompt.len()].iter().all(|t| !t));
        assert!(encoded.targets[prompt.len()]);

        let cut =
            encode_example(&example, &tokenizer, ChatTemplate::Phi3, prompt.len() + 2).unwrap();
        assert_eq!(cut.ids.len(), prompt.len() + 2);
        assert_eq!(cut.target_count(), 2);
    }
}
