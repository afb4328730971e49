//! Tutor intelligence: classify the student's message into a structured [`Action`], pick
//! the tutoring strategy for it, call a tool when the message needs one, and build the
//! messages the reply is generated from ([`Tutor::plan_turn`]).
//!
//! Platform-neutral: runs in the browser worker and natively (`mimir-train eval-actions`).

pub mod action;
pub mod strategy;
pub mod turn;

pub use action::{
    classify_by_rules, Action, ActionError, ActionKind, ActionSource, Classified, Classifier,
    Opening, SUBJECTS,
};
pub use strategy::snippet;
pub use turn::{TurnError, TurnInput, TurnPlan, Tutor};
