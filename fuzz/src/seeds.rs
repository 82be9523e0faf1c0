//! Seed inputs for every target, made by the project's own encoders from traffic a
//! real client would send: each request type as a client encodes it, the log frames
//! an engine writes while serving those requests, the peer messages of an ensemble,
//! membership texts, log segments and snapshot archives. `tests/corpus.rs` writes
//! them to `fuzz/seeds/<target>/` (`KEEL_FUZZ_WRITE_SEEDS=1`) and replays them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use keel_engine::proto::{op, perm, Acl, ConnectRequest, Id, Request, SetWatches};
use keel_engine::txn::{encode_batch, Txn, TxnRecord};
use keel_engine::zab::{Forward, LogFrame, PeerMsg, PeerState, SyncMode, Vote};
use keel_engine::{Engine, EngineConfig, Input, Output};
use keel_wal::fuzzing as walf;
use keel_engine::snapshot::{self, SnapAcl, SnapNode, SnapSession, SnapshotData};
use keel_engine::tree::NodeStat;

use crate::{wire, OPS};

/// The targets, by name (as in `fuzz_targets/` and `fuzz/seeds/`).
pub const TARGETS: &[&str] = &[
    "request",
    "connect",
    "txn_batch",
    "replay",
    "peer_msg",
    "membership",
    "quota_stats",
    "wal_segment",
    "snapshot",
    "snapshot_load",
];

/// The targets this build has (`net_config` needs the `net` feature).
pub fn targets() -> Vec<&'static str> {
    let mut v = TARGETS.to_vec();
    if cfg!(feature = "net") {
        v.push("net_config");
    }
    v
}

/// Runs target `name` on one input.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "request" => crate::request(data),
        "connect" => crate::connect(data),
        "txn_batch" => crate::txn_batch(data),
        "replay" => crate::replay(data),
        "peer_msg" => crate::peer_msg(data),
        "membership" => crate::membership(data),
        "quota_stats" => crate::quota_stats(data),
        "wal_segment" => crate::wal_segment(data),
        "snapshot" => crate::snapshot(data),
        "snapshot_load" => crate::snapshot_load(data),
        #[cfg(feature = "net")]
        "net_config" => crate::net_config(data),
        other => panic!("no target {other}"),
    }
}

fn acl_digest() -> Vec<Acl> {
    vec![
        Acl {
            perms: perm::ALL,
            id: Id::new("digest", "bob:0XrLCzGgk1CQ1ZDmrh6ZHA2e5dU="),
        },
        Acl {
            perms: perm::READ,
            id: Id::new("world", "anyone"),
        },
    ]
}

