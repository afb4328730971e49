//! SHA-256 of served files, computed by streaming and cached per file (keyed by
//! canonical path, checked against size and modification time) so that a
//! multi-gigabyte model is hashed once rather than on every request.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::lock;

/// Cache of file digests; concurrent requests for the same file wait for one hash.
#[derive(Default)]
pub(crate) struct DigestCache {
    slots: Mutex<HashMap<PathBuf, Arc<Mutex<Option<Cached>>>>>,
}

struct Cached {
    len: u64,
    modified: Option<SystemTime>,
    hex: String,
}

impl DigestCache {
    /// Lowercase hex SHA-256 of the file at `path`, whose current metadata is `meta`.
    pub(crate) fn sha256(&self, path: &Path, meta: &Metadata) -> io::Result<String> {
        let slot = Arc::clone(lock(&self.slots).entry(path.to_path_buf()).or_default());
        let mut cached = lock(&slot);
        let (len, modified) = (meta.len(), meta.modified().ok());
        if let Some(hit) = cached.as_ref() {
            if hit.len == len && hit.modified == modified {
                return Ok(hit.hex.clone());
            }
        }
        let hex = sha256_file(path)?;
        *cached = Some(Cached {
            len,
            modified,
            hex: hex.clone(),
        });
        Ok(hex)
    }
}

/// Lowercase hex SHA-256 of a file, read in 1 MiB pieces.
pub(crate) fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(to_hex(&hasher.finalize()))
}

/// Lowercase hex SHA-256 of some bytes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_digest() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
