//! JSONL conversations: each line is `{"messages": [{"role", "content"}, …]}` (the
//! normalised format, `meta` allowed) or `{"prompt": "…", "response": "…"}`.

use std::collections::BTreeMap;

use mimir::engine::chat::ChatMessage;
use serde::Deserialize;

use super::source::Loaded;
use super::Example;

/// The two line shapes accepted.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Messages {
        messages: Vec<ChatMessage>,
        #[serde(default)]
        meta: BTreeMap<String, String>,
    },
    Pair {
        prompt: String,
        response: String,
    },
}

/// Reads JSONL from `text` (named `source` in reports). Blank lines are skipped; a line that
/// is not JSON, or is JSON of neither shape, is malformed; a blank prompt, response or
/// message is counted as empty.
pub fn parse_jsonl(text: &str, source: &str, system: &str) -> Loaded {
    let mut loaded = Loaded::new(source);
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(raw) {
            Ok(value) => value,
            Err(e) => {
                loaded.malformed(line, format!("not JSON: {e}"));
                continue;
            }
        };
        match Line::deserialize(&value) {
            Ok(Line::Messages { messages, meta }) => {
                loaded.push(line, Example { messages, meta }, system)
            }
            Ok(Line::Pair { prompt, response }) => {
                loaded.push(line, Example::new("", &prompt, &response), system)
            }
            Err(_) => loaded.malformed(line, shape_problem(&value)),
        }
    }
    loaded
}

/// Why `value` is neither line shape, as precisely as can be said.
fn shape_problem(value: &serde_json::Value) -> String {
    const EXPECTED: &str =
        r#"expected {"messages": [...]} or {"prompt": "...", "response": "..."}"#;
    let Some(object) = value.as_object() else {
        return format!("{EXPECTED}, found {}", kind(value));
    };
    if let Some(messages) = object.get("messages") {
        return match serde_json::from_value::<Vec<ChatMessage>>(messages.clone()) {
            Err(e) => format!("\"messages\": {e}"),
            Ok(_) => "\"meta\" must be an object of strings".to_owned(),
        };
    }
    for key in ["prompt", "response"] {
        match object.get(key) {
            None => return format!("{EXPECTED}: no \"{key}\""),
            Some(v) if !v.is_string() => return format!("\"{key}\" is {}, not a string", kind(v)),
            Some(_) => {}
        }
    }
    EXPECTED.to_owned()
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}
