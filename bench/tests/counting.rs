//! The generator's counting, checked against a real Keel server: every request is
//! counted exactly once, errors are counted as errors and never as successes, and the
//! percentiles are the histogram's.
//!
//! Each test starts `keel` (KEEL_BIN, else target/release/keel, else target/debug/keel)
//! on a free loopback port with a temporary data dir, and knows it is serving from its
//! start-up log line. Without a binary the tests say so and pass without checking.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use keel_bench::client::{Client, Event, Op};
use keel_bench::{run, RunConfig, Workload};
use keel_engine::proto::{event, Code};

const TIMEOUT: Duration = Duration::from_secs(10);

struct Keel {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Keel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// Starts Keel, or prints why the test is skipped and returns `None`.
fn keel(test: &str) -> Option<Keel> {
    let Some(bin) = keel_bin() else {
        eprintln!("SKIPPED {test}: no keel binary (build it with `cargo build --release -p keel-net --bin keel` or set KEEL_BIN)");
        return None;
    };
    let mut last = String::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(&cfg, format!("tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n", dir.path().join("data").display()))
            .expect("write zoo.cfg");
        let mut child = Command::new(&bin)
            .args(["server", "--config"])
            .arg(&cfg)
            .env("KEEL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Forward the log lines; keep draining so the server never blocks on the pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut log = String::new();
        while let Ok(line) = rx.recv_timeout(TIMEOUT) {
            log.push_str(&line);
            log.push('\n');
            if line.contains("serving ZooKeeper") {
                return Some(Keel {
                    child,
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    _dir: dir,
                });
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        last = log;
        if !last.contains("in use") {
            break;
        }
    }
    panic!("keel did not start:\n{last}");
}

fn cfg(k: &Keel, workload: Workload, root: &str) -> RunConfig {
    RunConfig {
        connect: vec![k.addr],
        sessions: 4,
        inflight: 16,
        duration: Duration::from_secs(15),
        warmup: Duration::ZERO,
        value_size: 64,
        keys: 100,
        workload,
        root: root.into(),
        drain_timeout: Duration::from_secs(5),
        ..RunConfig::default()
    }
}

fn children(k: &Keel, path: &str) -> usize {
    let mut c = Client::connect(k.addr, Duration::from_secs(10), TIMEOUT).expect("connect");
    let r = c
        .call(&Op::GetChildren { path, watch: false }, TIMEOUT)
        .expect("getChildren");
    assert_eq!(r.code(), 0, "getChildren {path}");
    let n = r.children().expect("children").len();
    c.close();
    n
}

#[test]
fn every_create_is_counted_once_and_duplicates_are_errors() {
    let Some(k) = keel("every_create_is_counted_once_and_duplicates_are_errors") else {
        return;
    };
    let first = run(&RunConfig {
        requests: Some(600),
        ..cfg(&k, Workload::Create, "/count")
    })
    .expect("run");
    assert_eq!(first.ok, 600, "{}", first.summary());
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(first.issued, 600);
    assert_eq!(first.hist.len(), 600, "one latency per success");
    assert_eq!(
        children(&k, "/count/create"),
        600,
        "the server holds exactly the nodes counted"
    );

    // The same names again, and 300 more: 600 NodeExists, 300 successes.
    let second = run(&RunConfig {
        requests: Some(900),
        ..cfg(&k, Workload::Create, "/count")
    })
    .expect("run");
    assert_eq!(second.ok, 300, "{}", second.summary());
    assert_eq!(
        second.errors.get(&(Code::NodeExists as i32)),
        Some(&600),
        "{:?}",
        second.errors
    );
    assert_eq!(second.errors.len(), 1);
    assert_eq!(second.hist.len(), 300, "errors never enter the histogram");
    assert!(
        second.json().contains("\"errors\":{\"NodeExists\":600}"),
        "{}",
        second.json()
    );
    assert!(second.json().contains("\"ok\":300"), "{}", second.json());
    assert_eq!(children(&k, "/count/create"), 900);
}

fn json_u64(json: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = json
        .find(&pat)
        .unwrap_or_else(|| panic!("{key} missing in {json}"))
        + pat.len();
    json[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {json}"))
}

#[test]
fn percentiles_are_the_histograms() {
    let Some(k) = keel("percentiles_are_the_histograms") else {
        return;
    };
    let r = run(&RunConfig {
        requests: Some(3000),
        ..cfg(&k, Workload::Mixed { read_pct: 80 }, "/pct")
    })
    .expect("run");
    assert_eq!(r.ok + r.errors.values().sum::<u64>(), 3000);
    assert_eq!(r.ok, 3000, "{}", r.summary());
    assert_eq!(r.hist.len(), 3000);
    let j = r.json();
    for (key, q) in [
        ("p50_us", 0.5),
        ("p90_us", 0.9),
        ("p99_us", 0.99),
        ("p999_us", 0.999),
    ] {
        assert_eq!(json_u64(&j, key), r.hist.value_at_quantile(q), "{key}");
    }
    assert_eq!(json_u64(&j, "max_us"), r.hist.max());
    let v: Vec<u64> = ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"]
        .iter()
        .map(|k| json_u64(&j, k))
        .collect();
    assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");
    assert!(v[0] > 0);
}

#[test]
fn deletes_and_watch_events_are_counted_once() {
    let Some(k) = keel("deletes_and_watch_events_are_counted_once") else {
        return;
    };
    let d = run(&RunConfig {
        keys: 300,
        sessions: 3,
        inflight: 8,
        ..cfg(&k, Workload::Delete, "/del")
    })
    .expect("run");
    assert_eq!(d.ok, 300, "{}", d.summary());
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    assert_eq!(children(&k, "/del/delete"), 0);
    assert!(
        d.notes.iter().any(|n| n.contains("deleted before the end")),
        "{:?}",
        d.notes
    );

    // 3 sessions: 1 writer, 2 watchers; 40 sets fire exactly 80 notifications.
    let w = run(&RunConfig {
        sessions: 3,
        inflight: 4,
        keys: 8,
        requests: Some(40),
        ..cfg(&k, Workload::Watch, "/watch")
    })
    .expect("run");
    assert_eq!(w.ok, 80, "{}", w.summary());
    assert!(w.errors.is_empty(), "{:?}", w.errors);
    assert_eq!(w.hist.len(), 80);
}

#[test]
fn open_loop_and_multi_count_every_request() {
    let Some(k) = keel("open_loop_and_multi_count_every_request") else {
        return;
    };
    let r = run(&RunConfig {
        requests: Some(200),
        rate: Some(2000.0),
        ..cfg(&k, Workload::Get, "/open")
    })
    .expect("run");
    assert_eq!(r.ok, 200, "{}", r.summary());
    let m = run(&RunConfig {
        requests: Some(100),
        ..cfg(&k, Workload::Multi { ops: 5 }, "/open")
    })
    .expect("run");
    assert_eq!(m.ok, 100, "{}", m.summary());
    assert!(m.errors.is_empty());
}

#[test]
fn client_pipelines_matches_replies_and_sees_watches() {
    let Some(k) = keel("client_pipelines_matches_replies_and_sees_watches") else {
        return;
    };
    let mut c = Client::connect(k.addr, Duration::from_secs(10), TIMEOUT).expect("connect");
    assert!(c.session_id() != 0);
    let r = c
        .call(
            &Op::Create {
                path: "/p",
                data: b"v",
                flags: 0,
            },
            TIMEOUT,
        )
        .expect("create");
    assert_eq!(
        (r.code(), r.created_path().expect("path").as_str()),
        (0, "/p")
    );

    // 200 requests in flight at once, each answered once, matched by xid.
    let mut xids = std::collections::HashSet::new();
    for i in 0..200u64 {
        xids.insert(c.queue(
            &Op::GetData {
                path: "/p",
                watch: false,
            },
            i,
            std::time::Instant::now(),
        ));
    }
    c.flush().expect("flush");
    let mut tags = Vec::new();
    while c.outstanding() > 0 {
        match c.poll(Some(TIMEOUT)) {
            Some(Event::Reply(r)) => {
                assert!(xids.remove(&r.xid));
                assert_eq!(r.data().expect("data").0, b"v");
                tags.push(r.tag);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        tags,
        (0..200).collect::<Vec<_>>(),
        "replies come back in order, one each"
    );

    // A multi whose check fails is an error with the failing op's code.
    let ops = [
        Op::SetData {
            path: "/p",
            data: b"w",
            version: -1,
        },
        Op::Check {
            path: "/p",
            version: 99,
        },
    ];
    let r = c.call(&Op::Multi(&ops), TIMEOUT).expect("multi");
    assert_eq!(r.code(), Code::BadVersion as i32);

    // exists with a watch, then a change from another session fires it.
    let r = c
        .call(
            &Op::Exists {
                path: "/p",
                watch: true,
            },
            TIMEOUT,
        )
        .expect("exists");
    assert_eq!(r.code(), 0);
    assert_eq!(
        r.stat().expect("stat").version,
        0,
        "the failed multi changed nothing"
    );
    let mut other = Client::connect(k.addr, Duration::from_secs(10), TIMEOUT).expect("connect");
    assert_eq!(
        other
            .call(
                &Op::SetData {
                    path: "/p",
                    data: b"x",
                    version: 0
                },
                TIMEOUT
            )
            .expect("set")
            .code(),
        0
    );
    match c.poll(Some(TIMEOUT)) {
        Some(Event::Watch(w)) => {
            assert_eq!((w.kind, w.path.as_str()), (event::NODE_DATA_CHANGED, "/p"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        other
            .call(
                &Op::Delete {
                    path: "/p",
                    version: 5
                },
                TIMEOUT
            )
            .expect("delete")
            .code(),
        Code::BadVersion as i32
    );
    assert_eq!(
        other
            .call(
                &Op::Delete {
                    path: "/p",
                    version: -1
                },
                TIMEOUT
            )
            .expect("delete")
            .code(),
        0
    );
    other.close();

    // A ping round trip leaves nothing outstanding and the session alive.
    c.ping_if_idle().expect("ping");
    assert_eq!(
        c.call(
            &Op::Exists {
                path: "/p",
                watch: false
            },
            TIMEOUT
        )
        .expect("exists")
        .code(),
        Code::NoNode as i32
    );
    c.close();
}

#[test]
fn cli_prints_json_and_writes_a_histogram_log() {
    let Some(k) = keel("cli_prints_json_and_writes_a_histogram_log") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("h.hlog");
    let out = Command::new(env!("CARGO_BIN_EXE_keel-bench"))
        .args([
            "run",
            "--connect",
            &k.addr.to_string(),
            "--workload",
            "set",
            "--sessions",
            "2",
            "--inflight",
            "4",
        ])
        .args([
            "--keys",
            "50",
            "--requests",
            "250",
            "--duration",
            "15s",
            "--quiet",
            "--root",
            "/cli",
            "--hist-out",
        ])
        .arg(&log)
        .output()
        .expect("run keel-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout.lines().last().expect("a JSON line");
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    assert_eq!(json_u64(json, "ok"), 250);
    assert_eq!(json_u64(json, "requests"), 250);
    assert!(json.contains("\"workload\":\"set\""));

    let text = std::fs::read(&log).expect("histogram log");
    let mut total = 0;
    let mut de = hdrhistogram::serialization::Deserializer::new();
    for entry in hdrhistogram::serialization::interval_log::IntervalLogIterator::new(&text) {
        if let Ok(hdrhistogram::serialization::interval_log::LogEntry::Interval(h)) = entry {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(h.encoded_histogram())
                .expect("base64");
            let hist: hdrhistogram::Histogram<u64> =
                de.deserialize(&mut &bytes[..]).expect("V2 histogram");
            total += hist.len();
        }
    }
    assert_eq!(total, 250, "the log's intervals hold every success once");
}
