//! The model cache: one entry per hub file, verified by sha256 before first use and
//! resumable after an interrupted download, in OPFS or, where OPFS is missing, in the Cache
//! API (see [`super::store`]).
//!
//! An entry `K` (a hash of hub, repo, revision and path) is three names in the store:
//! `K.bin` holds the bytes, `K.part` records what a download in progress expects (sha256,
//! size), and `K.done` is written only after the sha256 of the whole of `K.bin` was checked.
//! Without `K.done` the bytes are never used as a model; they are only the start of a resumed
//! download: they are hashed again and the rest is asked for with a Range request. In OPFS
//! `K.bin` grows as the bytes arrive; in the Cache API it is stored once the download ends
//! (verified), or stops with an error (the part to resume from).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::fetch::{self, Abort, FetchError};
use super::store::{Backend, Part, StorageError, Store, StoredFile};
use crate::download_progress::ProgressMeter;
use crate::protocol::FileProgress;

/// Bytes read per step when a stored part is hashed again.
const REHASH_CHUNK: usize = 4 << 20;

/// Why a file could not be made available.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CacheError {
    /// The download failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Browser storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The bytes do not have the expected sha256; the file was discarded.
    #[error(
        "{file}: sha256 mismatch: expected {expected}, got {actual}; the download was discarded"
    )]
    Mismatch {
        /// `repo/path` or URL.
        file: String,
        /// The sha256 the catalog or hub announced.
        expected: String,
        /// The sha256 of the bytes received.
        actual: String,
    },
    /// Nothing says what the file's sha256 should be, so it cannot be verified.
    #[error("{file}: no sha256 known (the catalog gives none and the hub sent no ETag)")]
    NoDigest {
        /// `repo/path` or URL.
        file: String,
    },
    /// The body ended before the announced size.
    #[error("{file}: the download stopped at {got} of {expected} bytes")]
    Truncated {
        /// `repo/path` or URL.
        file: String,
        /// Bytes stored.
        got: u64,
        /// Announced size.
        expected: u64,
    },
    /// Not enough storage quota for the file.
    #[error("{file}: needs {needed} more bytes but the browser allows only {available} more; free some space or clear cached models")]
    NoSpace {
        /// `repo/path` or URL.
        file: String,
        /// Bytes still to store.
        needed: u64,
        /// Quota minus usage.
        available: u64,
    },
    /// The browser refused a write for lack of space part way through the download; what
    /// was stored of the file was deleted.
    #[error("{file}: the browser's storage filled up after {stored} bytes ({message}); the partial download was deleted; free some space or clear cached models")]
    StorageFull {
        /// `repo/path` or URL.
        file: String,
        /// Bytes of the file stored when the write failed.
        stored: u64,
        /// What the browser said.
        message: String,
    },
    /// The file is too large for this device's memory.
    #[error("{file}: {size} bytes is more than this device can hold ({reason})")]
    TooLarge {
        /// `repo/path` or URL.
        file: String,
        /// The file's size.
        size: u64,
        /// The device limit that applies.
        reason: String,
    },
    /// A range answer that does not start where asked.
    #[error("{file}: asked for bytes from {asked} but the hub answered {content_range:?}")]
    BadRange {
        /// `repo/path` or URL.
        file: String,
        /// The first byte asked for.
        asked: u64,
        /// The `Content-Range` header received.
        content_range: Option<String>,
    },
}

impl CacheError {
    /// The error for a write of `file` that failed with `stored` bytes in place: a full
    /// quota (`QuotaExceededError`) is [`CacheError::StorageFull`].
    pub fn write_failed(file: &str, stored: u64, error: StorageError) -> Self {
        if error.is_quota() {
            Self::StorageFull {
                file: file.to_string(),
                stored,
                message: error.message,
            }
        } else {
            Self::Storage(error)
        }
    }

    /// True when the entry's stored bytes must be deleted: they are wrong (sha256), or there
    /// is no room for them (the next try starts from zero once space is free).
    pub fn discards_entry(&self) -> bool {
        matches!(
            self,
            Self::Mismatch { .. } | Self::NoSpace { .. } | Self::StorageFull { .. }
        )
    }
}

