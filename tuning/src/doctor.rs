//! Host checks for `keel doctor`: what this machine and the data directory offer Keel, and
//! what to change when it is not enough.
//!
//! Two layers, kept apart so the judgement can be tested without the host:
//!
//! * **probes** (`probe_*`, [`measure_sync_latency`]) read facts from the host: whether an
//!   io_uring ring can be created, resource limits, `/sys` CPU governors, an `O_DIRECT`
//!   write, `fdatasync` timings and `statfs` of the data directory. They touch nothing but
//!   a scratch file they remove.
//! * **checks** (`check_*`) are pure functions from those facts to a [`Check`]: a name, a
//!   [`Status`], what was found and what to change.
//!
//! [`host_checks`] runs every probe and check in the documented order; [`render_table`]
//! prints the result. The `keel doctor` command (in `keel-net`) adds the runtime driver
//! Keel's own runtime picks and prints the table.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The name of every check [`host_checks`] returns (with a runtime driver given), in order.
pub const CHECK_NAMES: [&str; 10] = [
    "io_uring",
    "runtime driver",
    "locked memory",
    "open files",
    "cpus",
    "cpu governor",
    "O_DIRECT",
    "fdatasync latency",
    "filesystem",
    "free space",
];

/// Where the per-CPU `cpufreq` directories live.
pub const CPU_SYSFS: &str = "/sys/devices/system/cpu";

/// Above this median write+`fdatasync` latency the data dir gets a warning.
pub const SYNC_P50_WARN: Duration = Duration::from_millis(1);
/// Below this open-file limit Keel warns: every client connection is a file descriptor.
pub const NOFILE_WANTED: u64 = 65536;
/// Below this locked-memory limit Keel warns on kernels that charge io_uring rings to it.
pub const MEMLOCK_WANTED: u64 = 8 << 20;
/// Kernels from this version on account io_uring memory to the memory cgroup instead of
/// `RLIMIT_MEMLOCK`.
pub const MEMLOCK_FREE_KERNEL: (u32, u32) = (5, 12);

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Nothing to change.
    Ok,
    /// Keel works, but slower or less safely than it could: the advice says what to change.
    Warn,
    /// Keel cannot run well (or at all) like this.
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub status: Status,
    /// What the host has, in words and numbers.
    pub found: String,
    /// What to change (empty when there is nothing to change).
    pub advice: String,
}

impl Check {
    fn new(
        name: &str,
        status: Status,
        found: impl Into<String>,
        advice: impl Into<String>,
    ) -> Check {
        Check {
            name: name.to_string(),
            status,
            found: found.into(),
            advice: advice.into(),
        }
    }
}

/// The worst status among `checks` (`Ok` for none).
pub fn worst(checks: &[Check]) -> Status {
    let mut w = Status::Ok;
    for c in checks {
        match (w, c.status) {
            (_, Status::Fail) => w = Status::Fail,
            (Status::Ok, Status::Warn) => w = Status::Warn,
            _ => {}
        }
    }
    w
}

// ---------------------------------------------------------------------------------------
// io_uring and the runtime driver

/// What creating an io_uring ring showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UringProbe {
    /// The operations compio's io_uring driver needs that this kernel does not support.
    pub missing_ops: Vec<&'static str>,
    /// How many operations were probed.
    pub probed_ops: usize,
}

