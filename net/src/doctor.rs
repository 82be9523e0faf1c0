//! `keel doctor [--data-dir DIR]`: checks the host and the data directory and prints what
//! to change. The checks themselves live in `keel_tuning::doctor`; this module asks Keel's own runtime (compio) which driver it picks here, prints the
//! table and turns a failed check into a non-zero exit status.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use keel_tuning::doctor::{self, Status};

/// The driver Keel's network runtime picks on this host (`IoUring` or `Poll`), or why no
/// runtime could start.
pub fn runtime_driver() -> String {
    match compio::runtime::Runtime::new() {
        Ok(rt) => format!("{:?}", rt.driver_type()),
        Err(e) => format!("unavailable: cannot start a runtime: {e}"),
    }
}

/// Runs `keel doctor` with the arguments after `doctor`. Exit 0 unless a check fails (1),
/// 2 for bad arguments.
pub fn run(dir: Option<PathBuf>) -> ExitCode {
    let dir = dir.unwrap_or_else(|| {
        let d = PathBuf::from("keel-data");
        if d.is_dir() {
            d
        } else {
            PathBuf::from(".")
        }
    });
    let created = !dir.exists();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!(
            "keel doctor: cannot create the data dir {}: {e}",
            dir.display()
        );
        return ExitCode::from(1);
    }
    let shown = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
    let driver = runtime_driver();
    let checks = doctor::host_checks(&dir, Some(&driver));
    let worst = doctor::worst(&checks);

    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "keel doctor: host {} CPUs, data dir {}{}\n",
        keel_tuning::available_cores(),
        shown.display(),
        if created { " (created)" } else { "" }
    );
    let _ = write!(out, "{}", doctor::render_table(&checks));
    let count = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let _ = writeln!(
        out,
        "\n{} ok, {} warning(s), {} failure(s)",
        count(Status::Ok),
        count(Status::Warn),
        count(Status::Fail)
    );
    let _ = out.flush();
    if worst == Status::Fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_is_named() {
        let d = runtime_driver();
        assert!(
            d == "IoUring" || d == "Poll" || d.starts_with("unavailable"),
            "{d}"
        );
    }
}
