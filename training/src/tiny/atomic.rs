//! Writing files so that a crash never leaves a complete-looking half file.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::TinyError;
use crate::atomic_file::{part_path, write_atomically};

/// Writes `bytes` to `path` unless it already holds exactly these bytes; returns whether it
/// wrote. The bytes go to `path` + `.part` first, are synced, then renamed over `path`, so
/// readers see the old file or the new one, never a prefix. Skipping identical files keeps
/// their modification times, so caches keyed on path + size + mtime stay valid.
pub(crate) fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, TinyError> {
    if same_content(path, bytes)? {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| TinyError::io(dir, "creating the folder", e))?;
    }
    write_atomically(path, TinyError::io, |writer| {
        writer
            .write_all(bytes)
            .map_err(|e| TinyError::io(&part_path(path), "writing the .part file", e))
    })?;
    Ok(true)
}

/// Whether `path` is a file holding exactly `bytes` (sizes compared first).
fn same_content(path: &Path, bytes: &[u8]) -> Result<bool, TinyError> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == bytes.len() as u64 => {
            let old = fs::read(path).map_err(|e| TinyError::io(path, "reading the old file", e))?;
            Ok(old == bytes)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(TinyError::io(path, "checking the old file", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_then_skips_identical_bytes() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else {
            panic!("tempdir: {dir:?}");
        };
        let path = dir.path().join("sub").join("a.bin");
        let first = write_if_changed(&path, b"hello").map_err(|e| e.to_string());
        assert_eq!(first, Ok(true));
        let again = write_if_changed(&path, b"hello").map_err(|e| e.to_string());
        assert_eq!(again, Ok(false));
        let changed = write_if_changed(&path, b"hullo").map_err(|e| e.to_string());
        assert_eq!(changed, Ok(true));
        assert_eq!(fs::read(&path).ok(), Some(b"hullo".to_vec()));
        assert!(!part_path(&path).exists());
        assert_eq!(
            part_path(&path).file_name().and_then(|n| n.to_str()),
            Some("a.bin.part")
        );
    }
}
