//! Just enough HTTP/1.1 for a local development server: reading one request at a
//! time from a connection and writing a response whose body may be throttled or
//! cut short on purpose.
//!
//! Hand-written rather than built on tiny_http because `cut_after` has to close a
//! kept-alive connection in the middle of a body, and tiny_http 0.12 gives no way
//! to do that (it drops a `Connection` response header and only closes when the
//! request asked for it).

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

const MAX_LINE: usize = 8 * 1024;
const MAX_HEADERS: usize = 100;
const MAX_BODY: u64 = 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// One request read off a connection.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) http10: bool,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Whether the connection must be closed after answering (HTTP/1.0 or `Connection: close`).
    pub(crate) fn wants_close(&self) -> bool {
        self.http10
            || self.header("connection").is_some_and(|v| {
                v.split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("close"))
            })
    }
}

/// What reading the next request gave.
pub(crate) enum Incoming {
    /// A complete request.
    Request(Request),
    /// The peer closed, went idle past the timeout, or the socket failed.
    Closed,
    /// A malformed request: answer `status` and close.
    Invalid { status: u16, message: &'static str },
}

enum Line {
    Ok,
    End,
    TooLong,
}

fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> Line {
    buf.clear();
    let limit = MAX_LINE as u64 + 1;
    match reader.by_ref().take(limit).read_until(b'\n', buf) {
        Ok(0) | Err(_) => return Line::End,
        Ok(_) => {}
    }
    if buf.last() != Some(&b'\n') {
        return if buf.len() > MAX_LINE {
            Line::TooLong
        } else {
            Line::End
        };
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Line::Ok
}

/// Token characters of RFC 9110 (method and header names).
pub(crate) fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, bool), (u16, &'static str)> {
    let text = std::str::from_utf8(line).map_err(|_| (400, "request line is not ASCII"))?;
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err((400, "malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(is_tchar) {
        return Err((400, "malformed method"));
    }
    if target.is_empty() || !target.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err((400, "malformed request target"));
    }
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => {
            return Err((505, "only HTTP/1.0 and HTTP/1.1 are supported"))
        }
        _ => return Err((400, "malformed HTTP version")),
    };
    Ok((method.to_string(), target.to_string(), http10))
}

fn parse_header(line: &[u8]) -> Option<(String, String)> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = line.split_at(colon);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let value = String::from_utf8_lossy(value.get(1..).unwrap_or_default());
    Some((
        String::from_utf8_lossy(name).into_owned(),
        value.trim_matches([' ', '\t']).to_string(),
    ))
}

fn content_length(headers: &[(String, String)]) -> Option<u64> {
    let mut found = None;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length") {
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u64 = value.parse().ok()?;
            if found.is_some_and(|f| f != n) {
                return None;
            }
            found = Some(n);
        }
    }
    Some(found.unwrap_or(0))
}

/// Reads the next request; `interim` receives `100 Continue` when the client expects it.
pub(crate) fn read_request<R: BufRead, W: Write>(reader: &mut R, interim: &mut W) -> Incoming {
    let invalid = |status, message| Incoming::Invalid { status, message };
    let mut line = Vec::new();
    let mut blank_lines = 0;
    loop {
        match read_line(reader, &mut line) {
            Line::End => return Incoming::Closed,
            Line::TooLong => return invalid(414, "request line too long"),
            Line::Ok if line.is_empty() && blank_lines < 4 => blank_lines += 1,
            Line::Ok => break,
        }
    }
    let (method, target, http10) = match parse_request_line(&line) {
        Ok(parts) => parts,
        Err((status, message)) => return invalid(status, message),
    };
    let mut headers = Vec::new();
    loop {
        match read_line(reader, &mut line) {
            Line::End => return Incoming::Closed,
            Line::TooLong => return invalid(431, "header line too long"),
            Line::Ok if line.is_empty() => break,
            Line::Ok if headers.len() >= MAX_HEADERS => return invalid(431, "too many headers"),
            Line::Ok => match parse_header(&line) {
                Some(header) => headers.push(header),
                None => return invalid(400, "malformed header line"),
            },
        }
    }
    let mut request = Request {
        method,
        target,
        http10,
        headers,
        body: Vec::new(),
    };
    if request.header("transfer-encoding").is_some() {
        return invalid(
            411,
            "chunked request bodies are not supported: send Content-Length",
        );
    }
    let Some(length) = content_length(&request.headers) else {
        return invalid(400, "invalid Content-Length");
    };
    if length > MAX_BODY {
        return invalid(413, "request body too large (1 MiB at most)");
    }
    if length > 0 {
        let expects = request.header("expect");
        if !http10 && expects.is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            let sent = interim.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
            if sent.and_then(|()| interim.flush()).is_err() {
                return Incoming::Closed;
            }
        }
        let mut body = Vec::new();
        match reader.by_ref().take(length).read_to_end(&mut body) {
            Ok(n) if n as u64 == length => request.body = body,
            _ => return Incoming::Closed,
        }
    }
    Incoming::Request(request)
}

