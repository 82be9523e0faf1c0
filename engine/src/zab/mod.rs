//! The ensemble: ZAB-style atomic broadcast around the data engine, as a sans-I/O state
//! machine. A [`Replica`] owns one [`Engine`](crate::Engine) in replicated mode (its
//! tree only ever holds committed transactions) and the protocol state: election,
//! discovery, synchronisation and broadcast. The caller feeds [`ReplicaInput`]s and
//! carries out [`ReplicaOutput`]s: sockets, the log and the clock live outside, in
//! `net` in production and in the simulator (`keel-sim`) under test.
//!
//! Phases, as in ZooKeeper:
//! 1. **Election** (`Looking`): votes ordered by (current epoch, last logged zxid, id);
//!    a server follows the vote a quorum of voters agrees on.
//! 2. **Discovery**: followers send `FollowerInfo`; the leader picks an epoch above
//!    every accepted epoch it heard from a quorum (`LeaderInfo`); followers persist it
//!    as their accepted epoch and answer `AckEpoch`.
//! 3. **Synchronisation**: the leader sends each follower `Sync` (DIFF, TRUNC or SNAP,
//!    then frames) and `NewLeader`; once a quorum has it durable (`AckNewLeader`) the
//!    leader's whole log is committed and `UpToDate` starts broadcast.
//! 4. **Broadcast**: the leader preps requests against a speculative copy of the tree
//!    (committed state plus its outstanding proposals), batches the transactions into
//!    one log frame, appends it and sends it as a `Proposal`; it commits a frame when a
//!    quorum of voters (itself included) has acked it durable, and announces `Commit`.
//!    Every server applies committed frames in zxid order through the one apply path
//!    and answers its own clients from the result.
//!
//! Contracts for the caller (carried out by [`effects::execute`], which every driver
//! uses):
//! - Outputs are carried out in the order they are drained. `TruncateLog`,
//!   `InstallSnapshot` and `SaveEpochs` are synchronous and durable before the caller
//!   handles the next output; `Persist` is asynchronous, reported by `Durable`.
//! - `Durable { zxid }` means every frame persisted with `last_zxid <= zxid` (and still
//!   in the log) is on disk.
//! - A broken peer link is reported with `PeerDown`; messages on a link arrive in the
//!   order sent, or not at all after a `PeerDown` (the protocol re-synchronises).
//! - A log or snapshot I/O error is fail-stop: the process exits.

pub mod effects;
mod election;
mod follower;
mod leader;
mod log;
pub mod membership;
pub mod msg;
pub mod quorum;
mod replica;
pub mod server_spec;
mod shared;

pub use membership::{Membership, Refused};
pub use msg::{Forward, LogFrame, PeerMsg, PeerState, SyncMode, Vote};

/// A server id (`myid`, the N of `server.N`).
pub type Sid = u64;
pub use replica::Replica;

use crate::server::Input;

/// Ensemble settings (from `zoo.cfg`).
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// This server's id (`myid`).
    pub my_id: Sid,
    /// Voting members (`server.N=...` participants), this one included if it votes.
    pub voters: Vec<Sid>,
    /// Non-voting members that receive commits (`:observer`).
    pub observers: Vec<Sid>,
    /// `tickTime` in ms.
    pub tick_ms: i64,
    /// `initLimit` in ticks: how long discovery and synchronisation may take.
    pub init_limit: i64,
    /// `syncLimit` in ticks: how long a follower may go unheard (and a leader without a
    /// quorum) before giving up its role.
    pub sync_limit: i64,
    /// `keel.leaderSilenceMs` (opt-in; `None`: off, ZooKeeper's behaviour): how long a
    /// follower may go without hearing its leader, and a leader without hearing a
    /// quorum, before giving up its role, when that is shorter than `syncLimit` ticks.
    /// The leader then pings four times in that interval. See [`Self::silence_ms`].
    pub leader_silence_ms: Option<i64>,
    /// Most transactions in one proposal frame.
    pub max_batch_txns: usize,
    /// Transactions of recent frames kept in memory to synchronise followers by DIFF;
    /// a follower further behind gets a snapshot.
    pub history_txns: usize,
    /// Record every applied (zxid, digest) for [`Replica::take_applied`] (simulator).
    pub record_applied: bool,
    /// `readonlymode.enabled`: while cut off from a quorum, serve reads to clients
    /// that asked for read-only sessions.
    pub read_only_mode: bool,
    /// `reconfigEnabled`: the leader accepts `reconfig` requests.
    pub reconfig_enabled: bool,
    /// `standaloneEnabled` (default true): as in ZooKeeper, a reconfiguration may then
    /// not leave fewer than two voters.
    pub standalone_enabled: bool,
    /// The membership to start with, chosen by the caller ([`Membership::newest`] of
    /// `zoo.cfg`'s, the saved one and the snapshot's); the replica writes it to
    /// `/zookeeper/config` and takes `voters` and `observers` from it. `None` (the
    /// simulator's first start, tests): [`Membership::placeholder`] of `voters` and
    /// `observers`.
    pub membership: Option<Membership>,
    /// The voters of a reconfiguration this server has logged but not applied yet
    /// (ZooKeeper's "last seen" configuration). While there is one, every quorum is a
    /// quorum of both memberships. Kept by the replica; `None` when built.
    pub next_voters: Option<Vec<Sid>>,
    /// The observers of that reconfiguration.
    pub next_observers: Vec<Sid>,
    /// The version of the membership in force (kept by the replica; election votes
    /// carry it).
    pub membership_version: i64,
}

