//! The matmul threads of the worker built with shared memory (`worker-threads`, which
//! `scripts/build-threads.sh` builds with `+atomics`): each is a Web Worker running
//! `pool_worker.js`, which instantiates this same module on the same memory and runs one
//! [`Worker`] of the kernels' pool until the engine worker ends.
//!
//! Web Workers started from a worker begin only once it returns to its event loop, and the
//! pool never waits for a thread to begin: until they do, the engine worker runs every task
//! itself.

use wasm_bindgen::prelude::*;
use web_sys::{WorkerGlobalScope, WorkerOptions, WorkerType};

use mimir_kernels::pool::{self, Worker};

/// The script of each thread; trunk copies it next to the engine worker (index.html).
const POOL_WORKER_URL: &str = "./pool_worker.js";

/// Most threads the engine starts on its own, itself included.
const MAX_THREADS: usize = 8;

/// The threads to run, the engine worker's included: the `threads` parameter of the worker's
/// URL (the page passes on its own), else the browser's logical cores, at most
/// [`MAX_THREADS`].
pub fn wanted(scope: &WorkerGlobalScope) -> usize {
    let search = scope.location().search();
    let parameter = web_sys::UrlSearchParams::new_with_str(&search)
        .ok()
        .and_then(|p| p.get("threads"))
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|&t| t > 0);
    parameter.unwrap_or_else(|| {
        (scope.navigator().hardware_concurrency() as usize).clamp(1, MAX_THREADS)
    })
}

/// Starts the kernels' pool with `threads` threads in all, the engine worker included.
pub fn start(threads: usize) -> Result<(), String> {
    pool::start(threads, spawn)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs `worker` in a new Web Worker.
fn spawn(worker: Worker) -> Result<(), String> {
    let options = WorkerOptions::new();
    options.set_type(WorkerType::Classic);
    options.set_name("mimir-pool");
    let thread = web_sys::Worker::new_with_options(POOL_WORKER_URL, &options)
        .map_err(|e| format!("starting {POOL_WORKER_URL}: {}", super::js_error(&e)))?;
    let worker = Box::into_raw(Box::new(worker));
    let message = js_sys::Array::of3(
        &wasm_bindgen::module(),
        &wasm_bindgen::memory(),
        &JsValue::from(worker as usize as u32),
    );
    if let Err(e) = thread.post_message(&message) {
        // SAFETY: the pointer came from `Box::into_raw` above and was not handed out.
        drop(unsafe { Box::from_raw(worker) });
        thread.terminate();
        return Err(format!(
            "sending the module to {POOL_WORKER_URL}: {}",
            super::js_error(&e)
        ));
    }
    // The thread lives as long as the engine worker; its handle is never needed again.
    std::mem::forget(thread);
    Ok(())
}

/// The entry of a pool thread (`pool_worker.js`): runs the [`Worker`] that [`spawn`] sent,
/// never returning while the pool lives.
#[wasm_bindgen(js_name = mimirPoolWorker)]
pub fn pool_worker(worker: u32) {
    // SAFETY: `spawn` sent a pointer from `Box::into_raw`, to this thread only.
    let worker = unsafe { Box::from_raw(worker as usize as *mut Worker) };
    worker.run();
}
