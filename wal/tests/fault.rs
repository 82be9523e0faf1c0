//! Faults injected through the file layer, on both backends: a failed
//! fdatasync, segment write or directory fsync is fatal exactly once, nothing
//! is reported durable after it, and what was reported durable survives a
//! power loss modelled at that moment.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use keel_wal::fault::FaultFs;
use keel_wal::{Backend, GroupCommit, IoMode, Log, LogConfig, LogOptions, WalError};

fn open_faulty(cfg: &LogConfig, fs: &FaultFs, b: Backend) -> Log {
    let opts = LogOptions {
        backend: b,
        io_mode: IoMode::Direct,
        fs: Arc::new(fs.clone()),
    };
    let (log, _) = Log::open_with(cfg.clone(), opts).expect("open");
    if b == Backend::Pwrite || kernel_has_io_uring() {
        assert_eq!(log.backend(), b);
    }
    log
}

/// What the callbacks saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Durable(u64),
    Fatal(String),
}

/// Moments of a run: the highest zxid reported durable, and the disk as a
/// power loss then would leave it.
type Captures = Vec<(u64, Vec<(std::path::PathBuf, Vec<u8>)>)>;

/// Which operation a run fails.
#[derive(Debug, Clone, Copy)]
enum Fail {
    Sync(u64),
    Write(u64),
    DirSync(u64),
}

/// Streams `n` frames through group commit, with the chosen operation (the
/// Nth from the start of the stream) failing. Returns the events and, for
/// each of a few moments during the run, the highest zxid reported durable
/// and the disk as a power loss then would leave it.
fn faulty_run(
    b: Backend,
    fail: Fail,
    n: u64,
    segment_bytes: u64,
) -> (Vec<Event>, Captures, tempfile::TempDir) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), segment_bytes);
    let fs = FaultFs::with_power_loss_model();
    let log = open_faulty(&cfg, &fs, b);
    match fail {
        Fail::Sync(k) => fs.fail_nth_sync(k),
        Fail::Write(k) => fs.fail_nth_write(k),
        Fail::DirSync(k) => fs.fail_nth_dir_sync(k),
    }
    let events = Arc::new(Mutex::new(Vec::new()));
    let (e1, e2) = (Arc::clone(&events), Arc::clone(&events));
    // Highest zxid reported durable, or u64::MAX once the log has stopped.
    let progress = Arc::new(AtomicU64::new(0));
    let (p1, p2) = (Arc::clone(&progress), Arc::clone(&progress));
    let gc = Arc::new(GroupCommit::spawn(
        log,
        Box::new(move |z| {
            e1.lock().expect("lock").push(Event::Durable(z));
            p1.fetch_max(z, Ordering::SeqCst);
        }),
        Box::new(move |e: WalError| {
            let fsync = matches!(e, WalError::Fsync { .. });
            let msg = format!("{}{e}", if fsync { "FSYNC " } else { "" });
            e2.lock().expect("lock").push(Event::Fatal(msg));
            p2.store(u64::MAX, Ordering::SeqCst);
        }),
    ));
    // Chunks of 10 frames, at most two chunks unreported at a time: many
    // batches (so that the Nth sync exists) that still overlap.
    let writer = {
        let gc = Arc::clone(&gc);
        std::thread::spawn(move || {
            for z in 1..=n {
                gc.submit(z, z, stream_frame(z).payload);
                if z % 10 == 0 {
                    while progress.load(Ordering::SeqCst).saturating_add(20) <= z {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
            }
        })
    };
    let max_durable = |ev: &[Event]| {
        ev.iter()
            .filter_map(|e| match e {
                Event::Durable(z) => Some(*z),
                Event::Fatal(_) => None,
            })
            .max()
            .unwrap_or(0)
    };
    let mut captures = Vec::new();
    while !writer.is_finished() {
        let max = max_durable(&events.lock().expect("lock"));
        captures.push((max, fs.durable_images()));
        std::thread::sleep(Duration::from_millis(2));
    }
    writer.join().expect("writer");
    let Ok(gc) = Arc::try_unwrap(gc) else {
        panic!("the writer still holds the group commit");
    };
    let log = gc.shutdown();
    let events = events.lock().expect("lock").clone();
    let max = max_durable(&events);
    captures.push((max, fs.durable_images()));
    if events.iter().any(|e| matches!(e, Event::Fatal(_))) {
        // Fail-stop: the log refuses everything after the fatal error.
        let mut log = log;
        let e = log
            .append(n + 1, n + 1, b"after")
            .expect_err("append after fatal");
        assert!(matches!(e, WalError::Stopped { .. }), "{e}");
        let e = log.sync().expect_err("sync after fatal");
        assert!(matches!(e, WalError::Stopped { .. }), "{e}");
    }
    (events, captures, tmp)
}

/// The invariants every faulty run must keep.
fn check_run(
    what: &str,
    events: &[Event],
    captures: &Captures,
    tmp: &std::path::Path,
    segment_bytes: u64,
    expect_fsync: bool,
) {
    let fatal: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e, Event::Fatal(_)))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(fatal.len(), 1, "{what}: on_fatal calls: {events:?}");
    let at = fatal[0];
    assert_eq!(
        at,
        events.len() - 1,
        "{what}: reported after the fatal error"
    );
    if let Event::Fatal(msg) = &events[at] {
        assert_eq!(msg.starts_with("FSYNC "), expect_fsync, "{what}: {msg}");
        if expect_fsync {
            assert!(msg.contains("must exit"), "{what}: {msg}");
        }
    }
    let durable: Vec<u64> = events[..at]
        .iter()
        .filter_map(|e| match e {
            Event::Durable(z) => Some(*z),
            Event::Fatal(_) => None,
        })
        .collect();
    assert!(
        durable.windows(2).all(|w| w[0] < w[1]),
        "{what}: reports not increasing: {durable:?}"
    );
    for (i, (max, images)) in captures.iter().enumerate() {
        let dir = tmp.join(format!("crash-{i}"));
        materialize(images, &dir);
        let crashed = LogConfig {
            dir,
            ..cfg(tmp, segment_bytes)
        };
        let (log, rec) = open(&crashed, IoMode::Buffered, Backend::Pwrite);
        assert!(
            rec.last_zxid >= *max,
            "{what}, capture {i}: {max} was reported durable, a power loss keeps only {}",
            rec.last_zxid
        );
        for (k, f) in read_all(&log).iter().enumerate() {
            assert_eq!(*f, stream_frame(k as u64 + 1), "{what}, capture {i}");
        }
    }
}

