//! The `keel-bench` command.

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_bench::compare::{self, CompareOptions, Mode, ServerKind};
use keel_bench::{run, RunConfig, Workload};

const USAGE: &str = "\
keel-bench — a ZooKeeper-protocol load generator and a side-by-side harness

USAGE:
    keel-bench run [OPTIONS]
        Load one ZooKeeper-compatible server or ensemble and report ops/s and latency.
        --connect HOST:PORT[,HOST:PORT...]   servers; sessions are spread over them
                                             (default 127.0.0.1:2181)
        --sessions N          sessions (connections)                     [8]
        --inflight K          requests outstanding per session           [8]
        --duration D          measured time, e.g. 10s, 500ms, 2m         [10s]
        --warmup D            unmeasured time before it                  [2s]
        --value-size B        bytes per znode value                      [128]
        --keys N              znodes the set/get/mixed/multi/delete
                              workloads use                              [10000]
        --workload W          create | set | get | delete | mixed:R (R% reads)
                              | multi:K (K setData per transaction) | watch   [set]
        --rate OPS            open loop: OPS requests/s over all sessions, latency
                              measured from each request's intended send time
        --requests N          stop after exactly N requests (no warm-up)
        --root PATH           znode to work under [/keel-bench/run-<time>-<pid>]
        --hist-out FILE       write an HdrHistogram interval log (V2, compressed)
        --session-timeout D   session timeout to ask for                 [30s]
        --quiet               no progress lines
    Progress goes to stderr once a second; the summary and, last, one JSON line to stdout.

    keel-bench compare (--short | --full) [OPTIONS]
        Start Apache ZooKeeper 3.8 (Debian package) and Keel standalone on loopback with
        the same settings, run the same matrix against each, and write results.md,
        results.jsonl and SVG plots.
        --nodes N[,N...]      1: standalone; 3: a 3-member ensemble of each on
                              loopback (sessions round-robin over the members),
                              written to results-3node.md, results-3node.jsonl and
                              *-3node.svg; 1,3: both, one after the other      [1]
        --out-dir DIR         where to write                  [docs/benchmarks]
        --keel-bin PATH       Keel binary   [$KEEL_BIN or target/release/keel]
        --work-dir DIR        parent of the temporary data dirs   [system temp dir]
        --servers LIST        zookeeper,keel (either or both)     [zookeeper,keel]
        --keep                keep the data dirs and server logs
        ZooKeeper: ZK_JAVA, ZK_CLASSPATH and ZK_JVMFLAGS override java, the classpath
        and the JVM flags.

    keel-bench memory --connect HOST:PORT --pid PID --znodes N [OPTIONS]
        Memory per znode: the server's RSS (/proc/PID/status) before and after loading
        N znodes with pipelined creates.
        --value-size B [128]   --inflight K [256]   --root PATH   --settle MS [1000]

    keel-bench restart --cmd \"SHELL COMMAND\" --connect HOST:PORT [OPTIONS]
        Restart time: start the server (sh -c, own process group), load N znodes,
        SIGKILL it, start it again and time spawn -> first successful read of the
        last znode loaded.
        --znodes N [10000]  --value-size B [128]  --inflight K [256]  --root PATH
        --deadline SECS [120]  --log FILE (server output; default discarded)
    Both print a summary and, last, one JSON line to stdout.

    keel-bench sweep [--workload W] [--sessions N] [--inflight K] [--duration D]
                     [--warmup D] [--keel-bin PATH] [--work-dir DIR]
        Start Keel once per knob setting (KEEL_PROFILE balanced|latency|throughput x
        KEEL_WAL_BACKEND io_uring|pwrite), run the workload against each, and report
        the best settings by ops/s and by p99.

    keel-bench wal [--dir DIR] [--appenders N] [--record-size B] [--duration D]
                   [--backend io_uring|pwrite] [--quiet]
        The write-ahead log end to end: N threads each commit one record at a time
        through group commit; records/s and commit p50/p99 against the disk's raw
        4 KiB write+fdatasync floor measured in the same run (DIR on the disk to test,
        default ./keel-bench-wal).

    keel-bench help
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => cmd_run(&args[1..]),
        Some("compare") => cmd_compare(&args[1..]),
        Some("memory") => cmd_memory(&args[1..]),
        Some("restart") => cmd_restart(&args[1..]),
        Some("wal") => cmd_wal(&args[1..]),
        Some("sweep") => cmd_sweep(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command `{other}`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keel-bench: {e}");
            if e.starts_with("usage:") || e.contains("unknown") || e.contains("expects") {
                eprintln!("\n{USAGE}");
            }
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

fn cmd_run(args: &[String]) -> Result<(), String> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut cfg = RunConfig {
        root: format!("/keel-bench/run-{stamp}-{}", std::process::id()),
        progress: true,
        ..RunConfig::default()
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--quiet" {
            cfg.progress = false;
            continue;
        }
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (flag.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} expects a value")),
            }
        };
        match flag {
            "--connect" => cfg.connect = parse_connect(&value()?)?,
            "--sessions" => cfg.sessions = num(flag, &value()?)?,
            "--inflight" => cfg.inflight = num(flag, &value()?)?,
            "--duration" => cfg.duration = parse_duration(&value()?)?,
            "--warmup" => cfg.warmup = parse_duration(&value()?)?,
            "--value-size" => cfg.value_size = num(flag, &value()?)?,
            "--keys" => cfg.keys = num(flag, &value()?)?,
            "--workload" => cfg.workload = Workload::parse(&value()?)?,
            "--rate" => cfg.rate = Some(num(flag, &value()?)?),
            "--requests" => cfg.requests = Some(num(flag, &value()?)?),
            "--root" => cfg.root = value()?,
            "--hist-out" => cfg.hist_out = Some(PathBuf::from(value()?)),
            "--session-timeout" => cfg.session_timeout = parse_duration(&value()?)?,
            other => return Err(format!("run: unknown option `{other}`")),
        }
    }
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

