//! The Hugging Face Space bundle (`space/`, built by `make space`): what it holds, and the
//! app served from it by a plain static server that sends the headers of the Space README's
//! front matter plus the page's own Content-Security-Policy, opened in headless Chromium
//! with the hub unreachable. `make test-space` builds the bundle and runs this.

#[path = "support/browser.rs"]
mod browser;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Files a Space repository takes without Git LFS (larger ones are refused on push).
const LFS_THRESHOLD_BYTES: u64 = 10 * 1024 * 1024;

/// Where CSP violations are reported in the test (the static server logs the POST).
const REPORT_PATH: &str = "/_csp-report";

/// The hub address the test gives the page: a closed port.
const CLOSED_HUB: &str = "http://127.0.0.1:9";

/// The bundle under test: `$MIMIR_SPACE_DIR` (relative to the repository), else `space/`.
fn space_dir() -> PathBuf {
    let dir = std::env::var("MIMIR_SPACE_DIR").unwrap_or_else(|_| "space".to_owned());
    let space = browser::repo_root().join(dir);
    assert!(
        space.join("index.html").is_file() && space.join("README.md").is_file(),
        "{} is not a built Space: run `make space` first (make test-space does)",
        space.display()
    );
    space
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `content` of index.html's `Content-Security-Policy` meta tag.
fn meta_csp(index: &str) -> String {
    let tag_start = index
        .find("http-equiv=\"Content-Security-Policy\"")
        .expect("index.html has a Content-Security-Policy meta tag");
    let rest = &index[tag_start..];
    let content = rest.find("content=\"").expect("the meta tag has content") + 9;
    let end = rest[content..].find('"').expect("closing quote");
    rest[content..content + end].to_string()
}

/// Every `<script` tag of `html`, up to its `>`.
fn script_tags(html: &str) -> Vec<&str> {
    html.match_indices("<script")
        .map(|(at, _)| &html[at..at + html[at..].find('>').unwrap_or(html.len() - at)])
        .collect()
}

/// Every file under `dir`, with its size.
fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            found.extend(files_under(&entry.path()));
        } else {
            found.push((entry.path(), meta.len()));
        }
    }
    found
}

/// Where `bytes` holds `prefix` followed by at least `min_len` token characters.
fn find_token(bytes: &[u8], prefix: &[u8], min_len: usize) -> Option<usize> {
    (0..bytes.len().saturating_sub(prefix.len())).find(|&at| {
        bytes[at..].starts_with(prefix)
            && bytes[at + prefix.len()..]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count()
                >= min_len
    })
}

/// The secrets the bundle must never hold: access tokens by their published prefixes, private
/// keys, and the deploying user's own `HF_TOKEN` when it is set.
fn secret_in(bytes: &[u8]) -> Option<String> {
    let patterns: [(&[u8], usize); 5] = [
        (b"hf_", 30),
        (b"ghp_", 30),
        (b"github_pat_", 30),
        (b"AKIA", 16),
        (b"-----BEGIN ", 0),
    ];
    for (prefix, min_len) in patterns {
        if let Some(at) = find_token(bytes, prefix, min_len) {
            return Some(format!(
                "{} at byte {at}",
                String::from_utf8_lossy(prefix).trim()
            ));
        }
    }
    let token = std::env::var("HF_TOKEN").unwrap_or_default();
    (token.len() >= 8 && bytes.windows(token.len()).any(|w| w == token.as_bytes()))
        .then(|| "the value of $HF_TOKEN".to_string())
}

#[test]
fn secret_scan_finds_tokens_and_keys() {
    let fake_hf = format!("const t = \"hf_{}\";", "aB3".repeat(12));
    assert!(secret_in(fake_hf.as_bytes()).is_some());
    assert!(secret_in(b"-----BEGIN OPENSSH PRIVATE KEY-----").is_some());
    assert!(secret_in(b"hf_folder::load and hf_config_json").is_none());
}

