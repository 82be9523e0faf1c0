//! `keel-bench restart`: restart time. Starts a server with a shell command, loads N
//! znodes, kills the server with SIGKILL (no clean shutdown, so recovery replays its log),
//! starts it again with the same command and measures the time from the second spawn to the
//! first successful read of the last znode loaded.
//!
//! The command runs as `sh -c COMMAND` in its own process group, and the whole group is
//! killed, so wrappers (`cd dir && keel server ...`) are handled and nothing is left behind.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keel_engine::proto::Code;

use crate::client::{Client, Op};
use crate::load::{load_znodes, LoadOptions};
use crate::load_args::{parse_as, LoadArgs};

/// `keel-bench restart` options.
#[derive(Debug, Clone)]
pub struct RestartOptions {
    /// The shell command that starts the server (run with `sh -c`).
    pub cmd: String,
    pub load: LoadOptions,
    /// Longest wait for the server to answer, at the first start and after the restart.
    pub deadline: Duration,
    /// Where the server's stdout and stderr go (`None`: discarded).
    pub log: Option<std::path::PathBuf>,
}

/// What `keel-bench restart` measured.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartResult {
    pub znodes: u64,
    pub value_size: usize,
    pub load_secs: f64,
    /// Spawn to the first accepted session.
    pub connect_secs: f64,
    /// Spawn to the first successful read of the known znode.
    pub read_secs: f64,
    pub known: String,
}

impl RestartResult {
    pub fn summary(&self) -> String {
        format!(
            "restart: {} znodes of {} B loaded in {:.2} s, then SIGKILL\n  spawn -> first session  {:.1} ms\n  spawn -> first read     {:.1} ms ({})\n",
            self.znodes,
            self.value_size,
            self.load_secs,
            self.connect_secs * 1e3,
            self.read_secs * 1e3,
            self.known
        )
    }

    pub fn json(&self) -> String {
        format!(
            "{{\"kind\":\"restart\",\"znodes\":{},\"value_size\":{},\"load_secs\":{:.3},\"spawn_to_session_ms\":{:.1},\"spawn_to_read_ms\":{:.1}}}",
            self.znodes,
            self.value_size,
            self.load_secs,
            self.connect_secs * 1e3,
            self.read_secs * 1e3
        )
    }
}

/// `keel-bench restart --cmd "SHELL COMMAND" --connect HOST:PORT [OPTIONS]`: start the
/// server (sh -c, own process group), load N znodes, SIGKILL it, start it again and time
/// spawn -> first successful read of the last znode loaded.
#[derive(Debug, Clone, clap::Args)]
pub struct RestartArgs {
    /// The shell command that starts the server.
    #[arg(long, value_name = "SHELL COMMAND")]
    pub cmd: String,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Longest wait for the server to answer, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub deadline: u64,
    /// Where the server's output goes (default: discarded).
    #[arg(long, value_name = "FILE")]
    pub log: Option<std::path::PathBuf>,
}

impl RestartArgs {
    pub fn into_options(self) -> Result<RestartOptions, String> {
        let addr = self
            .load
            .addr
            .ok_or("restart needs --connect HOST:PORT (the server it starts)")?;
        // At least one znode, so that there is a last one to read back after the restart.
        let znodes = self.load.znodes.map_or(10_000, |n| n.max(1));
        Ok(RestartOptions {
            cmd: self.cmd,
            load: self.load.options("restart", addr, znodes),
            deadline: Duration::from_secs(self.deadline),
            log: self.log,
        })
    }
}

/// Reads `restart`'s arguments (after the subcommand's name).
pub fn parse_args(args: &[String]) -> Result<RestartOptions, String> {
    parse_as::<RestartArgs>("restart", args)?.into_options()
}

/// A server started by `sh -c`, in its own process group; dropping it kills the group.
struct Server {
    child: Child,
}

impl Server {
    fn spawn(cmd: &str, log: Option<&std::path::Path>) -> Result<Server, String> {
        let (out, err) = match log {
            Some(p) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                let f2 = f.try_clone().map_err(|e| format!("{}: {e}", p.display()))?;
                (Stdio::from(f), Stdio::from(f2))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run sh -c {cmd:?}: {e}"))?;
        Ok(Server { child })
    }

    /// SIGKILL to the whole group; waits for the shell and until no member is left
    /// (bounded: 10 s).
    fn kill(&mut self) -> Result<(), String> {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a negative pid signals the process group we created.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        self.child
            .wait()
            .map_err(|e| format!("waiting for the killed server: {e}"))?;
        let until = Instant::now() + Duration::from_secs(10);
        // Members reparented away from us are reaped by init; wait until they are gone.
        while unsafe { libc::kill(-pgid, 0) } == 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.kill();
        }
    }
}

