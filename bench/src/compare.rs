//! `keel-bench compare`: Apache ZooKeeper 3.8 and Keel side by side.
//!
//! Each server is started standalone on a free loopback port with the same settings —
//! `tickTime=2000`, unlimited connections per address, its data dir in one temporary
//! directory (so both write to the same filesystem), transaction log fsync on
//! (ZooKeeper's `zookeeper.forceSync=yes`, the default; Keel always makes its WAL
//! durable before it acknowledges a write) — and the same matrix of workloads ×
//! concurrencies runs against it with the in-process load generator, one server at a
//! time (ZooKeeper first), so the two never compete for the machine. The results go to
//! `results.md` (a table with ratios and the machine's facts), `results.jsonl` (one
//! JSON line per cell) and two SVG plots, all in the output directory.
//!
//! With `--nodes 3` each server runs as a 3-member ensemble on loopback instead: one
//! `zoo.cfg` per member with the same `tickTime`, `initLimit=10`, `syncLimit=5` and
//! identical `server.N=127.0.0.1:peer:election;127.0.0.1:client` lines, one data dir
//! (with `myid`) per member side by side, the same JVM flags for ZooKeeper. The matrix
//! (smaller: three server processes share the machine) starts once one member reports
//! `Mode: leader` and the others `Mode: follower`, with sessions round-robin over the
//! members; the results go to `results-3node.md`, `results-3node.jsonl` (each line with
//! `"nodes":3`) and `*-3node.svg`, next to the standalone files.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::plot;
use crate::report::{fmt_count, fmt_us, named_errors};
use crate::run::{run, RunConfig, RunResult, Workload};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A few minutes: the common workloads at two concurrencies.
    Short,
    /// Every workload at four concurrencies, longer cells.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    ZooKeeper,
    Keel,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::ZooKeeper => "ZooKeeper",
            ServerKind::Keel => "Keel",
        }
    }

    pub fn parse(s: &str) -> Result<ServerKind, String> {
        match s.to_ascii_lowercase().as_str() {
            "zookeeper" | "zk" => Ok(ServerKind::ZooKeeper),
            "keel" => Ok(ServerKind::Keel),
            _ => Err(format!("unknown server `{s}` (zookeeper, keel)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CompareOptions {
    pub mode: Mode,
    /// Where results.md, results.jsonl and the plots go.
    pub out_dir: PathBuf,
    pub keel_bin: PathBuf,
    /// Parent of the temporary data dirs (default: the system temp dir).
    pub work_dir: Option<PathBuf>,
    pub servers: Vec<ServerKind>,
    /// Keep the data dirs and server logs.
    pub keep: bool,
    /// Ensemble sizes to run, in order: 1 is standalone (`results.md`), 3 a 3-member
    /// ensemble of each server (`results-3node.md`).
    pub nodes: Vec<usize>,
    /// The command line to print in results.md.
    pub command_line: String,
}

/// One cell of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct Cell {
    pub workload: Workload,
    pub sessions: usize,
    pub inflight: usize,
}

pub struct Plan {
    pub cells: Vec<Cell>,
    pub warmup: Duration,
    pub duration: Duration,
    pub keys: u64,
    pub delete_keys: u64,
    pub value_size: usize,
}

/// The matrix for standalone servers (`nodes` 1) or ensembles of `nodes` members.
/// Ensembles get a smaller matrix (three servers per side share the machine): `--short`
/// is create, set and get with one session per member and with 4 sessions × 8 in flight
/// per member; sessions go round-robin over the members. Both modes add the
/// few-session pipelined cells, whatever the size: `set` and `create` with 1 session ×
/// 16 in flight and 4 × 64 (how ClickHouse or a Curator-based controller drives
/// ZooKeeper: a few sessions, many async requests each).
pub fn plan_for(mode: Mode, nodes: usize) -> Plan {
    let mut plan = if nodes <= 1 {
        plan(mode)
    } else {
        match mode {
            Mode::Short => matrix(
                &[Workload::Create, Workload::Set, Workload::Get],
                &[(1, 1), (4, 8)],
                nodes,
                (1, 4),
            ),
            Mode::Full => matrix(&FULL, &[(1, 1), (2, 4), (8, 8), (16, 16)], nodes, (2, 10)),
        }
    };
    for w in [Workload::Set, Workload::Create] {
        for (sessions, inflight) in PIPELINED {
            plan.cells.push(Cell {
                workload: w,
                sessions,
                inflight,
            });
        }
        if nodes > 1 {
            let (sessions, inflight) = MANY_SESSIONS;
            plan.cells.push(Cell {
                workload: w,
                sessions,
                inflight,
            });
        }
    }
    plan
}

/// The few-session pipelined cells (sessions in all, requests in flight per session).
pub const PIPELINED: [(usize, usize); 2] = [(1, 16), (4, 64)];

/// The many-session cell ensembles also get (issue 12's 64 × 16 goal cell).
pub const MANY_SESSIONS: (usize, usize) = (64, 16);

/// The standalone matrix, without the pipelined cells [`plan_for`] adds.
pub fn plan(mode: Mode) -> Plan {
    match mode {
        Mode::Short => matrix(
            &[
                Workload::Create,
                Workload::Set,
                Workload::Get,
                Workload::Mixed { read_pct: 90 },
                Workload::Multi { ops: 8 },
            ],
            &[(1, 1), (16, 8)],
            1,
            (1, 6),
        ),
        Mode::Full => matrix(&FULL, &[(1, 1), (4, 4), (16, 8), (64, 16)], 1, (2, 10)),
    }
}

/// The workloads of `--full`, standalone and ensembles alike.
const FULL: [Workload; 8] = [
    Workload::Create,
    Workload::Set,
    Workload::Get,
    Workload::Delete,
    Workload::Mixed { read_pct: 90 },
    Workload::Mixed { read_pct: 50 },
    Workload::Multi { ops: 8 },
    Workload::Watch,
];

/// Every workload at every (sessions per member, in flight) pair, sessions times
/// `members`; `(warm-up, measured)` seconds per cell.
fn matrix(
    workloads: &[Workload],
    pairs: &[(usize, usize)],
    members: usize,
    (warmup, duration): (u64, u64),
) -> Plan {
    let mut cells = Vec::new();
    for w in workloads {
        for &(s, k) in pairs {
            let s = s * members;
            // watch needs a writer and at least one watcher
            let s = if *w == Workload::Watch { s.max(2) } else { s };
            cells.push(Cell {
                workload: *w,
                sessions: s,
                inflight: k,
            });
        }
    }
    Plan {
        cells,
        warmup: Duration::from_secs(warmup),
        duration: Duration::from_secs(duration),
        keys: 10_000,
        delete_keys: 100_000,
        value_size: 128,
    }
}

/// Facts about the machine the numbers come from.
#[derive(Debug, Clone, Default)]
pub struct MachineFacts {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory: String,
    pub filesystem: String,
    pub java: String,
    pub keel: String,
    pub date_utc: String,
    /// `/proc/loadavg` (1, 5, 15 min) before the first and after the last cell: other
    /// work on the machine shows here.
    pub load_before: String,
    pub load_after: String,
}

pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

impl MachineFacts {
    pub fn collect(data_dir: &Path, keel_bin: &Path) -> MachineFacts {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let memory = fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
            })
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "unknown".into());
        let java = Command::new(java_bin())
            .arg("-version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .map(|s| s.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let keel = Command::new(keel_bin)
            .arg("version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        MachineFacts {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            kernel,
            memory,
            filesystem: filesystem_of(data_dir),
            java,
            keel,
            date_utc: utc_now(),
            load_before: load_average(),
            load_after: String::new(),
        }
    }
}

