//! Where the worker keeps files: OPFS ([`super::opfs`]) where the browser has it with sync
//! access handles, else the Cache API ([`super::cache_api`]). One interface over both: small
//! texts, named files read at offsets, and the part of a download in progress.

use std::io::{self, Read, Seek, SeekFrom};

use js_sys::Reflect;
use thiserror::Error;
use wasm_bindgen::JsValue;

use super::cache_api::{BlobFile, BlobPart, CacheDir};
use super::js_error;
use super::opfs::{Dir, File};

/// A browser storage operation that failed.
#[derive(Debug, Error, Clone, PartialEq)]
#[error("browser storage, {what} {name}: {message}")]
pub struct StorageError {
    /// The operation (`opening`, `writing`, ...).
    pub what: &'static str,
    /// The file or directory.
    pub name: String,
    /// What the browser said.
    pub message: String,
}

impl StorageError {
    /// The error of operation `what` on `name`, from what the browser threw.
    pub fn new(what: &'static str, name: &str, error: &JsValue) -> Self {
        Self {
            what,
            name: name.to_string(),
            message: js_error(error),
        }
    }

    /// True when the browser refused a write for lack of space.
    pub fn is_quota(&self) -> bool {
        self.message.contains("QuotaExceeded")
    }
}

/// The storage API a [`Store`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The Origin Private File System with `FileSystemSyncAccessHandle`.
    Opfs,
    /// The Cache API (`caches`).
    CacheApi,
}

impl Backend {
    /// OPFS when this browser has `navigator.storage.getDirectory` and sync access handles,
    /// else the Cache API.
    pub fn available() -> Self {
        let global = super::global();
        let has = |target: &JsValue, name: &str| {
            Reflect::get(target, &JsValue::from_str(name)).is_ok_and(|v| v.is_function())
        };
        let storage = Reflect::get(&global.navigator(), &JsValue::from_str("storage"))
            .unwrap_or(JsValue::UNDEFINED);
        let sync_handles = Reflect::get(&global, &JsValue::from_str("FileSystemFileHandle"))
            .and_then(|class| Reflect::get(&class, &JsValue::from_str("prototype")))
            .is_ok_and(|prototype| has(&prototype, "createSyncAccessHandle"));
        if !storage.is_undefined() && has(&storage, "getDirectory") && sync_handles {
            Self::Opfs
        } else {
            Self::CacheApi
        }
    }
}

/// A directory in OPFS, or a named cache.
#[derive(Debug, Clone)]
pub enum Store {
    /// An OPFS directory.
    Opfs(Dir),
    /// A named cache of the Cache API.
    Cache(CacheDir),
}

impl Store {
    /// Opens (creating) the store at `path` (`mimir/models`) with the best backend available.
    pub async fn open(path: &str) -> Result<Self, StorageError> {
        Self::open_with(path, Backend::available()).await
    }

    /// Opens (creating) the store at `path` with `backend`.
    pub async fn open_with(path: &str, backend: Backend) -> Result<Self, StorageError> {
        Ok(match backend {
            Backend::Opfs => Self::Opfs(Dir::open(path).await?),
            Backend::CacheApi => Self::Cache(CacheDir::open(path).await?),
        })
    }

    /// Deletes the store at `path` with everything in it; missing is not an error.
    pub async fn delete(path: &str, backend: Backend) -> Result<(), StorageError> {
        match backend {
            Backend::Opfs => {
                let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
                Dir::open(parent).await?.remove(name).await
            }
            Backend::CacheApi => CacheDir::delete(path).await,
        }
    }

    /// The backend this store uses.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Opfs(_) => Backend::Opfs,
            Self::Cache(_) => Backend::CacheApi,
        }
    }

    /// The names stored.
    pub async fn entry_names(&self) -> Result<Vec<String>, StorageError> {
        match self {
            Self::Opfs(dir) => dir.entry_names().await,
            Self::Cache(dir) => dir.entry_names().await,
        }
    }

    /// Reads a small text; `None` when missing.
    pub async fn read_text(&self, name: &str) -> Result<Option<String>, StorageError> {
        match self {
            Self::Opfs(dir) => dir.read_text(name).await,
            Self::Cache(dir) => dir.read_text(name).await,
        }
    }

    /// Replaces a small text with `text`.
    pub async fn write_text(&self, name: &str, text: &str) -> Result<(), StorageError> {
        match self {
            Self::Opfs(dir) => dir.write_text(name, text).await,
            Self::Cache(dir) => dir.write_text(name, text).await,
        }
    }

    /// Deletes `name`; missing is not an error.
    pub async fn remove(&self, name: &str) -> Result<(), StorageError> {
        match self {
            Self::Opfs(dir) => dir.remove(name).await,
            Self::Cache(dir) => dir.remove(name).await,
        }
    }

    /// Opens `name` for reading; `None` when missing.
    pub async fn file(&self, name: &str) -> Result<Option<StoredFile>, StorageError> {
        Ok(match self {
            Self::Opfs(dir) => dir.open_file(name, false).await?.map(StoredFile::Opfs),
            Self::Cache(dir) => dir.file(name).await?.map(StoredFile::Blob),
        })
    }

    /// The bytes of a download into `name`, starting with what is stored there.
    pub async fn part(&self, name: &str) -> Result<Part, StorageError> {
        Ok(match self {
            Self::Opfs(dir) => Part::Opfs(dir.open_file(name, true).await?.expect("created")),
            Self::Cache(dir) => Part::Blob(dir.part(name).await?),
        })
    }
}