/// One of each request a client sends, with realistic values.
pub fn sample_requests() -> Vec<Request> {
    let create = |code, path: &str, flags, ttl| Request::Create {
        op: code,
        path: path.into(),
        data: Some(b"hello".to_vec()),
        acl: Acl::world_all(),
        flags,
        ttl,
    };
    vec![
        create(op::CREATE, "/app", 0, -1),
        create(op::CREATE, "/app/lock-", 3, -1),
        create(op::CREATE2, "/app/seq-", 2, -1),
        create(op::CREATE_CONTAINER, "/app/container", 4, -1),
        create(op::CREATE_TTL, "/app/ttl", 5, 60_000),
        Request::Create {
            op: op::CREATE,
            path: "/app/secret".into(),
            data: None,
            acl: acl_digest(),
            flags: 1,
            ttl: -1,
        },
        Request::SetData {
            path: "/app".into(),
            data: Some(vec![0xAB; 40]),
            version: -1,
        },
        Request::GetData {
            path: "/app".into(),
            watch: true,
        },
        Request::Exists {
            path: "/app/missing".into(),
            watch: true,
        },
        Request::GetAcl {
            path: "/app".into(),
        },
        Request::SetAcl {
            path: "/app".into(),
            acl: acl_digest(),
            version: 0,
        },
        Request::GetChildren {
            path: "/app".into(),
            watch: false,
            with_stat: false,
        },
        Request::GetChildren {
            path: "/".into(),
            watch: true,
            with_stat: true,
        },
        Request::Sync {
            path: "/app".into(),
        },
        Request::Check {
            path: "/app".into(),
            version: 1,
        },
        Request::Multi(vec![
            create(op::CREATE, "/app/m1", 0, -1),
            create(op::CREATE2, "/app/m2", 0, -1),
            Request::SetData {
                path: "/app/m1".into(),
                data: Some(b"x".to_vec()),
                version: 0,
            },
            Request::Check {
                path: "/app".into(),
                version: -1,
            },
            Request::Delete {
                path: "/app/m2".into(),
                version: -1,
            },
        ]),
        Request::MultiRead(vec![
            Request::GetData {
                path: "/app".into(),
                watch: false,
            },
            Request::GetChildren {
                path: "/app".into(),
                watch: false,
                with_stat: false,
            },
        ]),
        Request::Reconfig {
            joining: "server.4=127.0.0.1:2891:3891:participant;2184".into(),
            leaving: "3".into(),
            new_members: String::new(),
            cur_config_id: -1,
        },
        Request::CheckWatches {
            path: "/app".into(),
            kind: 1,
        },
        Request::RemoveWatches {
            path: "/app".into(),
            kind: 3,
        },
        Request::Auth {
            kind: 0,
            scheme: "digest".into(),
            auth: b"bob:secret".to_vec(),
        },
        Request::SetWatches(SetWatches {
            relative_zxid: 0x1_0000_0005,
            data: vec!["/app".into()],
            exist: vec!["/app/missing".into()],
            child: vec!["/".into()],
            ..Default::default()
        }),
        Request::SetWatches(SetWatches {
            relative_zxid: 7,
            data: vec![],
            exist: vec![],
            child: vec![],
            persistent: vec!["/app".into()],
            persistent_recursive: vec!["/".into()],
        }),
        Request::Sasl,
        Request::GetEphemerals {
            prefix: "/app".into(),
        },
        Request::GetAllChildrenNumber { path: "/".into() },
        Request::AddWatch {
            path: "/app".into(),
            mode: 1,
        },
        Request::WhoAmI,
        Request::Delete {
            path: "/app/lock-0000000001".into(),
            version: -1,
        },
        Request::Ping,
        Request::CloseSession,
    ]
}

/// A `request` target input for `req`.
pub fn request_input(req: &Request) -> Vec<u8> {
    let (code, body) = wire::encode_request(req);
    let sel = OPS.iter().position(|&c| c == code).expect("opcode in OPS") as u8;
    let mut v = vec![sel];
    v.extend(body);
    v
}

/// The log frames (payloads) and final snapshot of an engine that served
/// `sample_requests()` from one client, as a server would persist them.
pub fn served() -> (Vec<(i64, i64, Vec<u8>)>, SnapshotData) {
    let cfg = EngineConfig {
        extended_types: true,
        ..Default::default()
    };
    let mut now = 1_700_000_000_000;
    let mut e = Engine::new(cfg, now);
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
    let mut frames = Vec::new();
    let step = |e: &mut Engine, input: Input, frames: &mut Vec<(i64, i64, Vec<u8>)>| {
        e.step(input);
        let mut out = Vec::new();
        e.drain(&mut out);
        for o in out {
            if let Output::Persist {
                first_zxid,
                last_zxid,
                payload,
            } = o
            {
                e.step(Input::Durable { zxid: last_zxid });
                frames.push((first_zxid, last_zxid, payload));
            }
        }
        let mut rest = Vec::new();
        e.drain(&mut rest);
    };
    step(&mut e, Input::Tick { now_ms: now }, &mut frames);
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30_000,
        session_id: 0,
        password: vec![0; 16],
        read_only: false,
        has_read_only: true,
    };
    step(&mut e, Input::Connect { conn: 1, peer, req }, &mut frames);
    for (xid, r) in sample_requests().iter().enumerate() {
        if matches!(r, Request::CloseSession) {
            continue;
        }
        now += 10;
        step(&mut e, Input::Tick { now_ms: now }, &mut frames);
        let (code, body) = wire::encode_request(r);
        step(
            &mut e,
            Input::Request {
                conn: 1,
                xid: xid as i32 + 1,
                op: code,
                body,
            },
            &mut frames,
        );
    }
    let snap = e.snapshot();
    (frames, snap)
}