impl ReplicaConfig {
    pub fn new(my_id: Sid, voters: Vec<Sid>) -> ReplicaConfig {
        ReplicaConfig {
            my_id,
            voters,
            observers: Vec::new(),
            tick_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            leader_silence_ms: None,
            max_batch_txns: 1000,
            history_txns: 100_000,
            record_applied: false,
            read_only_mode: false,
            reconfig_enabled: false,
            standalone_enabled: true,
            membership: None,
            next_voters: None,
            next_observers: Vec::new(),
            membership_version: 0,
        }
    }

    /// How long a broadcast-phase follower may go without hearing its leader, and a
    /// leader without hearing a quorum: `syncLimit` ticks, or `leader_silence_ms` when
    /// set and shorter. A shorter window notices a silent (partitioned, paused) leader
    /// sooner, at the price of an election whenever a leader or its link stalls that
    /// long (a long fsync, a GC-like pause, a saturated link).
    pub fn silence_ms(&self) -> i64 {
        let sync = self.sync_limit * self.tick_ms;
        self.leader_silence_ms
            .map_or(sync, |s| s.clamp(1, sync.max(1)))
    }

    /// How often a leader pings its learners (and they answer): every half tick, at
    /// most every second, and four times per [`Self::silence_ms`] window.
    pub fn ping_interval_ms(&self) -> i64 {
        (self.tick_ms / 2)
            .clamp(1, 1000)
            .min((self.silence_ms() / 4).max(1))
    }

    pub fn is_observer(&self) -> bool {
        self.observers.contains(&self.my_id)
    }

    /// Everyone but this server, in the membership and in a pending one.
    pub fn peers(&self) -> Vec<Sid> {
        let mut v: Vec<Sid> = self
            .voters
            .iter()
            .chain(self.observers.iter())
            .chain(self.next_voters.iter().flatten())
            .chain(self.next_observers.iter())
            .copied()
            .filter(|s| *s != self.my_id)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// A voter of the membership or of a pending one: its vote and acks count.
    pub fn is_voter(&self, s: Sid) -> bool {
        self.voters.contains(&s) || self.next_voters.as_ref().is_some_and(|n| n.contains(&s))
    }

    /// Whether the servers `yes` picks are a quorum: a majority of the voters, and of
    /// a pending reconfiguration's voters too while there is one.
    pub fn has_quorum(&self, yes: impl FnMut(Sid) -> bool) -> bool {
        quorum::joint(&self.voters, self.next_voters.as_deref(), yes)
    }

    /// The highest zxid a quorum (as [`has_quorum`](Self::has_quorum) counts) has
    /// reached, given each voter's zxid (`None`: not counted).
    pub fn quorum_zxid(&self, of: impl Fn(Sid) -> Option<i64>) -> Option<i64> {
        quorum::joint_zxid(&self.voters, self.next_voters.as_deref(), of)
    }
}

/// The `Sync` message of a SNAP ([`ReplicaOutput::SendSnapshot`]): the view's archive,
/// then the frames after it.
pub fn snap_sync(
    epoch: i64,
    view: crate::server::SnapshotView,
    frames: Vec<LogFrame>,
) -> Result<PeerMsg, crate::snapshot::EncodeError> {
    let zxid = view.last_zxid();
    let data = view.into_data().to_bytes()?;
    Ok(PeerMsg::Sync {
        epoch,
        mode: SyncMode::Snap { zxid, data },
        frames,
    })
}

pub use quorum::majority_zxid;

/// The two epochs ZAB persists (ZooKeeper's `acceptedEpoch` and `currentEpoch` files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Epochs {
    /// The newest epoch this server promised to follow (`LeaderInfo` accepted).
    pub accepted: i64,
    /// The epoch of the newest leader this server completed synchronisation with.
    pub current: i64,
}

