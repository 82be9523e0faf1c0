//! A small ensemble on a perfect in-memory network with disks that are durable at
//! once: the protocol's happy paths (election, sync, broadcast, forwarding, leader
//! failover, a restarted member catching up). Faults are the simulator's job
//! (`keel-sim`).

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::ControlFlow;

use keel_engine::jute::{Reader, Writer};
use keel_engine::proto::{op, write_acls, Acl, ConnectRequest};
use keel_engine::zab::{
    effects, Epochs, LogFrame, Membership, PeerMsg, Replica, ReplicaConfig, ReplicaInput, Role, Sid,
};
use keel_engine::{Engine, EngineConfig, Input};

const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
const TICK: i64 = 100;

#[derive(Default)]
struct Disk {
    frames: Vec<LogFrame>,
    epochs: Epochs,
    snapshot: Option<keel_engine::snapshot::SnapshotData>,
    /// The last committed membership (`ReplicaOutput::Membership`), as net saves it.
    membership: Option<String>,
}

struct Node {
    r: Option<Replica>,
    disk: Disk,
    replies: Vec<(u64, Vec<u8>)>,
    /// Frames written but not yet durable while this server's disk is stalled
    /// (`Cluster::stalled`); a crash loses them.
    unsynced: Vec<LogFrame>,
}

struct Cluster {
    nodes: BTreeMap<Sid, Node>,
    net: VecDeque<(Sid, Sid, PeerMsg)>,
    now: i64,
    ids: Vec<Sid>,
    observers: Vec<Sid>,
    read_only: bool,
    /// (localSessionsEnabled, localSessionsUpgradingEnabled)
    local: (bool, bool),
    /// Messages to this server wait in `held` (a slow link) until released.
    hold: Option<Sid>,
    /// This server gets no ticks (with `hold`: a process stopped by SIGSTOP).
    frozen: Option<Sid>,
    /// tickTime of servers started from now on.
    tick: i64,
    /// This server's log writes never become durable (a stalled disk): they wait in
    /// `Node::unsynced`, and a crash loses them.
    stalled: Option<Sid>,
    held: Vec<(Sid, Sid, PeerMsg)>,
    /// `reconfigEnabled`.
    reconfig: bool,
    /// `keel.leaderSilenceMs` of servers started from now on.
    silence: Option<i64>,
}

