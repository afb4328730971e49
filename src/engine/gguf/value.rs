//! GGUF metadata values and their on-disk type codes.

/// One metadata value, mirroring the GGUF value types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `GGUF_TYPE_UINT8` (code 0).
    U8(u8),
    /// `GGUF_TYPE_INT8` (code 1).
    I8(i8),
    /// `GGUF_TYPE_UINT16` (code 2).
    U16(u16),
    /// `GGUF_TYPE_INT16` (code 3).
    I16(i16),
    /// `GGUF_TYPE_UINT32` (code 4).
    U32(u32),
    /// `GGUF_TYPE_INT32` (code 5).
    I32(i32),
    /// `GGUF_TYPE_UINT64` (code 10).
    U64(u64),
    /// `GGUF_TYPE_INT64` (code 11).
    I64(i64),
    /// `GGUF_TYPE_FLOAT32` (code 6).
    F32(f32),
    /// `GGUF_TYPE_FLOAT64` (code 12).
    F64(f64),
    /// `GGUF_TYPE_BOOL` (code 7): one byte, 0 or 1.
    Bool(bool),
    /// `GGUF_TYPE_STRING` (code 8): u64 length then UTF-8 bytes, no terminator.
    String(String),
    /// `GGUF_TYPE_ARRAY` (code 9): element type code, u64 length, elements. All elements share
    /// one type; arrays may nest up to [`MAX_ARRAY_DEPTH`] levels.
    Array(Vec<Value>),
}

/// Deepest array nesting accepted: an array of arrays is fine, a third level is rejected.
pub const MAX_ARRAY_DEPTH: usize = 2;

/// The type of a [`Value`], with its GGUF type code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// See [`Value::U8`].
    U8,
    /// See [`Value::I8`].
    I8,
    /// See [`Value::U16`].
    U16,
    /// See [`Value::I16`].
    I16,
    /// See [`Value::U32`].
    U32,
    /// See [`Value::I32`].
    I32,
    /// See [`Value::U64`].
    U64,
    /// See [`Value::I64`].
    I64,
    /// See [`Value::F32`].
    F32,
    /// See [`Value::F64`].
    F64,
    /// See [`Value::Bool`].
    Bool,
    /// See [`Value::String`].
    String,
    /// See [`Value::Array`].
    Array,
}

impl ValueType {
    /// The type for a GGUF type code, or `None` for codes GGUF does not define.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            0 => Self::U8,
            1 => Self::I8,
            2 => Self::U16,
            3 => Self::I16,
            4 => Self::U32,
            5 => Self::I32,
            6 => Self::F32,
            7 => Self::Bool,
            8 => Self::String,
            9 => Self::Array,
            10 => Self::U64,
            11 => Self::I64,
            12 => Self::F64,
            _ => return None,
        })
    }

    /// The GGUF type code.
    pub fn code(self) -> u32 {
        match self {
            Self::U8 => 0,
            Self::I8 => 1,
            Self::U16 => 2,
            Self::I16 => 3,
            Self::U32 => 4,
            Self::I32 => 5,
            Self::F32 => 6,
            Self::Bool => 7,
            Self::String => 8,
            Self::Array => 9,
            Self::U64 => 10,
            Self::I64 => 11,
            Self::F64 => 12,
        }
    }

    /// Short lower-case name, as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "u8",
            Self::I8 => "i8",
            Self::U16 => "u16",
            Self::I16 => "i16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::U64 => "u64",
            Self::I64 => "i64",
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::Bool => "bool",
            Self::String => "string",
            Self::Array => "array",
        }
    }

    /// Fewest bytes one value of this type takes on disk: the bound that lets a reader reject
    /// an array length before allocating for it.
    pub(crate) fn min_encoded_size(self) -> u64 {
        match self {
            Self::U8 | Self::I8 | Self::Bool => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 => 8,
            // u64 length, empty string
            Self::String => 8,
            // u32 element type + u64 length, empty array
            Self::Array => 12,
        }
    }
}

