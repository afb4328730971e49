//! End to end: the trunk-built app (`dist/`) served as a static Space serves it, opened in
//! headless Chromium. Needs `trunk build` and `mimir-train`; `make test` provides both.

#[path = "support/browser.rs"]
mod browser;

use std::time::Duration;

use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_loads_and_reports_its_status() {
    let dist = browser::repo_root().join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "{} has no index.html: run `trunk build` first (make test does)",
        dist.display()
    );
    let (_server, url) =
        browser::start_server(&["static", "--root", dist.to_str().unwrap(), "--port", "0"]);
    let (_driver, client) = browser::start_browser().await;

    client.goto(&format!("{url}/")).await.unwrap();
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

    // It leaves the neutral loading state once the catalog has been read.
    let mut class = String::new();
    for _ in 0..100 {
        class = button.attr("class").await.unwrap().unwrap_or_default();
        if !class.contains("status-button-loading") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !class.contains("status-button-loading"),
        "still loading: {class}"
    );
    let tooltip = button
        .attr("data-tooltip")
        .await
        .unwrap()
        .unwrap_or_default();
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
