//! Browser entry point: mounts the app. Built for wasm32 by trunk.

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(mimir::ui::App);
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("mimir is a browser app: run `make serve` (trunk builds it for wasm32)");
    std::process::exit(2);
}
