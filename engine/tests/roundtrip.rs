//! Property tests of the decoders that read bytes from clients, peers and the disk:
//! every request a client can send, every transaction type, every peer message, the
//! membership text and snapshot archives decode to exactly what was encoded, and a
//! truncated encoding is an error (never a panic, never some other value). The
//! fuzzers in `fuzz/` cover the other direction (arbitrary bytes); see
//! docs/fuzzing.md.

mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;

use keel_engine::proto::{op, Acl, ConnectRequest, Id, Request, SetWatches};
use keel_engine::txn::{batch_is_reconfig, decode_batch, encode_batch, Txn, TxnRecord};
use keel_engine::zab::membership::Server;
use keel_engine::zab::server_spec::{PeerRole, ServerSpec};
use keel_engine::zab::{Forward, LogFrame, Membership, PeerMsg, PeerState, SyncMode, Vote};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

// ------------------------------------------------------------------ building blocks

/// Paths and names: mostly path-like, sometimes any Unicode (the decoder takes any
/// UTF-8; validation is prep's job).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(/[a-z0-9_-]{1,6}){0,3}",
        1 => ".{0,8}",
    ]
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..24)
}

fn acl() -> impl Strategy<Value = Acl> {
    (any::<i32>(), "[a-z]{0,6}", ".{0,10}").prop_map(|(perms, scheme, id)| Acl {
        perms,
        id: Id { scheme, id },
    })
}

fn acls() -> impl Strategy<Value = Vec<Acl>> {
    vec(acl(), 0..3)
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    vec(text(), 0..3)
}

// ------------------------------------------------------------------ requests

fn create() -> impl Strategy<Value = Request> {
    (
        prop::sample::select(vec![
            op::CREATE,
            op::CREATE2,
            op::CREATE_CONTAINER,
            op::CREATE_TTL,
        ]),
        text(),
        option::of(bytes()),
        acls(),
        any::<i32>(),
        any::<i64>(),
    )
        .prop_map(|(code, path, data, acl, flags, ttl)| Request::Create {
            op: code,
            path,
            data,
            acl,
            flags,
            // Only createTTL carries a TTL on the wire; the others read as -1.
            ttl: if code == op::CREATE_TTL { ttl } else { -1 },
        })
}

/// The operations ZooKeeper allows inside a `multi` (MultiOperationRecord).
fn multi_write_op() -> impl Strategy<Value = Request> {
    prop_oneof![
        create(),
        (text(), any::<i32>()).prop_map(|(path, version)| Request::Delete { path, version }),
        (text(), option::of(bytes()), any::<i32>()).prop_map(|(path, data, version)| {
            Request::SetData {
                path,
                data,
                version,
            }
        }),
        (text(), any::<i32>()).prop_map(|(path, version)| Request::Check { path, version }),
    ]
}

/// The operations ZooKeeper allows inside a `multiRead`.
fn multi_read_op() -> impl Strategy<Value = Request> {
    prop_oneof![
        (text(), any::<bool>()).prop_map(|(path, watch)| Request::GetChildren {
            path,
            watch,
            with_stat: false,
        }),
        (text(), any::<bool>()).prop_map(|(path, watch)| Request::GetData { path, watch }),
    ]
}

