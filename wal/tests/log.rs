//! Log behaviour: round trips, rollover, recovery from torn tails, refusal on
//! corruption, truncation and purging.

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use keel_wal::{check_dir, Backend, IoMode, Log, LogConfig, LogOptions, Recovery, WalError};

fn append_sync_reopen_round_trip(b: Backend) {
    for mode in MODES {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = cfg(tmp.path(), 1 << 20);
        let (mut log, rec) = open(&cfg, mode, b);
        assert_eq!(rec, Recovery::default());
        assert_eq!(log.last_zxid(), 0);
        let frames: Vec<_> = (1..=10).map(|z| frame(z, z, z as usize * 13)).collect();
        for f in &frames {
            append(&mut log, f);
        }
        sync(&mut log);
        assert_eq!(log.last_zxid(), 10);
        assert_eq!(read_all(&log), frames);
        drop(log);

        let (mut log, rec) = open(&cfg, mode, b);
        assert_eq!(
            rec,
            Recovery {
                last_zxid: 10,
                frames: 10,
                truncated_bytes: 0,
                segments: 1
            }
        );
        assert_eq!(read_all(&log), frames);
        assert_eq!(log.read_after(5).expect("read"), frames[5..].to_vec());
        assert_eq!(log.read_after(10).expect("read"), vec![]);

        // Appending after a reopen continues the same segment.
        let more: Vec<_> = (11..=14).map(|z| frame(z, z, 5000)).collect();
        let refs: Vec<(u64, u64, &[u8])> = more
            .iter()
            .map(|f| (f.first_zxid, f.last_zxid, f.payload.as_slice()))
            .collect();
        log.append_batch(&refs).expect("batch");
        sync(&mut log);
        drop(log);
        let (log, rec) = open(&cfg, mode, b);
        assert_eq!(rec.frames, 14);
        assert_eq!(rec.segments, 1);
        let all: Vec<_> = frames.iter().chain(&more).cloned().collect();
        assert_eq!(read_all(&log), all);
        assert_eq!(check_dir(&cfg.dir).expect("check"), rec);
    }
}

fn direct_io_is_used_on_this_filesystem_or_falls_back(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (log, _) = open(&cfg(tmp.path(), 1 << 16), IoMode::Direct, b);
    // Either is correct; print which, so the test log says what was exercised.
    println!("io mode: {:?}, backend: {}", log.io_mode(), log.backend());
}

fn rejects_out_of_order_and_second_opener(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1 << 16);
    let (mut log, _) = open(&cfg, IoMode::Direct, b);
    append(&mut log, &frame(5, 7, 10));
    for (f, l) in [(7, 8), (6, 9), (9, 8)] {
        let e = log.append(f, l, b"x").expect_err("out of order");
        assert!(matches!(e, WalError::OutOfOrder { .. }), "{e}");
    }
    // A batch with a bad frame in the middle writes nothing.
    let e = log
        .append_batch(&[(8, 8, b"a"), (8, 9, b"b")])
        .expect_err("bad batch");
    assert!(matches!(e, WalError::OutOfOrder { .. }), "{e}");
    assert_eq!(log.last_zxid(), 7);
    sync(&mut log);

    let e = Log::open(cfg.clone()).expect_err("locked");
    assert!(matches!(e, WalError::Locked { .. }), "{e}");
    let opts = LogOptions {
        backend: b,
        ..LogOptions::default()
    };
    let e = Log::open_with(cfg.clone(), opts).expect_err("locked");
    assert!(matches!(e, WalError::Locked { .. }), "{e}");
    drop(log);
    let (log, rec) = open(&cfg, IoMode::Direct, b);
    assert_eq!(rec.frames, 1);
    assert_eq!(log.last_zxid(), 7);
}

