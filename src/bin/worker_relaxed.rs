//! The engine worker built with relaxed SIMD's dot products (`--features relaxed-simd`): the
//! page starts it instead of `worker` where the browser validates relaxed SIMD
//! (`worker_client::worker_url`). The code is `worker`'s.

#[path = "worker.rs"]
mod worker;

fn main() {
    worker::main();
}
