//! `keel doctor [--data-dir DIR]`: checks the host and the data directory and prints what
//! to change. The checks themselves live in `keel_tuning::doctor`; this module parses the
//! arguments, asks Keel's own runtime (compio) which driver it picks here, prints the
//! table and turns a failed check into a non-zero exit status.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use keel_tuning::doctor::{self, Status};

const USAGE: &str =
    "usage: keel doctor [--data-dir DIR]   (default: ./keel-data if it exists, else .)";

/// The data dir named by `--data-dir DIR` / `--data-dir=DIR`, `None` when not given.
pub fn parse_args(args: &[String]) -> Result<Option<PathBuf>, String> {
    let mut dir = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix("--data-dir=") {
            dir = Some(PathBuf::from(v));
        } else if a == "--data-dir" {
            let v = it.next().ok_or("--data-dir expects a directory")?;
            dir = Some(PathBuf::from(v));
        } else if a == "-h" || a == "--help" || a == "help" {
            return Err(String::new());
        } else {
            return Err(format!("doctor: unknown argument `{a}`"));
        }
    }
    Ok(dir)
}

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
pub fn run(args: &[String]) -> ExitCode {
    let dir = match parse_args(args) {
        Ok(d) => d,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("keel: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if e.is_empty() { 0 } else { 2 });
        }
    };
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

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_args(&[]), Ok(None));
        assert_eq!(
            parse_args(&s(&["--data-dir", "/x"])),
            Ok(Some(PathBuf::from("/x")))
        );
        assert_eq!(
            parse_args(&s(&["--data-dir=/y"])),
            Ok(Some(PathBuf::from("/y")))
        );
        assert!(parse_args(&s(&["--data-dir"])).is_err());
        assert!(parse_args(&s(&["--bogus"])).unwrap_err().contains("bogus"));
        assert_eq!(parse_args(&s(&["--help"])), Err(String::new()));
    }

    #[test]
    fn driver_is_named() {
        let d = runtime_driver();
        assert!(
            d == "IoUring" || d == "Poll" || d.starts_with("unavailable"),
            "{d}"
        );
    }
}
