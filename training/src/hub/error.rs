//! Errors the hub server reports to the code that starts or configures it.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the hub server could not start, or why a fault list was refused.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The folder to serve does not exist.
    #[error("hub root {} does not exist", .path.display())]
    RootMissing {
        /// The folder as configured.
        path: PathBuf,
    },
    /// The folder to serve is a file or something else that is not a folder.
    #[error("hub root {} is not a directory", .path.display())]
    RootNotDirectory {
        /// The path as configured.
        path: PathBuf,
    },
    /// The folder to serve exists but cannot be inspected or canonicalized.
    #[error("cannot open hub root {}: {source}", .path.display())]
    RootUnreadable {
        /// The folder as configured.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The listening socket could not be bound.
    #[error("cannot bind {addr}: {reason}")]
    Bind {
        /// The address asked for (always on 127.0.0.1).
        addr: SocketAddr,
        /// A short human reason, e.g. "address in use".
        reason: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// The server's accept thread could not be started.
    #[error("cannot start the hub server thread: {source}")]
    Thread {
        /// What the operating system said.
        source: io::Error,
    },
    /// A fault file could not be read.
    #[error("cannot read fault file {}: {source}", .path.display())]
    FaultFileUnreadable {
        /// The fault file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A fault file was read but its content is not a valid fault list.
    #[error("invalid fault file {}: {reason}", .path.display())]
    FaultFile {
        /// The fault file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A fault list is not JSON of the expected shape.
    #[error("invalid fault list: {reason}")]
    FaultList {
        /// What is wrong with it.
        reason: String,
    },
    /// One fault is well-formed JSON but makes no sense (e.g. status 200, rate 0).
    #[error("invalid fault for path {path:?}: {reason}")]
    InvalidFault {
        /// The fault's path pattern.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A Space README whose front matter gives no usable `custom_headers`.
    #[error("Space README {}: {reason}", .path.display())]
    SpaceReadme {
        /// The README.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A header given as `Name: value` that cannot be sent.
    #[error("header {header:?}: {reason}")]
    BadHeader {
        /// The header as given.
        header: String,
        /// What is wrong with it.
        reason: String,
    },
}