/// What a server is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Looking,
    /// Following `leader`, not yet serving (discovery or synchronisation).
    Syncing {
        leader: Sid,
    },
    /// Broadcast phase as a follower or observer: serving clients.
    Following {
        leader: Sid,
    },
    /// Won the election, establishing the epoch (discovery, synchronisation).
    Establishing,
    /// Broadcast phase as the leader: serving clients.
    Leading,
}

impl Role {
    pub fn is_serving(&self) -> bool {
        matches!(self, Role::Following { .. } | Role::Leading)
    }

    /// The name ZooKeeper's `srvr` / `mntr` use for the server's state.
    pub fn zk_name(&self, observer: bool) -> &'static str {
        match self {
            Role::Leading => "leader",
            _ if observer => "observer",
            Role::Following { .. } => "follower",
            Role::Syncing { .. } | Role::Establishing | Role::Looking => "looking",
        }
    }
}

#[derive(Debug)]
pub enum ReplicaInput {
    /// The wall clock, in ms since the epoch. Feed it before each batch of inputs.
    Tick { now_ms: i64 },
    /// A client connection's event (`Connect`, `Request` or `Disconnected`).
    Client(Input),
    /// A message from another server.
    Peer { from: Sid, msg: PeerMsg },
    /// The link to `peer` broke: messages sent to it since may be lost.
    PeerDown { peer: Sid },
    /// The log has made everything through `zxid` durable.
    Durable { zxid: i64 },
}

#[derive(Debug)]
pub enum ReplicaOutput {
    /// A frame for a client connection, or a close. (Never a log append: a member's
    /// engine only applies committed frames, and its log frames are `Persist`.)
    Client(ClientOutput),
    /// A message for another server.
    Peer { to: Sid, msg: PeerMsg },
    /// Append this frame to the log (asynchronous; reported by `Durable`).
    Persist(LogFrame),
    /// Remove every log frame after `after` (synchronous, durable).
    TruncateLog { after: i64 },
    /// Make this the newest snapshot, remove any newer one, and empty the log
    /// (synchronous, durable): the leader's state replaces ours.
    InstallSnapshot { data: crate::snapshot::SnapshotData },
    /// Persist the epochs (synchronous, durable).
    SaveEpochs(Epochs),
    /// The role changed (for logs, `srvr` and tests).
    Role { role: Role, epoch: i64 },
    /// Synchronise `to` by SNAP: send it [`snap_sync`]`(epoch, view, frames)`, then
    /// `then` (its `NewLeader`), before anything else for `to`. Turning the view into an
    /// archive is O(tree): the caller does it off the thread that drives the replica
    /// (the view is a copy-on-write clone, so that is safe), keeping this order.
    SendSnapshot {
        to: Sid,
        epoch: i64,
        view: crate::server::SnapshotView,
        frames: Vec<LogFrame>,
        then: PeerMsg,
    },
    /// The membership changed: `text` is `/zookeeper/config`'s new text. `committed`:
    /// this server now runs with it, and the caller persists it (synchronous, durable)
    /// so that a restart starts from it; otherwise it is a logged reconfiguration not
    /// yet committed, whose new servers the caller should be able to reach.
    Membership { text: String, committed: bool },
}

/// What a member's engine has for its clients: the engine's [`Output`](crate::Output) without the
/// log append a standalone engine makes, so no driver has to reject one.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientOutput {
    Send {
        conn: u64,
        frame: Vec<u8>,
    },
    /// Close after sending what was queued before it.
    Close {
        conn: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arithmetic is tested in `quorum`; this checks that the configuration feeds
    /// it the membership in force and the pending one.
    #[test]
    fn the_config_counts_in_force_and_pending_voters() {
        let mut c = ReplicaConfig::new(1, vec![1, 2, 3]);
        assert!(c.has_quorum(|s| s <= 2));
        c.next_voters = Some(vec![1, 4, 5]);
        assert!(
            !c.has_quorum(|s| s <= 2),
            "the pending voters need a majority too"
        );
        assert!(c.has_quorum(|s| [1, 2, 4].contains(&s)));
        assert!(c.is_voter(4) && !c.is_voter(6));
        let acked = |s: Sid| Some(s as i64 * 10);
        assert_eq!(c.quorum_zxid(acked), Some(20));
    }
}