/// `fstype (device, mounted on X)` for the mount that holds `path`.
pub fn filesystem_of(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let mnt = f[1].replace("\\040", " ");
        if path.starts_with(&mnt) && best.as_ref().map(|(l, _)| mnt.len() > *l).unwrap_or(true) {
            best = Some((
                mnt.len(),
                format!("{} ({}, mounted on {})", f[2], f[0], mnt),
            ));
        }
    }
    best.map(|(_, s)| s).unwrap_or_else(|| "unknown".into())
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // days since 1970-01-01 to a civil date (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn java_bin() -> String {
    std::env::var("ZK_JAVA")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "java".into())
}

/// ZooKeeper's classpath: `ZK_CLASSPATH`, else the Debian package's jar plus the
/// slf4j-simple binding (the jar's manifest pulls in its other dependencies).
fn zk_classpath() -> Result<String, String> {
    if let Ok(cp) = std::env::var("ZK_CLASSPATH") {
        if !cp.is_empty() {
            return Ok(cp);
        }
    }
    let jar = "/usr/share/java/zookeeper.jar";
    if !Path::new(jar).exists() {
        return Err(format!(
            "{jar} not found: install the Debian package `zookeeper` or set ZK_CLASSPATH"
        ));
    }
    let mut cp = jar.to_string();
    let simple = "/usr/share/java/slf4j-simple.jar";
    if Path::new(simple).exists() {
        cp.push(':');
        cp.push_str(simple);
    }
    Ok(cp)
}

/// JVM flags for ZooKeeper (`ZK_JVMFLAGS` overrides).
pub fn zk_jvm_flags() -> Vec<String> {
    match std::env::var("ZK_JVMFLAGS") {
        Ok(s) if !s.trim().is_empty() => s.split_whitespace().map(String::from).collect(),
        _ => vec!["-Xms1g".into(), "-Xmx1g".into()],
    }
}

/// A started server process.
pub struct ServerProc {
    pub kind: ServerKind,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    child: Child,
}