fn engine(id: Sid, now: i64, local: (bool, bool)) -> Engine {
    Engine::new(
        EngineConfig {
            local_sessions: local.0,
            local_sessions_upgrading: local.1,
            server_id: id as i64,
            tick_ms: TICK as i32,
            super_digest: Some(keel_engine::acl::digest_id("super:secret")),
            min_session_timeout_ms: 2000,
            max_session_timeout_ms: 20000,
            ..Default::default()
        },
        now,
    )
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        Cluster::with_observers(n, 0)
    }

    /// `n` voters (ids 1..=n) and `o` observers (the ids after them).
    fn with_observers(n: u64, o: u64) -> Cluster {
        let ids: Vec<Sid> = (1..=n + o).collect();
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            net: VecDeque::new(),
            now: 1_000_000,
            ids: ids.clone(),
            observers: (n + 1..=n + o).collect(),
            read_only: false,
            local: (false, false),
            hold: None,
            frozen: None,
            tick: TICK,
            stalled: None,
            held: Vec::new(),
            reconfig: true,
            silence: None,
        };
        for id in ids {
            c.nodes.insert(
                id,
                Node {
                    r: None,
                    disk: Disk::default(),
                    replies: vec![],
                    unsynced: vec![],
                },
            );
            c.start(id);
        }
        c
    }

    /// Three servers restarted with `tickTime` `tick` and `keel.leaderSilenceMs`
    /// `silence`, serving.
    fn restarted_with(tick: i64, silence: Option<i64>) -> Cluster {
        let mut c = Cluster::new(3);
        c.tick = tick;
        c.silence = silence;
        for id in 1..=3 {
            c.crash(id);
        }
        for id in 1..=3 {
            c.start(id);
        }
        c.run_until("all serving", |c| c.serving() == 3);
        c
    }

    fn cfg(&self, id: Sid) -> ReplicaConfig {
        let voters = self
            .ids
            .iter()
            .copied()
            .filter(|i| !self.observers.contains(i))
            .collect();
        let mut cfg = ReplicaConfig::new(id, voters);
        cfg.observers = self.observers.clone();
        cfg.tick_ms = self.tick;
        cfg.leader_silence_ms = self.silence;
        cfg.history_txns = 20;
        cfg.record_applied = true;
        cfg.read_only_mode = self.read_only;
        cfg.reconfig_enabled = self.reconfig;
        if let Some(text) = &self.nodes[&id].disk.membership {
            cfg.membership = Some(Membership::parse(text).unwrap());
        }
        cfg
    }

    fn start(&mut self, id: Sid) {
        let cfg = self.cfg(id);
        let now = self.now;
        let local = self.local;
        let n = self.nodes.get_mut(&id).unwrap();
        let mut e = engine(id, now, local);
        if let Some(s) = &n.disk.snapshot {
            e.load_snapshot(s);
        }
        let base = e.last_zxid();
        let frames = n
            .disk
            .frames
            .iter()
            .filter(|f| f.first > base)
            .cloned()
            .collect();
        n.r = Some(Replica::new(cfg, e, n.disk.epochs, frames, now));
        self.drain(id);
    }

    fn crash(&mut self, id: Sid) {
        let n = self.nodes.get_mut(&id).unwrap();
        n.r = None;
        n.unsynced.clear();
        self.net.retain(|(f, t, _)| *f != id && *t != id);
        for other in self.ids.clone() {
            if other != id {
                self.input(other, ReplicaInput::PeerDown { peer: id });
            }
        }
    }

    fn input(&mut self, id: Sid, i: ReplicaInput) {
        let Some(r) = self.nodes.get_mut(&id).unwrap().r.as_mut() else {
            return;
        };
        r.step(i);
        self.drain(id);
    }

    fn drain(&mut self, id: Sid) {
        let mut out = Vec::new();
        let n = self.nodes.get_mut(&id).unwrap();
        let Some(r) = n.r.as_mut() else { return };
        r.drain(&mut out);
        let mut fx = NodeFx {
            id,
            node: n,
            net: &mut self.net,
            stalled: self.stalled == Some(id),
            durable: None,
        };
        let _ = effects::execute(out, &mut fx);
        if let Some(z) = fx.durable {
            self.input(id, ReplicaInput::Durable { zxid: z });
        }
    }

    /// Delivers messages and advances time by `ms` in ticks.
    fn run(&mut self, ms: i64) {
        let end = self.now + ms;
        while self.now < end {
            let mut delivered = 0;
            while let Some((from, to, msg)) = self.net.pop_front() {
                if self.hold == Some(to) {
                    self.held.push((from, to, msg));
                    continue;
                }
                delivered += 1;
                assert!(
                    delivered < 100_000,
                    "message storm: servers echo each other forever"
                );
                // A server outside `ids` (a stranger a test plays) hears nothing.
                if self.nodes.get(&to).is_some_and(|n| n.r.is_some()) {
                    self.input(to, ReplicaInput::Peer { from, msg });
                }
            }
            self.now += 10;
            for id in self.ids.clone() {
                if self.frozen == Some(id) {
                    continue;
                }
                let now = self.now;
                self.input(id, ReplicaInput::Tick { now_ms: now });
            }
        }
    }

    fn run_until(&mut self, what: &str, mut f: impl FnMut(&Cluster) -> bool) {
        for _ in 0..10_000 {
            if f(self) {
                return;
            }
            self.run(10);
        }
        panic!("timed out waiting for {what}");
    }

    fn leader(&self) -> Option<Sid> {
        self.nodes
            .iter()
            .find(|(_, n)| n.r.as_ref().is_some_and(|r| r.role() == Role::Leading))
            .map(|(id, _)| *id)
    }

    fn serving(&self) -> usize {
        self.nodes
            .values()
            .filter(|n| n.r.as_ref().is_some_and(|r| r.role().is_serving()))
            .count()
    }

    fn replica(&self, id: Sid) -> &Replica {
        self.nodes[&id].r.as_ref().unwrap()
    }

    fn connect(&mut self, id: Sid, conn: u64) -> i64 {
        let req = handshake(0, vec![0; 16], false);
        self.input(
            id,
            ReplicaInput::Client(Input::Connect {
                conn,
                peer: LOCAL,
                req,
            }),
        );
        self.run_until("a connect response", |c| {
            c.nodes[&id].replies.iter().any(|(c2, _)| *c2 == conn)
        });
        let n = self.nodes.get_mut(&id).unwrap();
        let i = n.replies.iter().position(|(c, _)| *c == conn).unwrap();
        let (_, frame) = n.replies.remove(i);
        let mut r = Reader::new(&frame[4..]);
        r.i32().unwrap();
        r.i32().unwrap();
        r.i64().unwrap()
    }

    /// Sends a request and waits for its reply: (zxid, err, body).
    fn call(
        &mut self,
        id: Sid,
        conn: u64,
        xid: i32,
        opcode: i32,
        body: Writer,
    ) -> (i64, i32, Vec<u8>) {
        self.input(
            id,
            ReplicaInput::Client(Input::Request {
                conn,
                xid,
                op: opcode,
                body: body.buf,
            }),
        );
        let mut got = None;
        self.run_until("a reply", |c| {
            c.nodes[&id]
                .replies
                .iter()
                .any(|(c2, f)| *c2 == conn && f[4..8] == xid.to_be_bytes())
        });
        let n = self.nodes.get_mut(&id).unwrap();
        let i = n
            .replies
            .iter()
            .position(|(c, f)| *c == conn && f[4..8] == xid.to_be_bytes())
            .unwrap();
        let (_, frame) = n.replies.remove(i);
        let mut r = Reader::new(&frame[4..]);
        r.i32().unwrap();
        let zxid = r.i64().unwrap();
        let err = r.i32().unwrap();
        got.get_or_insert((zxid, err, frame[20..].to_vec()));
        got.unwrap()
    }
}

/// One server's outputs carried out on the perfect network and the in-memory disk.
struct NodeFx<'a> {
    id: Sid,
    node: &'a mut Node,
    net: &'a mut VecDeque<(Sid, Sid, PeerMsg)>,
    /// The disk is stalled (`Cluster::stalled`): appends wait in `unsynced`.
    stalled: bool,
    /// The last zxid made durable by this batch (reported once it is carried out).
    durable: Option<i64>,
}

impl effects::Effects for NodeFx<'_> {
    fn send_to_client(&mut self, conn: u64, frame: Vec<u8>) {
        self.node.replies.push((conn, frame));
    }
    fn close_client(&mut self, _conn: u64) {}
    fn send_to_peer(&mut self, to: Sid, msg: PeerMsg) {
        self.net.push_back((self.id, to, msg));
    }
    fn send_snapshot(&mut self, to: Sid, snapshot: effects::SnapshotSend) {
        let (sync, then) = snapshot.into_message();
        self.net.push_back((self.id, to, sync.unwrap()));
        self.net.push_back((self.id, to, then));
    }
    fn append(&mut self, frame: LogFrame) -> ControlFlow<()> {
        if self.stalled {
            self.node.unsynced.push(frame);
        } else {
            self.durable = Some(frame.last);
            self.node.disk.frames.push(frame);
        }
        ControlFlow::Continue(())
    }
    fn truncate_log(&mut self, after: i64) {
        self.node.disk.frames.retain(|f| f.first <= after);
    }
    fn install_snapshot(&mut self, data: keel_engine::snapshot::SnapshotData) {
        self.node.disk.snapshot = Some(data);
        self.node.disk.frames.clear();
    }
    fn save_epochs(&mut self, epochs: Epochs) {
        self.node.disk.epochs = epochs;
    }
    fn membership(&mut self, text: String, committed: bool) {
        if committed {
            self.node.disk.membership = Some(text);
        }
    }
    fn role(&mut self, _role: Role, _epoch: i64) {}
}

/// A handshake asking for `session` (0: a new one) with a 6 s timeout.
fn handshake(session: i64, password: Vec<u8>, read_only: bool) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 6000,
        session_id: session,
        password,
        read_only,
        has_read_only: true,
    }
}

