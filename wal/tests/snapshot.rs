//! Snapshot files: round trip, fallback past damage, purge policy.

use std::fs;

use keel_wal::{SnapAcl, SnapNode, SnapSession, SnapshotData, SnapshotStore, WalError};

fn snap(zxid: u64, nodes: usize) -> SnapshotData {
    SnapshotData {
        last_zxid: zxid,
        nodes: (0..nodes)
            .map(|i| SnapNode {
                path: if i == 0 {
                    "/".into()
                } else {
                    format!("/n{i}/child-{zxid}")
                },
                data: (i % 7 != 3).then(|| (0..i % 50).map(|b| b as u8).collect()),
                acl: vec![SnapAcl {
                    perms: 31,
                    scheme: "world".into(),
                    id: "anyone".into(),
                }],
                czxid: i as i64,
                mzxid: zxid as i64,
                pzxid: -1,
                ctime: 1_700_000_000_000 + i as i64,
                mtime: 1_700_000_000_001,
                version: i as i32,
                cversion: -2,
                aversion: 0,
                ephemeral_owner: if i % 7 == 0 { 0x1234 } else { 0 },
            })
            .collect(),
        sessions: vec![SnapSession {
            id: 0x100_0000_0001,
            timeout_ms: 30_000,
            password: vec![9; 16],
        }],
    }
}

fn path_of(store: &SnapshotStore, zxid: u64) -> std::path::PathBuf {
    store.dir().join(format!("snapshot.{zxid:016x}"))
}

#[test]
fn write_and_load_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::new(tmp.path().join("snap"));
    assert_eq!(store.load_latest().expect("empty"), None);
    let s = snap(0x1_0000_0042, 500);
    let n = store.write(&s).expect("write");
    let p = path_of(&store, 0x1_0000_0042);
    assert_eq!(fs::metadata(&p).expect("stat").len(), n);
    assert_eq!(store.load_latest().expect("load"), Some(s.clone()));

    // A newer one wins; an unrelated or temporary file is ignored.
    let s2 = snap(0x1_0000_0050, 3);
    store.write(&s2).expect("write");
    fs::write(store.dir().join("snapshot.0000000200000000.tmp"), b"junk").expect("write");
    fs::write(store.dir().join("README"), b"junk").expect("write");
    assert_eq!(store.load_latest().expect("load"), Some(s2));

    // Empty tree, no sessions.
    let empty = SnapshotData {
        last_zxid: 0x2_0000_0000,
        nodes: vec![],
        sessions: vec![],
    };
    store.write(&empty).expect("write");
    assert_eq!(store.load_latest().expect("load"), Some(empty));
}

#[test]
fn damaged_newest_falls_back_to_previous() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::new(tmp.path().join("snap"));
    let older = snap(10, 200);
    let newer = snap(20, 200);
    store.write(&older).expect("write");
    store.write(&newer).expect("write");
    let p = path_of(&store, 20);
    let good = fs::read(&p).expect("read");

    // Every kind of damage: a byte of the archive, of the trailer, a cut file.
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
        assert_eq!(
            store.load_latest().expect(&what),
            Some(older.clone()),
            "{what}"
        );
    }

    // A snapshot whose name and content disagree is damaged too.
    fs::write(&p, &good).expect("restore");
    fs::rename(&p, path_of(&store, 30)).expect("rename");
    assert_eq!(store.load_latest().expect("load"), Some(older.clone()));
    fs::rename(path_of(&store, 30), &p).expect("rename");

    // All damaged: an error, not an empty tree.
    for z in [10, 20] {
        let q = path_of(&store, z);
        let mut img = fs::read(&q).expect("read");
        img[5] ^= 1;
        fs::write(&q, &img).expect("write");
    }
    let e = store.load_latest().expect_err("all damaged");
    assert!(
        matches!(e, WalError::NoValidSnapshot { tried: 2, .. }),
        "{e}"
    );
}

#[test]
fn purge_keeps_at_least_three_and_returns_oldest_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::new(tmp.path().join("snap"));
    assert_eq!(store.purge(3).expect("purge"), None);
    for z in [5u64, 1, 9, 3, 7] {
        store.write(&snap(z, 2)).expect("write");
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
    assert_eq!(store.load_latest().expect("load"), Some(snap(9, 2)));
}

#[test]
fn visit_latest_sees_what_load_latest_loads_and_falls_back_alike() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = SnapshotStore::new(tmp.path().to_path_buf());
    assert_eq!(
        store.visit_latest(|a| a.nodes.len()).expect("empty dir"),
        None
    );
    store.write(&snap(10, 5)).expect("write 10");
    store.write(&snap(20, 7)).expect("write 20");
    let seen = store
        .visit_latest(|a| (a.last_zxid.to_native(), a.nodes.len()))
        .expect("visit");
    let loaded = store.load_latest().expect("load").expect("a snapshot");
    assert_eq!(seen, Some((20, loaded.nodes.len())));
    // Damage the newest: both fall back to the previous one.
    let newest = tmp.path().join(format!("snapshot.{:016x}", 20));
    let mut bytes = std::fs::read(&newest).expect("read");
    bytes[10] ^= 0xff;
    std::fs::write(&newest, bytes).expect("damage");
    let seen = store
        .visit_latest(|a| a.last_zxid.to_native())
        .expect("visit after damage");
    assert_eq!(seen, Some(10));
    assert_eq!(
        store.load_latest().expect("load").map(|s| s.last_zxid),
        Some(10)
    );
}
