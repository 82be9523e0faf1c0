//! Property: random appends, syncs and operator truncations, then a simulated power loss that
//! damages the newest segment beyond what was synced (the file cut short, or
//! whole sectors never written); recovery must yield a prefix of what was
//! appended that contains every frame synced before the crash.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use keel_wal::{check_dir, Backend, Frame, IoMode, LogConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        gap: u64,
        span: u64,
        len: usize,
    },
    Batch(Vec<(u64, u64, usize)>),
    Sync,
    /// `truncate_after` the last zxid of the frame at this fraction of those appended
    /// (0.0 keeps nothing); it is durable, so everything kept counts as synced.
    Truncate(f64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3u64, 0..4u64, 1..700usize).prop_map(|(gap, span, len)| Op::Append { gap, span, len }),
        2 => prop::collection::vec((0..3u64, 0..4u64, 1..400usize), 1..6).prop_map(Op::Batch),
        2 => Just(Op::Sync),
        1 => (0.0..1.0f64).prop_map(Op::Truncate),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Crash {
    /// The newest segment's file ends at this fraction of its unsynced part.
    Cut(f64),
    /// From this fraction of the unsynced part on, sectors never reached disk.
    ZeroSectors(f64),
    /// Power stayed on: only the process died.
    None,
}

fn crash() -> impl Strategy<Value = Crash> {
    prop_oneof![
        (0.0..1.0f64).prop_map(Crash::Cut),
        (0.0..1.0f64).prop_map(Crash::ZeroSectors),
        Just(Crash::None),
    ]
}

/// Copies the segment files of `from` (the image as of the last sync).
fn snapshot_dir(from: &Path) -> Vec<(String, Vec<u8>)> {
    segments(from)
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            (name, fs::read(&p).unwrap_or_default())
        })
        .collect()
}

fn nonzero_end(b: &[u8]) -> usize {
    b.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1)
}

fn run(
    ops: Vec<Op>,
    crash: Crash,
    segment_bytes: u64,
    preallocate: bool,
    mode: IoMode,
    b: Backend,
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        preallocate,
        ..cfg(tmp.path(), segment_bytes)
    };
    let (mut log, _) = open(&cfg, mode, b);
    let mut appended: Vec<Frame> = Vec::new();
    let mut synced = 0usize;
    let mut synced_image = snapshot_dir(&cfg.dir);
    let mut next = 1u64;
    let mut take = |gap: u64, span: u64, len: usize| {
        let f = frame(next + gap, next + gap + span, len);
        next = f.last_zxid + 1;
        f
    };
    for op in ops {
        match op {
            Op::Append { gap, span, len } => {
                let f = take(gap, span, len);
                append(&mut log, &f);
                appended.push(f);
            }
            Op::Batch(items) => {
                let fs: Vec<Frame> = items.into_iter().map(|(g, s, l)| take(g, s, l)).collect();
                let refs: Vec<(u64, u64, &[u8])> = fs
                    .iter()
                    .map(|f| (f.first_zxid, f.last_zxid, f.payload.as_slice()))
                    .collect();
                log.append_batch(&refs).expect("batch");
                appended.extend(fs);
            }
            Op::Sync => {
                sync(&mut log);
                synced = appended.len();
                synced_image = snapshot_dir(&cfg.dir);
            }
            Op::Truncate(frac) => {
                let keep = (appended.len() as f64 * frac) as usize;
                let zxid = if keep == 0 {
                    0
                } else {
                    appended[keep - 1].last_zxid
                };
                log.truncate_after(zxid)
                    .expect("truncate at a frame boundary");
                appended.truncate(keep);
                assert_eq!(log.last_zxid(), zxid);
                synced = appended.len();
                synced_image = snapshot_dir(&cfg.dir);
            }
        }
    }
    drop(log);

    // Power loss can only touch the newest segment (older ones were synced
    // when the log rolled past them), and only past what its last sync
    // covered. Payload bytes are never zero, so the synced image's last
    // non-zero byte is where its synced data ends.
    let segs = segments(&cfg.dir);
    if let Some(newest) = segs.last() {
        let name = newest
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let synced_end = synced_image
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, b)| nonzero_end(b));
        let bytes = fs::read(newest).expect("read");
        let data_end = nonzero_end(&bytes).max(synced_end);
        let pick = |frac: f64| synced_end + ((data_end - synced_end) as f64 * frac) as usize;
        match crash {
            Crash::Cut(frac) => {
                fs::write(newest, &bytes[..pick(frac)]).expect("cut");
            }
            Crash::ZeroSectors(frac) => {
                let from = pick(frac).next_multiple_of(512).min(bytes.len());
                let mut img = bytes.clone();
                img[from..].fill(0);
                fs::write(newest, &img).expect("zero");
            }
            Crash::None => {}
        }
    }

    let checked = check_dir(&cfg.dir).expect("check after crash");
    let (mut log, rec) = open(&cfg, mode, b);
    assert_eq!(rec, checked);
    let got = read_all(&log);
    assert!(
        got.len() >= synced,
        "lost synced frames: {} < {synced}",
        got.len()
    );
    assert!(got.len() <= appended.len());
    assert_eq!(
        got[..],
        appended[..got.len()],
        "not a prefix of what was appended"
    );
    if matches!(crash, Crash::None) {
        assert_eq!(
            got.len(),
            appended.len(),
            "a process kill lost written frames"
        );
    }
    assert_eq!(rec.frames, got.len());
    assert_eq!(rec.last_zxid, got.last().map_or(0, |f| f.last_zxid));

    // The recovered log is writable and reopens clean.
    let f = frame(next + 1000, next + 1000, 33);
    append(&mut log, &f);
    sync(&mut log);
    drop(log);
    let (log, rec) = open(&cfg, mode, b);
    assert_eq!(rec.truncated_bytes, 0);
    let again = read_all(&log);
    assert_eq!(again.len(), got.len() + 1);
    assert_eq!(again.last(), Some(&f));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn recovery_after_crash_is_a_synced_covering_prefix(
        ops in prop::collection::vec(op(), 0..40),
        crash in crash(),
        segment_bytes in prop_oneof![Just(2048u64), Just(8192u64), Just(1u64 << 20)],
        preallocate in any::<bool>(),
        direct in any::<bool>(),
        uring in any::<bool>(),
    ) {
        let mode = if direct { IoMode::Direct } else { IoMode::Buffered };
        let b = if uring { Backend::IoUring } else { Backend::Pwrite };
        run(ops, crash, segment_bytes, preallocate, mode, b);
    }
}
