//! What to answer to one request: a control endpoint, a CORS preflight, or a
//! file (hub or static layout), with faults applied and common headers added.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::control;
use super::digest::sha256_hex;
use super::files::{self, entry_not_found, Located};
use super::http::{is_tchar, Body, Request, Response, Shaping};
use super::path::{self, Refusal, SafeRoot};
use super::{Fault, Mode, RequestRecord, State};

const ALLOW_METHODS: &str = "GET, HEAD, POST, DELETE, OPTIONS";
const ALLOW_HEADERS: &str =
    "Range, If-Range, If-None-Match, Content-Type, Authorization, Cache-Control";
const EXPOSE_HEADERS: &str = "Content-Length, Content-Range, Content-Type, ETag, X-Linked-Etag, \
     X-Linked-Size, Accept-Ranges, X-Repo-Commit, X-Error-Code, X-Error-Message";

/// A response plus how to send it.
pub(crate) struct Reply {
    pub(crate) response: Response,
    pub(crate) shaping: Shaping,
    /// Body-byte counter of the request's log record.
    pub(crate) sent: Arc<AtomicU64>,
}

/// Answers one request and records it in the log (control endpoints excepted).
pub(crate) fn handle(state: &State, request: &Request) -> Reply {
    let path = path::path_part(&request.target);
    if control::is_control(path) {
        return Reply {
            response: decorate(state, control::handle(state, request, path)),
            shaping: Shaping::default(),
            sent: Arc::default(),
        };
    }
    let (response, shaping, fault) = serve(state, request, path);
    let response = decorate(state, response);
    let sent = state.log.push(RequestRecord {
        method: request.method.clone(),
        path: path.to_string(),
        range: request.header("range").map(str::to_string),
        status: response.status,
        bytes_sent: 0,
        fault,
    });
    Reply {
        response,
        shaping,
        sent,
    }
}

/// The answer to a request that could not even be parsed.
pub(crate) fn reject(state: &State, status: u16, message: &str) -> Response {
    decorate(state, Response::error(status, message))
}

/// 204 answer to a CORS preflight; echoes the asked-for request headers as allowed.
pub(crate) fn preflight(request: &Request) -> Response {
    let mut allowed = String::from(ALLOW_HEADERS);
    if let Some(asked) = request.header("access-control-request-headers") {
        for name in asked.split(',').map(str::trim) {
            if !name.is_empty() && name.bytes().all(is_tchar) {
                allowed.push_str(", ");
                allowed.push_str(name);
            }
        }
    }
    Response::new(204, Body::Empty)
        .with_header("Access-Control-Allow-Methods", ALLOW_METHODS)
        .with_header("Access-Control-Allow-Headers", allowed)
        .with_header("Access-Control-Max-Age", "86400")
        .with_header("Allow", ALLOW_METHODS)
}

/// Headers every answer carries: CORS, CORP (unless the page headers set it), the page
/// headers (static mode: the Space's COOP/COEP, or those given), and in static mode
/// `no-cache` so a rebuilt app is picked up.
fn decorate(state: &State, response: Response) -> Response {
    let mut response = response
        .with_header("Access-Control-Allow-Origin", "*")
        .with_header("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    let sets_corp = state
        .page_headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("cross-origin-resource-policy"));
    if !sets_corp {
        response = response.with_header("Cross-Origin-Resource-Policy", "cross-origin");
    }
    for (name, value) in &state.page_headers {
        response = response.with_header(name, value.as_str());
    }
    match state.mode {
        Mode::Hub => response,
        Mode::Static => response.with_header("Cache-Control", "no-cache"),
    }
}