fn create(path: &str, data: &[u8]) -> Writer {
    let mut w = Writer::new();
    w.string(path).buffer(data);
    write_acls(&mut w, &Acl::world_all());
    w.i32(0);
    w
}

fn get(path: &str) -> Writer {
    let mut w = Writer::new();
    w.string(path).bool(false);
    w
}

fn data_of(body: &[u8]) -> Vec<u8> {
    Reader::new(body).bytes().unwrap()
}

#[test]
fn three_servers_elect_one_leader_and_replicate_writes() {
    let mut c = Cluster::new(3);
    c.run_until("a leader and two followers serving", |c| c.serving() == 3);
    let leader = c.leader().unwrap();
    let follower = c.ids.iter().copied().find(|i| *i != leader).unwrap();
    c.connect(follower, 1);
    // A sync before the epoch's first write is answered (nothing to wait for).
    let mut sync = Writer::new();
    sync.string("/");
    let (_, err, _) = c.call(follower, 1, 100, op::SYNC, sync);
    assert_eq!(err, 0);
    let (z, err, _) = c.call(follower, 1, 1, op::CREATE, create("/a", b"one"));
    assert_eq!(err, 0);
    assert!(z >> 32 >= 1, "zxid 0x{z:x} carries the epoch");
    // Read your write on the same server, then on every other one after a sync.
    let (_, err, body) = c.call(follower, 1, 2, op::GET_DATA, get("/a"));
    assert_eq!((err, data_of(&body)), (0, b"one".to_vec()));
    c.run(200);
    for id in c.ids.clone() {
        let r = c.replica(id);
        assert_eq!(r.applied_zxid(), z, "server {id} applied the write");
        assert_eq!(
            r.engine().tree().get("/a").unwrap().data.as_deref(),
            Some(&b"one"[..])
        );
    }
}

#[test]
fn the_leader_dies_a_new_one_is_elected_and_nothing_acknowledged_is_lost() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let old = c.leader().unwrap();
    let f = c.ids.iter().copied().find(|i| *i != old).unwrap();
    c.connect(f, 1);
    for i in 0..30 {
        let (_, err, _) = c.call(f, 1, i + 1, op::CREATE, create(&format!("/n{i}"), b"x"));
        assert_eq!(err, 0);
    }
    c.crash(old);
    c.run_until("a new leader", |c| {
        c.leader().is_some_and(|l| l != old) && c.serving() == 2
    });
    let g = c.ids.iter().copied().find(|i| *i != old).unwrap();
    c.connect(g, 2);
    let (z, err, _) = c.call(g, 2, 1, op::CREATE, create("/after", b"y"));
    assert_eq!(err, 0);
    assert!(z >> 32 >= 2, "a new epoch: 0x{z:x}");
    for i in 0..30 {
        assert!(c
            .replica(g)
            .engine()
            .tree()
            .get(&format!("/n{i}"))
            .is_some());
    }
    // The old leader comes back, synchronises (its history is a prefix) and serves.
    c.start(old);
    c.run_until("three serving", |c| c.serving() == 3);
    c.run(300);
    assert!(c.replica(old).engine().tree().get("/after").is_some());
    assert_eq!(c.replica(old).applied_zxid(), c.replica(g).applied_zxid());
}

/// Issue 19: the leader dies while the other survivor lags (it still follows the dead
/// leader when the winner's first vote arrives, and starts its own round after). The
/// winner must answer or re-send its vote within a fraction of a second, not at its
/// next periodic broadcast a whole tickTime later (6 s here; ZooKeeper re-elects in
/// about 1.4 s in this case).
#[test]
fn re_election_with_a_lagging_survivor_does_not_wait_for_a_tick() {
    let mut c = Cluster::restarted_with(6000, None);
    let old = c.leader().unwrap();
    let mut survivors: Vec<Sid> = c.ids.iter().copied().filter(|i| *i != old).collect();
    survivors.sort();
    // Both survivors hold the same history: the larger id wins; the other lags.
    let (lagging, winner) = (survivors[0], survivors[1]);
    c.nodes.get_mut(&old).unwrap().r = None;
    c.net.retain(|(f, t, _)| *f != old && *t != old);
    c.hold = Some(lagging);
    c.frozen = Some(lagging);
    let t0 = c.now;
    c.input(winner, ReplicaInput::PeerDown { peer: old });
    c.run(300);
    // The lagging server resumes: it reads the winner's vote while still following,
    // then notices the leader is gone.
    c.hold = None;
    c.frozen = None;
    let held = std::mem::take(&mut c.held);
    c.net.extend(held);
    c.run(10);
    c.input(lagging, ReplicaInput::PeerDown { peer: old });
    c.run_until("a new leader with a follower", |c| {
        c.leader() == Some(winner) && c.serving() == 2
    });
    let took = c.now - t0;
    eprintln!("re-election with a lagging survivor at tickTime 6000: {took} ms");
    assert!(took < 1000, "re-election took {took} ms at tickTime 6000");
}

#[test]
fn a_member_far_behind_gets_a_snapshot_and_one_ahead_is_truncated() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let leader = c.leader().unwrap();
    let lagger = c.ids.iter().copied().find(|i| *i != leader).unwrap();
    c.crash(lagger);
    c.connect(leader, 1);
    for i in 0..60 {
        let (_, err, _) = c.call(
            leader,
            1,
            i + 1,
            op::CREATE,
            create(&format!("/s{i}"), b"x"),
        );
        assert_eq!(err, 0);
    }
    c.start(lagger);
    c.run_until("three serving", |c| c.serving() == 3);
    c.run(300);
    assert_eq!(
        c.replica(lagger).applied_zxid(),
        c.replica(leader).applied_zxid()
    );
    assert!(
        c.nodes[&lagger].disk.snapshot.is_some(),
        "history of 20 txns forces a SNAP"
    );
    assert_eq!(
        c.replica(lagger).engine().tree().len(),
        c.replica(leader).engine().tree().len()
    );
}

