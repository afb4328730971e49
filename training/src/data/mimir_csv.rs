//! The Mimir tutoring CSV: `Prompt, Model Response, Issues, Ideal Response`. The ideal
//! response is the training target; the weaker model response and its issues go to `meta`.

use std::collections::BTreeMap;

use super::source::{DataError, Loaded};
use super::Example;

/// The column holding the student's message.
pub const PROMPT: &str = "Prompt";
/// The column holding a weaker reply (kept in `meta.model_response`).
pub const MODEL_RESPONSE: &str = "Model Response";
/// The column saying what is wrong with the weaker reply (kept in `meta.issues`).
pub const ISSUES: &str = "Issues";
/// The column holding the reply to learn.
pub const IDEAL_RESPONSE: &str = "Ideal Response";

/// Reads a Mimir CSV from `text` (named `source` in reports). Columns are found by name
/// (case and surrounding spaces ignored); `Prompt` and `Ideal Response` are required. A row
/// with the wrong number of fields is malformed; one whose prompt or ideal response is blank
/// is counted as empty.
pub fn parse_mimir_csv(text: &str, source: &str, system: &str) -> Result<Loaded, DataError> {
    let csv_error = |e: csv::Error| DataError::Csv {
        source_name: source.to_owned(),
        problem: e.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(csv_error)?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let column = |name: &'static str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let required = |name| {
        column(name).ok_or_else(|| DataError::MissingColumn {
            source_name: source.to_owned(),
            column: name,
            found: header.clone(),
        })
    };
    let (prompt, ideal) = (required(PROMPT)?, required(IDEAL_RESPONSE)?);
    let meta_columns = [
        ("model_response", column(MODEL_RESPONSE)),
        ("issues", column(ISSUES)),
    ];

    let mut loaded = Loaded::new(source);
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                loaded.malformed(line, e.to_string());
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        if record.iter().all(|field| field.trim().is_empty()) {
            loaded.empty += 1;
            continue;
        }
        if record.len() != header.len() {
            loaded.malformed(
                line,
                format!(
                    "expected {} fields, found {} (an unbalanced quote or a stray comma?)",
                    header.len(),
                    record.len()
                ),
            );
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or_default().trim();
        let mut example = Example::new("", field(prompt), field(ideal));
        example.meta = meta_columns
            .iter()
            .filter_map(|(key, index)| index.map(|i| ((*key).to_owned(), field(i).to_owned())))
            .filter(|(_, value)| !value.is_empty())
            .collect::<BTreeMap<_, _>>();
        loaded.push(line, example, system);
    }
    Ok(loaded)
}
