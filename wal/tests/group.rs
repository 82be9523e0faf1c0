//! Group commit: concurrent submitters, ordering of durability reports,
//! shutdown flushing, and the fatal path.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use keel_wal::fault::FaultFs;
use keel_wal::{Backend, GroupCommit, IoMode, Log, LogConfig, LogOptions, WalError};

fn frames_from_many_threads_are_durable_and_reported_in_order(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 64 << 10);
    let (log, _) = open(&cfg, IoMode::Direct, b);

    let reported = Arc::new(Mutex::new(Vec::<u64>::new()));
    let r = Arc::clone(&reported);
    let gc = Arc::new(GroupCommit::spawn(
        log,
        Box::new(move |z| r.lock().expect("lock").push(z)),
        Box::new(|e| panic!("fatal: {e}")),
    ));

    // The sequencer's job in production: assign zxids and submit in one
    // critical section, so submission order is zxid order.
    const THREADS: u64 = 4;
    const EACH: u64 = 250;
    let next = Arc::new(Mutex::new(1u64));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let gc = Arc::clone(&gc);
            let next = Arc::clone(&next);
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let mut n = next.lock().expect("lock");
                    let z = *n;
                    *n += 1;
                    gc.submit(z, z, payload(z, (i as usize * 13) % 300 + 1));
                    drop(n);
                    // Pauses let the WAL thread run many batches, some of
                    // one frame, some of many.
                    if i % 10 == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("submitter");
    }
    let Ok(gc) = Arc::try_unwrap(gc) else {
        panic!("submitters still hold the group commit");
    };
    let stats_before = gc.stats();
    let log = gc.shutdown();

    let total = THREADS * EACH;
    let reported = reported.lock().expect("lock").clone();
    assert!(
        reported.windows(2).all(|w| w[0] < w[1]),
        "reports out of order"
    );
    assert_eq!(reported.last().copied(), Some(total));
    assert!(stats_before.batches <= reported.len() as u64);
    println!(
        "{} frames in {} batches (stats before shutdown: {:?})",
        total,
        reported.len(),
        stats_before
    );

    let frames = read_all(&log);
    assert_eq!(frames.len() as u64, total);
    for (i, f) in frames.iter().enumerate() {
        let z = i as u64 + 1;
        assert_eq!((f.first_zxid, f.last_zxid), (z, z));
        assert_eq!(f.payload.len(), f.payload.len());
        assert_eq!(f.payload, payload(z, f.payload.len()));
    }
    drop(log);
    let (_, rec) = open(&cfg, IoMode::Direct, b);
    assert_eq!(rec.frames as u64, total);
}

fn stats_count_every_frame_and_batch(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(&cfg(tmp.path(), 1 << 20), IoMode::Direct, b);
    let calls = Arc::new(Mutex::new(0u64));
    let c = Arc::clone(&calls);
    let gc = GroupCommit::spawn(
        log,
        Box::new(move |_| *c.lock().expect("lock") += 1),
        Box::new(|e| panic!("fatal: {e}")),
    );
    for z in 1..=50u64 {
        gc.submit(z, z, vec![1u8; 10]);
    }
    // Wait until the thread has reported everything.
    while gc.stats().last_durable_zxid < 50 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let s = gc.stats();
    assert_eq!(s.frames, 50);
    assert_eq!(s.bytes, 500);
    assert_eq!(s.batches, *calls.lock().expect("lock"));
    drop(gc.shutdown());
}

fn shutdown_flushes_pending_and_drop_does_too(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1 << 20);
    let (log, _) = open(&cfg, IoMode::Direct, b);
    let gc = GroupCommit::spawn(log, Box::new(|_| {}), Box::new(|e| panic!("fatal: {e}")));
    for z in 1..=20 {
        gc.submit(z, z, payload(z, 40));
    }
    let log = gc.shutdown();
    assert_eq!(log.last_zxid(), 20);

    let gc = GroupCommit::spawn(log, Box::new(|_| {}), Box::new(|e| panic!("fatal: {e}")));
    gc.submit(21, 21, payload(21, 40));
    drop(gc); // joins and syncs; the lock is released with the log
    let (log, rec) = open(&cfg, IoMode::Direct, b);
    assert_eq!(rec.frames, 21);
    assert_eq!(log.last_zxid(), 21);
}