/// Creates a small io_uring ring and asks the kernel which of the operations compio's
/// io_uring driver needs it supports (the same probe compio makes to pick its driver).
pub fn probe_io_uring() -> io::Result<UringProbe> {
    use io_uring::opcode::*;
    let ring = io_uring::IoUring::new(2)?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let wanted: [(&'static str, u8); 12] = [
        ("Read", Read::CODE),
        ("Readv", Readv::CODE),
        ("Write", Write::CODE),
        ("Writev", Writev::CODE),
        ("Fsync", Fsync::CODE),
        ("Accept", Accept::CODE),
        ("Connect", Connect::CODE),
        ("Recv", Recv::CODE),
        ("Send", Send::CODE),
        ("RecvMsg", RecvMsg::CODE),
        ("SendMsg", SendMsg::CODE),
        ("PollAdd", PollAdd::CODE),
    ];
    let missing_ops = wanted
        .iter()
        .filter(|(_, code)| !probe.is_supported(*code))
        .map(|(name, _)| *name)
        .collect();
    Ok(UringProbe {
        missing_ops,
        probed_ops: wanted.len(),
    })
}

/// io_uring: available when a ring can be created and every operation the runtime needs is
/// supported. Unavailable is a warning: Keel falls back to epoll and `pwrite`.
pub fn check_io_uring(probe: &io::Result<UringProbe>) -> Check {
    const NAME: &str = "io_uring";
    match probe {
        Ok(p) if p.missing_ops.is_empty() => Check::new(
            NAME,
            Status::Ok,
            format!("available: ring created, all {} operations Keel uses supported", p.probed_ops),
            "",
        ),
        Ok(p) => Check::new(
            NAME,
            Status::Warn,
            format!("ring created, but the kernel lacks {}", p.missing_ops.join(", ")),
            "Keel's network runtime falls back to epoll: run a kernel of 5.19 or later for io_uring",
        ),
        Err(e) => {
            let advice = match e.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    "io_uring is blocked (kernel.io_uring_disabled sysctl, seccomp or a container \
                     profile): allow io_uring_setup/enter/register, or accept the epoll fallback"
                }
                Some(libc::ENOSYS) => "the kernel has no io_uring: run Linux 5.19 or later",
                Some(libc::ENOMEM) => {
                    "not enough locked memory for a ring: raise RLIMIT_MEMLOCK (ulimit -l)"
                }
                _ => "Keel falls back to epoll for the network and pwrite+fdatasync for the log",
            };
            Check::new(NAME, Status::Warn, format!("unavailable: {e}"), advice)
        }
    }
}

/// The driver Keel's runtime (compio) picked on this host, `IoUring` or `Poll`.
pub fn check_driver(driver: &str, uring_ok: bool) -> Check {
    const NAME: &str = "runtime driver";
    let found = format!("compio driver {driver}");
    if driver.eq_ignore_ascii_case("iouring") {
        Check::new(NAME, Status::Ok, found, "")
    } else if driver.starts_with("unavailable") || driver.starts_with("cannot") {
        Check::new(
            NAME,
            Status::Fail,
            driver.to_string(),
            "Keel cannot start its network runtime here: see the io_uring and locked memory rows",
        )
    } else if uring_ok {
        Check::new(
            NAME,
            Status::Warn,
            found,
            "io_uring works but the runtime chose epoll: check the io_uring row for missing ops",
        )
    } else {
        Check::new(
            NAME,
            Status::Warn,
            found,
            "epoll works, at more system calls per request; enable io_uring for lower CPU cost",
        )
    }
}

// ---------------------------------------------------------------------------------------
// Resource limits

/// A soft and a hard resource limit; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

fn limit_text(v: Option<u64>) -> String {
    match v {
        None => "unlimited".into(),
        Some(n) => n.to_string(),
    }
}

fn bytes_text(v: Option<u64>) -> String {
    match v {
        None => "unlimited".into(),
        Some(n) => human_bytes(n),
    }
}

/// `1.5 GiB`, `64 KiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn getrlimit(resource: i32) -> io::Result<Limit> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let rc = unsafe { libc::getrlimit(resource as _, &mut rl) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let conv = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Ok(Limit {
        soft: conv(rl.rlim_cur),
        hard: conv(rl.rlim_max),
    })
}

/// This process's `RLIMIT_MEMLOCK` (bytes).
pub fn probe_memlock() -> io::Result<Limit> {
    getrlimit(libc::RLIMIT_MEMLOCK as i32)
}

/// This process's `RLIMIT_NOFILE`.
pub fn probe_nofile() -> io::Result<Limit> {
    getrlimit(libc::RLIMIT_NOFILE as i32)
}

/// The running kernel's `major.minor`, from `uname`.
pub fn probe_kernel() -> Option<(u32, u32)> {
    // SAFETY: uname fills the struct we own; zeroed is a valid utsname.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    let release: String = u
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8 as char)
        .collect();
    parse_kernel_release(&release)
}

