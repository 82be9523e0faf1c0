//! `keel-bench memory` and `keel-bench restart` against the real Keel binary (KEEL_BIN,
//! else target/release/keel, else target/debug/keel), with small N and bounded run time.
//! Without a binary the tests say so and pass without checking.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn keel_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KEEL_BIN") {
        if !p.is_empty() {
            return Some(PathBuf::from(p)).filter(|p| p.exists());
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    ["target/release/keel", "target/debug/keel"]
        .iter()
        .map(|r| root.join(r))
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Writes a zoo.cfg for a standalone Keel on `port` with its data under `dir`.
fn zoo_cfg(dir: &Path, port: u16) -> PathBuf {
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n",
            dir.join("data").display()
        ),
    )
    .expect("write zoo.cfg");
    cfg
}

fn bench(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_keel-bench"))
        .args(args)
        .output()
        .expect("run keel-bench");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json_number(line: &str, key: &str) -> f64 {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let rest = &line[at + key.len() + 3..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {line}"))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn memory_reports_rss_growth_per_znode() {
    let Some(bin) = keel_bin() else {
        eprintln!("SKIPPED memory_reports_rss_growth_per_znode: no keel binary (cargo build --release -p keel-net --bin keel, or KEEL_BIN)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = zoo_cfg(dir.path(), port);
    let child = Command::new(&bin)
        .args(["server", "--config"])
        .arg(&cfg)
        .env("KEEL_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start keel");
    let server = Killed(child);
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "keel did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = server.0.id().to_string();
    let (ok, out, err) = bench(&[
        "memory",
        "--connect",
        &addr,
        "--pid",
        &pid,
        "--znodes",
        "2000",
        "--value-size",
        "64",
        "--settle",
        "100",
    ]);
    assert!(ok, "keel-bench memory failed:\n{out}\n{err}");
    let json = out.lines().last().expect("a JSON line");
    assert!(json.starts_with("{\"kind\":\"memory\""), "{out}");
    assert_eq!(json_number(json, "created"), 2000.0, "{json}");
    assert!(json_number(json, "rss_after") > 0.0, "{json}");
    assert!(out.contains("per znode"), "{out}");
    // The same root again: every create is NodeExists, which the command refuses to divide by.
    let root_line = format!("/keel-bench/fixed-{}", std::process::id());
    let (ok1, _, e1) = bench(&[
        "memory",
        "--connect",
        &addr,
        "--pid",
        &pid,
        "--znodes",
        "10",
        "--root",
        &root_line,
        "--settle",
        "0",
    ]);
    assert!(ok1, "{e1}");
    let (ok2, _, e2) = bench(&[
        "memory",
        "--connect",
        &addr,
        "--pid",
        &pid,
        "--znodes",
        "10",
        "--root",
        &root_line,
        "--settle",
        "0",
    ]);
    assert!(!ok2 && e2.contains("no znode was created"), "{e2}");
}

#[test]
fn restart_times_recovery_after_sigkill() {
    let Some(bin) = keel_bin() else {
        eprintln!("SKIPPED restart_times_recovery_after_sigkill: no keel binary (cargo build --release -p keel-net --bin keel, or KEEL_BIN)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let cfg = zoo_cfg(dir.path(), port);
    let cmd = format!(
        "KEEL_LOG=warn exec '{}' server --config '{}'",
        bin.display(),
        cfg.display()
    );
    let log = dir.path().join("server.log");
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let (ok, out, err) = bench(&[
        "restart",
        "--cmd",
        &cmd,
        "--connect",
        &addr,
        "--znodes",
        "3000",
        "--deadline",
        "30",
        "--log",
        &log.display().to_string(),
    ]);
    assert!(
        ok,
        "keel-bench restart failed:\n{out}\n{err}\nserver log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    let json = out.lines().last().expect("a JSON line");
    assert!(json.starts_with("{\"kind\":\"restart\""), "{out}");
    let read = json_number(json, "spawn_to_read_ms");
    let session = json_number(json, "spawn_to_session_ms");
    assert!(read > 0.0 && session > 0.0 && session <= read, "{json}");
    // The server was killed at the end: the port is free again.
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "server still running after restart"
    );
    // The data survived the SIGKILL: the log holds the 3000 creates.
    assert!(dir.path().join("data").exists());
}
