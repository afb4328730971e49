//! End-to-end tests of the hub server over real HTTP on 127.0.0.1.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use mimir_train::hub::{
    load_faults, parse_header, serve_hub, serve_static, space_headers, Fault, HubConfig, HubServer,
    Mode, RequestRecord,
};
use sha2::{Digest, Sha256};

const SECRET: &[u8] = b"TOP-SECRET-outside-the-root";
const MODEL_LEN: usize = 10_000;

// ---------------------------------------------------------------- fixtures

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    secret_path: PathBuf,
    model: Vec<u8>,
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// `DIR/secret.txt` beside `DIR/root`, which holds the repos.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let secret_path = dir.path().join("secret.txt");
    write(&secret_path, SECRET);
    let model = pattern(MODEL_LEN, 7);
    let repo = root.join("acme/tiny");
    write(&repo.join("model.gguf"), &model);
    write(&repo.join("config.json"), br#"{"hidden_size": 8}"#);
    write(&repo.join("sub/nested.bin"), &pattern(300, 1));
    write(&repo.join("folder/inner.txt"), b"inner");
    write(&repo.join("big.bin"), &pattern(100_000, 3));
    write(&repo.join("donn\u{e9}es.txt"), "unicode name".as_bytes());
    write(&repo.join("empty.bin"), b"");
    write(&root.join("solo/weights.safetensors"), &pattern(64, 5));
    write(&root.join("datasets/acme/set/data.csv"), b"a,b\n1,2\n");
    std::os::unix::fs::symlink(&secret_path, repo.join("escape.txt")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("acme/evil")).unwrap();
    std::os::unix::fs::symlink(repo.join("model.gguf"), repo.join("alias.gguf")).unwrap();
    Fixture {
        _dir: dir,
        root,
        secret_path,
        model,
    }
}

