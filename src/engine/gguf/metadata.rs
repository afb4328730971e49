//! Typed metadata getters whose errors name the file and the key.

use super::{GgufError, GgufFile, Result, Value};

impl GgufFile {
    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata_index
            .get(key)
            .and_then(|&i| self.metadata.get(i))
            .map(|(_, value)| value)
    }

    /// The integer under `key` as a `u32`; any integer type is accepted if the value fits.
    pub fn u32(&self, key: &str) -> Result<u32> {
        let value = self.require(key)?;
        value
            .as_u32()
            .ok_or_else(|| self.wrong_type(key, "an integer in u32 range", value))
    }

    /// The float under `key` as an `f32`; `f64` values are rounded.
    pub fn f32(&self, key: &str) -> Result<f32> {
        let value = self.require(key)?;
        value
            .as_f32()
            .ok_or_else(|| self.wrong_type(key, "an f32 or f64", value))
    }

    /// The string under `key`.
    pub fn str(&self, key: &str) -> Result<&str> {
        let value = self.require(key)?;
        value
            .as_str()
            .ok_or_else(|| self.wrong_type(key, "a string", value))
    }

    /// The array of strings under `key` (e.g. `tokenizer.ggml.tokens`).
    pub fn string_array(&self, key: &str) -> Result<Vec<&str>> {
        self.array(key, "an array of strings", Value::as_str)
    }

    /// The array of floats under `key` as `f32`s (e.g. `tokenizer.ggml.scores`).
    pub fn f32_array(&self, key: &str) -> Result<Vec<f32>> {
        self.array(key, "an array of f32 or f64", Value::as_f32)
    }

    /// The array of integers under `key` as `i32`s (e.g. `tokenizer.ggml.token_type`).
    pub fn i32_array(&self, key: &str) -> Result<Vec<i32>> {
        self.array(key, "an array of integers in i32 range", Value::as_i32)
    }

    /// The model architecture, `general.architecture` (e.g. "llama", "phi3"), which prefixes
    /// the model's hyperparameter keys.
    pub fn architecture(&self) -> Result<&str> {
        self.str("general.architecture")
    }

    fn require(&self, key: &str) -> Result<&Value> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            file: self.source.clone(),
            key: key.to_owned(),
        })
    }

    fn array<'a, T>(
        &'a self,
        key: &str,
        expected: &'static str,
        convert: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Vec<T>> {
        let value = self.require(key)?;
        let items = value
            .as_array()
            .ok_or_else(|| self.wrong_type(key, expected, value))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                convert(item).ok_or_else(|| {
                    let found = format!("element {i} is {}", item.describe());
                    GgufError::WrongType {
                        file: self.source.clone(),
                        key: key.to_owned(),
                        expected,
                        found,
                    }
                })
            })
            .collect()
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &Value) -> GgufError {
        GgufError::WrongType {
            file: self.source.clone(),
            key: key.to_owned(),
            expected,
            found: found.describe(),
        }
    }
}
