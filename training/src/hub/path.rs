//! Turning a request path into a file under the served root, refusing anything
//! that could reach outside it: `.`/`..` segments (plain or percent-encoded),
//! encoded `/` or `\` inside a segment, empty segments (`//abs`), NUL and other
//! control characters, invalid percent-encoding or UTF-8, and symlinks whose
//! target lies outside the root (checked on the canonical path).

use std::ffi::OsStr;
use std::fs;
use std::path::{Component, Path, PathBuf};

use super::HubError;

/// Why a path was not turned into a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The path is malformed or tries to escape; answered with 400.
    BadPath(String),
    /// Nothing there, or it resolves outside the root; answered with 404.
    NotFound,
}

/// The request path without query string or fragment, still percent-encoded.
pub(crate) fn path_part(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or_default()
}

/// Splits an absolute request path into percent-decoded segments.
///
/// A trailing `/` is dropped (`/` alone gives no segments); any other empty
/// segment, or a `.`/`..` segment, is refused.
pub(crate) fn split_segments(path: &str) -> Result<Vec<String>, String> {
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| "request path must start with '/'".to_string())?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<&str> = rest.split('/').collect();
    let mut segments = Vec::with_capacity(raw.len());
    for (index, segment) in raw.iter().enumerate() {
        if segment.is_empty() {
            if index + 1 == raw.len() {
                break;
            }
            return Err("empty path segment".to_string());
        }
        let decoded = decode_segment(segment)?;
        if decoded == "." || decoded == ".." {
            return Err("'.' and '..' are not allowed in paths".to_string());
        }
        segments.push(decoded);
    }
    Ok(segments)
}

/// Percent-decodes one segment; the result must be UTF-8 without control characters.
pub(crate) fn decode_segment(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
            let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err("invalid percent-encoding in path".to_string());
            };
            out.push((hi << 4) | lo);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    let text = String::from_utf8(out).map_err(|_| "path is not valid UTF-8".to_string())?;
    if text.chars().any(char::is_control) {
        return Err("control character in path".to_string());
    }
    Ok(text)
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Checks that a decoded segment names exactly one plain file-system component.
pub(crate) fn check_fs_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() || segment.contains(['/', '\\']) {
        return Err(format!("path segment {segment:?} is not a plain name"));
    }
    let mut components = Path::new(segment).components();
    match (components.next(), components.next()) {
        (Some(Component::Normal(name)), None) if name == OsStr::new(segment) => Ok(()),
        _ => Err(format!("path segment {segment:?} is not a plain name")),
    }
}

/// The canonical root folder; every file served is located through it.
#[derive(Debug)]
pub(crate) struct SafeRoot(PathBuf);

impl SafeRoot {
    /// Checks that `root` is an existing folder and remembers its canonical form.
    pub(crate) fn new(root: &Path) -> Result<SafeRoot, HubError> {
        let path = root.to_path_buf();
        match fs::metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(HubError::RootMissing { path })
            }
            Err(source) => Err(HubError::RootUnreadable { path, source }),
            Ok(meta) if !meta.is_dir() => Err(HubError::RootNotDirectory { path }),
            Ok(_) => fs::canonicalize(root)
                .map(SafeRoot)
                .map_err(|source| HubError::RootUnreadable { path, source }),
        }
    }

    /// The canonical root folder.
    pub(crate) fn as_path(&self) -> &Path {
        &self.0
    }

    /// The canonical path of `ROOT/seg1/seg2/...`, which must exist and lie inside the root.
    pub(crate) fn locate<'a>(
        &self,
        segments: impl IntoIterator<Item = &'a str>,
    ) -> Result<PathBuf, Refusal> {
        let mut path = self.0.clone();
        for segment in segments {
            check_fs_segment(segment).map_err(Refusal::BadPath)?;
            path.push(segment);
        }
        let real = fs::canonicalize(&path).map_err(|_| Refusal::NotFound)?;
        if real.starts_with(&self.0) {
            Ok(real)
        } else {
            Err(Refusal::NotFound)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_decodes() {
        assert_eq!(split_segments("/"), Ok(vec![]));
        assert_eq!(
            split_segments("/a/b%20c/d%C3%A9/"),
            Ok(vec!["a".into(), "b c".into(), "dé".into()])
        );
        assert_eq!(
            split_segments("/a/x%2Fy"),
            Ok(vec!["a".into(), "x/y".into()])
        );
        assert_eq!(path_part("/a/b?x=1#f"), "/a/b");
    }

    #[test]
    fn refuses_dangerous_paths() {
        for bad in [
            "/a/../b",
            "/a/%2e%2e/b",
            "/a/%2E%2E",
            "/a/./b",
            "/a//b",
            "//etc",
            "/a/%zz",
            "/a/%",
            "/a/%ff",
            "/a/x%00y",
            "/a/x%0ay",
            "a/b",
        ] {
            assert!(split_segments(bad).is_err(), "{bad}");
        }
        for bad in ["x/y", "..\\x", "a\\b", "", "/abs"] {
            assert!(check_fs_segment(bad).is_err(), "{bad}");
        }
        assert!(check_fs_segment("model.Q4_K_M.gguf").is_ok());
    }
}