fn hub(fx: &Fixture) -> HubServer {
    serve_hub(&fx.root, 0).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------- raw HTTP client

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|line| {
            let (k, v) = line.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Sends raw bytes on a fresh connection and reads until the server closes it.
fn send_raw(server: &HubServer, raw: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).unwrap();
    parse_reply(&buf)
}

fn request(
    server: &HubServer,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    send_raw(server, &bytes)
}

fn get(server: &HubServer, target: &str) -> Reply {
    request(server, "GET", target, &[], b"")
}

fn get_range(server: &HubServer, target: &str, range: &str) -> Reply {
    request(server, "GET", target, &[("Range", range)], b"")
}

const MODEL: &str = "/acme/tiny/resolve/main/model.gguf";

// ---------------------------------------------------------------- downloads

#[test]
fn full_get_serves_body_and_hub_headers() {
    let fx = fixture();
    let server = hub(&fx);
    let reply = get(&server, MODEL);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, fx.model);
    let sha = format!("\"{}\"", sha256_hex(&fx.model));
    assert_eq!(reply.header("Content-Length"), Some("10000"));
    assert_eq!(
        reply.header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(reply.header("ETag"), Some(sha.as_str()));
    assert_eq!(reply.header("X-Linked-Etag"), Some(sha.as_str()));
    assert_eq!(reply.header("X-Linked-Size"), Some("10000"));
    assert_eq!(reply.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(reply.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        reply.header("Cross-Origin-Resource-Policy"),
        Some("cross-origin")
    );
    let expose = reply.header("Access-Control-Expose-Headers").unwrap();
    for name in [
        "Content-Length",
        "Content-Range",
        "ETag",
        "X-Linked-Etag",
        "X-Linked-Size",
        "Accept-Ranges",
        "X-Repo-Commit",
    ] {
        assert!(
            expose.split(", ").any(|n| n == name),
            "{name} not in {expose}"
        );
    }
    let commit = reply.header("X-Repo-Commit").unwrap();
    assert_eq!(commit.len(), 40);
    assert!(commit.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(reply.header("Cross-Origin-Embedder-Policy"), None);

    // Stable commit per revision; a 40-hex revision is echoed.
    assert_eq!(get(&server, MODEL).header("X-Repo-Commit"), Some(commit));
    let pinned = "0123456789abcdef0123456789abcdef01234567";
    let reply = get(&server, &format!("/acme/tiny/resolve/{pinned}/config.json"));
    assert_eq!(reply.header("X-Repo-Commit"), Some(pinned));
    assert_eq!(reply.header("Content-Type"), Some("application/json"));
    assert_eq!(reply.body, br#"{"hidden_size": 8}"#);
}

#[test]
fn other_repo_shapes_nested_unicode_and_inner_symlinks() {
    let fx = fixture();
    let server = hub(&fx);
    assert_eq!(
        get(&server, "/solo/resolve/main/weights.safetensors").body,
        pattern(64, 5)
    );
    assert_eq!(
        get(&server, "/datasets/acme/set/resolve/main/data.csv").body,
        b"a,b\n1,2\n"
    );
    assert_eq!(
        get(&server, "/acme/tiny/resolve/main/sub/nested.bin").body,
        pattern(300, 1)
    );
    let reply = get(
        &server,
        "/acme/tiny/resolve/main/donn%C3%A9es.txt?download=true",
    );
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (200, &b"unicode name"[..])
    );
    let reply = get(&server, "/acme/tiny/resolve/refs%2Fpr%2F1/alias.gguf");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, fx.model);
    let empty = get(&server, "/acme/tiny/resolve/main/empty.bin");
    assert_eq!(
        (empty.status, empty.header("Content-Length")),
        (200, Some("0"))
    );
}

#[test]
fn head_sends_headers_without_body() {
    let fx = fixture();
    let server = hub(&fx);
    let reply = request(&server, "HEAD", MODEL, &[], b"");
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.is_empty(),
        "HEAD sent {} body bytes",
        reply.body.len()
    );
    assert_eq!(reply.header("Content-Length"), Some("10000"));
    let sha = format!("\"{}\"", sha256_hex(&fx.model));
    assert_eq!(reply.header("X-Linked-Etag"), Some(sha.as_str()));
    let ranged = request(&server, "HEAD", MODEL, &[("Range", "bytes=0-0")], b"");
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.header("Content-Length"), Some("1"));
    assert!(ranged.body.is_empty());
}

#[test]
fn byte_ranges() {
    let fx = fixture();
    let server = hub(&fx);
    let cases = [
        ("bytes=0-9", 0, 9),
        ("bytes=100-199", 100, 199),
        ("bytes=-50", 9950, 9999),
        ("bytes=9000-", 9000, 9999),
        ("bytes=9990-20000", 9990, 9999),
        ("bytes=0-", 0, 9999),
        ("bytes=-20000", 0, 9999),
    ];
    for (range, first, last) in cases {
        let reply = get_range(&server, MODEL, range);
        assert_eq!(reply.status, 206, "{range}");
        assert_eq!(
            reply.header("Content-Range"),
            Some(format!("bytes {first}-{last}/10000").as_str()),
            "{range}"
        );
        assert_eq!(
            reply.header("Content-Length"),
            Some((last - first + 1).to_string().as_str())
        );
        assert_eq!(reply.body, &fx.model[first..=last], "{range}");
    }
}

#[test]
fn unsatisfiable_malformed_and_multiple_ranges() {
    let fx = fixture();
    let server = hub(&fx);
    for range in [
        "bytes=10000-",
        "bytes=20000-30000",
        "bytes=-0",
        "bytes=abc",
        "bytes=5-2",
        "bytes=",
        "nonsense",
    ] {
        let reply = get_range(&server, MODEL, range);
        assert_eq!(reply.status, 416, "{range}");
        assert_eq!(
            reply.header("Content-Range"),
            Some("bytes */10000"),
            "{range}"
        );
        assert!(reply.json()["error"].is_string());
    }
    let empty = get_range(&server, "/acme/tiny/resolve/main/empty.bin", "bytes=0-");
    assert_eq!(
        (empty.status, empty.header("Content-Range")),
        (416, Some("bytes */0"))
    );
    // Several ranges: the whole file with 200; unknown unit: ignored.
    for range in ["bytes=0-1,5-6", "items=0-1"] {
        let reply = get_range(&server, MODEL, range);
        assert_eq!(reply.status, 200, "{range}");
        assert_eq!(reply.body, fx.model);
    }
}

