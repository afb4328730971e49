//! Corrupted JSON inputs: generated corruptions of the JSON files the engine and the app read
//! (a Hugging Face `config.json`, a PEFT `adapter_config.json`, the generation settings of a
//! `model_config.json`, and `public/catalog.json`). Truncations at many offsets, values of
//! the wrong type, absurd numbers, deep nesting and invalid UTF-8 must each give an error that
//! names the file, never a panic. Unknown keys are errors in our own formats and ignored in
//! Hugging Face's, which gain keys with every transformers and PEFT release.

use std::panic::{catch_unwind, AssertUnwindSafe};

use mimir::catalog::Catalog;
use mimir::engine::generation_config::GenerationConfig;
use mimir::engine::hf::model_config;
use mimir::engine::lora::AdapterConfig;
use serde_json::{json, Value};

/// One JSON input: its name in errors, a valid document, a key it cannot do without, its
/// parser, and whether unknown keys are refused.
struct Input {
    file: &'static str,
    valid: Value,
    required: &'static str,
    parse: fn(&str, &str) -> Result<(), String>,
    strict_keys: bool,
}

fn inputs() -> Vec<Input> {
    let model_config_file: Value = serde_json::from_str(include_str!(
        "../training/configs/smollm2-135m-instruct/model_config.json"
    ))
    .unwrap();
    vec![
        Input {
            file: "microsoft/Phi-3-mini-4k-instruct/config.json",
            valid: json!({
                "model_type": "phi3",
                "hidden_size": 3072,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 32,
                "intermediate_size": 8192,
                "vocab_size": 32064,
                "max_position_embeddings": 4096,
                "rms_norm_eps": 1e-5,
                "rope_theta": 10000.0,
                "rope_scaling": null,
                "tie_word_embeddings": false
            }),
            required: "hidden_size",
            parse: |text, file| {
                model_config(text, file)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
            strict_keys: false,
        },
        Input {
            file: "jdesiree/Mimir-Phi-3.5/adapter_config.json",
            valid: json!({
                "peft_type": "LORA",
                "r": 16,
                "lora_alpha": 32.0,
                "lora_dropout": 0.05,
                "target_modules": ["qkv_proj", "o_proj"],
                "use_rslora": false,
                "bias": "none",
                "fan_in_fan_out": false,
                "base_model_name_or_path": "microsoft/Phi-3-mini-4k-instruct"
            }),
            required: "r",
            parse: |text, file| {
                AdapterConfig::from_json(text, file)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
            strict_keys: false,
        },
        Input {
            file: "smollm2-135m-instruct/model_config.json: generation",
            valid: model_config_file["generation"].clone(),
            required: "temperature",
            parse: |text, file| {
                GenerationConfig::from_json(text, file)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
            strict_keys: true,
        },
        Input {
            file: "public/catalog.json",
            valid: serde_json::from_str(include_str!("../public/catalog.json")).unwrap(),
            required: "hub",
            parse: |text, file| {
                Catalog::from_json(text, file)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
            strict_keys: true,
        },
    ]
}

/// Parses `text`, turning a panic into a failure that says which case it was.
fn outcome(input: &Input, case: &str, text: &str) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| (input.parse)(text, input.file)))
        .unwrap_or_else(|_| panic!("{}: {case}: the parser panicked", input.file))
}

/// Why `text` did not give an error naming the file, if it did not.
fn not_refused(input: &Input, case: &str, text: &str) -> Option<String> {
    match outcome(input, case, text) {
        Ok(()) => Some(format!("{}: {case}: accepted {text:.160}", input.file)),
        Err(message) if !message.contains(input.file) => Some(format!(
            "{}: {case}: the error does not name the file: {message}",
            input.file
        )),
        Err(_) => None,
    }
}

/// Checks every case and reports all that were not refused at once.
struct Cases(Vec<String>, usize);

impl Cases {
    fn new() -> Cases {
        Cases(Vec::new(), 0)
    }

    fn refuse(&mut self, input: &Input, case: &str, text: &str) {
        self.1 += 1;
        self.0.extend(not_refused(input, case, text));
    }

    /// Fails listing every case that was not refused; returns how many cases ran.
    fn check(self) -> usize {
        assert!(self.0.is_empty(), "{}", self.0.join("\n"));
        self.1
    }
}

/// Every value of `doc` with its path: `(path, value)`, objects and arrays included.
fn leaves(doc: &Value, path: Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    match doc {
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            let mut p = path.clone();
            p.push(k.clone());
            out.push((p.clone(), v.clone()));
            leaves(v, p, out);
        }),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| {
            let mut p = path.clone();
            p.push(i.to_string());
            out.push((p.clone(), v.clone()));
            leaves(v, p, out);
        }),
        _ => {}
    }
}

