//! Jute, ZooKeeper's binary record encoding: big-endian integers, length-prefixed
//! buffers and strings (-1 = null), count-prefixed vectors.
//!
//! The reader borrows the frame it decodes and never panics on hostile input: every
//! read is bounds-checked and a bad length is a typed error, so one malformed frame
//! costs its connection, never the server.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum JuteError {
    #[error("record truncated: needed {need} bytes at offset {at}, frame has {len}")]
    Truncated { need: usize, at: usize, len: usize },
    #[error("unreasonable length {len} at offset {at}")]
    BadLength { len: i64, at: usize },
    #[error("string at offset {at} is not valid UTF-8")]
    BadUtf8 { at: usize },
    #[error("unknown opcode {0}")]
    UnknownOp(i32),
    #[error("{0} trailing bytes after the record")]
    Trailing(usize),
    #[error("invalid record: {0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, JuteError>;

/// Cursor over one frame's bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(JuteError::Truncated {
                need: n,
                at: self.pos,
                len: self.buf.len(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next i32 without consuming it.
    pub fn peek_i32(&self) -> Result<i32> {
        let b = self
            .buf
            .get(self.pos..self.pos + 4)
            .ok_or(JuteError::Truncated {
                need: 4,
                at: self.pos,
                len: self.buf.len(),
            })?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i64(&mut self) -> Result<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A length-prefixed byte buffer; `None` for the null buffer (length -1).
    pub fn buffer(&mut self) -> Result<Option<&'a [u8]>> {
        let at = self.pos;
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 || len as usize > self.remaining() {
            return Err(JuteError::BadLength {
                len: len as i64,
                at,
            });
        }
        self.take(len as usize).map(Some)
    }

    /// A buffer where null and empty mean the same (request payloads).
    pub fn bytes(&mut self) -> Result<Vec<u8>> {
        Ok(self.buffer()?.map(|b| b.to_vec()).unwrap_or_default())
    }

    /// A buffer that keeps null (length -1) apart from empty, as znode data does.
    pub fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(self.buffer()?.map(|b| b.to_vec()))
    }

    /// A UTF-8 string; null reads as the empty string (ZooKeeper treats both alike for paths).
    pub fn string(&mut self) -> Result<String> {
        let at = self.pos;
        match self.buffer()? {
            None => Ok(String::new()),
            Some(b) => std::str::from_utf8(b)
                .map(|s| s.to_owned())
                .map_err(|_| JuteError::BadUtf8 { at }),
        }
    }

    /// The element count of a vector; -1 (null) reads as 0. The count is checked against
    /// the bytes left, assuming each element takes at least `min_elem` bytes, so a hostile
    /// count cannot make us allocate.
    pub fn vec_len(&mut self, min_elem: usize) -> Result<usize> {
        let at = self.pos;
        let n = self.i32()?;
        if n == -1 {
            return Ok(0);
        }
        if n < 0 || (n as usize).saturating_mul(min_elem.max(1)) > self.remaining() {
            return Err(JuteError::BadLength { len: n as i64, at });
        }
        Ok(n as usize)
    }

    pub fn strings(&mut self) -> Result<Vec<String>> {
        let n = self.vec_len(4)?;
        (0..n).map(|_| self.string()).collect()
    }

    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(JuteError::Trailing(n)),
        }
    }
}

/// Appends jute-encoded fields to a byte vector.
#[derive(Default, Debug)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            buf: Vec::with_capacity(128),
        }
    }

    /// Starts a length-prefixed frame: writes a placeholder that `finish_frame` fills.
    pub fn framed() -> Self {
        let mut w = Writer::new();
        w.buf.extend_from_slice(&[0, 0, 0, 0]);
        w
    }

    pub fn finish_frame(mut self) -> Vec<u8> {
        let len = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }

    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(v as u8);
        self
    }

    pub fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.i32(v.len() as i32);
        self.buf.extend_from_slice(v);
        self
    }

    pub fn opt_buffer(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            Some(b) => self.buffer(b),
            None => self.i32(-1),
        }
    }

    pub fn string(&mut self, v: &str) -> &mut Self {
        self.buffer(v.as_bytes())
    }

    pub fn strings<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Self {
        self.i32(v.len() as i32);
        for s in v {
            self.string(s.as_ref());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_primitives() {
        let mut w = Writer::new();
        w.i32(-7)
            .i64(1 << 40)
            .bool(true)
            .buffer(b"ab")
            .string("/x")
            .strings(&["a", "b"]);
        w.i32(-1); // null buffer
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.i32().unwrap(), -7);
        assert_eq!(r.i64().unwrap(), 1 << 40);
        assert!(r.bool().unwrap());
        assert_eq!(r.bytes().unwrap(), b"ab");
        assert_eq!(r.string().unwrap(), "/x");
        assert_eq!(r.strings().unwrap(), vec!["a", "b"]);
        assert_eq!(r.buffer().unwrap(), None);
        r.finish().unwrap();
    }

    #[test]
    fn hostile_lengths_are_errors() {
        let mut w = Writer::new();
        w.i32(1_000_000);
        assert!(matches!(
            Reader::new(&w.buf).buffer(),
            Err(JuteError::BadLength { .. })
        ));
        let mut w = Writer::new();
        w.i32(-5);
        assert!(matches!(
            Reader::new(&w.buf).buffer(),
            Err(JuteError::BadLength { .. })
        ));
        let mut w = Writer::new();
        w.i32(i32::MAX);
        assert!(matches!(
            Reader::new(&w.buf).vec_len(4),
            Err(JuteError::BadLength { .. })
        ));
        assert!(matches!(
            Reader::new(&[0, 0]).i32(),
            Err(JuteError::Truncated { .. })
        ));
    }
}
