//! The engine worker built with relaxed SIMD's dot products (`--features relaxed-simd`): the
//! page starts it instead of `worker` where the browser validates relaxed SIMD
//! (`worker_client::worker_url`); the code is `worker`'s.

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    mimir::worker::run();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("the worker runs only in a browser: `make serve` builds it for wasm32");
    std::process::exit(2);
}
