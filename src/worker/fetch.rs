//! Streamed HTTP downloads with `fetch`: optional `Range: bytes=N-`, the body read chunk by
//! chunk from its `ReadableStream`, and an `AbortController` so a load can be cancelled.

use js_sys::{Reflect, Uint8Array};
use thiserror::Error;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, AbortSignal, ReadableStreamDefaultReader, RequestCache, RequestInit,
    RequestMode, Response,
};

use super::js_error;

/// Why a request failed.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum FetchError {
    /// No answer (network down, CORS refused, connection closed mid-body).
    #[error("{url}: network error: {message}")]
    Network {
        /// The URL.
        url: String,
        /// What the browser said.
        message: String,
    },
    /// An answer that is not a success (404, 500).
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The load was cancelled.
    #[error("{url}: cancelled")]
    Cancelled {
        /// The URL.
        url: String,
    },
}

/// Cancels the downloads of one load: every request made with its [`Abort::signal`] stops.
#[derive(Debug, Clone)]
pub struct Abort {
    controller: AbortController,
}

impl Abort {
    /// A fresh, not yet aborted, controller.
    pub fn new() -> Result<Self, String> {
        AbortController::new()
            .map(|controller| Self { controller })
            .map_err(|e| format!("AbortController: {}", js_error(&e)))
    }

    /// Aborts every request using this controller's signal, now and later.
    pub fn abort(&self) {
        self.controller.abort();
    }

    /// True once [`Abort::abort`] was called.
    pub fn is_aborted(&self) -> bool {
        self.signal().aborted()
    }

    /// The signal passed to `fetch`.
    pub fn signal(&self) -> AbortSignal {
        self.controller.signal()
    }
}

/// An answered request whose body is read chunk by chunk.
#[derive(Debug)]
pub struct Download {
    /// The URL asked for.
    pub url: String,
    /// The HTTP status (200, or 206 for a range).
    pub status: u16,
    /// The response headers needed by the cache, lowercase names.
    response: Response,
    reader: ReadableStreamDefaultReader,
    abort: Abort,
}

impl Download {
    /// A response header, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.response.headers().get(name).ok().flatten()
    }

    /// The next body chunk, or `None` at the end of the body.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, FetchError> {
        let result = JsFuture::from(self.reader.read())
            .await
            .map_err(|e| self.failure(&e))?;
        let done = Reflect::get(&result, &JsValue::from_str("done"))
            .map(|d| d.is_truthy())
            .unwrap_or(true);
        if done {
            return Ok(None);
        }
        let value =
            Reflect::get(&result, &JsValue::from_str("value")).map_err(|e| self.failure(&e))?;
        Ok(Some(Uint8Array::new(&value).to_vec()))
    }

    /// Stops reading the body (the connection is released).
    pub fn cancel(&self) {
        let _ = self.reader.cancel();
    }

    fn failure(&self, error: &JsValue) -> FetchError {
        if self.abort.is_aborted() {
            FetchError::Cancelled {
                url: self.url.clone(),
            }
        } else {
            FetchError::Network {
                url: self.url.clone(),
                message: js_error(error),
            }
        }
    }
}

impl Drop for Download {
    /// A body not read to its end is cancelled, so a refused file is not downloaded anyway.
    fn drop(&mut self) {
        self.cancel();
    }
}

/// Starts a GET of `url`, from byte `from` on when it is not 0, and waits for the headers.
/// Success statuses only (200, 206); anything else is a [`FetchError::Status`].
pub async fn get(url: &str, from: u64, abort: &Abort) -> Result<Download, FetchError> {
    let network = |e: &JsValue| {
        if abort.is_aborted() {
            FetchError::Cancelled { url: url.into() }
        } else {
            FetchError::Network {
                url: url.into(),
                message: js_error(e),
            }
        }
    };
    let init = RequestInit::new();
    init.set_method("GET");
    init.set_mode(RequestMode::Cors);
    // OPFS is the model cache; the HTTP cache would keep a second copy of every model and
    // could answer a resumed download from its own partial entry.
    init.set_cache(RequestCache::NoStore);
    init.set_signal(Some(&abort.signal()));
    let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(|e| network(&e))?;
    if from > 0 {
        request
            .headers()
            .set("Range", &format!("bytes={from}-"))
            .map_err(|e| network(&e))?;
    }
    let promise = super::global().fetch_with_request(&request);
    let response: Response = JsFuture::from(promise)
        .await
        .map_err(|e| network(&e))?
        .unchecked_into();
    let status = response.status();
    if !(200..300).contains(&status) {
        return Err(FetchError::Status {
            url: url.into(),
            status,
        });
    }
    let body = response.body().ok_or_else(|| FetchError::Network {
        url: url.into(),
        message: "the response has no body".into(),
    })?;
    let reader: ReadableStreamDefaultReader =
        body.get_reader().dyn_into().map_err(|e| network(&e))?;
    Ok(Download {
        url: url.into(),
        status,
        response,
        reader,
        abort: abort.clone(),
    })
}

/// The whole body of a small file at `url` (the server config), read into memory.
pub async fn get_bytes(url: &str, abort: &Abort) -> Result<Vec<u8>, FetchError> {
    let mut download = get(url, 0, abort).await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = download.next_chunk().await? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
