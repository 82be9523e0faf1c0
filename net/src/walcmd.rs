//! `keel wal ...`: operator commands on a write-ahead log directory, for use
//! while the server is stopped.
//!
//! - `keel wal check DIR` scans the log without modifying it and prints each
//!   segment, the frame count, the last zxid and the torn-tail bytes that
//!   start-up would cut, or the corruption (file and byte offset) that makes
//!   start-up refuse, with the repair command that would keep the intact
//!   prefix. Exit status: 0 intact (a torn tail included), 1 corrupt or
//!   unreadable, 2 usage.
//! - `keel wal truncate DIR --after ZXID` removes every frame after ZXID
//!   (decimal or `0x` hex), also from a log start-up refuses, as long as ZXID
//!   is not beyond the damage. Exit status: 0 done, 1 refused or failed,
//!   2 usage.
//!
//! DIR is the log directory itself, or a data directory holding it as `wal/`
//! (Keel's layout) or `log/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use keel_wal::{inspect_dir, intact_prefix, truncate_dir_after, WalError};

/// `keel wal ...`. DIR is the log directory (files `log.<hex zxid>`) or a data directory
/// holding it as wal/ or log/.
#[derive(Debug, PartialEq, Eq, clap::Subcommand)]
pub enum WalCommand {
    /// Scan the write-ahead log in DIR without changing it: segments, frames, last zxid,
    /// torn-tail bytes, or the corruption with file and byte offset (exit 1 if corrupt).
    Check {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Remove every transaction after ZXID from the log, also from a damaged log, as long
    /// as ZXID is not beyond the damage. Only with the server stopped; the removed
    /// transactions must come back from the ensemble.
    Truncate {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The last zxid to keep (decimal or 0x hex).
        #[arg(long, value_name = "ZXID", value_parser = parse_zxid)]
        after: u64,
    },
}

/// Runs a `keel wal` command.
pub fn run(cmd: WalCommand) -> ExitCode {
    match cmd {
        WalCommand::Check { dir } => check(&dir),
        WalCommand::Truncate { dir, after } => truncate(&dir, after),
    }
}

/// A zxid in decimal or `0x` hex.
fn parse_zxid(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse::<u64>(),
    };
    parsed.map_err(|_| format!("{s:?} is not a zxid (decimal, or hex with 0x)"))
}

/// The log directory for DIR: DIR itself if it holds segments (or no known
/// subdirectory), else DIR/wal or DIR/log.
fn log_dir(dir: &Path) -> PathBuf {
    let has_segments = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok).any(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with("log.") && !n.ends_with(".tmp"))
            })
        })
        .unwrap_or(false);
    if !has_segments {
        for sub in ["wal", "log"] {
            let d = dir.join(sub);
            if d.is_dir() {
                return d;
            }
        }
    }
    dir.to_path_buf()
}