/// A few hand-made transactions of every type (some the sample traffic never makes).
pub fn sample_txns() -> Vec<TxnRecord> {
    let rec = |zxid, txn| TxnRecord {
        zxid,
        time: 1_700_000_000_000 + zxid,
        session: 0x1000_0000_0000_0001,
        cxid: zxid as i32,
        txn,
    };
    vec![
        rec(
            1,
            Txn::CreateSession {
                timeout_ms: 30_000,
                password: vec![7; 16],
            },
        ),
        rec(
            2,
            Txn::Create {
                op: op::CREATE,
                path: "/a".into(),
                data: Some(b"x".to_vec()),
                acl: Acl::world_all(),
                owner: 0,
                parent_cversion: 1,
            },
        ),
        rec(
            3,
            Txn::Multi(vec![
                Txn::Check { path: "/a".into() },
                Txn::SetData {
                    path: "/a".into(),
                    data: None,
                    version: 1,
                },
                Txn::SetAcl {
                    path: "/a".into(),
                    acl: acl_digest(),
                    aversion: 1,
                },
                Txn::Delete { path: "/a".into() },
            ]),
        ),
        rec(4, Txn::Error { code: -110 }),
        rec(
            5,
            Txn::Reconfig {
                data: MEMBERSHIP.as_bytes().to_vec(),
            },
        ),
        rec(6, Txn::CloseSession),
    ]
}

pub const MEMBERSHIP: &str = "server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n\
                              server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\n\
                              server.3=127.0.0.1:2890:3890:observer;0.0.0.0:2183\n\
                              version=100000005";

/// A small snapshot with every field in use.
pub fn sample_snapshot() -> SnapshotData {
    let node = |path: &str, data: Option<&[u8]>, owner| SnapNode {
        path: path.into(),
        data: data.map(|d| d.to_vec()),
        acl: vec![SnapAcl {
            perms: 31,
            scheme: "world".into(),
            id: "anyone".into(),
        }],
        stat: NodeStat {
            czxid: 2,
            mzxid: 3,
            pzxid: 4,
            ctime: 1_700_000_000_000,
            mtime: 1_700_000_000_001,
            version: 1,
            cversion: 2,
            aversion: 0,
            ephemeral_owner: owner,
        },
    };
    SnapshotData {
        last_zxid: 0x1_0000_0009,
        nodes: vec![
            node("/", Some(b""), 0),
            node("/zookeeper", None, 0),
            node("/a", Some(b"data"), 0),
            node("/a/e", Some(b"eph"), 0x1000_0000_0000_0001),
        ],
        sessions: vec![SnapSession {
            id: 0x1000_0000_0000_0001,
            timeout_ms: 30_000,
            password: vec![9; 16],
        }],
    }
}