fn free_port() -> Result<u16, String> {
    let l =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Sends a four-letter word and returns the whole answer.
pub fn four_letter(addr: SocketAddr, cmd: &str, timeout: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(cmd.as_bytes())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn log_tail(path: &Path, lines: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Spawns `kind` with the config file `cfg_path`, in `dir`, its output appended to
/// `log_path`; the same command line for a standalone server and an ensemble member.
fn spawn_server(
    kind: ServerKind,
    dir: &Path,
    cfg_path: &Path,
    log_path: &Path,
    keel_bin: &Path,
) -> Result<Child, String> {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let four = "-Dzookeeper.4lw.commands.whitelist=*";
    let mut cmd = match kind {
        ServerKind::ZooKeeper => {
            let mut c = Command::new(java_bin());
            c.arg("-cp").arg(zk_classpath()?);
            c.args(zk_jvm_flags());
            c.args([
                four,
                "-Dzookeeper.forceSync=yes",
                "-Dzookeeper.admin.enableServer=false",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ]);
            c.arg(cfg_path);
            c
        }
        ServerKind::Keel => {
            if !keel_bin.exists() {
                return Err(format!(
                    "Keel binary {} not found: run `cargo build --release -p keel-net --bin keel` or set KEEL_BIN",
                    keel_bin.display()
                ));
            }
            let mut c = Command::new(keel_bin);
            c.arg("server").arg("--config").arg(cfg_path).arg(four);
            c.env("KEEL_LOG", "warn");
            c
        }
    };
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    cmd.spawn()
        .map_err(|e| format!("cannot start {}: {e}", kind.name()))
}

impl ServerProc {
    /// Starts a server of `kind` with its data under `dir`, waiting until it serves.
    pub fn start(kind: ServerKind, dir: &Path, keel_bin: &Path) -> Result<ServerProc, String> {
        retry_if_port_taken(|_| Self::try_start(kind, dir, keel_bin))
    }

    fn try_start(kind: ServerKind, dir: &Path, keel_bin: &Path) -> Result<ServerProc, String> {
        let data = dir.join("data");
        fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        let port = free_port()?;
        let cfg_path = dir.join("zoo.cfg");
        let cfg = format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n",
            data.display()
        );
        fs::write(&cfg_path, cfg)
            .map_err(|e| format!("cannot write {}: {e}", cfg_path.display()))?;
        let log_path = dir.join("server.log");
        let child = spawn_server(kind, dir, &cfg_path, &log_path, keel_bin)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut srv = ServerProc {
            kind,
            addr,
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = srv.child.try_wait() {
                return Err(format!(
                    "{} exited during start-up ({status}); log tail:\n{}",
                    kind.name(),
                    log_tail(&log_path, 30)
                ));
            }
            if let Ok(ans) = four_letter(addr, "ruok", Duration::from_secs(1)) {
                if ans == "imok" {
                    if let Ok(srvr) = four_letter(addr, "srvr", Duration::from_secs(1)) {
                        if !srvr.is_empty() && !srvr.contains("not currently serving") {
                            return Ok(srv);
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                srv.stop();
                return Err(format!(
                    "{} did not start serving within 60 s; log tail:\n{}",
                    kind.name(),
                    log_tail(&log_path, 30)
                ));
            }
            // Polling a process we do not control: there is nothing to wait on but time.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory of the server process.
    pub fn rss_bytes(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()?;
        Some(kb * 1024)
    }

    /// `zk_znode_count` from `mntr`.
    pub fn znode_count(&self) -> Option<u64> {
        let m = four_letter(self.addr, "mntr", Duration::from_secs(5)).ok()?;
        m.lines()
            .find_map(|l| l.strip_prefix("zk_znode_count"))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Ensemble settings, the same for ZooKeeper and Keel.
pub const TICK_TIME_MS: u64 = 2000;
pub const INIT_LIMIT: u32 = 10;
pub const SYNC_LIMIT: u32 = 5;

/// The loopback ports of one ensemble member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberPorts {
    pub client: u16,
    /// Quorum (follower to leader) port, 2888 by convention.
    pub peer: u16,
    /// Leader election port, 3888 by convention.
    pub election: u16,
}

/// `n` distinct free loopback ports: every listener is held until all are bound, so the
/// kernel cannot hand out the same port twice (another process may still take one
/// before the server binds it; [`Ensemble::start`] retries then).
pub fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    for _ in 0..n {
        let l = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("cannot find a free port: {e}"))?;
        ports.push(l.local_addr().map_err(|e| e.to_string())?.port());
        held.push(l);
    }
    Ok(ports)
}

/// Ports for an ensemble of `n`: 3 × `n` distinct free ports.
pub fn ensemble_ports(n: usize) -> Result<Vec<MemberPorts>, String> {
    let p = free_ports(3 * n)?;
    Ok(p.chunks(3)
        .map(|c| MemberPorts {
            client: c[0],
            peer: c[1],
            election: c[2],
        })
        .collect())
}

/// The `server.N` lines every member's config carries, ids from 1:
/// `server.N=127.0.0.1:peerPort:electionPort;127.0.0.1:clientPort`.
pub fn server_lines(ports: &[MemberPorts]) -> String {
    let mut s = String::new();
    for (i, p) in ports.iter().enumerate() {
        let _ = writeln!(
            s,
            "server.{}=127.0.0.1:{}:{};127.0.0.1:{}",
            i + 1,
            p.peer,
            p.election,
            p.client
        );
    }
    s
}

/// One member's `zoo.cfg`: the standalone settings (`tickTime`, `maxClientCnxns=0`)
/// plus `initLimit`, `syncLimit` and the `server.N` lines; the client port and address
/// come from the member's own `server.N` line.
pub fn member_config(data_dir: &Path, ports: &[MemberPorts]) -> String {
    format!(
        "tickTime={TICK_TIME_MS}\ninitLimit={INIT_LIMIT}\nsyncLimit={SYNC_LIMIT}\ndataDir={}\nmaxClientCnxns=0\n{}",
        data_dir.display(),
        server_lines(ports)
    )
}

/// One member's files, as [`write_ensemble_configs`] laid them out.
#[derive(Debug, Clone)]
pub struct MemberSetup {
    /// The `N` of `server.N` and the content of `myid`.
    pub id: u64,
    /// `dir/member-N`: `zoo.cfg`, `server.log` and `data/` (with `myid`).
    pub dir: PathBuf,
    pub cfg_path: PathBuf,
    pub data_dir: PathBuf,
    pub client: SocketAddr,
}

/// Writes one `zoo.cfg` per member under `dir/member-N/`, each with its own data dir
/// (`dir/member-N/data`, holding `myid`) on the same filesystem and identical
/// `server.N` lines.
pub fn write_ensemble_configs(
    dir: &Path,
    ports: &[MemberPorts],
) -> Result<Vec<MemberSetup>, String> {
    let mut out = Vec::with_capacity(ports.len());
    for (i, p) in ports.iter().enumerate() {
        let id = i as u64 + 1;
        let mdir = dir.join(format!("member-{id}"));
        let data = mdir.join("data");
        fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        let myid = data.join("myid");
        fs::write(&myid, format!("{id}\n"))
            .map_err(|e| format!("cannot write {}: {e}", myid.display()))?;
        let cfg_path = mdir.join("zoo.cfg");
        fs::write(&cfg_path, member_config(&data, ports))
            .map_err(|e| format!("cannot write {}: {e}", cfg_path.display()))?;
        out.push(MemberSetup {
            id,
            dir: mdir,
            cfg_path,
            data_dir: data,
            client: SocketAddr::from(([127, 0, 0, 1], p.client)),
        });
    }
    Ok(out)
}

/// Runs `start(attempt)` up to three times while it fails because a port it picked
/// was taken meanwhile (another process bound it between our probe and the server's
/// bind); any other error is final.
fn retry_if_port_taken<T>(mut start: impl FnMut(usize) -> Result<T, String>) -> Result<T, String> {
    let mut last = String::new();
    for attempt in 0..3 {
        match start(attempt) {
            Ok(t) => return Ok(t),
            Err(e) => {
                let retry = e.contains("Address already in use") || e.contains("address in use");
                last = e;
                if !retry {
                    break;
                }
            }
        }
    }
    Err(last)
}

/// The `Mode:` of a `srvr` answer (`leader`, `follower`, `standalone`, ...).
pub fn srvr_mode(answer: &str) -> Option<&str> {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Mode:"))
        .map(str::trim)
}

/// A started ensemble: every member serving, one leader.
pub struct Ensemble {
    pub kind: ServerKind,
    /// Member `i` has id `i + 1`.
    pub members: Vec<ServerProc>,
    /// Index into `members` of the leader when the ensemble first served.
    pub leader: usize,
}

/// How long an ensemble may take to elect a leader and serve.
const ENSEMBLE_DEADLINE: Duration = Duration::from_secs(120);

impl Ensemble {
    /// Starts an ensemble of `n` members of `kind` under `dir` and waits until it
    /// serves: `srvr` on one member says `Mode: leader` and on all others
    /// `Mode: follower`.
    pub fn start(
        kind: ServerKind,
        dir: &Path,
        n: usize,
        keel_bin: &Path,
    ) -> Result<Ensemble, String> {
        retry_if_port_taken(|attempt| {
            let dir = if attempt == 0 {
                dir.to_path_buf()
            } else {
                dir.join(format!("retry-{attempt}"))
            };
            Self::try_start(kind, &dir, n, keel_bin)
        })
    }

    fn try_start(
        kind: ServerKind,
        dir: &Path,
        n: usize,
        keel_bin: &Path,
    ) -> Result<Ensemble, String> {
        let ports = ensemble_ports(n)?;
        let setups = write_ensemble_configs(dir, &ports)?;
        let mut members: Vec<ServerProc> = Vec::with_capacity(n);
        for m in &setups {
            let child = spawn_server(
                kind,
                &m.dir,
                &m.cfg_path,
                &m.dir.join("server.log"),
                keel_bin,
            )?;
            members.push(ServerProc {
                kind,
                addr: m.client,
                dir: m.dir.clone(),
                child,
            });
        }
        // On an error below, dropping `members` stops every member.
        let started = Instant::now();
        let mut last: Vec<String> = vec!["no answer yet".into(); n];
        loop {
            for (i, m) in members.iter_mut().enumerate() {
                if let Ok(Some(status)) = m.child.try_wait() {
                    return Err(format!(
                        "{} ensemble member {} exited during start-up ({status}); {}",
                        kind.name(),
                        i + 1,
                        member_report(&members_dirs(&setups), &last)
                    ));
                }
            }
            let mut leaders = Vec::new();
            let mut followers = 0;
            for (i, m) in members.iter().enumerate() {
                match four_letter(m.addr, "srvr", Duration::from_secs(1)) {
                    Ok(ans) => {
                        match srvr_mode(&ans) {
                            Some("leader") => leaders.push(i),
                            Some("follower") => followers += 1,
                            _ => {}
                        }
                        last[i] = match srvr_mode(&ans) {
                            Some(mode) => format!("Mode: {mode}"),
                            None if ans.trim().is_empty() => "empty srvr answer".into(),
                            None => ans.trim().lines().next().unwrap_or("").to_string(),
                        };
                    }
                    Err(e) => last[i] = format!("srvr: {e}"),
                }
            }
            if leaders.len() == 1 && followers == n - 1 {
                return Ok(Ensemble {
                    kind,
                    members,
                    leader: leaders[0],
                });
            }
            if started.elapsed() >= ENSEMBLE_DEADLINE {
                return Err(format!(
                    "{} ensemble of {n} did not serve (one `Mode: leader`, the rest `Mode: follower`) within {} s; {}",
                    kind.name(),
                    ENSEMBLE_DEADLINE.as_secs(),
                    member_report(&members_dirs(&setups), &last)
                ));
            }
            // Polling processes we do not control: there is nothing to wait on but time.
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The members' client addresses, member 1 first: session `s` of a run goes to
    /// member `s % n + 1`.
    pub fn client_addrs(&self) -> Vec<SocketAddr> {
        self.members.iter().map(|m| m.addr).collect()
    }

    /// Stops every member: all are killed first, then reaped.
    pub fn stop(&mut self) {
        for m in &mut self.members {
            let _ = m.child.kill();
        }
        for m in &mut self.members {
            m.stop();
        }
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        self.stop();
    }
}

fn members_dirs(setups: &[MemberSetup]) -> Vec<(u64, SocketAddr, PathBuf)> {
    setups
        .iter()
        .map(|m| (m.id, m.client, m.dir.clone()))
        .collect()
}

/// Each member's last `srvr` state and log tail, for a start-up error.
fn member_report(members: &[(u64, SocketAddr, PathBuf)], last: &[String]) -> String {
    let mut s = String::from("members:");
    for (i, (id, addr, dir)) in members.iter().enumerate() {
        let _ = write!(
            s,
            "\n--- member {id} (client {addr}, {}): last srvr: {}; log tail:\n{}",
            dir.display(),
            last.get(i).map(String::as_str).unwrap_or("?"),
            log_tail(&dir.join("server.log"), 20)
        );
    }
    s
}

/// One server's results.
pub struct ServerResults {
    pub kind: ServerKind,
    pub cells: Vec<(Cell, Result<RunResult, String>)>,
    /// Resident memory after the matrix; for an ensemble the sum over its members.
    pub rss_bytes: Option<u64>,
    /// `zk_znode_count` after the matrix; for an ensemble the leader's.
    pub znodes: Option<u64>,
    /// Members: 1 for a standalone server.
    pub nodes: usize,
    /// For an ensemble, each member's resident memory after the matrix.
    pub member_rss: Vec<Option<u64>>,
    /// For an ensemble, the id (`myid`) of the member that led when it first served.
    pub leader_id: Option<u64>,
    /// For an ensemble that did not start: why (its cells are empty).
    pub start_error: Option<String>,
}

fn cell_config(plan: &Plan, cell: &Cell, connect: &[SocketAddr], pids: &[u32]) -> RunConfig {
    let tag = format!("{}x{}", cell.sessions, cell.inflight);
    let (root, keys) = match cell.workload {
        Workload::Create => (format!("/kb/create-{tag}"), plan.keys),
        Workload::Delete => (format!("/kb/delete-{tag}"), plan.delete_keys),
        Workload::Watch => (format!("/kb/watch-{tag}"), plan.keys),
        _ => ("/kb/kv".to_string(), plan.keys),
    };
    RunConfig {
        // session `s` connects to `connect[s % len]`: round-robin over an ensemble
        connect: connect.to_vec(),
        sessions: cell.sessions,
        inflight: cell.inflight,
        duration: plan.duration,
        warmup: plan.warmup,
        value_size: plan.value_size,
        keys,
        workload: cell.workload,
        rate: None,
        requests: None,
        root,
        session_timeout: Duration::from_secs(30),
        progress: false,
        hist_out: None,
        drain_timeout: Duration::from_secs(10),
        server_pids: pids.to_vec(),
    }
}

/// The files one comparison writes into the output directory: the standalone ones keep
/// their names, an ensemble's carry `-<n>node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputNames {
    pub markdown: String,
    pub jsonl: String,
    pub throughput_svg: String,
    pub percentiles_svg: String,
}

pub fn output_names(nodes: usize) -> OutputNames {
    let suffix = if nodes == 1 {
        String::new()
    } else {
        format!("-{nodes}node")
    };
    OutputNames {
        markdown: format!("results{suffix}.md"),
        jsonl: format!("results{suffix}.jsonl"),
        throughput_svg: format!("throughput-vs-p99{suffix}.svg"),
        percentiles_svg: format!("latency-percentiles{suffix}.svg"),
    }
}

/// Runs every cell against the servers at `connect`, measuring what the processes
/// `pids` spend.
fn run_cells(
    plan: &Plan,
    connect: &[SocketAddr],
    pids: &[u32],
) -> Vec<(Cell, Result<RunResult, String>)> {
    let mut cells = Vec::new();
    for cell in &plan.cells {
        let cfg = cell_config(plan, cell, connect, pids);
        let r = run(&cfg);
        match &r {
            Ok(res) => eprintln!(
                "  {:<10} {:>3}x{:<3} {:>10} ops/s  p50 {:>9}  p99 {:>9}  errors {}  server {} µs CPU, {} switches per op",
                cell.workload.to_string(),
                cell.sessions,
                cell.inflight,
                fmt_count(res.ops_per_sec()),
                fmt_us(res.quantile_us(0.5)),
                fmt_us(res.quantile_us(0.99)),
                res.error_total(),
                fmt_opt(res.server_cpu_us_per_op(), 1),
                fmt_opt(res.server_switches_per_op(), 2),
            ),
            Err(e) => eprintln!(
                "  {:<10} {:>3}x{:<3} failed: {e}",
                cell.workload.to_string(),
                cell.sessions,
                cell.inflight
            ),
        }
        cells.push((*cell, r));
    }
    cells
}

/// Runs the comparison once per ensemble size in `opts.nodes` and writes the results;
/// returns the paths of the markdown files (`results.md` for standalone,
/// `results-3node.md` for 3-node ensembles).
pub fn compare(opts: &CompareOptions) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for &nodes in &opts.nodes {
        out.push(compare_nodes(opts, nodes)?);
    }
    Ok(out)
}

/// Runs the comparison with standalone servers (`nodes` 1) or ensembles of `nodes`
/// members and writes the results; returns the path of the markdown file.
pub fn compare_nodes(opts: &CompareOptions, nodes: usize) -> Result<PathBuf, String> {
    if nodes == 0 || nodes % 2 == 0 {
        return Err(format!(
            "--nodes {nodes}: use 1 (standalone) or an odd ensemble size such as 3"
        ));
    }
    let plan = plan_for(opts.mode, nodes);
    let names = output_names(nodes);
    let base = opts.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let work = base.join(format!("keel-bench-compare-{}-{stamp}", std::process::id()));
    fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    fs::create_dir_all(&opts.out_dir)
        .map_err(|e| format!("cannot create {}: {e}", opts.out_dir.display()))?;
    let mut facts = MachineFacts::collect(&work, &opts.keel_bin);
    if nodes == 1 {
        eprintln!(
            "keel-bench compare: {} cells x {} server(s), {:?} warm-up + {:?} each; data under {} ({})",
            plan.cells.len(),
            opts.servers.len(),
            plan.warmup,
            plan.duration,
            work.display(),
            facts.filesystem
        );
    } else {
        eprintln!(
            "keel-bench compare: {nodes}-node ensembles: {} cells x {} server(s), {:?} warm-up + {:?} each; data under {} ({})",
            plan.cells.len(),
            opts.servers.len(),
            plan.warmup,
            plan.duration,
            work.display(),
            facts.filesystem
        );
    }

    let mut all = Vec::new();
    for &kind in &opts.servers {
        if nodes == 1 {
            let dir = work.join(kind.name().to_ascii_lowercase());
            let started = Instant::now();
            let mut srv = ServerProc::start(kind, &dir, &opts.keel_bin)?;
            eprintln!(
                "{} serving on {} (pid {}) after {:.1} s",
                kind.name(),
                srv.addr,
                srv.pid(),
                started.elapsed().as_secs_f64()
            );
            let cells = run_cells(&plan, &[srv.addr], &[srv.pid()]);
            let rss_bytes = srv.rss_bytes();
            let znodes = srv.znode_count();
            srv.stop();
            all.push(ServerResults {
                kind,
                cells,
                rss_bytes,
                znodes,
                nodes,
                member_rss: Vec::new(),
                leader_id: None,
                start_error: None,
            });
            continue;
        }
        let dir = work.join(format!("{}-{nodes}node", kind.name().to_ascii_lowercase()));
        let started = Instant::now();
        let mut ens = match Ensemble::start(kind, &dir, nodes, &opts.keel_bin) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{} ensemble failed to start: {e}", kind.name());
                all.push(ServerResults {
                    kind,
                    cells: Vec::new(),
                    rss_bytes: None,
                    znodes: None,
                    nodes,
                    member_rss: Vec::new(),
                    leader_id: None,
                    start_error: Some(e),
                });
                continue;
            }
        };
        let addrs = ens.client_addrs();
        eprintln!(
            "{} {nodes}-node ensemble serving on {} (pids {}; leader: member {}) after {:.1} s",
            kind.name(),
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            ens.members
                .iter()
                .map(|m| m.pid().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            ens.leader + 1,
            started.elapsed().as_secs_f64()
        );
        let pids: Vec<u32> = ens.members.iter().map(|m| m.pid()).collect();
        let cells = run_cells(&plan, &addrs, &pids);
        let member_rss: Vec<Option<u64>> = ens.members.iter().map(|m| m.rss_bytes()).collect();
        let rss_bytes = member_rss.iter().copied().sum::<Option<u64>>();
        let znodes = ens.members[ens.leader].znode_count();
        let leader_id = Some(ens.leader as u64 + 1);
        ens.stop();
        all.push(ServerResults {
            kind,
            cells,
            rss_bytes,
            znodes,
            nodes,
            member_rss,
            leader_id,
            start_error: None,
        });
    }

    facts.load_after = load_average();
    let md = render_markdown(opts, &plan, &facts, &all, nodes);
    let md_path = opts.out_dir.join(&names.markdown);
    fs::write(&md_path, &md).map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;
    if let Some(page) = update_summary_page(&opts.out_dir, nodes, &md, &facts, &names.markdown)? {
        eprintln!("updated the results table in {}", page.display());
    }
    let mut jsonl = String::new();
    for s in &all {
        for (_, r) in &s.cells {
            if let Ok(r) = r {
                let j = r.json();
                // add the server's name (and an ensemble's size) as the first fields
                if nodes == 1 {
                    let _ = writeln!(jsonl, "{{\"server\":\"{}\",{}", s.kind.name(), &j[1..]);
                } else {
                    let _ = writeln!(
                        jsonl,
                        "{{\"server\":\"{}\",\"nodes\":{nodes},{}",
                        s.kind.name(),
                        &j[1..]
                    );
                }
            }
        }
    }
    let jsonl_path = opts.out_dir.join(&names.jsonl);
    fs::write(&jsonl_path, jsonl)
        .map_err(|e| format!("cannot write {}: {e}", jsonl_path.display()))?;
    write_plots(&opts.out_dir, &plan, &all, &names, nodes)?;
    if !opts.keep {
        let _ = fs::remove_dir_all(&work);
    }
    let failed: Vec<String> = all
        .iter()
        .filter(|s| s.start_error.is_some())
        .map(|s| s.kind.name().to_string())
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "the {nodes}-node {} ensemble(s) did not start (errors above and in {}, which was written with what ran)",
            failed.join(" and "),
            md_path.display()
        ));
    }
    Ok(md_path)
}

/// A measured figure with `digits` decimals, or `–` where none was measured.
fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

fn find<'a>(s: &'a ServerResults, cell: &Cell) -> Option<&'a RunResult> {
    s.cells
        .iter()
        .find(|(c, _)| {
            c.workload == cell.workload
                && c.sessions == cell.sessions
                && c.inflight == cell.inflight
        })
        .and_then(|(_, r)| r.as_ref().ok())
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

/// The markers around the part of `docs/benchmarks.md` that `compare` rewrites.
fn summary_markers(nodes: usize) -> (String, String) {
    (
        format!("<!-- keel-bench compare --nodes {nodes}: begin -->"),
        format!("<!-- keel-bench compare --nodes {nodes}: end -->"),
    )
}

/// Rewrites the region between [`summary_markers`] in the page beside the output
/// directory (`docs/benchmarks.md` for the default `docs/benchmarks/`) with this run's
/// results table, so the one `compare` command regenerates the side-by-side part of
/// that page too. Nothing happens when the page or its markers are absent.
fn update_summary_page(
    out_dir: &Path,
    nodes: usize,
    md: &str,
    facts: &MachineFacts,
    results_file: &str,
) -> Result<Option<PathBuf>, String> {
    let Some(parent) = out_dir.parent() else {
        return Ok(None);
    };
    let dir_name = out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let page = parent.join(format!("{dir_name}.md"));
    let Ok(text) = fs::read_to_string(&page) else {
        return Ok(None);
    };
    let (begin, end) = summary_markers(nodes);
    let (Some(b), Some(e)) = (text.find(&begin), text.find(&end)) else {
        return Ok(None);
    };
    if e < b {
        return Ok(None);
    }
    let new = summary_region(md, facts, &format!("{dir_name}/{results_file}"));
    let updated = format!("{}\n{new}{}", &text[..b + begin.len()], &text[e..]);
    fs::write(&page, updated).map_err(|e| format!("cannot write {}: {e}", page.display()))?;
    Ok(Some(page))
}

/// What goes between the markers: when and under what load the run was made, then its
/// results table (from the generated page, which also holds the machine and settings).
fn summary_region(md: &str, facts: &MachineFacts, link: &str) -> String {
    let table: Vec<&str> = md
        .lines()
        .skip_while(|l| !l.starts_with("## Results"))
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'))
        .collect();
    format!(
        "Run of {} (load average {} before, {} after); machine, settings and every \
         column: [{link}]({link}).\n\n{}\n",
        facts.date_utc,
        facts.load_before,
        facts.load_after,
        table.join("\n")
    )
}

fn render_markdown(
    opts: &CompareOptions,
    plan: &Plan,
    facts: &MachineFacts,
    all: &[ServerResults],
    nodes: usize,
) -> String {
    let mut s = String::new();
    let mode = match opts.mode {
        Mode::Short => "--short".to_string(),
        Mode::Full => "--full".to_string(),
    };
    let names = output_names(nodes);
    if nodes == 1 {
        let _ = writeln!(s, "# Keel and Apache ZooKeeper side by side\n");
    } else {
        let _ = writeln!(
            s,
            "# Keel and Apache ZooKeeper side by side: {nodes}-node ensembles on loopback\n"
        );
    }
    let mode = if nodes == 1 {
        mode
    } else {
        format!("{mode} --nodes {nodes}")
    };
    let _ = writeln!(
        s,
        "Written by `keel-bench compare {mode}` on {}. To regenerate:\n",
        facts.date_utc
    );
    let _ = writeln!(s, "```sh\ncargo build --release -p keel-net --bin keel\ncargo run --release -p keel-bench -- compare {mode}\n```\n");
    let _ = writeln!(s, "## Machine\n");
    let _ = writeln!(s, "| fact | value |\n|---|---|");
    let _ = writeln!(s, "| CPUs (nproc) | {} |", facts.nproc);
    let _ = writeln!(s, "| CPU model | {} |", facts.cpu_model);
    let _ = writeln!(s, "| kernel | {} |", facts.kernel);
    let _ = writeln!(s, "| memory | {} |", facts.memory);
    let _ = writeln!(s, "| data filesystem | {} |", facts.filesystem);
    let _ = writeln!(s, "| ZooKeeper | 3.8 (Debian package), {} |", facts.java);
    let _ = writeln!(s, "| Keel | {} |", facts.keel);
    let _ = writeln!(
        s,
        "| load average (1/5/15 min) before / after | {} / {} |",
        facts.load_before, facts.load_after
    );
    let _ = writeln!(s);
    let _ = writeln!(s, "## Settings\n");
    if nodes == 1 {
        let _ = writeln!(
            s,
            "- Both servers standalone on 127.0.0.1, one after the other (ZooKeeper first), with `tickTime=2000` and `maxClientCnxns=0`, their data dirs side by side in one temporary directory on the filesystem above."
        );
    } else {
        let _ = writeln!(
            s,
            "- Ensemble size: **{nodes} members** per server, all on 127.0.0.1 — ZooKeeper's ensemble first, stopped, then Keel's, so the two never run at once; the {nodes} members of one ensemble share the machine's {} CPU(s) with each other and with the load generator.",
            facts.nproc
        );
        let _ = writeln!(
            s,
            "- One `zoo.cfg` per member, the same for both servers: `tickTime={TICK_TIME_MS}`, `initLimit={INIT_LIMIT}`, `syncLimit={SYNC_LIMIT}`, `maxClientCnxns=0`, and identical lines `server.N=127.0.0.1:peerPort:electionPort;127.0.0.1:clientPort` (distinct free ports); each member has its own `dataDir` with a `myid` file, all side by side in one temporary directory on the filesystem above. Every member participates (no observers)."
        );
        let _ = writeln!(
            s,
            "- The matrix starts once `srvr` on one member says `Mode: leader` and on the others `Mode: follower`. {}",
            all.iter()
                .filter_map(|r| r.leader_id.map(|id| format!("{}: member {id} led.", r.kind.name())))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let _ = writeln!(
            s,
            "- Sessions are spread round-robin over the members (session `s` connects to member `s mod {nodes} + 1`, and stays there); the set-up session (directories, the marker) uses member 1. Writes therefore go through each server's leader whichever member a session is on; reads are answered by the member the session is connected to."
        );
    }
    let _ = writeln!(
        s,
        "- fsync on for both: ZooKeeper with `-Dzookeeper.forceSync=yes` (JVM flags `{}`, log level warn); Keel fdatasyncs its WAL before acknowledging any write (log level warn).",
        zk_jvm_flags().join(" ")
    );
    let _ = writeln!(
        s,
        "- Load: keel-bench's closed-loop generator in the same process as the harness, on the same {} CPU(s) as the {}, so the two share the cores; every cell is {} s of warm-up and {} s measured, {}-byte values, {} keys (`delete`: {} nodes loaded first).",
        facts.nproc,
        if nodes == 1 { "server" } else { "members" },
        plan.warmup.as_secs_f64(),
        plan.duration.as_secs_f64(),
        plan.value_size,
        plan.keys,
        plan.delete_keys
    );
    let _ = writeln!(
        s,
        "- `sessions×inflight`: sessions, each with that many requests outstanding. ops/s counts successes; latencies (µs) are of successes, from the HdrHistogram; the ratio columns are Keel / ZooKeeper (above 1 is better for ops/s, below 1 is better for latency)."
    );
    let _ = writeln!(s);

    let zk = all.iter().find(|r| r.kind == ServerKind::ZooKeeper);
    let keel = all.iter().find(|r| r.kind == ServerKind::Keel);
    if nodes == 1 {
        let _ = writeln!(s, "## Results\n");
    } else {
        let _ = writeln!(s, "## Results: {nodes}-node ensembles\n");
    }
    let _ = writeln!(
        s,
        "| workload | sessions×inflight | ZooKeeper ops/s | Keel ops/s | Keel/ZK ops/s | ZooKeeper p50 µs | Keel p50 µs | Keel/ZK p50 | ZooKeeper p99 µs | Keel p99 µs | Keel/ZK p99 | errors ZK / Keel |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for cell in &plan.cells {
        let z = zk.and_then(|r| find(r, cell));
        let k = keel.and_then(|r| find(r, cell));
        let ops = |r: Option<&RunResult>| {
            r.map(|r| fmt_count(r.ops_per_sec()))
                .unwrap_or_else(|| "–".into())
        };
        let q = |r: Option<&RunResult>, p: f64| {
            r.map(|r| fmt_count(r.quantile_us(p) as f64))
                .unwrap_or_else(|| "–".into())
        };
        let qv = |r: Option<&RunResult>, p: f64| r.map(|r| r.quantile_us(p) as f64).unwrap_or(0.0);
        let errs = |r: Option<&RunResult>| match r {
            None => "failed".to_string(),
            Some(r) if r.error_total() == 0 => "0".to_string(),
            Some(r) => named_errors(&r.errors)
                .iter()
                .map(|(n, c)| format!("{n} {c}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            s,
            "| {} | {}×{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            cell.workload,
            cell.sessions,
            cell.inflight,
            ops(z),
            ops(k),
            ratio(
                k.map(|r| r.ops_per_sec()).unwrap_or(0.0),
                z.map(|r| r.ops_per_sec()).unwrap_or(0.0)
            ),
            q(z, 0.5),
            q(k, 0.5),
            ratio(qv(k, 0.5), qv(z, 0.5)),
            q(z, 0.99),
            q(k, 0.99),
            ratio(qv(k, 0.99), qv(z, 0.99)),
            errs(z),
            errs(k)
        );
    }
    let _ = writeln!(s);
    cost_table(&mut s, plan, zk, keel, nodes);
    for r in all {
        if let Some(e) = &r.start_error {
            let first = e.lines().next().unwrap_or("");
            let _ = writeln!(
                s,
                "- {} failed: the {nodes}-node ensemble did not start: {first}",
                r.kind.name()
            );
        }
        let fails: Vec<String> = r
            .cells
            .iter()
            .filter_map(|(c, res)| {
                res.as_ref()
                    .err()
                    .map(|e| format!("{} {}×{}: {e}", c.workload, c.sessions, c.inflight))
            })
            .collect();
        for f in fails {
            let _ = writeln!(s, "- {} failed: {f}", r.kind.name());
        }
        let notes: Vec<String> = r
            .cells
            .iter()
            .filter_map(|(c, res)| res.as_ref().ok().map(|res| (c, res)))
            .flat_map(|(c, res)| {
                res.notes
                    .iter()
                    .map(move |n| format!("{} {}×{}: {n}", c.workload, c.sessions, c.inflight))
            })
            .collect();
        for n in notes {
            let _ = writeln!(s, "- {} note: {n}", r.kind.name());
        }
    }
    let mib = |b: Option<u64>| {
        b.map(|b| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)))
            .unwrap_or_else(|| "?".into())
    };
    if nodes > 1 {
        let _ = writeln!(s, "\nAfter the matrix (znodes as the leader counts them; memory is the resident set of each member process, for ZooKeeper including its pre-sized JVM heap, and their sum):\n");
        let _ = writeln!(
            s,
            "| server | znodes | resident memory, members 1…{nodes} | total |\n|---|---:|---:|---:|"
        );
    } else {
        let _ = writeln!(s, "\nAfter the matrix (memory is the process's resident set, for ZooKeeper including its pre-sized JVM heap):\n");
        let _ = writeln!(s, "| server | znodes | resident memory |\n|---|---:|---:|");
    }
    for r in all {
        if nodes > 1 {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                r.kind.name(),
                r.znodes
                    .map(|z| fmt_count(z as f64))
                    .unwrap_or_else(|| "?".into()),
                if r.member_rss.is_empty() {
                    "?".to_string()
                } else {
                    r.member_rss
                        .iter()
                        .map(|b| mib(*b))
                        .collect::<Vec<_>>()
                        .join(" / ")
                },
                mib(r.rss_bytes)
            );
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} |",
            r.kind.name(),
            r.znodes
                .map(|z| fmt_count(z as f64))
                .unwrap_or_else(|| "?".into()),
            r.rss_bytes
                .map(|b| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0)))
                .unwrap_or_else(|| "?".into())
        );
    }
    let _ = writeln!(s, "\n## Plots\n");
    let _ = writeln!(
        s,
        "![throughput against p99 latency]({})\n",
        names.throughput_svg
    );
    let _ = writeln!(
        s,
        "![latency percentiles at the highest concurrency]({})\n",
        names.percentiles_svg
    );
    let _ = writeln!(s, "One JSON line per cell: [{0}]({0}).", names.jsonl);
    s
}

