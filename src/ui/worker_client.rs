//! The page's side of the engine worker: spawns it, sends [`Request`]s and hands every
//! [`Event`] it posts to a callback.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::protocol::{Event, Request};

/// The worker script trunk writes next to the page (`data-loader-shim`, no file hash).
pub const WORKER_URL: &str = "./worker_loader.js";

/// The same worker built with relaxed SIMD (`--features relaxed-simd`), whose module does not
/// validate in a browser without it.
pub const RELAXED_WORKER_URL: &str = "./worker-relaxed_loader.js";

/// The smallest module that uses the instruction the relaxed build adds: a function returning
/// `i32x4.relaxed_dot_i8x16_i7x16_add_s` of three splatted zeros.
const RELAXED_SIMD_PROBE: [u8; 40] = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version 1
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: [] -> [v128]
    0x03, 0x02, 0x01, 0x00, // one function of type 0
    0x0a, 0x13, 0x01, 0x11, 0x00, // code: one body of 17 bytes, no locals
    0x41, 0x00, 0xfd, 0x0f, // i32.const 0, i8x16.splat
    0x41, 0x00, 0xfd, 0x0f, // i32.const 0, i8x16.splat
    0x41, 0x00, 0xfd, 0x0f, // i32.const 0, i8x16.splat
    0xfd, 0x93, 0x02, // i32x4.relaxed_dot_i8x16_i7x16_add_s (0xfd 275)
    0x0b, // end
];

/// Whether this browser validates `module`.
fn validates(module: &[u8]) -> bool {
    js_sys::WebAssembly::validate(&js_sys::Uint8Array::from(module).into()).unwrap_or(false)
}

/// Whether this browser has relaxed SIMD's integer dot product.
pub fn has_relaxed_simd() -> bool {
    validates(&RELAXED_SIMD_PROBE)
}

/// The same worker built with shared memory and threads (`scripts/build-threads.sh`, with
/// relaxed SIMD), which only a cross-origin isolated page can start.
pub const THREADS_WORKER_URL: &str = "./worker-threads_loader.js";

/// Whether this page is cross-origin isolated, which shared memory needs (the page's host
/// sends COOP and COEP: trunk's `[serve.headers]`, the Space's README).
pub fn cross_origin_isolated() -> bool {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("crossOriginIsolated"))
        .is_ok_and(|v| v.is_truthy())
}

/// The worker build for this browser: the threaded one where the page is cross-origin
/// isolated and relaxed SIMD validates, else the relaxed SIMD one where it validates, else the
/// SIMD128 one. Page parameters choose otherwise, to compare builds or to rule one out when
/// something looks wrong: `?kernels=simd128` runs the SIMD128 build (what a browser without
/// relaxed SIMD runs), `?threads=1` a single-thread build, and `?threads=N` the threaded one
/// with `N` threads (it takes the browser's cores by default).
pub fn worker_url() -> String {
    choose_worker(
        super::page_parameter("kernels").as_deref(),
        super::page_parameter("threads").as_deref(),
        has_relaxed_simd(),
        cross_origin_isolated(),
    )
}

/// [`worker_url`] for the page parameters `kernels` and `threads`, in a browser with or without
/// relaxed SIMD and cross-origin isolation.
fn choose_worker(
    kernels: Option<&str>,
    threads: Option<&str>,
    relaxed: bool,
    isolated: bool,
) -> String {
    let threads = threads.and_then(|t| t.parse::<usize>().ok());
    if kernels == Some("simd128") || !relaxed {
        WORKER_URL.to_string()
    } else if threads == Some(1) || !isolated {
        RELAXED_WORKER_URL.to_string()
    } else if let Some(threads) = threads.filter(|&t| t > 1) {
        format!("{THREADS_WORKER_URL}?threads={threads}")
    } else {
        THREADS_WORKER_URL.to_string()
    }
}

/// A running engine worker; terminated on drop.
pub struct WorkerClient {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerClient").finish_non_exhaustive()
    }
}