#[test]
fn space_bundle_holds_the_app_model_and_space_config_and_no_secrets() {
    let space = space_dir();
    let root = browser::repo_root();
    assert_eq!(
        read(&space.join("README.md")),
        read(&root.join("deploy/space/README.md")),
        "space/README.md is the template's copy"
    );
    let readme = read(&space.join("README.md"));
    for line in [
        "sdk: static",
        "app_file: index.html",
        "title: Mimir",
        "  cross-origin-embedder-policy: require-corp",
        "  cross-origin-opener-policy: same-origin",
        "  cross-origin-resource-policy: cross-origin",
    ] {
        assert!(
            readme.lines().any(|l| l == line),
            "README front matter lacks {line:?}"
        );
    }
    let description = readme
        .lines()
        .find_map(|l| l.strip_prefix("short_description: "))
        .expect("a short description");
    assert!(
        description.len() <= 60 && description.is_ascii(),
        "the Hub takes at most 60 characters, no emoji: {description:?}"
    );

    let index = read(&space.join("index.html"));
    for tag in script_tags(&index) {
        assert!(tag.contains(" src="), "inline script in index.html: {tag}");
    }
    let csp = meta_csp(&index);
    for unsafe_source in ["'unsafe-inline'", "'unsafe-eval'", "*"] {
        assert!(
            !csp.split(';')
                .any(|d| d.split_whitespace().any(|s| s == unsafe_source)),
            "the CSP allows {unsafe_source}: {csp}"
        );
    }

    let catalog = mimir::catalog::Catalog::from_json(
        &read(&space.join("public/catalog.json")),
        "space/public/catalog.json",
    )
    .unwrap();
    assert_eq!(catalog.hub, "https://huggingface.co");
    let model = space.join(&catalog.compact.url);
    assert_eq!(
        std::fs::metadata(&model).map(|m| m.len()).ok(),
        Some(catalog.compact.size),
        "{} is bundled with the catalog's size",
        model.display()
    );
    let adapter = catalog
        .compact
        .adapter
        .as_ref()
        .expect("the compact model's adapter is in the catalog");
    for file in [&adapter.config, &adapter.weights] {
        let path = space.join(&file.url);
        assert_eq!(
            std::fs::metadata(&path).map(|m| m.len()).ok(),
            Some(file.size),
            "{} is bundled with the catalog's size",
            path.display()
        );
    }

    let lfs = read(&space.join(".gitattributes"));
    let lfs_patterns: Vec<&str> = lfs
        .lines()
        .filter(|l| l.contains("filter=lfs"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(lfs_patterns.contains(&"*.gguf") && lfs_patterns.contains(&"*.safetensors"));
    for (path, size) in files_under(&space) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let tracked = lfs_patterns
            .iter()
            .any(|p| p.strip_prefix('*').is_some_and(|ext| name.ends_with(ext)));
        assert!(
            size <= LFS_THRESHOLD_BYTES || tracked,
            "{} ({size} bytes) needs a Git LFS rule",
            path.display()
        );
        assert!(
            !name.starts_with(".env") && name != ".git" && !name.ends_with(".map"),
            "{} must not ship",
            path.display()
        );
        if name.ends_with(".gguf") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(secret_in(&bytes), None, "{} holds a secret", path.display());
    }
}

/// `GET path` on the static server at `url`, returning the body.
fn http_get(url: &str, path: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// How many CSP violation reports the static server has received.
fn reports(url: &str) -> usize {
    let log: serde_json::Value = serde_json::from_str(&http_get(url, "/_hub/log")).unwrap();
    log.as_array()
        .expect("the log is a list")
        .iter()
        .filter(|r| r["path"] == REPORT_PATH)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_model_answers_under_the_space_headers_and_csp() {
    let space = space_dir();
    // The worker gets its policy from its own response headers, not from the page's meta tag:
    // the server sends the page's policy to both, with the (closed) test hub allowed and a
    // report address so that any violation shows in the server's log.
    let policy = meta_csp(&read(&space.join("index.html"))).replace(
        "connect-src 'self'",
        &format!("connect-src 'self' {CLOSED_HUB}"),
    );
    assert!(
        policy.contains(CLOSED_HUB),
        "connect-src is 'self': {policy}"
    );
    let header = format!("Content-Security-Policy: {policy}; report-uri {REPORT_PATH}");
    let (_server, url) = browser::start_server(&[
        "static",
        "--root",
        space.to_str().unwrap(),
        "--space-readme",
        space.join("README.md").to_str().unwrap(),
        "--header",
        &header,
        "--port",
        "0",
    ]);
    let (_driver, client) = browser::start_browser().await;
    let button =
        browser::open_app(&client, &format!("{url}/?hub={CLOSED_HUB}&kernels=simd128")).await;
    let isolated = client
        .execute("return self.crossOriginIsolated;", vec![])
        .await
        .unwrap();
    assert_eq!(
        isolated,
        serde_json::Value::Bool(true),
        "the README's headers isolate the page"
    );

    browser::wait_for_status(&client, &button, 180, "status-button-warning").await;

    let (stop, reply) = browser::reply_to(&client, "What is the capital of France?").await;
    assert!(reply.contains("Paris"), "{stop}: {reply:?}");
    // `?kernels=simd128`: the worker build that browsers without relaxed SIMD run answered
    // (the other e2e test checks the relaxed one).
    assert_eq!(
        browser::engine_kernels(&client).await,
        "Engine kernels: SIMD128, 1 thread"
    );

    // The threaded build, which an isolated Chromium page starts by default, answers under
    // the same policy: its threads are Web Workers the engine worker starts from
    // `pool_worker.js`, each importing the glue and instantiating the module it is sent. The
    // same question in a new conversation: the same prompt, which the compact model answers.
    client
        .execute(
            "localStorage.removeItem('mimir.conversation'); return true;",
            vec![],
        )
        .await
        .unwrap();
    let button = browser::open_app(&client, &format!("{url}/?hub={CLOSED_HUB}&threads=2")).await;
    browser::wait_for_status(&client, &button, 180, "status-button-warning").await;
    let (stop, reply) = browser::reply_to(&client, "What is the capital of France?").await;
    assert!(reply.contains("Paris"), "{stop}: {reply:?}");
    let kernels = browser::engine_kernels(&client).await;
    assert!(
        kernels.starts_with("Engine kernels: SIMD128 + relaxed SIMD, 2 threads ("),
        "{kernels:?}"
    );

    assert_eq!(reports(&url), 0, "the app ran without a CSP violation");
    // A deliberate violation is reported, so the count above can see violations.
    client
        .execute(
            "new Image().src = 'http://127.0.0.1:9/probe.png'; return true;",
            vec![],
        )
        .await
        .unwrap();
    let mut seen = 0;
    for _ in 0..100 {
        seen = reports(&url);
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen > 0, "a blocked image is reported");
    client.close().await.unwrap();
}
