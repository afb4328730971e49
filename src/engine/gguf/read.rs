//! Parsing a GGUF header, metadata and tensor infos from untrusted bytes.
//!
//! Every length and count is checked against the bytes left in the file before anything is
//! allocated for it, so no allocation is larger than the file (an array's `Vec<Value>` is at
//! most `size_of::<Value>()` times the bytes its elements occupy).

use std::collections::HashMap;
use std::fmt::Display;
use std::io::{BufReader, Read, Seek, SeekFrom};

use super::tensor::{checked_size_in_bytes, ggml_dtype_from_code};
use super::{
    GgufError, GgufFile, Result, TensorInfo, Value, ValueType, DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH,
    MAX_DIMS,
};

const MAGIC: [u8; 4] = *b"GGUF";
/// u64 key length + u32 value type + a 1-byte value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;
/// u64 name length + u32 n_dims + one u64 dim + u32 type + u64 offset.
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 8 + 4 + 8;
/// Read buffer size; small files get a buffer no larger than themselves.
const READ_BUFFER: u64 = 64 * 1024;

/// Entries in file order, with each entry's position by name.
type Indexed<T> = (Vec<T>, HashMap<String, usize>);

impl GgufFile {
    /// Parses the header, metadata and tensor infos of the GGUF v2/v3 file that `reader` holds
    /// from its start to its end. `source` names the file in every error. Tensor data is not
    /// read, only checked to lie inside the file; [`GgufFile::tensor`] reads it later.
    pub fn read<R: Read + Seek>(reader: &mut R, source: &str) -> Result<GgufFile> {
        let file_len = reader
            .seek(SeekFrom::End(0))
            .map_err(|e| GgufError::io(source, "seeking to the end", e))?;
        reader
            .seek(SeekFrom::Start(0))
            .map_err(|e| GgufError::io(source, "seeking to the start", e))?;
        let capacity = file_len.min(READ_BUFFER) as usize;
        let mut bytes = Bytes {
            inner: BufReader::with_capacity(capacity, reader),
            pos: 0,
            len: file_len,
            file: source,
        };
        bytes.parse()
    }
}

/// A position-tracking reader that refuses to read past `len`.
struct Bytes<'a, R: Read> {
    inner: BufReader<&'a mut R>,
    pos: u64,
    len: u64,
    file: &'a str,
}