/// Every request type a client can send, each with arbitrary field values.
fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        create(),
        multi_write_op(),
        multi_read_op(),
        (text(), any::<bool>()).prop_map(|(path, watch)| Request::Exists { path, watch }),
        text().prop_map(|path| Request::GetAcl { path }),
        (text(), acls(), any::<i32>()).prop_map(|(path, acl, version)| Request::SetAcl {
            path,
            acl,
            version
        }),
        (text(), any::<bool>()).prop_map(|(path, watch)| Request::GetChildren {
            path,
            watch,
            with_stat: true,
        }),
        text().prop_map(|path| Request::Sync { path }),
        Just(Request::Ping),
        vec(multi_write_op(), 0..5).prop_map(Request::Multi),
        vec(multi_read_op(), 0..5).prop_map(Request::MultiRead),
        (text(), text(), text(), any::<i64>()).prop_map(|(joining, leaving, new_members, id)| {
            Request::Reconfig {
                joining,
                leaving,
                new_members,
                cur_config_id: id,
            }
        }),
        Just(Request::DeleteContainer),
        (text(), any::<i32>()).prop_map(|(path, kind)| Request::CheckWatches { path, kind }),
        (text(), any::<i32>()).prop_map(|(path, kind)| Request::RemoveWatches { path, kind }),
        (any::<i32>(), "[a-z]{0,8}", bytes()).prop_map(|(kind, scheme, auth)| Request::Auth {
            kind,
            scheme,
            auth
        }),
        (
            any::<i64>(),
            strings(),
            strings(),
            strings(),
            strings(),
            strings()
        )
            .prop_map(
                |(relative_zxid, data, exist, child, persistent, recursive)| {
                    Request::SetWatches(SetWatches {
                        relative_zxid,
                        data,
                        exist,
                        child,
                        persistent,
                        persistent_recursive: recursive,
                    })
                }
            ),
        Just(Request::Sasl),
        text().prop_map(|prefix| Request::GetEphemerals { prefix }),
        text().prop_map(|path| Request::GetAllChildrenNumber { path }),
        (text(), any::<i32>()).prop_map(|(path, mode)| Request::AddWatch { path, mode }),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

fn connect_request() -> impl Strategy<Value = ConnectRequest> {
    (
        any::<i32>(),
        any::<i64>(),
        any::<i32>(),
        any::<i64>(),
        bytes(),
        option::of(any::<bool>()),
    )
        .prop_map(
            |(pv, zxid, timeout, session, password, ro)| ConnectRequest {
                protocol_version: pv,
                last_zxid_seen: zxid,
                timeout_ms: timeout,
                session_id: session,
                password,
                read_only: ro.unwrap_or(false),
                has_read_only: ro.is_some(),
            },
        )
}

// ------------------------------------------------------------------ transactions

/// The transactions a multi may hold (single changes, and the error a failed op
/// leaves).
fn single_change() -> impl Strategy<Value = Txn> {
    prop_oneof![
        (
            prop::sample::select(vec![
                op::CREATE,
                op::CREATE2,
                op::CREATE_CONTAINER,
                op::CREATE_TTL
            ]),
            text(),
            option::of(bytes()),
            acls(),
            any::<i64>(),
            any::<i32>()
        )
            .prop_map(
                |(code, path, data, acl, owner, parent_cversion)| Txn::Create {
                    op: code,
                    path,
                    data,
                    acl,
                    owner,
                    parent_cversion,
                }
            ),
        text().prop_map(|path| Txn::Delete { path }),
        (text(), option::of(bytes()), any::<i32>()).prop_map(|(path, data, version)| {
            Txn::SetData {
                path,
                data,
                version,
            }
        }),
        (text(), acls(), any::<i32>()).prop_map(|(path, acl, aversion)| Txn::SetAcl {
            path,
            acl,
            aversion
        }),
        text().prop_map(|path| Txn::Check { path }),
        any::<i32>().prop_map(|code| Txn::Error { code }),
    ]
}

