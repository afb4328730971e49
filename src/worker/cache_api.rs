//! The Cache API (`caches`) as the store where OPFS is missing. A named cache plays the part
//! of a directory: each stored name is a response under a made-up URL that is never fetched.
//!
//! Stored bytes are read back as a `Blob` (a handle on the stored body, not a copy in
//! memory), one slice at a time through `FileReaderSync` (dedicated workers
//! only), so a model still reaches the engine as `Read + Seek` without a whole-file `Vec`.
//! The Cache API cannot append: a download is gathered into a `Blob` (the browser spills large
//! ones to disk) and stored with one `put`: after its sha256 check when complete, or as the
//! part to resume from when the download stops with an error. A part is lost when the tab
//! closes mid-download: the next load starts that file from zero.

use js_sys::{Array, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, FileReaderSync, Request, Response};

use super::store::StorageError;

/// The origin of the keys: reserved (`.invalid`), so no key is ever a real address.
const KEY_ORIGIN: &str = "https://cache.mimir.invalid/";

/// Bytes gathered as separate chunks before they are joined into one `Blob`.
const JOIN_EVERY: u64 = 64 << 20;

/// A named cache standing in for a directory.
#[derive(Debug, Clone)]
pub struct CacheDir {
    cache: web_sys::Cache,
    name: String,
}

fn caches(name: &str) -> Result<web_sys::CacheStorage, StorageError> {
    super::global()
        .caches()
        .map_err(|e| StorageError::new("opening", name, &e))
}

impl CacheDir {
    /// Opens (creating) the cache called `name`.
    pub async fn open(name: &str) -> Result<Self, StorageError> {
        let cache = JsFuture::from(caches(name)?.open(name))
            .await
            .map_err(|e| StorageError::new("opening", name, &e))?;
        Ok(Self {
            cache: cache.unchecked_into(),
            name: name.to_string(),
        })
    }

    /// Deletes the cache called `name` with everything in it; missing is not an error.
    pub async fn delete(name: &str) -> Result<(), StorageError> {
        JsFuture::from(caches(name)?.delete(name))
            .await
            .map(drop)
            .map_err(|e| StorageError::new("deleting", name, &e))
    }

    fn url(&self, key: &str) -> String {
        format!("{KEY_ORIGIN}{}/{key}", self.name)
    }

    fn full(&self, key: &str) -> String {
        format!("{}/{key}", self.name)
    }

    async fn response(&self, key: &str) -> Result<Option<Response>, StorageError> {
        let found = JsFuture::from(self.cache.match_with_str(&self.url(key)))
            .await
            .map_err(|e| StorageError::new("reading", &self.full(key), &e))?;
        Ok(found.dyn_into::<Response>().ok())
    }

    /// The bytes stored under `key` as a file; `None` when missing.
    pub async fn file(&self, key: &str) -> Result<Option<BlobFile>, StorageError> {
        let Some(response) = self.response(key).await? else {
            return Ok(None);
        };
        let reading = |e: &JsValue| StorageError::new("reading", &self.full(key), e);
        let blob = JsFuture::from(response.blob().map_err(|e| reading(&e))?)
            .await
            .map_err(|e| reading(&e))?;
        BlobFile::new(blob.unchecked_into(), self.full(key)).map(Some)
    }

    /// Stores `blob` under `key`, replacing what was there.
    pub async fn put(&self, key: &str, blob: &Blob) -> Result<(), StorageError> {
        let writing = |e: &JsValue| StorageError::new("writing", &self.full(key), e);
        let response = Response::new_with_opt_blob(Some(blob)).map_err(|e| writing(&e))?;
        JsFuture::from(self.cache.put_with_str(&self.url(key), &response))
            .await
            .map(drop)
            .map_err(|e| writing(&e))
    }

    /// Deletes `key`; missing is not an error.
    pub async fn remove(&self, key: &str) -> Result<(), StorageError> {
        JsFuture::from(self.cache.delete_with_str(&self.url(key)))
            .await
            .map(drop)
            .map_err(|e| StorageError::new("deleting", &self.full(key), &e))
    }

    /// The names stored in this cache.
    pub async fn entry_names(&self) -> Result<Vec<String>, StorageError> {
        let requests = JsFuture::from(self.cache.keys())
            .await
            .map_err(|e| StorageError::new("listing", &self.name, &e))?;
        let prefix = self.url("");
        Ok(Array::from(&requests)
            .iter()
            .filter_map(|r| r.dyn_into::<Request>().ok())
            .filter_map(|r| r.url().strip_prefix(&prefix).map(str::to_string))
            .collect())
    }

    /// Reads a small stored text; `None` when missing.
    pub async fn read_text(&self, key: &str) -> Result<Option<String>, StorageError> {
        let Some(response) = self.response(key).await? else {
            return Ok(None);
        };
        let reading = |e: &JsValue| StorageError::new("reading", &self.full(key), e);
        let text = JsFuture::from(response.text().map_err(|e| reading(&e))?)
            .await
            .map_err(|e| reading(&e))?;
        Ok(text.as_string())
    }