fn cmd_memory(args: &[String]) -> Result<(), String> {
    let opts = keel_bench::memory::parse_args(args)?;
    let res = keel_bench::memory::measure(&opts)?;
    print_result(&res.summary(), &res.json());
    Ok(())
}

fn cmd_restart(args: &[String]) -> Result<(), String> {
    let opts = keel_bench::restart::parse_args(args)?;
    let res = keel_bench::restart::measure(&opts)?;
    print_result(&res.summary(), &res.json());
    Ok(())
}

fn cmd_sweep(args: &[String]) -> Result<(), String> {
    let mut opts = keel_bench::sweep::SweepOptions {
        keel_bin: std::env::var("KEEL_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from("target/release/keel")),
        work_dir: std::env::temp_dir(),
        workload: Workload::parse("set")?,
        sessions: 16,
        inflight: 8,
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("usage: {a} expects a value"))
        };
        match a.as_str() {
            "--keel-bin" => opts.keel_bin = PathBuf::from(val()?),
            "--work-dir" => opts.work_dir = PathBuf::from(val()?),
            "--workload" => opts.workload = Workload::parse(&val()?)?,
            "--sessions" => {
                opts.sessions = val()?
                    .parse()
                    .map_err(|_| "usage: --sessions expects a number".to_string())?
            }
            "--inflight" => {
                opts.inflight = val()?
                    .parse()
                    .map_err(|_| "usage: --inflight expects a number".to_string())?
            }
            "--duration" => opts.duration = parse_duration(&val()?)?,
            "--warmup" => opts.warmup = parse_duration(&val()?)?,
            other => return Err(format!("unknown option `{other}` for sweep")),
        }
    }
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

fn cmd_wal(args: &[String]) -> Result<(), String> {
    let mut cfg = keel_bench::wal::WalBenchConfig {
        dir: PathBuf::from("keel-bench-wal"),
        appenders: 16,
        record_bytes: 128,
        duration: Duration::from_secs(5),
        backend: keel_wal::Backend::IoUring,
        quiet: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("usage: {a} expects a value"))
        };
        match a.as_str() {
            "--dir" => cfg.dir = PathBuf::from(val()?),
            "--appenders" => {
                cfg.appenders = val()?
                    .parse()
                    .map_err(|_| "usage: --appenders expects a number".to_string())?
            }
            "--record-size" => {
                cfg.record_bytes = val()?
                    .parse()
                    .map_err(|_| "usage: --record-size expects bytes".to_string())?
            }
            "--duration" => cfg.duration = parse_duration(&val()?)?,
            "--backend" => {
                cfg.backend = match val()?.as_str() {
                    "io_uring" => keel_wal::Backend::IoUring,
                    "pwrite" => keel_wal::Backend::Pwrite,
                    other => {
                        return Err(format!(
                            "usage: --backend expects io_uring or pwrite, not {other}"
                        ))
                    }
                }
            }
            "--quiet" => cfg.quiet = true,
            other => return Err(format!("unknown option `{other}` for wal")),
        }
    }
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

fn cmd_compare(args: &[String]) -> Result<(), String> {
    let repo_root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut mode = None;
    let mut out_dir = None;
    let mut keel_bin = std::env::var("KEEL_BIN")
        .ok()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from);
    let mut work_dir = None;
    let mut servers = vec![ServerKind::ZooKeeper, ServerKind::Keel];
    let mut keep = false;
    let mut nodes = vec![1usize];
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} expects a value"))
        };
        match flag.as_str() {
            "--short" => mode = Some(Mode::Short),
            "--full" => mode = Some(Mode::Full),
            "--keep" => keep = true,
            "--nodes" => nodes = parse_nodes(&value()?)?,
            "--out-dir" => out_dir = Some(PathBuf::from(value()?)),
            "--keel-bin" => keel_bin = Some(PathBuf::from(value()?)),
            "--work-dir" => work_dir = Some(PathBuf::from(value()?)),
            "--servers" => {
                servers = value()?
                    .split(',')
                    .map(|s| ServerKind::parse(s.trim()))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("compare: unknown option `{other}`")),
        }
    }
    let mode = mode.ok_or("usage: keel-bench compare --short | --full")?;
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
            .chain(args.iter().cloned())
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