/// Every transaction type; `reconfig_text` makes a reconfiguration's data.
fn txn(reconfig_data: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Txn> {
    prop_oneof![
        single_change(),
        (any::<i32>(), bytes()).prop_map(|(timeout_ms, password)| Txn::CreateSession {
            timeout_ms,
            password
        }),
        Just(Txn::CloseSession),
        vec(single_change(), 0..5).prop_map(Txn::Multi),
        reconfig_data.prop_map(|data| Txn::Reconfig { data }),
    ]
}

fn record(reconfig_data: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = TxnRecord> {
    (
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
        any::<i32>(),
        txn(reconfig_data),
    )
        .prop_map(|(zxid, time, session, cxid, txn)| TxnRecord {
            zxid,
            time,
            session,
            cxid,
            txn,
        })
}

// ------------------------------------------------------------------ membership

/// A server spec in the canonical form `ServerSpec` writes.
fn server() -> impl Strategy<Value = Server> {
    (
        "[a-z][a-z0-9.-]{0,9}",
        1u16..,
        1u16..,
        option::of(prop::sample::select(vec![
            "participant",
            "observer",
            "OBSERVER",
        ])),
        option::of(("[a-z0-9.]{1,8}", 1u16..)),
    )
        .prop_map(|(host, q, e, role, client)| {
            // The two ports must differ.
            let e = if e == q {
                q.checked_add(1).unwrap_or(1)
            } else {
                e
            };
            let mut spec = format!("{host}:{q}:{e}");
            if let Some(r) = role {
                spec.push(':');
                spec.push_str(r);
            }
            if let Some((h, p)) = client {
                spec.push_str(&format!(";{h}:{p}"));
            }
            let s = ServerSpec::parse(0, &spec).expect("a well-formed spec");
            Server {
                spec: s.to_string(),
                observer: s.role == PeerRole::Observer,
            }
        })
}

fn membership() -> impl Strategy<Value = Membership> {
    (
        0i64..,
        proptest::collection::btree_map(0u64..=255, server(), 0..6),
    )
        .prop_map(|(version, servers)| Membership { version, servers })
}

fn membership_text() -> BoxedStrategy<Vec<u8>> {
    membership().prop_map(|m| m.to_text().into_bytes()).boxed()
}

// ------------------------------------------------------------------ peer messages

fn log_frame() -> impl Strategy<Value = LogFrame> {
    (
        any::<i64>(),
        any::<i64>(),
        vec(record(membership_text()), 0..3),
    )
        .prop_map(|(first, last, recs)| LogFrame {
            first,
            last,
            payload: Arc::new(encode_batch(&recs)),
        })
}

fn peer_msg() -> impl Strategy<Value = PeerMsg> {
    let state = prop::sample::select(vec![
        PeerState::Looking,
        PeerState::Following,
        PeerState::Leading,
        PeerState::Observing,
    ]);
    let mode = prop_oneof![
        Just(SyncMode::Diff),
        any::<i64>().prop_map(|zxid| SyncMode::Trunc { zxid }),
        (any::<i64>(), bytes()).prop_map(|(zxid, data)| SyncMode::Snap { zxid, data }),
    ];
    prop_oneof![
        (
            any::<u64>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            state,
            any::<i64>()
        )
            .prop_map(|(leader, zxid, peer_epoch, round, state, config_version)| {
                PeerMsg::Vote(Vote {
                    leader,
                    zxid,
                    peer_epoch,
                    round,
                    state,
                    config_version,
                })
            }),
        (any::<i64>(), any::<i64>(), any::<bool>()).prop_map(|(a, l, o)| {
            PeerMsg::FollowerInfo {
                accepted_epoch: a,
                last_zxid: l,
                observer: o,
            }
        }),
        any::<i64>().prop_map(|epoch| PeerMsg::LeaderInfo { epoch }),
        (
            any::<i64>(),
            any::<bool>(),
            any::<i64>(),
            any::<i64>(),
            vec(any::<i64>(), 0..4)
        )
            .prop_map(|(epoch, promise, current_epoch, last_zxid, epoch_ends)| {
                PeerMsg::AckEpoch {
                    epoch,
                    promise,
                    current_epoch,
                    last_zxid,
                    epoch_ends,
                }
            }),
        (any::<i64>(), mode, vec(log_frame(), 0..3)).prop_map(|(epoch, mode, frames)| {
            PeerMsg::Sync {
                epoch,
                mode,
                frames,
            }
        }),
        (any::<i64>(), any::<i64>(), any::<i64>()).prop_map(|(epoch, zxid, commit)| {
            PeerMsg::NewLeader {
                epoch,
                zxid,
                commit,
            }
        }),
        (any::<i64>(), any::<i64>())
            .prop_map(|(epoch, zxid)| PeerMsg::AckNewLeader { epoch, zxid }),
        (any::<i64>(), any::<i64>(), ".{0,40}").prop_map(|(epoch, commit, membership)| {
            PeerMsg::UpToDate {
                epoch,
                commit,
                membership,
            }
        }),
        log_frame().prop_map(PeerMsg::Proposal),
        any::<i64>().prop_map(|zxid| PeerMsg::Ack { zxid }),
        any::<i64>().prop_map(|zxid| PeerMsg::Commit { zxid }),
        (
            any::<i64>(),
            any::<i32>(),
            any::<i32>(),
            bytes(),
            vec(("[a-z]{0,6}", ".{0,10}"), 0..3)
        )
            .prop_map(
                |(session, cxid, opcode, body, auth)| PeerMsg::Request(Forward {
                    session,
                    cxid,
                    opcode,
                    body,
                    auth,
                })
            ),
        (any::<i64>(), any::<i32>(), any::<i64>()).prop_map(|(session, cxid, zxid)| {
            PeerMsg::SyncDone {
                session,
                cxid,
                zxid,
            }
        }),
        vec(any::<i64>(), 0..5).prop_map(|sessions| PeerMsg::Ping { sessions }),
        ".{0,60}".prop_map(|text| PeerMsg::Membership { text }),
    ]
}

// ------------------------------------------------------------------ snapshots

fn snapshot() -> impl Strategy<Value = keel_engine::snapshot::SnapshotData> {
    let node = (
        text(),
        option::of(bytes()),
        vec(
            (any::<i32>(), "[a-z]{0,6}", ".{0,8}").prop_map(|(perms, scheme, id)| {
                keel_engine::snapshot::SnapAcl { perms, scheme, id }
            }),
            0..2,
        ),
        any::<[i64; 6]>(),
        any::<[i32; 3]>(),
    )
        .prop_map(|(path, data, acl, l, i)| keel_engine::snapshot::SnapNode {
            path,
            data,
            acl,
            stat: keel_engine::tree::NodeStat {
                czxid: l[0],
                mzxid: l[1],
                pzxid: l[2],
                ctime: l[3],
                mtime: l[4],
                version: i[0],
                cversion: i[1],
                aversion: i[2],
                ephemeral_owner: l[5],
            },
        });
    let session = (any::<i64>(), any::<i32>(), bytes()).prop_map(|(id, timeout_ms, password)| {
        keel_engine::snapshot::SnapSession {
            id,
            timeout_ms,
            password,
        }
    });
    (any::<u64>(), vec(node, 0..4), vec(session, 0..3)).prop_map(|(last_zxid, nodes, sessions)| {
        keel_engine::snapshot::SnapshotData {
            last_zxid,
            nodes,
            sessions,
        }
    })
}

// ------------------------------------------------------------------ the properties

proptest! {
    /// A request encoded as a client encodes it decodes to itself; every truncation of
    /// it is an error.
    #[test]
    fn every_request_round_trips(req in request()) {
        let (code, bytes) = wire::encode_request(&req);
        prop_assert_eq!(Request::decode(code, &bytes), Ok(req.clone()));
        for cut in 0..bytes.len() {
            prop_assert!(
                Request::decode(code, &bytes[..cut]).is_err(),
                "{:?} cut to {} of {} bytes decoded", req, cut, bytes.len()
            );
        }
    }

    /// A whole multi (as a client sends it) is one request made of its operations.
    #[test]
    fn multi_members_are_the_operations_sent(ops in vec(multi_write_op(), 1..6)) {
        let (code, bytes) = wire::encode_request(&Request::Multi(ops.clone()));
        prop_assert_eq!(code, op::MULTI);
        match Request::decode(code, &bytes) {
            Ok(Request::Multi(got)) => prop_assert_eq!(got, ops),
            other => prop_assert!(false, "decoded as {:?}", other),
        }
    }

    #[test]
    fn connect_request_round_trips(c in connect_request()) {
        let bytes = wire::encode_connect(&c);
        prop_assert_eq!(ConnectRequest::decode(&bytes), Ok(c.clone()));
        // The readOnly byte is the only optional field.
        let min = bytes.len() - usize::from(c.has_read_only);
        for cut in 0..min {
            prop_assert!(ConnectRequest::decode(&bytes[..cut]).is_err());
        }
    }

    /// A log frame's payload (every transaction type, multis of single changes)
    /// decodes to the batch encoded; every truncation is an error.
    #[test]
    fn every_txn_batch_round_trips(
        recs in vec(record(bytes().boxed()), 0..4)
    ) {
        let bytes = encode_batch(&recs);
        prop_assert_eq!(decode_batch(&bytes), Ok(recs.clone()));
        let lone_reconfig = recs.len() == 1 && matches!(recs[0].txn, Txn::Reconfig { .. });
        prop_assert_eq!(batch_is_reconfig(&bytes), lone_reconfig);
        for cut in 0..bytes.len() {
            prop_assert!(decode_batch(&bytes[..cut]).is_err(), "cut to {}", cut);
        }
    }

    /// Every peer message decodes to itself; every truncation is an error.
    #[test]
    fn every_peer_message_round_trips(m in peer_msg()) {
        let bytes = m.encode();
        prop_assert_eq!(PeerMsg::decode(&bytes), Ok(m.clone()));
        for cut in 0..bytes.len() {
            prop_assert!(PeerMsg::decode(&bytes[..cut]).is_err(), "{} cut to {}", m.name(), cut);
        }
    }

    /// `/zookeeper/config` text reads back as the membership that wrote it, and each
    /// spec in it by the `server.N` grammar as itself.
    #[test]
    fn membership_text_round_trips(m in membership()) {
        let text = m.to_text();
        prop_assert_eq!(Membership::parse(&text), Ok(m.clone()));
        for (id, server) in &m.servers {
            let s = ServerSpec::parse(*id, &server.spec).expect("a canonical spec reads back");
            prop_assert_eq!(s.to_string(), server.spec.clone());
        }
    }

    /// A snapshot archive (what a leader sends in a SNAP) reads back as written.
    #[test]
    fn snapshot_archive_round_trips(s in snapshot()) {
        let bytes = s.to_bytes().unwrap();
        prop_assert_eq!(keel_engine::snapshot::SnapshotData::from_bytes(&bytes), Ok(s));
    }
}

/// Spot checks that the generators reach every type (a strategy that silently
/// stopped producing one would make the properties above vacuous for it).
#[test]
fn generators_cover_every_type() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut requests = BTreeMap::new();
    let mut txns = BTreeMap::new();
    let mut msgs = BTreeMap::new();
    for _ in 0..4000 {
        let r = request().new_tree(&mut runner).unwrap().current();
        requests.insert(wire::encode_request(&r).0, ());
        let t = record(bytes().boxed())
            .new_tree(&mut runner)
            .unwrap()
            .current();
        txns.insert(
            format!("{:?}", t.txn)
                .split([' ', '(', '{'])
                .next()
                .unwrap()
                .to_string(),
            (),
        );
        let m = peer_msg().new_tree(&mut runner).unwrap().current();
        msgs.insert(m.name(), ());
    }
    // Every client opcode Request::decode reads except createSession (the handshake
    // has its own record, ConnectRequest).
    let mut want: Vec<i32> = (1..=22).filter(|c| *c != 10).collect();
    want.extend([100, 101, 102, 103, 104, 105, 106, 107, -11]);
    let got: Vec<i32> = requests.keys().copied().collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(txns.len(), 10, "{:?}", txns.keys());
    assert_eq!(msgs.len(), 15, "{:?}", msgs.keys());
}
