//! End to end: the trunk-built app (`dist/`) served as a static Space serves it, opened in
//! headless Chromium, loading its model through the engine worker from a local hub. Needs
//! `trunk build`, `mimir-train` and `hub-data/`; `make test` provides them.

#[path = "support/browser.rs"]
mod browser;

use std::time::Duration;

use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_loads_a_model_through_the_worker_and_streams_an_answer() {
    let (_server, url) = serve_dist("index.html");
    let hub_data = browser::repo_root().join("hub-data");
    assert!(
        hub_data.join("jdesiree").is_dir(),
        "{} is missing: run `mimir-train hub-data --root hub-data` (make test-e2e does)",
        hub_data.display()
    );
    let (_hub, hub_url) =
        browser::start_server(&["hub", "--root", hub_data.to_str().unwrap(), "--port", "0"]);
    let (_driver, client) = browser::start_browser().await;

    // One thread: the single-thread build the page starts where it is not cross-origin
    // isolated (the bundled model's test below runs the threaded one).
    client
        .goto(&format!("{url}/?hub={hub_url}&threads=1"))
        .await
        .unwrap();
    assert_eq!(client.title().await.unwrap(), "Mimir");
    let heading = client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css("h1"))
        .await
        .expect("the app mounts");
    assert_eq!(heading.text().await.unwrap(), "Mimir");

    // The status button is a polite live region that clicking does not change.
    let button = client
        .find(Locator::Css("button.status-button"))
        .await
        .unwrap();
    assert_eq!(
        button.attr("role").await.unwrap().as_deref(),
        Some("status")
    );
    assert_eq!(
        button.attr("aria-disabled").await.unwrap().as_deref(),
        Some("true")
    );

    // The worker loads the fine-tuned tiny model from the local hub: the button turns green.
    let tooltip = browser::wait_for_status(&client, &button, 60, "status-button-success").await;
    let class = button.attr("class").await.unwrap().unwrap_or_default();

    // A question is answered with text streamed from the worker into the chat.
    let conversation = client
        .find(Locator::Css("main.conversation"))
        .await
        .unwrap();
    browser::ask(&client, "What is 2 plus 2?").await;
    let finished = browser::wait_for_stop(&conversation).await;
    assert!(
        ["end_of_turn", "max_tokens", "repetition", "context_full"].contains(&finished.as_str()),
        "the reply ended by itself: {finished:?}"
    );
    let replies = client
        .find_all(Locator::Css(
            ".message-assistant:not(.message-greeting) .markdown",
        ))
        .await
        .unwrap();
    assert_eq!(replies.len(), 1, "one reply");
    let text = replies[0].text().await.unwrap();
    assert!(!text.trim().is_empty(), "streamed answer text");
    let stats = client
        .find(Locator::Css(".message-assistant .message-stats"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stats.contains("tok/s"), "timing under the reply: {stats:?}");

    // Chromium has relaxed SIMD, so the page started that build of the worker, and it is the
    // one that answered.
    assert_eq!(
        browser::engine_kernels(&client).await,
        "Engine kernels: SIMD128 + relaxed SIMD, 1 thread"
    );

    // Stop, sent while tokens stream in, ends the reply early: the worker reads messages
    // between tokens.
    browser::ask(&client, "Tell me more.").await;
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("button.composer-stop"))
        .await
        .expect("Stop replaces Send while the reply streams")
        .click()
        .await
        .unwrap();
    assert_eq!(browser::wait_for_stop(&conversation).await, "cancelled");
    assert!(
        client.find(Locator::Css(".message-error")).await.is_err(),
        "no error shown"
    );

    assert!(!tooltip.is_empty(), "the tooltip says why");
    button.click().await.unwrap();
    assert_eq!(
        button.attr("class").await.unwrap().unwrap_or_default(),
        class
    );

    let shots = browser::repo_root().join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, width, height) in [("desktop", 1280, 800), ("phone", 390, 844)] {
        client.set_window_size(width, height).await.unwrap();
        let png = client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name} screenshot is a PNG");
        std::fs::write(shots.join(format!("app-{name}.png")), png).unwrap();
    }
    client.close().await.unwrap();
}

/// Serves the trunk-built `dist/` as the Space serves it, after checking it holds `file`.
fn serve_dist(file: &str) -> (browser::Guard, String) {
    let dist = browser::repo_root().join("dist");
    assert!(
        dist.join(file).is_file(),
        "{} has no {file}: run `make dist` first (make test does)",
        dist.display()
    );
    browser::start_server(&["static", "--root", dist.to_str().unwrap(), "--port", "0"])
}

/// With no hub reachable (a closed port stands in for a machine without Hub access), the
/// bundled SmolLM2 served with the app answers, and the button is orange with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_hub_the_bundled_model_answers() {
    let dist = browser::repo_root().join("dist");
    assert!(
        dist.join("models/SmolLM2-135M-Instruct.Q8_0.gguf")
            .is_file(),
        "{} has no bundled model: run `make dist` (make test does)",
        dist.display()
    );
    let (_server, url) =
        browser::start_server(&["static", "--root", dist.to_str().unwrap(), "--port", "0"]);
    let (_driver, client) = browser::start_browser().await;
    // Two threads, whatever the machine's cores: the threaded worker build.
    let button =
        browser::open_app(&client, &format!("{url}/?hub=http://127.0.0.1:9&threads=2")).await;
    let tooltip = browser::wait_for_status(&client, &button, 180, "status-button-warning").await;
    assert!(
        tooltip.contains("127.0.0.1:9") || tooltip.contains("fetch"),
        "the tooltip gives the hub failure as the reason: {tooltip}"
    );

    let (stop, reply) = browser::reply_to(&client, "What is the capital of France?").await;
    assert!(reply.contains("Paris"), "{stop}: {reply:?}");

    // Arithmetic goes through the calculator: the note shows the call and its exact result,
    // and the reply (written with that result as context) states it.
    let conversation = client
        .find(Locator::Css("main.conversation"))
        .await
        .unwrap();
    browser::ask(&client, "What is 7 times 8?").await;
    let stop = browser::wait_for_stop(&conversation).await;
    let replies = client
        .find_all(Locator::Css(".message-assistant:not(.message-greeting)"))
        .await
        .unwrap();
    let last = replies.last().expect("a second reply");
    let note = last
        .find(Locator::Css(".message-tool"))
        .await
        .expect("the calculator note is shown")
        .text()
        .await
        .unwrap();
    assert!(note.contains("calculator: 7*8 = 56"), "{note:?}");
    let reply = last
        .find(Locator::Css(".markdown"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(reply.contains("56"), "{stop}: {reply:?}");
    let chips = client
        .find_all(Locator::Css(".message-user .subject-chip"))
        .await
        .unwrap();
    let chip = chips.last().expect("the subject chip is shown");
    assert!(chip.text().await.unwrap().contains("math"));

    // The threaded build answered, and its other thread took a share of the pool's tasks (the
    // answers are the single-thread build's, bit for bit: kernels/src/pool.rs).
    let kernels = browser::engine_kernels(&client).await;
    let share = kernels
        .strip_prefix("Engine kernels: SIMD128 + relaxed SIMD, 2 threads (the other threads ran ")
        .and_then(|rest| rest.split_once(" % of "))
        .and_then(|(share, _)| share.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("the threaded worker's kernels and work: {kernels:?}"));
    assert!(share > 0, "{kernels:?}");
    client.close().await.unwrap();
}
