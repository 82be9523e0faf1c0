//! Operator tools: inspecting a log directory and truncating it on request,
//! including a log that `open` refuses as corrupt.

mod common;

use std::fs;

use common::*;
use keel_wal::{
    inspect_dir, intact_prefix, truncate_dir_after, Backend, IoMode, Log, LogConfig, WalError,
};

/// 30 frames of 500 bytes (zxid z..=z) in 4 KiB segments: 7 frames each.
fn build(cfg: &LogConfig) -> Vec<keel_wal::Frame> {
    let (mut log, _) = open(cfg, IoMode::Direct, Backend::Pwrite);
    let frames: Vec<_> = (1..=30).map(|z| frame(z, z, 500)).collect();
    for f in &frames {
        append(&mut log, f);
    }
    sync(&mut log);
    frames
}

#[test]
fn inspect_reports_every_segment_without_changing_anything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 4096);
    build(&cfg);
    let before: Vec<_> = segments(&cfg.dir)
        .iter()
        .map(|p| fs::read(p).expect("read"))
        .collect();
    let info = inspect_dir(&cfg.dir).expect("inspect");
    assert_eq!(info.len(), 5);
    assert_eq!(info.iter().map(|s| s.frames).sum::<usize>(), 30);
    assert_eq!(info[0].zxids, Some((1, 7)));
    assert_eq!(info[0].base_zxid, 1);
    assert_eq!(info[0].data_bytes, 7 * (HEADER as u64 + 500));
    assert_eq!(info[4].zxids, Some((29, 30)));
    assert!(info.iter().all(|s| s.torn_bytes == 0));
    let after: Vec<_> = segments(&cfg.dir)
        .iter()
        .map(|p| fs::read(p).expect("read"))
        .collect();
    assert_eq!(before, after);
    let p = intact_prefix(&cfg.dir).expect("prefix");
    assert_eq!((p.frames, p.last_zxid, p.damage), (30, 30, None));
}

#[test]
fn truncating_a_healthy_log_is_truncate_after() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 4096);
    let frames = build(&cfg);
    let t = truncate_dir_after(&cfg.dir, 17).expect("truncate");
    assert_eq!((t.kept_frames, t.last_zxid, t.removed_frames), (17, 17, 13));
    assert_eq!(t.removed_segments, 2);
    assert_eq!(t.damage_removed, None);
    let (log, rec) = open(&cfg, IoMode::Direct, Backend::IoUring);
    assert_eq!(rec.last_zxid, 17);
    assert_eq!(read_all(&log), frames[..17].to_vec());
    // Refused while the log is open.
    let e = truncate_dir_after(&cfg.dir, 5).expect_err("locked");
    assert!(matches!(e, WalError::Locked { .. }), "{e}");
}

#[test]
fn a_damaged_log_is_cut_at_the_last_intact_zxid_on_request() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 4096);
    let frames = build(&cfg);
    // Flip a payload bit of frame 10 (the third frame of the second segment).
    let segs = segments(&cfg.dir);
    let off = 2 * (HEADER + 500);
    let mut img = fs::read(&segs[1]).expect("read");
    img[off + HEADER + 7] ^= 0x10;
    fs::write(&segs[1], &img).expect("write");
    let e = Log::open(cfg.clone()).expect_err("corrupt");
    assert!(matches!(e, WalError::Corrupt { .. }), "{e}");
    let e = inspect_dir(&cfg.dir).expect_err("corrupt");
    assert!(
        matches!(e, WalError::Corrupt { offset, .. } if offset == off as u64),
        "{e}"
    );

    let p = intact_prefix(&cfg.dir).expect("prefix");
    assert_eq!((p.frames, p.last_zxid), (9, 9));
    let d = p.damage.expect("damage");
    assert_eq!((d.file.clone(), d.offset), (segs[1].clone(), off as u64));

    // Beyond the damage: refused, naming the last intact zxid; nothing changed.
    let e = truncate_dir_after(&cfg.dir, 20).expect_err("beyond");
    match &e {
        WalError::BeyondDamage {
            last_intact,
            file,
            offset,
            ..
        } => {
            assert_eq!((*last_intact, file, *offset), (9, &segs[1], off as u64));
        }
        other => panic!("expected BeyondDamage, got {other}"),
    }
    assert!(e.to_string().contains("0x9"), "{e}");
    assert_eq!(segments(&cfg.dir).len(), 5);

    let t = truncate_dir_after(&cfg.dir, 9).expect("repair");
    assert_eq!((t.kept_frames, t.last_zxid, t.removed_frames), (9, 9, 0));
    assert_eq!(t.removed_segments, 3);
    assert_eq!(t.damage_removed.map(|d| d.offset), Some(off as u64));

    let (mut log, rec) = open(&cfg, IoMode::Direct, Backend::IoUring);
    assert_eq!((rec.frames, rec.last_zxid, rec.truncated_bytes), (9, 9, 0));
    assert_eq!(read_all(&log), frames[..9].to_vec());
    append(&mut log, &frame(10, 12, 40));
    sync(&mut log);
    drop(log);
    let (_, rec) = open(&cfg, IoMode::Direct, Backend::Pwrite);
    assert_eq!(rec.last_zxid, 12);
}

#[test]
fn a_damaged_log_can_be_cut_before_the_damage_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 4096);
    let frames = build(&cfg);
    let segs = segments(&cfg.dir);
    // A zeroed header in the middle of the fourth segment.
    let mut img = fs::read(&segs[3]).expect("read");
    let off = HEADER + 500;
    img[off..off + HEADER].fill(0);
    fs::write(&segs[3], &img).expect("write");
    assert!(Log::open(cfg.clone()).is_err());
    let t = truncate_dir_after(&cfg.dir, 4).expect("repair");
    assert_eq!((t.kept_frames, t.last_zxid), (4, 4));
    // Frames 5..=22 were intact and are gone; segments 2.. removed.
    assert_eq!(t.removed_frames, 18);
    assert_eq!(t.removed_segments, 4);
    let (log, rec) = open(&cfg, IoMode::Direct, Backend::Pwrite);
    assert_eq!(rec.last_zxid, 4);
    assert_eq!(read_all(&log), frames[..4].to_vec());
}

#[test]
fn a_frame_spanning_the_zxid_is_not_split_on_a_damaged_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = LogConfig {
        preallocate: false,
        ..cfg(tmp.path(), 1 << 16)
    };
    let (mut log, _) = open(&cfg, IoMode::Buffered, Backend::Pwrite);
    append(&mut log, &frame(1, 5, 10));
    append(&mut log, &frame(6, 9, 10));
    sync(&mut log);
    drop(log);
    let seg = &segments(&cfg.dir)[0];
    let mut img = fs::read(seg).expect("read");
    img[HEADER + 10 + 3] ^= 1; // header of the second frame
    fs::write(seg, &img).expect("write");
    let e = truncate_dir_after(&cfg.dir, 3).expect_err("straddle");
    assert!(
        matches!(
            e,
            WalError::Straddle {
                first_zxid: 1,
                last_zxid: 5,
                ..
            }
        ),
        "{e}"
    );
    let t = truncate_dir_after(&cfg.dir, 5).expect("repair");
    assert_eq!((t.kept_frames, t.last_zxid), (1, 5));
    let after = fs::read(seg).expect("read");
    assert!(after[HEADER + 10..].iter().all(|&b| b == 0));
}