/// One file to make available: where it is, what it is called and what it should hash to.
#[derive(Debug, Clone)]
pub struct FileRequest {
    /// The cache key's text (hub, repo, revision, path), hashed into the entry name.
    pub key: String,
    /// Download URL.
    pub url: String,
    /// Name for messages and progress (`repo/path`).
    pub display: String,
    /// Expected sha256 (lowercase hex), when known before asking the hub.
    pub sha256: Option<String>,
    /// Size in bytes, when known before asking (the catalog's): the storage quota is
    /// checked against it before any request.
    pub size: Option<u64>,
    /// Most bytes this file may have on this device, with the reason (device memory).
    pub max_size: Option<(u64, String)>,
}

/// A verified file in the cache, and how its bytes got there in this call.
#[derive(Debug)]
pub struct CachedFile {
    /// The open file.
    pub file: StoredFile,
    /// Its sha256.
    pub sha256: String,
    /// Bytes fetched over the network in this call.
    pub network_bytes: u64,
    /// Bytes that were already stored (a complete entry, or the start of a resumed one).
    pub cache_bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    url: String,
    sha256: String,
    size: u64,
}

/// The model cache: a namespace directory in OPFS, or a named cache of the Cache API.
#[derive(Debug, Clone)]
pub struct ModelCache {
    dir: Store,
    path: String,
}

impl ModelCache {
    /// Opens (creating) the cache at `path` (`mimir/models`) with the best backend available
    /// ([`Backend::available`]).
    pub async fn open(path: &str) -> Result<Self, StorageError> {
        Self::open_with(path, Backend::available()).await
    }

    /// Opens (creating) the cache at `path` with `backend`.
    pub async fn open_with(path: &str, backend: Backend) -> Result<Self, StorageError> {
        Ok(Self {
            dir: Store::open_with(path, backend).await?,
            path: path.to_string(),
        })
    }

    /// The directory or cache name.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The storage API in use.
    pub fn backend(&self) -> Backend {
        self.dir.backend()
    }

    /// True when the entry for `key` has been verified complete.
    pub async fn is_complete(&self, key: &str) -> Result<bool, StorageError> {
        Ok(self.read_record(&entry_name(key), ".done").await?.is_some())
    }