fn peer_messages(frames: &[(i64, i64, Vec<u8>)], snap: &[u8]) -> Vec<PeerMsg> {
    let lf = |(first, last, payload): &(i64, i64, Vec<u8>)| LogFrame {
        first: *first,
        last: *last,
        payload: Arc::new(payload.clone()),
    };
    let some: Vec<LogFrame> = frames.iter().take(3).map(lf).collect();
    let mut v = vec![
        PeerMsg::Vote(Vote {
            leader: 3,
            zxid: 0x1_0000_0009,
            peer_epoch: 1,
            round: 4,
            state: PeerState::Looking,
            config_version: 0x1_0000_0003,
        }),
        PeerMsg::Membership {
            text: MEMBERSHIP.into(),
        },
        PeerMsg::FollowerInfo {
            accepted_epoch: 2,
            last_zxid: 0x2_0000_0007,
            observer: false,
        },
        PeerMsg::LeaderInfo { epoch: 3 },
        PeerMsg::AckEpoch {
            epoch: 3,
            promise: true,
            current_epoch: 2,
            last_zxid: 0x2_0000_0007,
            epoch_ends: vec![0x1_0000_0004, 0x2_0000_0007],
        },
        PeerMsg::Sync {
            epoch: 3,
            mode: SyncMode::Diff,
            frames: some.clone(),
        },
        PeerMsg::Sync {
            epoch: 3,
            mode: SyncMode::Trunc {
                zxid: 0x2_0000_0001,
            },
            frames: vec![],
        },
        PeerMsg::Sync {
            epoch: 3,
            mode: SyncMode::Snap {
                zxid: 0x1_0000_0009,
                data: snap.to_vec(),
            },
            frames: some.iter().take(1).cloned().collect(),
        },
        PeerMsg::NewLeader {
            epoch: 3,
            zxid: 0x3_0000_0000,
            commit: 0x2_0000_0007,
        },
        PeerMsg::AckNewLeader {
            epoch: 3,
            zxid: 0x3_0000_0000,
        },
        PeerMsg::UpToDate {
            epoch: 3,
            commit: 0x3_0000_0000,
            membership: MEMBERSHIP.into(),
        },
        PeerMsg::Ack {
            zxid: 0x3_0000_0002,
        },
        PeerMsg::Commit {
            zxid: 0x3_0000_0002,
        },
        PeerMsg::SyncDone {
            session: 0x1000_0000_0000_0001,
            cxid: 7,
            zxid: 0x3_0000_0002,
        },
        PeerMsg::Ping {
            sessions: vec![0x1000_0000_0000_0001, 0x1000_0000_0000_0002],
        },
    ];
    for f in some.iter().take(3) {
        v.push(PeerMsg::Proposal(f.clone()));
    }
    for (i, r) in sample_requests()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_write())
    {
        let (opcode, body) = wire::encode_request(r);
        v.push(PeerMsg::Request(Forward {
            session: 0x1000_0000_0000_0001,
            cxid: i as i32,
            opcode,
            body,
            auth: vec![
                ("ip".into(), "127.0.0.1".into()),
                ("digest".into(), "bob:0XrLCzGgk1CQ1ZDmrh6ZHA2e5dU=".into()),
            ],
        }));
    }
    v
}

