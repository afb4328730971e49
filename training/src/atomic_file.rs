//! Writing a file so that a crash or an error never leaves a complete-looking half file: the
//! bytes go to `path` + `.part`, are synced, then renamed over `path`.

use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

/// Writes `path` through a buffered writer on `path.part`, which `write` fills; then syncs and
/// renames it into place. On any error the part file is removed and `path` is untouched.
/// `io_error` turns a failed file operation (the file, what was being done, the error) into
/// the caller's error type.
pub(crate) fn write_atomically<E>(
    path: &Path,
    io_error: impl Fn(&Path, &'static str, io::Error) -> E,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), E>,
) -> Result<(), E> {
    let part = part_path(path);
    let written = (|| {
        let file =
            File::create(&part).map_err(|e| io_error(&part, "creating the .part file", e))?;
        let mut writer = BufWriter::new(file);
        write(&mut writer)?;
        let file = writer
            .into_inner()
            .map_err(|e| io_error(&part, "writing the .part file", e.into_error()))?;
        file.sync_all()
            .map_err(|e| io_error(&part, "syncing the .part file", e))
    })();
    if let Err(e) = written {
        // best effort: the error that matters is the write's
        let _ = fs::remove_file(&part);
        return Err(e);
    }
    fs::rename(&part, path).map_err(|e| io_error(path, "renaming the .part file into place", e))
}

/// `path` with `.part` appended to its file name.
pub(crate) fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".part");
    path.with_file_name(name)
}