#[test]
fn if_range_keeps_range_only_for_current_etag() {
    let fx = fixture();
    let server = hub(&fx);
    let etag = format!("\"{}\"", sha256_hex(&fx.model));
    let fresh = request(
        &server,
        "GET",
        MODEL,
        &[("Range", "bytes=0-3"), ("If-Range", &etag)],
        b"",
    );
    assert_eq!((fresh.status, fresh.body.as_slice()), (206, &fx.model[..4]));
    let stale = request(
        &server,
        "GET",
        MODEL,
        &[("Range", "bytes=0-3"), ("If-Range", "\"old\"")],
        b"",
    );
    assert_eq!((stale.status, stale.body.len()), (200, MODEL_LEN));
}

#[test]
fn digest_follows_file_changes() {
    let fx = fixture();
    let server = hub(&fx);
    let path = "/acme/tiny/resolve/main/config.json";
    let before = get(&server, path);
    let changed = br#"{"hidden_size": 16, "layers": 2}"#;
    fs::write(fx.root.join("acme/tiny/config.json"), changed).unwrap();
    let after = get(&server, path);
    assert_eq!(after.body, changed);
    let expected = format!("\"{}\"", sha256_hex(changed));
    assert_eq!(after.header("X-Linked-Etag"), Some(expected.as_str()));
    assert_ne!(
        before.header("X-Linked-Etag"),
        after.header("X-Linked-Etag")
    );
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let fx = fixture();
    let server = hub(&fx);
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let req = "GET /acme/tiny/resolve/main/config.json HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut pending = Vec::new();
    for _ in 0..2 {
        stream.write_all(req.as_bytes()).unwrap();
        let reply = read_one(&mut stream, &mut pending);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, br#"{"hidden_size": 8}"#);
        assert_eq!(reply.header("Connection"), None);
    }
}

/// Reads exactly one response (by Content-Length) from a kept-alive connection.
fn read_one(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Reply {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = parse_reply(&pending[..end + 4]);
            let len: usize = head.header("Content-Length").unwrap().parse().unwrap();
            while pending.len() < end + 4 + len {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed early");
                pending.extend_from_slice(&chunk[..n]);
            }
            let reply = parse_reply(&pending[..end + 4 + len]);
            pending.drain(..end + 4 + len);
            return reply;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before a response");
        pending.extend_from_slice(&chunk[..n]);
    }
}

// ---------------------------------------------------------------- not found and path safety