/// Every target's seeds: (target, file name, bytes).
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |t: &'static str, name: String, bytes: Vec<u8>| out.push((t, name, bytes));

    for (i, r) in sample_requests().iter().enumerate() {
        add("request", format!("{i:02}"), request_input(r));
    }
    // Hostile shapes the issue names: a multi inside a multi, a huge string length.
    let mut nested = vec![OPS.iter().position(|&c| c == op::MULTI).unwrap() as u8];
    for _ in 0..8 {
        nested.extend_from_slice(&op::MULTI.to_be_bytes());
        nested.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff]);
    }
    add("request", "nested-multi".into(), nested);
    add(
        "request",
        "huge-length".into(),
        vec![3, 0x7f, 0xff, 0xff, 0xff, b'/'],
    );

    for (i, ro) in [(0, None), (1, Some(false)), (2, Some(true))] {
        let c = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x1_0000_0005 * i,
            timeout_ms: 30_000,
            session_id: if i == 2 { 0x1000_0000_0000_0001 } else { 0 },
            password: vec![i as u8; 16],
            read_only: ro.unwrap_or(false),
            has_read_only: ro.is_some(),
        };
        add("connect", format!("{i:02}"), wire::encode_connect(&c));
    }

    let (frames, served_snap) = served();
    let mut payloads: Vec<Vec<u8>> = frames.iter().map(|f| f.2.clone()).collect();
    payloads.push(encode_batch(&sample_txns()));
    payloads.push(encode_batch(&sample_txns()[4..5]));
    for (i, p) in payloads.iter().enumerate() {
        add("txn_batch", format!("{i:02}"), p.clone());
        add("replay", format!("{i:02}"), p.clone());
    }
    // Replay: a whole served session in one batch, as recovery would see it.
    let all_recs: Vec<TxnRecord> = frames
        .iter()
        .flat_map(|f| keel_engine::txn::decode_batch(&f.2).unwrap())
        .collect();
    add("replay", "served".into(), encode_batch(&all_recs));

    let small = sample_snapshot().to_bytes().unwrap();
    for (i, m) in peer_messages(&frames, &small).iter().enumerate() {
        add("peer_msg", format!("{i:02}-{}", m.name()), m.encode());
    }

    for (mode, text) in [
        (0u8, MEMBERSHIP.to_string()),
        (1, MEMBERSHIP.to_string()),
        (
            1,
            "server.1=h1:2888:3888\nserver.2=h2:2888:3888:observer;2182\nversion=0".into(),
        ),
        (
            0,
            "server.1=[::1]:2888:3888|10.0.0.1:2888:3888;[::1]:2181\nversion=0".into(),
        ),
        (
            2,
            format!("{MEMBERSHIP}\0server.4=127.0.0.1:2891:3891:participant;2184\x003\0"),
        ),
        (
            3,
            format!("{MEMBERSHIP}\0\0\0server.7=h:1:2;2187,server.8=h:3:4:observer;2188"),
        ),
    ] {
        let mut v = vec![mode];
        v.extend_from_slice(text.as_bytes());
        add("membership", seed_name(&text, mode), v);
    }

    for (i, text) in [
        "count=3,bytes=120",
        "count=-1,bytes=-1,countHardLimit=10,byteHardLimit=1048576",
        "count=5;bytes=;junk,x=y,count=6",
    ]
    .iter()
    .enumerate()
    {
        add("quota_stats", format!("{i:02}"), text.as_bytes().to_vec());
    }

    // Log segments: the served frames back to back, clean, torn and padded.
    let mut seg = Vec::new();
    for (first, last, p) in &frames {
        seg.extend(walf::encode_frame(*first as u64, *last as u64, p));
    }
    let mut hand = walf::encode_frame(0x2_0000_0001, 0x2_0000_0006, &encode_batch(&sample_txns()));
    hand.extend(walf::encode_frame(
        0x2_0000_0007,
        0x2_0000_0007,
        &[0, 0, 0, 0],
    ));
    let torn = {
        let mut t = seg.clone();
        let n = t.len();
        t.truncate(n - 7);
        t
    };
    for (i, (flags, prev, bytes)) in [
        (0u8, None, seg.clone()),
        (9, None, seg.clone()),
        (1, None, torn.clone()),
        (13, None, torn),
        (3, Some(0x2_0000_0000u64), hand.clone()),
        (4, None, hand),
    ]
    .into_iter()
    .enumerate()
    {
        let mut v = vec![flags];
        if let Some(p) = prev {
            v.extend_from_slice(&p.to_le_bytes());
        }
        v.extend(bytes);
        add("wal_segment", format!("{i:02}"), v);
    }

    let served_bytes = served_snap.to_bytes().unwrap();
    for (name, body) in [("small", &small), ("served", &served_bytes)] {
        let mut file = body.clone();
        file.extend_from_slice(&walf::snapshot_trailer(body, snapshot::FORMAT));
        for (mode, bytes) in [(0u8, body), (1, &file), (2, body)] {
            let mut v = vec![mode];
            v.extend_from_slice(bytes);
            add("snapshot", format!("{name}-{mode}"), v);
        }
        add("snapshot_load", name.into(), body.clone());
    }

    let specs = [
        "127.0.0.1:2888:3888;2181",
        "[::1]:2888:3888:observer;[::1]:2181",
        "zk2.example.com:2889:3889|10.0.0.2:2889:3889:participant;0.0.0.0:2182",
    ];
    let zoo_cfg = "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/nonexistent/keel-fuzz\n\
                   clientPort=2181\nmaxClientCnxns=60\n4lw.commands.whitelist=*\n\
                   reconfigEnabled=true\nstandaloneEnabled=false\n\
                   server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889:observer;2182\n";
    let mut net = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        net.push((format!("spec-{i}"), 0u8, spec.to_string()));
        net.push((format!("check-{i}"), 1, spec.to_string()));
    }
    net.push(("membership-file".into(), 2, MEMBERSHIP.to_string()));
    net.push(("membership".into(), 3, MEMBERSHIP.to_string()));
    net.push(("zoo.cfg".into(), 4, zoo_cfg.to_string()));
    net.push((
        "zoo.cfg-standalone".into(),
        4,
        "tickTime=2000\ndataDir=/nonexistent/keel-fuzz\nclientPort=2181\n".into(),
    ));
    for (name, mode, text) in net {
        let mut v = vec![mode];
        v.extend_from_slice(text.as_bytes());
        add("net_config", name, v);
    }
    out
}

/// A membership seed's file name: its mode and length.
fn seed_name(text: &str, mode: u8) -> String {
    format!("m{mode}-{:04}", text.len())
}
