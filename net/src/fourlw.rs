//! Four-letter words (`ruok`, `srvr`, `stat`, `mntr`, `conf`, `cons`, `envi`, `wchs`,
//! `dump`, `isro`, ...): the text ZooKeeper answers on the client port, in its format,
//! honouring `4lw.commands.whitelist`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use keel_engine::Engine;

/// The ZooKeeper release whose protocol and behaviour Keel matches. Clients parse
/// `zookeeper.version=3.X.Y` to pick features, so it comes first; Keel's own follows.
pub const ZK_COMPAT_VERSION: &str = "3.8.0";

pub fn version_string() -> String {
    format!("{ZK_COMPAT_VERSION}-keel-{}", env!("CARGO_PKG_VERSION"))
}

/// Facts about the process that the engine does not know.
pub struct ServerInfo {
    pub allowed: BTreeSet<String>,
    pub conf: String,
    pub env: Vec<(String, String)>,
    pub driver: String,
    pub wal_backend: String,
    pub max_client_cnxns: usize,
}

fn state() -> &'static str {
    "standalone"
}

pub fn answer(cmd: &str, engine: &mut Engine, info: &ServerInfo) -> String {
    if !info.allowed.contains("*") && !info.allowed.contains(cmd) {
        return format!("{cmd} is not executed because it is not in the whitelist.\n");
    }
    match cmd {
        "ruok" => "imok".to_owned(),
        "isro" => "rw".to_owned(),
        "srvr" => srvr(engine, false),
        "stat" => srvr(engine, true),
        "mntr" => mntr(engine, info),
        "conf" => info.conf.clone(),
        "envi" => {
            let mut s = String::from("Environment:\n");
            for (k, v) in &info.env {
                let _ = writeln!(s, "{k}={v}");
            }
            s
        }
        "cons" => cons(engine),
        "wchs" => {
            let w = engine.watches();
            let conns: BTreeSet<_> = w.data.conns().chain(w.child.conns()).map(|(c, _)| *c).collect();
            let paths: BTreeSet<&String> = w.data.by_path().chain(w.child.by_path()).map(|(p, _)| p).collect();
            format!("{} connections watching {} paths\nTotal watches:{}\n", conns.len(), paths.len(), w.count())
        }
        "wchc" | "wchp" => wch(engine, cmd == "wchp"),
        "dump" => dump(engine),
        "crst" => "Connection stats reset.\n".to_owned(),
        "srst" => {
            engine.counters = Default::default();
            "Server stats reset.\n".to_owned()
        }
        "dirs" => "datadir_size: 0\nlogdir_size: 0\n".to_owned(),
        "gtmk" => "0\n".to_owned(),
        "stmk" => "0\n".to_owned(),
        "hash" => "Digest computation is disabled.\n".to_owned(),
        _ => format!("{cmd} is not executed because it is not in the whitelist.\n"),
    }
}

fn srvr(e: &Engine, with_clients: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Zookeeper version: {}, built on 01/01/1970 00:00 GMT", version_string());
    if with_clients {
        s.push_str("Clients:\n");
        s.push_str(&cons(e));
    }
    let c = &e.counters;
    let _ = writeln!(s, "Latency min/avg/max: 0/0.0/0");
    let _ = writeln!(s, "Received: {}", c.packets_received);
    let _ = writeln!(s, "Sent: {}", c.packets_sent);
    let _ = writeln!(s, "Connections: {}", e.connection_count());
    let _ = writeln!(s, "Outstanding: {}", e.outstanding());
    let _ = writeln!(s, "Zxid: 0x{:x}", e.last_zxid());
    let _ = writeln!(s, "Mode: {}", state());
    let _ = writeln!(s, "Node count: {}", e.tree().len());
    s
}

fn cons(e: &Engine) -> String {
    let mut s = String::new();
    for sess in e.sessions().iter().filter(|s| s.conn.is_some()) {
        let _ = writeln!(s, " /client[{}](queued=0,sid=0x{:x},to={})", sess.conn.unwrap_or(0), sess.id, sess.timeout_ms);
    }
    s.push('\n');
    s
}