#[test]
fn missing_repo_file_and_directories_are_404_json() {
    let fx = fixture();
    let server = hub(&fx);
    let repo = get(&server, "/acme/nope/resolve/main/model.gguf");
    assert_eq!(repo.status, 404);
    assert_eq!(repo.header("X-Error-Code"), Some("RepoNotFound"));
    assert!(repo.json()["error"].as_str().unwrap().contains("acme/nope"));
    let file = get(&server, "/acme/tiny/resolve/main/missing.gguf");
    assert_eq!(file.status, 404);
    assert_eq!(file.header("X-Error-Code"), Some("EntryNotFound"));
    assert!(file.json()["error"]
        .as_str()
        .unwrap()
        .contains("missing.gguf"));
    assert_eq!(file.header("Access-Control-Allow-Origin"), Some("*"));
    for dir in [
        "/acme/tiny/resolve/main/folder",
        "/acme/tiny/resolve/main/folder/",
        "/acme/tiny/resolve/main/sub",
    ] {
        let reply = get(&server, dir);
        assert_eq!(reply.status, 404, "{dir}");
        assert_eq!(reply.header("X-Error-Code"), Some("EntryNotFound"), "{dir}");
    }
    // A repo path that is a file, and URLs that are not resolve URLs.
    assert_eq!(
        get(&server, "/acme/tiny/model.gguf/resolve/main/x").status,
        404
    );
    assert_eq!(get(&server, "/acme/tiny/resolve/main").status, 404);
    assert_eq!(get(&server, "/").status, 404);
    assert_eq!(get(&server, "/api/models/acme/tiny").status, 404);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_refused(server: &HubServer, target: &str, expected: u16) {
    let reply = get(server, target);
    assert_eq!(reply.status, expected, "{target}");
    assert!(!contains(&reply.body, SECRET), "{target} leaked the secret");
}

fn encode_all(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[test]
fn traversal_and_escaping_symlinks_are_refused() {
    let fx = fixture();
    let server = hub(&fx);
    let abs = fx.secret_path.to_str().unwrap().to_string();
    let bad = [
        "/acme/tiny/resolve/main/../../../secret.txt".to_string(),
        "/acme/tiny/resolve/main/../../../../secret.txt".to_string(),
        "/../secret.txt".to_string(),
        "/acme/tiny/resolve/main/%2e%2e/%2e%2e/%2e%2e/secret.txt".to_string(),
        "/acme/tiny/resolve/main/%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt".to_string(),
        "/acme/tiny/resolve/main/..%2f..%2f..%2fsecret.txt".to_string(),
        "/acme/tiny/resolve/main/..\\..\\..\\secret.txt".to_string(),
        "/acme/tiny/resolve/main/..%5c..%5c..%5csecret.txt".to_string(),
        "/acme/%2e%2e/resolve/main/secret.txt".to_string(),
        "/%2e%2e/%2e%2e/resolve/main/secret.txt".to_string(),
        format!("/acme/tiny/resolve/main/{}", encode_all(&abs)),
        format!("/acme/tiny/resolve/main/{abs}"),
        format!("/{abs}"),
        format!(
            "/{}/resolve/main/secret.txt",
            encode_all(fx.secret_path.parent().unwrap().to_str().unwrap())
        ),
        "/acme/tiny/resolve/main/model.gguf%00.txt".to_string(),
        "/acme/tiny/resolve/main/./model.gguf".to_string(),
        "/acme/tiny/resolve/main/%zz".to_string(),
        "/acme/tiny/resolve/main/%ff%fe".to_string(),
        "http://127.0.0.1/../secret.txt".to_string(),
    ];
    for target in &bad {
        assert_refused(&server, target, 400);
    }
    let hidden = [
        format!("/{}", encode_all(&abs)),
        "/acme/tiny/resolve/main/escape.txt".to_string(),
        "/acme/evil/resolve/main/secret.txt".to_string(),
        "/acme/evil/resolve/main/root/acme/tiny/model.gguf".to_string(),
    ];
    for target in &hidden {
        assert_refused(&server, target, 404);
    }
    // The server is still healthy and never served the secret.
    assert_eq!(get(&server, MODEL).status, 200);
    assert!(server
        .log()
        .iter()
        .all(|r| r.status == 200 || r.bytes_sent as usize != SECRET.len()));
}

#[test]
fn hostile_requests_do_not_break_the_server() {
    let fx = fixture();
    let server = hub(&fx);
    let long_header = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000));
    let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(20_000));
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"\x00\x01\x02garbage\r\n\r\n".to_vec(), 400),
        (b"GET /\xff\xfe HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/9.9\r\n\r\n".to_vec(), 505),
        (long_header.into_bytes(), 431),
        (long_line.into_bytes(), 414),
        (
            b"GET / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n".to_vec(),
            400,
        ),
        (
            b"POST /_hub/faults HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n".to_vec(),
            413,
        ),
        (
            b"POST /_hub/faults HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            411,
        ),
    ];
    for (raw, status) in cases {
        let reply = send_raw(&server, &raw);
        assert_eq!(
            reply.status,
            status,
            "{:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(40)])
        );
        assert_eq!(reply.header("Connection"), Some("close"));
    }
    // A client that connects and leaves, or sends half a request and leaves.
    drop(TcpStream::connect(server.addr()).unwrap());
    let mut half = TcpStream::connect(server.addr()).unwrap();
    half.write_all(b"GET /acme/tiny/resolve/ma").unwrap();
    drop(half);
    assert_eq!(request(&server, "PUT", MODEL, &[], b"x").status, 405);
    assert_eq!(get(&server, MODEL).body, fx.model);
}

