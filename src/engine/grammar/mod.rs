//! Grammar-constrained decoding: a JSON-schema subset compiled to a per-step token mask, so
//! a constrained reply always parses and matches its schema.
//!
//! - [`Grammar::from_schema`] compiles the subset described in [`schema`](self) (objects,
//!   arrays, strings with length bounds, numbers, integers, booleans, null, `enum`,
//!   `anyOf` / nullable);
//! - [`MatchState`] feeds a text byte by byte through the compiled grammar (a pushdown
//!   stack that is `Copy`, so cloning a state is a memcpy);
//! - [`TokenVocab`] and [`GrammarMasker`] turn the state into the set of token ids whose
//!   bytes it accepts, cached per state; [`JsonConstraint`] applies that set to the logits
//!   before sampling (`-inf` elsewhere; end of turn only once the value is complete);
//! - [`generate_json`] runs a chat prompt through the model under the constraint and
//!   returns the parsed value.

mod json;
mod matcher;
mod schema;
mod token_mask;

use thiserror::Error;

pub use json::{generate_json, JsonError};
pub use matcher::{MatchState, Rejected};
pub use schema::Grammar;
pub use token_mask::{GrammarMasker, JsonConstraint, TokenVocab};

/// A schema outside the supported subset.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("JSON schema at {path}: {problem}")]
pub struct GrammarError {
    /// JSON pointer of the offending part (`/properties/kind`), `/` for the root.
    pub path: String,
    /// What is wrong with it.
    pub problem: String,
}

impl GrammarError {
    fn schema(path: &str, problem: String) -> Self {
        Self {
            path: if path.is_empty() {
                "/".into()
            } else {
                path.into()
            },
            problem,
        }
    }
}
