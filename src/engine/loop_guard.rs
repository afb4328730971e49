//! Detection of degenerate repetition during generation.
//!
//! [`LoopGuard`] counts every n-gram (overlapping, `n = config.ngram`) of the
//! generated tokens. When the n-gram ending at the newest token has occurred
//! `max_repeats` times, [`LoopGuard::push`] returns [`LoopVerdict::Stop`], so
//! "the the the the …" or a sentence repeated over and over ends generation
//! before it fills the whole token budget. Only generated tokens are pushed,
//! never the prompt.
//!
//! Cost: one hash-map update per token, keyed by the n-gram itself (no hash
//! collisions can cause a false stop).

use std::collections::HashMap;

use crate::engine::generation_config::LoopGuardConfig;

/// What the generation loop should do after a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopVerdict {
    /// No repetition loop detected; keep generating.
    Continue,
    /// The newest n-gram has occurred `max_repeats` times; stop generating.
    Stop,
}

/// Repetition detector over the tokens generated so far.
///
/// Disabled (always [`LoopVerdict::Continue`]) when `ngram` or `max_repeats`
/// is 0. Once it has returned [`LoopVerdict::Stop`] it keeps returning `Stop`
/// until [`LoopGuard::reset`].
#[derive(Debug, Clone)]
pub struct LoopGuard {
    config: LoopGuardConfig,
    tokens: Vec<u32>,
    /// Occurrences of each n-gram.
    counts: HashMap<Vec<u32>, usize>,
    /// For each (n-1)-gram, the distinct tokens seen right after it, in order
    /// of first appearance (used by [`LoopGuard::banned_next`]).
    successors: HashMap<Vec<u32>, Vec<u32>>,
    stopped: bool,
}

impl LoopGuard {
    /// Creates a guard with no tokens seen.
    pub fn new(config: LoopGuardConfig) -> Self {
        Self {
            config,
            tokens: Vec::new(),
            counts: HashMap::new(),
            successors: HashMap::new(),
            stopped: false,
        }
    }

    /// The configuration this guard was built with.
    pub fn config(&self) -> &LoopGuardConfig {
        &self.config
    }

    /// Whether the guard can ever stop generation.
    pub fn is_enabled(&self) -> bool {
        self.config.ngram > 0 && self.config.max_repeats > 0
    }

