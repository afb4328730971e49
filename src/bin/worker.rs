//! The engine worker's entry point: trunk builds it as a dedicated Web Worker
//! (`data-type="worker"`), the page spawns it from `worker_loader.js`.

#[cfg(target_arch = "wasm32")]
pub fn main() {
    console_error_panic_hook::set_once();
    mimir::worker::run();
}

#[cfg(not(target_arch = "wasm32"))]
pub fn main() {
    eprintln!("the worker runs only in a browser: `make serve` builds it for wasm32");
    std::process::exit(2);
}