/// A stored file, read at offsets.
#[derive(Debug)]
pub enum StoredFile {
    /// An OPFS file with its exclusive sync access handle.
    Opfs(File),
    /// A body from the Cache API.
    Blob(BlobFile),
}

impl StoredFile {
    /// The file's name, for messages.
    pub fn name(&self) -> &str {
        match self {
            Self::Opfs(file) => file.name(),
            Self::Blob(file) => file.name(),
        }
    }

    /// Size in bytes.
    pub fn size(&self) -> Result<u64, StorageError> {
        match self {
            Self::Opfs(file) => file.size(),
            Self::Blob(file) => Ok(file.size()),
        }
    }

    /// Reads into `buf` from byte `at`; returns how many bytes were read (0 at the end).
    pub fn read_at(&self, buf: &mut [u8], at: u64) -> Result<usize, StorageError> {
        match self {
            Self::Opfs(file) => file.read_at(buf, at),
            Self::Blob(file) => file.read_at(buf, at),
        }
    }

    /// A `Read + Seek` view of the file for the engine.
    pub fn reader(&self) -> Result<StoredReader<'_>, StorageError> {
        Ok(StoredReader {
            file: self,
            position: 0,
            size: self.size()?,
        })
    }
}

/// Reads a [`StoredFile`] as a stream: the GGUF reader takes it like a native file.
#[derive(Debug)]
pub struct StoredReader<'f> {
    file: &'f StoredFile,
    position: u64,
    size: u64,
}

impl Read for StoredReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .file
            .read_at(buf, self.position)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for StoredReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        self.position = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: seek before the start", self.file.name()),
            )
        })?;
        Ok(self.position)
    }
}

/// The bytes of a download in progress: written in place in OPFS, gathered in a `Blob` for
/// the Cache API (stored by [`Part::keep`] or [`Part::finish`]).
#[derive(Debug)]
pub enum Part {
    /// The OPFS file written as the bytes arrive.
    Opfs(File),
    /// The gathered bytes and the stored part they started from.
    Blob(BlobPart),
}

impl Part {
    /// Hashes the first `limit` stored bytes with `hash` (an unverified part is never
    /// trusted), keeps them as the start of the download and returns how many there are.
    pub fn resume(
        &mut self,
        limit: u64,
        hash: &mut dyn FnMut(&[u8]),
        chunk: usize,
    ) -> Result<u64, StorageError> {
        let at = match self {
            Self::Opfs(file) => {
                let at = read_prefix(
                    |buf, at| file.read_at(buf, at),
                    file.size()?,
                    limit,
                    hash,
                    chunk,
                )?;
                file.truncate(at)?;
                at
            }
            Self::Blob(part) => {
                let at = match part.stored() {
                    Some(stored) => read_prefix(
                        |buf, at| stored.read_at(buf, at),
                        stored.size(),
                        limit,
                        hash,
                        chunk,
                    )?,
                    None => 0,
                };
                part.keep_stored(at)?;
                at
            }
        };
        Ok(at)
    }

    /// Drops every byte: the download starts from zero.
    pub fn restart(&mut self) -> Result<(), StorageError> {
        match self {
            Self::Opfs(file) => file.truncate(0),
            Self::Blob(part) => {
                part.clear();
                Ok(())
            }
        }
    }

    /// Adds `bytes`, which start at byte `at` (the part's size).
    pub fn append(&mut self, bytes: &[u8], at: u64) -> Result<(), StorageError> {
        match self {
            Self::Opfs(file) => file.write_at(bytes, at),
            Self::Blob(part) => {
                debug_assert_eq!(part.size(), at);
                part.append(bytes)
            }
        }
    }

    /// Makes the bytes so far durable, to resume from after an error.
    pub async fn keep(&self) -> Result<(), StorageError> {
        match self {
            Self::Opfs(file) => file.flush(),
            Self::Blob(part) if part.size() > 0 => part.store().await,
            Self::Blob(_) => Ok(()),
        }
    }

    /// Stores the complete, verified bytes and opens them for reading.
    pub async fn finish(self) -> Result<StoredFile, StorageError> {
        match self {
            Self::Opfs(file) => {
                file.flush()?;
                Ok(StoredFile::Opfs(file))
            }
            Self::Blob(part) => part.finish().await.map(StoredFile::Blob),
        }
    }
}

/// Feeds the first `limit` of `size` bytes to `hash`, `chunk` bytes at a time; returns how
/// many were read.
fn read_prefix(
    read_at: impl Fn(&mut [u8], u64) -> Result<usize, StorageError>,
    size: u64,
    limit: u64,
    hash: &mut dyn FnMut(&[u8]),
    chunk: usize,
) -> Result<u64, StorageError> {
    let stored = size.min(limit);
    let mut buf = vec![0; chunk];
    let mut at = 0;
    while at < stored {
        let want = ((stored - at) as usize).min(buf.len());
        let n = read_at(&mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        hash(&buf[..n]);
        at += n as u64;
    }
    Ok(at)
}
