//! `keel-bench memory`: memory per znode. Reads a server's resident set size (`VmRSS` in
//! `/proc/PID/status`) before and after loading N znodes with pipelined creates, and reports
//! the growth per znode created. Works for any server whose pid is known (Keel, a ZooKeeper
//! JVM); for a JVM the number includes heap growth the collector has not given back.

use std::time::Duration;

use crate::load::{load_znodes, rss_bytes, LoadOptions};
use crate::load_args::{parse_as, LoadArgs};

/// `keel-bench memory` options.
#[derive(Debug, Clone)]
pub struct MemoryOptions {
    pub load: LoadOptions,
    pub pid: u32,
    /// Wait after the load before reading RSS again.
    pub settle: Duration,
}

/// What `keel-bench memory` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryResult {
    pub znodes: u64,
    pub created: u64,
    pub value_size: usize,
    pub rss_before: u64,
    pub rss_after: u64,
    pub load_secs: f64,
}

impl MemoryResult {
    /// RSS growth divided by the znodes created.
    pub fn bytes_per_znode(&self) -> f64 {
        if self.created == 0 {
            return 0.0;
        }
        (self.rss_after as f64 - self.rss_before as f64) / self.created as f64
    }

    pub fn summary(&self) -> String {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        format!(
            "memory: {} znodes of {} B created in {:.2} s ({:.0} creates/s)\n  rss before  {:.1} MiB\n  rss after   {:.1} MiB\n  per znode   {:.0} B (value {} B)\n",
            self.created,
            self.value_size,
            self.load_secs,
            self.created as f64 / self.load_secs.max(1e-9),
            mib(self.rss_before),
            mib(self.rss_after),
            self.bytes_per_znode(),
            self.value_size
        )
    }

    pub fn json(&self) -> String {
        format!(
            "{{\"kind\":\"memory\",\"znodes\":{},\"created\":{},\"value_size\":{},\"rss_before\":{},\"rss_after\":{},\"bytes_per_znode\":{:.1},\"load_secs\":{:.3}}}",
            self.znodes,
            self.created,
            self.value_size,
            self.rss_before,
            self.rss_after,
            self.bytes_per_znode(),
            self.load_secs
        )
    }
}

/// `keel-bench memory --connect HOST:PORT --pid PID --znodes N [OPTIONS]`: memory per
/// znode, the server's RSS (/proc/PID/status) before and after loading N znodes with
/// pipelined creates.
#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// The server's process id (its RSS is read from /proc/PID/status).
    #[arg(long)]
    pub pid: u32,
    /// Wait after the load before reading RSS again, in ms.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub settle: u64,
}

impl MemoryArgs {
    pub fn into_options(self) -> Result<MemoryOptions, String> {
        let addr = self
            .load
            .addr
            .ok_or("memory needs --connect HOST:PORT (the server to load)")?;
        let znodes = self.load.znodes.ok_or("memory needs --znodes N")?;
        Ok(MemoryOptions {
            load: self.load.options("mem", addr, znodes),
            pid: self.pid,
            settle: Duration::from_millis(self.settle),
        })
    }
}

/// Reads `memory`'s arguments (after the subcommand's name).
pub fn parse_args(args: &[String]) -> Result<MemoryOptions, String> {
    parse_as::<MemoryArgs>("memory", args)?.into_options()
}

/// Measures: RSS, load, wait `settle`, RSS again.
pub fn measure(o: &MemoryOptions) -> Result<MemoryResult, String> {
    let rss_before = rss_bytes(o.pid)?;
    let loaded = load_znodes(&o.load)?;
    std::thread::sleep(o.settle);
    let rss_after = rss_bytes(o.pid)?;
    if loaded.created == 0 {
        return Err(format!(
            "no znode was created ({} existed already under {}): use a fresh --root",
            loaded.existed, o.load.root
        ));
    }
    Ok(MemoryResult {
        znodes: o.load.znodes,
        created: loaded.created,
        value_size: o.load.value_size,
        rss_before,
        rss_after,
        load_secs: loaded.elapsed.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_args::args as s;

    #[test]
    fn args_and_output() {
        let o = parse_args(&s(&[
            "--connect",
            "127.0.0.1:2999",
            "--pid",
            "42",
            "--znodes",
            "10",
            "--value-size",
            "64",
        ]))
        .expect("parse");
        assert_eq!(
            (o.pid, o.load.znodes, o.load.value_size, o.load.addr.port()),
            (42, 10, 64, 2999)
        );
        assert!(parse_args(&s(&["--pid", "1", "--znodes", "1"])).is_err());
        assert!(parse_args(&s(&["--connect", "127.0.0.1", "--znodes", "1"]))
            .unwrap_err()
            .contains("--pid"));
        assert!(parse_args(&s(&["--bogus"])).is_err());
        let r = MemoryResult {
            znodes: 100,
            created: 100,
            value_size: 128,
            rss_before: 1000,
            rss_after: 51_000,
            load_secs: 0.5,
        };
        assert_eq!(r.bytes_per_znode(), 500.0);
        assert!(
            r.json().contains("\"bytes_per_znode\":500.0"),
            "{}",
            r.json()
        );
        assert!(r.summary().contains("per znode   500 B"), "{}", r.summary());
    }
}
