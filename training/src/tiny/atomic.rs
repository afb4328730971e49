//! Writing files so that a crash never leaves a complete-looking half file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::TinyError;

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
    let part = part_path(path);
    let write = || -> std::io::Result<()> {
        let mut file = fs::File::create(&part)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    if let Err(e) = write() {
        // best effort: the error that matters is the write's
        let _ = fs::remove_file(&part);
        return Err(TinyError::io(&part, "writing the .part file", e));
    }
    fs::rename(&part, path)
        .map_err(|e| TinyError::io(path, "renaming the .part file into place", e))?;
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

/// `path` with `.part` appended to its file name.
fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    path.with_file_name(name)
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