/// The Nth fdatasync fails, for every N over the first several syncs of a
/// stream: fatal once, as an fsync error, nothing durable after it.
fn failed_fsync_is_fatal_once_and_nothing_after_it_is_durable(b: Backend) {
    let mut failed_at = Vec::new();
    for k in 1..=6 {
        let (events, captures, tmp) = faulty_run(b, Fail::Sync(k), 400, 64 << 10);
        let what = format!("{b}, sync {k} fails");
        check_run(&what, &events, &captures, tmp.path(), 64 << 10, true);
        let durable = events.len() - 1;
        failed_at.push(durable);
    }
    // Later failures let more batches through first.
    println!("{b}: durability reports before the failure, by failing sync: {failed_at:?}");
    assert_eq!(
        failed_at[0], 0,
        "the first sync failed, yet something was reported"
    );
}

/// The Nth segment write fails: fatal once (an I/O error, not an fsync one).
fn failed_write_is_fatal_once(b: Backend) {
    for k in [1, 2, 5] {
        let (events, captures, tmp) = faulty_run(b, Fail::Write(k), 300, 64 << 10);
        let what = format!("{b}, write {k} fails");
        check_run(&what, &events, &captures, tmp.path(), 64 << 10, false);
    }
}

/// The directory fsync of a rollover fails: fatal, and the frames bound for
/// the new segment are never reported durable.
fn failed_directory_fsync_at_rollover_is_fatal(b: Backend) {
    // ~190-byte frames, 8 KiB segments: a rollover every ~40 frames.
    let (events, captures, tmp) = faulty_run(b, Fail::DirSync(2), 300, 8 << 10);
    check_run(
        &format!("{b}, dir sync 2 fails"),
        &events,
        &captures,
        tmp.path(),
        8 << 10,
        true,
    );
}

/// A standalone log (no group commit): a failed sync is an `Fsync` error,
/// and from then on every append and sync is refused.
fn standalone_log_is_fail_stop_after_a_failed_sync(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1 << 16);
    let fs = FaultFs::new();
    let mut log = open_faulty(&cfg, &fs, b);
    append(&mut log, &frame(1, 1, 100));
    sync(&mut log);
    assert_eq!(log.durable_zxid(), 1);
    append(&mut log, &frame(2, 2, 100));
    fs.fail_nth_sync(1);
    let e = log.sync().expect_err("injected");
    match &e {
        WalError::Fsync { path, source } => {
            assert!(path.starts_with(&cfg.dir), "{e}");
            assert_eq!(source.raw_os_error(), Some(libc::EIO));
        }
        other => panic!("expected Fsync, got {other}"),
    }
    assert!(
        e.to_string().contains("retrying the sync is not safe"),
        "{e}"
    );
    assert_eq!(log.durable_zxid(), 1);
    // No retry, even though the next sync would succeed.
    let e = log.sync().expect_err("stopped");
    assert!(matches!(e, WalError::Stopped { .. }), "{e}");
    let e = log.append(3, 3, b"x").expect_err("stopped");
    assert!(matches!(e, WalError::Stopped { .. }), "{e}");
    assert_eq!(log.durable_zxid(), 1);
    drop(log);
    // What a restart finds is the log as the disk has it; here (no power
    // loss) frame 2 was written, so it is there, and the log works again.
    let (mut log, rec) = open(&cfg, IoMode::Direct, b);
    assert_eq!(rec.last_zxid, 2);
    append(&mut log, &frame(3, 3, 10));
    sync(&mut log);
}

/// A write failure through the standalone log is an I/O error naming the
/// file; the log does not pretend the frame is there.
fn standalone_write_failure_names_the_file(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1 << 16);
    let fs = FaultFs::new();
    let mut log = open_faulty(&cfg, &fs, b);
    append(&mut log, &frame(1, 1, 100));
    fs.fail_nth_write(1);
    let e = log.append(2, 2, b"lost").expect_err("injected");
    match &e {
        WalError::Io { op, path, .. } => {
            assert_eq!(*op, "write");
            assert!(path.starts_with(&cfg.dir), "{e}");
        }
        other => panic!("expected Io, got {other}"),
    }
    assert_eq!(log.last_zxid(), 1);
}

on_both_backends!(
    failed_fsync_is_fatal_once_and_nothing_after_it_is_durable,
    failed_write_is_fatal_once,
    failed_directory_fsync_at_rollover_is_fatal,
    standalone_log_is_fail_stop_after_a_failed_sync,
    standalone_write_failure_names_the_file,
);
