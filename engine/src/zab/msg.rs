//! Messages between the servers of an ensemble and their byte encoding.
//!
//! The engine produces and consumes these values; the transport in `net` (or the
//! simulator) carries their encoding. A frame on the peer link is `u32 length` followed
//! by `encode()`'s bytes. Proposal payloads are the exact log-frame bytes the leader
//! appended to its own log, so a follower appends them unchanged.

use super::Sid;
use crate::jute::{JuteError, Reader, Result, Writer};

/// What a server says it is doing, in a vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    Looking = 0,
    Following = 1,
    Leading = 2,
    Observing = 3,
}

/// A leader-election notification: "I propose `leader`, whose last logged zxid is
/// `zxid` and current epoch `peer_epoch`", in election round `round`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub leader: Sid,
    pub zxid: i64,
    pub peer_epoch: i64,
    pub round: i64,
    pub state: PeerState,
    /// The version of the sender's membership in force: a server that sees a newer one
    /// than its own asks for it (by answering with its vote), one that sees an older
    /// one sends its own (`PeerMsg::Membership`).
    pub config_version: i64,
}

impl Vote {
    /// Votes are ordered by (epoch, last zxid, server id): the greatest wins.
    pub fn key(&self) -> (i64, i64, Sid) {
        (self.peer_epoch, self.zxid, self.leader)
    }
}

/// How a leader brings a follower's log in line with its own before broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMode {
    /// The follower's log is a prefix of the leader's: only the frames after it follow.
    Diff,
    /// The follower holds frames the leader does not: drop every frame after `zxid`.
    Trunc { zxid: i64 },
    /// Too far behind (or diverged inside a frame): replace state with this snapshot
    /// (an rkyv archive of `crate::snapshot::SnapshotData`).
    Snap { zxid: i64, data: Vec<u8> },
}

/// One log frame: the zxid range it holds and its payload (`txn::encode_batch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFrame {
    pub first: i64,
    pub last: i64,
    pub payload: std::sync::Arc<Vec<u8>>,
}

pub use crate::forward::{Forward, FWD_CLOSE_SESSION, FWD_CREATE_SESSION, FWD_SYNC};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMsg {
    /// Leader election (any state to any voter).
    Vote(Vote),
    /// Follower → leader, first message of discovery.
    FollowerInfo {
        accepted_epoch: i64,
        last_zxid: i64,
        observer: bool,
    },
    /// Leader → follower: the epoch it proposes to establish.
    LeaderInfo { epoch: i64 },
    /// Follower → leader, answering `LeaderInfo { epoch }`: what it has. `promise` is
    /// false when it had already accepted that epoch (ZooKeeper's -1): it may be
    /// synchronised, but does not count towards the quorum that establishes the epoch.
    /// `epoch_ends` is the zxid its log starts after (its snapshot's), then the last
    /// zxid of each epoch in its log, oldest first: the leader finds from it where the
    /// two logs part.
    AckEpoch {
        epoch: i64,
        promise: bool,
        current_epoch: i64,
        last_zxid: i64,
        epoch_ends: Vec<i64>,
    },
    /// Leader → follower: how to synchronise, then the frames that follow. Every
    /// message of discovery and synchronisation names its epoch, so a message of an
    /// earlier term still queued on the link is recognised and ignored.
    Sync {
        epoch: i64,
        mode: SyncMode,
        frames: Vec<LogFrame>,
    },
    /// Leader → follower: the end of synchronisation; the follower takes `epoch` as its
    /// current epoch once what it was sent is durable.
    ///
    /// `commit` is the leader's commit point: the follower applies what it was sent up
    /// to it before acknowledging, so that a reconfiguration committed there is in force
    /// here before our acks count in the new membership.
    NewLeader { epoch: i64, zxid: i64, commit: i64 },
    /// Follower → leader: synced and durable through `zxid`.
    AckNewLeader { epoch: i64, zxid: i64 },
    /// Leader → follower: broadcast begins; everything through `commit` is committed.
    /// `membership` is the leader's `/zookeeper/config` text as of `commit`: a server
    /// started with its own list (one about to be added) takes the ensemble's.
    UpToDate {
        epoch: i64,
        commit: i64,
        membership: String,
    },
    /// Leader → follower: one batch of transactions (a whole log frame).
    Proposal(LogFrame),
    /// Follower → leader: everything through `zxid` is durable here (cumulative).
    Ack { zxid: i64 },
    /// Leader → follower: everything through `zxid` is committed (cumulative).
    Commit { zxid: i64 },
    /// Follower → leader: a write or session request from one of its clients.
    Request(Forward),
    /// Leader → follower: the forwarded `sync` of (`session`, `cxid`) is answered.
    SyncDone { session: i64, cxid: i32, zxid: i64 },
    /// Heartbeat both ways; from a follower it carries the sessions that were active
    /// since its last ping, so the leader can keep them alive.
    Ping { sessions: Vec<i64> },
    /// Election: the sender's membership in force (`/zookeeper/config` text), sent to a
    /// server whose vote showed an older one, so that a server that missed
    /// reconfigurations (or was outside the membership) learns whom to count.
    Membership { text: String },
}

