//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::{Path, PathBuf};

use keel_wal::{Frame, IoMode, Log, LogConfig, Recovery};

pub const MODES: [IoMode; 2] = [IoMode::Direct, IoMode::Buffered];

pub fn cfg(dir: &Path, segment_bytes: u64) -> LogConfig {
    LogConfig {
        dir: dir.join("log"),
        segment_bytes,
        preallocate: true,
    }
}

pub fn open(cfg: &LogConfig, mode: IoMode) -> (Log, Recovery) {
    match Log::open_with_mode(cfg.clone(), mode) {
        Ok(x) => x,
        Err(e) => panic!("open {}: {e}", cfg.dir.display()),
    }
}

/// Deterministic payload for zxid `z`, `len` bytes, never containing a zero
/// byte (so that "where the data ends" is visible in the file).
pub fn payload(z: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((z as usize * 31 + i * 7) % 255 + 1) as u8)
        .collect()
}

pub fn frame(first: u64, last: u64, len: usize) -> Frame {
    Frame {
        first_zxid: first,
        last_zxid: last,
        payload: payload(first, len),
    }
}

pub fn append(log: &mut Log, f: &Frame) {
    if let Err(e) = log.append(f.first_zxid, f.last_zxid, &f.payload) {
        panic!("append {}..{}: {e}", f.first_zxid, f.last_zxid);
    }
}

pub fn sync(log: &mut Log) {
    if let Err(e) = log.sync() {
        panic!("sync: {e}");
    }
}

pub fn read_all(log: &Log) -> Vec<Frame> {
    match log.read_after(0) {
        Ok(v) => v,
        Err(e) => panic!("read_after: {e}"),
    }
}

/// Segment files of a log directory, oldest first.
pub fn segments(log_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(log_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("log.") && !n.ends_with(".tmp"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Frame header length on disk (see the crate docs).
pub const HEADER: usize = 40;
