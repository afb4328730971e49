//! The Origin Private File System: directories from `navigator.storage.getDirectory()` and
//! files through `FileSystemSyncAccessHandle` (dedicated workers only), which reads and writes
//! at offsets synchronously, so a file can be the engine's `Read + Seek` source and the
//! weights never sit whole in a `Vec<u8>`. See [`super::store`] for the choice between this
//! and the Cache API.

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    FileSystemDirectoryHandle, FileSystemFileHandle, FileSystemGetDirectoryOptions,
    FileSystemGetFileOptions, FileSystemReadWriteOptions, FileSystemRemoveOptions,
    FileSystemSyncAccessHandle,
};

use super::js_error;
use super::store::StorageError;

/// A directory in the origin's private file system.
#[derive(Debug, Clone)]
pub struct Dir {
    handle: FileSystemDirectoryHandle,
    name: String,
}

impl Dir {
    /// The directory `path` (segments separated by `/`) under the OPFS root, created if missing.
    pub async fn open(path: &str) -> Result<Self, StorageError> {
        let storage = super::global().navigator().storage();
        let root = JsFuture::from(storage.get_directory())
            .await
            .map_err(|e| StorageError::new("opening", "the OPFS root", &e))?;
        let mut dir = Self {
            handle: root.unchecked_into(),
            name: String::new(),
        };
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            dir = dir.child(segment).await?;
        }
        Ok(dir)
    }

    /// The subdirectory `name`, created if missing.
    pub async fn child(&self, name: &str) -> Result<Self, StorageError> {
        let options = FileSystemGetDirectoryOptions::new();
        options.set_create(true);
        let full = format!("{}/{name}", self.name);
        let handle = JsFuture::from(
            self.handle
                .get_directory_handle_with_options(name, &options),
        )
        .await
        .map_err(|e| StorageError::new("opening", &full, &e))?;
        Ok(Self {
            handle: handle.unchecked_into(),
            name: full,
        })
    }

    /// Opens `name` for synchronous access; `None` when it does not exist and `create` is false.
    pub async fn open_file(&self, name: &str, create: bool) -> Result<Option<File>, StorageError> {
        let options = FileSystemGetFileOptions::new();
        options.set_create(create);
        let full = format!("{}/{name}", self.name);
        let handle =
            match JsFuture::from(self.handle.get_file_handle_with_options(name, &options)).await {
                Ok(handle) => handle.unchecked_into::<FileSystemFileHandle>(),
                Err(e) if !create && js_error(&e).contains("NotFound") => return Ok(None),
                Err(e) => return Err(StorageError::new("opening", &full, &e)),
            };
        let access = JsFuture::from(handle.create_sync_access_handle())
            .await
            .map_err(|e| StorageError::new("locking", &full, &e))?;
        Ok(Some(File {
            access: access.unchecked_into(),
            name: full,
        }))
    }

    /// Deletes `name` (a file, or a directory with everything in it); missing is not an error.
    pub async fn remove(&self, name: &str) -> Result<(), StorageError> {
        let options = FileSystemRemoveOptions::new();
        options.set_recursive(true);
        match JsFuture::from(self.handle.remove_entry_with_options(name, &options)).await {
            Ok(_) => Ok(()),
            Err(e) if js_error(&e).contains("NotFound") => Ok(()),
            Err(e) => Err(StorageError::new(
                "deleting",
                &format!("{}/{name}", self.name),
                &e,
            )),
        }
    }

    /// The names of the entries in this directory.
    pub async fn entry_names(&self) -> Result<Vec<String>, StorageError> {
        let listing = |e: &JsValue| StorageError::new("listing", &self.name, e);
        let keys = self.handle.keys();
        let mut names = Vec::new();
        loop {
            let next = JsFuture::from(keys.next().map_err(|e| listing(&e))?)
                .await
                .map_err(|e| listing(&e))?;
            if Reflect::get(&next, &JsValue::from_str("done")).map_or(true, |d| d.is_truthy()) {
                return Ok(names);
            }
            if let Some(name) = Reflect::get(&next, &JsValue::from_str("value"))
                .ok()
                .and_then(|v| v.as_string())
            {
                names.push(name);
            }
        }
    }

    /// Reads a whole small file as text; `None` when missing.
    pub async fn read_text(&self, name: &str) -> Result<Option<String>, StorageError> {
        let Some(file) = self.open_file(name, false).await? else {
            return Ok(None);
        };
        let size = file.size()?;
        let mut bytes = vec![0; size as usize];
        file.read_at(&mut bytes, 0)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Replaces a small file's content with `text`.
    pub async fn write_text(&self, name: &str, text: &str) -> Result<(), StorageError> {
        let file = self
            .open_file(name, true)
            .await?
            .expect("created when missing");
        file.truncate(0)?;
        file.write_at(text.as_bytes(), 0)?;
        file.flush()
    }
}

/// A file opened with an exclusive `FileSystemSyncAccessHandle`; closed on drop.
#[derive(Debug)]
pub struct File {
    access: FileSystemSyncAccessHandle,
    name: String,
}

impl File {
    /// The file's path in OPFS, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Current size in bytes.
    pub fn size(&self) -> Result<u64, StorageError> {
        self.access
            .get_size()
            .map(|s| s as u64)
            .map_err(|e| StorageError::new("measuring", &self.name, &e))
    }

    /// Reads into `buf` from byte `at`; returns how many bytes were read (0 at the end).
    pub fn read_at(&self, buf: &mut [u8], at: u64) -> Result<usize, StorageError> {
        let options = FileSystemReadWriteOptions::new();
        options.set_at(at as f64);
        self.access
            .read_with_u8_array_and_options(buf, &options)
            .map(|n| n as usize)
            .map_err(|e| StorageError::new("reading", &self.name, &e))
    }

    /// Writes all of `bytes` at byte `at`.
    pub fn write_at(&self, bytes: &[u8], at: u64) -> Result<(), StorageError> {
        let options = FileSystemReadWriteOptions::new();
        options.set_at(at as f64);
        let written = self
            .access
            .write_with_u8_array_and_options(bytes, &options)
            .map_err(|e| StorageError::new("writing", &self.name, &e))?;
        if written as usize != bytes.len() {
            return Err(StorageError {
                what: "writing",
                name: self.name.clone(),
                message: format!("wrote {written} of {} bytes", bytes.len()),
            });
        }
        Ok(())
    }

    /// Cuts the file to `size` bytes.
    pub fn truncate(&self, size: u64) -> Result<(), StorageError> {
        self.access
            .truncate_with_f64(size as f64)
            .map_err(|e| StorageError::new("truncating", &self.name, &e))
    }

    /// Makes written bytes durable.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.access
            .flush()
            .map_err(|e| StorageError::new("flushing", &self.name, &e))
    }
}

impl Drop for File {
    fn drop(&mut self) {
        self.access.close();
    }
}