/// The ZooKeeper 3.8 data-loss class (ZOOKEEPER-4643, -4646, -4685): a follower that
/// takes the new epoch as current when NEWLEADER arrives, before the DIFF it was sent is
/// on disk, can crash holding the new epoch without those transactions, win the next
/// election on its epoch and make the others truncate committed transactions. Here a
/// follower's disk stalls during a DIFF: it must neither acknowledge the new leader
/// nor write the new epoch as current until the DIFF is durable, so after a crash its
/// vote ranks below every server that holds the transactions, and nothing acknowledged
/// is lost when it is one of the two servers left.
#[test]
fn a_follower_never_takes_a_new_epoch_before_its_diff_is_durable() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let l = c.leader().unwrap();
    let mut others: Vec<Sid> = c.ids.iter().copied().filter(|i| *i != l).collect();
    others.sort();
    let (behind, keeper) = (others[0], others[1]);
    // `behind` misses some writes, acknowledged by the leader and `keeper`.
    c.crash(behind);
    c.connect(l, 1);
    let mut last = 0;
    for i in 0..5 {
        let (z, err, _) = c.call(l, 1, i + 1, op::CREATE, create(&format!("/d{i}"), b"x"));
        assert_eq!(err, 0);
        last = z;
    }
    // A new epoch, so that `behind` is synchronised by a new leader's DIFF. `behind`'s
    // disk stalls: the DIFF it is sent never becomes durable.
    c.crash(l);
    c.start(l);
    c.stalled = Some(behind);
    c.start(behind);
    c.run_until("a leader serving with a quorum", |c| {
        c.leader().is_some() && c.serving() >= 2
    });
    let epoch_before = c.nodes[&behind].disk.epochs.current;
    c.run(20 * TICK);
    let leader_epoch = c.replica(c.leader().unwrap()).epochs().current;
    let saved = c.nodes[&behind].disk.epochs;
    assert!(
        saved.current < leader_epoch && saved.current == epoch_before,
        "the new epoch {leader_epoch} was made current ({saved:?}) with the DIFF not durable"
    );
    assert!(
        c.nodes[&behind].disk.frames.iter().all(|f| f.last < last),
        "nothing of the DIFF is on disk"
    );
    // `behind` crashes (losing the unsynced DIFF), so does the leader; `behind` and
    // `keeper` are left. Whoever leads, every acknowledged write is there.
    c.crash(behind);
    c.stalled = None;
    let lead = c.leader().unwrap();
    c.crash(lead);
    let other = if lead == keeper { l } else { keeper };
    c.start(behind);
    if other != behind {
        c.start(other);
    }
    c.run_until("a leader among the two left", |c| c.serving() >= 2);
    let now_leader = c.leader().unwrap();
    assert!(c.replica(now_leader).applied_zxid() >= last);
    for i in 0..5 {
        assert!(
            c.replica(now_leader)
                .engine()
                .tree()
                .get(&format!("/d{i}"))
                .is_some(),
            "/d{i} acknowledged, then lost"
        );
    }
}

#[test]
fn all_servers_restart_at_once_and_keep_every_acknowledged_write() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let l = c.leader().unwrap();
    c.connect(l, 1);
    let mut last = 0;
    for i in 0..10 {
        let (z, err, _) = c.call(l, 1, i + 1, op::CREATE, create(&format!("/r{i}"), b"x"));
        assert_eq!(err, 0);
        last = z;
    }
    for id in c.ids.clone() {
        c.crash(id);
    }
    for id in c.ids.clone() {
        c.start(id);
    }
    c.run_until("all serving again", |c| c.serving() == 3);
    let l = c.leader().unwrap();
    assert!(c.replica(l).applied_zxid() >= last);
    for i in 0..10 {
        assert!(c
            .replica(l)
            .engine()
            .tree()
            .get(&format!("/r{i}"))
            .is_some());
    }
}

#[test]
fn a_single_voter_ensemble_leads_alone() {
    let mut c = Cluster::new(1);
    c.run_until("serving", |c| c.serving() == 1);
    c.connect(1, 1);
    let (_, err, _) = c.call(1, 1, 1, op::CREATE, create("/solo", b"x"));
    assert_eq!(err, 0);
}

#[test]
fn five_servers_survive_two_failures() {
    let mut c = Cluster::new(5);
    c.run_until("all serving", |c| c.serving() == 5);
    let l = c.leader().unwrap();
    let others: Vec<Sid> = c.ids.iter().copied().filter(|i| *i != l).collect();
    c.crash(l);
    c.crash(others[0]);
    c.run_until("three serving", |c| {
        c.serving() == 3 && c.leader().is_some()
    });
    let g = others[1];
    c.connect(g, 1);
    let (_, err, _) = c.call(g, 1, 1, op::CREATE, create("/five", b"x"));
    assert_eq!(err, 0);
}

#[test]
fn observers_serve_but_do_not_vote() {
    let mut c = Cluster::with_observers(3, 2);
    c.run_until("all five serving", |c| c.serving() == 5);
    let l = c.leader().unwrap();
    assert!(l <= 3, "an observer never leads");
    c.connect(5, 1);
    let (z, err, _) = c.call(5, 1, 1, op::CREATE, create("/obs", b"x"));
    assert_eq!(err, 0);
    c.run(100);
    assert!(c.replica(4).applied_zxid() >= z);
    // Two voters down: the observers cannot make a quorum, so no one serves writes.
    let voters: Vec<Sid> = (1..=3).filter(|i| *i != l).collect();
    c.crash(voters[0]);
    c.crash(voters[1]);
    c.run(3000);
    assert_eq!(
        c.serving(),
        0,
        "a leader without a quorum of voters steps down"
    );
}

