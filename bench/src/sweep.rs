//! `keel-bench sweep`: runs one workload against Keel started with each of a few knob
//! settings (the `keel-tuning` profiles × the two log backends) and reports the best
//! by throughput and by p99, so a host's best settings are found by measurement.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::compare::{ServerKind, ServerProc};
use crate::run::{run, RunConfig, RunResult, Workload};

pub struct SweepOptions {
    pub keel_bin: PathBuf,
    pub work_dir: PathBuf,
    pub workload: Workload,
    pub sessions: usize,
    pub inflight: usize,
    pub duration: Duration,
    pub warmup: Duration,
}

/// The settings tried: (KEEL_PROFILE, KEEL_WAL_BACKEND).
pub const SETTINGS: &[(&str, &str)] = &[
    ("balanced", "io_uring"),
    ("latency", "io_uring"),
    ("throughput", "io_uring"),
    ("balanced", "pwrite"),
    ("latency", "pwrite"),
    ("throughput", "pwrite"),
];

pub struct SweepRow {
    pub profile: &'static str,
    pub backend: &'static str,
    pub result: RunResult,
}

fn one(
    opts: &SweepOptions,
    profile: &'static str,
    backend: &'static str,
    dir: &Path,
) -> Result<RunResult, String> {
    // The server inherits the environment: the knobs are read by keel at start-up.
    std::env::set_var("KEEL_PROFILE", profile);
    std::env::set_var("KEEL_WAL_BACKEND", backend);
    let mut server = ServerProc::start(ServerKind::Keel, dir, &opts.keel_bin)?;
    let cfg = RunConfig {
        connect: vec![server.addr],
        sessions: opts.sessions,
        inflight: opts.inflight,
        duration: opts.duration,
        warmup: opts.warmup,
        value_size: 128,
        keys: 10_000,
        workload: opts.workload,
        rate: None,
        requests: None,
        root: "/kb/sweep".into(),
        session_timeout: Duration::from_secs(30),
        progress: false,
        hist_out: None,
        drain_timeout: Duration::from_secs(10),
        server_pids: Vec::new(),
    };
    let res = run(&cfg);
    server.stop();
    res
}

pub fn sweep(opts: &SweepOptions) -> Result<Vec<SweepRow>, String> {
    let mut rows = Vec::new();
    for (i, (profile, backend)) in SETTINGS.iter().enumerate() {
        let dir = opts.work_dir.join(format!("sweep-{i}-{profile}-{backend}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let result = one(opts, profile, backend, &dir)?;
        eprintln!(
            "{profile:>10} {backend:>8}: {:>9.0} ops/s  p50 {:>6} us  p99 {:>7} us",
            result.ops_per_sec(),
            result.quantile_us(0.5),
            result.quantile_us(0.99)
        );
        let _ = std::fs::remove_dir_all(&dir);
        rows.push(SweepRow {
            profile,
            backend,
            result,
        });
    }
    Ok(rows)
}

/// A markdown table and the best settings by throughput and by p99.
pub fn report(rows: &[SweepRow]) -> String {
    let mut s = String::from("| KEEL_PROFILE | KEEL_WAL_BACKEND | ops/s | p50 µs | p99 µs | errors |\n|---|---|---:|---:|---:|---:|\n");
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {} |\n",
            r.profile,
            r.backend,
            r.result.ops_per_sec(),
            r.result.quantile_us(0.5),
            r.result.quantile_us(0.99),
            r.result.error_total()
        ));
    }
    let by_ops = rows
        .iter()
        .max_by(|a, b| a.result.ops_per_sec().total_cmp(&b.result.ops_per_sec()));
    let by_p99 = rows.iter().min_by_key(|r| r.result.quantile_us(0.99));
    if let (Some(a), Some(b)) = (by_ops, by_p99) {
        s.push_str(&format!(
            "\nbest throughput: KEEL_PROFILE={} KEEL_WAL_BACKEND={}\nbest p99:        KEEL_PROFILE={} KEEL_WAL_BACKEND={}\n",
            a.profile, a.backend, b.profile, b.backend
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::Histogram;
    use std::collections::BTreeMap;

    fn result(ok: u64, secs: u64, latency_us: u64) -> RunResult {
        let mut hist = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for _ in 0..ok {
            hist.record(latency_us).unwrap();
        }
        RunResult {
            workload: Workload::parse("set").unwrap(),
            sessions: 1,
            inflight: 1,
            rate: None,
            value_size: 128,
            ok,
            errors: BTreeMap::new(),
            issued: ok,
            elapsed: Duration::from_secs(secs),
            hist,
            notes: Vec::new(),
            server: None,
        }
    }

    #[test]
    fn report_names_the_best_settings_by_throughput_and_by_p99() {
        let rows = vec![
            SweepRow {
                profile: "balanced",
                backend: "io_uring",
                result: result(1000, 1, 500),
            },
            SweepRow {
                profile: "latency",
                backend: "pwrite",
                result: result(500, 1, 100),
            },
            SweepRow {
                profile: "throughput",
                backend: "io_uring",
                result: result(800, 1, 900),
            },
        ];
        let text = report(&rows);
        assert!(
            text.contains("best throughput: KEEL_PROFILE=balanced KEEL_WAL_BACKEND=io_uring"),
            "{text}"
        );
        assert!(
            text.contains("best p99:        KEEL_PROFILE=latency KEEL_WAL_BACKEND=pwrite"),
            "{text}"
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("| ") && !l.starts_with("| KEEL"))
                .count(),
            3
        );
    }
}