const T_VOTE: i32 = 1;
const T_FOLLOWER_INFO: i32 = 2;
const T_LEADER_INFO: i32 = 3;
const T_ACK_EPOCH: i32 = 4;
const T_SYNC: i32 = 5;
const T_NEW_LEADER: i32 = 6;
const T_ACK_NEW_LEADER: i32 = 7;
const T_UP_TO_DATE: i32 = 8;
const T_PROPOSAL: i32 = 9;
const T_ACK: i32 = 10;
const T_COMMIT: i32 = 11;
const T_REQUEST: i32 = 12;
const T_SYNC_DONE: i32 = 13;
const T_PING: i32 = 14;
const T_MEMBERSHIP: i32 = 15;

/// Largest body of a peer message that carries no bulk data (a vote, an epoch
/// handshake, an acknowledgement, a membership's text): 512 KiB, the bound ZooKeeper
/// puts on its election messages. A peer that announces more for one of these is
/// refused before the body is read.
pub const CONTROL_FRAME_MAX: usize = 512 << 10;

/// The most bytes a frame whose body starts with message tag `tag` may hold: `bulk`
/// (the transport's configured frame bound) for the messages that carry transactions,
/// snapshots or session lists, [`CONTROL_FRAME_MAX`] for the others, and 0 for a tag
/// no message has, so the transport can refuse a frame from its first 8 bytes.
pub fn frame_limit(tag: i32, bulk: usize) -> usize {
    match tag {
        T_SYNC | T_PROPOSAL | T_REQUEST | T_PING => bulk,
        T_VOTE..=T_MEMBERSHIP => CONTROL_FRAME_MAX.min(bulk),
        _ => 0,
    }
}

fn write_frame(w: &mut Writer, f: &LogFrame) {
    w.i64(f.first).i64(f.last).buffer(&f.payload);
}

/// A log frame from a peer, checked before anything here keeps it: its payload must
/// decode, and a reconfiguration's text must parse. Applying happens later, once the
/// frame is committed, where an undecodable frame could only stop this server; refused
/// here, it costs only the link it came on.
fn read_frame(r: &mut Reader) -> Result<LogFrame> {
    let first = r.i64()?;
    let last = r.i64()?;
    let payload = r.bytes()?;
    let recs = crate::txn::decode_batch(&payload)
        .map_err(|e| JuteError::Invalid(format!("log frame 0x{first:x}..0x{last:x}: {e}")))?;
    for rec in &recs {
        if let crate::txn::Txn::Reconfig { data } = &rec.txn {
            let text = std::str::from_utf8(data).map_err(|_| {
                JuteError::Invalid(format!("reconfiguration 0x{:x} is not UTF-8", rec.zxid))
            })?;
            super::membership::Membership::parse(text).map_err(|e| {
                JuteError::Invalid(format!("reconfiguration 0x{:x}: {}", rec.zxid, e.0))
            })?;
        }
    }
    Ok(LogFrame {
        first,
        last,
        payload: std::sync::Arc::new(payload),
    })
}

