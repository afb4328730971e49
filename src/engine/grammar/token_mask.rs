//! Per-step token masks: which ids of the vocabulary may come next under a grammar.
//!
//! [`TokenVocab`] decodes every token's bytes once and lays them out as a byte trie in
//! preorder, so a mask is one linear walk: each node's matcher state is its parent's state
//! fed one byte, and a rejected byte skips the node's whole subtree (every token sharing
//! that prefix). [`GrammarMasker`] caches masks by matcher state (with string bounds
//! clamped to the longest token), so the walk runs once per distinct state and a cached
//! step costs one hash lookup.

use std::collections::HashMap;
use std::sync::Arc;

use super::matcher::MatchState;
use super::schema::Grammar;
use crate::engine::generate::TokenConstraint;
use crate::engine::tokenizer::Tokenizer;

/// Masks kept per [`GrammarMasker`] before the cache starts again (a mask is one bit per id:
/// 4 KB for Phi-3's 32k vocabulary).
const CACHE_LIMIT: usize = 1024;

/// The vocabulary as bytes, in a trie for mask computation.
pub struct TokenVocab {
    /// Ids the tokenizer knows (bits per mask).
    size: usize,
    /// Each id's bytes; empty for special tokens and ids without text.
    tokens: Vec<Box<[u8]>>,
    /// Trie nodes in preorder; node 0 is the root (no byte).
    node_byte: Vec<u8>,
    node_depth: Vec<u16>,
    /// The first node after this node's subtree.
    node_skip: Vec<u32>,
    /// `ids[ids_start[n]..ids_start[n + 1]]` end at node `n`.
    ids_start: Vec<u32>,
    ids: Vec<u32>,
    /// Bytes of the longest token.
    longest: usize,
}

impl std::fmt::Debug for TokenVocab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVocab")
            .field("size", &self.size)
            .field("trie_nodes", &self.node_byte.len())
            .field("longest", &self.longest)
            .finish()
    }
}

impl TokenVocab {
    /// Decodes every token of `tokenizer` ([`Tokenizer::token_bytes`]) and builds the trie.
    pub fn new(tokenizer: &Tokenizer) -> Self {
        let size = tokenizer.vocab_size();
        let tokens: Vec<Box<[u8]>> = (0..size as u32)
            .map(|id| tokenizer.token_bytes(id).unwrap_or_default().into())
            .collect();
        let mut order: Vec<u32> = (0..size as u32)
            .filter(|&id| !tokens[id as usize].is_empty())
            .collect();
        order.sort_by(|&a, &b| tokens[a as usize].cmp(&tokens[b as usize]));

        let mut vocab = Self {
            size,
            node_byte: vec![0],
            node_depth: vec![0],
            node_skip: Vec::new(),
            ids_start: vec![0],
            ids: Vec::with_capacity(order.len()),
            longest: 0,
            tokens: Vec::new(),
        };
        // Sorted order creates nodes in preorder; `path[k]` is the node at depth k + 1.
        let mut path: Vec<u32> = Vec::new();
        let mut previous: &[u8] = &[];
        for &id in &order {
            let bytes = &tokens[id as usize];
            let shared = previous
                .iter()
                .zip(bytes.iter())
                .take_while(|(a, b)| a == b)
                .count();
            path.truncate(shared);
            for (depth, &byte) in bytes.iter().enumerate().skip(shared) {
                path.push(vocab.node_byte.len() as u32);
                vocab.node_byte.push(byte);
                vocab.node_depth.push(depth as u16 + 1);
                vocab.ids_start.push(vocab.ids.len() as u32);
            }
            vocab.ids.push(id);
            vocab.longest = vocab.longest.max(bytes.len());
            previous = bytes;
        }
        vocab.ids_start.push(vocab.ids.len() as u32);
        vocab.node_skip = subtree_ends(&vocab.node_depth);
        vocab.tokens = tokens;
        vocab
    }

