//! The one error type of the adapter boundary: every message starts with the adapter it is
//! about and names the key or tensor and the offending value.

/// Everything that can go wrong reading a PEFT LoRA adapter or fitting it to a model.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    /// `adapter_config.json` is not valid JSON, or a field has the wrong type.
    #[error("adapter {adapter}: adapter_config.json: {error}")]
    ConfigJson {
        /// The adapter's source name.
        adapter: String,
        /// What the JSON parser said.
        error: String,
    },
    /// A required key of `adapter_config.json` is absent.
    #[error("adapter {adapter}: adapter_config.json has no {key:?}")]
    MissingKey {
        /// The adapter's source name.
        adapter: String,
        /// The key.
        key: &'static str,
    },
    /// A value of `adapter_config.json` that is out of range or inconsistent.
    #[error("adapter {adapter}: adapter_config.json: {key} {value}: {why}")]
    InvalidConfig {
        /// The adapter's source name.
        adapter: String,
        /// The key.
        key: &'static str,
        /// The value found.
        value: String,
        /// Why it is refused.
        why: String,
    },
    /// A PEFT feature the engine does not implement.
    #[error("adapter {adapter}: {what} is not supported")]
    Unsupported {
        /// The adapter's source name.
        adapter: String,
        /// What is not supported, with the value found.
        what: String,
    },
    /// `adapter_model.safetensors` is unreadable (truncated, bad header, bad offsets).
    #[error("adapter {adapter}: adapter_model.safetensors: {error}")]
    Safetensors {
        /// The adapter's source name.
        adapter: String,
        /// What the safetensors parser said.
        error: String,
    },
    /// A tensor that is not a LoRA matrix of a supported module: an unknown key, a module
    /// `target_modules` does not list, a shape that is not 2-D.
    #[error("adapter {adapter}: tensor {tensor}: {why}")]
    BadTensor {
        /// The adapter's source name.
        adapter: String,
        /// The tensor name.
        tensor: String,
        /// What is wrong with it.
        why: String,
    },
    /// A tensor stored in a type other than f32, f16 or bf16.
    #[error(
        "adapter {adapter}: tensor {tensor}: dtype {dtype} is not supported (f32, f16, bf16 are)"
    )]
    UnsupportedDtype {
        /// The adapter's source name.
        adapter: String,
        /// The tensor name.
        tensor: String,
        /// The dtype found.
        dtype: String,
    },
    /// A `lora_A` without its `lora_B`, or the reverse.
    #[error("adapter {adapter}: tensor {tensor} has no matching {missing}")]
    Unpaired {
        /// The adapter's source name.
        adapter: String,
        /// The tensor that is present.
        tensor: String,
        /// The name of the one that is missing.
        missing: String,
    },
    /// A tensor whose rank (its `r` dimension) differs from the configuration's `r`.
    #[error("adapter {adapter}: tensor {tensor}: shape {found:?} has rank {rank} but adapter_config.json says r = {r}")]
    Rank {
        /// The adapter's source name.
        adapter: String,
        /// The tensor name.
        tensor: String,
        /// Its shape.
        found: [usize; 2],
        /// The rank the shape implies.
        rank: usize,
        /// The configured rank.
        r: usize,
    },
    /// A tensor whose shape does not fit the base weight it adapts.
    #[error("adapter {adapter}: tensor {tensor}: shape {found:?} but the base weight {base} needs {expected:?}")]
    Shape {
        /// The adapter's source name.
        adapter: String,
        /// The tensor name.
        tensor: String,
        /// Its shape.
        found: [usize; 2],
        /// The GGUF tensor it adapts.
        base: String,
        /// The shape that base weight implies.
        expected: [usize; 2],
    },
    /// A tensor for a layer or module the model does not have.
    #[error("adapter {adapter}: tensor {tensor}: {why}")]
    NoSuchTarget {
        /// The adapter's source name.
        adapter: String,
        /// The tensor name.
        tensor: String,
        /// What the model lacks.
        why: String,
    },
    /// A tensor operation on the adapter's weights failed.
    #[error("adapter {adapter}: tensor {tensor}: {source}")]
    Candle {
        /// The adapter's source name.
        adapter: String,
        /// The tensor name.
        tensor: String,
        /// candle's error (boxed: it is large, and rare).
        source: Box<candle_core::Error>,
    },
}
