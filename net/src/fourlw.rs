//! Four-letter words (`ruok`, `srvr`, `stat`, `mntr`, `conf`, `cons`, `envi`, `wchs`,
//! `wchc`, `wchp`, `dump`, `dirs`, `isro`, ...): the text ZooKeeper 3.8 answers on the
//! client port, in its exact shapes (samples in tests/fixtures/zk-4lw), honouring
//! `4lw.commands.whitelist`. As in ZooKeeper, the connection asking counts as one of
//! the server's connections.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use keel_engine::watch::ConnId;
use keel_engine::Engine;

/// The ZooKeeper release whose protocol and behaviour Keel matches. Clients parse
/// `zookeeper.version=3.X.Y` to pick features, so it comes first; Keel's own follows.
pub const ZK_COMPAT_VERSION: &str = "3.8.0";

pub fn version_string() -> String {
    format!(
        "{ZK_COMPAT_VERSION}-keel-{}, built on {}",
        env!("CARGO_PKG_VERSION"),
        BUILT_ON
    )
}

/// ZooKeeper prints its build date here; Keel prints a fixed one (builds are
/// reproducible, and clients only parse the version before the comma).
const BUILT_ON: &str = "1970-01-01 00:00 UTC";

/// ZooKeeper's default trace mask (`gtmk`).
const TRACE_MASK: u64 = 306;

/// Facts about the process that the engine does not know.
pub struct ServerInfo {
    pub allowed: BTreeSet<String>,
    /// The effective configuration (for `conf`), when the server was started from one.
    pub config: Option<crate::config::Config>,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub driver: String,
    pub wal_backend: String,
    pub started: std::time::Instant,
}

pub fn answer(cmd: &str, engine: &mut Engine, info: &ServerInfo, me: SocketAddr) -> String {
    if !info.allowed.contains("*") && !info.allowed.contains(cmd) {
        return format!("{cmd} is not executed because it is not in the whitelist.\n");
    }
    match cmd {
        "ruok" => "imok".to_owned(),
        "isro" => "rw".to_owned(),
        "srvr" => srvr(engine, None),
        "stat" => srvr(engine, Some(me)),
        "mntr" => mntr(engine, info),
        "conf" => conf(info),
        "envi" => {
            let mut s = String::from("Environment:\n");
            for (k, v) in &info.env {
                let _ = writeln!(s, "{k}={v}");
            }
            s
        }
        "cons" => {
            let mut s = cons(engine, me, true);
            s.push('\n');
            s
        }
        "wchs" => wchs(engine),
        "wchc" => wchc(engine),
        "wchp" => wchp(engine),
        "dump" => dump(engine),
        "crst" => {
            engine.reset_connection_stats();
            "Connection stats reset.\n".to_owned()
        }
        "srst" => {
            engine.counters = Default::default();
            "Server stats reset.\n".to_owned()
        }
        "dirs" => format!(
            "datadir_size: {}\nlogdir_size: {}\n",
            dir_size(&info.data_dir),
            dir_size(&info.log_dir)
        ),
        "gtmk" | "stmk" => TRACE_MASK.to_string(),
        // ZooKeeper answers nothing when the tree digest is disabled.
        "hash" => String::new(),
        _ => String::new(),
    }
}

/// Java's `Double.toString` for the values we print: always a fractional part.
fn java_double(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// ZooKeeper's node map holds the root twice ("" and "/"), so its counts are one more.
fn zk_node_count(e: &Engine) -> usize {
    e.tree().len() + 1
}

fn srvr(e: &Engine, clients_of: Option<SocketAddr>) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Zookeeper version: {}", version_string());
    if let Some(me) = clients_of {
        s.push_str("Clients:\n");
        s.push_str(&cons(e, me, false));
        s.push('\n');
    }
    let c = &e.counters;
    let _ = writeln!(
        s,
        "Latency min/avg/max: {}/{}/{}",
        c.min_latency_ms,
        java_double(c.avg_latency_ms()),
        c.max_latency_ms
    );
    let _ = writeln!(s, "Received: {}", c.packets_received);
    let _ = writeln!(s, "Sent: {}", c.packets_sent);
    let _ = writeln!(s, "Connections: {}", e.connection_count() + 1);
    let _ = writeln!(s, "Outstanding: {}", e.outstanding());
    let _ = writeln!(s, "Zxid: 0x{:x}", e.last_zxid());
    let _ = writeln!(s, "Mode: standalone");
    let _ = writeln!(s, "Node count: {}", zk_node_count(e));
    s
}

fn peer(a: &SocketAddr) -> String {
    format!("/{}:{}", a.ip(), a.port())
}

/// One line per connection, the asking one first (it has no session: `[0]`).
fn cons(e: &Engine, me: SocketAddr, full: bool) -> String {
    let mut s = format!(" {}[0](queued=0,recved=1,sent=0)\n", peer(&me));
    let mut conns: Vec<_> = e.connections().collect();
    conns.sort_by_key(|(id, _)| *id);
    for (_, c) in conns {
        let _ = write!(
            s,
            " {}[1](queued={},recved={},sent={}",
            peer(&c.peer),
            c.queued,
            c.received,
            c.sent
        );
        if full {
            let avg = if c.latency_count == 0 {
                0
            } else {
                c.total_latency_ms / c.latency_count as i64
            };
            let _ = write!(
                s,
                ",sid=0x{:x},lop={},est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
                c.session,
                c.last_op,
                c.established_ms,
                c.timeout_ms,
                c.last_cxid,
                c.last_zxid,
                c.last_response_ms,
                c.last_latency_ms,
                c.min_latency_ms,
                avg,
                c.max_latency_ms
            );
        }
        s.push_str(")\n");
    }
    s
}