fn replaced(doc: &Value, path: &[String], value: Value) -> Value {
    let mut doc = doc.clone();
    let pointer = format!("/{}", path.join("/"));
    *doc.pointer_mut(&pointer).expect("the path exists") = value;
    doc
}

/// A value of another JSON type than `value`.
fn wrong_type(value: &Value) -> Value {
    match value {
        Value::String(_) => json!(12345),
        Value::Number(_) => json!("12"),
        Value::Bool(_) => json!("yes"),
        Value::Array(_) => json!({"not": "a list"}),
        Value::Object(_) => json!(["not", "an", "object"]),
        Value::Null => json!({"not": "null"}),
    }
}

/// Numbers no field of these files can take, as raw JSON text (some are not representable):
/// beyond f64, and hugely negative.
const ABSURD_NUMBERS: [&str; 2] = ["1e400", "-1e308"];
/// Numbers no count (an integer field) can take: negative, beyond u64, fractional.
const ABSURD_COUNTS: [&str; 3] = ["-1", "18446744073709551616", "2.5"];

#[test]
fn truncations_at_every_tenth_of_the_file_and_near_its_ends_are_refused() {
    let mut cases = Cases::new();
    for input in inputs() {
        let text = serde_json::to_string_pretty(&input.valid).unwrap();
        outcome(&input, "the valid document", &text)
            .unwrap_or_else(|e| panic!("{}: the valid document is refused: {e}", input.file));
        let len = text.len();
        let mut offsets: Vec<usize> = (0..10).map(|k| k * len / 10).collect();
        offsets.extend([1, 2, len - 2, len - 1]);
        for at in offsets {
            cases.refuse(&input, &format!("truncated at {at}"), &text[..at]);
        }
    }
    assert!(cases.check() >= 50);
}

#[test]
fn wrong_types_and_absurd_numbers_are_refused() {
    let mut cases = Cases::new();
    for input in inputs() {
        let mut values = Vec::new();
        leaves(&input.valid, Vec::new(), &mut values);
        for (path, value) in &values {
            let doc = replaced(&input.valid, path, wrong_type(value));
            let case = format!("{} as {}", path.join("."), wrong_type(value));
            cases.refuse(&input, &case, &doc.to_string());
            if value.is_number() {
                let counts: &[&str] = if value.is_u64() { &ABSURD_COUNTS } else { &[] };
                for absurd in ABSURD_NUMBERS.iter().chain(counts) {
                    let marker = json!("\u{1}absurd\u{1}");
                    let text = replaced(&input.valid, path, marker.clone())
                        .to_string()
                        .replace(&marker.to_string(), absurd);
                    cases.refuse(&input, &format!("{} = {absurd}", path.join(".")), &text);
                }
            }
        }
    }
    assert!(cases.check() >= 100);
}