    /// The names stored for `key` (`K.bin`, `K.part`, `K.done`), for checks and tests.
    pub async fn stored_files(&self, key: &str) -> Result<Vec<String>, StorageError> {
        let entry = entry_name(key);
        let mut names: Vec<String> = self
            .dir
            .entry_names()
            .await?
            .into_iter()
            .filter(|n| n.strip_prefix(&entry).is_some_and(|s| s.starts_with('.')))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Deletes everything stored for `key`: a broken or partial entry.
    pub async fn discard(&self, key: &str) -> Result<(), StorageError> {
        let entry = entry_name(key);
        for suffix in [".done", ".part", ".bin"] {
            self.dir.remove(&format!("{entry}{suffix}")).await?;
        }
        Ok(())
    }

    /// Deletes every entry; returns the bytes freed.
    pub async fn clear(&self) -> Result<u64, CacheError> {
        let freed = self.size_of_entries().await?;
        Store::delete(&self.path, self.backend()).await?;
        Ok(freed)
    }

    async fn size_of_entries(&self) -> Result<u64, StorageError> {
        let mut total = 0;
        for name in self.dir.entry_names().await? {
            if let Some(file) = self.dir.file(&name).await? {
                total += file.size()?;
            }
        }
        Ok(total)
    }

    /// The record `entry` + `suffix` (`.part` or `.done`); an unreadable record is none.
    async fn read_record(&self, entry: &str, suffix: &str) -> Result<Option<Record>, StorageError> {
        let text = self.dir.read_text(&format!("{entry}{suffix}")).await?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    async fn write_record(
        &self,
        entry: &str,
        suffix: &str,
        record: &Record,
    ) -> Result<(), StorageError> {
        let text = serde_json::to_string(record).expect("records always serialise");
        self.dir
            .write_text(&format!("{entry}{suffix}"), &text)
            .await
    }

    /// Makes `request`'s file available and verified: from the cache when complete, else by
    /// downloading (resuming a stored part). `on_progress` gets throttled progress.
    pub async fn fetch(
        &self,
        request: &FileRequest,
        abort: &Abort,
        on_progress: &mut dyn FnMut(FileProgress),
    ) -> Result<CachedFile, CacheError> {
        let entry = entry_name(&request.key);
        let bin = format!("{entry}.bin");
        if let Some(record) = self.read_record(&entry, ".done").await? {
            let wanted = request.sha256.as_deref();
            if let Some(file) = self.dir.file(&bin).await? {
                if file.size()? == record.size && wanted.is_none_or(|w| w == record.sha256) {
                    check_size(request, record.size)?;
                    on_progress(ProgressMeter::cached(&request.display, record.size));
                    return Ok(CachedFile {
                        file,
                        sha256: record.sha256,
                        network_bytes: 0,
                        cache_bytes: record.size,
                    });
                }
            }
            // A record that does not match its bytes or the catalog: start again.
            self.dir.remove(&format!("{entry}.done")).await?;
        }
        if let Some(size) = request.size {
            // A resumed part was counted when it was stored; the check after the answer's
            // headers covers what it still needs.
            if self.read_record(&entry, ".part").await?.is_none() {
                check_quota(&request.display, size).await?;
            }
        }
        let result = self.download(request, &entry, abort, on_progress).await;
        if result.as_ref().is_err_and(CacheError::discards_entry) {
            self.discard(&request.key).await?;
        }
        result
    }

    async fn download(
        &self,
        request: &FileRequest,
        entry: &str,
        abort: &Abort,
        on_progress: &mut dyn FnMut(FileProgress),
    ) -> Result<CachedFile, CacheError> {
        let mut part_bytes = self.dir.part(&format!("{entry}.bin")).await?;
        let part = self.read_record(entry, ".part").await?;
        let mut hasher = Sha256::new();
        let mut offset = match &part {
            Some(part)
                if part.url == request.url
                    && request.sha256.as_ref().is_none_or(|s| *s == part.sha256) =>
            {
                part_bytes.resume(part.size, &mut |b| hasher.update(b), REHASH_CHUNK)?
            }
            _ => {
                part_bytes.restart()?;
                0
            }
        };
        if let Some(part) = part.as_ref().filter(|p| offset > 0 && offset == p.size) {
            // The part is the whole file: the last load stopped between its last byte and
            // `.done`. Asking for `bytes={size}-` would get a 416; verify what is stored.
            on_progress(ProgressMeter::cached(&request.display, offset));
            let expected = part.sha256.clone();
            return self
                .complete(request, entry, part_bytes, hasher, expected, offset, 0)
                .await;
        }
        let mut download = fetch::get(&request.url, offset, abort).await?;
        if offset > 0 && download.status == 200 {
            // The hub ignored the range: the body is the whole file.
            part_bytes.restart()?;
            hasher = Sha256::new();
            offset = 0;
        } else if offset > 0 {
            let content_range = download.header("content-range");
            let starts_at = content_range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes "))
                .and_then(|r| r.split('-').next())
                .and_then(|s| s.parse::<u64>().ok());
            if starts_at != Some(offset) {
                return Err(CacheError::BadRange {
                    file: request.display.clone(),
                    asked: offset,
                    content_range,
                });
            }
        }
        let total = total_size(&download);
        let expected = request
            .sha256
            .clone()
            .or_else(|| hub_digest(&download))
            .ok_or_else(|| CacheError::NoDigest {
                file: request.display.clone(),
            })?;
        if let Some(total) = total {
            check_size(request, total)?;
            check_quota(&request.display, total - offset).await?;
            let record = Record {
                url: request.url.clone(),
                sha256: expected.clone(),
                size: total,
            };
            self.write_record(entry, ".part", &record).await?;
        }
        let mut meter = ProgressMeter::new(&request.display, total, offset, super::now_ms());
        let mut network_bytes = 0;
        let body = async {
            while let Some(chunk) = download.next_chunk().await? {
                part_bytes
                    .append(&chunk, offset)
                    .map_err(|e| CacheError::write_failed(&request.display, offset, e))?;
                hasher.update(&chunk);
                offset += chunk.len() as u64;
                network_bytes += chunk.len() as u64;
                if let Some(progress) = meter.update(offset, super::now_ms()) {
                    on_progress(progress);
                }
            }
            Ok::<(), CacheError>(())
        };
        let body_result = body.await.and_then(|()| match total {
            Some(total) if total != offset => Err(CacheError::Truncated {
                file: request.display.clone(),
                got: offset,
                expected: total,
            }),
            _ => Ok(()),
        });
        if let Err(e) = body_result {
            // The bytes so far are the part the next load resumes from, unless the error
            // discards them.
            if !e.discards_entry() {
                part_bytes
                    .keep()
                    .await
                    .map_err(|e| CacheError::write_failed(&request.display, offset, e))?;
            }
            return Err(e);
        }
        on_progress(meter.finish(offset, super::now_ms()));
        self.complete(
            request,
            entry,
            part_bytes,
            hasher,
            expected,
            offset,
            network_bytes,
        )
        .await
    }

    /// Checks a fully stored download against `expected` and makes it the entry's complete
    /// file (`.done` written, `.part` removed).
    #[allow(clippy::too_many_arguments)]
    async fn complete(
        &self,
        request: &FileRequest,
        entry: &str,
        part_bytes: Part,
        hasher: Sha256,
        expected: String,
        size: u64,
        network_bytes: u64,
    ) -> Result<CachedFile, CacheError> {
        let actual = hex(&hasher.finalize());
        if actual != expected {
            return Err(CacheError::Mismatch {
                file: request.display.clone(),
                expected,
                actual,
            });
        }
        let file = part_bytes
            .finish()
            .await
            .map_err(|e| CacheError::write_failed(&request.display, size, e))?;
        let record = Record {
            url: request.url.clone(),
            sha256: actual.clone(),
            size,
        };
        self.write_record(entry, ".done", &record).await?;
        self.dir.remove(&format!("{entry}.part")).await?;
        Ok(CachedFile {
            file,
            sha256: actual,
            network_bytes,
            cache_bytes: size - network_bytes,
        })
    }
}

/// The entry name for a key: the first 32 hex digits of its sha256 (OPFS names must not
/// hold `/`, and keys are long).
pub fn entry_name(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))[..32].to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The whole file's size: from `Content-Range` for a range answer, else `Content-Length`.
fn total_size(download: &fetch::Download) -> Option<u64> {
    if download.status == 206 {
        download
            .header("content-range")
            .and_then(|r| r.rsplit('/').next().and_then(|t| t.parse().ok()))
    } else {
        download
            .header("content-length")
            .and_then(|l| l.parse().ok())
    }
}

/// The sha256 the hub announces: `X-Linked-Etag` (LFS files), else a 64-hex `ETag`.
fn hub_digest(download: &fetch::Download) -> Option<String> {
    ["x-linked-etag", "etag"]
        .iter()
        .filter_map(|h| download.header(h))
        .map(|v| {
            v.trim_start_matches("W/")
                .trim_matches('"')
                .to_ascii_lowercase()
        })
        .find(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn check_size(request: &FileRequest, size: u64) -> Result<(), CacheError> {
    match &request.max_size {
        Some((max, reason)) if size > *max => Err(CacheError::TooLarge {
            file: request.display.clone(),
            size,
            reason: reason.clone(),
        }),
        _ => Ok(()),
    }
}

/// Fails when the origin's storage quota cannot take `needed` more bytes.
async fn check_quota(file: &str, needed: u64) -> Result<(), CacheError> {
    let Some((usage, quota)) = super::storage_estimate().await else {
        return Ok(());
    };
    let available = quota.saturating_sub(usage);
    if needed > available {
        return Err(CacheError::NoSpace {
            file: file.to_string(),
            needed,
            available,
        });
    }
    Ok(())
}
