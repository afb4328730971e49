//! A local stand-in for the Hugging Face Hub's file-download endpoint, with fault
//! injection for tests, plus a static file server for a built web app.
//!
//! # Hub mode
//! `GET`/`HEAD /{owner}/{repo}/resolve/{revision}/{path...}` serves
//! `ROOT/{owner}/{repo}/{path...}`. The repo part may also be one segment
//! (`/{repo}/resolve/...`) or three (`/datasets/{owner}/{repo}/resolve/...`); the
//! folder under ROOT mirrors it. The revision picks nothing; `X-Repo-Commit` is
//! the revision when it is a 40-hex commit id, else a stable fake id derived from
//! repo and revision. `ETag` and `X-Linked-Etag` are the quoted SHA-256 of the file
//! (hashed once, cached by path + size + mtime), `X-Linked-Size` its size.
//! Missing repo: 404 `X-Error-Code: RepoNotFound`; missing file or a folder: 404
//! `X-Error-Code: EntryNotFound`; both with a JSON body `{"error": "..."}`.
//!
//! # Static mode
//! Files under ROOT by path, `index.html` for `/` and for folders, with the
//! headers of a Hugging Face static Space using COOP/COEP, or the headers given in
//! [`HubConfig::headers`] (e.g. a Space README's `custom_headers`, see [`space_headers`]).
//!
//! # Both modes
//! Ranges: one `bytes=` range gives 206; several ranges give 200 with the whole
//! file; malformed or unsatisfiable give 416 `Content-Range: bytes */SIZE`; other
//! units are ignored. `If-Range` equal to the current ETag keeps the range,
//! anything else gives the whole file. Paths that try to leave ROOT are refused
//! with 400 (malformed) or 404 (symlink pointing outside). Every answer carries
//! CORS (`*`) and `Cross-Origin-Resource-Policy: cross-origin`; `OPTIONS` gets 204.
//! Faults (see [`Fault`]) and the control endpoints `/_hub/faults`
//! (GET, POST/PUT to replace, DELETE to clear) and `/_hub/log` (GET, DELETE) work
//! in both modes. The server listens on 127.0.0.1 only, one thread per connection.

mod conn;
mod control;
mod digest;
mod error;
mod fault;
mod files;
mod http;
mod log;
mod path;
mod range;
mod route;
mod space_headers;

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use error::HubError;
pub use fault::{load_faults, parse_faults, Fault};
pub use log::RequestRecord;
pub use space_headers::{parse_header, parse_space_headers, space_headers};

use digest::DigestCache;
use fault::FaultTable;
use log::RequestLog;
use path::SafeRoot;

/// Which layout the server exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Hugging Face Hub `resolve` URLs over `ROOT/{owner}/{repo}/...`.
    #[default]
    Hub,
    /// A static web app (a static Space) with COOP/COEP headers.
    Static,
}

/// Everything needed to start a server.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The folder to serve.
    pub root: PathBuf,
    /// Port on 127.0.0.1; 0 picks a free one (read it back with [`HubServer::port`]).
    pub port: u16,
    /// Faults active from the start.
    pub faults: Vec<Fault>,
    /// Hub or static layout.
    pub mode: Mode,
    /// Headers added to every answer. Empty: none in hub mode, and in static mode the
    /// cross-origin isolation pair a static Space sends (`STATIC_SPACE_HEADERS`).
    pub headers: Vec<(String, String)>,
}

/// What a static Space configured for cross-origin isolation sends with every file.
pub const STATIC_SPACE_HEADERS: [(&str, &str); 2] = [
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Embedder-Policy", "require-corp"),
];

impl HubConfig {
    /// Hub mode on `root`, a free port, no faults.
    pub fn new(root: impl Into<PathBuf>) -> HubConfig {
        HubConfig {
            root: root.into(),
            port: 0,
            faults: Vec::new(),
            mode: Mode::Hub,
            headers: Vec::new(),
        }
    }
}

