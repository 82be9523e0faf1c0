//! What the servers spent during a measured window: the CPU time and the context
//! switches of every server process (all of an ensemble's members together), read from
//! `/proc`, so a comparison can say what each operation cost and not only how many
//! there were.
//!
//! CPU time is `utime + stime` of `/proc/PID/stat` (every thread of the process, in
//! clock ticks of 10 ms: the window should be seconds long). Context switches are the
//! sum over `/proc/PID/task/*/status` of `voluntary_ctxt_switches` (a thread blocked:
//! waiting for work, a lock, the disk) and `nonvoluntary_ctxt_switches` (preempted);
//! threads that exit inside the window take their switches with them, which neither
//! server does on its hot path.

use std::fs;
use std::time::Duration;

/// Linux's `USER_HZ`: the unit of the CPU times in `/proc/PID/stat` on every
/// architecture Keel runs on.
const TICKS_PER_SEC: u64 = 100;

/// CPU time and context switches of a set of processes, at one moment or over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time.
    pub cpu: Duration,
    pub voluntary: u64,
    pub involuntary: u64,
}

impl Usage {
    /// The processes' totals now; `None` when one of them cannot be read (gone).
    pub fn of(pids: &[u32]) -> Option<Usage> {
        let mut u = Usage::default();
        for &pid in pids {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            u.cpu += cpu_of_stat(&stat)?;
            let tasks = fs::read_dir(format!("/proc/{pid}/task")).ok()?;
            for t in tasks.flatten() {
                // A thread that exits between the listing and the read is skipped.
                if let Ok(status) = fs::read_to_string(t.path().join("status")) {
                    let (v, n) = switches_of_status(&status);
                    u.voluntary += v;
                    u.involuntary += n;
                }
            }
        }
        Some(u)
    }

    /// What was spent from `before` to `self`.
    pub fn since(&self, before: &Usage) -> Usage {
        Usage {
            cpu: self.cpu.saturating_sub(before.cpu),
            voluntary: self.voluntary.saturating_sub(before.voluntary),
            involuntary: self.involuntary.saturating_sub(before.involuntary),
        }
    }

    pub fn switches(&self) -> u64 {
        self.voluntary + self.involuntary
    }
}

/// `utime + stime` from one `/proc/PID/stat` line. The command name (field 2) is in
/// parentheses and may hold spaces or parentheses itself, so fields are counted from
/// the last `)`.
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    // After the name: state (3), ppid, pgrp, session, tty_nr, tpgid, flags, minflt,
    // cminflt, majflt, cmajflt, then utime (14) and stime (15).
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SEC,
    ))
}

/// (voluntary, nonvoluntary) context switches from one `/proc/.../status`.
fn switches_of_status(status: &str) -> (u64, u64) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        field("voluntary_ctxt_switches:"),
        field("nonvoluntary_ctxt_switches:"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_time_past_a_name_with_spaces_and_parentheses() {
        let line = "4242 (java (main) x) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 30";
        assert_eq!(cpu_of_stat(line), Some(Duration::from_millis(3000)));
        assert_eq!(cpu_of_stat("garbage"), None);
    }

    #[test]
    fn reads_both_kinds_of_switch() {
        let s = "Name:\tkeel\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(switches_of_status(s), (120, 7));
    }

    #[test]
    fn this_process_is_measurable_and_burns_cpu_when_busy() {
        let me = std::process::id();
        let before = Usage::of(&[me]).expect("our own /proc entry");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let spent = Usage::of(&[me]).unwrap().since(&before);
        assert!(spent.cpu >= Duration::from_millis(50), "{spent:?}");
        assert_eq!(Usage::of(&[u32::MAX]), None);
    }
}