/// `6.8.0-45-generic` → `(6, 8)`.
pub fn parse_kernel_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Locked memory: kernels before 5.12 charge io_uring rings to `RLIMIT_MEMLOCK`, where the
/// old 64 KiB default fits barely one ring.
pub fn check_memlock(limit: &io::Result<Limit>, kernel: Option<(u32, u32)>) -> Check {
    const NAME: &str = "locked memory";
    let l = match limit {
        Ok(l) => *l,
        Err(e) => {
            return Check::new(
                NAME,
                Status::Warn,
                format!("cannot read RLIMIT_MEMLOCK: {e}"),
                "",
            )
        }
    };
    let found = format!(
        "RLIMIT_MEMLOCK soft {} hard {}",
        bytes_text(l.soft),
        bytes_text(l.hard)
    );
    let enough = l.soft.is_none_or(|s| s >= MEMLOCK_WANTED);
    let charged = kernel.is_none_or(|k| k < MEMLOCK_FREE_KERNEL);
    if enough {
        Check::new(NAME, Status::Ok, found, "")
    } else if !charged {
        Check::new(
            NAME,
            Status::Ok,
            found,
            "this kernel does not charge io_uring rings to it; raise it (ulimit -l) only if \
             you move to a kernel older than 5.12",
        )
    } else {
        Check::new(
            NAME,
            Status::Warn,
            found,
            format!(
                "io_uring rings count against it on kernels before 5.12: raise it to at least {} \
                 (ulimit -l unlimited, LimitMEMLOCK=infinity in the systemd unit, or memlock in \
                 /etc/security/limits.conf)",
                human_bytes(MEMLOCK_WANTED)
            ),
        )
    }
}

/// Open files: each client connection, WAL segment and snapshot is a file descriptor.
pub fn check_nofile(limit: &io::Result<Limit>) -> Check {
    const NAME: &str = "open files";
    let l = match limit {
        Ok(l) => *l,
        Err(e) => {
            return Check::new(
                NAME,
                Status::Warn,
                format!("cannot read RLIMIT_NOFILE: {e}"),
                "",
            )
        }
    };
    let found = format!(
        "RLIMIT_NOFILE soft {} hard {}",
        limit_text(l.soft),
        limit_text(l.hard)
    );
    if l.soft.is_none_or(|s| s >= NOFILE_WANTED) {
        return Check::new(NAME, Status::Ok, found, "");
    }
    let how = if l.hard.is_none_or(|h| h >= NOFILE_WANTED) {
        "the hard limit allows it, so `ulimit -n 65536` before starting Keel is enough"
    } else {
        "raise the hard limit too: LimitNOFILE=65536 in the systemd unit, or nofile in \
         /etc/security/limits.conf"
    };
    Check::new(
        NAME,
        Status::Warn,
        found,
        format!(
            "every client connection is a file: below {NOFILE_WANTED} a busy server refuses \
             connections; {how}"
        ),
    )
}

// ---------------------------------------------------------------------------------------
// CPUs

/// CPUs online on the host (`sysconf(_SC_NPROCESSORS_ONLN)`), at least 1.
pub fn probe_online_cpus() -> usize {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 {
        1
    } else {
        n as usize
    }
}

/// CPU count: Keel runs one network core per CPU but one, plus its engine and log threads.
pub fn check_cpus(available: usize, online: usize) -> Check {
    const NAME: &str = "cpus";
    let net = available.saturating_sub(1).max(1);
    let found = format!(
        "{available} usable by this process ({online} online): {net} network core(s) by default"
    );
    if available >= 2 {
        Check::new(NAME, Status::Ok, found, "")
    } else {
        Check::new(
            NAME,
            Status::Warn,
            found,
            "with one CPU the network, engine and log threads share it: give Keel at least 2 \
             CPUs (check the cgroup quota and taskset/affinity mask)",
        )
    }
}

