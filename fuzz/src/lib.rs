//! The fuzz targets' bodies, one function per decoder that reads bytes from a client,
//! a peer or the disk. Each takes arbitrary bytes and must not panic; it also checks
//! that decoding allocates no more than the input justifies (a counting allocator,
//! below) and, where an encoder exists, that decode → encode → decode gives the same
//! value. `fuzz_targets/*.rs` wrap them for libFuzzer; `tests/corpus.rs` replays the
//! seed corpora and the regression inputs through them with plain `cargo test`.
//!
//! Input layouts (the first byte usually picks a mode, so one target covers a family):
//! see each function.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::OnceLock;

use keel_engine::proto::{ConnectRequest, Request};
use keel_engine::txn::{self, Txn};
use keel_engine::zab::membership::{self, Membership};
use keel_engine::zab::PeerMsg;
use keel_wal::fuzzing as walf;
use keel_engine::snapshot::{self, SnapshotData};

/// The client-side request encoders, shared with `engine/tests/roundtrip.rs`.
#[path = "../../engine/tests/wire/mod.rs"]
pub mod wire;

pub mod seeds;

// ------------------------------------------------------------------ allocation bound

/// Counts live heap bytes and their high-water mark, so a target can tell how much a
/// decoder allocated for an input of a given size. (libFuzzer's own `-malloc_limit_mb`
/// needs a sanitizer's allocator hooks, which a build without sanitizer lacks.)
pub struct CountingAlloc;

// Per thread (the allocator may run on any thread; a decoder runs on one), so that
// tests measuring in parallel do not see each other's allocations. Const-initialised
// cells without destructors: touching them never allocates.
thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().wrapping_add(n as isize);
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn shrank(n: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().wrapping_sub(n as isize)));
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // Counted as if the old block were kept until the new one exists, as a
            // moving realloc does.
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result with the most heap bytes it had live at once
/// (beyond what was live before).
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, usize::try_from(peak.wrapping_sub(base)).unwrap_or(0))
}

/// How many heap bytes a decoder may hold at once per input byte. A decoded value is
/// bigger than its encoding (a 4-byte empty string becomes a 24-byte `String`, a
/// 14-byte multi member a ~90-byte `Request` in a vector that grows by doubling), so
/// the bound is a factor, not equality; what it rules out is an allocation sized by a
/// length field instead of by the bytes that are there.
pub const ALLOC_FACTOR: usize = 32;
/// Fixed allowance on top (small inputs, rkyv's scratch space, error strings).
pub const ALLOC_SLACK: usize = 64 * 1024;

thread_local! {
    /// The largest peak/input ratio this thread has seen, in hundredths.
    static WORST_RATIO: Cell<usize> = const { Cell::new(0) };
}

pub fn check_alloc(what: &str, input_len: usize, peak: usize) {
    let limit = ALLOC_FACTOR * input_len + ALLOC_SLACK;
    assert!(
        peak <= limit,
        "{what}: decoding {input_len} bytes held {peak} heap bytes at once (limit {limit})"
    );
    if input_len >= 64 {
        WORST_RATIO.with(|w| w.set(w.get().max(peak * 100 / input_len)));
    }
}

/// The largest heap-bytes-per-input-byte ratio this thread has seen so far (inputs of
/// 64 bytes or more).
pub fn worst_alloc_ratio() -> f64 {
    WORST_RATIO.with(Cell::get) as f64 / 100.0
}

// ------------------------------------------------------------------ client requests

/// Every opcode `Request::decode` knows, and a few it does not; the first input byte
/// indexes this table (a byte past its end takes the opcode from the next 4 bytes).
pub const OPS: &[i32] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 100, 101, 102, 103,
    104, 105, 106, 107, -11, -10, 0, 10, -1,
];

/// Splits a `request` input into (opcode, body).
pub fn request_input(data: &[u8]) -> Option<(i32, &[u8])> {
    let (&sel, rest) = data.split_first()?;
    match OPS.get(sel as usize) {
        Some(&code) => Some((code, rest)),
        None if rest.len() >= 4 => Some((
            i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]),
            &rest[4..],
        )),
        None => None,
    }
}