/// A response body.
pub(crate) enum Body {
    /// No body (`Content-Length: 0`, or none for 204).
    Empty,
    /// Bytes held in memory.
    Bytes(Vec<u8>),
    /// `len` bytes read from `file`, which is already positioned at the first one.
    File { file: File, len: u64 },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File { len, .. } => *len,
        }
    }
}

/// A response to write; `Content-Length` and `Connection` are added by the writer.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
}

impl Response {
    /// A response with no headers yet.
    pub(crate) fn new(status: u16, body: Body) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// A JSON response.
    pub(crate) fn json<T: Serialize>(status: u16, value: &T) -> Response {
        let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
        Response::new(status, Body::Bytes(bytes)).with_header("Content-Type", "application/json")
    }

    /// `{"error": message}` with the message also in `X-Error-Message`, as the Hub does.
    pub(crate) fn error(status: u16, message: &str) -> Response {
        Response::json(status, &serde_json::json!({ "error": message }))
            .with_header("X-Error-Message", message)
    }
}

/// Deliberate damage to a response body.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Shaping {
    /// Stop after this many body bytes and close the connection.
    pub(crate) cut_after: Option<u64>,
    /// At most this many body bytes per second.
    pub(crate) rate: Option<u64>,
}

/// How writing a response ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Everything was written.
    Complete,
    /// The body was cut short on purpose; the connection must be closed.
    Cut,
    /// The peer went away, the file could not be read, or the server is stopping.
    Failed,
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Status",
    }
}