#[test]
fn a_member_cut_off_serves_read_only_clients_until_the_quorum_returns() {
    let mut c = Cluster::new(3);
    c.read_only = true;
    for id in c.ids.clone() {
        c.crash(id);
        c.start(id);
    }
    c.run_until("all serving", |c| c.serving() == 3);
    let l = c.leader().unwrap();
    c.connect(l, 1);
    let (_, err, _) = c.call(l, 1, 1, op::CREATE, create("/ro", b"v"));
    assert_eq!(err, 0);
    c.run(200);
    let survivor = c.ids.iter().copied().find(|i| *i != l).unwrap();
    let gone: Vec<Sid> = c.ids.iter().copied().filter(|i| *i != survivor).collect();
    for id in &gone {
        c.crash(*id);
    }
    c.run_until("read-only mode", |c| {
        c.replica(survivor).engine().is_read_only()
    });
    // A client that does not accept read-only service is turned away.
    let plain = handshake(0, vec![0; 16], false);
    c.input(
        survivor,
        ReplicaInput::Client(Input::Connect {
            conn: 7,
            peer: LOCAL,
            req: plain.clone(),
        }),
    );
    assert!(c.nodes[&survivor].replies.iter().all(|(c2, _)| *c2 != 7));
    // One that does is connected read-only, reads, and cannot write.
    let ro = ConnectRequest {
        read_only: true,
        ..plain
    };
    c.input(
        survivor,
        ReplicaInput::Client(Input::Connect {
            conn: 8,
            peer: LOCAL,
            req: ro,
        }),
    );
    let n = c.nodes.get_mut(&survivor).unwrap();
    let i = n
        .replies
        .iter()
        .position(|(c2, _)| *c2 == 8)
        .expect("a connect response");
    let (_, frame) = n.replies.remove(i);
    assert_eq!(*frame.last().unwrap(), 1, "ConnectedReadOnly");
    let (_, err, body) = c.call(survivor, 8, 1, op::GET_DATA, get("/ro"));
    assert_eq!((err, data_of(&body)), (0, b"v".to_vec()));
    let (_, err, _) = c.call(survivor, 8, 2, op::CREATE, create("/nope", b""));
    assert_eq!(err, -119, "NotReadOnly");
    // The quorum returns: read-only mode ends.
    for id in gone {
        c.start(id);
    }
    c.run_until("all serving", |c| c.serving() == 3);
    assert!(!c.replica(survivor).engine().is_read_only());
}

fn create_mode(path: &str, flags: i32) -> Writer {
    let mut w = Writer::new();
    w.string(path).buffer(b"");
    write_acls(&mut w, &Acl::world_all());
    w.i32(flags);
    w
}

#[test]
fn local_sessions_cost_no_transaction_and_upgrade_for_ephemerals() {
    for upgrading in [false, true] {
        let mut c = Cluster::new(3);
        c.local = (true, upgrading);
        for id in c.ids.clone() {
            c.crash(id);
            c.start(id);
        }
        c.run_until("all serving", |c| c.serving() == 3);
        let l = c.leader().unwrap();
        let f = c.ids.iter().copied().find(|i| *i != l).unwrap();
        let before = c.replica(l).applied_zxid();
        let session = c.connect(f, 1);
        assert_eq!(
            c.replica(l).applied_zxid(),
            before,
            "a local session takes no zxid"
        );
        assert!(c.replica(f).engine().is_local_session(session));
        let (_, err, _) = c.call(f, 1, 1, op::CREATE, create("/persistent", b""));
        assert_eq!(err, 0, "a local session writes persistent nodes");
        let (_, err, _) = c.call(f, 1, 2, op::CREATE, create_mode("/eph", 1));
        if upgrading {
            assert_eq!(err, 0);
            c.run(200);
            assert!(
                c.replica(l).engine().sessions().get(session).is_some(),
                "upgraded to global"
            );
            assert_eq!(
                c.replica(l)
                    .engine()
                    .tree()
                    .get("/eph")
                    .unwrap()
                    .stat
                    .ephemeral_owner,
                session
            );
        } else {
            assert_eq!(err, -120, "EphemeralOnLocalSession");
            assert!(c.replica(l).engine().sessions().get(session).is_none());
        }
    }
}

#[test]
fn the_leader_reaps_empty_containers_for_everyone() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let l = c.leader().unwrap();
    let f = c.ids.iter().copied().find(|i| *i != l).unwrap();
    c.connect(f, 1);
    let (_, err, _) = c.call(f, 1, 1, op::CREATE_CONTAINER, create_mode("/box", 4));
    assert_eq!(err, 0);
    let (_, err, _) = c.call(f, 1, 2, op::CREATE, create("/box/item", b""));
    assert_eq!(err, 0);
    let mut del = Writer::new();
    del.string("/box/item").i32(-1);
    let (_, err, _) = c.call(f, 1, 3, op::DELETE, del);
    assert_eq!(err, 0);
    // znode.container.checkIntervalMs defaults to a minute.
    c.run_until("the container is gone everywhere", |c| {
        c.ids
            .iter()
            .all(|i| c.replica(*i).engine().tree().get("/box").is_none())
    });
}

#[test]
fn a_session_created_a_moment_ago_elsewhere_is_revalidated_not_expired() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let l = c.leader().unwrap();
    let others: Vec<Sid> = c.ids.iter().copied().filter(|i| *i != l).collect();
    let (a, b) = (others[0], others[1]);
    // B lags: it has not heard of the session when the client comes to it.
    c.hold = Some(b);
    let session = c.connect(a, 1);
    assert!(c.replica(b).engine().sessions().get(session).is_none());
    let n = c.nodes.get_mut(&a).unwrap();
    let password =
        n.r.as_ref()
            .unwrap()
            .engine()
            .sessions()
            .get(session)
            .unwrap()
            .password
            .clone();
    let req = handshake(session, password, false);
    c.input(
        b,
        ReplicaInput::Client(Input::Connect {
            conn: 2,
            peer: LOCAL,
            req,
        }),
    );
    c.run(50);
    assert!(
        c.nodes[&b].replies.iter().all(|(c2, _)| *c2 != 2),
        "no answer while B has not caught up"
    );
    // The link recovers: B applies the session, then answers the client with it.
    c.hold = None;
    let held = std::mem::take(&mut c.held);
    for m in held.into_iter().rev() {
        c.net.push_front(m);
    }
    c.run_until("B's answer", |c| {
        c.nodes[&b].replies.iter().any(|(c2, _)| *c2 == 2)
    });
    let frame = c.nodes[&b]
        .replies
        .iter()
        .find(|(c2, _)| *c2 == 2)
        .unwrap()
        .1
        .clone();
    let mut r = Reader::new(&frame[4..]);
    r.i32().unwrap();
    assert_eq!(r.i32().unwrap(), 6000, "a live session, not an expired one");
    assert_eq!(r.i64().unwrap(), session);
    // And a session nobody knows is still told it expired.
    let bogus = handshake(0x7777, vec![0; 16], false);
    c.input(
        b,
        ReplicaInput::Client(Input::Connect {
            conn: 3,
            peer: LOCAL,
            req: bogus,
        }),
    );
    c.run_until("the expiry answer", |c| {
        c.nodes[&b].replies.iter().any(|(c2, _)| *c2 == 3)
    });
    let frame = c.nodes[&b]
        .replies
        .iter()
        .find(|(c2, _)| *c2 == 3)
        .unwrap()
        .1
        .clone();
    let mut r = Reader::new(&frame[4..]);
    r.i32().unwrap();
    assert_eq!(r.i32().unwrap(), 0, "timeout 0: expired");
}

