//! The command line `keel-bench memory` and `restart` share: a `--flag value` reader and
//! the load flags both take, so that the two commands accept and word them alike.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::load::{parse_addr, LoadOptions};

/// A `--flag value` command line, read one flag at a time. The caller takes a flag's value
/// only once it knows the flag, so that an unknown last flag is reported as unknown rather
/// than as missing its value.
pub struct Flags<'a> {
    it: std::slice::Iter<'a, String>,
}

impl<'a> Flags<'a> {
    pub fn new(args: &'a [String]) -> Self {
        Flags { it: args.iter() }
    }

    pub fn next_flag(&mut self) -> Option<&'a str> {
        self.it.next().map(String::as_str)
    }

    pub fn value(&mut self, flag: &str) -> Result<&'a str, String> {
        self.it
            .next()
            .map(String::as_str)
            .ok_or_else(|| format!("{flag} expects a value"))
    }

    pub fn num(&mut self, flag: &str) -> Result<u64, String> {
        let v = self.value(flag)?;
        v.parse()
            .map_err(|_| format!("{flag} expects a number, not `{v}`"))
    }
}

/// The load flags `memory` and `restart` both take: `--connect HOST:PORT`, `--znodes N`,
/// `--value-size B`, `--inflight K` and `--root PATH`. Whether `--connect` and `--znodes`
/// may be left out, and what that means, is each command's to say.
#[derive(Debug, Clone)]
pub struct LoadArgs {
    pub addr: Option<SocketAddr>,
    pub znodes: Option<u64>,
    pub root: String,
    pub value_size: usize,
    pub inflight: usize,
}

impl LoadArgs {
    /// 128-byte values, 256 creates in flight, under `/keel-bench/{kind}-{unix secs}-{pid}`
    /// so that a rerun against the same server loads into a fresh parent.
    pub fn new(kind: &str) -> Self {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        LoadArgs {
            addr: None,
            znodes: None,
            root: format!("/keel-bench/{kind}-{stamp}-{}", std::process::id()),
            value_size: 128,
            inflight: 256,
        }
    }

    /// Takes `flag` and its value when it is a load flag; `false`, with nothing taken,
    /// when it is not.
    pub fn take(&mut self, flag: &str, flags: &mut Flags) -> Result<bool, String> {
        match flag {
            "--connect" => self.addr = Some(parse_addr(flags.value(flag)?)?),
            "--znodes" => self.znodes = Some(flags.num(flag)?),
            "--value-size" => self.value_size = flags.num(flag)? as usize,
            "--inflight" => self.inflight = flags.num(flag)?.max(1) as usize,
            "--root" => self.root = flags.value(flag)?.to_string(),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The load to run, once the command has settled the server and the count.
    pub fn options(self, addr: SocketAddr, znodes: u64) -> LoadOptions {
        LoadOptions {
            addr,
            root: self.root,
            znodes,
            value_size: self.value_size,
            inflight: self.inflight,
            reply_timeout: Duration::from_secs(30),
        }
    }
}

/// `["a", "b"]` as the owned arguments the parsers take.
#[cfg(test)]
pub(crate) fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_flags() {
        let a = args(&[
            "--connect",
            "127.0.0.1:2999",
            "--inflight",
            "0",
            "--root",
            "/r",
            "--pid",
            "7",
            "--value-size",
        ]);
        let mut flags = Flags::new(&a);
        let mut load = LoadArgs::new("t");
        assert!(load.root.starts_with("/keel-bench/t-"));
        let mut other = vec![];
        let err = loop {
            let Some(flag) = flags.next_flag() else {
                break None;
            };
            match load.take(flag, &mut flags) {
                Ok(true) => {}
                Ok(false) => other.push((flag, flags.num(flag))),
                Err(e) => break Some(e),
            }
        };
        assert_eq!(err.as_deref(), Some("--value-size expects a value"));
        assert_eq!(other, [("--pid", Ok(7))]);
        assert_eq!(
            (load.addr.map(|a| a.port()), load.znodes),
            (Some(2999), None)
        );
        let o = load.options(([127, 0, 0, 1], 1).into(), 5);
        assert_eq!((o.root.as_str(), o.inflight, o.value_size), ("/r", 1, 128));
        let a = args(&["--znodes", "x"]);
        let mut flags = Flags::new(&a);
        let flag = flags.next_flag().expect("flag");
        assert_eq!(
            LoadArgs::new("t").take(flag, &mut flags),
            Err("--znodes expects a number, not `x`".into())
        );
    }
}
