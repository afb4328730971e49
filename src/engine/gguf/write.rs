//! Writing GGUF v3 files laid out as llama.cpp lays them out.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{BufWriter, Write};

use candle_core::quantized::{GgmlDType, QTensor};

use super::tensor::{checked_size_in_bytes, ggml_dtype_code};
use super::{GgufError, Result, Value, ValueType, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS};

/// The name writer errors give in place of a file name.
pub const WRITER_LABEL: &str = "<gguf writer>";

/// Element type written for empty arrays (any type reads back as an empty array).
const EMPTY_ARRAY_TYPE: ValueType = ValueType::U32;

/// Writes a GGUF v3 file: header, `metadata` in the order given, tensor infos, then each
/// tensor's data, the data section and every tensor padded to `general.alignment` (32 if
/// absent), byte for byte as llama.cpp's gguf-py does. Keys and tensor names must be unique and
/// arrays homogeneous.
pub fn write_gguf<W: Write>(
    w: &mut W,
    metadata: &[(String, Value)],
    tensors: &[(String, &QTensor)],
) -> Result<()> {
    let plans: Vec<TensorPlan> = tensors
        .iter()
        .map(|(name, tensor)| TensorPlan {
            name: name.clone(),
            dtype: tensor.dtype(),
            shape: tensor.shape().dims().to_vec(),
        })
        .collect();
    write_gguf_streaming(w, metadata, &plans, |index| {
        let (name, tensor) = tensors
            .get(index)
            .ok_or_else(|| GgufError::TensorNotFound {
                file: WRITER_LABEL.to_owned(),
                tensor: format!("#{index}"),
            })?;
        tensor.data().map_err(|e| GgufError::Candle {
            file: WRITER_LABEL.to_owned(),
            tensor: name.clone(),
            error: Box::new(e),
        })
    })
}

/// A tensor [`write_gguf_streaming`] will write: its name, type and candle shape (rows first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPlan {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Its type.
    pub dtype: GgmlDType,
    /// Its shape, outermost dimension first (candle's order; GGUF stores it reversed).
    pub shape: Vec<usize>,
}

/// Writes a GGUF file as [`write_gguf`] does, but asks `data` for each tensor's bytes only
/// when it is its turn (tensor `index` of `plans`), so a multi-GB model is never held whole:
/// the caller reads, converts and hands over one tensor at a time. The bytes must have the
/// size `plans` implies.
pub fn write_gguf_streaming<'a, W: Write>(
    w: &mut W,
    metadata: &[(String, Value)],
    plans: &[TensorPlan],
    mut data: impl FnMut(usize) -> Result<Cow<'a, [u8]>>,
) -> Result<()> {
    let alignment = check_metadata(metadata)?;
    let layout = plan_tensors(plans, alignment)?;

    let mut out = Out {
        inner: BufWriter::new(w),
        written: 0,
    };
    out.bytes(b"GGUF")?;
    out.bytes(&3u32.to_le_bytes())?;
    out.len(plans.len())?;
    out.len(metadata.len())?;
    for (key, value) in metadata {
        out.string(key)?;
        out.bytes(&value.value_type().code().to_le_bytes())?;
        out.value(value)?;
    }
    for planned in &layout {
        out.string(&planned.name)?;
        out.bytes(&planned.n_dims.to_le_bytes())?;
        for dim in &planned.dims {
            out.bytes(&dim.to_le_bytes())?;
        }
        out.bytes(&planned.code.to_le_bytes())?;
        out.bytes(&planned.offset.to_le_bytes())?;
    }
    // gguf-py writes no data-section padding when there is no data (vocab-only files)
    if !layout.is_empty() {
        out.pad(alignment)?;
    }
    for (index, planned) in layout.iter().enumerate() {
        let bytes = data(index)?;
        if bytes.len() as u64 != planned.size {
            return Err(GgufError::DataSizeMismatch {
                file: WRITER_LABEL.to_owned(),
                tensor: planned.name.clone(),
                expected: planned.size,
                found: bytes.len() as u64,
            });
        }
        out.bytes(&bytes)?;
        out.pad(alignment)?;
    }
    out.inner
        .flush()
        .map_err(|e| GgufError::io(WRITER_LABEL, "flushing", e))
}

/// Checks keys are unique and arrays homogeneous and not too deep; returns the alignment.
fn check_metadata(metadata: &[(String, Value)]) -> Result<u64> {
    let mut seen = HashSet::new();
    let mut alignment = u64::from(DEFAULT_ALIGNMENT);
    for (key, value) in metadata {
        if !seen.insert(key.as_str()) {
            return Err(GgufError::DuplicateKey {
                file: WRITER_LABEL.to_owned(),
                key: key.clone(),
            });
        }
        if let Value::Array(items) = value {
            check_array(key, items, 1)?;
        }
        if key == "general.alignment" {
            alignment = match value {
                Value::U32(a) if a.is_power_of_two() => u64::from(*a),
                other => {
                    return Err(GgufError::InvalidAlignment {
                        file: WRITER_LABEL.to_owned(),
                        value: other.describe(),
                    })
                }
            };
        }
    }
    Ok(alignment)
}