// ---------------------------------------------------------------- reconfiguration

fn reconfig(joining: &str, leaving: &str, new_members: &str, version: i64) -> Writer {
    let mut w = Writer::new();
    w.string(joining)
        .string(leaving)
        .string(new_members)
        .i64(version);
    w
}

impl Cluster {
    /// A connection on `id` authenticated as the superuser.
    fn super_conn(&mut self, id: Sid, conn: u64) {
        self.connect(id, conn);
        let mut w = Writer::new();
        w.i32(0).string("digest").buffer(b"super:secret");
        let (_, err, _) = self.call(id, conn, -4, op::AUTH, w);
        assert_eq!(err, 0);
    }

    /// Starts a server that is not a member yet, its own configuration listing the
    /// ensemble and itself.
    fn join(&mut self, id: Sid) {
        self.ids.push(id);
        self.nodes.insert(
            id,
            Node {
                r: None,
                disk: Disk::default(),
                replies: vec![],
                unsynced: vec![],
            },
        );
        self.start(id);
    }

    fn voters(&self, id: Sid) -> Vec<Sid> {
        self.replica(id).config().voters.clone()
    }
}

/// `version=` of a membership text.
fn version_of(text: &[u8]) -> i64 {
    let t = String::from_utf8_lossy(text);
    let v = t.lines().find_map(|l| l.strip_prefix("version=")).unwrap();
    i64::from_str_radix(v, 16).unwrap()
}

#[test]
fn reconfig_is_refused_unless_enabled_authorised_current_and_able_to_commit() {
    let mut c = Cluster::new(3);
    c.reconfig = false;
    for id in 1..=3 {
        c.crash(id);
        c.start(id);
    }
    c.run_until("all serving", |c| c.serving() == 3);
    c.super_conn(1, 1);
    let (_, err, _) = c.call(1, 1, 1, op::RECONFIG, reconfig("", "3", "", -1));
    assert_eq!(err, -123, "ReconfigDisabled");

    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    c.connect(2, 1);
    let (_, err, _) = c.call(2, 1, 1, op::RECONFIG, reconfig("", "3", "", -1));
    assert_eq!(err, -102, "NoAuth without the superuser");
    c.super_conn(2, 2);
    let (_, err, _) = c.call(2, 2, 1, op::RECONFIG, reconfig("", "3", "", 0x1234));
    assert_eq!(err, -103, "BadVersion for a stale curConfigId");
    let (_, err, _) = c.call(
        2,
        2,
        2,
        op::RECONFIG,
        reconfig("server.9=nohost", "", "", -1),
    );
    assert_eq!(err, -8, "BadArguments for a malformed server");
    let (_, err, _) = c.call(2, 2, 3, op::RECONFIG, reconfig("", "1,2,3", "", -1));
    assert_eq!(err, -8, "BadArguments for no voters left");
    let three_new = "server.4=h:1:2;7,server.5=h:3:4;8,server.6=h:5:6;9";
    let (_, err, _) = c.call(2, 2, 4, op::RECONFIG, reconfig(three_new, "", "", -1));
    assert_eq!(err, -13, "NewConfigNoQuorum: 3 of 6 voters in sync");
    // Nothing changed anywhere.
    c.run(200);
    for id in 1..=3 {
        assert_eq!(c.voters(id), vec![1, 2, 3]);
        assert_eq!(c.replica(id).membership().version, 0);
    }
}

/// Issue 19: with one follower stopped (SIGSTOP) past syncLimit, removing the other
/// would leave voters {leader, stopped one}, which cannot commit anything. ZooKeeper
/// answers NewConfigNoQuorum and goes on; Keel once accepted it and lost its quorum.
#[test]
fn a_reconfiguration_counts_only_new_voters_heard_from_within_sync_limit() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let l = c.leader().unwrap();
    let others: Vec<Sid> = c.ids.iter().copied().filter(|i| *i != l).collect();
    let (stopped, leaving) = (others[0], others[1]);
    c.super_conn(l, 1);
    c.hold = Some(stopped);
    c.frozen = Some(stopped);
    let limit = c.replica(l).config().sync_limit * TICK;
    c.run(limit + 2 * TICK);
    assert_eq!(c.leader(), Some(l), "two of three still make a quorum");
    let (_, err, _) = c.call(
        l,
        1,
        1,
        op::RECONFIG,
        reconfig("", &leaving.to_string(), "", -1),
    );
    assert_eq!(
        err, -13,
        "NewConfigNoQuorum: the stopped follower is not current"
    );
    let (_, err, _) = c.call(l, 1, 2, op::CREATE, create("/after-refusal", b"x"));
    assert_eq!(err, 0, "writes go on");
    assert_eq!(c.voters(l), {
        let mut v = c.ids.clone();
        v.sort();
        v
    });
}