fn rollover_across_segments(b: Backend) {
    for mode in MODES {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = cfg(tmp.path(), 4096);
        let (mut log, _) = open(&cfg, mode, b);
        let mut frames = Vec::new();
        let mut z = 1;
        for i in 0..40u64 {
            // Spans of several zxids, sizes around a quarter segment, and one
            // frame larger than a whole segment.
            let len = if i == 17 {
                10_000
            } else {
                300 + (i as usize * 97) % 900
            };
            let span = i % 3;
            frames.push(frame(z, z + span, len));
            z += span + 1 + i % 2;
        }
        for chunk in frames.chunks(7) {
            let refs: Vec<(u64, u64, &[u8])> = chunk
                .iter()
                .map(|f| (f.first_zxid, f.last_zxid, f.payload.as_slice()))
                .collect();
            log.append_batch(&refs).expect("batch");
            sync(&mut log);
        }
        let segs = segments(&cfg.dir);
        assert!(segs.len() > 5, "only {} segments", segs.len());
        // Each segment is named for the first zxid of its first frame.
        let firsts: Vec<u64> = frames.iter().map(|f| f.first_zxid).collect();
        for s in &segs {
            let name = s.file_name().and_then(|n| n.to_str()).expect("name");
            let hex = name.strip_prefix("log.").expect("prefix");
            assert_eq!(hex.len(), 16);
            let base = u64::from_str_radix(hex, 16).expect("hex");
            assert!(firsts.contains(&base), "{name}");
        }
        assert_eq!(read_all(&log), frames);
        let mid = frames[20].last_zxid;
        assert_eq!(log.read_after(mid).expect("read"), frames[21..].to_vec());
        drop(log);
        let (log, rec) = open(&cfg, mode, b);
        assert_eq!(rec.frames, frames.len());
        assert_eq!(rec.segments, segs.len());
        assert_eq!(rec.last_zxid, frames[frames.len() - 1].last_zxid);
        assert_eq!(read_all(&log), frames);
    }
}

/// Builds a synced log of `n` frames in one segment, returns the frames and
/// the byte offset of each frame.
fn build(
    cfg: &LogConfig,
    mode: IoMode,
    b: Backend,
    lens: &[usize],
) -> (Vec<keel_wal::Frame>, Vec<u64>) {
    let (mut log, _) = open(cfg, mode, b);
    let mut frames = Vec::new();
    let mut offsets = Vec::new();
    let mut off = 0u64;
    for (i, &len) in lens.iter().enumerate() {
        let z = i as u64 * 2 + 1;
        let f = frame(z, z + 1, len);
        append(&mut log, &f);
        offsets.push(off);
        off += (HEADER + len) as u64;
        frames.push(f);
    }
    sync(&mut log);
    (frames, offsets)
}

fn seg_file(cfg: &LogConfig) -> std::path::PathBuf {
    let segs = segments(&cfg.dir);
    assert_eq!(segs.len(), 1);
    segs[0].clone()
}

fn cut_at_every_byte_of_last_frame_recovers_previous_frames(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Not preallocated, so that a cut file stays cut (with preallocation the
    // recovered file is zero-filled back to full size, which is slower here).
    let cfg = LogConfig {
        preallocate: false,
        ..cfg(tmp.path(), 1 << 16)
    };
    let (frames, offsets) = build(&cfg, IoMode::Buffered, b, &[100, 3, 700]);
    let path = seg_file(&cfg);
    let full = fs::read(&path).expect("read");
    let start = offsets[2] as usize;
    let end = start + HEADER + 700;
    assert!(full.len() >= end);
    for cut in start..end {
        fs::write(&path, &full[..cut]).expect("cut");
        let checked = check_dir(&cfg.dir).expect("check");
        let (log, rec) = open(&cfg, IoMode::Buffered, b);
        assert_eq!(rec, checked, "cut at {cut}");
        assert_eq!(rec.frames, 2, "cut at {cut}");
        assert_eq!(rec.last_zxid, frames[1].last_zxid);
        // Discarded: up to the last non-zero byte (header fields hold zeros).
        let dirty = full[start..cut]
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i + 1);
        assert_eq!(rec.truncated_bytes, dirty as u64, "cut at {cut}");
        assert_eq!(read_all(&log), frames[..2].to_vec(), "cut at {cut}");
        drop(log);
    }
    // After recovery the log appends and reopens cleanly.
    let (mut log, _) = open(&cfg, IoMode::Direct, b);
    append(&mut log, &frame(100, 100, 50));
    sync(&mut log);
    drop(log);
    let (log, rec) = open(&cfg, IoMode::Direct, b);
    assert_eq!(rec.truncated_bytes, 0);
    assert_eq!(rec.frames, 3);
    assert_eq!(read_all(&log)[2], frame(100, 100, 50));
}

