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

pub fn plan(mode: Mode) -> Plan {
    let (workloads, concurrency, warmup, duration): (Vec<Workload>, Vec<(usize, usize)>, u64, u64) =
        match mode {
            Mode::Short => (
                vec![
                    Workload::Create,
                    Workload::Set,
                    Workload::Get,
                    Workload::Mixed { read_pct: 90 },
                    Workload::Multi { ops: 8 },
                ],
                vec![(1, 1), (16, 8)],
                1,
                6,
            ),
            Mode::Full => (
                vec![
                    Workload::Create,
                    Workload::Set,
                    Workload::Get,
                    Workload::Delete,
                    Workload::Mixed { read_pct: 90 },
                    Workload::Mixed { read_pct: 50 },
                    Workload::Multi { ops: 8 },
                    Workload::Watch,
                ],
                vec![(1, 1), (4, 4), (16, 8), (64, 16)],
                2,
                10,
            ),
        };
    let mut cells = Vec::new();
    for w in &workloads {
        for &(s, k) in &concurrency {
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

impl ServerProc {
    /// Starts a server of `kind` with its data under `dir`, waiting until it serves.
    pub fn start(kind: ServerKind, dir: &Path, keel_bin: &Path) -> Result<ServerProc, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match Self::try_start(kind, dir, keel_bin) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    let retry =
                        e.contains("Address already in use") || e.contains("address in use");
                    last = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last)
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
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
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
                c.arg(&cfg_path);
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
                c.arg("server").arg("--config").arg(&cfg_path).arg(four);
                c.env("KEEL_LOG", "warn");
                c
            }
        };
        cmd.current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", kind.name()))?;
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

/// One server's results.
pub struct ServerResults {
    pub kind: ServerKind,
    pub cells: Vec<(Cell, Result<RunResult, String>)>,
    pub rss_bytes: Option<u64>,
    pub znodes: Option<u64>,
}

fn cell_config(plan: &Plan, cell: &Cell, addr: SocketAddr) -> RunConfig {
    let tag = format!("{}x{}", cell.sessions, cell.inflight);
    let (root, keys) = match cell.workload {
        Workload::Create => (format!("/kb/create-{tag}"), plan.keys),
        Workload::Delete => (format!("/kb/delete-{tag}"), plan.delete_keys),
        Workload::Watch => (format!("/kb/watch-{tag}"), plan.keys),
        _ => ("/kb/kv".to_string(), plan.keys),
    };
    RunConfig {
        connect: vec![addr],
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
    }
}

/// Runs the comparison and writes the results; returns the path of results.md.
pub fn compare(opts: &CompareOptions) -> Result<PathBuf, String> {
    let plan = plan(opts.mode);
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
    eprintln!(
        "keel-bench compare: {} cells x {} server(s), {:?} warm-up + {:?} each; data under {} ({})",
        plan.cells.len(),
        opts.servers.len(),
        plan.warmup,
        plan.duration,
        work.display(),
        facts.filesystem
    );

    let mut all = Vec::new();
    for &kind in &opts.servers {
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
        let mut cells = Vec::new();
        for cell in &plan.cells {
            let cfg = cell_config(&plan, cell, srv.addr);
            let r = run(&cfg);
            match &r {
                Ok(res) => eprintln!(
                    "  {:<10} {:>3}x{:<3} {:>10} ops/s  p50 {:>9}  p99 {:>9}  errors {}",
                    cell.workload.to_string(),
                    cell.sessions,
                    cell.inflight,
                    fmt_count(res.ops_per_sec()),
                    fmt_us(res.quantile_us(0.5)),
                    fmt_us(res.quantile_us(0.99)),
                    res.error_total()
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
        let rss_bytes = srv.rss_bytes();
        let znodes = srv.znode_count();
        srv.stop();
        all.push(ServerResults {
            kind,
            cells,
            rss_bytes,
            znodes,
        });
    }

    facts.load_after = load_average();
    let md = render_markdown(opts, &plan, &facts, &all);
    let md_path = opts.out_dir.join("results.md");
    fs::write(&md_path, md).map_err(|e| format!("cannot write {}: {e}", md_path.display()))?;
    let mut jsonl = String::new();
    for s in &all {
        for (_, r) in &s.cells {
            if let Ok(r) = r {
                let j = r.json();
                // add the server's name as the first field
                let _ = writeln!(jsonl, "{{\"server\":\"{}\",{}", s.kind.name(), &j[1..]);
            }
        }
    }
    let jsonl_path = opts.out_dir.join("results.jsonl");
    fs::write(&jsonl_path, jsonl)
        .map_err(|e| format!("cannot write {}: {e}", jsonl_path.display()))?;
    write_plots(&opts.out_dir, &plan, &all)?;
    if !opts.keep {
        let _ = fs::remove_dir_all(&work);
    }
    Ok(md_path)
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

fn render_markdown(
    opts: &CompareOptions,
    plan: &Plan,
    facts: &MachineFacts,
    all: &[ServerResults],
) -> String {
    let mut s = String::new();
    let mode = match opts.mode {
        Mode::Short => "--short",
        Mode::Full => "--full",
    };
    let _ = writeln!(s, "# Keel and Apache ZooKeeper side by side\n");
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
    let _ = writeln!(
        s,
        "- Both servers standalone on 127.0.0.1, one after the other (ZooKeeper first), with `tickTime=2000` and `maxClientCnxns=0`, their data dirs side by side in one temporary directory on the filesystem above."
    );
    let _ = writeln!(
        s,
        "- fsync on for both: ZooKeeper with `-Dzookeeper.forceSync=yes` (JVM flags `{}`, log level warn); Keel fdatasyncs its WAL before acknowledging any write (log level warn).",
        zk_jvm_flags().join(" ")
    );
    let _ = writeln!(
        s,
        "- Load: keel-bench's closed-loop generator in the same process as the harness, on the same {} CPU(s) as the server, so the two share the cores; every cell is {} s of warm-up and {} s measured, {}-byte values, {} keys (`delete`: {} nodes loaded first).",
        facts.nproc,
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
    let _ = writeln!(s, "## Results\n");
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
    for r in all {
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
    let _ = writeln!(s, "\nAfter the matrix (memory is the process's resident set, for ZooKeeper including its pre-sized JVM heap):\n");
    let _ = writeln!(s, "| server | znodes | resident memory |\n|---|---:|---:|");
    for r in all {
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
        "![throughput against p99 latency](throughput-vs-p99.svg)\n"
    );
    let _ = writeln!(
        s,
        "![latency percentiles at the highest concurrency](latency-percentiles.svg)\n"
    );
    let _ = writeln!(s, "One JSON line per cell: [results.jsonl](results.jsonl).");
    s
}

fn color_of(kind: ServerKind) -> plot::Rgb {
    match kind {
        ServerKind::ZooKeeper => plot::Rgb(214, 96, 39),
        ServerKind::Keel => plot::Rgb(31, 102, 180),
    }
}

fn write_plots(out: &Path, plan: &Plan, all: &[ServerResults]) -> Result<(), String> {
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
    plot::throughput_vs_latency(
        &out.join("throughput-vs-p99.svg"),
        "Throughput against p99 latency (one point per concurrency)",
        &tput,
    )?;
    plot::percentiles(
        &out.join("latency-percentiles.svg"),
        "Latency percentiles at the highest concurrency",
        &pct,
    )?;
    Ok(())
}
