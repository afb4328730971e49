//! The one error type of the tokenizer layer.

/// Everything that can go wrong while building or using a [`super::Tokenizer`].
///
/// Every variant names `origin`: the source the tokenizer was built from (a file
/// name or URL given by the caller), so a message read in a log says which model
/// it is about.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenizerError {
    /// The bytes are not a `tokenizer.json` the `tokenizers` crate can load.
    #[error("{origin}: cannot parse tokenizer JSON: {message}")]
    Parse {
        /// Where the JSON came from.
        origin: String,
        /// What the JSON parser reported.
        message: String,
    },

    /// `tokenizer.ggml.model` names a tokenizer type this layer does not build.
    #[error(
        "{origin}: unsupported tokenizer.ggml.model {model:?} (supported: \"llama\", \"gpt2\")"
    )]
    UnsupportedModel {
        /// Where the GGUF metadata came from.
        origin: String,
        /// The model type found in the metadata.
        model: String,
    },

    /// `tokenizer.ggml.pre` names a pre-tokenizer whose split rules are not known here.
    #[error(
        "{origin}: unsupported tokenizer.ggml.pre {pre:?} for a gpt2 vocabulary (supported: {supported})"
    )]
    UnsupportedPreTokenizer {
        /// Where the GGUF metadata came from.
        origin: String,
        /// The pre-tokenizer name found in the metadata.
        pre: String,
        /// The names that are supported, comma separated.
        supported: String,
    },

    /// A `tokenizer.json` describes a tokenizer GGUF metadata cannot express.
    #[error("{origin}: cannot write this tokenizer.json as GGUF metadata: {problem}")]
    UnsupportedJson {
        /// Where the JSON came from.
        origin: String,
        /// What it holds that has no GGUF form.
        problem: String,
    },

    /// The GGUF vocabulary metadata is inconsistent or incomplete.
    #[error("{origin}: invalid tokenizer metadata: {problem}")]
    InvalidVocab {
        /// Where the GGUF metadata came from.
        origin: String,
        /// What is wrong, with the offending value.
        problem: String,
    },

    /// The `tokenizers` crate refused the pieces assembled from the metadata.
    #[error("{origin}: cannot build tokenizer: {message}")]
    Build {
        /// Where the vocabulary came from.
        origin: String,
        /// What the `tokenizers` crate reported.
        message: String,
    },

    /// Encoding a text failed inside the `tokenizers` crate.
    #[error("{origin}: cannot encode a {text_bytes}-byte text: {message}")]
    Encode {
        /// Which tokenizer was used.
        origin: String,
        /// Length of the text in bytes (the text itself may be private).
        text_bytes: usize,
        /// What the `tokenizers` crate reported.
        message: String,
    },

    /// Decoding ids failed inside the `tokenizers` crate.
    #[error("{origin}: cannot decode {count} token ids: {message}")]
    Decode {
        /// Which tokenizer was used.
        origin: String,
        /// How many ids were being decoded.
        count: usize,
        /// What the `tokenizers` crate reported.
        message: String,
    },

    /// A token id at or past the end of the vocabulary was given to decode.
    #[error("{origin}: token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownTokenId {
        /// Which tokenizer was used.
        origin: String,
        /// The offending id.
        id: u32,
        /// Number of ids the vocabulary has.
        vocab_size: usize,
    },
}
