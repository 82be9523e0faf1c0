//! `keel-bench wal`: the write-ahead log end to end, outside criterion. N appender
//! threads each submit one record at a time through `GroupCommit` and wait until the
//! log reports it durable; the commit latency is submit → durable. The disk's raw
//! floor (4 KiB write + fdatasync on one thread) is measured in the same run, so the
//! two can be compared as a ratio.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use keel_wal::{Backend, GroupCommit, Log, LogConfig, LogOptions};

pub struct WalBenchConfig {
    pub dir: PathBuf,
    pub appenders: usize,
    pub record_bytes: usize,
    pub duration: Duration,
    pub backend: Backend,
    pub quiet: bool,
}

pub struct WalBenchResult {
    pub records: u64,
    pub elapsed: Duration,
    pub commit: Histogram<u64>,
    pub floor: Histogram<u64>,
    pub backend: String,
}

impl WalBenchResult {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn json(&self, cfg: &WalBenchConfig) -> String {
        let q = |h: &Histogram<u64>, x: f64| h.value_at_quantile(x);
        format!(
            "{{\"bench\":\"wal\",\"backend\":\"{}\",\"appenders\":{},\"record_bytes\":{},\"records\":{},\"records_per_sec\":{:.0},\"commit_p50_us\":{},\"commit_p99_us\":{},\"commit_max_us\":{},\"floor_p50_us\":{},\"floor_p99_us\":{},\"p50_over_floor\":{:.2}}}",
            self.backend,
            cfg.appenders,
            cfg.record_bytes,
            self.records,
            self.records_per_sec(),
            q(&self.commit, 0.5),
            q(&self.commit, 0.99),
            self.commit.max(),
            q(&self.floor, 0.5),
            q(&self.floor, 0.99),
            q(&self.commit, 0.5) as f64 / q(&self.floor, 0.5).max(1) as f64,
        )
    }
}

fn histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| format!("histogram: {e}"))
}

/// One thread, 4 KiB at a time into a preallocated file, each followed by fdatasync.
fn raw_floor(dir: &std::path::Path, time: Duration) -> Result<Histogram<u64>, String> {
    let path = dir.join("raw-floor.tmp");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let block = vec![0x5a_u8; 4096];
    let slots = 4096u64;
    f.set_len(slots * 4096)
        .map_err(|e| format!("preallocate {}: {e}", path.display()))?;
    f.sync_all()
        .map_err(|e| format!("sync {}: {e}", path.display()))?;
    let mut h = histogram()?;
    let end = Instant::now() + time;
    let mut i = 0u64;
    while Instant::now() < end {
        let t = Instant::now();
        f.write_all_at(&block, (i % slots) * 4096)
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        f.sync_data()
            .map_err(|e| format!("fdatasync {}: {e}", path.display()))?;
        let _ = h.record(t.elapsed().as_micros().max(1) as u64);
        i += 1;
    }
    let _ = std::fs::remove_file(&path);
    Ok(h)
}

pub fn run(cfg: &WalBenchConfig) -> Result<WalBenchResult, String> {
    std::fs::create_dir_all(&cfg.dir).map_err(|e| format!("{}: {e}", cfg.dir.display()))?;
    let floor = raw_floor(&cfg.dir, Duration::from_secs(1))?;
    let log_dir = cfg.dir.join("wal");
    let _ = std::fs::remove_dir_all(&log_dir);
    let (log, _) = Log::open_with(
        LogConfig {
            dir: log_dir.clone(),
            segment_bytes: 64 << 20,
            preallocate: true,
        },
        LogOptions {
            backend: cfg.backend,
            ..LogOptions::default()
        },
    )
    .map_err(|e| format!("opening the log: {e}"))?;
    let backend = format!("{} ({:?})", log.backend(), log.io_mode());

    // Durability as reported by the log thread; appenders wait on it.
    let durable = Arc::new((Mutex::new(0u64), Condvar::new()));
    let failed = Arc::new(AtomicBool::new(false));
    let d = durable.clone();
    let f2 = failed.clone();
    let gc = Arc::new(GroupCommit::spawn(
        log,
        Box::new(move |z| {
            let (m, cv) = &*d;
            if let Ok(mut g) = m.lock() {
                *g = z;
            }
            cv.notify_all();
        }),
        Box::new(move |e| {
            eprintln!("keel-bench wal: the log failed: {e}");
            f2.store(true, Ordering::SeqCst);
        }),
    ));
    // zxids must reach the log in order: assignment and submission under one lock.
    let next = Arc::new(Mutex::new(0u64));
    let done = Arc::new(AtomicU64::new(0));
    let stop_at = Instant::now() + cfg.duration;
    let started = Instant::now();
    let mut threads = Vec::new();
    for _ in 0..cfg.appenders {
        let (gc, next, durable, done, failed) = (
            gc.clone(),
            next.clone(),
            durable.clone(),
            done.clone(),
            failed.clone(),
        );
        let payload = vec![0xa5_u8; cfg.record_bytes];
        threads.push(std::thread::spawn(
            move || -> Result<Histogram<u64>, String> {
                let mut h = histogram()?;
                while Instant::now() < stop_at && !failed.load(Ordering::SeqCst) {
                    let t = Instant::now();
                    let zxid = {
                        let mut n = next.lock().map_err(|_| "lock poisoned".to_string())?;
                        *n += 1;
                        gc.submit(*n, *n, payload.clone());
                        *n
                    };
                    let (m, cv) = &*durable;
                    let mut g = m.lock().map_err(|_| "lock poisoned".to_string())?;
                    while *g < zxid && !failed.load(Ordering::SeqCst) {
                        g = cv
                            .wait_timeout(g, Duration::from_millis(100))
                            .map_err(|_| "lock poisoned".to_string())?
                            .0;
                    }
                    drop(g);
                    let _ = h.record(t.elapsed().as_micros().max(1) as u64);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(h)
            },
        ));
    }
    let mut last = 0;
    while Instant::now() < stop_at {
        std::thread::sleep(
            Duration::from_secs(1).min(stop_at.saturating_duration_since(Instant::now())),
        );
        let now = done.load(Ordering::Relaxed);
        if !cfg.quiet {
            eprintln!(
                "[{:>4.1}s] {:>9} records/s",
                started.elapsed().as_secs_f64(),
                now - last
            );
        }
        last = now;
    }
    let mut commit = histogram()?;
    for t in threads {
        let h = t.join().map_err(|_| "an appender panicked".to_string())??;
        commit
            .add(&h)
            .map_err(|e| format!("merging histograms: {e}"))?;
    }
    let elapsed = started.elapsed();
    if failed.load(Ordering::SeqCst) {
        return Err("the log failed during the run".into());
    }
    drop(gc); // the last handle: flushes and joins the log thread
    let _ = std::fs::remove_dir_all(&log_dir);
    Ok(WalBenchResult {
        records: commit.len(),
        elapsed,
        commit,
        floor,
        backend,
    })
}
