//! The syntax of `java.util.Properties` files, as ZooKeeper reads `zoo.cfg`: `key=value`,
//! `key: value` or `key value`, comments, continuation lines and escapes.

use super::*;

/// One `key=value` of a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) line: usize,
    pub(super) key: String,
    pub(super) value: String,
}

pub(super) fn read_properties(path: &Path) -> Result<Vec<Entry>, ConfigError> {
    let mut bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.starts_with(b"\xef\xbb\xbf") {
        bytes.drain(..3);
    }
    // ZooKeeper reads ISO-8859-1; Keel reads UTF-8 when the file is valid UTF-8 and
    // ISO-8859-1 otherwise, so plain ASCII files read the same either way.
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    };
    parse_properties(&text).map_err(|(line, key, message)| ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        key,
        message,
    })
}

pub(super) fn is_prop_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Java `String.trim`: strips every char up to U+0020.
pub(super) fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Parses `java.util.Properties` text into entries in file order (duplicates kept), keys and
/// values trimmed as ZooKeeper does. Errors: (line, key, message).
pub(super) fn parse_properties(text: &str) -> Result<Vec<Entry>, (usize, String, String)> {
    // Natural lines, split on \n, \r\n or \r.
    let mut lines: Vec<(usize, &str)> = Vec::new();
    let bytes = text.as_bytes();
    let (mut start, mut i, mut number) = (0usize, 0usize, 1usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push((number, &text[start..i]));
                i += 1;
                start = i;
                number += 1;
            }
            b'\r' => {
                lines.push((number, &text[start..i]));
                i += 1;
                if bytes.get(i) == Some(&b'\n') {
                    i += 1;
                }
                start = i;
                number += 1;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push((number, &text[start..]));
    }

    let mut entries = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let (line_no, raw) = lines[next];
        next += 1;
        let first = raw.trim_start_matches(is_prop_ws);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes continues the line;
        // the continuation's leading whitespace is dropped; a blank continuation ends it.
        let mut logical = String::new();
        let mut current = first;
        loop {
            let trailing = current.chars().rev().take_while(|&c| c == '\\').count();
            if trailing % 2 == 0 {
                logical.push_str(current);
                break;
            }
            logical.push_str(&current[..current.len() - 1]);
            let Some(&(_, raw_next)) = lines.get(next) else {
                break;
            };
            next += 1;
            current = raw_next.trim_start_matches(is_prop_ws);
            if current.is_empty() {
                break;
            }
        }
        let (key, value) = split_key_value(&logical);
        let key_text = unescape(&key).map_err(|m| {
            (
                line_no,
                java_trim(&key.iter().collect::<String>()).to_string(),
                m,
            )
        })?;
        let key = java_trim(&key_text).to_string();
        let value_text = unescape(&value).map_err(|m| (line_no, key.clone(), m))?;
        entries.push(Entry {
            line: line_no,
            key,
            value: java_trim(&value_text).to_string(),
        });
    }
    Ok(entries)
}

/// Splits a logical line into its raw (still escaped) key and value, as `Properties.load`.
pub(super) fn split_key_value(line: &str) -> (Vec<char>, Vec<char>) {
    let chars: Vec<char> = line.chars().collect();
    let mut key_len = 0;
    let mut value_start = chars.len();
    let mut has_separator = false;
    let mut escaped = false;
    while key_len < chars.len() {
        let c = chars[key_len];
        if (c == '=' || c == ':') && !escaped {
            value_start = key_len + 1;
            has_separator = true;
            break;
        } else if is_prop_ws(c) && !escaped {
            value_start = key_len + 1;
            break;
        }
        escaped = c == '\\' && !escaped;
        key_len += 1;
    }
    while value_start < chars.len() {
        let c = chars[value_start];
        if !is_prop_ws(c) {
            if !has_separator && (c == '=' || c == ':') {
                has_separator = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    (
        chars[..key_len].to_vec(),
        chars[value_start.min(chars.len())..].to_vec(),
    )
}

/// Resolves `Properties` escapes: `\t \n \r \f`, `\uXXXX` (surrogate pairs joined), and
/// `\x` = `x` for any other char.
pub(super) fn unescape(chars: &[char]) -> Result<String, String> {
    let mut out = String::with_capacity(chars.len());
    let mut pending_high: Option<u32> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&escape) = chars.get(i) else { break };
        i += 1;
        let decoded = match escape {
            'u' => {
                let hex: String = chars
                    .get(i..i + 4)
                    .map(|h| h.iter().collect())
                    .unwrap_or_default();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| {
                        "malformed \\uXXXX escape (it needs exactly four hex digits)".to_string()
                    })?;
                i += 4;
                if (0xD800..0xDC00).contains(&code) {
                    pending_high = Some(code);
                    continue;
                }
                if (0xDC00..0xE000).contains(&code) {
                    let high = pending_high.take().unwrap_or(0xD800);
                    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00))
                        .unwrap_or('\u{fffd}')
                } else {
                    char::from_u32(code).unwrap_or('\u{fffd}')
                }
            }
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            'f' => '\x0c',
            other => other,
        };
        if pending_high.take().is_some() {
            out.push('\u{fffd}');
        }
        out.push(decoded);
    }
    if pending_high.is_some() {
        out.push('\u{fffd}');
    }
    Ok(out)
}