/// The `scaling_governor` of every CPU under `root` (normally [`CPU_SYSFS`]) that exposes
/// one; empty when none does (typical in a VM or container).
pub fn probe_governors(root: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut cpus: Vec<(u32, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let idx = name.strip_prefix("cpu")?.parse::<u32>().ok()?;
            Some((idx, e.path()))
        })
        .collect();
    cpus.sort();
    cpus.into_iter()
        .filter_map(|(_, p)| std::fs::read_to_string(p.join("cpufreq/scaling_governor")).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Frequency governor: anything but `performance` adds wake-up and ramp-up latency.
pub fn check_governor(governors: &[String]) -> Check {
    const NAME: &str = "cpu governor";
    if governors.is_empty() {
        return Check::new(
            NAME,
            Status::Ok,
            "not exposed (normal in a VM or container: the hypervisor decides)",
            "",
        );
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for g in governors {
        match counts.iter_mut().find(|(n, _)| n == g) {
            Some((_, c)) => *c += 1,
            None => counts.push((g.clone(), 1)),
        }
    }
    let found = counts
        .iter()
        .map(|(g, c)| format!("{g} on {c} of {} CPUs", governors.len()))
        .collect::<Vec<_>>()
        .join(", ");
    if counts.len() == 1 && counts[0].0 == "performance" {
        Check::new(NAME, Status::Ok, found, "")
    } else {
        Check::new(
            NAME,
            Status::Warn,
            found,
            "CPUs that clock down between requests add latency: `cpupower frequency-set -g \
             performance` (or write performance to \
             /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor)",
        )
    }
}

// ---------------------------------------------------------------------------------------
// The data directory

/// A scratch file in the data dir, removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new(dir: &Path, what: &str) -> Scratch {
        Scratch {
            path: dir.join(format!(".keel-doctor-{}-{what}", std::process::id())),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A 4 KiB block aligned to 4 KiB, as `O_DIRECT` needs, filled with `fill`.
fn aligned_block(storage: &mut Vec<u8>, fill: u8) -> &[u8] {
    storage.clear();
    storage.resize(8192, fill);
    let off = storage.as_ptr().align_offset(4096).min(4096);
    &storage[off..off + 4096]
}

/// Opens a scratch file in `dir` with `O_DIRECT` and writes one aligned 4 KiB block.
/// `EINVAL` means the filesystem does not support `O_DIRECT`.
pub fn probe_o_direct(dir: &Path) -> io::Result<()> {
    let scratch = Scratch::new(dir, "direct");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&scratch.path)?;
    let mut storage = Vec::new();
    let block = aligned_block(&mut storage, 0x5a);
    let n = file.write_at(block, 0)?;
    if n != block.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short O_DIRECT write: {n} of {} bytes", block.len()),
        ));
    }
    file.sync_data()
}

/// O_DIRECT: Keel's log writes segments with it (no page-cache copy); without it the log
/// falls back to buffered writes, which work but cost a copy and cache pollution.
pub fn check_o_direct(result: &io::Result<()>) -> Check {
    const NAME: &str = "O_DIRECT";
    match result {
        Ok(()) => Check::new(NAME, Status::Ok, "4 KiB aligned write works", ""),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Check::new(
            NAME,
            Status::Warn,
            format!("not supported by this filesystem ({e})"),
            "Keel's log falls back to buffered writes + fdatasync; for the direct path put the \
             data dir on ext4 or xfs",
        ),
        Err(e) => Check::new(
            NAME,
            Status::Fail,
            format!("cannot write in the data dir: {e}"),
            "Keel must be able to create and write files in its data dir: fix its permissions \
             or choose another --data-dir",
        ),
    }
}

/// Times `iterations` rounds of "write 4 KiB at the next offset, then `fdatasync`" on a
/// scratch file in `dir` that is written in full (and synced) first, the way Keel's log
/// overwrites a preallocated segment. Stops early once `budget` has passed (at least 10
/// rounds are kept).
pub fn measure_sync_latency(
    dir: &Path,
    iterations: usize,
    budget: Duration,
) -> io::Result<Vec<Duration>> {
    let scratch = Scratch::new(dir, "sync");
    let file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&scratch.path)?;
    let iterations = iterations.max(1);
    let zeros = vec![0u8; 4096];
    for i in 0..iterations {
        file.write_all_at(&zeros, (i * 4096) as u64)?;
    }
    file.sync_all()?;
    let block = vec![0xa5u8; 4096];
    let started = Instant::now();
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations {
        let t = Instant::now();
        file.write_all_at(&block, (i * 4096) as u64)?;
        file.sync_data()?;
        samples.push(t.elapsed());
        if samples.len() >= 10 && started.elapsed() > budget {
            break;
        }
    }
    Ok(samples)
}

