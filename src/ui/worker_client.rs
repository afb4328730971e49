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

/// The worker build for this browser: the relaxed SIMD one where it validates, unless the
/// page was opened with `?kernels=simd128` (what a browser without relaxed SIMD runs, to
/// compare or to rule the relaxed build out when something looks wrong).
pub fn worker_url() -> &'static str {
    let plain = super::page_parameter("kernels").as_deref() == Some("simd128");
    if !plain && has_relaxed_simd() {
        RELAXED_WORKER_URL
    } else {
        WORKER_URL
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
        let worker = Worker::new_with_options(url, &options)
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
    fn chromium_takes_the_relaxed_simd_worker() {
        // Chromium has had relaxed SIMD since version 114; the browser tests run in it.
        assert!(has_relaxed_simd());
        assert_eq!(worker_url(), RELAXED_WORKER_URL);
    }
}
