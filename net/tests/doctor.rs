//! `keel doctor` end to end: the built binary on a temp data dir prints every check and
//! leaves nothing behind.

use std::process::Command;

use keel_tuning::doctor::CHECK_NAMES;

#[test]
fn doctor_names_every_check_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["doctor", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run keel doctor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed = stdout.lines().any(|l| l.contains("  FAIL  "));
    assert_eq!(
        out.status.success(),
        !failed,
        "exit status must be 0 unless a check fails\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.starts_with("CHECK") || stdout.contains("\nCHECK"),
        "{stdout}"
    );
    for name in CHECK_NAMES {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "no `{name}` row in:\n{stdout}"
        );
    }
    assert!(stdout.contains("fdatasync p50"), "{stdout}");
    assert!(stdout.contains("(created)"), "{stdout}");
    let left: Vec<_> = std::fs::read_dir(&data)
        .expect("data dir exists")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "scratch files left behind: {left:?}");
}

#[test]
fn doctor_rejects_unknown_arguments() {
    let out = Command::new(env!("CARGO_BIN_EXE_keel"))
        .args(["doctor", "--nope"])
        .output()
        .expect("run keel doctor");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nope"));
}
