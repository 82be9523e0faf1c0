//! Snapshot cost at scale: write time and size of a 1M-znode snapshot, the validated
//! open a restart pays (mmap + CRC32C + rkyv validation), and a full load
//! (validation + deserialising into owned data). The archive is the engine's
//! (`keel_engine::snapshot`); the files are this crate's.
//!
//! `cargo bench -p keel-wal --bench snapshot` (KEEL_SNAP_NODES overrides the 1M).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use keel_engine::snapshot::{self as schema, SnapAcl, SnapNode, SnapSession, SnapshotData};
use keel_engine::tree::NodeStat;
use keel_wal::SnapshotStore;

fn tree(n: usize) -> SnapshotData {
    let nodes = (0..n)
        .map(|i| SnapNode {
            // A realistic shape: 1000 parents of ~1000 children, 64-byte values.
            path: format!("/service-{:04}/instance-{:010}", i % 1000, i),
            data: Some(vec![b'v'; 64]),
            acl: vec![SnapAcl {
                perms: 31,
                scheme: "world".into(),
                id: "anyone".into(),
            }],
            stat: NodeStat {
                czxid: i as i64,
                mzxid: i as i64,
                pzxid: i as i64,
                ctime: 1_795_000_000_000,
                mtime: 1_795_000_000_000,
                ..NodeStat::default()
            },
        })
        .collect();
    let sessions = (0..1000)
        .map(|i| SnapSession {
            id: i,
            timeout_ms: 30_000,
            password: vec![0; 16],
        })
        .collect();
    SnapshotData {
        last_zxid: n as u64,
        nodes,
        sessions,
    }
}

fn snapshot(c: &mut Criterion) {
    let n: usize = std::env::var("KEEL_SNAP_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SnapshotStore::new(dir.path().to_path_buf(), schema::FORMAT);
    let snap = tree(n);
    let mut g = c.benchmark_group(format!("snapshot_{n}_znodes"));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let mut size = 0;
    g.bench_function("write", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                let body = snap.to_bytes().expect("encode snapshot");
                size = store.write(snap.last_zxid, &body).expect("write snapshot");
            }
            t.elapsed()
        })
    });
    let path = dir.path().join(format!("snapshot.{:016x}", snap.last_zxid));
    g.bench_function("open_validated", |b| {
        b.iter(|| {
            keel_wal::with_file(&path, schema::FORMAT, |body| {
                schema::access(body, None).map(|a| a.nodes.len())
            })
            .expect("valid snapshot")
        })
    });
    g.bench_function("load_full", |b| {
        b.iter(|| {
            store
                .visit_latest(|_, body| SnapshotData::from_bytes(body))
                .expect("load")
                .expect("a snapshot")
        })
    });
    g.finish();
    println!(
        "snapshot of {n} znodes: {size} bytes ({:.1} MiB)",
        size as f64 / (1 << 20) as f64
    );
}

criterion_group!(benches, snapshot);
criterion_main!(benches);