/// Target `request`: `[opcode selector][request body]`, the body as a client sends it
/// after the `RequestHeader` (multi and multiRead included). Round trip through the
/// client encoder.
pub fn request(data: &[u8]) {
    let Some((code, body)) = request_input(data) else {
        return;
    };
    let (res, peak) = measure(|| Request::decode(code, body));
    check_alloc("Request::decode", body.len(), peak);
    let Ok(req) = res else { return };
    let _ = (req.is_write(), req.creates_ephemeral());
    if planted_bug() {
        // The check that the fuzzer works (docs/fuzzing.md): a bug behind one magic
        // value deep in a seed (the perms of a setACL's second ACL).
        if let Request::SetAcl { acl, .. } = &req {
            assert!(
                !(acl.len() >= 2 && acl[1].perms == 0x7ead_beef),
                "planted bug"
            );
        }
    }
    let (code2, bytes) = wire::encode_request(&req);
    let again = Request::decode(code2, &bytes);
    assert_eq!(
        again.as_ref(),
        Ok(&req),
        "round trip of opcode {code} (re-encoded as {code2})"
    );
}

/// Whether `KEEL_FUZZ_PLANTED_BUG` is set: the `request` target then has a bug.
fn planted_bug() -> bool {
    static P: OnceLock<bool> = OnceLock::new();
    *P.get_or_init(|| std::env::var_os("KEEL_FUZZ_PLANTED_BUG").is_some())
}

/// Target `connect`: a `ConnectRequest` body (the first frame of a connection).
pub fn connect(data: &[u8]) {
    let (res, peak) = measure(|| ConnectRequest::decode(data));
    check_alloc("ConnectRequest::decode", data.len(), peak);
    let Ok(c) = res else { return };
    let bytes = wire::encode_connect(&c);
    assert_eq!(ConnectRequest::decode(&bytes).as_ref(), Ok(&c));
}

// ------------------------------------------------------------------ transactions

/// Target `txn_batch`: a log frame's payload (what a follower gets in a proposal and
/// what recovery replays), `i32 count` then that many transaction records.
pub fn txn_batch(data: &[u8]) {
    let (res, peak) = measure(|| txn::decode_batch(data));
    check_alloc("txn::decode_batch", data.len(), peak);
    let is_reconfig = txn::batch_is_reconfig(data);
    let Ok(recs) = res else { return };
    let lone_reconfig = recs.len() == 1 && matches!(recs[0].txn, Txn::Reconfig { .. });
    assert_eq!(
        is_reconfig, lone_reconfig,
        "batch_is_reconfig disagrees with the decoded batch"
    );
    let bytes = txn::encode_batch(&recs);
    assert_eq!(txn::decode_batch(&bytes).as_ref(), Ok(&recs), "round trip");
}

/// Target `replay`: a log-frame payload re-applied by a fresh engine, as recovery and
/// a follower's commit do (`Engine::replay`). Transactions that decode but make no
/// sense for the tree (a delete of a missing node, a create under no parent) must not
/// crash the member.
pub fn replay(data: &[u8]) {
    let cfg = keel_engine::EngineConfig {
        extended_types: true,
        ..Default::default()
    };
    let mut e = keel_engine::Engine::new(cfg, 1_700_000_000_000);
    if e.replay(data).is_ok() {
        let _ = e.snapshot();
    }
}

// ------------------------------------------------------------------ peer messages

/// Target `peer_msg`: one peer-link frame body (`PeerMsg::decode`), proposals and
/// sync frames with their log-frame payloads included.
pub fn peer_msg(data: &[u8]) {
    let (res, peak) = measure(|| PeerMsg::decode(data));
    check_alloc("PeerMsg::decode", data.len(), peak);
    let Ok(m) = res else { return };
    let _ = m.name();
    let bytes = m.encode();
    assert_eq!(
        PeerMsg::decode(&bytes).as_ref(),
        Ok(&m),
        "round trip of {}",
        m.name()
    );
}

// ------------------------------------------------------------------ membership text

/// Target `membership`: `[mode][text]`. Mode bit 1 clear: `/zookeeper/config` text
/// (`Membership::parse`, what a member applies to committed text), round trip, and with
/// mode bit 0 each spec by the `server.N` grammar too. Mode bit 1: the text is
/// `base \0 joining \0 leaving \0 newMembers` and a `reconfig` is computed from it.
pub fn membership(data: &[u8]) {
    use keel_engine::zab::server_spec::ServerSpec;
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    if mode & 2 == 0 {
        let Ok(m) = Membership::parse(&text) else {
            return;
        };
        let _ = (m.voters(), m.observers());
        let again = m.to_text();
        assert_eq!(
            Membership::parse(&again).as_ref(),
            Ok(&m),
            "to_text does not parse back: {again:?}"
        );
        if mode & 1 == 1 {
            for (id, server) in &m.servers {
                let _ = ServerSpec::parse(*id, &server.spec);
            }
        }
        return;
    }
    let mut parts = text.split('\0');
    let base = parts.next().unwrap_or("");
    let joining = parts.next().unwrap_or("");
    let leaving = parts.next().unwrap_or("");
    let new_members = parts.next().unwrap_or("");
    let Ok(m) = Membership::parse(base) else {
        return;
    };
    let Ok(n) = m.reconfigured(joining, leaving, new_members) else {
        return;
    };
    let again = n.to_text();
    assert_eq!(
        Membership::parse(&again).as_ref(),
        Ok(&n),
        "a reconfigured membership does not parse back: {again:?}"
    );
}