// ---------------------------------------------------------------- faults

#[test]
fn status_fault_and_times() {
    let fx = fixture();
    let server = hub(&fx);
    server
        .set_faults(vec![Fault::new(MODEL).with_status(503).with_times(2)])
        .unwrap();
    for _ in 0..2 {
        let reply = get(&server, MODEL);
        assert_eq!(reply.status, 503);
        assert_eq!(reply.json()["error"], "injected fault: status 503");
    }
    assert_eq!(get(&server, MODEL).status, 200);
    let log = server.log();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].fault.as_ref().and_then(|f| f.status), Some(503));
    assert_eq!(log[1].status, 503);
    assert_eq!((log[2].status, log[2].fault.clone()), (200, None));
    assert_eq!(log[2].bytes_sent, MODEL_LEN as u64);

    // Status faults also hit missing files and HEAD; globs match whole families.
    server
        .set_faults(vec![Fault::new("/acme/*/resolve/*").with_status(500)])
        .unwrap();
    assert_eq!(get(&server, "/acme/tiny/resolve/main/missing").status, 500);
    assert_eq!(request(&server, "HEAD", MODEL, &[], b"").status, 500);
    assert_eq!(
        get(&server, "/solo/resolve/main/weights.safetensors").status,
        200
    );
    server
        .set_faults(vec![Fault::new(MODEL).with_status(404)])
        .unwrap();
    assert_eq!(
        get(&server, MODEL).header("X-Error-Code"),
        Some("EntryNotFound")
    );
    server.clear_faults();
    assert_eq!(get(&server, MODEL).status, 200);
    assert!(server.faults().is_empty());
}

#[test]
fn cut_after_sends_full_length_then_closes() {
    let fx = fixture();
    let server = hub(&fx);
    server
        .set_faults(vec![Fault::new(MODEL).with_cut_after(1000).with_times(1)])
        .unwrap();
    let reply = get(&server, MODEL);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("Content-Length"), Some("10000"));
    assert_eq!(reply.body, &fx.model[..1000]);
    // Used up: the next download is whole, and a resume with a range works.
    assert_eq!(get(&server, MODEL).body, fx.model);
    server
        .set_faults(vec![Fault::new(MODEL).with_cut_after(10)])
        .unwrap();
    let resumed = get_range(&server, MODEL, "bytes=1000-");
    assert_eq!(resumed.header("Content-Length"), Some("9000"));
    assert_eq!(resumed.body, &fx.model[1000..1010]);
    // HEAD is not cut and does not use the fault up.
    assert_eq!(request(&server, "HEAD", MODEL, &[], b"").status, 200);
    let log = server.log();
    assert_eq!(log[0].bytes_sent, 1000);
    assert_eq!(log[2].bytes_sent, 10);
    assert_eq!(log[3].fault, None);
}