    /// Ids the masks cover.
    pub fn len(&self) -> usize {
        self.size
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// The bytes of `id`, empty for special tokens.
    pub fn token(&self, id: u32) -> &[u8] {
        self.tokens.get(id as usize).map_or(&[], |t| t)
    }

    /// Bytes of the longest token.
    pub fn longest_token(&self) -> usize {
        self.longest
    }

    /// Sets in `mask` (one bit per id) every token whose bytes `grammar` accepts after
    /// `state`.
    fn fill_mask(&self, grammar: &Grammar, state: &MatchState, mask: &mut Vec<u64>) {
        mask.clear();
        mask.resize(self.size.div_ceil(64), 0);
        let mut states = vec![*state; self.longest + 1];
        let mut node = 1;
        while node < self.node_byte.len() {
            let depth = self.node_depth[node] as usize;
            let mut next = states[depth - 1];
            if next.feed(grammar, self.node_byte[node]).is_ok() {
                states[depth] = next;
                let (from, to) = (self.ids_start[node], self.ids_start[node + 1]);
                for &id in &self.ids[from as usize..to as usize] {
                    mask[id as usize / 64] |= 1 << (id % 64);
                }
                node += 1;
            } else {
                node = self.node_skip[node] as usize;
            }
        }
    }
}

/// For each node of a preorder trie given by depths, the index after its subtree.
fn subtree_ends(depths: &[u16]) -> Vec<u32> {
    let mut ends = vec![depths.len() as u32; depths.len()];
    let mut open: Vec<usize> = Vec::new();
    for (i, &d) in depths.iter().enumerate() {
        while let Some(&top) = open.last() {
            if depths[top] >= d {
                ends[top] = i as u32;
                open.pop();
            } else {
                break;
            }
        }
        open.push(i);
    }
    ends
}

/// A grammar bound to a vocabulary, with a cache of the masks computed so far. Keep one per
/// schema and model and reuse it across replies.
#[derive(Debug)]
pub struct GrammarMasker {
    grammar: Arc<Grammar>,
    vocab: Arc<TokenVocab>,
    cache: HashMap<MatchState, usize>,
    masks: Vec<Vec<u64>>,
    computed: usize,
}

impl GrammarMasker {
    /// A masker for `grammar` over `vocab` (which must be the generating model's).
    pub fn new(grammar: Grammar, vocab: Arc<TokenVocab>) -> Self {
        Self {
            grammar: Arc::new(grammar),
            vocab,
            cache: HashMap::new(),
            masks: Vec::new(),
            computed: 0,
        }
    }

    /// The grammar.
    pub fn grammar(&self) -> &Grammar {
        &self.grammar
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &TokenVocab {
        &self.vocab
    }

    /// How many masks were computed (cache misses) so far.
    pub fn computed_masks(&self) -> usize {
        self.computed
    }

    /// The mask (one bit per id) of the tokens allowed after `state`, cached.
    pub fn allowed(&mut self, state: &MatchState) -> &[u64] {
        let key = state.mask_key(self.vocab.longest as u32);
        let index = match self.cache.get(&key) {
            Some(&i) => i,
            None => {
                if self.masks.len() >= CACHE_LIMIT {
                    self.cache.clear();
                    self.masks.clear();
                }
                let mut mask = Vec::new();
                self.vocab.fill_mask(&self.grammar, state, &mut mask);
                self.computed += 1;
                self.masks.push(mask);
                self.cache.insert(key, self.masks.len() - 1);
                self.masks.len() - 1
            }
        };
        &self.masks[index]
    }

    /// The mask after `state` computed afresh, bypassing the cache (for measurements).
    pub fn compute_uncached(&self, state: &MatchState) -> Vec<u64> {
        let mut mask = Vec::new();
        self.vocab.fill_mask(&self.grammar, state, &mut mask);
        mask
    }

    /// A constraint for one reply, starting before the first byte.
    pub fn constraint(&mut self) -> JsonConstraint<'_> {
        let state = MatchState::new(&self.grammar);
        JsonConstraint {
            masker: self,
            state,
            text: Vec::new(),
        }
    }
}

/// The [`TokenConstraint`] of one constrained reply: masks each step's logits and keeps the
/// bytes chosen so far.
#[derive(Debug)]
pub struct JsonConstraint<'m> {
    masker: &'m mut GrammarMasker,
    state: MatchState,
    text: Vec<u8>,
}

impl JsonConstraint<'_> {
    /// The bytes generated so far (exactly what the matcher accepted).
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// The matcher state.
    pub fn state(&self) -> &MatchState {
        &self.state
    }
}

impl TokenConstraint for JsonConstraint<'_> {
    fn mask(&mut self, logits: &mut [f32], stop_ids: &[u32]) {
        let complete = self.state.is_complete();
        let kept: Vec<(usize, f32)> = stop_ids
            .iter()
            .map(|&id| id as usize)
            .filter(|&id| complete && id < logits.len())
            .map(|id| (id, logits[id]))
            .collect();
        let allowed = self.masker.allowed(&self.state);
        for (id, logit) in logits.iter_mut().enumerate() {
            let bit = allowed
                .get(id / 64)
                .is_some_and(|w| w >> (id % 64) & 1 == 1);
            if !bit {
                *logit = f32::NEG_INFINITY;
            }
        }
        for (id, logit) in kept {
            logits[id] = logit;
        }
    }

    fn accept(&mut self, id: u32) -> Result<bool, String> {
        let bytes = self.masker.vocab.token(id);
        let mut next = self.state;
        next.feed_all(&self.masker.grammar, bytes).map_err(|_| {
            format!(
                "token {id} ({:?}) does not continue {:?}",
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&self.text)
            )
        })?;
        if bytes.is_empty() {
            return Err(format!("token {id} has no text"));
        }
        self.state = next;
        self.text.extend_from_slice(bytes);
        Ok(self.state.is_finished())
    }
}
