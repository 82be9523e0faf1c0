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

/// What ZooKeeper's 4lw say when the server is not serving (an ensemble member looking
/// for, or synchronising with, a leader).
pub const ZK_NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// The server's place in an ensemble, for `srvr`, `stat` and `mntr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mode {
    /// `standalone`, `leader`, `follower`, `observer` (or `looking`).
    pub name: &'static str,
    /// Whether clients are served (ZooKeeper's `isZKServerRunning`).
    pub serving: bool,
    /// Leader only: sizes of proposals in bytes, last/min/max (`-1` before the first).
    pub proposal_sizes: Option<(i64, i64, i64)>,
    /// Ensemble: (epoch, last logged zxid, committed zxid, durable zxid) for `mntr`.
    pub replica: Option<(i64, i64, i64, i64)>,
    /// Leader only: (learners, synced followers, synced observers, pending syncs).
    pub learners: Option<(usize, usize, usize, usize)>,
}

impl Mode {
    pub const STANDALONE: Mode = Mode {
        name: "standalone",
        serving: true,
        proposal_sizes: None,
        replica: None,
        learners: None,
    };

    /// ZooKeeper's `zk_peer_state` (`QuorumPeer.getDetailedPeerState`).
    fn peer_state(&self) -> &'static str {
        match self.name {
            "leader" => "leading - broadcast",
            "follower" => "following - broadcast",
            "observer" => "observing - broadcast",
            _ => "looking",
        }
    }
}

/// A standalone server's answer.
pub fn answer(cmd: &str, engine: &mut Engine, info: &ServerInfo, me: SocketAddr) -> String {
    answer_in(cmd, engine, info, me, &Mode::STANDALONE)
}

