//! The `keel-bench` command.

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use keel_bench::compare::{self, CompareOptions, Mode, ServerKind};
use keel_bench::{run, RunConfig, Workload};

/// keel-bench: a ZooKeeper-protocol load generator and a side-by-side harness.
#[derive(Debug, Parser)]
#[command(
    name = "keel-bench",
    version,
    about = "keel-bench: a ZooKeeper-protocol load generator and a side-by-side harness"
)]
struct Bench {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Load one ZooKeeper-compatible server or ensemble and report ops/s and latency.
    /// Progress goes to stderr once a second; the summary and, last, one JSON line to
    /// stdout.
    Run(RunArgs),
    /// Start Apache ZooKeeper 3.8 (Debian package) and Keel on loopback with the same
    /// settings, run the same matrix against each, and write results.md, results.jsonl
    /// and SVG plots. ZK_JAVA, ZK_CLASSPATH and ZK_JVMFLAGS override java, the classpath
    /// and the JVM flags.
    Compare(CompareArgs),
    /// Memory per znode: the server's RSS before and after loading N znodes.
    Memory(keel_bench::memory::MemoryArgs),
    /// Restart time: spawn -> first successful read after SIGKILL, with N znodes loaded.
    Restart(keel_bench::restart::RestartArgs),
    /// Start Keel once per knob setting (KEEL_PROFILE x KEEL_WAL_BACKEND), run the
    /// workload against each, and report the best settings by ops/s and by p99.
    Sweep(SweepArgs),
    /// The write-ahead log end to end: N threads each commit one record at a time through
    /// group commit, against the disk's raw 4 KiB write+fdatasync floor.
    Wal(WalArgs),
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Servers; sessions are spread over them.
    #[arg(long, value_name = "HOST:PORT[,HOST:PORT...]", default_value = "127.0.0.1:2181",
          value_parser = parse_connect)]
    connect: Addrs,
    /// Sessions (connections).
    #[arg(long, value_name = "N", default_value_t = 8)]
    sessions: usize,
    /// Requests outstanding per session.
    #[arg(long, value_name = "K", default_value_t = 8)]
    inflight: usize,
    /// Measured time, e.g. 10s, 500ms, 2m.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time before it.
    #[arg(long, value_name = "D", default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Bytes per znode value.
    #[arg(long, value_name = "B", default_value_t = 128)]
    value_size: usize,
    /// Znodes the set/get/mixed/multi/delete workloads use.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    keys: u64,
    /// create | set | get | delete | mixed:R (R% reads) | multi:K (K setData per
    /// transaction) | watch.
    #[arg(long, value_name = "W", default_value = "set", value_parser = Workload::parse)]
    workload: Workload,
    /// Open loop: OPS requests/s over all sessions, latency measured from each
    /// request's intended send time.
    #[arg(long, value_name = "OPS")]
    rate: Option<f64>,
    /// Stop after exactly N requests (no warm-up).
    #[arg(long, value_name = "N")]
    requests: Option<u64>,
    /// Znode to work under [default: /keel-bench/run-<time>-<pid>].
    #[arg(long, value_name = "PATH")]
    root: Option<String>,
    /// Write an HdrHistogram interval log (V2, compressed).
    #[arg(long, value_name = "FILE")]
    hist_out: Option<PathBuf>,
    /// Session timeout to ask for.
    #[arg(long, value_name = "D", default_value = "30s", value_parser = parse_duration)]
    session_timeout: Duration,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["short", "full"])))]
