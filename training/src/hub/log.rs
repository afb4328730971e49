//! The record of requests served (everything except the `/_hub/` control endpoints).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{lock, Fault};

/// How many records are kept; older ones are dropped first.
const MAX_RECORDS: usize = 10_000;

/// One served request, as listed by `GET /_hub/log` and [`super::HubServer::log`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// The HTTP method, e.g. `GET`.
    pub method: String,
    /// The request path as sent (percent-encoded), without query string.
    pub path: String,
    /// The `Range` header as sent, if any.
    pub range: Option<String>,
    /// The status code answered.
    pub status: u16,
    /// Body bytes handed to the socket so far (counted before each write, so a
    /// client that has received the whole body always sees the full count).
    pub bytes_sent: u64,
    /// The fault applied to this request, if any.
    pub fault: Option<Fault>,
}

/// Bounded, shareable request log.
#[derive(Default)]
pub(crate) struct RequestLog {
    entries: Mutex<VecDeque<(RequestRecord, Arc<AtomicU64>)>>,
}

impl RequestLog {
    /// Appends a record; the returned counter is where the sender adds body bytes.
    pub(crate) fn push(&self, record: RequestRecord) -> Arc<AtomicU64> {
        let sent = Arc::new(AtomicU64::new(record.bytes_sent));
        let mut entries = lock(&self.entries);
        if entries.len() >= MAX_RECORDS {
            entries.pop_front();
        }
        entries.push_back((record, Arc::clone(&sent)));
        sent
    }

    /// Every record, oldest first, with current byte counts.
    pub(crate) fn snapshot(&self) -> Vec<RequestRecord> {
        lock(&self.entries)
            .iter()
            .map(|(record, sent)| RequestRecord {
                bytes_sent: sent.load(Ordering::SeqCst),
                ..record.clone()
            })
            .collect()
    }

    /// Forgets every record.
    pub(crate) fn clear(&self) {
        lock(&self.entries).clear();
    }
}