/// The `q` quantile (0..=1) of sorted samples, nearest rank.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// fdatasync latency: every write Keel acknowledges waits for one; the median bounds a
/// single session's write rate and the p99 its tail.
pub fn check_sync_latency(samples: &io::Result<Vec<Duration>>) -> Check {
    const NAME: &str = "fdatasync latency";
    let mut s = match samples {
        Ok(s) if !s.is_empty() => s.clone(),
        Ok(_) => return Check::new(NAME, Status::Fail, "no samples", ""),
        Err(e) => {
            return Check::new(
                NAME,
                Status::Fail,
                format!("write+fdatasync failed: {e}"),
                "Keel cannot make writes durable in this data dir: check the device and \
                 permissions, or choose another --data-dir",
            )
        }
    };
    s.sort();
    let (p50, p99, max) = (percentile(&s, 0.5), percentile(&s, 0.99), s[s.len() - 1]);
    let found = format!(
        "4 KiB write+fdatasync p50 {} p99 {} max {} ({} rounds)",
        ms(p50),
        ms(p99),
        ms(max),
        s.len()
    );
    if p50 > SYNC_P50_WARN {
        Check::new(
            NAME,
            Status::Warn,
            found,
            format!(
                "every acknowledged write waits for one fdatasync: at p50 {} one session tops \
                 out near {:.0} writes/s. Use an SSD/NVMe with power-loss protection for the \
                 data dir (dataLogDir), and keep other fsync-heavy work off it",
                ms(p50),
                1.0 / p50.as_secs_f64()
            ),
        )
    } else if p50 < Duration::from_micros(20) {
        Check::new(
            NAME,
            Status::Ok,
            found,
            "suspiciously fast for stable storage: make sure the device really flushes \
             (a RAM disk or a write cache without power-loss protection is not durable)",
        )
    } else {
        Check::new(NAME, Status::Ok, found, "")
    }
}

/// What `statfs` says about the data dir's filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsInfo {
    /// `f_type`, the filesystem's magic number.
    pub magic: u64,
    /// Bytes an unprivileged process can still allocate.
    pub avail_bytes: u64,
    pub total_bytes: u64,
}

/// `statfs(2)` of `dir`.
pub fn probe_statfs(dir: &Path) -> io::Result<FsInfo> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path has a NUL byte"))?;
    // SAFETY: a zeroed statfs is valid; statfs fills it for the NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let bsize = st.f_bsize as u64;
    Ok(FsInfo {
        magic: (st.f_type as u64) & 0xffff_ffff,
        avail_bytes: (st.f_bavail as u64).saturating_mul(bsize),
        total_bytes: (st.f_blocks as u64).saturating_mul(bsize),
    })
}

/// The name of a filesystem from its `statfs` magic number.
pub fn fs_type_name(magic: u64) -> Option<&'static str> {
    Some(match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0x794c_7630 => "overlay",
        0x2fc1_2fc1 => "zfs",
        0xF2F5_2010 => "f2fs",
        0x6969 => "nfs",
        0xFF53_4D42 => "cifs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        0x7366_6673 => "squashfs",
        0x4d44 => "vfat",
        0x5346_544e => "ntfs",
        0xCA45_1A4E => "bcachefs",
        _ => return None,
    })
}

/// Filesystem type: ext4 and xfs are what Keel is tested on; memory and overlay
/// filesystems lose data or run slowly.
pub fn check_filesystem(info: &io::Result<FsInfo>) -> Check {
    const NAME: &str = "filesystem";
    let info = match info {
        Ok(i) => i,
        Err(e) => return Check::new(NAME, Status::Warn, format!("statfs failed: {e}"), ""),
    };
    let name = fs_type_name(info.magic);
    let found = match name {
        Some(n) => n.to_string(),
        None => format!("unknown (magic {:#x})", info.magic),
    };
    let (status, advice) = match name {
        Some("ext4" | "xfs") => (Status::Ok, ""),
        Some("tmpfs" | "ramfs") => (
            Status::Warn,
            "memory-backed: everything is lost on reboot, so fdatasync promises nothing. Fine \
             for tests; for real data use a disk filesystem (ext4 or xfs)",
        ),
        Some("overlay") => (
            Status::Warn,
            "a container's copy-on-write layer: slow, and gone with the container. Mount a \
             volume (ext4 or xfs) at the data dir",
        ),
        Some("btrfs" | "zfs" | "bcachefs") => (
            Status::Ok,
            "copy-on-write: fdatasync costs more than on ext4/xfs; consider nodatacow \
             (chattr +C on the dir) or ext4/xfs for the log",
        ),
        Some("nfs" | "cifs" | "fuse" | "9p") => (
            Status::Warn,
            "a network or userspace filesystem: fsync semantics and latency vary; use a local \
             ext4 or xfs filesystem",
        ),
        _ => (Status::Ok, ""),
    };
    Check::new(NAME, status, found, advice)
}

