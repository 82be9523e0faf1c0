//! Group commit throughput and latency, on both backends, beside the disk's
//! raw write + fdatasync floor measured in the same run.
//!
//! `raw_floor/*`: one 4 KiB write at the next offset of a preallocated file,
//! then fdatasync (O_DIRECT and buffered): the best a commit can do. The
//! fdatasync is issued on the writing thread, and (`sync_thread`) on a
//! long-lived helper thread as the pwrite backend does: on some virtual
//! machines the two differ by far more than the thread handoff (measured on
//! the 2-core development VM, ext4 on virtio: ~4 ms, one 250 Hz tick, on the
//! writing thread; ~0.1–0.25 ms from a helper thread).
//!
//! `group_commit/<backend>/<size>B/<appenders>`: records of `size` payload
//! bytes through [`GroupCommit`] with `appenders` records outstanding at all
//! times (closed loop: each durability report lets the driver submit as many
//! new records as became durable). One thread submits, in zxid order, as
//! Keel's engine thread does for that many clients with one write in flight
//! each. Criterion's time per iteration is per record, so its throughput
//! line is records/s. Commit latency (submit to durability report) p50/p99
//! is printed to stderr for each case.
//!
//! Run: `cargo bench -p keel-wal --bench append`. The log lives in
//! `$KEEL_BENCH_DIR` (default: the system temp directory): point it at the
//! disk to measure.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keel_wal::{Backend, GroupCommit, IoMode, Log, LogConfig, LogOptions};

const SIZES: [usize; 2] = [128, 1024];
const APPENDERS: [u64; 3] = [1, 16, 256];
const SEGMENT_BYTES: u64 = 64 << 20;

fn bench_dir() -> PathBuf {
    std::env::var_os("KEEL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// How the raw floor issues its fdatasync.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Floor {
    /// write + fdatasync on the bench thread.
    SameThread,
    /// write on the bench thread, fdatasync on a long-lived helper thread
    /// (as the pwrite backend does), handed over through channels.
    SyncThread,
}

/// 4 KiB write + fdatasync, sequential over a preallocated 16 MiB file.
fn raw_floor(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw_floor");
    g.throughput(Throughput::Elements(1));
    let cases = [
        (
            "4KiB_write_fdatasync/O_DIRECT/same_thread",
            true,
            Floor::SameThread,
        ),
        (
            "4KiB_write_fdatasync/O_DIRECT/sync_thread",
            true,
            Floor::SyncThread,
        ),
        (
            "4KiB_write_fdatasync/buffered/same_thread",
            false,
            Floor::SameThread,
        ),
    ];
    for (name, direct, how) in cases {
        let tmp = tempfile::tempdir_in(bench_dir()).expect("tempdir");
        let path = tmp.path().join("floor");
        const LEN: u64 = 16 << 20;
        std::fs::write(&path, vec![0u8; LEN as usize]).expect("preallocate");
        let f = std::fs::File::open(&path).expect("open");
        f.sync_all().expect("sync");
        drop(f);
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        if direct {
            o.custom_flags(libc::O_DIRECT);
        }
        let Ok(file) = o.open(&path) else {
            eprintln!(
                "raw_floor: cannot open {} (O_DIRECT={direct}); skipped",
                path.display()
            );
            continue;
        };
        let file = Arc::new(file);
        // The helper thread for Floor::SyncThread.
        let (req_tx, req_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let helper = {
            let file = Arc::clone(&file);
            std::thread::spawn(move || {
                for () in req_rx {
                    file.sync_data().expect("fdatasync");
                    if done_tx.send(()).is_err() {
                        return;
                    }
                }
            })
        };
        // An aligned 4 KiB block inside a larger allocation (O_DIRECT).
        let mut backing = vec![0xA5u8; 8192];
        let start = backing.as_ptr().align_offset(4096);
        backing[start..start + 4096].fill(0x5A);
        let block = &backing[start..start + 4096];
        let mut off = 0u64;
        let mut lat = Vec::new();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let t = Instant::now();
                    file.write_all_at(block, off).expect("write");
                    match how {
                        Floor::SameThread => file.sync_data().expect("fdatasync"),
                        Floor::SyncThread => {
                            req_tx.send(()).expect("helper");
                            done_rx.recv().expect("helper");
                        }
                    }
                    off = (off + 4096) % LEN;
                    lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
                start.elapsed()
            })
        });
        drop(req_tx);
        helper.join().expect("helper thread");
        let (p50, p99) = percentiles(&mut lat);
        eprintln!(
            "raw_floor/{name}: {} ops; latency p50 {p50} us, p99 {p99} us",
            lat.len()
        );
    }
    g.finish();
}