impl PeerMsg {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            PeerMsg::Vote(_) => "vote",
            PeerMsg::FollowerInfo { .. } => "followerinfo",
            PeerMsg::LeaderInfo { .. } => "leaderinfo",
            PeerMsg::AckEpoch { .. } => "ackepoch",
            PeerMsg::Sync { .. } => "sync",
            PeerMsg::NewLeader { .. } => "newleader",
            PeerMsg::AckNewLeader { .. } => "acknewleader",
            PeerMsg::UpToDate { .. } => "uptodate",
            PeerMsg::Proposal(_) => "proposal",
            PeerMsg::Ack { .. } => "ack",
            PeerMsg::Commit { .. } => "commit",
            PeerMsg::Request(_) => "request",
            PeerMsg::SyncDone { .. } => "syncdone",
            PeerMsg::Ping { .. } => "ping",
            PeerMsg::Membership { .. } => "membership",
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            PeerMsg::Vote(v) => {
                w.i32(T_VOTE)
                    .i64(v.leader as i64)
                    .i64(v.zxid)
                    .i64(v.peer_epoch)
                    .i64(v.round)
                    .i32(v.state as i32)
                    .i64(v.config_version);
            }
            PeerMsg::FollowerInfo {
                accepted_epoch,
                last_zxid,
                observer,
            } => {
                w.i32(T_FOLLOWER_INFO)
                    .i64(*accepted_epoch)
                    .i64(*last_zxid)
                    .bool(*observer);
            }
            PeerMsg::LeaderInfo { epoch } => {
                w.i32(T_LEADER_INFO).i64(*epoch);
            }
            PeerMsg::AckEpoch {
                epoch,
                promise,
                current_epoch,
                last_zxid,
                epoch_ends,
            } => {
                w.i32(T_ACK_EPOCH)
                    .i64(*epoch)
                    .bool(*promise)
                    .i64(*current_epoch)
                    .i64(*last_zxid)
                    .i32(epoch_ends.len() as i32);
                for z in epoch_ends {
                    w.i64(*z);
                }
            }
            PeerMsg::Sync {
                epoch,
                mode,
                frames,
            } => {
                w.i32(T_SYNC).i64(*epoch);
                match mode {
                    SyncMode::Diff => {
                        w.i32(0);
                    }
                    SyncMode::Trunc { zxid } => {
                        w.i32(1).i64(*zxid);
                    }
                    SyncMode::Snap { zxid, data } => {
                        w.i32(2).i64(*zxid).buffer(data);
                    }
                }
                w.i32(frames.len() as i32);
                for f in frames {
                    write_frame(&mut w, f);
                }
            }
            PeerMsg::NewLeader {
                epoch,
                zxid,
                commit,
            } => {
                w.i32(T_NEW_LEADER).i64(*epoch).i64(*zxid).i64(*commit);
            }
            PeerMsg::AckNewLeader { epoch, zxid } => {
                w.i32(T_ACK_NEW_LEADER).i64(*epoch).i64(*zxid);
            }
            PeerMsg::UpToDate {
                epoch,
                commit,
                membership,
            } => {
                w.i32(T_UP_TO_DATE)
                    .i64(*epoch)
                    .i64(*commit)
                    .string(membership);
            }
            PeerMsg::Proposal(f) => {
                w.i32(T_PROPOSAL);
                write_frame(&mut w, f);
            }
            PeerMsg::Ack { zxid } => {
                w.i32(T_ACK).i64(*zxid);
            }
            PeerMsg::Commit { zxid } => {
                w.i32(T_COMMIT).i64(*zxid);
            }
            PeerMsg::Request(f) => {
                w.i32(T_REQUEST)
                    .i64(f.session)
                    .i32(f.cxid)
                    .i32(f.opcode)
                    .buffer(&f.body)
                    .i32(f.auth.len() as i32);
                for (s, id) in &f.auth {
                    w.string(s).string(id);
                }
            }
            PeerMsg::SyncDone {
                session,
                cxid,
                zxid,
            } => {
                w.i32(T_SYNC_DONE).i64(*session).i32(*cxid).i64(*zxid);
            }
            PeerMsg::Ping { sessions } => {
                w.i32(T_PING).i32(sessions.len() as i32);
                for s in sessions {
                    w.i64(*s);
                }
            }
            PeerMsg::Membership { text } => {
                w.i32(T_MEMBERSHIP).string(text);
            }
        }
        w.buf
    }

    pub fn decode(buf: &[u8]) -> Result<PeerMsg> {
        let mut r = Reader::new(buf);
        let t = r.i32()?;
        let m = match t {
            T_VOTE => PeerMsg::Vote(Vote {
                leader: r.i64()? as Sid,
                zxid: r.i64()?,
                peer_epoch: r.i64()?,
                round: r.i64()?,
                state: match r.i32()? {
                    0 => PeerState::Looking,
                    1 => PeerState::Following,
                    2 => PeerState::Leading,
                    3 => PeerState::Observing,
                    other => return Err(JuteError::Invalid(format!("peer state {other}"))),
                },
                config_version: r.i64()?,
            }),
            T_FOLLOWER_INFO => PeerMsg::FollowerInfo {
                accepted_epoch: r.i64()?,
                last_zxid: r.i64()?,
                observer: r.bool()?,
            },
            T_LEADER_INFO => PeerMsg::LeaderInfo { epoch: r.i64()? },
            T_ACK_EPOCH => {
                let epoch = r.i64()?;
                let promise = r.bool()?;
                let current_epoch = r.i64()?;
                let last_zxid = r.i64()?;
                let n = r.vec_len(8)?;
                let mut epoch_ends = Vec::with_capacity(n);
                for _ in 0..n {
                    epoch_ends.push(r.i64()?);
                }
                PeerMsg::AckEpoch {
                    epoch,
                    promise,
                    current_epoch,
                    last_zxid,
                    epoch_ends,
                }
            }
            T_SYNC => {
                let epoch = r.i64()?;
                let mode = match r.i32()? {
                    0 => SyncMode::Diff,
                    1 => SyncMode::Trunc { zxid: r.i64()? },
                    2 => SyncMode::Snap {
                        zxid: r.i64()?,
                        data: r.bytes()?,
                    },
                    other => return Err(JuteError::Invalid(format!("sync mode {other}"))),
                };
                let n = r.vec_len(20)?;
                let mut frames = Vec::with_capacity(n);
                for _ in 0..n {
                    frames.push(read_frame(&mut r)?);
                }
                PeerMsg::Sync {
                    epoch,
                    mode,
                    frames,
                }
            }
            T_NEW_LEADER => PeerMsg::NewLeader {
                epoch: r.i64()?,
                zxid: r.i64()?,
                commit: r.i64()?,
            },
            T_ACK_NEW_LEADER => PeerMsg::AckNewLeader {
                epoch: r.i64()?,
                zxid: r.i64()?,
            },
            T_UP_TO_DATE => PeerMsg::UpToDate {
                epoch: r.i64()?,
                commit: r.i64()?,
                membership: r.string()?,
            },
            T_PROPOSAL => PeerMsg::Proposal(read_frame(&mut r)?),
            T_ACK => PeerMsg::Ack { zxid: r.i64()? },
            T_COMMIT => PeerMsg::Commit { zxid: r.i64()? },
            T_REQUEST => {
                let session = r.i64()?;
                let cxid = r.i32()?;
                let opcode = r.i32()?;
                let body = r.bytes()?;
                let n = r.vec_len(8)?;
                let mut auth = Vec::with_capacity(n);
                for _ in 0..n {
                    auth.push((r.string()?, r.string()?));
                }
                PeerMsg::Request(Forward {
                    session,
                    cxid,
                    opcode,
                    body,
                    auth,
                })
            }
            T_SYNC_DONE => PeerMsg::SyncDone {
                session: r.i64()?,
                cxid: r.i32()?,
                zxid: r.i64()?,
            },
            T_PING => {
                let n = r.vec_len(8)?;
                let mut sessions = Vec::with_capacity(n);
                for _ in 0..n {
                    sessions.push(r.i64()?);
                }
                PeerMsg::Ping { sessions }
            }
            T_MEMBERSHIP => PeerMsg::Membership { text: r.string()? },
            other => return Err(JuteError::Invalid(format!("peer message type {other}"))),
        };
        r.finish()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let rec = |zxid| crate::txn::TxnRecord {
            zxid,
            time: 1,
            session: 2,
            cxid: 3,
            txn: crate::txn::Txn::Delete { path: "/a".into() },
        };
        let frame = LogFrame {
            first: 5,
            last: 7,
            payload: std::sync::Arc::new(crate::txn::encode_batch(&[rec(5), rec(6), rec(7)])),
        };
        let msgs = vec![
            PeerMsg::Vote(Vote {
                leader: 3,
                zxid: 1 << 32 | 9,
                peer_epoch: 1,
                round: 4,
                state: PeerState::Looking,
                config_version: 1 << 32 | 3,
            }),
            PeerMsg::Membership {
                text: "server.1=h:1:2:participant\nversion=100000003".into(),
            },
            PeerMsg::FollowerInfo {
                accepted_epoch: 2,
                last_zxid: 77,
                observer: true,
            },
            PeerMsg::LeaderInfo { epoch: 3 },
            PeerMsg::AckEpoch {
                epoch: 3,
                promise: false,
                current_epoch: 2,
                last_zxid: 9,
                epoch_ends: vec![1 << 32 | 4, 2 << 32 | 9],
            },
            PeerMsg::Sync {
                epoch: 3,
                mode: SyncMode::Diff,
                frames: vec![frame.clone()],
            },
            PeerMsg::Sync {
                epoch: 3,
                mode: SyncMode::Trunc { zxid: 4 },
                frames: vec![],
            },
            PeerMsg::Sync {
                epoch: 3,
                mode: SyncMode::Snap {
                    zxid: 4,
                    data: vec![9; 10],
                },
                frames: vec![frame.clone(), frame.clone()],
            },
            PeerMsg::NewLeader {
                epoch: 3,
                zxid: 8,
                commit: 6,
            },
            PeerMsg::AckNewLeader { epoch: 3, zxid: 8 },
            PeerMsg::UpToDate {
                epoch: 3,
                commit: 8,
                membership: "server.1=h:1:2:participant\nversion=0".into(),
            },
            PeerMsg::Proposal(frame),
            PeerMsg::Ack { zxid: 8 },
            PeerMsg::Commit { zxid: 8 },
            PeerMsg::Request(Forward {
                session: 0x100,
                cxid: 3,
                opcode: 5,
                body: vec![0, 1],
                auth: vec![("ip".into(), "127.0.0.1".into())],
            }),
            PeerMsg::SyncDone {
                session: 1,
                cxid: 2,
                zxid: 3,
            },
            PeerMsg::Ping {
                sessions: vec![1, 2, 3],
            },
        ];
        for m in msgs {
            let bytes = m.encode();
            assert_eq!(PeerMsg::decode(&bytes).unwrap(), m, "{}", m.name());
            // Every message's tag has a frame bound its own encoding fits in.
            let tag = i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            assert!(frame_limit(tag, 1 << 30) >= bytes.len(), "{}", m.name());
        }
        assert_eq!(frame_limit(T_VOTE, 1 << 30), CONTROL_FRAME_MAX);
        assert_eq!(frame_limit(T_PROPOSAL, 1 << 30), 1 << 30);
        assert_eq!(frame_limit(T_MEMBERSHIP + 1, 1 << 30), 0);
        assert_eq!(frame_limit(0, 1 << 30), 0);
    }

    /// A proposal or sync frame is refused at the link when its payload does not decode
    /// or its reconfiguration does not parse: applied later, it could only stop us.
    #[test]
    fn undecodable_frames_are_refused_at_the_link() {
        let reconfig = |text: &str| {
            crate::txn::encode_batch(&[crate::txn::TxnRecord {
                zxid: 9,
                time: 1,
                session: 0,
                cxid: 0,
                txn: crate::txn::Txn::Reconfig {
                    data: text.as_bytes().to_vec(),
                },
            }])
        };
        let good = reconfig("server.1=h:1:2:participant;h:3\nversion=9");
        for (payload, ok) in [
            (good, true),
            (vec![1, 2, 3], false),
            (reconfig("server.x=garbage"), false),
        ] {
            let frame = LogFrame {
                first: 9,
                last: 9,
                payload: std::sync::Arc::new(payload),
            };
            for m in [
                PeerMsg::Proposal(frame.clone()),
                PeerMsg::Sync {
                    epoch: 1,
                    mode: SyncMode::Diff,
                    frames: vec![frame.clone()],
                },
            ] {
                assert_eq!(PeerMsg::decode(&m.encode()).is_ok(), ok, "{}", m.name());
            }
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(PeerMsg::decode(&[0, 0, 0, 99]).is_err());
        assert!(PeerMsg::decode(&[0, 0]).is_err());
        assert!(PeerMsg::decode(&PeerMsg::Ack { zxid: 1 }.encode()[..6]).is_err());
    }
}