struct CompareArgs {
    /// A few minutes: the common workloads at two concurrencies.
    #[arg(long)]
    short: bool,
    /// Every workload at four concurrencies, longer cells.
    #[arg(long)]
    full: bool,
    /// 1: standalone; 3: a 3-member ensemble of each on loopback (written to
    /// results-3node.*); 1,3: both, one after the other.
    #[arg(long, value_name = "N[,N...]", default_value = "1", value_parser = parse_nodes)]
    nodes: NodeList,
    /// Where to write [default: docs/benchmarks].
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Keel binary [default: $KEEL_BIN or target/release/keel].
    #[arg(long, value_name = "PATH")]
    keel_bin: Option<PathBuf>,
    /// Parent of the temporary data dirs [default: the system temp dir].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// zookeeper,keel (either or both).
    #[arg(long, value_name = "LIST", default_value = "zookeeper,keel", value_parser = parse_servers)]
    servers: ServerList,
    /// Keep the data dirs and server logs.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Args)]
struct SweepArgs {
    /// Keel binary [default: $KEEL_BIN or target/release/keel].
    #[arg(long, value_name = "PATH")]
    keel_bin: Option<PathBuf>,
    /// Parent of the temporary data dirs [default: the system temp dir].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// The workload (as `run --workload`).
    #[arg(long, value_name = "W", default_value = "set", value_parser = Workload::parse)]
    workload: Workload,
    #[arg(long, value_name = "N", default_value_t = 16)]
    sessions: usize,
    #[arg(long, value_name = "K", default_value_t = 8)]
    inflight: usize,
    #[arg(long, value_name = "D", default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
}

#[derive(Debug, Args)]
struct WalArgs {
    /// A directory on the disk to test.
    #[arg(long, value_name = "DIR", default_value = "keel-bench-wal")]
    dir: PathBuf,
    /// Threads committing one record at a time.
    #[arg(long, value_name = "N", default_value_t = 16)]
    appenders: usize,
    /// Bytes per record.
    #[arg(long = "record-size", value_name = "B", default_value_t = 128)]
    record_bytes: usize,
    #[arg(long, value_name = "D", default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// io_uring or pwrite.
    #[arg(long, value_name = "BACKEND", default_value = "io_uring", value_parser = parse_backend)]
    backend: keel_wal::Backend,
    /// No progress lines.
    #[arg(long)]
    quiet: bool,
}

// Lists parsed from one argument (`a,b,c`): aliases, so that clap takes each as one value
// rather than as a repeatable option.
type Addrs = Vec<SocketAddr>;
type NodeList = Vec<usize>;
type ServerList = Vec<ServerKind>;

fn parse_backend(s: &str) -> Result<keel_wal::Backend, String> {
    match s {
        "io_uring" => Ok(keel_wal::Backend::IoUring),
        "pwrite" => Ok(keel_wal::Backend::Pwrite),
        other => Err(format!("expected io_uring or pwrite, not {other}")),
    }
}

fn parse_servers(s: &str) -> Result<Vec<ServerKind>, String> {
    s.split(',').map(|k| ServerKind::parse(k.trim())).collect()
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().collect();
    let bench = Bench::parse();
    let result = match bench.command {
        Cmd::Run(a) => cmd_run(a),
        Cmd::Compare(a) => cmd_compare(a, &raw),
        Cmd::Memory(a) => a.into_options().and_then(|o| {
            let res = keel_bench::memory::measure(&o)?;
            print_result(&res.summary(), &res.json());
            Ok(())
        }),
        Cmd::Restart(a) => a.into_options().and_then(|o| {
            let res = keel_bench::restart::measure(&o)?;
            print_result(&res.summary(), &res.json());
            Ok(())
        }),
        Cmd::Sweep(a) => cmd_sweep(a),
        Cmd::Wal(a) => cmd_wal(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// `10s`, `500ms`, `2m`, `1.5s`, `100us`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (use e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "" | "s" => v,
        "ms" => v / 1e3,
        "us" | "µs" => v / 1e6,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use h, m, s, ms, us)"
            ))
        }
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}` is not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_connect(s: &str) -> Result<Vec<SocketAddr>, String> {
    if s.contains('/') {
        return Err(format!(
            "--connect `{s}`: a chroot suffix is not supported; use --root"
        ));
    }
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let with_port = if part
            .rsplit_once(':')
            .map(|(_, p)| p.parse::<u16>().is_ok())
            .unwrap_or(false)
        {
            part.to_string()
        } else {
            format!("{part}:2181")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("--connect `{part}`: {e}"))?
            .next()
            .ok_or_else(|| format!("--connect `{part}`: no address"))?;
        out.push(addr);
    }
    if out.is_empty() {
        return Err("--connect: no servers given".into());
    }
    Ok(out)
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag} expects a number, not `{v}`"))
}

fn cmd_run(a: RunArgs) -> Result<(), String> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let cfg = RunConfig {
        connect: a.connect,
        sessions: a.sessions,
        inflight: a.inflight,
        duration: a.duration,
        warmup: a.warmup,
        value_size: a.value_size,
        keys: a.keys,
        workload: a.workload,
        rate: a.rate,
        requests: a.requests,
        root: a
            .root
            .unwrap_or_else(|| format!("/keel-bench/run-{stamp}-{}", std::process::id())),
        session_timeout: a.session_timeout,
        progress: !a.quiet,
        hist_out: a.hist_out,
        ..RunConfig::default()
    };
    let res = run(&cfg)?;
    // A closed stdout (`| head`) is not an error worth a panic.
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", res.summary());
    if let Some(p) = &cfg.hist_out {
        let _ = writeln!(out, "  histogram  {}", p.display());
    }
    let _ = writeln!(out, "{}", res.json());
    let _ = out.flush();
    Ok(())
}

/// The human summary, then the one JSON line, last. A closed stdout (`| head`) is not
/// an error worth a panic.
fn print_result(summary: &str, json: &str) {
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{summary}");
    let _ = writeln!(out, "{json}");
    let _ = out.flush();
}

fn cmd_sweep(a: SweepArgs) -> Result<(), String> {
    let mut opts = keel_bench::sweep::SweepOptions {
        keel_bin: a.keel_bin.unwrap_or_else(|| {
            std::env::var("KEEL_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from("target/release/keel"))
        }),
        work_dir: a.work_dir.unwrap_or_else(std::env::temp_dir),
        workload: a.workload,
        sessions: a.sessions,
        inflight: a.inflight,
        duration: a.duration,
        warmup: a.warmup,
    };
    opts.keel_bin = std::fs::canonicalize(&opts.keel_bin).map_err(|e| {
        format!(
            "keel binary {}: {e} (build it, or pass --keel-bin / KEEL_BIN)",
            opts.keel_bin.display()
        )
    })?;
    let rows = keel_bench::sweep::sweep(&opts)?;
    print!("{}", keel_bench::sweep::report(&rows));
    Ok(())
}

fn cmd_wal(a: WalArgs) -> Result<(), String> {
    let cfg = keel_bench::wal::WalBenchConfig {
        dir: a.dir,
        appenders: a.appenders,
        record_bytes: a.record_bytes,
        duration: a.duration,
        backend: a.backend,
        quiet: a.quiet,
    };
    let res = keel_bench::wal::run(&cfg)?;
    let q = |h: &hdrhistogram::Histogram<u64>, x: f64| h.value_at_quantile(x);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "wal {}: {} appenders x {} B: {:.0} records/s; commit p50 {} us p99 {} us; raw 4 KiB write+fdatasync p50 {} us p99 {} us ({:.2}x the floor)",
        res.backend,
        cfg.appenders,
        cfg.record_bytes,
        res.records_per_sec(),
        q(&res.commit, 0.5),
        q(&res.commit, 0.99),
        q(&res.floor, 0.5),
        q(&res.floor, 0.99),
        q(&res.commit, 0.5) as f64 / q(&res.floor, 0.5).max(1) as f64
    );
    let _ = writeln!(out, "{}", res.json(&cfg));
    let _ = out.flush();
    Ok(())
}

fn cmd_compare(a: CompareArgs, raw: &[String]) -> Result<(), String> {
    let repo_root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let mode = if a.full { Mode::Full } else { Mode::Short };
    let keel_bin = a.keel_bin.or_else(|| {
        std::env::var("KEEL_BIN")
            .ok()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    });
    let (out_dir, work_dir, servers, keep, nodes) =
        (a.out_dir, a.work_dir, a.servers, a.keep, a.nodes);
    let keel_bin = keel_bin.unwrap_or_else(|| repo_root.join("target/release/keel"));
    let keel_bin = if keel_bin.is_absolute() {
        keel_bin
    } else {
        std::env::current_dir()
            .map(|d| d.join(&keel_bin))
            .unwrap_or(keel_bin)
    };
    let opts = CompareOptions {
        mode,
        out_dir: out_dir.unwrap_or_else(|| repo_root.join("docs/benchmarks")),
        keel_bin,
        work_dir,
        servers,
        keep,
        nodes,
        command_line: std::iter::once("keel-bench compare".to_string())
            .chain(raw.iter().skip(2).cloned())
            .collect::<Vec<_>>()
            .join(" "),
    };
    for md in compare::compare(&opts)? {
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            std::fs::read_to_string(&md).unwrap_or_default()
        );
        eprintln!("wrote {}", md.display());
    }
    Ok(())
}

/// `--nodes`: `1`, `3`, or a list such as `1,3`; each 1 or odd.
fn parse_nodes(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let n: usize = num("--nodes", part)?;
        if n == 0 || (n > 1 && n % 2 == 0) {
            return Err(format!(
                "--nodes expects 1 (standalone) or an odd ensemble size such as 3, not `{part}`"
            ));
        }
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn nodes_lists() {
        assert_eq!(parse_nodes("1"), Ok(vec![1]));
        assert_eq!(parse_nodes("3"), Ok(vec![3]));
        assert_eq!(parse_nodes("1,3"), Ok(vec![1, 3]));
        assert!(parse_nodes("2").is_err());
        assert!(parse_nodes("0").is_err());
        assert!(parse_nodes("x").is_err());
    }

    #[test]
    fn connect_strings() {
        let v = parse_connect("127.0.0.1:2181,127.0.0.1").expect("parse");
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].port(), 2181);
        assert!(parse_connect("127.0.0.1:2181/chroot").is_err());
    }
}