fn an_error_is_reported_once_and_stops_the_thread(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(&cfg(tmp.path(), 1 << 20), IoMode::Direct, b);
    let fatal = Arc::new(Mutex::new(Vec::<String>::new()));
    let f = Arc::clone(&fatal);
    let durable = Arc::new(Mutex::new(Vec::<u64>::new()));
    let d = Arc::clone(&durable);
    let gc = GroupCommit::spawn(
        log,
        Box::new(move |z| d.lock().expect("lock").push(z)),
        Box::new(move |e: WalError| f.lock().expect("lock").push(e.to_string())),
    );
    gc.submit(5, 5, vec![1]);
    while gc.stats().last_durable_zxid < 5 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    gc.submit(3, 3, vec![2]); // out of order: the log refuses, fatally
    while fatal.lock().expect("lock").is_empty() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    gc.submit(6, 6, vec![3]); // dropped: the thread has stopped
    let log = gc.shutdown();
    assert_eq!(fatal.lock().expect("lock").len(), 1);
    assert!(fatal.lock().expect("lock")[0].contains("refusing to append"));
    assert_eq!(*durable.lock().expect("lock"), vec![5]);
    assert_eq!(log.last_zxid(), 5);
}

fn purge_through_runs_on_the_wal_thread_between_batches(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    // 640-byte frames, three to a 2048-byte segment: segments start at 1, 4, 7, ...
    let cfg = cfg(tmp.path(), 2048);
    let (log, _) = open(&cfg, IoMode::Direct, b);
    let durable = Arc::new(Mutex::new(0u64));
    let d = Arc::clone(&durable);
    let gc = Arc::new(GroupCommit::spawn(
        log,
        Box::new(move |z| *d.lock().expect("lock") = z),
        Box::new(|e| panic!("fatal: {e}")),
    ));
    for z in 1..=20u64 {
        gc.submit(z, z, payload(z, 600));
    }
    while *durable.lock().expect("lock") < 20 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(segments(&cfg.dir).len(), 7);
    assert_eq!(gc.purge_through(0).expect("purge"), 0);
    // Only 1..=3 lies wholly at or below 5.
    assert_eq!(gc.purge_through(5).expect("purge"), 1);
    assert_eq!(segments(&cfg.dir).len(), 6);

    // Purges interleaved with a stream of appends from another thread: each
    // one lands between two batches and never touches the segment being
    // written.
    let writer = {
        let gc = Arc::clone(&gc);
        std::thread::spawn(move || {
            for z in 21..=200u64 {
                gc.submit(z, z, payload(z, 600));
                if z % 16 == 0 {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            }
        })
    };
    let mut purged = 1;
    for _ in 0..20 {
        let through = *durable.lock().expect("lock");
        purged += gc.purge_through(through).expect("purge while appending");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    writer.join().expect("writer");
    while *durable.lock().expect("lock") < 200 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    purged += gc.purge_through(200).expect("purge");
    let Ok(gc) = Arc::try_unwrap(gc) else {
        panic!("the writer still holds the group commit");
    };
    let log = gc.shutdown();
    // 200 frames make 67 segments; all but the newest are gone.
    assert_eq!(purged, 66);
    assert_eq!(segments(&cfg.dir).len(), 1);
    assert_eq!(log.first_zxid(), Some(199));
    assert_eq!(
        read_all(&log),
        vec![frame(199, 199, 600), frame(200, 200, 600)]
    );
    drop(log);
    let (log, rec) = open(&cfg, IoMode::Direct, b);
    assert_eq!((rec.frames, rec.last_zxid), (2, 200));
    assert_eq!(log.first_zxid(), Some(199));
}

fn purge_through_is_refused_after_a_fatal_error_and_from_a_callback(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 2048);
    let (log, _) = open(&cfg, IoMode::Direct, b);
    let fatal = Arc::new(Mutex::new(0));
    let f = Arc::clone(&fatal);
    // The callback asks for a purge on the WAL thread: refused, not a deadlock.
    let slot: Arc<Mutex<Option<Arc<GroupCommit>>>> = Arc::new(Mutex::new(None));
    let s = Arc::clone(&slot);
    let from_callback = Arc::new(Mutex::new(None));
    let fc = Arc::clone(&from_callback);
    let gc = Arc::new(GroupCommit::spawn(
        log,
        Box::new(move |_| {
            if let Some(gc) = s.lock().expect("lock").as_ref() {
                let r = gc.purge_through(1);
                *fc.lock().expect("lock") = Some(r.map_err(|e| e.to_string()));
            }
        }),
        Box::new(move |_| *f.lock().expect("lock") += 1),
    ));
    *slot.lock().expect("lock") = Some(Arc::clone(&gc));
    gc.submit(1, 1, payload(1, 10));
    while from_callback.lock().expect("lock").is_none() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let r = from_callback.lock().expect("lock").take().expect("answer");
    assert!(r.expect_err("refused").contains("WAL thread itself"));
    *slot.lock().expect("lock") = None; // break the cycle

    gc.submit(1, 1, payload(1, 10)); // out of order: fatal
    while *fatal.lock().expect("lock") == 0 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let e = gc.purge_through(10).expect_err("stopped");
    assert!(matches!(e, WalError::Stopped { .. }), "{e}");
    assert_eq!(*fatal.lock().expect("lock"), 1);
}

/// Write/sync overlap under a stream of submissions, with a power-loss model
/// of the disk: durability reports strictly increase, and at any moment a
/// power loss would leave a log that recovers at least up to the last
/// reported zxid (and exactly a prefix of what was submitted).
fn durable_reports_are_monotonic_and_never_ahead_of_recovery(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    // One rollover in the run (a rollover waits for the syncs in flight, so
    // frequent ones would hide the overlap).
    let cfg = cfg(tmp.path(), 200 << 10);
    let fs = FaultFs::with_power_loss_model();
    // A slow disk on the pwrite path, so that writes certainly overlap syncs
    // (io_uring's syncs run in the kernel: there the overlap is whatever the
    // disk gives).
    fs.delay_syncs(std::time::Duration::from_millis(2));
    let opts = LogOptions {
        backend: b,
        fs: Arc::new(fs.clone()),
        ..LogOptions::default()
    };
    let (log, _) = Log::open_with(cfg.clone(), opts).expect("open");
    if b == Backend::Pwrite || kernel_has_io_uring() {
        assert_eq!(log.backend(), b);
    }
    let reported = Arc::new(Mutex::new(Vec::<u64>::new()));
    let r = Arc::clone(&reported);
    let gc = Arc::new(GroupCommit::spawn(
        log,
        Box::new(move |z| r.lock().expect("lock").push(z)),
        Box::new(|e| panic!("fatal: {e}")),
    ));
    const N: u64 = 1500;
    let writer = {
        let gc = Arc::clone(&gc);
        std::thread::spawn(move || {
            for z in 1..=N {
                let f = stream_frame(z);
                gc.submit(z, z, f.payload);
                if z % 8 == 0 {
                    std::thread::sleep(std::time::Duration::from_micros(100));
                }
            }
        })
    };
    // Power-loss images taken while the stream runs, each with the highest
    // zxid reported durable before it was taken.
    let mut captures = Vec::new();
    while !writer.is_finished() || captures.len() < 3 {
        let max = reported.lock().expect("lock").last().copied().unwrap_or(0);
        captures.push((max, fs.durable_images()));
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    writer.join().expect("writer");
    let Ok(gc) = Arc::try_unwrap(gc) else {
        panic!("the writer still holds the group commit");
    };
    let log = gc.shutdown();
    assert_eq!(log.durable_zxid(), N);
    drop(log);
    let reported = reported.lock().expect("lock").clone();
    assert!(
        reported.windows(2).all(|w| w[0] < w[1]),
        "durability reports must strictly increase"
    );
    assert_eq!(reported.last().copied(), Some(N));
    if b == Backend::Pwrite {
        assert!(
            fs.overlapped_writes() > 0,
            "no write was issued while a sync was in flight"
        );
    }
    println!(
        "{b}: {} captures, {} reports, {} writes, {} syncs, {} writes overlapped a sync",
        captures.len(),
        reported.len(),
        fs.writes(),
        fs.syncs(),
        fs.overlapped_writes()
    );

    // At most 12 captures, spread over the run, are recovered.
    let step = captures.len().div_ceil(12);
    for (i, (max, images)) in captures.iter().enumerate().step_by(step) {
        let dir = tmp.path().join(format!("crash-{i}"));
        materialize(images, &dir);
        let crashed = LogConfig { dir, ..cfg.clone() };
        let (log, rec) = open(&crashed, IoMode::Buffered, Backend::Pwrite);
        assert!(
            rec.last_zxid >= *max,
            "capture {i}: reported {max} durable, a power loss keeps only {}",
            rec.last_zxid
        );
        let frames = read_all(&log);
        for (k, f) in frames.iter().enumerate() {
            assert_eq!(*f, stream_frame(k as u64 + 1), "capture {i}: frame {k}");
        }
    }
}

on_both_backends!(
    frames_from_many_threads_are_durable_and_reported_in_order,
    stats_count_every_frame_and_batch,
    shutdown_flushes_pending_and_drop_does_too,
    an_error_is_reported_once_and_stops_the_thread,
    purge_through_runs_on_the_wal_thread_between_batches,
    purge_through_is_refused_after_a_fatal_error_and_from_a_callback,
    durable_reports_are_monotonic_and_never_ahead_of_recovery,
);