impl WorkerClient {
    /// Starts the worker; `on_event` receives each event it sends. A message that is not a
    /// valid event, and an error the worker does not catch (a panic, a failed allocation),
    /// arrive as [`Event::Error`].
    pub fn spawn(on_event: impl Fn(Event) + 'static) -> Result<Self, String> {
        let on_event = Rc::new(on_event);
        let options = WorkerOptions::new();
        options.set_type(WorkerType::Classic);
        let url = worker_url();
        let worker = Worker::new_with_options(&url, &options)
            .map_err(|e| format!("starting the engine worker {url}: {e:?}"))?;
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new({
            let on_event = Rc::clone(&on_event);
            move |error: ErrorEvent| {
                on_event(Event::Error {
                    message: format!("the engine worker failed: {}", error.message()),
                })
            }
        });
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |message: MessageEvent| {
            let text = message.data().as_string().unwrap_or_default();
            on_event(Event::from_json(&text).unwrap_or_else(|e| Event::Error {
                message: format!("the worker sent an unreadable message: {e}"),
            }));
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    /// Sends a request to the worker.
    pub fn send(&self, request: &Request) -> Result<(), String> {
        self.worker
            .post_message(&JsValue::from_str(&request.to_json()))
            .map_err(|e| format!("sending to the engine worker: {e:?}"))
    }
}

impl Drop for WorkerClient {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}

#[cfg(test)]
mod tests {
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    /// The probe with its relaxed dot (bytes 36..39) replaced by `instruction`.
    fn probe_with(instruction: &[u8]) -> Vec<u8> {
        let mut module = RELAXED_SIMD_PROBE.to_vec();
        let shrink = (3 - instruction.len()) as u8;
        module[20] -= shrink; // the code section's size
        module[22] -= shrink; // the body's size
        module.splice(36..39, instruction.iter().copied());
        module
    }

    #[test]
    fn the_probe_is_a_valid_module_around_one_instruction() {
        assert_eq!(probe_with(&[0xfd, 0x93, 0x02]), RELAXED_SIMD_PROBE);
        // `v128.bitselect` (SIMD128) takes three v128 and gives one, as the relaxed dot does:
        // the module around it validates.
        assert!(validates(&probe_with(&[0xfd, 0x52])));
        // SIMD opcode 511 does not exist, and the same module with it does not validate.
        assert!(!validates(&probe_with(&[0xfd, 0xff, 0x03])));
    }

    #[test]
    fn chromium_takes_the_threaded_worker_on_an_isolated_page() {
        // Chromium has had relaxed SIMD since version 114, and the test runner sends COOP and
        // COEP as the app's hosts do.
        assert!(has_relaxed_simd());
        assert!(cross_origin_isolated());
        assert_eq!(worker_url(), THREADS_WORKER_URL);
    }

    #[test]
    fn page_parameters_and_the_browser_choose_the_worker_build() {
        let choose = choose_worker;
        assert_eq!(choose(None, None, true, true), THREADS_WORKER_URL);
        assert_eq!(
            choose(None, Some("3"), true, true),
            "./worker-threads_loader.js?threads=3"
        );
        // Shared memory needs isolation; the threaded build needs relaxed SIMD.
        assert_eq!(choose(None, Some("3"), true, false), RELAXED_WORKER_URL);
        assert_eq!(choose(None, None, false, true), WORKER_URL);
        // One thread runs a single-thread build; `kernels=simd128` the SIMD128 one.
        assert_eq!(choose(None, Some("1"), true, true), RELAXED_WORKER_URL);
        assert_eq!(choose(Some("simd128"), None, true, true), WORKER_URL);
        // A parameter that is not a count is the default.
        assert_eq!(choose(None, Some("many"), true, true), THREADS_WORKER_URL);
        assert_eq!(choose(None, Some("0"), true, true), THREADS_WORKER_URL);
    }
}
