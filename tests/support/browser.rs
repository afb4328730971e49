//! Native helpers for end-to-end tests: the app's static server and a headless Chromium
//! driven through chromedriver. Each process is killed when its guard drops.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// A child process that is killed on drop, with its process group when it leads one.
pub struct Guard {
    child: Child,
    group: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.group {
            // chromedriver's Chromium outlives chromedriver when a test panics before it ends
            // the session; its processes share chromedriver's group.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.child.id())])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `mimir-train` binary: `$MIMIR_TRAIN_BIN`, else the debug build in `target/`.
pub fn mimir_train() -> PathBuf {
    let path = std::env::var_os("MIMIR_TRAIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/mimir-train"));
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p mimir-train` (make test does)",
        path.display()
    );
    path
}

/// Starts `mimir-train <args>` (a server that prints `… at http://127.0.0.1:PORT`) and
/// returns its guard and URL.
pub fn start_server(args: &[&str]) -> (Guard, String) {
    let mut child = Command::new(mimir_train())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn mimir-train");
    let stdout = child.stdout.take().expect("stdout");
    let guard = Guard {
        child,
        group: false,
    };
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the server's first line");
    let url = line
        .split(" at ")
        .nth(1)
        .unwrap_or_else(|| panic!("unexpected server banner {line:?}"))
        .trim()
        .to_string();
    (guard, url)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts chromedriver and connects a headless Chromium session to it.
pub async fn start_browser() -> (Guard, Client) {
    let port = free_port();
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let guard = Guard {
        child: Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {driver}: {e} (scripts/setup.sh --test installs it)")
            }),
        group: true,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let capabilities = serde_json::json!({
        "goog:chromeOptions": {
            "binary": std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,800"
            ]
        }
    });
    let capabilities = match capabilities {
        serde_json::Value::Object(map) => map,
        _ => unreachable!("capabilities are an object"),
    };
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("connect to chromedriver");
    (guard, client)
}

/// Opens the app at `address` and returns its status button once the app has mounted (up to
/// 30 seconds).
pub async fn open_app(client: &Client, address: &str) -> fantoccini::elements::Element {
    client.goto(address).await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("button.status-button"))
        .await
        .unwrap_or_else(|e| panic!("the app did not mount at {address}: {e}"))
}

/// Types `question` into the chat and presses Send.
pub async fn ask(client: &fantoccini::Client, question: &str) {
    client
        .find(Locator::Css("textarea.composer-input"))
        .await
        .unwrap()
        .send_keys(question)
        .await
        .unwrap();
    client
        .find(Locator::Css("button.composer-send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits (up to three minutes) for the reply in progress to end and returns why it ended, as
/// the page shows it in `data-stop`.
pub async fn wait_for_stop(conversation: &fantoccini::elements::Element) -> String {
    for _ in 0..1800 {
        if let Some(stop) = conversation.attr("data-stop").await.unwrap() {
            return stop;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the reply did not end within three minutes");
}

/// Asks `question`, waits for the reply to end and returns why it ended (`data-stop`) and the
/// reply's text, the conversation's last.
pub async fn reply_to(client: &Client, question: &str) -> (String, String) {
    let conversation = client
        .find(Locator::Css("main.conversation"))
        .await
        .unwrap();
    ask(client, question).await;
    let stop = wait_for_stop(&conversation).await;
    let replies = client
        .find_all(Locator::Css(
            ".message-assistant:not(.message-greeting) .markdown",
        ))
        .await
        .unwrap();
    let reply = replies
        .last()
        .expect("the page shows a reply")
        .text()
        .await
        .unwrap();
    (stop, reply)
}

/// Waits (up to `seconds`) for the status button to leave the loading state and returns its
/// tooltip. Panics when its class is not `expected` (say `status-button-warning`), with every
/// loading attempt and its full error from the info panel.
pub async fn wait_for_status(
    client: &Client,
    button: &fantoccini::elements::Element,
    seconds: u64,
    expected: &str,
) -> String {
    let mut class = String::new();
    for _ in 0..seconds * 10 {
        class = button.attr("class").await.unwrap().unwrap_or_default();
        if !class.contains("status-button-loading") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tooltip = button
        .attr("data-tooltip")
        .await
        .unwrap()
        .unwrap_or_default();
    if !class.split_whitespace().any(|c| c == expected) {
        panic!(
            "the status is {class:?}, not {expected}: {tooltip}\nattempts:\n{}",
            load_attempts(client).await
        );
    }
    tooltip
}

/// The text of the element `css` in the info panel, which is opened for it and closed again.
async fn info_panel_text(client: &Client, css: &str) -> Result<String, CmdError> {
    let toggle = client
        .find(Locator::Css("button[aria-controls='info-panel']"))
        .await?;
    toggle.click().await?;
    let text = client
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css(css))
        .await?
        .text()
        .await?;
    toggle.click().await?;
    Ok(text)
}

/// The info panel's line naming the engine worker's kernels, without " (VNNI dot)": whether
/// the browser's relaxed dot is `vpdpbusd` depends on the CPU the tests run on, not the build.
pub async fn engine_kernels(client: &Client) -> String {
    info_panel_text(client, "p.info-kernels")
        .await
        .expect("the info panel names the engine's kernels")
        .replacen("relaxed SIMD (VNNI dot)", "relaxed SIMD", 1)
}

/// The info panel's loading attempts (each tier with its time and full error) as the page
/// shows them: the status tooltip holds only 50 characters of an error.
async fn load_attempts(client: &Client) -> String {
    info_panel_text(client, "table.attempts")
        .await
        .unwrap_or_else(|e| format!("(the info panel could not be read: {e})"))
}