/// (p50, p99) of microsecond samples.
fn percentiles(v: &mut [u32]) -> (u32, u32) {
    v.sort_unstable();
    let at = |p: f64| {
        let i = ((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1));
        v.get(i).copied().unwrap_or(0)
    };
    (at(0.50), at(0.99))
}

/// Durability reports, for the driver to wait on.
struct Reports {
    durable: Mutex<u64>,
    changed: Condvar,
}

struct Case {
    gc: Option<GroupCommit>,
    reports: Arc<Reports>,
    next: u64,
    payload: Vec<u8>,
    window: u64,
    /// Submit times, by zxid modulo the ring size (> window).
    sent: Vec<Instant>,
    latencies_us: Vec<u32>,
    _dir: tempfile::TempDir,
}

impl Case {
    fn new(backend: Backend, size: usize, window: u64) -> (Case, Backend) {
        let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
        let cfg = LogConfig {
            dir: dir.path().join("log"),
            segment_bytes: SEGMENT_BYTES,
            preallocate: true,
        };
        let opts = LogOptions {
            io_mode: IoMode::Direct,
            backend,
            ..LogOptions::default()
        };
        let (log, _) = Log::open_with(cfg, opts).expect("open log");
        let got = log.backend();
        let reports = Arc::new(Reports {
            durable: Mutex::new(0),
            changed: Condvar::new(),
        });
        let r = Arc::clone(&reports);
        let gc = GroupCommit::spawn(
            log,
            Box::new(move |z| {
                *r.durable.lock().expect("lock") = z;
                r.changed.notify_one();
            }),
            Box::new(|e| panic!("WAL failed during the benchmark: {e}")),
        );
        let case = Case {
            gc: Some(gc),
            reports,
            next: 1,
            payload: vec![0x42; size],
            window,
            sent: vec![Instant::now(); (window as usize * 2).next_power_of_two()],
            latencies_us: Vec::new(),
            _dir: dir,
        };
        (case, got)
    }

    /// Commits `n` more records with `window` outstanding; returns the time.
    fn run(&mut self, n: u64) -> Duration {
        let Some(gc) = self.gc.as_ref() else {
            return Duration::ZERO;
        };
        let mask = self.sent.len() as u64 - 1;
        let start = Instant::now();
        let target = self.next - 1 + n;
        let mut durable = *self.reports.durable.lock().expect("lock");
        let mut submitted = self.next - 1;
        while durable < target {
            while submitted < target && submitted - durable < self.window {
                let z = submitted + 1;
                self.sent[(z & mask) as usize] = Instant::now();
                gc.submit(z, z, self.payload.clone());
                submitted = z;
            }
            let mut d = self.reports.durable.lock().expect("lock");
            while *d == durable {
                d = self.reports.changed.wait(d).expect("wait");
            }
            let now = Instant::now();
            for z in durable + 1..=*d {
                let us = now
                    .duration_since(self.sent[(z & mask) as usize])
                    .as_micros();
                self.latencies_us.push(us.min(u32::MAX as u128) as u32);
            }
            durable = *d;
        }
        self.next = target + 1;
        start.elapsed()
    }

    fn finish(mut self, label: &str) {
        if let Some(gc) = self.gc.take() {
            let stats = gc.stats();
            drop(gc.shutdown());
            let (p50, p99) = percentiles(&mut self.latencies_us);
            eprintln!(
                "{label}: {} records in {} syncs ({:.1} records/sync); commit latency p50 {p50} \
                 us, p99 {p99} us",
                stats.frames,
                stats.batches,
                stats.frames as f64 / stats.batches.max(1) as f64,
            );
        }
    }
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("group_commit");
    g.throughput(Throughput::Elements(1));
    for backend in [Backend::IoUring, Backend::Pwrite] {
        for size in SIZES {
            for window in APPENDERS {
                let (mut case, got) = Case::new(backend, size, window);
                let label = format!("{got}/{size}B");
                let id = BenchmarkId::new(&label, window);
                g.bench_with_input(id, &window, |b, _| b.iter_custom(|iters| case.run(iters)));
                case.finish(&format!("group_commit/{label}/{window}"));
            }
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = raw_floor, group_commit
}
criterion_main!(benches);
