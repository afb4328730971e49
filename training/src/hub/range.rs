//! Interpreting a `Range` request header against a file size.
//!
//! Rules: one `bytes=` range gives a partial response; several ranges give the
//! whole file (200), which RFC 9110 allows; a unit other than `bytes` is ignored
//! (the RFC requires that); a malformed byte range or one that starts past the
//! end is unsatisfiable (416).

/// What part of a file a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ByteRange {
    /// The whole file, answered with 200.
    Full,
    /// `len` bytes (at least one) from `start`, answered with 206.
    Partial { start: u64, len: u64 },
    /// Nothing can be served, answered with 416 and `Content-Range: bytes */SIZE`.
    Unsatisfiable,
}

enum Spec {
    /// `first-` or `first-last`.
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// Decides what to serve for an optional `Range` header value and a file of `size` bytes.
pub(crate) fn evaluate(header: Option<&str>, size: u64) -> ByteRange {
    let Some(value) = header else {
        return ByteRange::Full;
    };
    let Some((unit, specs)) = value.trim().split_once('=') else {
        return ByteRange::Unsatisfiable;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return ByteRange::Full;
    }
    let mut parsed = Vec::new();
    for spec in specs.split(',') {
        match parse_spec(spec.trim()) {
            Some(spec) => parsed.push(spec),
            None => return ByteRange::Unsatisfiable,
        }
    }
    match parsed.as_slice() {
        [only] => resolve(only, size),
        _ => ByteRange::Full,
    }
}

fn parse_spec(spec: &str) -> Option<Spec> {
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return Some(Spec::Suffix(number(last)?));
    }
    let first = number(first)?;
    if last.is_empty() {
        return Some(Spec::From(first, None));
    }
    let last = number(last)?;
    (last >= first).then_some(Spec::From(first, Some(last)))
}

fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn resolve(spec: &Spec, size: u64) -> ByteRange {
    match *spec {
        Spec::From(first, last) if first < size => {
            let end = last.map_or(size - 1, |last| last.min(size - 1));
            ByteRange::Partial {
                start: first,
                len: end - first + 1,
            }
        }
        Spec::Suffix(n) if n > 0 && size > 0 => {
            let len = n.min(size);
            ByteRange::Partial {
                start: size - len,
                len,
            }
        }
        _ => ByteRange::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::{evaluate, ByteRange};

    fn part(start: u64, len: u64) -> ByteRange {
        ByteRange::Partial { start, len }
    }

    #[test]
    fn single_ranges() {
        assert_eq!(evaluate(None, 10), ByteRange::Full);
        assert_eq!(evaluate(Some("bytes=0-0"), 10), part(0, 1));
        assert_eq!(evaluate(Some("bytes=2-5"), 10), part(2, 4));
        assert_eq!(evaluate(Some("bytes=7-"), 10), part(7, 3));
        assert_eq!(evaluate(Some("bytes=5-100"), 10), part(5, 5));
        assert_eq!(evaluate(Some("bytes=-3"), 10), part(7, 3));
        assert_eq!(evaluate(Some("bytes=-30"), 10), part(0, 10));
        assert_eq!(evaluate(Some(" Bytes = 1 - 2 "), 10), part(1, 2));
    }

    #[test]
    fn refused_and_ignored_ranges() {
        for bad in [
            "bytes=10-",
            "bytes=10-20",
            "bytes=-0",
            "bytes=5-2",
            "bytes=",
            "bytes=a-b",
            "bytes=1",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
            "garbage",
        ] {
            assert_eq!(evaluate(Some(bad), 10), ByteRange::Unsatisfiable, "{bad}");
        }
        assert_eq!(evaluate(Some("bytes=0-"), 0), ByteRange::Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=-1"), 0), ByteRange::Unsatisfiable);
        assert_eq!(evaluate(Some("items=0-1"), 10), ByteRange::Full);
        assert_eq!(evaluate(Some("bytes=0-1,4-5"), 10), ByteRange::Full);
        assert_eq!(evaluate(Some("bytes=0-1,x"), 10), ByteRange::Unsatisfiable);
    }
}
