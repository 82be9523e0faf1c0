//! Turning a run into what people and machines read: error code names, the human
//! summary, the one-line JSON record.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use keel_engine::proto::Code;

/// Every `KeeperException.Code` the generator can meet, by number.
const CODES: &[Code] = &[
    Code::Ok,
    Code::SystemError,
    Code::RuntimeInconsistency,
    Code::DataInconsistency,
    Code::ConnectionLoss,
    Code::MarshallingError,
    Code::Unimplemented,
    Code::OperationTimeout,
    Code::BadArguments,
    Code::UnknownSession,
    Code::NewConfigNoQuorum,
    Code::ReconfigInProgress,
    Code::ApiError,
    Code::NoNode,
    Code::NoAuth,
    Code::BadVersion,
    Code::NoChildrenForEphemerals,
    Code::NodeExists,
    Code::NotEmpty,
    Code::SessionExpired,
    Code::InvalidCallback,
    Code::InvalidAcl,
    Code::AuthFailed,
    Code::SessionMoved,
    Code::NotReadOnly,
    Code::EphemeralOnLocalSession,
    Code::NoWatcher,
    Code::RequestTimeout,
    Code::ReconfigDisabled,
    Code::SessionClosedRequireSaslAuth,
    Code::QuotaExceeded,
    Code::ThrottledOp,
];

/// The name ZooKeeper gives an error code (`NodeExists`, `ConnectionLoss`, ...), or
/// `Code(N)` for a number it does not define.
pub fn code_name(code: i32) -> String {
    match CODES.iter().find(|c| c.as_i32() == code) {
        Some(c) => format!("{c:?}"),
        None => format!("Code({code})"),
    }
}

/// Errors by code number, as names.
pub fn named_errors(errors: &BTreeMap<i32, u64>) -> BTreeMap<String, u64> {
    errors
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(c, n)| (code_name(*c), *n))
        .collect()
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number: finite floats with a fixed number of decimals, else null.
pub fn json_f64(v: f64, decimals: usize) -> String {
    if v.is_finite() {
        format!("{v:.decimals$}")
    } else {
        "null".into()
    }
}

/// Microseconds, shown in the unit that reads best.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// A whole number with thousands separators.
// `is_multiple_of` needs Rust 1.87; the workspace supports 1.85.
#[allow(clippy::manual_is_multiple_of)]
pub fn fmt_count(v: f64) -> String {
    let n = v.round() as i64;
    let digits: Vec<char> = n.unsigned_abs().to_string().chars().collect();
    let mut out = String::new();
    for (i, ch) in digits.iter().enumerate() {
        let left = digits.len() - i;
        if i > 0 && left % 3 == 0 {
            out.push(',');
        }
        out.push(*ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(code_name(-110), "NodeExists");
        assert_eq!(code_name(-4), "ConnectionLoss");
        assert_eq!(code_name(-999), "Code(-999)");
    }

    #[test]
    fn formatting() {
        assert_eq!(json_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(fmt_count(1234567.4), "1,234,567");
        assert_eq!(fmt_count(12.0), "12");
        assert_eq!(fmt_us(999), "999 µs");
        assert_eq!(fmt_us(1500), "1.50 ms");
        assert_eq!(json_f64(f64::NAN, 1), "null");
    }
}