/// Shared by the accept thread, connection threads and the [`HubServer`] handle.
pub(crate) struct State {
    root: SafeRoot,
    mode: Mode,
    page_headers: Vec<(String, String)>,
    faults: FaultTable,
    log: RequestLog,
    digests: DigestCache,
    stopping: AtomicBool,
    conns: Mutex<HashMap<u64, TcpStream>>,
    next_conn: AtomicU64,
}

/// Locks a mutex, carrying on with the data if another thread panicked holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running server; dropping it (or [`HubServer::shutdown`]) stops it.
#[derive(Debug)]
pub struct HubServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("root", &self.root)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl HubServer {
    /// Checks the root and faults, binds 127.0.0.1:`port` and starts serving.
    pub fn start(config: HubConfig) -> Result<HubServer, HubError> {
        let root = SafeRoot::new(&config.root)?;
        config.faults.iter().try_for_each(Fault::validate)?;
        let wanted = SocketAddr::from(([127, 0, 0, 1], config.port));
        let bind_error = |source: std::io::Error| HubError::Bind {
            addr: wanted,
            reason: bind_reason(&source),
            source,
        };
        let page_headers = match (config.mode, config.headers.is_empty()) {
            (Mode::Static, true) => STATIC_SPACE_HEADERS
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            _ => config.headers,
        };
        let listener = TcpListener::bind(wanted).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let state = Arc::new(State {
            root,
            mode: config.mode,
            page_headers,
            faults: FaultTable::new(config.faults),
            log: RequestLog::default(),
            digests: DigestCache::default(),
            stopping: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(0),
        });
        let accept_state = Arc::clone(&state);
        let accept = thread::Builder::new()
            .name("hub-accept".to_string())
            .spawn(move || conn::accept_loop(listener, accept_state))
            .map_err(|source| HubError::Thread { source })?;
        Ok(HubServer {
            addr,
            state,
            accept: Some(accept),
        })
    }

    /// Base URL, e.g. `http://127.0.0.1:8081`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address actually bound (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The canonical folder being served.
    pub fn root(&self) -> &Path {
        self.state.root.as_path()
    }

    /// The layout being served.
    pub fn mode(&self) -> Mode {
        self.state.mode
    }

    /// Replaces the active faults (use counts restart); refuses invalid ones.
    pub fn set_faults(&self, faults: Vec<Fault>) -> Result<(), HubError> {
        faults.iter().try_for_each(Fault::validate)?;
        self.state.faults.replace(faults);
        Ok(())
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.faults.replace(Vec::new());
    }

    /// The active faults.
    pub fn faults(&self) -> Vec<Fault> {
        self.state.faults.list()
    }

    /// Requests served so far (oldest first, the last 10,000), control endpoints excepted.
    pub fn log(&self) -> Vec<RequestRecord> {
        self.state.log.snapshot()
    }

    /// Forgets the request log.
    pub fn clear_log(&self) {
        self.state.log.clear();
    }

    /// Stops accepting, closes every open connection and frees the port.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Serves until the process ends (for a command-line tool).
    pub fn run_forever(mut self) {
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }

    fn stop(&mut self) {
        self.state.stopping.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            // Wake the blocked accept() so the thread sees `stopping` and drops the listener.
            if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
                let _ = accept.join();
            }
        }
        for (_, stream) in lock(&self.state.conns).drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for HubServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => "address in use".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::AddrNotAvailable => "address not available".to_string(),
        _ => error.to_string(),
    }
}

/// Starts a hub-mode server on `root` and `port` (0 = any free port), without faults.
pub fn serve_hub(root: impl Into<PathBuf>, port: u16) -> Result<HubServer, HubError> {
    HubServer::start(HubConfig {
        port,
        ..HubConfig::new(root)
    })
}

/// Starts a static-mode server for a built web app on `root` and `port` (0 = any free port).
pub fn serve_static(root: impl Into<PathBuf>, port: u16) -> Result<HubServer, HubError> {
    HubServer::start(HubConfig {
        port,
        mode: Mode::Static,
        ..HubConfig::new(root)
    })
}
