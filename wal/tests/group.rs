//! Group commit: concurrent submitters, ordering of durability reports,
//! shutdown flushing, and the fatal path.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use keel_wal::{GroupCommit, IoMode, WalError};

#[test]
fn frames_from_many_threads_are_durable_and_reported_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 64 << 10);
    let (log, _) = open(&cfg, IoMode::Direct);

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
    let (_, rec) = open(&cfg, IoMode::Direct);
    assert_eq!(rec.frames as u64, total);
}

#[test]
fn stats_count_every_frame_and_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(&cfg(tmp.path(), 1 << 20), IoMode::Direct);
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

#[test]
fn shutdown_flushes_pending_and_drop_does_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1 << 20);
    let (log, _) = open(&cfg, IoMode::Direct);
    let gc = GroupCommit::spawn(log, Box::new(|_| {}), Box::new(|e| panic!("fatal: {e}")));
    for z in 1..=20 {
        gc.submit(z, z, payload(z, 40));
    }
    let log = gc.shutdown();
    assert_eq!(log.last_zxid(), 20);

    let gc = GroupCommit::spawn(log, Box::new(|_| {}), Box::new(|e| panic!("fatal: {e}")));
    gc.submit(21, 21, payload(21, 40));
    drop(gc); // joins and syncs; the lock is released with the log
    let (log, rec) = open(&cfg, IoMode::Direct);
    assert_eq!(rec.frames, 21);
    assert_eq!(log.last_zxid(), 21);
}

#[test]
fn an_error_is_reported_once_and_stops_the_thread() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(&cfg(tmp.path(), 1 << 20), IoMode::Direct);
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
