//! Faults injected into responses on purpose, chosen by request path.
//!
//! Matching: a fault's `path` is compared with the request path exactly as sent
//! (still percent-encoded, query string removed). `*` matches any run of
//! characters, `/` included; a pattern without `*` must match exactly. The
//! first fault in list order that matches, is not used up, and applies wins.
//! A `status` fault applies to every GET/HEAD (not OPTIONS, not `/_hub/`);
//! a `cut_after`/`rate` fault applies only to a GET that sends file bytes
//! (200/206), so HEAD, 404 or 416 answers neither trigger nor use it up.

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{lock, HubError};

/// One injected fault: which requests it hits and what it does to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Request-path pattern (see the module docs): exact, or with `*` wildcards.
    pub path: String,
    /// Answer with this status (400-599) and a JSON error body instead of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Send full headers (full `Content-Length`) but close the connection after
    /// this many body bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_after: Option<u64>,
    /// Throttle the body to this many bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    /// Apply only to the first `times` requests it hits; absent means always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl Fault {
    /// A fault on `path` that does nothing yet; add effects with the `with_*` methods.
    pub fn new(path: impl Into<String>) -> Fault {
        Fault {
            path: path.into(),
            status: None,
            cut_after: None,
            rate: None,
            times: None,
        }
    }

    /// Answer with `status` instead of the file.
    pub fn with_status(mut self, status: u16) -> Fault {
        self.status = Some(status);
        self
    }

    /// Close the connection after `bytes` body bytes.
    pub fn with_cut_after(mut self, bytes: u64) -> Fault {
        self.cut_after = Some(bytes);
        self
    }

    /// Throttle the body to `bytes_per_second`.
    pub fn with_rate(mut self, bytes_per_second: u64) -> Fault {
        self.rate = Some(bytes_per_second);
        self
    }

    /// Apply to the first `times` matching requests only.
    pub fn with_times(mut self, times: u32) -> Fault {
        self.times = Some(times);
        self
    }

    /// Checks that the fault makes sense: an error status, a positive rate and count, some effect.
    pub fn validate(&self) -> Result<(), HubError> {
        let reason = if self.path.is_empty() {
            "path pattern is empty"
        } else if self.status.is_some_and(|s| !(400..=599).contains(&s)) {
            "status must be an error status from 400 to 599"
        } else if self.rate == Some(0) {
            "rate must be at least 1 byte per second"
        } else if self.times == Some(0) {
            "times must be at least 1"
        } else if self.status.is_none() && self.cut_after.is_none() && self.rate.is_none() {
            "the fault does nothing: give status, cut_after or rate"
        } else {
            return Ok(());
        };
        Err(HubError::InvalidFault {
            path: self.path.clone(),
            reason: reason.to_string(),
        })
    }

    /// Whether this fault's pattern matches a request path (as sent, without query).
    pub fn matches(&self, request_path: &str) -> bool {
        glob(self.path.as_bytes(), request_path.as_bytes())
    }
}

/// `*` matches any run of bytes; everything else matches itself. Linear backtracking, no recursion.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if text.get(t) == Some(&c) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultList {
    faults: Vec<Fault>,
}

/// Parses and validates a fault list: `{"faults": [...]}` or a bare `[...]`.
pub fn parse_faults(json: &str) -> Result<Vec<Fault>, HubError> {
    let shape = |e: serde_json::Error| HubError::FaultList {
        reason: e.to_string(),
    };
    let value: serde_json::Value = serde_json::from_str(json).map_err(shape)?;
    let faults = if value.is_array() {
        serde_json::from_value::<Vec<Fault>>(value).map_err(shape)?
    } else {
        serde_json::from_value::<FaultList>(value)
            .map_err(shape)?
            .faults
    };
    faults.iter().try_for_each(Fault::validate)?;
    Ok(faults)
}

/// Reads and parses a fault file (`{"faults": [...]}`), naming the file in any error.
pub fn load_faults(path: &Path) -> Result<Vec<Fault>, HubError> {
    let text = std::fs::read_to_string(path).map_err(|source| HubError::FaultFileUnreadable {
        path: path.to_path_buf(),
        source,
    })?;
    parse_faults(&text).map_err(|e| HubError::FaultFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The live fault set of a running server, with per-fault use counts.
pub(crate) struct FaultTable {
    armed: Mutex<Vec<(Fault, u32)>>,
}

impl FaultTable {
    /// A table holding `faults`, none used yet.
    pub(crate) fn new(faults: Vec<Fault>) -> FaultTable {
        let table = FaultTable {
            armed: Mutex::new(Vec::new()),
        };
        table.replace(faults);
        table
    }

    /// Replaces every fault; use counts start again from zero.
    pub(crate) fn replace(&self, faults: Vec<Fault>) {
        *lock(&self.armed) = faults.into_iter().map(|f| (f, 0)).collect();
    }

    /// The faults as configured.
    pub(crate) fn list(&self) -> Vec<Fault> {
        lock(&self.armed).iter().map(|(f, _)| f.clone()).collect()
    }

    /// Picks the fault for a request and counts it as used (see the module docs for the rule).
    pub(crate) fn claim(&self, request_path: &str, sends_body: bool) -> Option<Fault> {
        let mut armed = lock(&self.armed);
        let (fault, used) = armed.iter_mut().find(|(f, used)| {
            f.matches(request_path)
                && f.times.is_none_or(|times| *used < times)
                && (f.status.is_some() || sends_body)
        })?;
        *used = used.saturating_add(1);
        Some(fault.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_patterns() {
        let m = |p: &str, t: &str| Fault::new(p).matches(t);
        assert!(m("/a/b", "/a/b"));
        assert!(!m("/a/b", "/a/bc"));
        assert!(m("/a/*", "/a/b/c"));
        assert!(m("*.gguf", "/o/r/resolve/main/m.gguf"));
        assert!(m("/*/resolve/*/x.bin", "/o/r/resolve/main/x.bin"));
        assert!(!m("/*/resolve/*/x.bin", "/o/r/resolve/main/y.bin"));
        assert!(m("*", ""));
        assert!(!m("/a*z", "/abc"));
    }

    #[test]
    fn claim_respects_times_and_kind() {
        let table = FaultTable::new(vec![
            Fault::new("/x").with_cut_after(3),
            Fault::new("/x").with_status(503).with_times(1),
        ]);
        assert_eq!(table.claim("/x", false).and_then(|f| f.status), Some(503));
        assert_eq!(table.claim("/x", false), None);
        assert_eq!(table.claim("/x", true).and_then(|f| f.cut_after), Some(3));
        assert_eq!(table.claim("/y", true), None);
    }

    #[test]
    fn parses_both_shapes_and_validates() {
        let listed = parse_faults(r#"{"faults":[{"path":"/a","status":500}]}"#);
        assert_eq!(listed.ok(), Some(vec![Fault::new("/a").with_status(500)]));
        let bare = parse_faults(r#"[{"path":"/a","rate":10,"times":2}]"#);
        assert_eq!(
            bare.ok(),
            Some(vec![Fault::new("/a").with_rate(10).with_times(2)])
        );
        for bad in [
            r#"{"faults":[{"path":"/a","status":200}]}"#,
            r#"{"faults":[{"path":"/a"}]}"#,
            r#"{"faults":[{"path":"/a","rate":0}]}"#,
            r#"{"faults":[{"path":"/a","bogus":1}]}"#,
            r#"{"faults":[{"path":"/a","status":500}], "x": 1}"#,
            "not json",
        ] {
            assert!(parse_faults(bad).is_err(), "{bad}");
        }
    }
}