/// What each operation cost the servers: CPU time and context switches, summed over
/// every server process (an ensemble's members together), per successful operation in
/// the measured window.
fn cost_table(
    s: &mut String,
    plan: &Plan,
    zk: Option<&ServerResults>,
    keel: Option<&ServerResults>,
    nodes: usize,
) {
    let _ = writeln!(
        s,
        "What each operation cost the server{}: CPU time (user + system, µs) and context switches (voluntary + involuntary), from `/proc` at the end of the warm-up and of the measured window, divided by the operations that succeeded in it.\n",
        if nodes > 1 { "s, summed over the members" } else { "" }
    );
    let _ = writeln!(
        s,
        "| workload | sessions×inflight | ZooKeeper CPU µs/op | Keel CPU µs/op | Keel/ZK CPU | ZooKeeper switches/op | Keel switches/op | Keel/ZK switches |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    for cell in &plan.cells {
        let z = zk.and_then(|r| find(r, cell));
        let k = keel.and_then(|r| find(r, cell));
        let cpu = |r: Option<&RunResult>| r.and_then(|r| r.server_cpu_us_per_op());
        let cs = |r: Option<&RunResult>| r.and_then(|r| r.server_switches_per_op());
        let _ = writeln!(
            s,
            "| {} | {}×{} | {} | {} | {} | {} | {} | {} |",
            cell.workload,
            cell.sessions,
            cell.inflight,
            fmt_opt(cpu(z), 1),
            fmt_opt(cpu(k), 1),
            ratio(cpu(k).unwrap_or(0.0), cpu(z).unwrap_or(0.0)),
            fmt_opt(cs(z), 2),
            fmt_opt(cs(k), 2),
            ratio(cs(k).unwrap_or(0.0), cs(z).unwrap_or(0.0)),
        );
    }
    let _ = writeln!(s);
}