#[test]
fn out_of_range_settings_are_refused() {
    let all = inputs();
    let by_file = |name: &str| all.iter().find(|i| i.file.contains(name)).unwrap();
    let mut cases = Cases::new();
    for (file, key, value) in [
        ("config.json", "hidden_size", json!(0)),
        ("config.json", "hidden_size", json!(1u64 << 40)),
        ("config.json", "num_hidden_layers", json!(1_000_000)),
        ("config.json", "vocab_size", json!(0)),
        ("config.json", "vocab_size", json!(1u64 << 40)),
        ("config.json", "max_position_embeddings", json!(0)),
        ("config.json", "rms_norm_eps", json!(0.0)),
        ("config.json", "rope_theta", json!(-10000.0)),
        ("adapter_config.json", "r", json!(0)),
        ("adapter_config.json", "lora_alpha", json!(1e308)),
        ("model_config.json", "temperature", json!(1e39)),
        ("model_config.json", "top_p", json!(1.5)),
        ("model_config.json", "context_length", json!(1)),
        ("catalog.json", "hub", json!("javascript:alert(1)")),
    ] {
        let input = by_file(file);
        let doc = replaced(&input.valid, &[key.to_string()], value.clone());
        cases.refuse(input, &format!("{key} = {value}"), &doc.to_string());
    }
    cases.check();
}

#[test]
fn unknown_keys_are_refused_in_our_formats_and_ignored_in_hugging_faces() {
    let mut cases = Cases::new();
    for input in inputs() {
        let mut doc = input.valid.clone();
        doc.as_object_mut()
            .unwrap()
            .insert("temprature_typo".into(), json!(1));
        let text = doc.to_string();
        if input.strict_keys {
            cases.refuse(&input, "an unknown key", &text);
        } else {
            outcome(&input, "an unknown key", &text)
                .unwrap_or_else(|e| panic!("{}: an extra key is refused: {e}", input.file));
        }
    }
    cases.check();
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let mut cases = Cases::new();
    for input in inputs() {
        for depth in [200, 100_000] {
            let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            cases.refuse(&input, &format!("{depth} nested arrays"), &nested);
            let first_key = input.valid.as_object().unwrap().keys().next().unwrap();
            let doc = replaced(
                &input.valid,
                std::slice::from_ref(first_key),
                json!("\u{1}"),
            );
            let text = doc.to_string().replace("\"\\u0001\"", &nested);
            cases.refuse(&input, &format!("{first_key} nested {depth} deep"), &text);
        }
    }
    cases.check();
}

#[test]
fn invalid_utf8_decoded_with_replacement_characters_is_refused() {
    // The app decodes fetched text lossily (`Response.text()`), so an invalid byte reaches the
    // parsers as U+FFFD; in a key, a number or between tokens it must be an error.
    let mut cases = Cases::new();
    for input in inputs() {
        let text = input.valid.to_string();
        let bytes = text.as_bytes();
        let key_at = text.find(&format!("\"{}\"", input.required)).unwrap() + 1;
        let colon_at = text.find(':').unwrap();
        for (case, at) in [
            ("in a required key", key_at),
            ("for the first colon", colon_at),
        ] {
            let mut corrupted = bytes.to_vec();
            corrupted[at] = 0xFF;
            let decoded = String::from_utf8_lossy(&corrupted);
            cases.refuse(&input, &format!("byte 0xFF {case}"), &decoded);
        }
        let mut leading = vec![0xC3, 0x28];
        leading.extend_from_slice(bytes);
        cases.refuse(
            &input,
            "an invalid sequence first",
            &String::from_utf8_lossy(&leading),
        );
    }
    cases.check();
}

#[test]
fn a_config_json_with_invalid_utf8_on_disk_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = inputs()[0].valid.to_string().into_bytes();
    bytes[3] = 0xFF;
    std::fs::write(dir.path().join("config.json"), bytes).unwrap();
    match mimir::engine::model::Model::from_hf_dir(
        dir.path(),
        &mimir::engine::model::LoadOptions::default(),
    ) {
        Ok(_) => panic!("a config.json with invalid UTF-8 was read"),
        Err(err) => assert!(err.to_string().contains("config.json"), "{err}"),
    }
}