impl Value {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::U8(_) => ValueType::U8,
            Self::I8(_) => ValueType::I8,
            Self::U16(_) => ValueType::U16,
            Self::I16(_) => ValueType::I16,
            Self::U32(_) => ValueType::U32,
            Self::I32(_) => ValueType::I32,
            Self::U64(_) => ValueType::U64,
            Self::I64(_) => ValueType::I64,
            Self::F32(_) => ValueType::F32,
            Self::F64(_) => ValueType::F64,
            Self::Bool(_) => ValueType::Bool,
            Self::String(_) => ValueType::String,
            Self::Array(_) => ValueType::Array,
        }
    }

    /// The value as an `i64` if it is an integer that fits (any width and signedness).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::I8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::U64(v) => i64::try_from(v).ok(),
            Self::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a `u32` if it is an integer in `0..=u32::MAX`.
    pub fn as_u32(&self) -> Option<u32> {
        match *self {
            Self::U64(v) => u32::try_from(v).ok(),
            _ => self.as_i64().and_then(|v| u32::try_from(v).ok()),
        }
    }

    /// The value as an `i32` if it is an integer in `i32` range.
    pub fn as_i32(&self) -> Option<i32> {
        self.as_i64().and_then(|v| i32::try_from(v).ok())
    }

    /// The value as an `f32` if it is an `F32` or `F64` (the latter rounded).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Self::F32(v) => Some(v),
            Self::F64(v) => Some(v as f32),
            _ => None,
        }
    }

    /// The string, if the value is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if the value is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }

    /// A short description for error messages: the type and, for scalars, the value;
    /// strings are cut after 40 characters, arrays show their length and element type.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::String(s) => {
                let mut shown: String = s.chars().take(40).collect();
                if shown.len() < s.len() {
                    shown.push('…');
                }
                format!("string {shown:?}")
            }
            Self::Array(items) => match items.first() {
                Some(first) => format!("array of {} {}", items.len(), first.value_type().name()),
                None => "empty array".to_owned(),
            },
            Self::U8(v) => format!("u8 {v}"),
            Self::I8(v) => format!("i8 {v}"),
            Self::U16(v) => format!("u16 {v}"),
            Self::I16(v) => format!("i16 {v}"),
            Self::U32(v) => format!("u32 {v}"),
            Self::I32(v) => format!("i32 {v}"),
            Self::U64(v) => format!("u64 {v}"),
            Self::I64(v) => format!("i64 {v}"),
            Self::F32(v) => format!("f32 {v:?}"),
            Self::F64(v) => format!("f64 {v:?}"),
            Self::Bool(v) => format!("bool {v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_codes_round_trip_and_unknown_codes_are_rejected() {
        for code in 0..=12 {
            let ty = ValueType::from_code(code).map(ValueType::code);
            assert_eq!(ty, Some(code));
        }
        assert_eq!(ValueType::from_code(13), None);
        assert_eq!(ValueType::from_code(u32::MAX), None);
    }

    #[test]
    fn integer_conversions_accept_only_values_that_fit() {
        assert_eq!(Value::U8(7).as_u32(), Some(7));
        assert_eq!(Value::I64(4_000_000_000).as_u32(), Some(4_000_000_000));
        assert_eq!(Value::U64(u64::MAX).as_u32(), None);
        assert_eq!(Value::I32(-1).as_u32(), None);
        assert_eq!(Value::U32(u32::MAX).as_i32(), None);
        assert_eq!(Value::I16(-5).as_i32(), Some(-5));
        assert_eq!(Value::F32(1.0).as_u32(), None);
        assert_eq!(Value::F64(0.5).as_f32(), Some(0.5));
    }

    #[test]
    fn describe_cuts_long_strings() {
        let long = Value::String("x".repeat(100));
        assert_eq!(long.describe(), format!("string \"{}…\"", "x".repeat(40)));
        assert_eq!(Value::Array(vec![Value::U8(1)]).describe(), "array of 1 u8");
    }
}