fn serve(state: &State, request: &Request, path: &str) -> (Response, Shaping, Option<Fault>) {
    let plain = Shaping::default();
    match request.method.as_str() {
        "OPTIONS" => return (preflight(request), plain, None),
        "GET" | "HEAD" => {}
        _ => {
            let refused = Response::error(405, "method not allowed")
                .with_header("Allow", "GET, HEAD, OPTIONS");
            return (refused, plain, None);
        }
    }
    let planned = locate(state, path).and_then(|found| {
        files::plan(
            found,
            request.header("range"),
            request.header("if-range"),
            &state.digests,
        )
    });
    let sends_body = request.method == "GET" && planned.as_ref().is_ok_and(files::Plan::sends_body);
    let fault = state.faults.claim(path, sends_body);
    if let Some(status) = fault.as_ref().and_then(|f| f.status) {
        let injected = Response::error(status, &format!("injected fault: status {status}"));
        let injected = match status {
            404 => injected.with_header("X-Error-Code", "EntryNotFound"),
            _ => injected,
        };
        return (injected, plain, fault);
    }
    let response = match planned {
        Ok(plan) => files::respond(plan, &state.digests),
        Err(refused) => refused,
    };
    let shaping = match &fault {
        Some(f) if sends_body => Shaping {
            cut_after: f.cut_after,
            rate: f.rate,
        },
        _ => plain,
    };
    (response, shaping, fault)
}

fn locate(state: &State, path: &str) -> Result<Located, Response> {
    let segments = path::split_segments(path).map_err(|m| Response::error(400, &m))?;
    match state.mode {
        Mode::Hub => locate_hub(&state.root, &segments),
        Mode::Static => locate_static(&state.root, &segments),
    }
}

fn refused(refusal: Refusal, not_found: impl FnOnce() -> Response) -> Response {
    match refusal {
        Refusal::BadPath(message) => Response::error(400, &message),
        Refusal::NotFound => not_found(),
    }
}

/// `/{repo...}/resolve/{revision}/{file...}` → `ROOT/{repo...}/{file...}`, where the
/// repo part is one to three segments (`name`, `owner/name`, `datasets/owner/name`).
fn locate_hub(root: &SafeRoot, segments: &[String]) -> Result<Located, Response> {
    let resolve_at = (1..=3)
        .find(|&k| segments.get(k).is_some_and(|s| s == "resolve") && segments.len() > k + 2);
    let split = resolve_at.map(|k| segments.split_at(k));
    let Some((repo, [_, revision, file @ ..])) = split else {
        return Err(Response::error(
            404,
            "not a file URL: expected /{owner}/{repo}/resolve/{revision}/{path}",
        ));
    };
    let repo_id = repo.join("/");
    let repo_missing = || {
        Response::error(404, &format!("repository {repo_id} not found"))
            .with_header("X-Error-Code", "RepoNotFound")
    };
    let repo_dir = root
        .locate(repo.iter().map(String::as_str))
        .map_err(|r| refused(r, repo_missing))?;
    if !repo_dir.is_dir() {
        return Err(repo_missing());
    }
    let file_missing =
        || entry_not_found(&format!("entry {} not found in {repo_id}", file.join("/")));
    let path = root
        .locate(repo.iter().chain(file).map(String::as_str))
        .map_err(|r| refused(r, file_missing))?;
    Ok(Located {
        path,
        repo_commit: Some(commit_for(&repo_id, revision)),
    })
}

/// `/` → `index.html`; a folder → its `index.html`; anything else → that file.
fn locate_static(root: &SafeRoot, segments: &[String]) -> Result<Located, Response> {
    let missing = || entry_not_found("file not found");
    let mut names: Vec<&str> = segments.iter().map(String::as_str).collect();
    let mut path = root
        .locate(names.iter().copied())
        .map_err(|r| refused(r, missing))?;
    if path.is_dir() {
        names.push("index.html");
        path = root
            .locate(names.iter().copied())
            .map_err(|r| refused(r, missing))?;
    }
    Ok(Located {
        path,
        repo_commit: None,
    })
}

/// The revision itself when it is a 40-hex commit id, else a stable fake commit id.
fn commit_for(repo_id: &str, revision: &str) -> String {
    if revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return revision.to_ascii_lowercase();
    }
    let mut hash = sha256_hex(format!("{repo_id}@{revision}").as_bytes());
    hash.truncate(40);
    hash
}
