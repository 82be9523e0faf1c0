//! Replays every committed seed (`seeds/<target>/`) and every input that once made a
//! target fail (`regressions/<target>/`) through the targets, without libFuzzer:
//! `cargo test --manifest-path fuzz/Cargo.toml`. `KEEL_FUZZ_WRITE_SEEDS=1` first
//! rewrites the seeds from the project's encoders (`src/seeds.rs`);
//! `KEEL_FUZZ_REPLAY=DIR` also replays `DIR/<target>/` (a long run's corpus).

use std::fs;
use std::path::{Path, PathBuf};

use keel_fuzz::seeds;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file());
    v.sort();
    v
}

fn write_seeds() {
    let base = root().join("seeds");
    for t in seeds::TARGETS.iter().chain(["net_config"].iter()) {
        let dir = base.join(t);
        for f in files(&dir) {
            fs::remove_file(f).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
    }
    for (t, name, bytes) in seeds::all() {
        fs::write(base.join(t).join(name), bytes).unwrap();
    }
}

#[test]
fn seeds_and_regressions_pass_every_target() {
    if std::env::var_os("KEEL_FUZZ_WRITE_SEEDS").is_some() {
        write_seeds();
    }
    let mut dirs = vec![root().join("seeds"), root().join("regressions")];
    if let Some(extra) = std::env::var_os("KEEL_FUZZ_REPLAY") {
        dirs.push(PathBuf::from(extra));
    }
    for t in seeds::targets() {
        let mut n = 0;
        for d in &dirs {
            for f in files(&d.join(t)) {
                let bytes = fs::read(&f).unwrap();
                let r = std::panic::catch_unwind(|| seeds::run(t, &bytes));
                assert!(r.is_ok(), "{t} fails on {}", f.display());
                n += 1;
            }
        }
        assert!(
            files(&root().join("seeds").join(t)).len() >= 2,
            "{t} has no seeds"
        );
        println!("{t}: {n} inputs");
    }
    println!(
        "largest heap bytes held per input byte (inputs >= 64 bytes): {:.2}",
        keel_fuzz::worst_alloc_ratio()
    );
}

/// The generated seeds decode the way they were meant to: the target sees real
/// traffic, not inputs its first checks refuse.
#[test]
fn generated_seeds_are_well_formed() {
    use keel_engine::proto::Request;
    for r in seeds::sample_requests() {
        let v = seeds::request_input(&r);
        let (code, body) = keel_fuzz::request_input(&v).unwrap();
        assert_eq!(Request::decode(code, body).as_ref(), Ok(&r));
    }
    let (frames, snap) = seeds::served();
    assert!(
        frames.len() >= 10,
        "the served session persisted {} frames",
        frames.len()
    );
    for (_, _, p) in &frames {
        keel_engine::txn::decode_batch(p).unwrap();
    }
    assert!(snap.nodes.len() > 5);
    for (t, name, bytes) in seeds::all() {
        match t {
            "peer_msg" => {
                keel_engine::zab::PeerMsg::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            "txn_batch" => {
                keel_engine::txn::decode_batch(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            _ => {}
        }
    }
}

/// The worst amplification the decoders allow by design, measured on inputs built for
/// it: each must stay within the bound the fuzz targets enforce.
#[test]
fn worst_case_allocation_stays_within_the_bound() {
    use keel_engine::jute::Writer;
    use keel_engine::proto::{op, Request};
    let n = 20_000;
    type Case = (&'static str, Vec<u8>, Box<dyn Fn(&[u8])>);
    let mut cases: Vec<Case> = Vec::new();
    // A multi transaction claiming as many members as 4 bytes each would allow: the
    // member vector is allocated for that count before the first member is read.
    let mut w = Writer::new();
    w.i32(1).i64(1).i64(0).i64(0).i32(0).i32(14).i32(n);
    w.buf.extend(std::iter::repeat_n(0xff, 4 * n as usize));
    cases.push((
        "txn multi count",
        w.buf,
        Box::new(|b| drop(keel_engine::txn::decode_batch(b))),
    ));
    // A client multi of the smallest members (getData of an empty path).
    let mut w = Writer::new();
    for _ in 0..n {
        w.i32(op::GET_DATA)
            .bool(false)
            .i32(-1)
            .string("")
            .bool(false);
    }
    w.i32(-1).bool(true).i32(-1);
    cases.push((
        "multiRead of empty getData",
        w.buf,
        Box::new(|b| drop(Request::decode(op::MULTI_READ, b))),
    ));
    // setWatches with empty strings (4 bytes each on the wire).
    let mut w = Writer::new();
    w.i64(0).i32(n);
    for _ in 0..n {
        w.string("");
    }
    w.i32(0).i32(0);
    cases.push((
        "setWatches of empty paths",
        w.buf,
        Box::new(|b| drop(Request::decode(op::SET_WATCHES, b))),
    ));
    // setACL with empty ACLs (12 bytes each).
    let mut w = Writer::new();
    w.string("/").i32(n);
    for _ in 0..n {
        w.i32(0).string("").string("");
    }
    w.i32(0);
    cases.push((
        "setACL of empty ACLs",
        w.buf,
        Box::new(|b| drop(Request::decode(op::SET_ACL, b))),
    ));
    for (what, bytes, f) in cases {
        let ((), peak) = keel_fuzz::measure(|| f(&bytes));
        let ratio = peak as f64 / bytes.len() as f64;
        println!(
            "{what}: {} bytes in, {peak} heap bytes at most ({ratio:.1}x)",
            bytes.len()
        );
        keel_fuzz::check_alloc(what, bytes.len(), peak);
    }
}