fn color_of(kind: ServerKind) -> plot::Rgb {
    match kind {
        ServerKind::ZooKeeper => plot::Rgb(214, 96, 39),
        ServerKind::Keel => plot::Rgb(31, 102, 180),
    }
}

fn write_plots(
    out: &Path,
    plan: &Plan,
    all: &[ServerResults],
    names: &OutputNames,
    nodes: usize,
) -> Result<(), String> {
    let mut workloads: Vec<Workload> = Vec::new();
    for c in &plan.cells {
        if !workloads.contains(&c.workload) {
            workloads.push(c.workload);
        }
    }
    let mut tput = Vec::new();
    let mut pct = Vec::new();
    for w in &workloads {
        let mut tseries = Vec::new();
        let mut pseries = Vec::new();
        for r in all {
            let mut points = Vec::new();
            let mut top: Option<&RunResult> = None;
            for (c, res) in &r.cells {
                if c.workload != *w {
                    continue;
                }
                if let Ok(res) = res {
                    if res.ok > 0 {
                        points.push((res.ops_per_sec(), res.quantile_us(0.99) as f64 / 1000.0));
                        top = Some(res);
                    }
                }
            }
            tseries.push(plot::Series {
                label: r.kind.name().to_string(),
                color: color_of(r.kind),
                points,
            });
            if let Some(res) = top {
                let qs = [0.5, 0.9, 0.99, 0.999];
                let mut pts: Vec<(f64, f64)> = qs
                    .iter()
                    .enumerate()
                    .map(|(i, q)| (i as f64, res.quantile_us(*q) as f64 / 1000.0))
                    .collect();
                pts.push((4.0, res.max_us() as f64 / 1000.0));
                pseries.push(plot::Series {
                    label: format!("{} {}×{}", r.kind.name(), res.sessions, res.inflight),
                    color: color_of(r.kind),
                    points: pts,
                });
            }
        }
        tput.push(plot::Panel {
            title: w.to_string(),
            series: tseries,
        });
        pct.push(plot::Panel {
            title: w.to_string(),
            series: pseries,
        });
    }
    let ensemble = if nodes == 1 {
        String::new()
    } else {
        format!(", {nodes}-node ensembles")
    };
    plot::throughput_vs_latency(
        &out.join(&names.throughput_svg),
        &format!("Throughput against p99 latency (one point per concurrency{ensemble})"),
        &tput,
    )?;
    let title = if nodes == 1 {
        "Latency percentiles at the highest concurrency".to_string()
    } else {
        format!("Latency percentiles at the highest concurrency ({nodes}-node ensembles)")
    };
    plot::percentiles(&out.join(&names.percentiles_svg), &title, &pct)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn server_lines_of(cfg: &str) -> Vec<&str> {
        cfg.lines().filter(|l| l.starts_with("server.")).collect()
    }

    #[test]
    fn ensemble_configs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ports = ensemble_ports(3).expect("ports");
        assert_eq!(ports.len(), 3);
        let all: HashSet<u16> = ports
            .iter()
            .flat_map(|p| [p.client, p.peer, p.election])
            .collect();
        assert_eq!(all.len(), 9, "ports must be distinct: {ports:?}");

        let members = write_ensemble_configs(tmp.path(), &ports).expect("write");
        assert_eq!(members.len(), 3);
        let cfgs: Vec<String> = members
            .iter()
            .map(|m| fs::read_to_string(&m.cfg_path).expect("cfg"))
            .collect();
        let lines0 = server_lines_of(&cfgs[0]);
        assert_eq!(lines0.len(), 3);
        for (i, (m, cfg)) in members.iter().zip(&cfgs).enumerate() {
            assert_eq!(m.id, i as u64 + 1);
            assert_eq!(
                fs::read_to_string(m.data_dir.join("myid"))
                    .expect("myid")
                    .trim(),
                (i + 1).to_string()
            );
            assert_eq!(server_lines_of(cfg), lines0, "server lines differ");
            for want in [
                "tickTime=2000",
                "initLimit=10",
                "syncLimit=5",
                "maxClientCnxns=0",
            ] {
                assert!(cfg.lines().any(|l| l == want), "{want} missing from\n{cfg}");
            }
            assert!(cfg
                .lines()
                .any(|l| l == format!("dataDir={}", m.data_dir.display())));
            assert!(m.data_dir.starts_with(tmp.path()));
            assert_eq!(m.client.port(), ports[i].client);
            assert!(m.client.ip().is_loopback());
            let own = format!(
                "server.{}=127.0.0.1:{}:{};127.0.0.1:{}",
                i + 1,
                ports[i].peer,
                ports[i].election,
                ports[i].client
            );
            assert!(lines0.contains(&own.as_str()), "{own} missing");
        }
        let dirs: HashSet<&PathBuf> = members.iter().map(|m| &m.data_dir).collect();
        assert_eq!(dirs.len(), 3, "one data dir per member");
    }

    #[test]
    fn modes_from_srvr() {
        let srvr = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(srvr_mode(srvr), Some("follower"));
        assert_eq!(srvr_mode("Mode: leader\n"), Some("leader"));
        assert_eq!(
            srvr_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }

    #[test]
    fn output_names_do_not_collide() {
        let one = output_names(1);
        let three = output_names(3);
        assert_eq!(one.markdown, "results.md");
        assert_eq!(one.throughput_svg, "throughput-vs-p99.svg");
        assert_eq!(three.markdown, "results-3node.md");
        assert_eq!(three.jsonl, "results-3node.jsonl");
        assert_eq!(three.percentiles_svg, "latency-percentiles-3node.svg");
        assert_ne!(one, three);
    }

    #[test]
    fn ensemble_plan_spreads_sessions() {
        let pipelined = 2 * PIPELINED.len();
        let standalone = plan(Mode::Short);
        assert_eq!(
            plan_for(Mode::Short, 1).cells.len(),
            standalone.cells.len() + pipelined
        );
        let p = plan_for(Mode::Short, 3);
        assert!(p.cells.len() <= 6 + pipelined + 2);
        let (matrix, extra) = p.cells.split_at(p.cells.len() - pipelined - 2);
        let few: Vec<(usize, usize)> = extra.iter().map(|c| (c.sessions, c.inflight)).collect();
        let each = [&PIPELINED[..], &[MANY_SESSIONS]].concat();
        assert_eq!(few, [each.clone(), each].concat(), "set, then create");
        for c in matrix {
            assert_eq!(
                c.sessions % 3,
                0,
                "every member gets the same number of sessions"
            );
        }
    }

    #[test]
    fn compare_rewrites_only_the_marked_region_of_the_summary_page() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("benchmarks");
        fs::create_dir_all(&out).unwrap();
        let page = d.path().join("benchmarks.md");
        let (b, e) = summary_markers(3);
        fs::write(
            &page,
            format!("# Top\nkept above\n{b}\nold table\n{e}\nkept below\n"),
        )
        .unwrap();
        let facts = MachineFacts {
            nproc: 2,
            cpu_model: String::new(),
            kernel: String::new(),
            memory: String::new(),
            filesystem: String::new(),
            java: String::new(),
            keel: String::new(),
            date_utc: "2026-11-22 23:00 UTC".into(),
            load_before: "1.00".into(),
            load_after: "2.00".into(),
        };
        let md =
            "# x\n\n## Results: 3-node ensembles\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nafter\n";
        let got = update_summary_page(&out, 3, md, &facts, "results-3node.md").unwrap();
        assert_eq!(got.as_deref(), Some(page.as_path()));
        let text = fs::read_to_string(&page).unwrap();
        assert!(text.starts_with("# Top\nkept above\n"), "{text}");
        assert!(text.ends_with(&format!("{e}\nkept below\n")), "{text}");
        assert!(!text.contains("old table"), "{text}");
        assert!(text.contains("| a | b |\n|---|---|\n| 1 | 2 |\n"), "{text}");
        assert!(text.contains("Run of 2026-11-22 23:00 UTC (load average 1.00 before, 2.00 after)"));
        assert!(text.contains("[benchmarks/results-3node.md](benchmarks/results-3node.md)"));
        // Without markers for that size nothing changes.
        assert!(update_summary_page(&out, 1, md, &facts, "results.md")
            .unwrap()
            .is_none());
    }
}
