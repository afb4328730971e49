//! The one error type of the GGUF boundary: every message starts with the file it is about.

use candle_core::quantized::GgmlDType;

/// Everything that can go wrong reading or writing a GGUF file.
///
/// `file` is the source name given to [`GgufFile::read`](super::GgufFile::read) (or
/// [`WRITER_LABEL`](super::WRITER_LABEL) for the writer), so a message alone says which file,
/// where in it, which key or tensor, and the offending value.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// An I/O operation on the underlying reader or writer failed.
    #[error("{file}: i/o error while {doing}: {error}")]
    Io {
        /// Source name of the file.
        file: String,
        /// What was being done, e.g. "seeking to the end".
        doing: String,
        /// The underlying error.
        #[source]
        error: std::io::Error,
    },

    /// The first four bytes are not `GGUF`.
    #[error(
        "{file}: not a GGUF file: magic bytes {found:02x?}, expected \"GGUF\" [47, 47, 55, 46]"
    )]
    BadMagic {
        /// Source name of the file.
        file: String,
        /// The bytes seen (fewer than four if the file is that short).
        found: Vec<u8>,
    },

    /// The version field is not 2 or 3.
    #[error("{file}: unsupported GGUF version {version} (this reader supports 2 and 3)")]
    UnsupportedVersion {
        /// Source name of the file.
        file: String,
        /// The version read.
        version: u32,
    },

    /// A field runs past the end of the file.
    #[error("{file}: byte {offset}: {what} needs {needed} bytes but only {available} remain")]
    Truncated {
        /// Source name of the file.
        file: String,
        /// Where the field starts.
        offset: u64,
        /// The field, e.g. "value of key general.name".
        what: String,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: u64,
    },

    /// A count (tensors, metadata entries, array elements) cannot fit in the rest of the file.
    #[error(
        "{file}: byte {offset}: {what} {count} needs at least {min_bytes} bytes but only {available} remain"
    )]
    CountTooLarge {
        /// Source name of the file.
        file: String,
        /// Where the count was read.
        offset: u64,
        /// What is counted, e.g. "tensor count".
        what: String,
        /// The count read.
        count: u64,
        /// Smallest encoding of that many items (saturated at `u64::MAX`).
        min_bytes: u64,
        /// Bytes left in the file.
        available: u64,
    },

    /// A key, string value or tensor name is not valid UTF-8.
    #[error("{file}: byte {offset}: {what} is not valid UTF-8")]
    InvalidUtf8 {
        /// Source name of the file.
        file: String,
        /// Where the string bytes start.
        offset: u64,
        /// Which string, e.g. "metadata key #3".
        what: String,
    },

    /// A metadata value type code is not one GGUF defines.
    #[error("{file}: byte {offset}: key {key}: unknown value type code {code}")]
    UnknownValueType {
        /// Source name of the file.
        file: String,
        /// Where the code was read.
        offset: u64,
        /// The metadata key.
        key: String,
        /// The code read.
        code: u32,
    },

    /// Arrays are nested deeper than [`MAX_ARRAY_DEPTH`](super::MAX_ARRAY_DEPTH).
    #[error("{file}: key {key}: arrays nested deeper than {max_depth} levels")]
    ArrayTooDeep {
        /// Source name of the file.
        file: String,
        /// The metadata key.
        key: String,
        /// The limit.
        max_depth: usize,
    },

    /// A bool value is neither 0 nor 1.
    #[error("{file}: byte {offset}: key {key}: bool byte {value} is neither 0 nor 1")]
    InvalidBool {
        /// Source name of the file.
        file: String,
        /// Where the byte was read.
        offset: u64,
        /// The metadata key.
        key: String,
        /// The byte read.
        value: u8,
    },

    /// An array mixes element types (writer only; the file format cannot express it).
    #[error("{file}: key {key}: array mixes element types {first} and {other}")]
    MixedArray {
        /// Source name of the file.
        file: String,
        /// The metadata key.
        key: String,
        /// Type of the first element.
        first: &'static str,
        /// A different element type found later.
        other: &'static str,
    },

    /// The same metadata key appears twice.
    #[error("{file}: duplicate metadata key {key}")]
    DuplicateKey {
        /// Source name of the file.
        file: String,
        /// The repeated key.
        key: String,
    },

    /// `general.alignment` is not a nonzero power-of-two `u32`.
    #[error("{file}: general.alignment is {value}, expected a nonzero power-of-two u32")]
    InvalidAlignment {
        /// Source name of the file.
        file: String,
        /// The value found, described.
        value: String,
    },

    /// The same tensor name appears twice.
    #[error("{file}: duplicate tensor name {tensor}")]
    DuplicateTensor {
        /// Source name of the file.
        file: String,
        /// The repeated name.
        tensor: String,
    },

    /// A tensor has fewer than 1 or more than [`MAX_DIMS`](super::MAX_DIMS) dimensions.
    #[error("{file}: tensor {tensor}: {n_dims} dimensions, expected 1 to 4")]
    InvalidDimCount {
        /// Source name of the file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// The dimension count found.
        n_dims: u64,
    },

    /// A tensor dimension is zero.
    #[error("{file}: tensor {tensor}: dims {dims:?} contain a zero")]
    ZeroDim {
        /// Source name of the file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// The dims as stored (ne0 first).
        dims: Vec<u64>,
    },

    /// A tensor's element count or byte size does not fit this platform's `usize`.
    #[error("{file}: tensor {tensor}: dims {dims:?} ({dtype:?}) overflow the element count or byte size")]
    SizeOverflow {
        /// Source name of the file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// The dims as stored (ne0 first).
        dims: Vec<u64>,
        /// The tensor's type.
        dtype: GgmlDType,
    },

    /// A ggml type code is unknown to this reader (or to candle).
    #[error("{file}: tensor {tensor}: unknown ggml type code {code}")]
    UnknownGgmlType {
        /// Source name of the file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// The code read.
        code: u32,
    },

    /// The first dimension is not a multiple of the type's block size.
    #[error("{file}: tensor {tensor}: ne0 {ne0} is not a multiple of the {dtype:?} block size {block_size}")]
    BlockSizeMismatch {
        /// Source name of the file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// The first (innermost) dimension.
        ne0: u64,
        /// The tensor's type.
        dtype: GgmlDType,
        /// Elements per block of that type.
        block_size: usize,
    },

    /// A tensor's data offset is not a multiple of the file's alignment.
    #[error("{file}: tensor {tensor}: data offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedOffset {
        /// Source name of the file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// The offset relative to the start of the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u64,
    },

    /// A tensor's data lies (partly) beyond the end of the file.
    #[error("{file}: tensor {tensor}: data range {start}..{end} beyond file end {file_len}")]
    DataOutOfBounds {
        /// Source name of the file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// Absolute start of the data (saturated at `u64::MAX`).
        start: u64,
        /// Absolute end of the data (saturated at `u64::MAX`).
        end: u64,
        /// Length of the file.
        file_len: u64,
    },

    /// The reader ended inside a tensor's data when loading it.
    #[error("{file}: tensor {tensor}: file ends inside data range {start}..{end}")]
    TensorDataTruncated {
        /// Source name of the file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// Absolute start of the data.
        start: u64,
        /// Absolute end of the data.
        end: u64,
    },

    /// No tensor has this name.
    #[error("{file}: no tensor named {tensor}")]
    TensorNotFound {
        /// Source name of the file.
        file: String,
        /// The name asked for.
        tensor: String,
    },

    /// A required metadata key is absent.
    #[error("{file}: missing metadata key {key}")]
    MissingKey {
        /// Source name of the file.
        file: String,
        /// The key asked for.
        key: String,
    },

    /// A metadata value has a type (or value) the getter cannot return.
    #[error("{file}: key {key}: expected {expected}, found {found}")]
    WrongType {
        /// Source name of the file.
        file: String,
        /// The key asked for.
        key: String,
        /// What the getter returns.
        expected: &'static str,
        /// The value found, described.
        found: String,
    },

    /// A tensor's data has a different length than its shape and type imply (writer only).
    #[error("{file}: tensor {tensor}: expected {expected} data bytes, got {found}")]
    DataSizeMismatch {
        /// Source name of the file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// Bytes implied by shape and type.
        expected: u64,
        /// Bytes provided.
        found: u64,
    },

    /// candle refused to build or export a tensor.
    #[error("{file}: tensor {tensor}: {error}")]
    Candle {
        /// Source name of the file.
        file: String,
        /// The tensor name.
        tensor: String,
        /// candle's error.
        #[source]
        error: Box<candle_core::Error>,
    },
}

/// Shorthand for results at the GGUF boundary.
pub type Result<T> = std::result::Result<T, GgufError>;

impl GgufError {
    /// An [`GgufError::Io`] for `file`, saying what was being done.
    pub(crate) fn io(file: &str, doing: impl Into<String>, error: std::io::Error) -> Self {
        Self::Io {
            file: file.to_owned(),
            doing: doing.into(),
            error,
        }
    }
}