#[test]
fn cut_after_closes_a_kept_alive_connection() {
    let fx = fixture();
    let server = hub(&fx);
    server
        .set_faults(vec![Fault::new(MODEL).with_cut_after(100)])
        .unwrap();
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {MODEL} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("connection not closed after the cut: {e}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let reply = parse_reply(&received);
    assert_eq!(reply.header("Content-Length"), Some("10000"));
    assert_eq!(reply.body, &fx.model[..100]);
}

#[test]
fn rate_throttles_the_body() {
    let fx = fixture();
    let server = hub(&fx);
    write(&fx.root.join("acme/tiny/slow.bin"), &pattern(20_000, 9));
    let path = "/acme/tiny/resolve/main/slow.bin";
    server
        .set_faults(vec![Fault::new(path).with_rate(100_000)])
        .unwrap();
    let started = Instant::now();
    let reply = get(&server, path);
    let elapsed = started.elapsed();
    assert_eq!(reply.body, pattern(20_000, 9));
    assert!(
        elapsed >= Duration::from_millis(195),
        "too fast: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(2), "too slow: {elapsed:?}");
    server.clear_faults();
    let started = Instant::now();
    assert_eq!(get(&server, path).body.len(), 20_000);
    assert!(started.elapsed() < Duration::from_secs(1));
    let log = server.log();
    assert_eq!(log[0].fault, Some(Fault::new(path).with_rate(100_000)));
    assert_eq!(log[1].fault, None);
}

#[test]
fn a_throttled_download_does_not_block_other_requests() {
    let fx = fixture();
    let server = hub(&fx);
    let slow = "/acme/tiny/resolve/main/big.bin";
    server
        .set_faults(vec![Fault::new(slow).with_rate(20_000)])
        .unwrap();
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    write!(stream, "GET {slow} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(get(&server, MODEL).status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    let in_flight = server.log().into_iter().find(|r| r.path == slow).unwrap();
    assert!(in_flight.bytes_sent < 100_000, "slow download already done");
    drop(stream);
    server.shutdown();
}

#[test]
fn faults_from_a_file_and_config() {
    let fx = fixture();
    let file = fx.root.parent().unwrap().join("faults.json");
    fs::write(
        &file,
        format!(r#"{{"faults": [{{"path": "{MODEL}", "status": 500, "times": 1}}]}}"#),
    )
    .unwrap();
    let faults = load_faults(&file).unwrap();
    assert_eq!(
        faults,
        vec![Fault::new(MODEL).with_status(500).with_times(1)]
    );
    let server = HubServer::start(HubConfig {
        faults,
        ..HubConfig::new(&fx.root)
    })
    .unwrap();
    assert_eq!(get(&server, MODEL).status, 500);
    assert_eq!(get(&server, MODEL).status, 200);

    fs::write(&file, r#"{"faults": [{"path": "/x", "status": 200}]}"#).unwrap();
    let err = load_faults(&file).unwrap_err().to_string();
    assert!(
        err.contains(file.to_str().unwrap()) && err.contains("400 to 599"),
        "{err}"
    );
    let err = load_faults(&fx.root.join("nope.json"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("cannot read fault file") && err.contains("nope.json"),
        "{err}"
    );
    let bad = HubServer::start(HubConfig {
        faults: vec![Fault::new("/x").with_rate(0)],
        ..HubConfig::new(&fx.root)
    });
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("rate must be at least 1"));
}

// ---------------------------------------------------------------- control endpoints and CORS

#[test]
fn control_endpoints_set_and_clear_faults_and_log() {
    let fx = fixture();
    let server = hub(&fx);
    let config = "/acme/tiny/resolve/main/config.json";
    let body = format!(r#"{{"faults": [{{"path": "{config}", "status": 502}}]}}"#);
    let set = request(
        &server,
        "POST",
        "/_hub/faults",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(set.status, 200);
    assert_eq!(set.json()["faults"][0]["status"], 502);
    assert_eq!(set.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(get(&server, config).status, 502);
    assert_eq!(
        get(&server, "/_hub/faults").json()["faults"][0]["path"],
        config
    );
    assert_eq!(server.faults(), vec![Fault::new(config).with_status(502)]);

    let bad = request(
        &server,
        "POST",
        "/_hub/faults",
        &[],
        b"{\"faults\": [{\"path\": \"/a\"}]}",
    );
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"]
        .as_str()
        .unwrap()
        .contains("does nothing"));
    assert_eq!(
        request(&server, "POST", "/_hub/faults", &[], b"nope").status,
        400
    );
    assert_eq!(
        server.faults().len(),
        1,
        "a refused list must not replace the faults"
    );

    let cleared = request(&server, "DELETE", "/_hub/faults", &[], b"");
    assert_eq!(
        (
            cleared.status,
            cleared.json()["faults"].as_array().map(Vec::len)
        ),
        (200, Some(0))
    );
    assert_eq!(get(&server, config).status, 200);

    get_range(&server, MODEL, "bytes=0-99");
    let log: Vec<RequestRecord> = serde_json::from_value(get(&server, "/_hub/log").json()).unwrap();
    assert_eq!(log.len(), 3, "control requests are not logged: {log:?}");
    assert_eq!(log[0].status, 502);
    assert_eq!(log[0].fault, Some(Fault::new(config).with_status(502)));
    assert_eq!(log[2].method, "GET");
    assert_eq!(log[2].path, MODEL);
    assert_eq!(log[2].range.as_deref(), Some("bytes=0-99"));
    assert_eq!((log[2].status, log[2].bytes_sent), (206, 100));
    assert_eq!(server.log(), log);

    let cleared = request(&server, "DELETE", "/_hub/log", &[], b"");
    assert_eq!(cleared.json(), serde_json::json!([]));
    assert!(server.log().is_empty());
    assert_eq!(request(&server, "PATCH", "/_hub/log", &[], b"").status, 405);
    assert_eq!(get(&server, "/_hub/nothing").status, 404);
}

#[test]
fn cors_preflight() {
    let fx = fixture();
    let server = hub(&fx);
    for target in [MODEL, "/_hub/faults"] {
        let reply = request(
            &server,
            "OPTIONS",
            target,
            &[
                ("Origin", "http://localhost:5173"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "range, x-custom"),
            ],
            b"",
        );
        assert_eq!(reply.status, 204, "{target}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("Access-Control-Allow-Origin"), Some("*"));
        let methods = reply.header("Access-Control-Allow-Methods").unwrap();
        assert!(methods.contains("GET") && methods.contains("POST") && methods.contains("DELETE"));
        let headers = reply.header("Access-Control-Allow-Headers").unwrap();
        assert!(
            headers.contains("Range") && headers.contains("x-custom"),
            "{headers}"
        );
    }
}

// ---------------------------------------------------------------- static mode

#[test]
fn static_mode_sends_the_headers_of_a_space_readme_once_each() {
    let fx = fixture();
    let app = fx.root.parent().unwrap().join("space");
    write(&app.join("index.html"), b"<!doctype html>");
    let readme = "---\nsdk: static\ncustom_headers:\n  cross-origin-embedder-policy: require-corp\n  \
                  cross-origin-opener-policy: same-origin\n  cross-origin-resource-policy: same-site\n---\n";
    write(&app.join("README.md"), readme.as_bytes());
    let mut headers = space_headers(&app.join("README.md")).unwrap();
    headers.push(parse_header("Content-Security-Policy: default-src 'self'").unwrap());
    let server = HubServer::start(HubConfig {
        mode: Mode::Static,
        headers,
        ..HubConfig::new(&app)
    })
    .unwrap();
    let index = get(&server, "/");
    assert_eq!(index.status, 200);
    for (name, value) in [
        ("cross-origin-embedder-policy", "require-corp"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-site"),
        ("content-security-policy", "default-src 'self'"),
    ] {
        let sent: Vec<&str> = index
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(sent, [value], "{name}");
    }
    let missing = app.join("NO-README.md");
    let err = space_headers(&missing).unwrap_err().to_string();
    assert!(err.contains("NO-README.md"), "{err}");
}

#[test]
fn static_mode_serves_an_app_with_coop_coep() {
    let fx = fixture();
    let app = fx.root.parent().unwrap().join("app");
    write(
        &app.join("index.html"),
        b"<!doctype html><title>app</title>",
    );
    write(&app.join("pkg/app.wasm"), b"\0asm\x01\0\0\0");
    write(&app.join("pkg/app.js"), b"export {};");
    write(&app.join("style.css"), b"body{}");
    write(&app.join("docs/index.html"), b"docs");
    write(&app.join("model.gguf"), &fx.model);
    let server = serve_static(&app, 0).unwrap();
    assert_eq!(server.mode(), Mode::Static);

    let index = get(&server, "/");
    assert_eq!(index.status, 200);
    assert_eq!(index.body, b"<!doctype html><title>app</title>");
    assert_eq!(
        index.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    for (path, kind) in [
        ("/pkg/app.wasm", "application/wasm"),
        ("/pkg/app.js", "text/javascript"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/model.gguf", "application/octet-stream"),
    ] {
        let reply = get(&server, path);
        assert_eq!(
            (reply.status, reply.header("Content-Type")),
            (200, Some(kind)),
            "{path}"
        );
        assert_eq!(
            reply.header("Cross-Origin-Opener-Policy"),
            Some("same-origin")
        );
        assert_eq!(
            reply.header("Cross-Origin-Embedder-Policy"),
            Some("require-corp")
        );
        assert_eq!(
            reply.header("Cross-Origin-Resource-Policy"),
            Some("cross-origin")
        );
        assert!(reply.header("ETag").is_some());
        assert_eq!(reply.header("X-Linked-Etag"), None);
    }
    assert_eq!(get(&server, "/docs/").body, b"docs");
    assert_eq!(get(&server, "/docs").body, b"docs");
    let missing = get(&server, "/nope.js");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("Cross-Origin-Embedder-Policy"),
        Some("require-corp")
    );
    let part = get_range(&server, "/model.gguf", "bytes=10-19");
    assert_eq!(
        (part.status, part.body.as_slice()),
        (206, &fx.model[10..20])
    );
    assert_eq!(part.header("Content-Range"), Some("bytes 10-19/10000"));
    for target in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/..\\secret.txt",
        "/../root/acme/tiny/model.gguf",
    ] {
        assert_refused(&server, target, 400);
    }
    std::os::unix::fs::symlink(&fx.secret_path, app.join("leak.txt")).unwrap();
    assert_refused(&server, "/leak.txt", 404);
}

// ---------------------------------------------------------------- start-up errors

#[test]
fn start_errors_name_the_path_or_port() {
    let fx = fixture();
    let missing = fx.root.join("does-not-exist");
    let err = serve_hub(&missing, 0).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("hub root {} does not exist", missing.display())
    );
    let err = serve_hub(&fx.secret_path, 0).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("hub root {} is not a directory", fx.secret_path.display())
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = serve_hub(&fx.root, port).unwrap_err().to_string();
    assert_eq!(err, format!("cannot bind 127.0.0.1:{port}: address in use"));
}

#[test]
fn shutdown_frees_the_port_and_closes_connections() {
    let fx = fixture();
    let server = hub(&fx);
    let port = server.port();
    assert_eq!(server.url(), format!("http://127.0.0.1:{port}"));
    assert!(server.root().ends_with("root"));
    let mut idle = TcpStream::connect(server.addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    thread::sleep(Duration::from_millis(50));
    server.shutdown();
    let mut buf = [0u8; 16];
    assert!(matches!(idle.read(&mut buf), Ok(0) | Err(_)));
    let again = serve_hub(&fx.root, port).unwrap();
    assert_eq!(again.port(), port);
}