/// Target `quota_stats`: the text of a quota's `zookeeper_stats` or `zookeeper_limits`
/// node (`tree::QuotaStats::parse`), which any client may write under
/// `/zookeeper/quota` and every later write under the quota's path parses. Round trip
/// through `to_text`.
pub fn quota_stats(data: &[u8]) {
    use keel_engine::tree::QuotaStats;
    let (st, peak) = measure(|| QuotaStats::parse(data));
    check_alloc("QuotaStats::parse", data.len(), peak);
    let text = st.to_text();
    assert_eq!(QuotaStats::parse(text.as_bytes()), st, "{text:?}");
}

// ------------------------------------------------------------------ log segments

/// Target `wal_segment`: `[flags][prev_last u64 LE if flags&2][segment bytes]`; flags
/// bit 0: the newest segment (may end torn); bit 2: rewrite the frames' checksums
/// before scanning, so mutations get past them; bit 3: pad with zeros to 4 KiB, as a
/// preallocated segment is. Every intact frame's payload is then decoded as replay
/// does.
pub fn wal_segment(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let newest = flags & 1 != 0;
    let (prev_last, rest) = if flags & 2 != 0 && rest.len() >= 8 {
        let (p, r) = rest.split_at(8);
        (Some(u64::from_le_bytes(p.try_into().unwrap())), r)
    } else {
        (None, rest)
    };
    let mut bytes = rest.to_vec();
    if flags & 4 != 0 {
        walf::fix_frame_checksums(&mut bytes);
    }
    if flags & 8 != 0 {
        bytes.resize(bytes.len().div_ceil(4096).max(1) * 4096, 0);
    }
    let (scan, peak) = measure(|| walf::scan_segment(&bytes, prev_last, newest));
    check_alloc("wal scan", bytes.len(), peak);
    let (pframes, pend, _damage) = walf::scan_segment_prefix(&bytes, prev_last);
    let Ok(s) = scan else { return };
    let mut last = prev_last;
    let mut at = 0u64;
    for f in &s.frames {
        assert_eq!(f.offset, at, "frames are back to back from offset 0");
        assert!(f.first_zxid <= f.last_zxid);
        assert!(last.is_none_or(|l| f.first_zxid > l), "zxids increase");
        assert!(f.payload.end <= bytes.len());
        last = Some(f.last_zxid);
        at = f.payload.end as u64;
        let _ = txn::decode_batch(&bytes[f.payload.clone()]);
    }
    assert_eq!(s.end, at, "the log ends after its last frame");
    match s.torn {
        None => assert!(
            bytes[s.end as usize..].iter().all(|&b| b == 0),
            "a clean scan leaves only zeros after the end"
        ),
        Some(dirty) => {
            assert!(newest, "only the newest segment may be torn");
            assert!(s.end < dirty && dirty as usize <= bytes.len());
            assert!(bytes[dirty as usize..].iter().all(|&b| b == 0));
        }
    }
    assert_eq!(
        (pframes, pend),
        (s.frames.clone(), s.end),
        "the operator's prefix scan agrees with recovery"
    );
}

// ------------------------------------------------------------------ snapshots

fn scratch_file() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let base = std::env::var_os("KEEL_FUZZ_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let d = base.join(format!("keel-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch directory");
        d
    });
    dir.join("snapshot.0000000000000000")
}

