//! Training data: the normalised example format (and, as they land, the sources that
//! produce it).

mod example;

pub use example::{Example, ExampleError};
