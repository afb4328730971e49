//! The page's side of the engine worker: spawns it, sends [`Request`]s and hands every
//! [`Event`] it posts to a callback.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{ErrorEvent, MessageEvent, Worker, WorkerOptions, WorkerType};

use crate::protocol::{Event, Request};

/// The worker script trunk writes next to the page (`data-loader-shim`, no file hash).
pub const WORKER_URL: &str = "./worker_loader.js";

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
        let worker = Worker::new_with_options(WORKER_URL, &options)
            .map_err(|e| format!("starting the engine worker {WORKER_URL}: {e:?}"))?;
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