    /// Replaces a small stored text with `text`.
    pub async fn write_text(&self, key: &str, text: &str) -> Result<(), StorageError> {
        let parts = Array::of1(&JsValue::from_str(text));
        let blob = Blob::new_with_str_sequence(&parts)
            .map_err(|e| StorageError::new("writing", &self.full(key), &e))?;
        self.put(key, &blob).await
    }

    /// The part of a download stored under `key`, to resume from or to start anew.
    pub async fn part(&self, key: &str) -> Result<BlobPart, StorageError> {
        Ok(BlobPart {
            stored: self.file(key).await?,
            dir: self.clone(),
            key: key.to_string(),
            chunks: Array::new(),
            size: 0,
            joined: 0,
        })
    }
}

/// Stored bytes read at offsets through `FileReaderSync`.
#[derive(Debug)]
pub struct BlobFile {
    blob: Blob,
    reader: FileReaderSync,
    name: String,
}

impl BlobFile {
    fn new(blob: Blob, name: String) -> Result<Self, StorageError> {
        let reader = FileReaderSync::new().map_err(|e| StorageError::new("reading", &name, &e))?;
        Ok(Self { blob, reader, name })
    }

    /// The file's name in its cache, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.blob.size() as u64
    }

    /// Reads into `buf` from byte `at`; returns how many bytes were read (0 at the end).
    pub fn read_at(&self, buf: &mut [u8], at: u64) -> Result<usize, StorageError> {
        let reading = |e: &JsValue| StorageError::new("reading", &self.name, e);
        let end = (at + buf.len() as u64).min(self.size());
        if at >= end {
            return Ok(0);
        }
        let slice = self
            .blob
            .slice_with_f64_and_f64(at as f64, end as f64)
            .map_err(|e| reading(&e))?;
        let bytes = self
            .reader
            .read_as_array_buffer(&slice)
            .map_err(|e| reading(&e))?;
        let bytes = Uint8Array::new(&bytes);
        let n = bytes.length() as usize;
        bytes.copy_to(&mut buf[..n]);
        Ok(n)
    }
}

/// A download in progress: the stored part it may resume from, then the chunks received.
#[derive(Debug)]
pub struct BlobPart {
    dir: CacheDir,
    key: String,
    /// What a previous download stored, until [`BlobPart::keep_stored`] or [`BlobPart::clear`].
    stored: Option<BlobFile>,
    /// `Blob`s and `Uint8Array`s, in order.
    chunks: Array,
    size: u64,
    /// `size` when the chunks were last joined into one `Blob`.
    joined: u64,
}

impl BlobPart {
    /// The part a previous download stored, to hash again before resuming from it.
    pub fn stored(&self) -> Option<&BlobFile> {
        self.stored.as_ref()
    }

    /// Resumes after the stored part's first `size` bytes.
    pub fn keep_stored(&mut self, size: u64) -> Result<(), StorageError> {
        let stored = self.stored.take();
        self.clear();
        if let Some(stored) = stored {
            let size = size.min(stored.size());
            let start = stored
                .blob
                .slice_with_f64_and_f64(0.0, size as f64)
                .map_err(|e| StorageError::new("reading", &stored.name, &e))?;
            self.chunks.push(&start);
            self.size = size;
            self.joined = size;
        }
        Ok(())
    }

    /// Drops every byte: the download starts from zero.
    pub fn clear(&mut self) {
        self.stored = None;
        self.chunks = Array::new();
        self.size = 0;
        self.joined = 0;
    }

    /// Bytes gathered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `bytes`; every [`JOIN_EVERY`] bytes the chunks become one `Blob`, which the
    /// browser may keep on disk rather than in memory.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        self.chunks.push(&Uint8Array::from(bytes));
        self.size += bytes.len() as u64;
        if self.size - self.joined >= JOIN_EVERY {
            let joined = self.blob()?;
            self.chunks = Array::of1(&joined);
            self.joined = self.size;
        }
        Ok(())
    }

    fn blob(&self) -> Result<Blob, StorageError> {
        Blob::new_with_blob_sequence(&self.chunks)
            .map_err(|e| StorageError::new("writing", &self.dir.full(&self.key), &e))
    }

    /// Stores the bytes gathered so far under the part's key (the part to resume from, or
    /// the complete file).
    pub async fn store(&self) -> Result<(), StorageError> {
        self.dir.put(&self.key, &self.blob()?).await
    }

    /// Stores the bytes as the complete file and opens it from the cache for reading.
    pub async fn finish(self) -> Result<BlobFile, StorageError> {
        self.store().await?;
        self.dir.file(&self.key).await?.ok_or_else(|| StorageError {
            what: "reading",
            name: self.dir.full(&self.key),
            message: "the file just stored is missing".into(),
        })
    }
}