    /// Forgets all tokens, e.g. before the next answer.
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.counts.clear();
        self.successors.clear();
        self.stopped = false;
    }

    /// Records the newly generated token `id` and says whether generation
    /// should stop.
    pub fn push(&mut self, id: u32) -> LoopVerdict {
        if !self.is_enabled() {
            return LoopVerdict::Continue;
        }
        if self.stopped {
            return LoopVerdict::Stop;
        }
        self.tokens.push(id);
        let n = self.config.ngram;
        if self.tokens.len() < n {
            return LoopVerdict::Continue;
        }
        let gram = &self.tokens[self.tokens.len() - n..];
        let count = match self.counts.get_mut(gram) {
            Some(count) => {
                *count += 1;
                *count
            }
            None => {
                self.counts.insert(gram.to_vec(), 1);
                let (prefix, last) = gram.split_at(n - 1);
                match self.successors.get_mut(prefix) {
                    Some(next) => next.push(last[0]),
                    None => {
                        self.successors.insert(prefix.to_vec(), vec![last[0]]);
                    }
                }
                1
            }
        };
        if count >= self.config.max_repeats {
            self.stopped = true;
            LoopVerdict::Stop
        } else {
            LoopVerdict::Continue
        }
    }

    /// Tokens that would make the next [`LoopGuard::push`] return
    /// [`LoopVerdict::Stop`], in order of first appearance. A caller may mask
    /// them (set their logits to `-inf`) to steer away from the loop instead
    /// of stopping. Empty when the guard is disabled or already stopped.
    pub fn banned_next(&self) -> Vec<u32> {
        let n = self.config.ngram;
        if !self.is_enabled() || self.stopped || self.tokens.len() + 1 < n {
            return Vec::new();
        }
        let prefix = &self.tokens[self.tokens.len() + 1 - n..];
        let Some(next) = self.successors.get(prefix) else {
            return Vec::new();
        };
        let mut key = prefix.to_vec();
        key.push(0);
        next.iter()
            .copied()
            .filter(|&t| {
                key[n - 1] = t;
                self.counts.get(key.as_slice()).copied().unwrap_or(0) + 1 >= self.config.max_repeats
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(ngram: usize, max_repeats: usize) -> LoopGuard {
        LoopGuard::new(LoopGuardConfig { ngram, max_repeats })
    }

    /// Index of the push that first returned Stop.
    fn first_stop(g: &mut LoopGuard, tokens: &[u32]) -> Option<usize> {
        tokens.iter().position(|&t| g.push(t) == LoopVerdict::Stop)
    }

    #[test]
    fn repeated_sentence_stops_on_third_copy() {
        let sentence = [10, 11, 12, 13, 14, 15, 16];
        let text: Vec<u32> = sentence.iter().copied().cycle().take(7 * 5).collect();
        let mut g = guard(4, 3);
        // The first 4-gram of the third copy completes at index 2*7 + 3.
        assert_eq!(first_stop(&mut g, &text), Some(17));
        // Sticky until reset.
        assert_eq!(g.push(99), LoopVerdict::Stop);
        g.reset();
        assert_eq!(first_stop(&mut g, &text[..17]), None);
    }

    #[test]
    fn repeated_word_stops() {
        let mut g = guard(4, 3);
        // "the the the the the the": 4-gram counts reach 3 at the 6th token.
        assert_eq!(first_stop(&mut g, &[7; 10]), Some(5));
        let mut g = guard(1, 3);
        assert_eq!(first_stop(&mut g, &[1, 2, 7, 3, 7, 4, 7]), Some(6));
    }

    #[test]
    fn alternating_pattern_stops() {
        let mut g = guard(4, 3);
        let text: Vec<u32> = [1, 2].iter().copied().cycle().take(20).collect();
        // abab at 0, 2, 4 → third occurrence ends at index 7.
        assert_eq!(first_stop(&mut g, &text), Some(7));
    }

    #[test]
    fn no_false_stop_on_distinct_tokens() {
        let mut g = guard(4, 3);
        let text: Vec<u32> = (1000..1500).collect();
        assert_eq!(first_stop(&mut g, &text), None);
        assert!(g.banned_next().is_empty());
    }

    #[test]
    fn no_false_stop_on_natural_text_with_repeated_bigrams() {
        // "the cat sat on the mat . the dog sat on the rug . the cat ran to the
        // dog ." — "sat on the" and "the cat" recur, but no 4-gram three times.
        let words = "the cat sat on the mat . the dog sat on the rug . \
                     the cat ran to the dog . a bird sat on the fence . \
                     of the cat and of the dog , the cat is big .";
        let mut vocab: Vec<&str> = Vec::new();
        let ids: Vec<u32> = words
            .split_whitespace()
            .map(|w| match vocab.iter().position(|v| *v == w) {
                Some(i) => i as u32,
                None => {
                    vocab.push(w);
                    (vocab.len() - 1) as u32
                }
            })
            .collect();
        let mut g = guard(4, 3);
        assert_eq!(first_stop(&mut g, &ids), None);

        // A long pseudo-random sequence with a bigram (5, 6) inserted often.
        let mut g = guard(4, 3);
        let mut state = 12345u64;
        let mut seq = Vec::new();
        for i in 0..3000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seq.push(100 + ((state >> 33) % 5000) as u32);
            if i % 50 == 0 {
                seq.extend([5, 6]);
            }
        }
        assert_eq!(first_stop(&mut g, &seq), None);
    }

    #[test]
    fn disabled_guard_never_stops() {
        let mut g = guard(0, 3);
        assert!(!g.is_enabled());
        assert_eq!(first_stop(&mut g, &[1; 1000]), None);
        assert!(g.banned_next().is_empty());
        let mut g = guard(4, 0);
        assert_eq!(first_stop(&mut g, &[1; 1000]), None);
    }

    #[test]
    fn banned_next_predicts_stop() {
        let mut g = guard(4, 3);
        // a b c d a b c d a b c → the next d would make "a b c d" a third time.
        for t in [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3] {
            assert_eq!(g.push(t), LoopVerdict::Continue);
        }
        assert_eq!(g.banned_next(), vec![4]);
        assert_eq!(g.push(4), LoopVerdict::Stop);
        assert!(g.banned_next().is_empty());

        // Randomised cross-check on a small vocabulary.
        let mut state = 7u64;
        for (n, r) in [(1, 2), (2, 3), (3, 2), (4, 3), (5, 4)] {
            for _ in 0..30 {
                let mut g = guard(n, r);
                loop {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let t = ((state >> 33) % 3) as u32;
                    let banned = g.banned_next();
                    let verdict = g.push(t);
                    assert_eq!(banned.contains(&t), verdict == LoopVerdict::Stop);
                    if verdict == LoopVerdict::Stop {
                        break;
                    }
                }
            }
        }
    }
}
