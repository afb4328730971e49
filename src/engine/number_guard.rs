//! A constraint that lets a reply write only the numbers it was given: after a calculator
//! result, a small model may restate it wrongly ("7*8 = 56. 7 * 8 equals 54"); with the guard
//! every run of digits it writes must be one that occurs in the given texts (the student's
//! message and the tool's result), so the only product it can state is the exact one.

use std::sync::Arc;

use super::generate::TokenConstraint;
use super::grammar::TokenVocab;

/// Masks tokens that would start or continue a digit run that is not one of the allowed
/// numbers, and the stop ids while such a run is unfinished.
#[derive(Debug)]
pub struct NumberGuard {
    vocab: Arc<TokenVocab>,
    /// Which ids contain an ASCII digit (the others only end a run).
    has_digit: Vec<bool>,
    /// The digit runs of the given texts.
    allowed: Vec<Vec<u8>>,
    /// The digits at the end of the reply so far.
    run: Vec<u8>,
}

impl NumberGuard {
    /// A guard allowing the digit runs found in `texts` (`"7*8 = 56"` allows 7, 8 and 56;
    /// `"0.75"` allows 0 and 75).
    pub fn new(vocab: Arc<TokenVocab>, texts: &[&str]) -> Self {
        let mut allowed: Vec<Vec<u8>> = Vec::new();
        for text in texts {
            for run in text.split(|c: char| !c.is_ascii_digit()) {
                if !run.is_empty() && !allowed.iter().any(|a| a == run.as_bytes()) {
                    allowed.push(run.as_bytes().to_vec());
                }
            }
        }
        let has_digit = (0..vocab.len() as u32)
            .map(|id| vocab.token(id).iter().any(u8::is_ascii_digit))
            .collect();
        Self {
            vocab,
            has_digit,
            allowed,
            run: Vec::new(),
        }
    }

    /// Whether the digits at the end of the reply are a whole allowed number (or none).
    fn run_is_complete(&self, run: &[u8]) -> bool {
        run.is_empty() || self.allowed.iter().any(|a| a == run)
    }

    /// Feeds `bytes` after `run`; `false` when they make a number that is not allowed.
    fn feed(&self, run: &mut Vec<u8>, bytes: &[u8]) -> bool {
        for &b in bytes {
            if b.is_ascii_digit() {
                run.push(b);
                if !self.allowed.iter().any(|a| a.starts_with(run)) {
                    return false;
                }
            } else {
                if !self.run_is_complete(run) {
                    return false;
                }
                run.clear();
            }
        }
        true
    }

    fn bytes(&self, id: usize) -> &[u8] {
        if id < self.vocab.len() {
            self.vocab.token(id as u32)
        } else {
            &[]
        }
    }
}

impl TokenConstraint for NumberGuard {
    fn mask(&mut self, logits: &mut [f32], stop_ids: &[u32]) {
        let complete = self.run_is_complete(&self.run);
        for (id, logit) in logits.iter_mut().enumerate() {
            let bytes = self.bytes(id);
            let allowed = if stop_ids.contains(&(id as u32)) || bytes.is_empty() {
                complete
            } else if !self.has_digit.get(id).copied().unwrap_or(false) {
                // No digit: it ends the run, which must then be whole.
                complete
            } else {
                self.feed(&mut self.run.clone(), bytes)
            };
            if !allowed {
                *logit = f32::NEG_INFINITY;
            }
        }
    }

    fn accept(&mut self, id: u32) -> Result<bool, String> {
        let mut run = std::mem::take(&mut self.run);
        let bytes = self.bytes(id as usize).to_vec();
        if !self.feed(&mut run, &bytes) {
            return Err(format!(
                "token {id} ({:?}) writes a number that is not allowed",
                String::from_utf8_lossy(&bytes)
            ));
        }
        self.run = run;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tokenizer::{GgufVocab, Tokenizer};

    /// A byte-level vocabulary with single digits, "54", "56" and words.
    fn vocab() -> (Tokenizer, Arc<TokenVocab>) {
        let tokens: Vec<String> = [
            "<|end|>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "54", "56", "Ġ",
            "Ġequals", "Ġis", ".",
        ]
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
        let mut types = vec![GgufVocab::TYPE_NORMAL; tokens.len()];
        types[0] = GgufVocab::TYPE_CONTROL;
        let v = GgufVocab {
            model: "gpt2".into(),
            tokens,
            token_types: Some(types),
            merges: Some(vec!["5 4".into(), "5 6".into()]),
            eos_id: Some(0),
            ..GgufVocab::default()
        };
        let tokenizer = Tokenizer::from_gguf_vocab(&v, "digits").unwrap();
        let vocab = Arc::new(TokenVocab::new(&tokenizer));
        (tokenizer, vocab)
    }

    fn allowed(guard: &mut NumberGuard, n: usize) -> Vec<usize> {
        let mut logits = vec![0.0; n];
        guard.mask(&mut logits, &[0]);
        (0..n).filter(|&i| logits[i].is_finite()).collect()
    }

    #[test]
    fn only_the_given_numbers_can_be_written() {
        let (tokenizer, vocab) = vocab();
        let id = |t: &str| tokenizer.token_id(t).unwrap() as usize;
        let n = vocab.len();
        let mut guard = NumberGuard::new(vocab, &["What is 7 times 8?", "7*8 = 56"]);
        let now = allowed(&mut guard, n);
        assert!(now.contains(&id("56")) && now.contains(&id("7")) && now.contains(&id("5")));
        assert!(!now.contains(&id("54")) && !now.contains(&id("4")));
        assert!(now.contains(&0), "the reply may end between numbers");
        // After "5" only "6" may follow: no other digit, no word, no end.
        guard.accept(id("5") as u32).unwrap();
        assert_eq!(allowed(&mut guard, n), vec![id("6")]);
        guard.accept(id("6") as u32).unwrap();
        let after = allowed(&mut guard, n);
        assert!(after.contains(&id(".")) && after.contains(&0) && !after.contains(&id("6")));
        assert!(guard.accept(id("54") as u32).is_err());
    }
}