/// Free space: the log preallocates whole segments, and a snapshot needs room next to the
/// previous one. Below two segments is a failure, below 1 GiB or 5 % a warning.
pub fn check_free_space(info: &io::Result<FsInfo>, segment_bytes: u64) -> Check {
    const NAME: &str = "free space";
    let info = match info {
        Ok(i) => i,
        Err(e) => return Check::new(NAME, Status::Warn, format!("statfs failed: {e}"), ""),
    };
    let pct = if info.total_bytes > 0 {
        info.avail_bytes as f64 * 100.0 / info.total_bytes as f64
    } else {
        0.0
    };
    let found = format!(
        "{} free of {} ({pct:.0}%)",
        human_bytes(info.avail_bytes),
        human_bytes(info.total_bytes)
    );
    if info.avail_bytes < segment_bytes.saturating_mul(2) {
        Check::new(
            NAME,
            Status::Fail,
            found,
            format!(
                "the log needs room for at least two {} segments: free space or choose another \
                 --data-dir",
                human_bytes(segment_bytes)
            ),
        )
    } else if info.avail_bytes < (1 << 30) || pct < 5.0 {
        Check::new(
            NAME,
            Status::Warn,
            found,
            "log segments and snapshots grow with the data: keep a few GiB free (a full disk \
             stops every write)",
        )
    } else {
        Check::new(NAME, Status::Ok, found, "")
    }
}

// ---------------------------------------------------------------------------------------
// All together

/// Runs every probe and check, in [`CHECK_NAMES`] order. `driver` is the driver Keel's
/// runtime picked (`IoUring`, `Poll`, or why none could start); `None` leaves that row out.
/// `data_dir` must exist.
pub fn host_checks(data_dir: &Path, driver: Option<&str>) -> Vec<Check> {
    let knobs = crate::Knobs::default();
    let uring = probe_io_uring();
    let uring_ok = matches!(&uring, Ok(p) if p.missing_ops.is_empty());
    let mut out = vec![check_io_uring(&uring)];
    if let Some(d) = driver {
        out.push(check_driver(d, uring_ok));
    }
    out.push(check_memlock(&probe_memlock(), probe_kernel()));
    out.push(check_nofile(&probe_nofile()));
    out.push(check_cpus(crate::available_cores(), probe_online_cpus()));
    out.push(check_governor(&probe_governors(Path::new(CPU_SYSFS))));
    out.push(check_o_direct(&probe_o_direct(data_dir)));
    out.push(check_sync_latency(&measure_sync_latency(
        data_dir,
        200,
        Duration::from_secs(10),
    )));
    let fs = probe_statfs(data_dir);
    out.push(check_filesystem(&fs));
    out.push(check_free_space(&fs, knobs.wal_segment_bytes));
    out
}