#[test]
fn removing_a_follower_takes_it_out_of_every_quorum() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let l = c.leader().unwrap();
    let gone = c.ids.iter().copied().find(|i| *i != l).unwrap();
    let stay = c
        .ids
        .iter()
        .copied()
        .find(|i| *i != l && *i != gone)
        .unwrap();
    c.super_conn(stay, 1);
    let (z, err, body) = c.call(
        stay,
        1,
        1,
        op::RECONFIG,
        reconfig("", &gone.to_string(), "", 0),
    );
    assert_eq!(err, 0);
    let data = data_of(&body);
    let text = String::from_utf8(data.clone()).unwrap();
    assert!(!text.contains(&format!("server.{gone}=")), "{text}");
    assert_eq!(
        version_of(&data),
        z,
        "the version is the reconfiguration's zxid"
    );
    c.run(300);
    for id in [l, stay, gone] {
        assert_eq!(c.voters(id), {
            let mut v = vec![l, stay];
            v.sort();
            v
        });
        assert_eq!(c.replica(id).membership().version, z);
        assert_eq!(c.nodes[&id].disk.membership.as_deref(), Some(text.as_str()));
        let seen = c
            .replica(id)
            .engine()
            .tree()
            .get("/zookeeper/config")
            .unwrap();
        assert_eq!(seen.data.as_deref(), Some(&data[..]));
    }
    // Its acks no longer count, nor does its absence.
    c.crash(gone);
    let (_, err, _) = c.call(stay, 1, 2, op::CREATE, create("/after", b"x"));
    assert_eq!(err, 0);
    // A stale curConfigId is refused now, the current one accepted.
    let (_, err, _) = c.call(stay, 1, 3, op::RECONFIG, reconfig("", "", "", 0));
    assert_eq!(err, -103);
    // Restarting everyone keeps the new membership (from the saved copy).
    for id in [l, stay] {
        c.crash(id);
    }
    for id in [l, stay] {
        c.start(id);
    }
    c.run_until("the two members serving", |c| c.serving() == 2);
    assert_eq!(c.replica(stay).membership().version, z);
    c.connect(stay, 2);
    let (_, err, _) = c.call(stay, 2, 1, op::CREATE, create("/restarted", b"x"));
    assert_eq!(err, 0);
}

#[test]
fn a_new_server_catches_up_as_a_learner_then_votes_once_added() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    c.connect(1, 1);
    for i in 0..10 {
        let (_, err, _) = c.call(1, 1, i + 1, op::CREATE, create(&format!("/n{i}"), b"x"));
        assert_eq!(err, 0);
    }
    c.join(4);
    c.run_until("the new server serving as a learner", |c| {
        c.replica(4).role().is_serving()
    });
    assert_eq!(c.voters(1), vec![1, 2, 3], "not a member yet");
    c.super_conn(1, 2);
    let (z, err, body) = c.call(
        1,
        2,
        1,
        op::RECONFIG,
        reconfig("server.4=127.0.0.1:2892:3892:participant;2184", "", "", -1),
    );
    assert_eq!(err, 0);
    let text = String::from_utf8(data_of(&body)).unwrap();
    assert!(
        text.contains("server.4=127.0.0.1:2892:3892:participant;0.0.0.0:2184"),
        "{text}"
    );
    c.run(300);
    for id in 1..=4 {
        assert_eq!(c.voters(id), vec![1, 2, 3, 4], "server {id}");
        assert_eq!(c.replica(id).membership().version, z);
    }
    assert!(c.replica(4).engine().tree().get("/n9").is_some());
    // Four voters: a quorum is three, so with one old follower down the new server's
    // acks are what commits writes.
    let l = c.leader().unwrap();
    let down = (1..=3).find(|i| *i != l).unwrap();
    c.crash(down);
    let up = (1..=3).find(|i| *i != l && *i != down).unwrap();
    c.connect(up, 3);
    let (_, err, _) = c.call(up, 3, 1, op::CREATE, create("/with4", b"x"));
    assert_eq!(err, 0);
    c.connect(4, 4);
    let (_, err, _) = c.call(4, 4, 1, op::SYNC, {
        let mut w = Writer::new();
        w.string("/");
        w
    });
    assert_eq!(err, 0);
    let (_, err, body) = c.call(4, 4, 2, op::GET_DATA, get("/with4"));
    assert_eq!((err, data_of(&body)), (0, b"x".to_vec()));
}

#[test]
fn removing_the_leader_elects_another_among_the_remaining() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let old = c.leader().unwrap();
    let f = c.ids.iter().copied().find(|i| *i != old).unwrap();
    c.super_conn(f, 1);
    let (_, err, _) = c.call(
        f,
        1,
        1,
        op::RECONFIG,
        reconfig("", &old.to_string(), "", -1),
    );
    assert_eq!(err, 0);
    c.run_until("a new leader among the remaining two", |c| {
        c.leader().is_some_and(|l| l != old)
            && c.ids
                .iter()
                .filter(|i| **i != old)
                .all(|i| c.replica(*i).role().is_serving())
    });
    c.crash(old);
    c.connect(f, 2);
    let (_, err, _) = c.call(f, 2, 1, op::CREATE, create("/new-leader", b"x"));
    assert_eq!(err, 0);
}

#[test]
fn the_bulk_form_replaces_the_whole_list() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    c.super_conn(2, 1);
    let members =
        "server.1=127.0.0.1:2889:3889:participant;2181,server.2=127.0.0.1:2890:3890:participant;2182,\
                   server.3=127.0.0.1:2891:3891:observer;2183";
    let (_, err, body) = c.call(2, 1, 1, op::RECONFIG, reconfig("", "", members, 0));
    assert_eq!(err, 0);
    let text = String::from_utf8(data_of(&body)).unwrap();
    assert!(
        text.contains("server.3=127.0.0.1:2891:3891:observer;0.0.0.0:2183"),
        "{text}"
    );
    c.run(300);
    for id in 1..=3 {
        assert_eq!(c.voters(id), vec![1, 2]);
        assert_eq!(c.replica(id).config().observers, vec![3]);
    }
}

