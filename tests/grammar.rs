//! Token masks over the real vocabularies (Phi-3's 32k SentencePiece, SmolLM2's 49k
//! byte-level BPE): token bytes add up to the encoded text, the trie walk allows exactly the
//! tokens a token-by-token check allows, and the time per mask is printed.

use std::fs::File;
use std::io::BufReader;
use std::sync::Arc;
use std::time::Instant;

#[path = "support/models.rs"]
mod models;

use mimir::engine::gguf::GgufFile;
use mimir::engine::grammar::{Grammar, GrammarMasker, MatchState, TokenVocab};
use mimir::engine::tokenizer::{GgufVocab, Tokenizer};
use serde_json::json;

fn phi3() -> Tokenizer {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/phi3-tokenizer/tokenizer.json"
    );
    Tokenizer::from_json_bytes(&std::fs::read(path).unwrap(), "phi3 tokenizer.json").unwrap()
}

fn smollm2() -> Tokenizer {
    let path = models::smollm2_path();
    let mut reader = BufReader::new(File::open(&path).unwrap());
    let file = GgufFile::read(&mut reader, "smollm2").unwrap();
    let vocab = GgufVocab::from_gguf(&file).unwrap();
    Tokenizer::from_gguf_vocab(&vocab, "smollm2").unwrap()
}

fn action_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {
            "kind": {"enum": ["greeting", "explain", "solve", "check_answer", "quiz_me",
                               "test_prep", "calculate", "off_topic", "other"]},
            "subject": {"type": ["string", "null"], "maxLength": 40},
            "topic": {"type": ["string", "null"], "maxLength": 60}
        },
        "required": ["kind", "subject", "topic"]
    })
}

const TEXT: &str = "Café 日本語 🎉 {\"kind\": \"solve\", \"n\": -1.5e3}\n\ttabs";

#[test]
fn token_bytes_add_up_to_the_text() {
    for (tokenizer, leading) in [(phi3(), " "), (smollm2(), "")] {
        let ids = tokenizer.encode(TEXT, false).unwrap();
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| tokenizer.token_bytes(id).unwrap())
            .collect();
        // SentencePiece prepends `▁` to the text, which decoding drops.
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!("{leading}{TEXT}"),
            "{}",
            tokenizer.source()
        );
        for &eos in tokenizer.eos_ids() {
            assert_eq!(
                tokenizer.token_bytes(eos),
                None,
                "special tokens have no text"
            );
        }
    }
}

/// States reached along a real action text, to compare masks at.
fn states_along(grammar: &Grammar, text: &str) -> Vec<MatchState> {
    let mut state = MatchState::new(grammar);
    let mut states = vec![state];
    for &b in text.as_bytes() {
        state.feed(grammar, b).unwrap();
        states.push(state);
    }
    states
}

#[test]
fn trie_masks_equal_token_by_token_checks_and_are_timed() {
    let text = r#"{"kind": "explain", "subject": "biology", "topic": null}"#;
    for tokenizer in [phi3(), smollm2()] {
        let build = Instant::now();
        let vocab = Arc::new(TokenVocab::new(&tokenizer));
        let build_ms = build.elapsed().as_secs_f64() * 1e3;
        let masker = GrammarMasker::new(
            Grammar::from_schema(&action_schema()).unwrap(),
            vocab.clone(),
        );
        let grammar = masker.grammar();
        let states = states_along(grammar, text);
        let start = Instant::now();
        let mut allowed_total = 0;
        for state in &states {
            let mask = masker.compute_uncached(state);
            for id in 0..vocab.len() as u32 {
                let bit = mask[id as usize / 64] >> (id % 64) & 1 == 1;
                let bytes = vocab.token(id);
                let mut s = *state;
                let expected = !bytes.is_empty() && s.feed_all(grammar, bytes).is_ok();
                assert_eq!(
                    bit,
                    expected,
                    "{}: token {id} {:?}",
                    tokenizer.source(),
                    String::from_utf8_lossy(bytes)
                );
                allowed_total += usize::from(bit);
            }
        }
        assert!(
            allowed_total > states.len(),
            "some tokens are allowed at every step"
        );
        // The walk alone, timed again without the brute-force check.
        let walk = Instant::now();
        for state in &states {
            std::hint::black_box(masker.compute_uncached(state));
        }
        let per_mask_ms = walk.elapsed().as_secs_f64() * 1e3 / states.len() as f64;
        eprintln!(
            "{}: {} ids, trie built in {build_ms:.1} ms, {per_mask_ms:.2} ms per uncached mask \
             ({} states, checks took {:.0} ms)",
            tokenizer.source(),
            vocab.len(),
            states.len(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
}