fn zeroed_and_garbage_tails_are_cut(b: Backend) {
    for mode in MODES {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = cfg(tmp.path(), 1 << 14);
        let (frames, offsets) = build(&cfg, mode, b, &[100, 200, 3000]);
        let path = seg_file(&cfg);
        let full = fs::read(&path).expect("read");
        let start = offsets[2] as usize;
        let end = start + HEADER + 3000;

        // Sectors of the last frame never reached the disk: every 512-byte
        // boundary inside it (the first one can land in the header).
        let first_boundary = (start / 512 + 1) * 512;
        for zero_from in (first_boundary..end).step_by(512) {
            let mut img = full.clone();
            img[zero_from..].fill(0);
            fs::write(&path, &img).expect("write");
            let (log, rec) = open(&cfg, mode, b);
            assert_eq!(rec.frames, 2, "zeroed from {zero_from}");
            assert_eq!(rec.truncated_bytes, (zero_from - start) as u64);
            assert_eq!(read_all(&log), frames[..2].to_vec());
            drop(log);
            // The tear is gone from disk: the file is data then zeros.
            let after = fs::read(&path).expect("read");
            assert!(after[start..].iter().all(|&b| b == 0));
            fs::write(&path, &full).expect("restore");
        }

        // A sector in the middle of the last frame lost, later ones written.
        let mut img = full.clone();
        img[first_boundary + 512..first_boundary + 1024].fill(0);
        fs::write(&path, &img).expect("write");
        let (_, rec) = open(&cfg, mode, b);
        assert_eq!(rec.frames, 2);
        assert_eq!(rec.truncated_bytes, (end - start) as u64);

        // Stray non-zero bytes after the last frame (no frame in them).
        let mut img = full[..end].to_vec();
        img.resize(full.len(), 0);
        img[end + 100..end + 110].fill(0xAB);
        fs::write(&path, &img).expect("write");
        let (log, rec) = open(&cfg, mode, b);
        assert_eq!(rec.frames, 3);
        assert_eq!(rec.truncated_bytes, 110);
        assert_eq!(read_all(&log), frames);
    }
}

fn expect_corrupt(cfg: &LogConfig, file: &Path, offset: u64, what: &str, b: Backend) {
    let e = check_dir(&cfg.dir).expect_err(what);
    assert_corrupt(&e, file, offset, what);
    let opts = LogOptions {
        backend: b,
        ..LogOptions::default()
    };
    let e = Log::open_with(cfg.clone(), opts).expect_err(what);
    assert_corrupt(&e, file, offset, what);
}

fn assert_corrupt(e: &WalError, file: &Path, offset: u64, what: &str) {
    match e {
        WalError::Corrupt {
            file: f, offset: o, ..
        } => {
            assert_eq!(f, file, "{what}: {e}");
            assert_eq!(*o, offset, "{what}: {e}");
        }
        other => panic!("{what}: expected Corrupt, got {other}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("offset {offset}")), "{msg}");
}

fn bit_flip_in_a_frame_is_corruption_naming_file_and_offset(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1 << 14);
    let (_, offsets) = build(&cfg, IoMode::Direct, b, &[100, 200, 300, 50]);
    let path = seg_file(&cfg);
    let full = fs::read(&path).expect("read");
    let fields = [
        ("magic", 0),
        ("version", 4),
        ("flags", 6),
        ("payload_len", 8),
        ("payload_crc", 12),
        ("first_zxid", 16),
        ("last_zxid", 24),
        ("reserved", 32),
        ("header_crc", 36),
        ("payload start", 40),
        ("payload end", 40 + 199),
    ];
    // Middle frame (index 1) and the last frame (index 3): a complete frame
    // with a flipped bit is damage even at the tail.
    for (frame_idx, len) in [(1usize, 200usize), (3, 50)] {
        let base = offsets[frame_idx] as usize;
        for (name, at) in fields {
            let at = at.min(HEADER + len - 1);
            for bit in [0u8, 7] {
                let mut img = full.clone();
                img[base + at] ^= 1 << bit;
                fs::write(&path, &img).expect("write");
                let what = format!("frame {frame_idx} {name} bit {bit}");
                expect_corrupt(&cfg, &path, base as u64, &what, b);
            }
        }
    }
    // Zeroing the middle frame's header is not mistaken for the log's end.
    let mut img = full.clone();
    let base = offsets[1] as usize;
    img[base..base + HEADER].fill(0);
    fs::write(&path, &img).expect("write");
    expect_corrupt(&cfg, &path, base as u64, "zeroed middle header", b);

    // Untouched, it opens.
    fs::write(&path, &full).expect("restore");
    let (_, rec) = open(&cfg, IoMode::Direct, b);
    assert_eq!(rec.frames, 4);
}

fn damage_in_an_older_segment_is_corruption_even_at_its_end(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 2048);
    let (mut log, _) = open(&cfg, IoMode::Direct, b);
    for z in 1..=12 {
        append(&mut log, &frame(z, z, 600));
    }
    sync(&mut log);
    drop(log);
    let segs = segments(&cfg.dir);
    assert!(segs.len() >= 3);
    // Cut the first segment's last frame short, as a tear would.
    let first = &segs[0];
    let bytes = fs::read(first).expect("read");
    // Three 640-byte frames per 2048-byte segment (the file itself may be
    // longer: O_DIRECT pads the last write to a 4 KiB block).
    let last_off = 2 * (HEADER + 600);
    let mut img = bytes.clone();
    let zero_from = (last_off / 512 + 1) * 512;
    img[zero_from..].fill(0);
    fs::write(first, &img).expect("write");
    expect_corrupt(&cfg, first, last_off as u64, "torn older segment", b);
}

