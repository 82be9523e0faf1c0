//! Snapshot files: round trip, fallback past damage (and past bodies the reader
//! refuses), purge policy. The bodies here are plain bytes; what Keel's hold is the
//! engine's business (`keel_engine::snapshot`).

use std::fs;

use keel_wal::{SnapshotStore, WalError};

const FORMAT: u32 = 1;

/// A body that names its zxid in its first 8 bytes, so a reader can check it.
fn body(zxid: u64, len: usize) -> Vec<u8> {
    let mut b = zxid.to_le_bytes().to_vec();
    b.extend((0..len).map(|i| (i * 7 + zxid as usize) as u8));
    b
}

/// The newest body the store hands out whose first 8 bytes match its name.
fn load_latest(store: &SnapshotStore) -> Result<Option<(u64, Vec<u8>)>, WalError> {
    store.visit_latest(|zxid, b| {
        if b.get(..8) != Some(&zxid.to_le_bytes()[..]) {
            return Err(format!("body does not hold zxid {zxid:#x}"));
        }
        Ok((zxid, b.to_vec()))
    })
}

fn path_of(store: &SnapshotStore, zxid: u64) -> std::path::PathBuf {
    store.dir().join(format!("snapshot.{zxid:016x}"))
}

#[test]
fn write_and_load_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::new(tmp.path().join("snap"), FORMAT);
    assert_eq!(load_latest(&store).expect("empty"), None);
    let z = 0x1_0000_0042;
    let n = store.write(z, &body(z, 50_000)).expect("write");
    assert_eq!(fs::metadata(path_of(&store, z)).expect("stat").len(), n);
    assert_eq!(
        load_latest(&store).expect("load"),
        Some((z, body(z, 50_000)))
    );

    // A newer one wins; an unrelated or temporary file is ignored.
    let z2 = 0x1_0000_0050;
    store.write(z2, &body(z2, 3)).expect("write");
    fs::write(store.dir().join("snapshot.0000000200000000.tmp"), b"junk").expect("write");
    fs::write(store.dir().join("README"), b"junk").expect("write");
    assert_eq!(load_latest(&store).expect("load"), Some((z2, body(z2, 3))));

    // The body hands out page-aligned, as an archive read in place needs.
    let aligned = store
        .visit_latest(|_, b| Ok(b.as_ptr() as usize % 4096 == 0))
        .expect("visit");
    assert_eq!(aligned, Some(true));
}

#[test]
fn damaged_newest_falls_back_to_previous() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::new(tmp.path().join("snap"), FORMAT);
    store.write(10, &body(10, 5000)).expect("write");
    store.write(20, &body(20, 5000)).expect("write");
    let older = Some((10, body(10, 5000)));
    let p = path_of(&store, 20);
    let good = fs::read(&p).expect("read");

    // Every kind of damage: a byte of the body, of the trailer, a cut file.
    let len = good.len();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for at in [
        0,
        len / 3,
        len / 2,
        len - 30,
        len - 24,
        len - 15,
        len - 10,
        len - 1,
    ] {
        let mut img = good.clone();
        img[at] ^= 0x10;
        cases.push((format!("flip at {at}"), img));
    }
    cases.push(("cut".into(), good[..len / 2].to_vec()));
    cases.push(("tiny".into(), good[..10].to_vec()));
    cases.push(("empty".into(), Vec::new()));
    for (what, img) in cases {
        fs::write(&p, &img).expect("write");
        assert_eq!(load_latest(&store).expect(&what), older, "{what}");
    }

    // A body the reader refuses (here: it names another zxid) is skipped too.
    fs::write(&p, &good).expect("restore");
    fs::rename(&p, path_of(&store, 30)).expect("rename");
    assert_eq!(load_latest(&store).expect("load"), older);
    fs::rename(path_of(&store, 30), &p).expect("rename");

    // A body of another format version is refused, whatever it holds.
    let other = SnapshotStore::new(store.dir().to_path_buf(), FORMAT + 1);
    let e = load_latest(&other).expect_err("wrong format");
    assert!(
        matches!(e, WalError::NoValidSnapshot { tried: 2, .. }),
        "{e}"
    );

    // All damaged: an error, not an empty tree.
    for z in [10, 20] {
        let q = path_of(&store, z);
        let mut img = fs::read(&q).expect("read");
        img[5] ^= 1;
        fs::write(&q, &img).expect("write");
    }
    let e = load_latest(&store).expect_err("all damaged");
    assert!(
        matches!(e, WalError::NoValidSnapshot { tried: 2, .. }),
        "{e}"
    );
}

#[test]
fn purge_keeps_at_least_three_and_returns_oldest_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::new(tmp.path().join("snap"), FORMAT);
    assert_eq!(store.purge(3).expect("purge"), None);
    for z in [5u64, 1, 9, 3, 7] {
        store.write(z, &body(z, 2)).expect("write");
    }
    // Asking for fewer than three still keeps three.
    assert_eq!(store.purge(1).expect("purge"), Some(5));
    for z in [1, 3] {
        assert!(!path_of(&store, z).exists());
    }
    for z in [5, 7, 9] {
        assert!(path_of(&store, z).exists());
    }
    assert_eq!(store.purge(10).expect("purge"), Some(5));
    assert_eq!(load_latest(&store).expect("load"), Some((9, body(9, 2))));
}

#[test]
fn with_file_checks_one_file_as_visit_latest_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::new(tmp.path().to_path_buf(), FORMAT);
    store.write(7, &body(7, 100)).expect("write");
    let p = path_of(&store, 7);
    assert_eq!(
        keel_wal::with_file(&p, FORMAT, |b| Ok(b.len())).expect("valid"),
        108
    );
    let e = keel_wal::with_file(&p, FORMAT, |_| Err::<(), _>("refused".into()))
        .expect_err("the reader refused it");
    assert!(
        matches!(e, WalError::Corrupt { .. }) && e.to_string().contains("refused"),
        "{e}"
    );
    let mut img = fs::read(&p).expect("read");
    img[3] ^= 1;
    fs::write(&p, &img).expect("write");
    let e = keel_wal::with_file(&p, FORMAT, |b| Ok(b.len())).expect_err("damaged");
    assert!(e.to_string().contains("checksum"), "{e}");
}

#[test]
fn snapshots_newer_than_an_installed_one_are_removed() {
    let d = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::new(d.path().to_path_buf(), FORMAT);
    for z in [0x10u64, 0x20, 0x30] {
        store.write(z, &body(z, 1)).expect("write");
    }
    fs::write(d.path().join(format!("snapshot.{:016x}.tmp", 0x40)), b"x").expect("write");
    fs::write(d.path().join("other"), b"x").expect("write");
    assert_eq!(store.remove_after(0x20).expect("remove"), 2);
    let mut left: Vec<String> = fs::read_dir(d.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec![
            "other".to_string(),
            format!("snapshot.{:016x}", 0x10),
            format!("snapshot.{:016x}", 0x20)
        ]
    );
    let missing = SnapshotStore::new(d.path().join("missing"), FORMAT);
    assert_eq!(missing.remove_after(0).expect("remove"), 0);
}