/// Data watches (getData / exists) by session: ZooKeeper's `wchs`, `wchc` and `wchp`
/// cover the data table only.
fn data_watches(e: &Engine) -> BTreeMap<String, BTreeSet<i64>> {
    let mut by_path: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (p, conns) in e.watches().data.by_path() {
        for c in conns.keys() {
            by_path
                .entry(p.clone())
                .or_default()
                .insert(session_of(e, *c));
        }
    }
    by_path
}

fn session_of(e: &Engine, c: ConnId) -> i64 {
    e.connection_session(c).unwrap_or(0)
}

fn wchs(e: &Engine) -> String {
    let w = &e.watches().data;
    let conns = w.conns().count();
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        conns,
        w.path_count(),
        w.watch_count()
    )
}

fn wchc(e: &Engine) -> String {
    let mut by_session: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for (p, sessions) in data_watches(e) {
        for sid in sessions {
            by_session.entry(sid).or_default().insert(p.clone());
        }
    }
    let mut s = String::new();
    for (sid, paths) in by_session {
        let _ = writeln!(s, "0x{sid:x}");
        for p in paths {
            let _ = writeln!(s, "\t{p}");
        }
    }
    s.push('\n');
    s
}

fn wchp(e: &Engine) -> String {
    let mut s = String::new();
    for (p, sessions) in data_watches(e) {
        let _ = writeln!(s, "{p}");
        for sid in sessions {
            let _ = writeln!(s, "\t0x{sid:x}");
        }
    }
    s.push('\n');
    s
}

fn dump(e: &Engine) -> String {
    let mut s = String::from("SessionTracker dump:\n");
    let mut by_deadline: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for x in e.sessions().iter() {
        by_deadline.entry(x.expires_at).or_default().push(x.id);
    }
    let _ = writeln!(
        s,
        "Session Sets ({})/({}):",
        by_deadline.len(),
        e.sessions().len()
    );
    for (deadline, mut ids) in by_deadline {
        ids.sort_unstable();
        let _ = writeln!(s, "{} expire at {}:", ids.len(), java_date(deadline));
        for id in ids {
            let _ = writeln!(s, "\t0x{id:x}");
        }
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
    let mut conns: Vec<_> = e.connections().collect();
    conns.sort_by_key(|(id, _)| *id);
    let _ = writeln!(s, "Connections Sets ({})/({}):", conns.len(), conns.len());
    for (_, c) in conns {
        let deadline = e
            .sessions()
            .get(c.session)
            .map(|x| x.expires_at)
            .unwrap_or(0);
        let _ = writeln!(s, "1 expire at {}:", java_date(deadline));
        let _ = writeln!(s, "\tip: {} sessionId: 0x{:x}", peer(&c.peer), c.session);
    }
    s
}

fn mntr(e: &Engine, info: &ServerInfo) -> String {
    let mut s = String::new();
    let c = &e.counters;
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(s, "{k}\t{v}");
    };
    kv("zk_version", version_string());
    kv("zk_server_state", "standalone".into());
    kv(
        "zk_ephemerals_count",
        e.tree().ephemeral_count().to_string(),
    );
    kv(
        "zk_num_alive_connections",
        (e.connection_count() + 1).to_string(),
    );
    kv("zk_avg_latency", java_double(c.avg_latency_ms()));
    kv("zk_outstanding_requests", e.outstanding().to_string());
    kv("zk_znode_count", zk_node_count(e).to_string());
    kv("zk_global_sessions", e.sessions().len().to_string());
    kv("zk_local_sessions", "0".into());
    kv("zk_packets_sent", c.packets_sent.to_string());
    kv("zk_packets_received", c.packets_received.to_string());
    kv("zk_watch_count", e.watches().count().to_string());
    kv("zk_min_latency", c.min_latency_ms.to_string());
    kv("zk_max_latency", c.max_latency_ms.to_string());
    kv("zk_max_file_descriptor_count", max_fds().to_string());
    kv("zk_open_file_descriptor_count", open_fds().to_string());
    kv("zk_approximate_data_size", e.tree().data_size().to_string());
    kv("zk_uptime", info.started.elapsed().as_millis().to_string());
    kv("zk_last_zxid", format!("0x{:x}", e.last_zxid()));
    kv("zk_durable_zxid", format!("0x{:x}", e.durable_zxid()));
    kv("zk_sessions_expired", c.sessions_expired.to_string());
    kv("zk_keel_runtime_driver", info.driver.clone());
    kv("zk_keel_wal_backend", info.wal_backend.clone());
    s
}

fn conf(info: &ServerInfo) -> String {
    match &info.config {
        Some(cfg) => {
            cfg.describe_conf_with_sizes(dir_size(&info.data_dir), dir_size(&info.log_dir))
        }
        None => format!(
            "dataDir={}\ndataLogDir={}\n",
            info.data_dir.display(),
            info.log_dir.display()
        ),
    }
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in rd.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// `java.util.Date.toString()` in UTC: `Sun Nov 22 19:19:46 UTC 2026`.
fn java_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        year
    )
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn max_fds() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass, which lives on our stack
    // for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc == 0 {
        lim.rlim_cur
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_dates() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // 2026-11-22T19:19:46Z
        assert_eq!(java_date(1_795_375_186_000), "Sun Nov 22 19:19:46 UTC 2026");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1.8125), "1.8125");
    }
}