impl<R: Read> Bytes<'_, R> {
    fn parse(&mut self) -> Result<GgufFile> {
        self.magic()?;
        let version = self.u32(&"version")?;
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion {
                file: self.file.to_owned(),
                version,
            });
        }
        let tensor_count = self.u64(&"tensor count")?;
        let kv_count = self.u64(&"metadata kv count")?;
        let after_counts = self.pos;
        self.check_count(after_counts, &"metadata kv count", kv_count, MIN_KV_SIZE, 0)?;
        let reserved = kv_count.saturating_mul(MIN_KV_SIZE);
        self.check_count(
            after_counts,
            &"tensor count",
            tensor_count,
            MIN_TENSOR_INFO_SIZE,
            reserved,
        )?;

        let (metadata, metadata_index) = self.metadata(kv_count)?;
        let alignment = alignment(self.file, &metadata, &metadata_index)?;
        let (tensors, tensor_index) = self.tensor_infos(tensor_count, alignment)?;

        // header end <= file length and alignment <= 2^31, so this cannot overflow
        let data_start = self.pos.div_ceil(alignment).saturating_mul(alignment);
        for info in &tensors {
            self.check_data_range(info, data_start)?;
        }
        Ok(GgufFile {
            source: self.file.to_owned(),
            version,
            file_len: self.len,
            alignment,
            data_start,
            metadata,
            metadata_index,
            tensors,
            tensor_index,
        })
    }

    fn magic(&mut self) -> Result<()> {
        let seen = usize::try_from(self.remaining().min(4)).unwrap_or(4);
        let mut found = vec![0u8; seen];
        self.fill(&mut found, &"magic")?;
        if found != MAGIC {
            return Err(GgufError::BadMagic {
                file: self.file.to_owned(),
                found,
            });
        }
        Ok(())
    }

    fn metadata(&mut self, count: u64) -> Result<Indexed<(String, Value)>> {
        let mut entries = Vec::new();
        let mut index = HashMap::new();
        for i in 0..count {
            let key = self.string(&format_args!("metadata key #{i}"))?;
            let at = self.pos;
            let code = self.u32(&format_args!("value type of key {key}"))?;
            let ty = ValueType::from_code(code).ok_or_else(|| GgufError::UnknownValueType {
                file: self.file.to_owned(),
                offset: at,
                key: key.clone(),
                code,
            })?;
            if index.contains_key(&key) {
                return Err(GgufError::DuplicateKey {
                    file: self.file.to_owned(),
                    key,
                });
            }
            let value = self.value(ty, &key, 0)?;
            index.insert(key.clone(), entries.len());
            entries.push((key, value));
        }
        Ok((entries, index))
    }

    /// Reads one value of type `ty`; `depth` counts the arrays it sits in.
    fn value(&mut self, ty: ValueType, key: &str, depth: usize) -> Result<Value> {
        let what = format_args!("value of key {key}");
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(&what)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(&what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(&what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(&what)?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.array(&what)?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(&what)?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.array(&what)?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(&what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(&what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(&what)?)),
            ValueType::Bool => {
                let at = self.pos;
                match self.array::<1>(&what)? {
                    [0] => Value::Bool(false),
                    [1] => Value::Bool(true),
                    [other] => {
                        return Err(GgufError::InvalidBool {
                            file: self.file.to_owned(),
                            offset: at,
                            key: key.to_owned(),
                            value: other,
                        })
                    }
                }
            }
            ValueType::String => Value::String(self.string(&what)?),
            ValueType::Array => Value::Array(self.array_value(key, depth + 1)?),
        })
    }

    /// Reads an array's element type, length and elements; `depth` counts this array.
    fn array_value(&mut self, key: &str, depth: usize) -> Result<Vec<Value>> {
        let at = self.pos;
        let code = self.u32(&format_args!("array element type of key {key}"))?;
        let ty = ValueType::from_code(code).ok_or_else(|| GgufError::UnknownValueType {
            file: self.file.to_owned(),
            offset: at,
            key: key.to_owned(),
            code,
        })?;
        if ty == ValueType::Array && depth >= MAX_ARRAY_DEPTH {
            return Err(GgufError::ArrayTooDeep {
                file: self.file.to_owned(),
                key: key.to_owned(),
                max_depth: MAX_ARRAY_DEPTH,
            });
        }
        let at = self.pos;
        let what = format_args!("array length of key {key}");
        let len = self.u64(&what)?;
        let len = self.check_count(at, &what, len, ty.min_encoded_size(), 0)?;
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(self.value(ty, key, depth)?);
        }
        Ok(items)
    }

    fn tensor_infos(&mut self, count: u64, alignment: u64) -> Result<Indexed<TensorInfo>> {
        let mut infos = Vec::new();
        let mut index = HashMap::new();
        for i in 0..count {
            let info = self.tensor_info(i, alignment)?;
            if index.contains_key(&info.name) {
                return Err(GgufError::DuplicateTensor {
                    file: self.file.to_owned(),
                    tensor: info.name,
                });
            }
            index.insert(info.name.clone(), infos.len());
            infos.push(info);
        }
        Ok((infos, index))
    }

    fn tensor_info(&mut self, i: u64, alignment: u64) -> Result<TensorInfo> {
        let name = self.string(&format_args!("name of tensor #{i}"))?;
        let n_dims = self.u32(&format_args!("n_dims of tensor {name}"))?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(GgufError::InvalidDimCount {
                file: self.file.to_owned(),
                tensor: name,
                n_dims: n_dims.into(),
            });
        }
        let mut raw_dims = Vec::with_capacity(MAX_DIMS);
        for _ in 0..n_dims {
            raw_dims.push(self.u64(&format_args!("dims of tensor {name}"))?);
        }
        let code = self.u32(&format_args!("type of tensor {name}"))?;
        let offset = self.u64(&format_args!("offset of tensor {name}"))?;
        let file = self.file;
        let Some(dtype) = ggml_dtype_from_code(code) else {
            return Err(GgufError::UnknownGgmlType {
                file: file.to_owned(),
                tensor: name,
                code,
            });
        };
        if raw_dims.contains(&0) {
            return Err(GgufError::ZeroDim {
                file: file.to_owned(),
                tensor: name,
                dims: raw_dims,
            });
        }
        let dims: Option<Vec<usize>> = raw_dims.iter().map(|&d| usize::try_from(d).ok()).collect();
        let dims = match dims {
            Some(dims) if checked_size_in_bytes(dtype, &dims).is_some() => dims,
            _ => {
                return Err(GgufError::SizeOverflow {
                    file: file.to_owned(),
                    tensor: name,
                    dims: raw_dims,
                    dtype,
                })
            }
        };
        let ne0 = raw_dims.first().copied().unwrap_or(0);
        let block_size = dtype.block_size();
        if ne0 % block_size as u64 != 0 {
            return Err(GgufError::BlockSizeMismatch {
                file: file.to_owned(),
                tensor: name,
                ne0,
                dtype,
                block_size,
            });
        }
        if offset % alignment != 0 {
            return Err(GgufError::MisalignedOffset {
                file: file.to_owned(),
                tensor: name,
                offset,
                alignment,
            });
        }
        Ok(TensorInfo {
            name,
            dims,
            dtype,
            offset,
        })
    }

    fn check_data_range(&self, info: &TensorInfo, data_start: u64) -> Result<()> {
        let size = checked_size_in_bytes(info.dtype, &info.dims)
            .and_then(|s| u64::try_from(s).ok())
            .unwrap_or(u64::MAX);
        let start = data_start.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(size));
        match end {
            Some(end) if end <= self.len => Ok(()),
            _ => {
                let start = start.unwrap_or(u64::MAX);
                Err(GgufError::DataOutOfBounds {
                    file: self.file.to_owned(),
                    tensor: info.name.clone(),
                    start,
                    end: end.unwrap_or_else(|| start.saturating_add(size)),
                    file_len: self.len,
                })
            }
        }
    }

    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Checks that `count` items of at least `min_size` bytes each fit in the rest of the file
    /// after `reserved` bytes, and returns the count as a `usize`.
    fn check_count(
        &self,
        at: u64,
        what: &dyn Display,
        count: u64,
        min_size: u64,
        reserved: u64,
    ) -> Result<usize> {
        let min_bytes = count.saturating_mul(min_size);
        let available = self.remaining().saturating_sub(reserved);
        match usize::try_from(count) {
            Ok(count) if min_bytes <= available => Ok(count),
            _ => Err(GgufError::CountTooLarge {
                file: self.file.to_owned(),
                offset: at,
                what: what.to_string(),
                count,
                min_bytes,
                available,
            }),
        }
    }

    /// Fills `buf` from the file, or fails without reading if the file is too short.
    fn fill(&mut self, buf: &mut [u8], what: &dyn Display) -> Result<()> {
        let needed = buf.len() as u64;
        let available = self.remaining();
        if needed > available {
            return Err(GgufError::Truncated {
                file: self.file.to_owned(),
                offset: self.pos,
                what: what.to_string(),
                needed,
                available,
            });
        }
        self.inner.read_exact(buf).map_err(|e| {
            GgufError::io(self.file, format!("reading {what} at byte {}", self.pos), e)
        })?;
        self.pos += needed;
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &dyn Display) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.fill(&mut buf, what)?;
        Ok(buf)
    }

    fn u32(&mut self, what: &dyn Display) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Display) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Reads a u64 length and that many bytes of UTF-8.
    fn string(&mut self, what: &dyn Display) -> Result<String> {
        let len = self.u64(what)?;
        let at = self.pos;
        let available = self.remaining();
        let len = match usize::try_from(len) {
            Ok(n) if len <= available => n,
            _ => {
                return Err(GgufError::Truncated {
                    file: self.file.to_owned(),
                    offset: at,
                    what: what.to_string(),
                    needed: len,
                    available,
                })
            }
        };
        let mut buf = vec![0u8; len];
        self.fill(&mut buf, what)?;
        String::from_utf8(buf).map_err(|_| GgufError::InvalidUtf8 {
            file: self.file.to_owned(),
            offset: at,
            what: what.to_string(),
        })
    }
}

