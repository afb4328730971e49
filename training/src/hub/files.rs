//! Serving one file found under the root; the same code answers hub and static mode.

use std::fs::{self, File, Metadata};
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::digest::DigestCache;
use super::http::{Body, Response};
use super::range::{self, ByteRange};

/// A file that exists inside the root, ready to be planned.
pub(crate) struct Located {
    /// Canonical path of the file (or of what should be a file).
    pub(crate) path: PathBuf,
    /// Hub mode only: the `X-Repo-Commit` value. Its presence also switches on the
    /// SHA-256 `ETag` and the `X-Linked-Etag`/`X-Linked-Size` headers.
    pub(crate) repo_commit: Option<String>,
}

/// An opened file and the part of it to send.
pub(crate) struct Plan {
    found: Located,
    file: File,
    meta: Metadata,
    range: ByteRange,
}

impl Plan {
    /// Whether answering this plan to a GET sends file bytes.
    pub(crate) fn sends_body(&self) -> bool {
        match self.range {
            ByteRange::Full => self.meta.len() > 0,
            ByteRange::Partial { len, .. } => len > 0,
            ByteRange::Unsatisfiable => false,
        }
    }
}

/// 404 with the Hub's `EntryNotFound` error code.
pub(crate) fn entry_not_found(message: &str) -> Response {
    Response::error(404, message).with_header("X-Error-Code", "EntryNotFound")
}

/// Opens the file and decides which bytes to send, from the `Range` and `If-Range` headers.
pub(crate) fn plan(
    found: Located,
    range_header: Option<&str>,
    if_range: Option<&str>,
    digests: &DigestCache,
) -> Result<Plan, Response> {
    let missing = || entry_not_found("entry not found (or not a file)");
    let meta = fs::metadata(&found.path).map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(missing());
    }
    let file = File::open(&found.path).map_err(|_| missing())?;
    let honour_range = match if_range {
        None => true,
        Some(wanted) => etag(&found, &meta, digests).is_ok_and(|tag| tag == wanted.trim()),
    };
    let range = if honour_range {
        range::evaluate(range_header, meta.len())
    } else {
        ByteRange::Full
    };
    Ok(Plan {
        found,
        file,
        meta,
        range,
    })
}

/// Builds the response for a plan: 200, 206 or 416, with all file headers.
pub(crate) fn respond(plan: Plan, digests: &DigestCache) -> Response {
    let Plan {
        found,
        mut file,
        meta,
        range,
    } = plan;
    let size = meta.len();
    let tag = match etag(&found, &meta, digests) {
        Ok(tag) => tag,
        Err(e) => return Response::error(500, &format!("cannot hash file: {e}")),
    };
    let response = match range {
        ByteRange::Full => Response::new(200, Body::File { file, len: size }),
        ByteRange::Partial { start, len } => {
            if let Err(e) = file.seek(SeekFrom::Start(start)) {
                return Response::error(500, &format!("cannot seek file: {e}"));
            }
            let last = (start + len).saturating_sub(1);
            Response::new(206, Body::File { file, len })
                .with_header("Content-Range", format!("bytes {start}-{last}/{size}"))
        }
        ByteRange::Unsatisfiable => Response::error(416, "range not satisfiable")
            .with_header("Content-Range", format!("bytes */{size}")),
    };
    let response = response
        .with_header("Content-Type", content_type(&found.path))
        .with_header("ETag", tag.clone())
        .with_header("Accept-Ranges", "bytes");
    match found.repo_commit {
        Some(commit) => response
            .with_header("X-Linked-Etag", tag)
            .with_header("X-Linked-Size", size.to_string())
            .with_header("X-Repo-Commit", commit),
        None => response,
    }
}

/// Quoted ETag: the SHA-256 in hub mode, size and modification time in static mode.
fn etag(found: &Located, meta: &Metadata, digests: &DigestCache) -> io::Result<String> {
    if found.repo_commit.is_some() {
        return Ok(format!("\"{}\"", digests.sha256(&found.path, meta)?));
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("\"{:x}-{modified:x}\"", meta.len()))
}

/// `Content-Type` by file extension; `application/octet-stream` for anything unknown
/// (model files such as `.gguf`, `.safetensors` and `.bin` included).
pub(crate) fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