/// Writes a response. `head_only` (HEAD) sends headers with the body's length but
/// no body; `close` adds `Connection: close`; `sent` counts body bytes.
pub(crate) fn write_response<W: Write>(
    out: &mut W,
    response: Response,
    head_only: bool,
    close: bool,
    shaping: &Shaping,
    sent: &AtomicU64,
    stopping: &AtomicBool,
) -> Sent {
    let Response {
        status,
        headers,
        body,
    } = response;
    let bodiless = status == 204 || status == 304 || (100..200).contains(&status);
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (name, value) in &headers {
        let value: String = value
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        head.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if !bodiless {
        head.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    if close {
        head.extend_from_slice(b"Connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    let body = if head_only || bodiless {
        Body::Empty
    } else {
        body
    };
    let plain = shaping.cut_after.is_none() && shaping.rate.is_none();
    match body {
        Body::Empty => finish(out.write_all(&head).and_then(|()| out.flush())),
        Body::Bytes(bytes) if plain => {
            head.extend_from_slice(&bytes);
            sent.fetch_add(bytes.len() as u64, Ordering::SeqCst);
            finish(out.write_all(&head).and_then(|()| out.flush()))
        }
        Body::Bytes(bytes) => match out.write_all(&head) {
            Ok(()) => stream(out, &bytes[..], bytes.len() as u64, shaping, sent, stopping),
            Err(_) => Sent::Failed,
        },
        Body::File { file, len } => match out.write_all(&head) {
            Ok(()) => stream(out, file.take(len), len, shaping, sent, stopping),
            Err(_) => Sent::Failed,
        },
    }
}

fn finish(result: io::Result<()>) -> Sent {
    match result {
        Ok(()) => Sent::Complete,
        Err(_) => Sent::Failed,
    }
}

fn stream<W: Write, R: Read>(
    out: &mut W,
    mut body: R,
    len: u64,
    shaping: &Shaping,
    sent: &AtomicU64,
    stopping: &AtomicBool,
) -> Sent {
    let limit = shaping.cut_after.map_or(len, |cut| cut.min(len));
    let chunk = match shaping.rate {
        Some(rate) => usize::try_from(rate / 20).unwrap_or(CHUNK).clamp(1, CHUNK),
        None => CHUNK,
    };
    let mut buf = vec![0u8; chunk];
    let started = Instant::now();
    let mut done = 0u64;
    while done < limit {
        let want = usize::try_from(limit - done).unwrap_or(chunk).min(chunk);
        let n = match body.read(&mut buf[..want]) {
            Ok(0) => return Sent::Failed,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Sent::Failed,
        };
        let n64 = n as u64;
        if let Some(rate) = shaping.rate {
            if !pace(started, done + n64, rate, stopping) {
                return Sent::Failed;
            }
        }
        sent.fetch_add(n64, Ordering::SeqCst);
        if out.write_all(&buf[..n]).is_err() {
            sent.fetch_sub(n64, Ordering::SeqCst);
            return Sent::Failed;
        }
        done += n64;
    }
    if out.flush().is_err() {
        return Sent::Failed;
    }
    if limit < len {
        Sent::Cut
    } else {
        Sent::Complete
    }
}

/// Sleeps until `total` bytes are due at `rate` bytes/s since `started`; false if stopping.
fn pace(started: Instant, total: u64, rate: u64, stopping: &AtomicBool) -> bool {
    let due = Duration::try_from_secs_f64(total as f64 / rate as f64)
        .ok()
        .and_then(|offset| started.checked_add(offset));
    let Some(due) = due else {
        return true;
    };
    loop {
        if stopping.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= due {
            return true;
        }
        thread::sleep((due - now).min(Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &[u8]) -> Incoming {
        read_request(&mut io::BufReader::new(raw), &mut io::sink())
    }

    #[test]
    fn parses_a_request_with_body() {
        let raw = b"POST /_hub/faults?x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n[]";
        let Incoming::Request(request) = read(raw) else {
            panic!("not parsed");
        };
        assert_eq!(request.method, "POST");
        assert_eq!(request.target, "/_hub/faults?x");
        assert_eq!(request.header("HOST"), Some("a"));
        assert_eq!(request.body, b"[]");
        assert!(!request.wants_close());
    }

    #[test]
    fn rejects_malformed_requests() {
        let cases: [(&[u8], u16); 6] = [
            (b"GET /\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET /a b HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n bad\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                411,
            ),
        ];
        for (raw, expected) in cases {
            match read(raw) {
                Incoming::Invalid { status, .. } => assert_eq!(status, expected),
                _ => panic!("accepted {:?}", String::from_utf8_lossy(raw)),
            }
        }
        assert!(matches!(read(b""), Incoming::Closed));
    }

    #[test]
    fn cuts_and_counts() {
        let mut out = Vec::new();
        let sent = AtomicU64::new(0);
        let shaping = Shaping {
            cut_after: Some(3),
            rate: None,
        };
        let response = Response::new(200, Body::Bytes(b"abcdef".to_vec()));
        let end = write_response(
            &mut out,
            response,
            false,
            false,
            &shaping,
            &sent,
            &AtomicBool::new(false),
        );
        assert_eq!(end, Sent::Cut);
        assert_eq!(sent.load(Ordering::SeqCst), 3);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("Content-Length: 6\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nabc"), "{text}");
    }
}
