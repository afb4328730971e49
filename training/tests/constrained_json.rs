//! Grammar-constrained decoding from a tiny random Phi-3 (the real 32k Phi-3 vocabulary,
//! random weights): 1000 samples at temperature 1 with different seeds all parse and
//! validate against the schema. A random model is the hardest case for the mask: nothing
//! but the grammar keeps its output in shape.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use mimir::engine::chat::ChatMessage;
use mimir::engine::clock::SystemClock;
use mimir::engine::generate::Session;
use mimir::engine::generation_config::GenerationConfig;
use mimir::engine::grammar::generate_json;
use mimir::engine::model::LoadOptions;
use mimir_train::tiny::{write_tiny, GgufType, TinySpec};
use serde_json::{json, Value};

const SAMPLES: u64 = 1000;

fn vocab_gguf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("shared/phi3-tokenizer/ggml-vocab-phi-3.gguf"))
        .find(|path| path.is_file())
        .expect("shared/phi3-tokenizer/ggml-vocab-phi-3.gguf in an ancestor folder")
}

/// The action schema the tutor uses (kind, subject, topic), plus a number, an integer
/// array and a boolean under short names (each forced name costs a random model several
/// tokens, and the test runs a thousand replies).
fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "kind": {"enum": ["greeting", "explain", "solve", "check_answer", "quiz_me",
                               "test_prep", "calculate", "off_topic", "other"]},
            "subject": {"type": ["string", "null"], "maxLength": 16},
            "topic": {"type": "string", "nullable": true, "maxLength": 12},
            "x": {"type": "number"},
            "n": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
            "b": {"type": "boolean"}
        },
        "required": ["kind", "subject", "topic", "x", "n", "b"]
    })
}

/// Whether `value` satisfies `schema` (the subset used above), written independently of
/// the grammar so the check does not share its bugs.
fn valid(value: &Value, schema: &Value) -> bool {
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        return options.contains(value);
    }
    if schema.get("nullable") == Some(&json!(true)) && value.is_null() {
        return true;
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return false,
    };
    types.iter().any(|ty| match (*ty, value) {
        ("null", Value::Null) | ("boolean", Value::Bool(_)) => true,
        ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        ("string", Value::String(s)) => schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_none_or(|max| s.chars().count() as u64 <= max),
        ("array", Value::Array(items)) => {
            schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_none_or(|max| items.len() as u64 <= max)
                && items.iter().all(|item| valid(item, &schema["items"]))
        }
        ("object", Value::Object(map)) => {
            let properties = schema["properties"].as_object().unwrap();
            map.len() == properties.len()
                && properties
                    .iter()
                    .all(|(name, sub)| map.get(name).is_some_and(|v| valid(v, sub)))
        }
        _ => false,
    })
}

#[test]
fn validator_rejects_what_it_should() {
    let s = schema();
    let good = json!({"kind": "solve", "subject": null, "topic": "x", "x": 0.5,
                      "n": [1, 2], "b": true});
    assert!(valid(&good, &s));
    for (field, bad) in [
        ("kind", json!("solved")),
        ("subject", json!("x".repeat(17))),
        ("topic", json!(3)),
        ("x", json!("1")),
        ("n", json!([1, 2, 3, 4])),
        ("n", json!([1.5])),
        ("b", json!(null)),
    ] {
        let mut v = good.clone();
        v[field] = bad;
        assert!(!valid(&v, &s), "{v}");
    }
}

#[test]
fn a_thousand_seeded_samples_all_parse_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_tiny(&TinySpec::phi3(), dir.path(), Some(&vocab_gguf())).unwrap();
    let path = files.gguf(GgufType::F32).unwrap();
    let mut reader = BufReader::new(File::open(path).unwrap());
    let options = LoadOptions {
        context_cap: 512,
        ..LoadOptions::default()
    };
    let mut session = Session::from_gguf(&mut reader, "tiny phi3", &options, None).unwrap();
    let schema = schema();
    let mut masker = session.json_masker(&schema).unwrap();
    let messages = [
        ChatMessage::system("Classify the student's message as JSON."),
        ChatMessage::user("What is photosynthesis?"),
    ];
    let clock = SystemClock::default();
    let mut kinds = std::collections::BTreeSet::new();
    let mut nulls = 0;
    for seed in 0..SAMPLES {
        let config = GenerationConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed,
            ..GenerationConfig::default()
        };
        let value = generate_json(&mut session, &mut masker, &messages, &config, &clock)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(valid(&value, &schema), "seed {seed}: {value}");
        kinds.insert(value["kind"].as_str().unwrap().to_owned());
        nulls += usize::from(value["subject"].is_null());
    }
    // The samples explore the grammar rather than repeat one path.
    assert!(kinds.len() >= 5, "kinds seen: {kinds:?}");
    assert!(
        nulls > 0 && nulls < SAMPLES as usize,
        "{nulls} null subjects"
    );
    eprintln!(
        "{SAMPLES} samples valid; {} masks computed, kinds {kinds:?}, {nulls} null subjects",
        masker.computed_masks()
    );
}