fn truncate_after_removes_later_frames_durably(b: Backend) {
    for mode in MODES {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cfg = cfg(tmp.path(), 4096);
        let (mut log, _) = open(&cfg, mode, b);
        let frames: Vec<_> = (1..=30).map(|z| frame(z, z, 500)).collect();
        for f in &frames {
            append(&mut log, f);
        }
        sync(&mut log);
        let before = segments(&cfg.dir).len();
        log.truncate_after(17).expect("truncate");
        assert_eq!(log.last_zxid(), 17);
        assert_eq!(read_all(&log), frames[..17].to_vec());
        assert!(segments(&cfg.dir).len() < before);
        // Nothing to do past the end.
        log.truncate_after(40).expect("noop");
        assert_eq!(log.last_zxid(), 17);
        // New history continues from the cut.
        let new18 = frame(18, 20, 77);
        append(&mut log, &new18);
        sync(&mut log);
        drop(log);

        let (mut log, rec) = open(&cfg, mode, b);
        assert_eq!(rec.last_zxid, 20);
        assert_eq!(rec.truncated_bytes, 0);
        let mut expect = frames[..17].to_vec();
        expect.push(new18.clone());
        assert_eq!(read_all(&log), expect);

        // A frame spanning the cut point cannot be split.
        let e = log.truncate_after(19).expect_err("straddle");
        assert!(
            matches!(
                e,
                WalError::Straddle {
                    first_zxid: 18,
                    last_zxid: 20,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(read_all(&log), expect);

        // Cutting before the first frame empties the log.
        log.truncate_after(0).expect("truncate all");
        assert_eq!(log.last_zxid(), 0);
        assert_eq!(read_all(&log), vec![]);
        assert_eq!(segments(&cfg.dir).len(), 0);
        append(&mut log, &frame(3, 3, 10));
        sync(&mut log);
        drop(log);
        let (log, rec) = open(&cfg, mode, b);
        assert_eq!(rec.frames, 1);
        assert_eq!(read_all(&log), vec![frame(3, 3, 10)]);
    }
}

fn purge_through_deletes_whole_old_segments_only(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 2048);
    let (mut log, _) = open(&cfg, IoMode::Direct, b);
    let frames: Vec<_> = (1..=20).map(|z| frame(z, z, 600)).collect();
    for f in &frames {
        append(&mut log, f);
    }
    sync(&mut log);
    // Three 640-byte frames fit a 2048-byte segment: segments start at 1, 4, 7, ...
    assert_eq!(segments(&cfg.dir).len(), 7);
    assert_eq!(log.purge_through(0).expect("purge"), 0);
    assert_eq!(log.purge_through(5).expect("purge"), 1); // only 1..=3 is all <= 5
    assert_eq!(log.first_zxid(), Some(4));
    assert_eq!(read_all(&log), frames[3..].to_vec());
    // Never the segment being written, even when everything is older.
    assert_eq!(log.purge_through(1000).expect("purge"), 5);
    assert_eq!(segments(&cfg.dir).len(), 1);
    assert_eq!(log.first_zxid(), Some(19));
    assert_eq!(read_all(&log), frames[18..].to_vec());
    append(&mut log, &frame(21, 21, 5));
    sync(&mut log);
    drop(log);
    let (log, rec) = open(&cfg, IoMode::Direct, b);
    assert_eq!(rec.frames, 3);
    assert_eq!(rec.last_zxid, 21);
    assert_eq!(log.first_zxid(), Some(19));
}

fn empty_newest_segment_from_a_crash_at_rollover_is_dropped(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 2048);
    let (mut log, _) = open(&cfg, IoMode::Direct, b);
    for z in 1..=3 {
        append(&mut log, &frame(z, z, 600));
    }
    sync(&mut log);
    drop(log);
    // A preallocated segment for zxid 4 whose first frame never landed, and a
    // half-written preallocation.
    fs::write(cfg.dir.join("log.0000000000000004"), vec![0u8; 2048]).expect("write");
    fs::write(cfg.dir.join("log.0000000000000005.tmp"), vec![0u8; 100]).expect("write");
    let (mut log, rec) = open(&cfg, IoMode::Direct, b);
    assert_eq!(rec.segments, 1);
    assert_eq!(rec.frames, 3);
    assert_eq!(segments(&cfg.dir).len(), 1);
    assert!(!cfg.dir.join("log.0000000000000005.tmp").exists());
    // The next frame may carry another zxid; its segment is named for it.
    append(&mut log, &frame(9, 9, 600));
    sync(&mut log);
    assert!(cfg.dir.join("log.0000000000000009").exists());
}

fn segment_name_must_match_first_frame(b: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1 << 14);
    build(&cfg, IoMode::Direct, b, &[10, 10]);
    let path = seg_file(&cfg);
    let renamed = cfg.dir.join("log.0000000000000002");
    fs::rename(&path, &renamed).expect("rename");
    expect_corrupt(&cfg, &renamed, 0, "misnamed segment", b);
}

