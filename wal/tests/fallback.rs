//! Backend choice at open: where the kernel refuses io_uring the log falls
//! back to pwrite + fdatasync, says so, and works. Each case runs in a child
//! process (this test binary again, one test selected) because a seccomp
//! filter or a dropped privilege cannot be undone.

mod common;

use std::process::Command;
use std::sync::{Arc, Mutex};

use common::*;
use keel_wal::{Backend, GroupCommit, IoMode, Log, LogOptions};

/// Which child case this process is, if it is a child.
const CHILD_ENV: &str = "KEEL_WAL_FALLBACK_CHILD";

/// Runs the test named `name` of this binary in a child with `CHILD_ENV` set
/// to `case`; the child's output must end with its success line.
fn run_child(name: &str, case: &str) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .output()
        .expect("spawn child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {case} failed:\n{text}");
    assert!(
        text.contains("CHILD OK"),
        "child {case} did not run:\n{text}"
    );
    text
}

/// Opens a log with io_uring wanted, runs frames through group commit,
/// reopens, and returns the backend that was chosen.
fn exercise_log() -> Backend {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = cfg(tmp.path(), 8 << 10);
    let opts = LogOptions {
        backend: Backend::IoUring,
        io_mode: IoMode::Direct,
        ..LogOptions::default()
    };
    let (log, _) = Log::open_with(cfg.clone(), opts).expect("open");
    let backend = log.backend();
    let reported = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&reported);
    let gc = GroupCommit::spawn(
        log,
        Box::new(move |z| r.lock().expect("lock").push(z)),
        Box::new(|e| panic!("fatal: {e}")),
    );
    for z in 1..=200 {
        gc.submit(z, z, stream_frame(z).payload);
    }
    let log = gc.shutdown();
    assert_eq!(log.durable_zxid(), 200);
    drop(log);
    let (log, rec) = open(&cfg, IoMode::Direct, Backend::Pwrite);
    assert_eq!(rec.last_zxid, 200);
    let frames = read_all(&log);
    assert_eq!(frames.len(), 200);
    assert!(frames
        .iter()
        .enumerate()
        .all(|(i, f)| *f == stream_frame(i as u64 + 1)));
    let reported = reported.lock().expect("lock").clone();
    assert!(reported.windows(2).all(|w| w[0] < w[1]));
    backend
}

/// A seccomp filter that makes `io_uring_setup` fail with `ENOSYS` for this
/// thread and the threads it starts afterwards (as a container runtime's
/// default profile does); every other system call is allowed.
fn refuse_io_uring_setup() {
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    // BPF_LD | BPF_W | BPF_ABS, and BPF_JMP | BPF_JEQ | BPF_K.
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    // seccomp_data: nr at offset 0, arch at offset 4.
    let nr = libc::SYS_io_uring_setup as u32;
    let mut prog = [
        libc::sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 4,
        },
        libc::sock_filter {
            code: BPF_JEQ_K,
            jt: 0,
            jf: 3,
            k: AUDIT_ARCH,
        },
        libc::sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: BPF_JEQ_K,
            jt: 0,
            jf: 1,
            k: nr,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        },
        libc::sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        },
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: prctl with integer arguments only; PR_SET_NO_NEW_PRIVS is
    // required before an unprivileged process may install a filter.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(
        rc,
        0,
        "PR_SET_NO_NEW_PRIVS: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fprog` points at `prog`, both alive for the call; the kernel
    // copies the program and keeps no pointer to our memory.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER as libc::c_ulong,
            &fprog as *const libc::sock_fprog as libc::c_ulong,
            0,
            0,
        )
    };
    assert_eq!(rc, 0, "PR_SET_SECCOMP: {}", std::io::Error::last_os_error());
}

#[test]
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn falls_back_to_pwrite_when_the_kernel_refuses_io_uring() {
    const NAME: &str = "falls_back_to_pwrite_when_the_kernel_refuses_io_uring";
    if std::env::var_os(CHILD_ENV).is_some() {
        refuse_io_uring_setup();
        assert!(!kernel_has_io_uring(), "the filter did not take");
        assert_eq!(exercise_log(), Backend::Pwrite);
        println!("CHILD OK");
        return;
    }
    run_child(NAME, "seccomp");
}

#[test]
fn a_non_root_user_with_no_locked_memory_gets_a_working_log() {
    const NAME: &str = "a_non_root_user_with_no_locked_memory_gets_a_working_log";
    if std::env::var_os(CHILD_ENV).is_some() {
        let zero = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit reads the struct we pass, alive for the call.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &zero) };
        assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
        // SAFETY: getuid/setgid/setuid take and return integers only. glibc
        // applies setgid/setuid to every thread of the process.
        unsafe {
            if libc::getuid() == 0 {
                assert_eq!(libc::setgid(65534), 0, "setgid");
                assert_eq!(libc::setuid(65534), 0, "setuid");
            }
        }
        // Kernels before 5.12 charge rings to RLIMIT_MEMLOCK and refuse one
        // here; later ones charge the memory cgroup. Either way the log must
        // work, on whichever backend it reports.
        let expected = if kernel_has_io_uring() {
            Backend::IoUring
        } else {
            Backend::Pwrite
        };
        let got = exercise_log();
        assert_eq!(got, expected);
        // SAFETY: getuid takes nothing and returns an integer.
        println!("CHILD OK uid={} backend={got}", unsafe { libc::getuid() });
        return;
    }
    let text = run_child(NAME, "memlock");
    println!(
        "{}",
        text.lines().find(|l| l.contains("CHILD OK")).unwrap_or("")
    );
}