/// A table: one line per check (name, status, what was found), and under it, indented,
/// the advice when there is any.
pub fn render_table(checks: &[Check]) -> String {
    let w = checks
        .iter()
        .map(|c| c.name.len())
        .chain(std::iter::once("CHECK".len()))
        .max()
        .unwrap_or(5);
    let mut s = format!("{:<w$}  {:<6}  FOUND\n", "CHECK", "STATUS");
    for c in checks {
        s.push_str(&format!(
            "{:<w$}  {:<6}  {}\n",
            c.name,
            c.status.label(),
            c.found
        ));
        if !c.advice.is_empty() {
            s.push_str(&format!("{:<w$}  {:<6}  -> {}\n", "", "", c.advice));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(us: u64) -> Duration {
        Duration::from_micros(us)
    }

    #[test]
    fn io_uring_outcomes() {
        let ok = check_io_uring(&Ok(UringProbe {
            missing_ops: vec![],
            probed_ops: 12,
        }));
        assert_eq!(ok.status, Status::Ok);
        let partial = check_io_uring(&Ok(UringProbe {
            missing_ops: vec!["SendMsg"],
            probed_ops: 12,
        }));
        assert_eq!(partial.status, Status::Warn);
        assert!(partial.found.contains("SendMsg"));
        let denied = check_io_uring(&Err(io::Error::from_raw_os_error(libc::EPERM)));
        assert_eq!(denied.status, Status::Warn);
        assert!(
            denied.advice.contains("io_uring_disabled"),
            "{}",
            denied.advice
        );
        assert_eq!(check_driver("IoUring", true).status, Status::Ok);
        assert_eq!(check_driver("Poll", false).status, Status::Warn);
        assert_eq!(
            check_driver("unavailable: EMFILE", false).status,
            Status::Fail
        );
    }

    #[test]
    fn memlock_depends_on_kernel() {
        let low = Ok(Limit {
            soft: Some(64 << 10),
            hard: Some(64 << 10),
        });
        assert_eq!(check_memlock(&low, Some((5, 4))).status, Status::Warn);
        assert_eq!(check_memlock(&low, Some((6, 8))).status, Status::Ok);
        assert_eq!(check_memlock(&low, None).status, Status::Warn);
        let unl = Ok(Limit {
            soft: None,
            hard: None,
        });
        let c = check_memlock(&unl, Some((5, 4)));
        assert_eq!(c.status, Status::Ok);
        assert!(c.found.contains("unlimited"));
        assert_eq!(parse_kernel_release("6.8.0-45-generic"), Some((6, 8)));
        assert_eq!(parse_kernel_release("5.12"), Some((5, 12)));
        assert_eq!(parse_kernel_release("x"), None);
    }

    #[test]
    fn nofile_threshold() {
        let c = check_nofile(&Ok(Limit {
            soft: Some(1024),
            hard: Some(1 << 20),
        }));
        assert_eq!(c.status, Status::Warn);
        assert!(c.advice.contains("ulimit -n"));
        let c = check_nofile(&Ok(Limit {
            soft: Some(1024),
            hard: Some(4096),
        }));
        assert!(c.advice.contains("LimitNOFILE"));
        assert_eq!(
            check_nofile(&Ok(Limit {
                soft: Some(65536),
                hard: None
            }))
            .status,
            Status::Ok
        );
    }

    #[test]
    fn cpus_and_governors() {
        assert_eq!(check_cpus(1, 1).status, Status::Warn);
        let c = check_cpus(8, 16);
        assert_eq!(c.status, Status::Ok);
        assert!(c.found.contains("7 network core"));
        assert_eq!(check_governor(&[]).status, Status::Ok);
        assert!(check_governor(&[]).found.contains("not exposed"));
        let perf = vec!["performance".to_string(); 4];
        assert_eq!(check_governor(&perf).status, Status::Ok);
        let mixed = vec!["performance".to_string(), "powersave".to_string()];
        let c = check_governor(&mixed);
        assert_eq!(c.status, Status::Warn);
        assert!(c.found.contains("powersave on 1 of 2"), "{}", c.found);
    }

    #[test]
    fn governors_are_read_from_sysfs_layout() {
        let root = tempfile::tempdir().expect("tempdir");
        for (cpu, gov) in [("cpu0", "performance\n"), ("cpu1", "schedutil\n")] {
            let dir = root.path().join(cpu).join("cpufreq");
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join("scaling_governor"), gov).expect("write");
        }
        std::fs::create_dir_all(root.path().join("cpuidle")).expect("mkdir");
        std::fs::create_dir_all(root.path().join("cpu2")).expect("mkdir"); // no cpufreq
        assert_eq!(
            probe_governors(root.path()),
            vec!["performance", "schedutil"]
        );
        assert!(probe_governors(&root.path().join("missing")).is_empty());
    }

    #[test]
    fn o_direct_outcomes() {
        assert_eq!(check_o_direct(&Ok(())).status, Status::Ok);
        let c = check_o_direct(&Err(io::Error::from_raw_os_error(libc::EINVAL)));
        assert_eq!(c.status, Status::Warn);
        assert!(c.advice.contains("falls back"));
        assert_eq!(
            check_o_direct(&Err(io::Error::from_raw_os_error(libc::EACCES))).status,
            Status::Fail
        );
    }

    #[test]
    fn percentiles_nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(d).collect();
        assert_eq!(percentile(&s, 0.5), d(50));
        assert_eq!(percentile(&s, 0.99), d(99));
        assert_eq!(percentile(&s, 1.0), d(100));
        assert_eq!(percentile(&s, 0.0), d(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn sync_latency_thresholds() {
        let slow: Vec<Duration> = (0..200).map(|i| d(1500 + i)).collect();
        let c = check_sync_latency(&Ok(slow));
        assert_eq!(c.status, Status::Warn);
        assert!(c.found.contains("p50 1.599 ms"), "{}", c.found);
        assert!(c.advice.contains("writes/s"));
        let fast: Vec<Duration> = (0..200).map(|i| d(300 + i)).collect();
        let c = check_sync_latency(&Ok(fast));
        assert_eq!(c.status, Status::Ok);
        assert!(c.advice.is_empty());
        let ram: Vec<Duration> = vec![d(2); 50];
        assert!(check_sync_latency(&Ok(ram)).advice.contains("suspiciously"));
        assert_eq!(check_sync_latency(&Ok(vec![])).status, Status::Fail);
        assert_eq!(
            check_sync_latency(&Err(io::Error::from_raw_os_error(libc::EIO))).status,
            Status::Fail
        );
    }

    #[test]
    fn filesystems() {
        assert_eq!(fs_type_name(0xEF53), Some("ext4"));
        assert_eq!(fs_type_name(0x5846_5342), Some("xfs"));
        assert_eq!(fs_type_name(0x9123_683E), Some("btrfs"));
        assert_eq!(fs_type_name(1), None);
        let fs = |magic| {
            Ok(FsInfo {
                magic,
                avail_bytes: 100 << 30,
                total_bytes: 200 << 30,
            })
        };
        assert_eq!(check_filesystem(&fs(0xEF53)).status, Status::Ok);
        assert_eq!(check_filesystem(&fs(0x0102_1994)).status, Status::Warn);
        assert!(check_filesystem(&fs(0x0102_1994))
            .advice
            .contains("lost on reboot"));
        assert_eq!(check_filesystem(&fs(0x794c_7630)).status, Status::Warn);
        assert!(check_filesystem(&fs(7)).found.contains("0x7"));
    }

    #[test]
    fn free_space_thresholds() {
        let seg = 64 << 20;
        let fs = |avail: u64, total: u64| {
            Ok(FsInfo {
                magic: 0xEF53,
                avail_bytes: avail,
                total_bytes: total,
            })
        };
        assert_eq!(
            check_free_space(&fs(100 << 20, 1 << 40), seg).status,
            Status::Fail
        );
        assert_eq!(
            check_free_space(&fs(512 << 20, 1 << 40), seg).status,
            Status::Warn
        );
        assert_eq!(
            check_free_space(&fs(20 << 30, 1 << 40), seg).status,
            Status::Warn
        ); // < 5 %
        let ok = check_free_space(&fs(100 << 30, 200 << 30), seg);
        assert_eq!(ok.status, Status::Ok);
        assert_eq!(ok.found, "100 GiB free of 200 GiB (50%)");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }

    #[test]
    fn worst_and_table() {
        let checks = vec![
            Check::new("a", Status::Ok, "fine", ""),
            Check::new("longer name", Status::Warn, "meh", "do this"),
        ];
        assert_eq!(worst(&checks), Status::Warn);
        assert_eq!(worst(&[]), Status::Ok);
        let t = render_table(&checks);
        assert!(t.starts_with("CHECK"));
        assert!(t.contains("longer name  WARN    meh\n"), "{t}");
        assert!(t.contains("-> do this"));
    }

    #[test]
    fn host_probes_run_on_a_temp_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let checks = host_checks(dir.path(), Some("IoUring"));
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, CHECK_NAMES);
        // The scratch files are gone.
        assert_eq!(std::fs::read_dir(dir.path()).expect("read_dir").count(), 0);
        let sync = measure_sync_latency(dir.path(), 5, Duration::from_secs(5)).expect("sync");
        assert_eq!(sync.len(), 5);
    }
}