fn direct_writes_keep_earlier_frames_in_the_shared_block(b: Backend) {
    // Many tiny frames share 4 KiB blocks; each append rewrites the block's
    // head. Read the raw file and check nothing before the end changed.
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 1 << 16);
    let (mut log, _) = open(&cfg, IoMode::Direct, b);
    let mut frames = Vec::new();
    for z in 1..=300u64 {
        let f = frame(z, z, (z as usize * 37) % 90);
        append(&mut log, &f);
        frames.push(f);
        if z % 7 == 0 {
            sync(&mut log);
        }
    }
    sync(&mut log);
    let path = seg_file(&cfg);
    let raw = fs::read(&path).expect("read");
    let f = fs::File::open(&path).expect("open");
    let mut again = vec![0u8; raw.len()];
    f.read_exact_at(&mut again, 0).expect("read");
    assert_eq!(raw, again);
    assert_eq!(read_all(&log), frames);
    drop(log);
    let (log, rec) = open(&cfg, IoMode::Direct, b);
    assert_eq!(rec.frames, 300);
    assert_eq!(read_all(&log), frames);
}

on_both_backends!(
    append_sync_reopen_round_trip,
    direct_io_is_used_on_this_filesystem_or_falls_back,
    rejects_out_of_order_and_second_opener,
    rollover_across_segments,
    cut_at_every_byte_of_last_frame_recovers_previous_frames,
    zeroed_and_garbage_tails_are_cut,
    bit_flip_in_a_frame_is_corruption_naming_file_and_offset,
    damage_in_an_older_segment_is_corruption_even_at_its_end,
    truncate_after_removes_later_frames_durably,
    purge_through_deletes_whole_old_segments_only,
    empty_newest_segment_from_a_crash_at_rollover_is_dropped,
    segment_name_must_match_first_frame,
    direct_writes_keep_earlier_frames_in_the_shared_block,
);