/// Target `snapshot`: `[mode][bytes]`. Mode 0: an rkyv archive as a leader sends it in
/// a SNAP (`SnapshotData::from_bytes`), round trip through `to_bytes`. Mode 1: a whole
/// snapshot file (archive + trailer) through `validate_file`, which maps and checks it
/// as a restart does (keel-wal's `with_file`, then `snapshot::access` in place). Mode
/// 2: an archive, given a correct trailer, through `validate_file`: it must accept
/// exactly what `from_bytes` accepts.
pub fn snapshot(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let (res, peak) = measure(|| SnapshotData::from_bytes(rest));
            check_alloc("SnapshotData::from_bytes", rest.len(), peak);
            let Ok(s) = res else { return };
            let bytes = s.to_bytes().expect("a decoded snapshot serialises");
            assert_eq!(
                SnapshotData::from_bytes(&bytes).as_ref(),
                Ok(&s),
                "round trip"
            );
        }
        1 => {
            let path = scratch_file();
            std::fs::write(&path, rest).expect("scratch write");
            let (res, peak) = measure(|| validate_file(&path));
            check_alloc("snapshot validate_file", rest.len(), peak);
            if res.is_ok() {
                let body = &rest[..rest.len() - 24];
                assert!(SnapshotData::from_bytes(body).is_ok());
            }
        }
        _ => {
            let path = scratch_file();
            let mut file = rest.to_vec();
            file.extend_from_slice(&walf::snapshot_trailer(rest, snapshot::FORMAT));
            std::fs::write(&path, &file).expect("scratch write");
            let (res, peak) = measure(|| validate_file(&path));
            check_alloc("snapshot validate_file", file.len(), peak);
            assert_eq!(
                res.is_ok(),
                SnapshotData::from_bytes(rest).is_ok(),
                "validation in place and from_bytes disagree: {res:?}"
            );
        }
    }
}

/// A snapshot file checked as a restart checks it: trailer and checksum by the store,
/// then the archive validated in place. Its zxid and node count.
fn validate_file(path: &std::path::Path) -> Result<(u64, usize), keel_wal::WalError> {
    keel_wal::with_file(path, snapshot::FORMAT, |body| {
        snapshot::access(body, None).map(|a| (a.last_zxid.to_native(), a.nodes.len()))
    })
}

/// Target `snapshot_load`: an rkyv archive that validates, loaded into an engine both
/// ways a server does (`load_snapshot` after a leader's SNAP, `load_archived` at a
/// restart), then snapshotted again. A hostile leader's or a damaged disk's archive
/// that passes validation must not crash the member.
pub fn snapshot_load(data: &[u8]) {
    let Ok(snap) = SnapshotData::from_bytes(data) else {
        return;
    };
    let mut e = keel_engine::Engine::new(keel_engine::EngineConfig::default(), 0);
    e.load_snapshot(&snap);
    let again = e.snapshot();
    let _ = again.to_bytes();

    let again2 = snapshot::with_archived(data, |archived| {
        let mut e2 = keel_engine::Engine::new(keel_engine::EngineConfig::default(), 0);
        e2.load_archived(archived);
        e2.snapshot()
    })
    .expect("from_bytes accepted it, so access does");
    assert_eq!(
        again2, again,
        "load_snapshot and load_archived build different trees"
    );
}

// ------------------------------------------------------------------ server specs, zoo.cfg

/// Target `net_config` (feature `net`: it builds `keel-net`, so it is not in the CI
/// set): `[mode][text]`. Mode 0: a `server.N` spec (`ServerSpec::parse`, reached by a
/// client's `reconfig` through `check_dynamic`), written back and parsed again. Mode 1:
/// `check_dynamic`, which must accept its own output unchanged. Mode 2:
/// `dataDir/membership` text (`keel_net::membership::parse`). Mode 3: a membership a
/// `reconfig` made (every spec through `check_dynamic`) is one net can read. Mode 4: a
/// whole `zoo.cfg`.
#[cfg(feature = "net")]
pub fn net_config(data: &[u8]) {
    use keel_net::config::{Config, ServerSpec};
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 5 {
        0 => {
            let Ok(s) = ServerSpec::parse(7, &text) else {
                return;
            };
            // Written as ZooKeeper prints it (addresses sorted by host): that text
            // must read back as the same spec.
            let again = s.to_string();
            let back = ServerSpec::parse(7, &again)
                .unwrap_or_else(|e| panic!("{again:?} does not parse back: {e}"));
            assert_eq!(back.to_string(), again);
            assert_eq!((back.role, &back.client), (s.role, &s.client));
        }
        1 => {
            let Ok((canon, observer)) = membership::check_dynamic(&text) else {
                return;
            };
            assert_eq!(
                membership::check_dynamic(&canon),
                Ok((canon.clone(), observer)),
                "check_dynamic is not idempotent"
            );
        }
        2 => {
            let _ = keel_net::membership::parse(&text);
        }
        3 => {
            let Ok(m) = Membership::default().reconfigured("", "", &text) else {
                return;
            };
            let again = m.to_text();
            assert_eq!(Membership::parse(&again).as_ref(), Ok(&m), "{again:?}");
            let _ = keel_net::membership::parse(&again)
                .expect("a membership the engine accepts is one net can read");
        }
        _ => {
            let path = scratch_file().with_file_name("zoo.cfg");
            std::fs::write(&path, rest).expect("scratch write");
            let _ = Config::from_file(&path);
        }
    }
}