/// A process that reaches the quorum port and says it is server 9, which no member's
/// configuration names, gets only what a non-voting learner may have: its membership
/// is ignored (even one that lists it), its votes do not count, and its acks do not
/// commit anything.
#[test]
fn a_stranger_on_the_quorum_port_cannot_vote_reconfigure_or_commit() {
    const STRANGER: Sid = 9;
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let l = c.leader().unwrap();
    let version = c.replica(l).membership().version;
    let forged = format!(
        "server.{STRANGER}=h:1:2:participant;h:3\nserver.{l}=h:1:2:participant;h:3\nversion={:x}",
        i64::MAX >> 4
    );
    for to in c.ids.clone() {
        c.input(
            to,
            ReplicaInput::Peer {
                from: STRANGER,
                msg: PeerMsg::Membership {
                    text: forged.clone(),
                },
            },
        );
        c.input(
            to,
            ReplicaInput::Peer {
                from: STRANGER,
                msg: PeerMsg::Vote(keel_engine::zab::Vote {
                    leader: STRANGER,
                    zxid: i64::MAX,
                    peer_epoch: 1 << 20,
                    round: 1 << 20,
                    state: keel_engine::zab::PeerState::Leading,
                    config_version: i64::MAX >> 4,
                }),
            },
        );
    }
    c.run(10 * TICK);
    assert_eq!(c.leader(), Some(l), "the leader stays");
    assert_eq!(c.serving(), 3);
    for id in c.ids.clone() {
        assert_eq!(c.replica(id).membership().version, version, "server {id}");
        assert!(!c.replica(id).config().is_voter(STRANGER));
    }

    // One follower down and the other's disk stalled: only the stranger's acks could
    // make a quorum, and they must not.
    c.connect(l, 1);
    let others: Vec<Sid> = c.ids.iter().copied().filter(|i| *i != l).collect();
    c.crash(others[0]);
    c.stalled = Some(others[1]);
    c.input(
        l,
        ReplicaInput::Client(Input::Request {
            conn: 1,
            xid: 1,
            op: op::CREATE,
            body: create("/by-stranger-acks", b"x").buf,
        }),
    );
    for _ in 0..20 {
        c.input(
            l,
            ReplicaInput::Peer {
                from: STRANGER,
                msg: PeerMsg::Ack { zxid: i64::MAX },
            },
        );
        c.run(TICK);
    }
    let committed = c.replica(l).committed_zxid();
    assert!(
        c.nodes[&l].replies.iter().all(|(conn, _)| *conn != 1),
        "the create was answered, so committed (commit point 0x{committed:x})"
    );
}

/// A leader stopped like a SIGSTOPped process (its links stay up, it says nothing):
/// by default its followers wait syncLimit ticks (30 s at tickTime 6000), as
/// ZooKeeper's do; with `keel.leaderSilenceMs` they give it up after that silence.
#[test]
fn a_silent_leader_is_given_up_after_leader_silence_ms_when_set() {
    let elect_after_pause = |silence: Option<i64>, wait: i64| -> Option<i64> {
        let mut c = Cluster::restarted_with(6000, silence);
        let old = c.leader().unwrap();
        c.hold = Some(old);
        c.frozen = Some(old);
        let t0 = c.now;
        while c.now - t0 < wait {
            c.run(10);
            let new = c
                .ids
                .iter()
                .copied()
                .filter(|i| *i != old)
                .find(|i| c.replica(*i).role() == Role::Leading);
            if new.is_some() && c.serving() >= 2 {
                return Some(c.now - t0);
            }
        }
        None
    };
    let fast = elect_after_pause(Some(800), 10_000).expect("no new leader within 10 s");
    eprintln!("keel.leaderSilenceMs=800 at tickTime 6000: a new leader serves {fast} ms after the leader stopped");
    assert!(fast < 1_500, "took {fast} ms with an 800 ms silence bound");
    assert_eq!(
        elect_after_pause(None, 10_000),
        None,
        "without the setting, followers wait syncLimit x tickTime (30 s), not 10 s"
    );
}

fn set(path: &str, data: &[u8]) -> Writer {
    let mut w = Writer::new();
    w.string(path).buffer(data).i32(-1);
    w
}

/// A session's writes go to the leader back to back (they do not wait for each
/// other's commits), while its reads wait for its earlier writes, and everything is
/// answered in the order it was asked: a write that depends on the one before it
/// succeeds, a malformed write is refused in its turn, and a read sees the writes
/// before it and none after.
#[test]
fn a_sessions_writes_are_pipelined_and_answered_in_order() {
    let mut c = Cluster::new(3);
    c.run_until("all serving", |c| c.serving() == 3);
    let leader = c.leader().unwrap();
    let follower = c.ids.iter().copied().find(|i| *i != leader).unwrap();
    c.connect(follower, 1);
    let reqs: Vec<(i32, i32, Writer)> = vec![
        (1, op::CREATE, create("/p", b"one")),
        (2, op::CREATE, create("/p/c", b"child")),
        (3, op::CREATE, {
            let mut w = Writer::new();
            w.i32(7);
            w
        }),
        (4, op::GET_DATA, get("/p")),
        (5, op::SET_DATA, set("/p", b"two")),
        (6, op::SET_DATA, set("/p/c", b"three")),
    ];
    for (xid, opcode, body) in reqs {
        let n = c.nodes.get_mut(&follower).unwrap();
        let r = n.r.as_mut().unwrap();
        r.step(ReplicaInput::Client(Input::Request {
            conn: 1,
            xid,
            op: opcode,
            body: body.buf,
        }));
        c.drain(follower);
    }
    // Before any message is delivered: the two writes ahead of the malformed one are
    // on their way to the leader; the rest wait behind it.
    let forwarded: Vec<i32> = c
        .net
        .iter()
        .filter_map(|(f, t, m)| match m {
            PeerMsg::Request(fwd) if *f == follower && *t == leader => Some(fwd.cxid),
            _ => None,
        })
        .collect();
    assert_eq!(
        forwarded,
        vec![1, 2],
        "both writes forwarded before a commit"
    );
    assert!(c.nodes[&follower]
        .replies
        .iter()
        .all(|(conn, _)| *conn != 1));
    c.run_until("six replies", |c| {
        c.nodes[&follower]
            .replies
            .iter()
            .filter(|(conn, _)| *conn == 1)
            .count()
            == 6
    });
    let answers: Vec<(i32, i32, Vec<u8>)> = c.nodes[&follower]
        .replies
        .iter()
        .filter(|(conn, _)| *conn == 1)
        .map(|(_, f)| {
            let mut r = Reader::new(&f[4..]);
            let xid = r.i32().unwrap();
            r.i64().unwrap();
            (xid, r.i32().unwrap(), f[20..].to_vec())
        })
        .collect();
    let order: Vec<(i32, i32)> = answers.iter().map(|(x, e, _)| (*x, *e)).collect();
    assert_eq!(order, vec![(1, 0), (2, 0), (3, -5), (4, 0), (5, 0), (6, 0)]);
    assert_eq!(
        data_of(&answers[3].2),
        b"one".to_vec(),
        "the read saw /p before the set behind it"
    );
    let tree = c.replica(follower).engine().tree();
    assert_eq!(
        tree.get("/p/c").unwrap().data.as_deref(),
        Some(&b"three"[..])
    );
}
