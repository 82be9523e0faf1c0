//! The command line `keel-bench memory` and `restart` share: a `--flag value` reader and
//! the load flags both take, so that the two commands accept and word them alike.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::load::{parse_addr, LoadOptions};

/// The load flags `memory` and `restart` both take: `--connect HOST:PORT`, `--znodes N`,
/// `--value-size B`, `--inflight K` and `--root PATH`. Whether `--connect` and `--znodes`
/// may be left out, and what that means, is each command's to say.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// The server to load.
    #[arg(long = "connect", value_name = "HOST:PORT", value_parser = parse_addr)]
    pub addr: Option<SocketAddr>,
    /// Znodes to create.
    #[arg(long, value_name = "N")]
    pub znodes: Option<u64>,
    /// Parent of the znodes [default: /keel-bench/KIND-<unix secs>-<pid>, fresh per run].
    #[arg(long, value_name = "PATH")]
    pub root: Option<String>,
    /// Bytes per znode value.
    #[arg(long, value_name = "B", default_value_t = 128)]
    pub value_size: usize,
    /// Creates in flight.
    #[arg(long, value_name = "K", default_value_t = 256)]
    pub inflight: usize,
}

impl LoadArgs {
    /// The load to run, once the command has settled the server and the count; `kind`
    /// names the default root, so that a rerun against the same server loads into a
    /// fresh parent.
    pub fn options(self, kind: &str, addr: SocketAddr, znodes: u64) -> LoadOptions {
        let root = self.root.unwrap_or_else(|| {
            let stamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("/keel-bench/{kind}-{stamp}-{}", std::process::id())
        });
        LoadOptions {
            addr,
            root,
            znodes,
            value_size: self.value_size,
            inflight: self.inflight.max(1),
            reply_timeout: Duration::from_secs(30),
        }
    }
}

/// Parses `args` (the arguments after the subcommand's name) as the clap `Args` `T`,
/// for the commands' `parse_args` and their tests.
pub fn parse_as<T: clap::Args>(name: &str, args: &[String]) -> Result<T, String> {
    #[derive(clap::Parser)]
    struct Wrap<T: clap::Args> {
        #[command(flatten)]
        inner: T,
    }
    <Wrap<T> as clap::Parser>::try_parse_from(
        std::iter::once(name.to_string()).chain(args.iter().cloned()),
    )
    .map(|w| w.inner)
    .map_err(|e| e.to_string())
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
        let a: LoadArgs = parse_as(
            "t",
            &args(&[
                "--connect",
                "127.0.0.1:2999",
                "--inflight",
                "0",
                "--root",
                "/r",
            ]),
        )
        .expect("parse");
        assert_eq!((a.addr.map(|a| a.port()), a.znodes), (Some(2999), None));
        let o = a.options("t", ([127, 0, 0, 1], 1).into(), 5);
        assert_eq!((o.root.as_str(), o.inflight, o.value_size), ("/r", 1, 128));
        let a: LoadArgs = parse_as("t", &[]).expect("parse");
        assert!(a
            .options("t", ([127, 0, 0, 1], 1).into(), 5)
            .root
            .starts_with("/keel-bench/t-"));
        let e = parse_as::<LoadArgs>("t", &args(&["--znodes", "x"])).expect_err("not a number");
        assert!(e.contains("invalid value 'x'"), "{e}");
        let e = parse_as::<LoadArgs>("t", &args(&["--value-size"])).expect_err("no value");
        assert!(e.contains("a value is required"), "{e}");
    }
}
