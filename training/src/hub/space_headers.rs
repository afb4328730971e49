//! The headers a Hugging Face Space sends, read from its README's YAML front matter
//! (`custom_headers:`), and single headers given as `Name: value`.
//!
//! Only the part of YAML the Space configuration uses is read: the block between the first
//! two `---` lines, and under `custom_headers:` one `name: value` pair per indented line
//! (values may be quoted).

use std::path::Path;

use super::http::is_tchar;
use super::HubError;

/// The `custom_headers` of the Space README at `path`.
pub fn space_headers(path: &Path) -> Result<Vec<(String, String)>, HubError> {
    let text = std::fs::read_to_string(path).map_err(|e| HubError::SpaceReadme {
        path: path.to_path_buf(),
        reason: format!("cannot read it: {e}"),
    })?;
    parse_space_headers(&text).map_err(|reason| HubError::SpaceReadme {
        path: path.to_path_buf(),
        reason,
    })
}

/// The `custom_headers` of a Space README's text; the error says what is wrong.
pub fn parse_space_headers(readme: &str) -> Result<Vec<(String, String)>, String> {
    let mut lines = readme.lines();
    if lines.next().map(str::trim_end) != Some("---") {
        return Err("no YAML front matter (the first line is not `---`)".to_string());
    }
    let front: Vec<&str> = lines.take_while(|l| l.trim_end() != "---").collect();
    let start = front
        .iter()
        .position(|l| l.trim_end() == "custom_headers:")
        .ok_or("the front matter has no `custom_headers:` block")?;
    let mut headers = Vec::new();
    for line in front[start + 1..]
        .iter()
        .take_while(|l| l.starts_with([' ', '\t']))
    {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        headers.push(parse_header(line.trim()).map_err(|e| e.to_string())?);
    }
    if headers.is_empty() {
        return Err("`custom_headers:` lists no header".to_string());
    }
    Ok(headers)
}

/// A header given as `Name: value` (the value may be quoted, as in YAML).
pub fn parse_header(text: &str) -> Result<(String, String), HubError> {
    let bad = |reason: &str| HubError::BadHeader {
        header: text.to_string(),
        reason: reason.to_string(),
    };
    let (name, value) = text.split_once(':').ok_or_else(|| bad("no `:`"))?;
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(bad("the name is not an HTTP token"));
    }
    let value = value.trim();
    let value = ['"', '\'']
        .iter()
        .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
        .unwrap_or(value);
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(bad("the value is empty or holds control characters"));
    }
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_custom_headers_block_only() {
        let readme =
            "---\ntitle: Mimir\ncustom_headers:\n  cross-origin-embedder-policy: require-corp\n  \
                      cross-origin-opener-policy: \"same-origin\"\nsdk: static\n---\n\n\
                      custom_headers:\n  x-not-front-matter: 1\n";
        assert_eq!(
            parse_space_headers(readme).unwrap(),
            [
                ("cross-origin-embedder-policy".into(), "require-corp".into()),
                ("cross-origin-opener-policy".into(), "same-origin".into()),
            ]
        );
    }

    #[test]
    fn refuses_what_cannot_be_sent() {
        for (readme, why) in [
            ("title: x\n", "no YAML front matter"),
            ("---\ntitle: x\n---\n", "no `custom_headers:`"),
            (
                "---\ncustom_headers:\nsdk: static\n---\n",
                "lists no header",
            ),
            (
                "---\ncustom_headers:\n  bad name: x\n---\n",
                "not an HTTP token",
            ),
            (
                "---\ncustom_headers:\n  x-empty: ''\n---\n",
                "value is empty",
            ),
            ("---\ncustom_headers:\n  no-colon\n---\n", "no `:`"),
        ] {
            let err = parse_space_headers(readme).unwrap_err();
            assert!(err.contains(why), "{readme:?}: {err}");
        }
        assert!(parse_header("X-A: b\r\nX-Injected: 1").is_err());
    }
}