/// Polls until a session opens and a getData of `path` succeeds, or `deadline` passes.
/// Returns (time to the first session, time to the first successful read), both from
/// `t0`.
fn wait_readable(
    srv: &mut Server,
    addr: SocketAddr,
    path: &str,
    t0: Instant,
    deadline: Duration,
) -> Result<(Duration, Duration), String> {
    let mut last = String::from("nothing tried yet");
    let mut session_at = None;
    while t0.elapsed() < deadline {
        if let Some(status) = srv.exited() {
            return Err(format!(
                "the server exited ({status}) before it answered: {last}"
            ));
        }
        match Client::connect(addr, Duration::from_secs(30), Duration::from_millis(500)) {
            Ok(mut c) => {
                let connected = t0.elapsed();
                session_at.get_or_insert(connected);
                match c.call(&Op::GetData { path, watch: false }, Duration::from_secs(2)) {
                    Ok(r) if r.code() == Code::Ok.as_i32() => {
                        let read = t0.elapsed();
                        c.close();
                        return Ok((session_at.unwrap_or(connected), read));
                    }
                    Ok(r) => last = format!("getData {path}: error code {}", r.code()),
                    Err(e) => last = format!("getData {path}: {e}"),
                }
                c.close();
            }
            Err(e) => last = format!("connect: {e}"),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(format!("no successful read within {deadline:?}: {last}"))
}

/// Start, load, SIGKILL, start again, time the first read. The server is killed at the
/// end as well.
pub fn measure(o: &RestartOptions) -> Result<RestartResult, String> {
    let addr = o.load.addr;
    let mut srv = Server::spawn(&o.cmd, o.log.as_deref())?;
    let t = Instant::now();
    // The first start: wait for any session (the znode does not exist yet).
    loop {
        if let Some(status) = srv.exited() {
            return Err(format!(
                "the server exited at start-up ({status}): {:?}",
                o.cmd
            ));
        }
        if let Ok(c) = Client::connect(addr, Duration::from_secs(30), Duration::from_millis(500)) {
            c.close();
            break;
        }
        if t.elapsed() > o.deadline {
            return Err(format!(
                "the server did not accept a session on {addr} within {:?}",
                o.deadline
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let loaded = load_znodes(&o.load)?;
    srv.kill()?;
    drop(srv);

    let t0 = Instant::now();
    let mut srv = Server::spawn(&o.cmd, o.log.as_deref())?;
    let (session, read) = wait_readable(&mut srv, addr, &loaded.last_path, t0, o.deadline)?;
    srv.kill()?;
    Ok(RestartResult {
        znodes: o.load.znodes,
        value_size: o.load.value_size,
        load_secs: loaded.elapsed.as_secs_f64(),
        connect_secs: session.as_secs_f64(),
        read_secs: read.as_secs_f64(),
        known: loaded.last_path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load_args::args as s;

    #[test]
    fn args_and_output() {
        let o = parse_args(&s(&[
            "--cmd",
            "keel server",
            "--connect",
            "127.0.0.1:2998",
            "--znodes",
            "5",
        ]))
        .expect("parse");
        assert_eq!(
            (o.cmd.as_str(), o.load.znodes, o.load.addr.port()),
            ("keel server", 5, 2998)
        );
        assert!(parse_args(&s(&["--connect", "127.0.0.1"]))
            .unwrap_err()
            .contains("--cmd"));
        assert!(parse_args(&s(&["--cmd", "x"]))
            .unwrap_err()
            .contains("--connect"));
        let r = RestartResult {
            znodes: 5,
            value_size: 128,
            load_secs: 0.1,
            connect_secs: 0.0123,
            read_secs: 0.0456,
            known: "/r/n0000000004".into(),
        };
        assert!(
            r.json().contains("\"spawn_to_read_ms\":45.6"),
            "{}",
            r.json()
        );
        assert!(r.summary().contains("45.6 ms"));
    }

    #[test]
    fn a_server_that_exits_is_reported() {
        let o = parse_args(&s(&[
            "--cmd",
            "exit 3",
            "--connect",
            "127.0.0.1:1",
            "--deadline",
            "5",
        ]))
        .expect("parse");
        let e = measure(&o).expect_err("cannot succeed");
        assert!(e.contains("exited"), "{e}");
    }
}
