//! Download progress for one file: rate, ETA, and throttling to a few events per second so
//! the page is not flooded with messages. Pure arithmetic on times and byte counts, so it
//! compiles (and is tested) natively; the worker feeds it `performance.now()`.

use crate::protocol::FileProgress;

/// Least time between two progress events of one file, milliseconds.
const MIN_INTERVAL_MS: f64 = 250.0;
/// Weight of the newest measurement in the smoothed rate.
const RATE_SMOOTHING: f64 = 0.3;

/// Tracks one download and says when a progress event is due.
#[derive(Debug, Clone)]
pub struct ProgressMeter {
    file: String,
    total: Option<u64>,
    last_ms: f64,
    last_bytes: u64,
    rate: Option<f64>,
}

impl ProgressMeter {
    /// A download of `file` (total size if known) that starts with `bytes` already stored.
    pub fn new(file: &str, total: Option<u64>, bytes: u64, now_ms: f64) -> Self {
        Self {
            file: file.to_string(),
            total,
            last_ms: now_ms,
            last_bytes: bytes,
            rate: None,
        }
    }

    /// The single event of a file read whole from the cache.
    pub fn cached(file: &str, size: u64) -> FileProgress {
        FileProgress {
            file: file.to_string(),
            bytes: size,
            total: Some(size),
            rate_bytes_per_s: 0.0,
            eta_s: Some(0.0),
            from_cache: true,
        }
    }

    /// Records that `bytes` are stored now; returns an event when one is due.
    pub fn update(&mut self, bytes: u64, now_ms: f64) -> Option<FileProgress> {
        let elapsed = now_ms - self.last_ms;
        if elapsed < MIN_INTERVAL_MS {
            return None;
        }
        let instant = (bytes - self.last_bytes) as f64 * 1000.0 / elapsed;
        self.rate = Some(match self.rate {
            Some(r) => r + RATE_SMOOTHING * (instant - r),
            None => instant,
        });
        self.last_ms = now_ms;
        self.last_bytes = bytes;
        Some(self.event(bytes))
    }

    /// The last event of the download, sent whatever the throttle says.
    pub fn finish(&mut self, bytes: u64, now_ms: f64) -> FileProgress {
        self.update(bytes, now_ms)
            .unwrap_or_else(|| self.event(bytes))
    }

    fn event(&self, bytes: u64) -> FileProgress {
        let rate = self.rate.unwrap_or(0.0);
        let eta_s = match self.total {
            Some(total) if bytes >= total => Some(0.0),
            Some(total) if rate > 0.0 => Some((total - bytes) as f64 / rate),
            _ => None,
        };
        FileProgress {
            file: self.file.clone(),
            bytes,
            total: self.total,
            rate_bytes_per_s: rate,
            eta_s,
            from_cache: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_and_reports_rate_and_eta() {
        let mut meter = ProgressMeter::new("a/b.gguf", Some(10_000), 2_000, 0.0);
        assert_eq!(meter.update(3_000, 100.0), None, "too soon");
        let first = meter.update(4_000, 500.0).unwrap();
        assert_eq!(first.bytes, 4_000);
        assert_eq!(first.rate_bytes_per_s, 4_000.0);
        assert_eq!(first.eta_s, Some(1.5));
        assert!(!first.from_cache);
        let second = meter.update(6_000, 1_000.0).unwrap();
        // Smoothed: 4000 + 0.3 × (4000 − 4000).
        assert_eq!(second.rate_bytes_per_s, 4_000.0);
        assert_eq!(second.eta_s, Some(1.0));
        let last = meter.finish(10_000, 1_100.0);
        assert_eq!((last.bytes, last.eta_s), (10_000, Some(0.0)));
    }

    #[test]
    fn unknown_total_has_no_eta_and_cached_files_one_event() {
        let mut meter = ProgressMeter::new("x", None, 0, 0.0);
        let event = meter.update(1_000, 1_000.0).unwrap();
        assert_eq!((event.total, event.eta_s), (None, None));
        let cached = ProgressMeter::cached("x", 42);
        assert!(cached.from_cache);
        assert_eq!((cached.bytes, cached.total), (42, Some(42)));
    }
}