fn check(dir: &Path) -> ExitCode {
    let dir = log_dir(dir);
    if !dir.is_dir() {
        eprintln!("keel wal check: {} is not a directory", dir.display());
        return ExitCode::from(1);
    }
    println!("log directory: {}", dir.display());
    match inspect_dir(&dir) {
        Ok(segs) => {
            let frames: usize = segs.iter().map(|s| s.frames).sum();
            let torn: u64 = segs.iter().map(|s| s.torn_bytes).sum();
            let last = segs.iter().rev().find_map(|s| s.zxids.map(|z| z.1));
            for s in &segs {
                let name = s.path.file_name().map(|n| n.to_string_lossy().into_owned());
                let zxids = match s.zxids {
                    Some((a, b)) => format!("zxids {a:#x}..={b:#x}"),
                    None => "no frames".into(),
                };
                println!(
                    "  {}: {} frames, {zxids}, {} data bytes in a {}-byte file{}",
                    name.unwrap_or_default(),
                    s.frames,
                    s.data_bytes,
                    s.file_bytes,
                    if s.torn_bytes > 0 {
                        format!(", torn tail of {} bytes", s.torn_bytes)
                    } else {
                        String::new()
                    }
                );
            }
            println!("segments: {}", segs.len());
            println!("frames: {frames}");
            match last {
                Some(z) => println!("last zxid: {z:#x} ({z})"),
                None => println!("last zxid: none (empty log)"),
            }
            if torn > 0 {
                println!(
                    "torn tail: {torn} bytes after the last intact frame (a write cut short by a \
                     crash; start-up cuts it, no acknowledged write is in it)"
                );
            } else {
                println!("torn tail: 0 bytes");
            }
            println!("result: OK");
            ExitCode::SUCCESS
        }
        Err(e @ WalError::Corrupt { .. }) => {
            println!("result: CORRUPT");
            println!("{e}");
            match intact_prefix(&dir) {
                Ok(p) => {
                    println!(
                        "intact prefix: {} frames, last zxid {:#x} ({})",
                        p.frames, p.last_zxid, p.last_zxid
                    );
                    println!(
                        "to keep that prefix and drop the damage and everything after it on this \
                         server (the ensemble must supply the rest): keel wal truncate {} --after \
                         {:#x}",
                        dir.display(),
                        p.last_zxid
                    );
                }
                Err(e2) => println!("the intact prefix could not be read either: {e2}"),
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("keel wal check: {e}");
            ExitCode::from(1)
        }
    }
}

fn truncate(dir: &Path, after: u64) -> ExitCode {
    let dir = log_dir(dir);
    match truncate_dir_after(&dir, after) {
        Ok(t) => {
            println!(
                "truncated the log in {} after zxid {after:#x}: kept {} frames (last zxid {:#x}), \
                 removed {} intact frames and {} segment files",
                dir.display(),
                t.kept_frames,
                t.last_zxid,
                t.removed_frames,
                t.removed_segments
            );
            if let Some(d) = t.damage_removed {
                println!(
                    "removed the damage in {} at byte offset {} ({})",
                    d.file.display(),
                    d.offset,
                    d.reason
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("keel wal truncate: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_wal::{Log, LogConfig};

    fn check_cmd(dir: &str) -> WalCommand {
        WalCommand::Check { dir: dir.into() }
    }

    fn truncate_cmd(dir: &str, after: u64) -> WalCommand {
        WalCommand::Truncate {
            dir: dir.into(),
            after,
        }
    }

    #[test]
    fn parses_commands_and_zxids() {
        assert_eq!(parse_zxid("42"), Ok(42));
        assert_eq!(parse_zxid("0x10000002a"), Ok(0x1_0000_002a));
        assert_eq!(parse_zxid("0XFF"), Ok(255));
        assert!(parse_zxid("0x").is_err());
        assert!(parse_zxid("-1").is_err());
        assert!(parse_zxid("12a").is_err());
        let parse = |args: &[&str]| {
            #[derive(clap::Parser)]
            struct T {
                #[command(subcommand)]
                c: WalCommand,
            }
            <T as clap::Parser>::try_parse_from(std::iter::once("wal").chain(args.iter().copied()))
                .map(|t| t.c)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            parse(&["check", "/d"]),
            Ok(WalCommand::Check { dir: "/d".into() })
        );
        assert_eq!(
            parse(&["truncate", "/d", "--after", "0x5"]),
            Ok(WalCommand::Truncate {
                dir: "/d".into(),
                after: 5
            })
        );
        assert_eq!(
            parse(&["truncate", "--after=7", "/d"]),
            Ok(WalCommand::Truncate {
                dir: "/d".into(),
                after: 7
            })
        );
        assert!(parse(&["truncate", "/d"]).is_err());
        assert!(parse(&["check"]).is_err());
        assert!(parse(&["check", "a", "b"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn check_and_truncate_a_data_dir() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let wal = tmp.path().join("wal");
        let cfg = LogConfig {
            dir: wal.clone(),
            segment_bytes: 4096,
            preallocate: false,
        };
        let (mut log, _) = Log::open(cfg.clone()).expect("open");
        for z in 1..=20u64 {
            log.append(z, z, &[z as u8 | 1; 300]).expect("append");
        }
        log.sync().expect("sync");
        drop(log);
        let data = tmp.path().to_string_lossy().into_owned();
        assert_eq!(log_dir(tmp.path()), wal);
        assert_eq!(run(check_cmd(&data)), ExitCode::SUCCESS);

        // Damage the second segment's first frame payload.
        let mut segs: Vec<_> = std::fs::read_dir(&wal)
            .expect("ls")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("log."))
            })
            .collect();
        segs.sort();
        let mut img = std::fs::read(&segs[1]).expect("read");
        img[50] ^= 1;
        std::fs::write(&segs[1], &img).expect("write");
        assert_eq!(run(check_cmd(&data)), ExitCode::from(1));
        assert_eq!(run(truncate_cmd(&data, 15)), ExitCode::from(1));
        // 12 frames of 340 bytes fit a 4 KiB segment: the damage is in zxid 13.
        assert_eq!(run(truncate_cmd(&data, 0xc)), ExitCode::SUCCESS);
        assert_eq!(run(check_cmd(&data)), ExitCode::SUCCESS);
        let (log, rec) = Log::open(cfg).expect("open");
        assert_eq!(rec.last_zxid, 12);
        drop(log);
    }
}
