//! Bulk loading for the footprint measurements (`keel-bench memory` and `restart`): creates
//! N znodes under one parent over one session with many creates in flight, and the small
//! helpers both commands share (one server address, RSS of a process). Their load flags
//! are read by [`crate::load_args`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use keel_engine::proto::Code;

use crate::client::{Client, Event, Op};

/// What [`load_znodes`] should create.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub addr: SocketAddr,
    /// Parent of the znodes; created (with its ancestors) when missing.
    pub root: String,
    pub znodes: u64,
    pub value_size: usize,
    /// Creates outstanding at once.
    pub inflight: usize,
    /// How long to wait for any one reply before giving up.
    pub reply_timeout: Duration,
}

/// What [`load_znodes`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Znodes this run created.
    pub created: u64,
    /// Znodes that were already there (`NodeExists`), e.g. from an earlier run.
    pub existed: u64,
    pub elapsed: Duration,
    /// The path of the last znode in the sequence (`root/n<znodes-1>`), answered last.
    pub last_path: String,
}

/// The path of the `i`-th loaded znode.
pub fn znode_path(root: &str, i: u64) -> String {
    format!("{}/n{i:010}", root.trim_end_matches('/'))
}

/// One `HOST:PORT` (port 2181 when left out).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let with_port = if s
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        s.to_string()
    } else {
        format!("{s}:2181")
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("--connect `{s}`: {e}"))?
        .next()
        .ok_or_else(|| format!("--connect `{s}`: no address"))
}

/// `VmRSS` of process `pid` in bytes, from `/proc/PID/status`.
pub fn rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_vm_rss(&status).ok_or_else(|| format!("{path} has no VmRSS line"))
}

/// The `VmRSS:` line of a `/proc/PID/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kb * 1024)
}

/// Creates `path` and each missing ancestor; an existing node is fine.
pub fn ensure_path(c: &mut Client, path: &str, timeout: Duration) -> Result<(), String> {
    let mut at = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at.push('/');
        at.push_str(part);
        let r = c
            .call(
                &Op::Create {
                    path: &at,
                    data: &[],
                    flags: 0,
                },
                timeout,
            )
            .map_err(|e| format!("create {at}: {e}"))?;
        let code = r.code();
        if code != Code::Ok.as_i32() && code != Code::NodeExists.as_i32() {
            return Err(format!("create {at}: error code {code}"));
        }
    }
    Ok(())
}

/// Connects, makes sure `root` exists, then creates `root/n0000000000` ..
/// `root/n<znodes-1>` with `value_size`-byte values, keeping `inflight` creates
/// outstanding. Any error other than `NodeExists` stops the load.
pub fn load_znodes(o: &LoadOptions) -> Result<Loaded, String> {
    let mut c = Client::connect(o.addr, Duration::from_secs(30), Duration::from_secs(5))
        .map_err(|e| format!("cannot connect to {}: {e}", o.addr))?;
    ensure_path(&mut c, &o.root, o.reply_timeout)?;
    let data = vec![b'v'; o.value_size];
    let inflight = o.inflight.max(1);
    let started = Instant::now();
    let (mut next, mut done, mut created, mut existed) = (0u64, 0u64, 0u64, 0u64);
    while done < o.znodes {
        while next < o.znodes && c.outstanding() < inflight {
            let path = znode_path(&o.root, next);
            let op = Op::Create {
                path: &path,
                data: &data,
                flags: 0,
            };
            c.queue(&op, next, Instant::now());
            next += 1;
        }
        c.flush().map_err(|e| format!("send to {}: {e}", o.addr))?;
        match c.poll(Some(o.reply_timeout)) {
            Some(Event::Reply(r)) => {
                done += 1;
                match r.code() {
                    0 => created += 1,
                    -110 => existed += 1,
                    code => {
                        return Err(format!(
                            "create {} failed with error code {code}",
                            znode_path(&o.root, r.tag)
                        ))
                    }
                }
            }
            Some(Event::Watch(_)) => {}
            Some(Event::Closed { reason, lost }) => {
                return Err(format!(
                    "connection lost after {done} of {} creates ({} outstanding): {reason}",
                    o.znodes,
                    lost.len()
                ))
            }
            None => {
                return Err(format!(
                    "no reply within {:?} after {done} of {} creates",
                    o.reply_timeout, o.znodes
                ))
            }
        }
    }
    let elapsed = started.elapsed();
    c.close();
    Ok(Loaded {
        created,
        existed,
        elapsed,
        last_path: znode_path(&o.root, o.znodes.saturating_sub(1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_addresses() {
        assert_eq!(znode_path("/a/b/", 7), "/a/b/n0000000007");
        assert_eq!(parse_addr("127.0.0.1").map(|a| a.port()), Ok(2181));
        assert_eq!(parse_addr("127.0.0.1:2999").map(|a| a.port()), Ok(2999));
        assert!(parse_addr("no such host:::").is_err());
    }

    #[test]
    fn vm_rss() {
        let s = "Name:\tkeel\nVmPeak:\t  1000 kB\nVmRSS:\t   2048 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss(s), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        let me = rss_bytes(std::process::id()).expect("own rss");
        assert!(me > 0);
        assert!(rss_bytes(u32::MAX).is_err());
    }
}