/// The answer of a server in `mode`. As in ZooKeeper, the words that read the server's
/// state answer [`ZK_NOT_SERVING`] while it is not serving; `ruok` still says `imok`.
pub fn answer_in(
    cmd: &str,
    engine: &mut Engine,
    info: &ServerInfo,
    me: SocketAddr,
    mode: &Mode,
) -> String {
    if !info.allowed.contains("*") && !info.allowed.contains(cmd) {
        return format!("{cmd} is not executed because it is not in the whitelist.\n");
    }
    // A member in read-only mode runs ZooKeeper's ReadOnlyZooKeeperServer: the words
    // answer, with mode `read-only`, and `stat` says so first.
    let read_only = Mode {
        name: "read-only",
        serving: true,
        proposal_sizes: None,
        replica: mode.replica,
        learners: None,
    };
    let (mode, ro_prefix) = if !mode.serving && engine.is_read_only() {
        (
            &read_only,
            "READ-ONLY mode; serving only read-only clients\n",
        )
    } else {
        (mode, "")
    };
    if !mode.serving {
        match cmd {
            "ruok" => return "imok".to_owned(),
            // IsroCommand prints "null" when there is no running server.
            "isro" => return "null".to_owned(),
            "envi" | "gtmk" | "stmk" => {}
            _ => return format!("{ZK_NOT_SERVING}\n"),
        }
    }
    match cmd {
        "ruok" => "imok".to_owned(),
        "isro" if !ro_prefix.is_empty() => "ro".to_owned(),
        "isro" => "rw".to_owned(),
        "srvr" => srvr(engine, None, mode),
        "stat" => format!("{ro_prefix}{}", srvr(engine, Some(me), mode)),
        "mntr" => mntr(engine, info, mode),
        "conf" => conf(info, engine),
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

fn srvr(e: &Engine, clients_of: Option<SocketAddr>, mode: &Mode) -> String {
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
        c.latency.min_ms,
        java_double(c.latency.avg_ms()),
        c.latency.max_ms
    );
    let _ = writeln!(s, "Received: {}", c.packets_received);
    let _ = writeln!(s, "Sent: {}", c.packets_sent);
    let _ = writeln!(s, "Connections: {}", e.connection_count() + 1);
    let _ = writeln!(s, "Outstanding: {}", e.outstanding());
    let _ = writeln!(s, "Zxid: 0x{:x}", e.last_zxid());
    let _ = writeln!(s, "Mode: {}", mode.name);
    let _ = writeln!(s, "Node count: {}", zk_node_count(e));
    if let Some((last, min, max)) = mode.proposal_sizes {
        let _ = writeln!(s, "Proposal sizes last/min/max: {last}/{min}/{max}");
    }
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
                c.latency.min_ms,
                c.latency.avg_whole_ms(),
                c.latency.max_ms
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

fn mntr(e: &Engine, info: &ServerInfo, mode: &Mode) -> String {
    let mut s = String::new();
    let c = &e.counters;
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(s, "{k}\t{v}");
    };
    kv("zk_version", version_string());
    kv("zk_server_state", mode.name.into());
    kv(
        "zk_ephemerals_count",
        e.tree().ephemeral_count().to_string(),
    );
    kv(
        "zk_num_alive_connections",
        (e.connection_count() + 1).to_string(),
    );
    kv("zk_avg_latency", java_double(c.latency.avg_ms()));
    kv("zk_outstanding_requests", e.outstanding().to_string());
    kv("zk_znode_count", zk_node_count(e).to_string());
    kv("zk_global_sessions", e.sessions().len().to_string());
    kv("zk_local_sessions", "0".into());
    kv("zk_packets_sent", c.packets_sent.to_string());
    kv("zk_packets_received", c.packets_received.to_string());
    kv("zk_watch_count", e.watches().count().to_string());
    kv("zk_min_latency", c.latency.min_ms.to_string());
    kv("zk_max_latency", c.latency.max_ms.to_string());
    kv("zk_max_file_descriptor_count", max_fds().to_string());
    kv("zk_open_file_descriptor_count", open_fds().to_string());
    kv("zk_approximate_data_size", e.tree().data_size().to_string());
    kv("zk_uptime", info.started.elapsed().as_millis().to_string());
    kv("zk_last_zxid", format!("0x{:x}", e.last_zxid()));
    let durable = mode
        .replica
        .map(|r| r.3)
        .unwrap_or_else(|| e.durable_zxid());
    kv("zk_durable_zxid", format!("0x{durable:x}"));
    kv("zk_sessions_expired", c.sessions_expired.to_string());
    if let Some((epoch, logged, committed, _)) = mode.replica {
        kv("zk_peer_state", mode.peer_state().into());
        kv("zk_keel_epoch", epoch.to_string());
        kv("zk_keel_logged_zxid", format!("0x{logged:x}"));
        kv("zk_keel_committed_zxid", format!("0x{committed:x}"));
    }
    if let Some((learners, followers, observers, syncs)) = mode.learners {
        kv("zk_learners", learners.to_string());
        kv("zk_synced_followers", followers.to_string());
        kv("zk_synced_non_voting_followers", "0".into());
        kv("zk_synced_observers", observers.to_string());
        kv("zk_pending_syncs", syncs.to_string());
    }
    if let Some((last, min, max)) = mode.proposal_sizes {
        kv("zk_last_proposal_size", last.to_string());
        kv("zk_min_proposal_size", min.to_string());
        kv("zk_max_proposal_size", max.to_string());
    }
    kv("zk_keel_runtime_driver", info.driver.clone());
    kv("zk_keel_wal_backend", info.wal_backend.clone());
    s
}

fn conf(info: &ServerInfo, engine: &Engine) -> String {
    match &info.config {
        Some(cfg) => {
            let mut s =
                cfg.describe_conf_with_sizes(dir_size(&info.data_dir), dir_size(&info.log_dir));
            // The membership is the one in force, which a reconfiguration may have
            // changed since zoo.cfg was read: /zookeeper/config has it.
            const MARK: &str = "membership: \n";
            let current = Some(engine.tree().config_text()).filter(|t| t.contains("server."));
            if let (Some(at), Some(current)) = (s.find(MARK), current) {
                s.truncate(at + MARK.len());
                s.push_str(&current);
            }
            s
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

    fn info() -> ServerInfo {
        ServerInfo {
            allowed: BTreeSet::from(["*".to_string()]),
            config: None,
            data_dir: PathBuf::from("/nonexistent"),
            log_dir: PathBuf::from("/nonexistent"),
            env: vec![],
            driver: "Poll".into(),
            wal_backend: "pwrite".into(),
            started: std::time::Instant::now(),
        }
    }

    #[test]
    fn ensemble_modes() {
        let mut e = Engine::new(Default::default(), 0);
        let me: SocketAddr = "127.0.0.1:5".parse().unwrap();
        let looking = Mode {
            name: "looking",
            serving: false,
            proposal_sizes: None,
            replica: Some((0, 0, 0, 0)),
            learners: None,
        };
        for w in [
            "srvr", "stat", "mntr", "cons", "conf", "dump", "wchs", "dirs", "crst",
        ] {
            assert_eq!(
                answer_in(w, &mut e, &info(), me, &looking),
                "This ZooKeeper instance is not currently serving requests\n",
                "{w}"
            );
        }
        assert_eq!(answer_in("ruok", &mut e, &info(), me, &looking), "imok");
        assert_eq!(answer_in("isro", &mut e, &info(), me, &looking), "null");
        assert!(answer_in("envi", &mut e, &info(), me, &looking).starts_with("Environment:"));

        let leader = Mode {
            name: "leader",
            serving: true,
            proposal_sizes: Some((36, 32, 288)),
            replica: Some((2, 0x2_0000_0003, 0x2_0000_0002, 0x2_0000_0003)),
            learners: Some((3, 2, 1, 0)),
        };
        let s = answer_in("srvr", &mut e, &info(), me, &leader);
        assert!(
            s.contains("\nMode: leader\nNode count: ")
                && s.ends_with("Proposal sizes last/min/max: 36/32/288\n"),
            "{s}"
        );
        let m = answer_in("mntr", &mut e, &info(), me, &leader);
        assert!(m.contains("zk_server_state\tleader\n"), "{m}");
        assert!(m.contains("zk_peer_state\tleading - broadcast\n"), "{m}");
        assert!(m.contains("zk_max_proposal_size\t288\n"), "{m}");
        assert!(
            m.contains("zk_learners\t3\nzk_synced_followers\t2\n")
                && m.contains("zk_synced_observers\t1\nzk_pending_syncs\t0\n"),
            "{m}"
        );
        assert!(m.contains("zk_keel_committed_zxid\t0x200000002\n"), "{m}");
        assert!(m.contains("zk_durable_zxid\t0x200000003\n"), "{m}");
        let follower = Mode {
            name: "follower",
            serving: true,
            proposal_sizes: None,
            replica: Some((2, 5, 5, 5)),
            learners: None,
        };
        let s = answer_in("srvr", &mut e, &info(), me, &follower);
        assert!(
            s.contains("\nMode: follower\n") && !s.contains("Proposal"),
            "{s}"
        );
        // Standalone output is unchanged.
        let m = answer("mntr", &mut e, &info(), me);
        assert!(m.contains("zk_server_state\tstandalone\n") && !m.contains("zk_peer_state"));
    }

    #[test]
    fn java_dates() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // 2026-11-22T19:19:46Z
        assert_eq!(java_date(1_795_375_186_000), "Sun Nov 22 19:19:46 UTC 2026");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(1.8125), "1.8125");
    }
}