fn wch(e: &Engine, by_path: bool) -> String {
    let w = e.watches();
    let mut s = String::new();
    if by_path {
        let mut paths: Vec<_> = w.data.by_path().chain(w.child.by_path()).collect();
        paths.sort_by(|a, b| a.0.cmp(b.0));
        for (p, conns) in paths {
            let _ = writeln!(s, "{p}");
            for c in conns.keys() {
                let sid = e.connection_session(*c).unwrap_or(0);
                let _ = writeln!(s, "\t0x{sid:x}");
            }
        }
    } else {
        let mut conns: Vec<_> = w.data.conns().chain(w.child.conns()).collect();
        conns.sort_by_key(|(c, _)| **c);
        for (c, paths) in conns {
            let sid = e.connection_session(*c).unwrap_or(0);
            let _ = writeln!(s, "0x{sid:x}");
            let mut ps: Vec<_> = paths.iter().collect();
            ps.sort();
            for p in ps {
                let _ = writeln!(s, "\t{p}");
            }
        }
    }
    s
}

fn dump(e: &Engine) -> String {
    let mut s = String::from("SessionTracker dump:\n");
    let mut sessions: Vec<_> = e.sessions().iter().collect();
    sessions.sort_by_key(|x| x.id);
    let _ = writeln!(s, "Global Sessions({}):", sessions.len());
    for x in &sessions {
        let _ = writeln!(s, "0x{:x}\t{}ms", x.id, x.timeout_ms);
    }
    s.push_str("ephemeral nodes dump:\n");
    let mut eph: Vec<_> = e.tree().ephemeral_sessions().collect();
    eph.sort_by_key(|(id, _)| **id);
    let _ = writeln!(s, "Sessions with Ephemerals ({}):", eph.len());
    for (id, paths) in eph {
        let _ = writeln!(s, "0x{id:x}:");
        for p in paths {
            let _ = writeln!(s, "\t{p}");
        }
    }
    s.push_str("Connections dump:\n");
    let _ = writeln!(s, "Connections Sets ({})/({})", e.connection_count(), e.connection_count());
    s
}

fn mntr(e: &Engine, info: &ServerInfo) -> String {
    let mut s = String::new();
    let c = &e.counters;
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(s, "{k}\t{v}");
    };
    kv("zk_version", format!("{}, built on 01/01/1970 00:00 GMT", version_string()));
    kv("zk_server_state", state().into());
    kv("zk_avg_latency", "0.0".into());
    kv("zk_max_latency", "0".into());
    kv("zk_min_latency", "0".into());
    kv("zk_packets_received", c.packets_received.to_string());
    kv("zk_packets_sent", c.packets_sent.to_string());
    kv("zk_num_alive_connections", e.connection_count().to_string());
    kv("zk_outstanding_requests", e.outstanding().to_string());
    kv("zk_znode_count", e.tree().len().to_string());
    kv("zk_watch_count", e.watches().count().to_string());
    kv("zk_ephemerals_count", e.tree().ephemeral_count().to_string());
    kv("zk_approximate_data_size", e.tree().data_size().to_string());
    kv("zk_open_file_descriptor_count", open_fds().to_string());
    kv("zk_max_file_descriptor_count", max_fds().to_string());
    kv("zk_global_sessions", e.sessions().len().to_string());
    kv("zk_local_sessions", "0".into());
    kv("zk_last_zxid", format!("0x{:x}", e.last_zxid()));
    kv("zk_durable_zxid", format!("0x{:x}", e.durable_zxid()));
    kv("zk_sessions_expired", c.sessions_expired.to_string());
    kv("keel_runtime_driver", info.driver.clone());
    kv("keel_wal_backend", info.wal_backend.clone());
    s
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn max_fds() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes into the struct we pass, which lives on our stack.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc == 0 {
        lim.rlim_cur
    } else {
        0
    }
}
