//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::path::{Path, PathBuf};

use keel_wal::{Backend, Frame, IoMode, Log, LogConfig, LogOptions, Recovery};

pub const MODES: [IoMode; 2] = [IoMode::Direct, IoMode::Buffered];

/// Generates, for each named test function taking a [`Backend`], one test
/// per backend: `io_uring::name` and `pwrite::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod io_uring {
            $( #[test] fn $name() { super::$name(keel_wal::Backend::IoUring) } )*
        }
        mod pwrite {
            $( #[test] fn $name() { super::$name(keel_wal::Backend::Pwrite) } )*
        }
    };
}

/// Whether this kernel lets this process create an io_uring instance
/// (probed the same way the log does: a small ring).
pub fn kernel_has_io_uring() -> bool {
    io_uring::IoUring::new(8).is_ok()
}

pub fn cfg(dir: &Path, segment_bytes: u64) -> LogConfig {
    LogConfig {
        dir: dir.join("log"),
        segment_bytes,
        preallocate: true,
    }
}

/// Opens with the given mode and backend; checks that io_uring was really
/// used when asked for and the kernel has it, so that the io_uring half of
/// the suite never silently runs on pwrite.
pub fn open(cfg: &LogConfig, mode: IoMode, backend: Backend) -> (Log, Recovery) {
    let opts = LogOptions {
        io_mode: mode,
        backend,
        ..LogOptions::default()
    };
    match Log::open_with(cfg.clone(), opts) {
        Ok(x) => {
            if backend == Backend::Pwrite || kernel_has_io_uring() {
                assert_eq!(x.0.backend(), backend, "backend in use");
            }
            x
        }
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

/// Writes `images` (path → bytes, as from `FaultFs::durable_images`) into
/// `dir` under their file names: the log directory as a power loss would
/// leave it.
pub fn materialize(images: &[(PathBuf, Vec<u8>)], dir: &Path) {
    fs::create_dir_all(dir).expect("create crash dir");
    for (p, bytes) in images {
        let name = p.file_name().expect("file name");
        fs::write(dir.join(name), bytes).expect("write image");
    }
}

/// Frame `z` of the streams the group-commit tests submit.
pub fn stream_frame(z: u64) -> Frame {
    frame(z, z, (z as usize * 37) % 300 + 1)
}