/// The data alignment: `general.alignment` if present (a nonzero power-of-two u32), else 32.
fn alignment(
    file: &str,
    metadata: &[(String, Value)],
    index: &HashMap<String, usize>,
) -> Result<u64> {
    let value = index
        .get("general.alignment")
        .and_then(|&i| metadata.get(i))
        .map(|(_, value)| value);
    match value {
        None => Ok(DEFAULT_ALIGNMENT.into()),
        Some(Value::U32(a)) if a.is_power_of_two() => Ok((*a).into()),
        Some(other) => Err(GgufError::InvalidAlignment {
            file: file.to_owned(),
            value: other.describe(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&tensors.to_le_bytes());
        b.extend_from_slice(&kvs.to_le_bytes());
        b
    }

    fn read(bytes: Vec<u8>) -> Result<GgufFile> {
        GgufFile::read(&mut Cursor::new(bytes), "unit.gguf")
    }

    #[test]
    fn empty_v2_and_v3_files_parse() {
        for version in [2, 3] {
            let file = read(header(version, 0, 0)).map_err(|e| e.to_string());
            let file = file.as_ref().map(|f| (f.version(), f.data_start()));
            assert_eq!(file, Ok((version, 32)));
        }
    }

    #[test]
    fn short_magic_is_reported_with_the_bytes_seen() {
        let err = read(b"GG".to_vec()).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("unit.gguf: not a GGUF file: magic bytes [47, 47], expected \"GGUF\" [47, 47, 55, 46]".into())
        );
    }

    #[test]
    fn counts_are_checked_before_reading_entries() {
        let err = read(header(3, 0, 1 << 40))
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("unit.gguf: byte 24: metadata kv count 1099511627776 needs at least 14293651161088 bytes but only 0 remain".into())
        );
    }
}