/// Checks one array nested `depth` levels deep (1 for a top-level array).
fn check_array(key: &str, items: &[Value], depth: usize) -> Result<()> {
    let Some(first) = items.first().map(Value::value_type) else {
        return Ok(());
    };
    for item in items {
        let ty = item.value_type();
        if ty != first {
            return Err(GgufError::MixedArray {
                file: WRITER_LABEL.to_owned(),
                key: key.to_owned(),
                first: first.name(),
                other: ty.name(),
            });
        }
        if let Value::Array(inner) = item {
            if depth >= MAX_ARRAY_DEPTH {
                return Err(GgufError::ArrayTooDeep {
                    file: WRITER_LABEL.to_owned(),
                    key: key.to_owned(),
                    max_depth: MAX_ARRAY_DEPTH,
                });
            }
            check_array(key, inner, depth + 1)?;
        }
    }
    Ok(())
}

/// A tensor info as it will be written.
struct Planned {
    name: String,
    n_dims: u32,
    /// ne0 first.
    dims: Vec<u64>,
    code: u32,
    offset: u64,
    size: u64,
}

/// Checks names, ranks and sizes and assigns each tensor an aligned offset in the data
/// section.
fn plan_tensors(plans: &[TensorPlan], alignment: u64) -> Result<Vec<Planned>> {
    let mut seen = HashSet::new();
    let mut offset = 0u64;
    let mut layout = Vec::with_capacity(plans.len());
    for plan in plans {
        let name = &plan.name;
        if !seen.insert(name.as_str()) {
            return Err(GgufError::DuplicateTensor {
                file: WRITER_LABEL.to_owned(),
                tensor: name.clone(),
            });
        }
        let dims: Vec<u64> = plan.shape.iter().rev().map(|&d| d as u64).collect();
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(GgufError::InvalidDimCount {
                file: WRITER_LABEL.to_owned(),
                tensor: name.clone(),
                n_dims: dims.len() as u64,
            });
        }
        let dims_usize: Vec<usize> = plan.shape.iter().rev().copied().collect();
        let size = checked_size_in_bytes(plan.dtype, &dims_usize).ok_or_else(|| {
            GgufError::SizeOverflow {
                file: WRITER_LABEL.to_owned(),
                tensor: name.clone(),
                dims: dims.clone(),
                dtype: plan.dtype,
            }
        })? as u64;
        layout.push(Planned {
            name: name.clone(),
            n_dims: dims.len() as u32,
            dims,
            code: ggml_dtype_code(plan.dtype),
            offset,
            size,
        });
        offset = offset.saturating_add(size.next_multiple_of(alignment));
    }
    Ok(layout)
}

/// A byte sink that counts what it has written, for padding.
struct Out<W: Write> {
    inner: BufWriter<W>,
    written: u64,
}

impl<W: Write> Out<W> {
    fn bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner.write_all(bytes).map_err(|e| {
            GgufError::io(WRITER_LABEL, format!("writing at byte {}", self.written), e)
        })?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn len(&mut self, len: usize) -> Result<()> {
        self.bytes(&(len as u64).to_le_bytes())
    }

    fn string(&mut self, s: &str) -> Result<()> {
        self.len(s.len())?;
        self.bytes(s.as_bytes())
    }

    fn pad(&mut self, alignment: u64) -> Result<()> {
        const ZEROS: [u8; 256] = [0; 256];
        let mut padding = self.written.next_multiple_of(alignment) - self.written;
        while padding > 0 {
            let n = padding.min(ZEROS.len() as u64);
            self.bytes(ZEROS.get(..n as usize).unwrap_or(&[]))?;
            padding -= n;
        }
        Ok(())
    }

    fn value(&mut self, value: &Value) -> Result<()> {
        match value {
            Value::U8(v) => self.bytes(&v.to_le_bytes()),
            Value::I8(v) => self.bytes(&v.to_le_bytes()),
            Value::U16(v) => self.bytes(&v.to_le_bytes()),
            Value::I16(v) => self.bytes(&v.to_le_bytes()),
            Value::U32(v) => self.bytes(&v.to_le_bytes()),
            Value::I32(v) => self.bytes(&v.to_le_bytes()),
            Value::U64(v) => self.bytes(&v.to_le_bytes()),
            Value::I64(v) => self.bytes(&v.to_le_bytes()),
            Value::F32(v) => self.bytes(&v.to_le_bytes()),
            Value::F64(v) => self.bytes(&v.to_le_bytes()),
            Value::Bool(v) => self.bytes(&[u8::from(*v)]),
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                let ty = items.first().map_or(EMPTY_ARRAY_TYPE, Value::value_type);
                self.bytes(&ty.code().to_le_bytes())?;
                self.len(items.len())?;
                items.iter().try_for_each(|item| self.value(item))
            }
        }
    }
}
