//! The world: one discrete-event loop that owns the servers (real
//! `keel_engine::zab::Replica`s), their disks, the network, the clients, the fault
//! schedule and the checker, all driven by one seed.
//!
//! Time is simulated (ms). Each event is one *step*: a server's timer tick, a peer
//! message or `PeerDown`, a disk write completing (`Durable`), a client frame or
//! connection event, a client's timer, or a fault. A server step feeds `Tick` then the
//! input, drains the outputs and carries them out in order (the durable ones — truncate,
//! snapshot install, epochs — at once), then the checker looks at what it applied.
//!
//! A run has four phases: *bootstrap* (no faults; a client creates the keys), *faults*
//! (`steps` events with crashes, restarts, partitions, link breaks, slow and failing
//! disks, torn writes, SIGSTOP-like pauses, leaders killed with a follower lagging and,
//! when hostile, out-of-contract message reordering, duplication and loss), *heal*
//! (faults stop, partitions heal, paused servers resume, every server restarts; once
//! quiet, a leader must serve a quorum within `ELECT_BOUND_MS` whatever `tickTime` is,
//! and in half the seeds that leader is then killed and the re-election timed against
//! the same bound; a write must be acknowledged within a deadline), and the *end*
//! (clients stop, each server is read through a client, trees compared, and the
//! history checks run). Whenever a leader accepts a reconfiguration, a quorum of its
//! new voters must be available (`check_reconfig_quorum`).
//!
//! With `reconfig` the servers are a pool of which a majority starts as the membership;
//! two superuser clients issue random `reconfig`s, each server saves the committed
//! membership it reports and restarts from it, and the checks count voters in the
//! membership in force at each zxid (see `Checker::membership_at`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt::Write as _;
use std::ops::ControlFlow;

use keel_engine::proto::ConnectRequest;
use keel_engine::server::Input;
use keel_engine::snapshot::SnapshotData;
use keel_engine::watch::ConnId;
use keel_engine::zab::{
    effects, Epochs, LogFrame, Membership, PeerMsg, Replica, ReplicaConfig, ReplicaInput, Role, Sid,
};
use keel_engine::{Engine, EngineConfig};

use crate::checker::{Checker, Members, OpKind, Outcome, Violation};
use crate::client::{Action, Client, ClientStats, Ctx, Mode, Planned};
use crate::disk::Disk;
use crate::network::{Fate, NetConfig, Network};
use crate::rng::Rng;

/// What to run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    pub nodes: usize,
    /// Events in the fault phase.
    pub steps: u64,
    /// 0 quiet, 1 events (faults, roles, client operations), 2 also every message.
    pub verbose: u8,
    pub clients: usize,
    pub keys: usize,
    /// How many of the servers are observers (the last ones).
    pub observers: usize,
    /// Out-of-contract network faults: `None` lets the seed decide (about one seed in
    /// four).
    pub hostile: Option<bool>,
    /// Steps the linearizability search may take per key.
    pub lin_budget: u64,
    /// Feed `Tick` before every input, as `net` does once per batch (the default), and
    /// from each server's timer (every 15–30 ms). `false`: only from the timer.
    pub tick_every_input: bool,
    /// Violation kinds to record as notes instead of failures (triage: set a known
    /// finding aside to look for others behind it).
    pub waive: Vec<String>,
    /// Break the system on purpose to show the checks catch it (tests only).
    pub sabotage: Option<Sabotage>,
    /// The reconfiguration workload: the servers are a pool of which only a majority
    /// starts as the membership, and two superuser clients issue random `reconfig`s.
    pub reconfig: bool,
    /// `tickTime` in ms: `None` lets the seed draw it from [`TICKS`].
    pub tick_ms: Option<i64>,
}

/// Deliberate bugs in the simulated environment, for testing the checker end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    /// Disks lie: at a crash they lose the last frames they reported durable.
    LyingDisk,
    /// With `reconfig`: a crash loses what the server knew of the membership (the saved
    /// copy, and its snapshot's `/zookeeper/config`), so a restart runs with `zoo.cfg`'s.
    ForgetMembership,
    /// After the heal, election votes crawl: every `Vote` takes a tick to arrive (as if
    /// elections spoke once a tick), so the election bound must catch it whenever the
    /// tick is above the bound.
    SlowVotes,
}

/// The `tickTime`s a seed draws from (ms): 100 as in the simulator's first runs, 500
/// (the issue-19 experiments), 2000 (ZooKeeper's sample `zoo.cfg`) and 6000.
pub const TICKS: [i64; 4] = [100, 500, 2000, 6000];

/// The election bound (ms): once the ensemble is quiet after the heal, and again once a
/// quorum is live after the final leader kill, a leader must serve a quorum of voters
/// within this, whatever `tickTime` is. See docs/simulator.md ("Liveness") for why 2 s
/// plus two finalize waits (`FINALIZE_MS` each).
pub const ELECT_BOUND_MS: i64 = 2000 + 2 * FINALIZE_MS;
/// The engine's longest finalize wait (`min(tick / 2, 200)` ms after a quorum agrees).
pub const FINALIZE_MS: i64 = 200;
/// More events queued than this is a message storm (a run queues a few thousand).
const STORM_EVENTS: usize = 1_000_000;
/// `syncLimit` and `initLimit` as the simulated servers run (in ticks).
const SYNC_LIMIT: i64 = 5;
const INIT_LIMIT: i64 = 10;

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 0,
            nodes: 3,
            steps: 20_000,
            verbose: 0,
            clients: 4,
            keys: 4,
            observers: 0,
            hostile: None,
            lin_budget: 2_000_000,
            tick_every_input: true,
            waive: Vec::new(),
            sabotage: None,
            reconfig: false,
            tick_ms: None,
        }
    }
}

impl SimConfig {
    /// The command that replays this run with a trace.
    pub fn replay_command(&self) -> String {
        let mut s = format!(
            "cargo run --release -p keel-sim -- --seed {} --nodes {} --steps {}",
            self.seed, self.nodes, self.steps
        );
        let d = SimConfig::default();
        if self.clients != d.clients {
            let _ = write!(s, " --clients {}", self.clients);
        }
        if self.keys != d.keys {
            let _ = write!(s, " --keys {}", self.keys);
        }
        if self.observers != d.observers {
            let _ = write!(s, " --observers {}", self.observers);
        }
        if let Some(h) = self.hostile {
            let _ = write!(s, " --hostile {}", if h { "on" } else { "off" });
        }
        if !self.tick_every_input {
            s.push_str(" --timer-ticks-only");
        }
        if self.reconfig {
            s.push_str(" --reconfig on");
        }
        if let Some(t) = self.tick_ms {
            let _ = write!(s, " --tick {t}");
        }
        for w in &self.waive {
            let _ = write!(s, " --waive '{w}'");
        }
        s.push_str(" -v");
        s
    }
}

#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub events: u64,
    pub sim_ms: i64,
    pub crashes: u64,
    pub power_losses: u64,
    pub disk_failures: u64,
    pub torn_cut: u64,
    pub partitions: u64,
    pub link_breaks: u64,
    pub slow_disks: u64,
    pub messages: u64,
    pub hostile_deliveries: u64,
    pub snapshots_taken: u64,
    pub snap_syncs: u64,
    pub truncations: u64,
    pub leaders: u64,
    /// Reconfigurations committed (applied by some server).
    pub reconfigs: u64,
    pub applied: u64,
    pub last_zxid: i64,
    pub clients: ClientStats,
    /// `tickTime` of the run (ms).
    pub tick_ms: i64,
    /// SIGSTOP-like pauses of servers (the heal's lagging survivor included).
    pub pauses: u64,
    /// Leaders killed with a follower lagging (paused) around the kill.
    pub lagging_kills: u64,
    /// Reconfigurations issued while a voter they need is paused past syncLimit.
    pub paused_reconfigs: u64,
    /// Time to elect after the heal: from the moment the ensemble is quiet to a leader
    /// serving a quorum of voters (0 when one already did), ms.
    pub elect_ms: Option<i64>,
    /// After the final leader kill (about half the seeds): from the moment a quorum of
    /// voters is live again to a leader serving a quorum, ms.
    pub reelect_ms: Option<i64>,
    /// The same, counted from the kill itself.
    pub reelect_from_kill_ms: Option<i64>,
    /// Whether a survivor lagged (was paused) around the final kill.
    pub reelect_lagging: bool,
    /// How long one of the engine's known election stalls (the diagnosed
    /// `election bound/...` shapes) held while waiting, after the heal and after the
    /// final kill, ms: 0 for a clean election.
    pub elect_stalled_ms: i64,
    pub reelect_stalled_ms: i64,
}

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct Report {
    pub config: SimConfig,
    pub hostile: bool,
    pub profile: String,
    pub violations: Vec<Violation>,
    pub notes: Vec<String>,
    pub stats: Stats,
    /// A hash of the event sequence: the same seed must give the same value.
    pub fingerprint: u64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Fault rates and knobs, drawn from the seed (each seed gets its own mix, so that
/// rare interleavings of few fault kinds are found too).
#[derive(Debug, Clone)]
struct Profile {
    crash: bool,
    power_loss: bool,
    partition: bool,
    link_break: bool,
    slow_disk: bool,
    disk_fail: bool,
    client_pause: bool,
    p_torn: f64,
    fault_gap: (i64, i64),
    disk_latency: (i64, i64),
    snapshot_every: Option<i64>,
    history_txns: usize,
    max_batch_txns: usize,
    net: NetConfig,
    /// SIGSTOP-like pauses of a server (and, with `crash`, the leader killed while a
    /// follower lags).
    pause: bool,
    /// `tickTime` (ms).
    tick_ms: i64,
    /// After the heal, once a leader serves: kill it (`kill -9`, restarted 0.1–3 s
    /// later), and with `heal_lag` pause one of its followers around the kill.
    heal_kill: bool,
    heal_lag: bool,
    /// `keel.leaderSilenceMs` (the opt-in failure detector), for a quarter of seeds.
    silence_ms: Option<i64>,
}

impl Profile {
    fn draw(rng: &mut Rng, hostile: bool, tick: Option<i64>) -> Profile {
        let mut net = NetConfig::calm();
        net.max_latency_ms = *rng.pick(&[2, 5, 20]);
        if rng.chance(0.6) {
            net.p_spike = *rng.pick(&[0.01, 0.05]);
            net.spike_ms = *rng.pick(&[50, 300, 1500]);
        }
        let link_break = rng.chance(0.6);
        if link_break {
            net.p_break = *rng.pick(&[0.0005, 0.002]);
        }
        if hostile {
            net.p_reorder = *rng.pick(&[0.001, 0.005]);
            net.p_dup = *rng.pick(&[0.001, 0.005]);
            net.p_silent_loss = *rng.pick(&[0.0, 0.001]);
        }
        let mut p = Profile {
            crash: rng.chance(0.75),
            power_loss: rng.chance(0.3),
            partition: rng.chance(0.7),
            link_break,
            slow_disk: rng.chance(0.5),
            disk_fail: rng.chance(0.3),
            client_pause: rng.chance(0.5),
            p_torn: *rng.pick(&[0.0, 0.5, 1.0]),
            fault_gap: *rng.pick(&[(50, 500), (200, 2000), (1000, 4000)]),
            disk_latency: *rng.pick(&[(0, 2), (1, 10), (2, 40)]),
            snapshot_every: *rng.pick(&[None, Some(10), Some(50)]),
            history_txns: *rng.pick(&[20, 50, 100_000]),
            max_batch_txns: *rng.pick(&[1, 3, 1000]),
            net,
            pause: false,
            tick_ms: 0,
            heal_kill: false,
            heal_lag: false,
            silence_ms: None,
        };
        // Drawn after the rest, so that every earlier knob keeps its value per seed.
        p.pause = rng.chance(0.5);
        p.tick_ms = *rng.pick(&TICKS);
        if let Some(t) = tick {
            p.tick_ms = t;
        }
        p.heal_kill = rng.chance(0.5);
        p.heal_lag = rng.chance(0.5);
        if rng.chance(0.25) {
            p.silence_ms = Some(*rng.pick(&[300, 800]));
        }
        p
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        for (on, name) in [
            (self.crash, "crash"),
            (self.power_loss, "power-loss"),
            (self.partition, "partition"),
            (self.link_break, "link-break"),
            (self.slow_disk, "slow-disk"),
            (self.disk_fail, "disk-fail"),
            (self.client_pause, "client-pause"),
            (self.pause, "pause"),
        ] {
            if on {
                s.push_str(name);
                s.push(' ');
            }
        }
        let _ = write!(
            s,
            "tick={}ms heal-kill={} torn={} gap={:?}ms disk={:?}ms snap={:?} history={} batch={} net={}..{}ms",
            self.tick_ms,
            match (self.heal_kill, self.heal_lag) {
                (false, _) => "no",
                (true, false) => "yes",
                (true, true) => "lagging",
            },
            self.p_torn,
            self.fault_gap,
            self.disk_latency,
            self.snapshot_every,
            self.history_txns,
            self.max_batch_txns,
            self.net.min_latency_ms,
            self.net.max_latency_ms
        );
        if let Some(ms) = self.silence_ms {
            let _ = write!(s, " leader-silence={ms}ms");
        }
        if self.net.hostile() {
            let _ = write!(
                s,
                " hostile(reorder={} dup={} loss={})",
                self.net.p_reorder, self.net.p_dup, self.net.p_silent_loss
            );
        }
        s
    }
}

#[derive(Debug)]
enum ToServer {
    Connect {
        req: ConnectRequest,
        peer: std::net::SocketAddr,
    },
    Request {
        xid: i32,
        op: i32,
        body: Vec<u8>,
    },
    Disconnected,
}

#[derive(Debug)]
enum ToClient {
    Frame(Vec<u8>),
    Closed,
}

#[derive(Debug)]
enum Ev {
    NodeTimer(usize),
    Peer {
        from: usize,
        to: usize,
        generation: u64,
        msg: PeerMsg,
    },
    PeerDown {
        node: usize,
        inc: u64,
        peer: usize,
    },
    DiskDone {
        node: usize,
        inc: u64,
        id: u64,
    },
    ToServer {
        node: usize,
        client: usize,
        conn: ConnId,
        what: ToServer,
    },
    ToClient {
        node: usize,
        client: usize,
        conn: ConnId,
        what: ToClient,
    },
    ClientTimer(usize),
    Fault,
    Restart(usize),
    Heal(u64),
    Phase,
    /// A paused server resumes (`SIGCONT`), if this pause (its token) still holds.
    Resume(usize, u64),
    /// `kill -9` of a server (this incarnation); `heal`: the heal's final leader kill.
    Kill {
        node: usize,
        inc: u64,
        heal: bool,
    },
    /// After the heal, once a leader serves: kill it (see `Profile::heal_kill`).
    HealKill,
    /// A reconfiguration whose new voters need server `.0`, paused (token `.1`) for
    /// longer than syncLimit.
    PausedReconfig(usize, u64),
    /// Never queued: a write that completed while its server was paused, reported when
    /// it resumes.
    Durable {
        node: usize,
        inc: u64,
        zxid: i64,
    },
    /// Only wakes the liveness watch at a time it needs to look.
    Watch,
}

/// Entity ids for ordering events: servers are `0..n`, clients `CLIENT + c`, and the
/// world (faults, phases) `WORLD`.
const CLIENT: u32 = 1000;
const WORLD: u32 = 1_000_000;

impl Ev {
    /// (source, destination) of the event, for ordering and per-pair randomness.
    fn endpoints(&self) -> (u32, u32) {
        match self {
            Ev::NodeTimer(i) => (*i as u32, *i as u32),
            Ev::Peer { from, to, .. } => (*from as u32, *to as u32),
            Ev::PeerDown { node, peer, .. } => (*peer as u32, *node as u32),
            Ev::DiskDone { node, .. } => (*node as u32, *node as u32),
            Ev::ToServer { node, client, .. } => (CLIENT + *client as u32, *node as u32),
            Ev::ToClient { node, client, .. } => (*node as u32, CLIENT + *client as u32),
            Ev::ClientTimer(c) => (CLIENT + *c as u32, CLIENT + *c as u32),
            Ev::Fault
            | Ev::Heal(_)
            | Ev::Phase
            | Ev::HealKill
            | Ev::PausedReconfig(..)
            | Ev::Watch => (WORLD, WORLD),
            Ev::Restart(i) | Ev::Resume(i, _) | Ev::Kill { node: i, .. } => (WORLD, *i as u32),
            Ev::Durable { node, .. } => (*node as u32, *node as u32),
        }
    }

    fn tag(&self) -> u64 {
        match self {
            Ev::NodeTimer(n) => 1 + ((*n as u64) << 8),
            Ev::Peer { from, to, .. } => 2 + ((*from as u64) << 8) + ((*to as u64) << 16),
            Ev::PeerDown { node, .. } => 3 + ((*node as u64) << 8),
            Ev::DiskDone { node, id, .. } => 4 + ((*node as u64) << 8) + (id << 16),
            Ev::ToServer { node, conn, .. } => 5 + ((*node as u64) << 8) + (conn << 16),
            Ev::ToClient { client, conn, .. } => 6 + ((*client as u64) << 8) + (conn << 16),
            Ev::ClientTimer(c) => 7 + ((*c as u64) << 8),
            Ev::Fault => 8,
            Ev::Restart(n) => 9 + ((*n as u64) << 8),
            Ev::Heal(e) => 10 + (e << 8),
            Ev::Phase => 11,
            Ev::Resume(n, t) => 12 + ((*n as u64) << 8) + (t << 16),
            Ev::Kill { node, inc, .. } => 13 + ((*node as u64) << 8) + (inc << 16),
            Ev::HealKill => 14,
            Ev::PausedReconfig(n, t) => 15 + ((*n as u64) << 8) + (t << 16),
            Ev::Durable { node, zxid, .. } => 16 + ((*node as u64) << 8) + ((*zxid as u64) << 16),
            Ev::Watch => 17,
        }
    }
}

/// A queued event. Events at the same time are ordered by destination, source and the
/// order the source scheduled them for that destination, never by the global order of
/// scheduling: a replica may emit messages to different peers in any order (it
/// iterates hash maps), and that must not change what happens.
struct Scheduled {
    at: i64,
    dst: u32,
    src: u32,
    seq: u64,
    ev: Ev,
}

impl Scheduled {
    fn key(&self) -> (i64, u32, u32, u64) {
        (self.at, self.dst, self.src, self.seq)
    }
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key().cmp(&o.key())
    }
}

struct ConnInfo {
    client: usize,
    /// Latest delivery time scheduled to the client on this connection (FIFO).
    last_at: i64,
}

struct Node {
    sid: Sid,
    replica: Option<Replica>,
    /// Bumped at every crash: events for an earlier incarnation are dropped.
    inc: u64,
    disk: Disk,
    conns: BTreeMap<ConnId, ConnInfo>,
    /// The zxid of the newest transaction (or snapshot) this incarnation's tree holds,
    /// as the checker has followed it.
    last_applied: i64,
    applied_since_snapshot: i64,
    pending_snapshot: Option<SnapshotData>,
    slow_until: i64,
    fail_disk: bool,
    clock_offset: i64,
    role: Role,
    /// When `role` last changed.
    role_since: i64,
    epoch: i64,
    /// Stopped (`SIGSTOP`): the token of the pause. A paused server gets no ticks and
    /// handles nothing; what reaches it (peer messages, link-down notices, its disk's
    /// completions, client traffic) waits in `held`, in arrival order, and is handled
    /// at once when it resumes. Its links stay up: nobody is told.
    paused: Option<u64>,
    paused_at: i64,
    held: Vec<Ev>,
}

impl Node {
    /// Up and not paused.
    fn live(&self) -> bool {
        self.replica.is_some() && self.paused.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Bootstrap { deadline: i64 },
    Faults,
    Heal { since: i64, deadline: i64 },
    Quiesce { deadline: i64 },
    FinalReads { deadline: i64, first_reader: usize },
    Done,
}

pub use crate::checker::START_MS;

pub struct World {
    cfg: SimConfig,
    profile: Profile,
    hostile: bool,
    now: i64,
    /// Per (source, destination): events scheduled, and random draws made.
    pair_seq: HashMap<(u32, u32), u64>,
    pair_draws: HashMap<(u32, u32), u64>,
    queue: BinaryHeap<Reverse<Scheduled>>,
    nodes: Vec<Node>,
    /// The membership every server's configuration (`zoo.cfg`) names: all servers, or
    /// with `reconfig` the first majority of the pool (and `--observers` after them).
    initial: Members,
    clients: Vec<Client>,
    /// Per client: latest delivery time scheduled to the server (FIFO per connection).
    client_last_at: Vec<i64>,
    keys: Vec<String>,
    net: Network,
    checker: Checker,
    rng_fault: Rng,
    rng_disk: Rng,
    rng_misc: Rng,
    next_conn: ConnId,
    phase: Phase,
    fault_steps: u64,
    partition_epoch: u64,
    stats: Stats,
    notes: Vec<String>,
    trace: Vec<String>,
    fingerprint: u64,
    stuck_at_heal: u64,
    /// Tokens of pauses.
    pause_seq: u64,
    /// `heard[to * n + from]`: when `to` last handled a peer message from `from`.
    heard: Vec<i64>,
    /// `acked_epoch[to * n + from]`: the last `AckEpoch` `to` handled from `from`:
    /// (epoch, promise), for diagnosing a stalled establishment.
    acked_epoch: Vec<Option<(i64, bool)>>,
    /// `vote_lost[from * n + to]`: when the last vote `from` sent `to` was lost (a
    /// partition or a link break took it); `None` once one gets through.
    vote_lost: Vec<Option<i64>>,
    /// `info_heard[to * n + from]`: when `to` last handled a `FollowerInfo` from `from`
    /// while not looking (a looking replica ignores it).
    info_heard: Vec<i64>,
    watch: Watch,
}

/// The election watch of the heal phase (`World::watch`): when the ensemble became
/// quiet and when a leader served a quorum, then the final leader kill and the
/// re-election after it.
#[derive(Debug, Default)]
struct Watch {
    /// When the ensemble became quiet after the heal: every server up and running,
    /// partitions healed, nothing sent or written during the faults still in flight.
    quiet_at: Option<i64>,
    elected_at: Option<i64>,
    /// With a final kill: whether a follower lags around it.
    kill: Option<bool>,
    /// Whom the final kill killed and when; the follower paused around it.
    killed: Option<(i64, Sid)>,
    lagging: Option<Sid>,
    /// When a quorum of voters was live again after the kill.
    clock: Option<i64>,
    reelected_at: Option<i64>,
    /// The bound was missed (reported once; when that kind is waived the watch goes
    /// on, so that the time is still measured).
    missed: bool,
    /// While waiting: the diagnosed stall shapes seen, for how long (ms), and how the
    /// first sighting read; when they were last sampled.
    seen: BTreeMap<&'static str, (i64, String)>,
    sampled_at: i64,
    /// How long a known stall shape held in each window (after the heal, after the
    /// final kill), ms.
    stalled: [i64; 2],
    /// Nothing more to watch.
    done: bool,
}

impl World {
    pub fn new(cfg: SimConfig) -> World {
        assert!(cfg.nodes >= 1 && cfg.nodes <= 9, "1..=9 nodes");
        assert!(cfg.observers < cfg.nodes, "at least one voter");
        let mut root = Rng::new(cfg.seed);
        let mut rng_profile = root.fork();
        let _ = root.fork();
        let rng_fault = root.fork();
        let rng_disk = root.fork();
        let mut rng_clients = root.fork();
        let mut rng_misc = root.fork();
        let hostile = cfg.hostile.unwrap_or_else(|| rng_profile.chance(0.25));
        let profile = Profile::draw(&mut rng_profile, hostile, cfg.tick_ms);
        let keys: Vec<String> = (0..cfg.keys).map(|k| format!("/k{k}")).collect();
        let n_voters = if cfg.reconfig {
            ((cfg.nodes - cfg.observers) / 2 + 1) as u64
        } else {
            (cfg.nodes - cfg.observers) as u64
        };
        let initial = Members::new(
            0,
            (1..=n_voters).collect(),
            (n_voters + 1..=n_voters + cfg.observers as u64).collect(),
        );
        let nodes = (0..cfg.nodes)
            .map(|i| Node {
                sid: i as Sid + 1,
                replica: None,
                inc: 0,
                disk: Disk::new(),
                conns: BTreeMap::new(),
                last_applied: 0,
                applied_since_snapshot: 0,
                pending_snapshot: None,
                slow_until: 0,
                fail_disk: false,
                clock_offset: rng_misc.range(-2000, 2000),
                role: Role::Looking,
                role_since: START_MS,
                epoch: 0,
                paused: None,
                paused_at: 0,
                held: Vec::new(),
            })
            .collect();
        // Client 0 is the set-up script; 1..=clients are workers.
        let mut clients = Vec::new();
        clients.push(Client::new(
            0,
            Mode::Script {
                node: None,
                steps: (0..cfg.keys).map(|key| Planned::Create { key }).collect(),
            },
            rng_clients.fork(),
            START_MS,
        ));
        for c in 1..=cfg.clients {
            let mut cl = Client::new(c, Mode::Worker, rng_clients.fork(), START_MS);
            cl.issuing = false;
            clients.push(cl);
        }
        if cfg.reconfig {
            // Two sessions reconfiguring independently, so that one sometimes finds the
            // other's reconfiguration pending (a session's own requests are serialised).
            for c in cfg.clients + 1..=cfg.clients + 2 {
                let mut cl = Client::new(c, Mode::Reconfig, rng_clients.fork(), START_MS);
                cl.issuing = false;
                clients.push(cl);
            }
        }
        let n_clients = clients.len();
        World {
            net: Network::new(cfg.nodes, NetConfig::calm()),
            checker: Checker::new(keys.clone(), cfg.waive.clone(), initial.clone()),
            profile,
            hostile,
            now: START_MS,
            pair_seq: HashMap::new(),
            pair_draws: HashMap::new(),
            queue: BinaryHeap::new(),
            nodes,
            initial,
            clients,
            client_last_at: vec![0; n_clients],
            keys,
            rng_fault,
            rng_disk,
            rng_misc,
            next_conn: 0,
            phase: Phase::Bootstrap {
                deadline: START_MS + 30_000,
            },
            fault_steps: 0,
            partition_epoch: 0,
            stats: Stats::default(),
            notes: Vec::new(),
            trace: Vec::new(),
            fingerprint: 0xcbf2_9ce4_8422_2325,
            stuck_at_heal: 0,
            pause_seq: 0,
            heard: vec![i64::MIN / 2; cfg.nodes * cfg.nodes],
            acked_epoch: vec![None; cfg.nodes * cfg.nodes],
            info_heard: vec![i64::MIN / 2; cfg.nodes * cfg.nodes],
            vote_lost: vec![None; cfg.nodes * cfg.nodes],
            watch: Watch::default(),
            cfg,
        }
    }

    fn at(&mut self, at: i64, ev: Ev) {
        let (src, dst) = ev.endpoints();
        let seq = self.pair_seq.entry((src, dst)).or_default();
        *seq += 1;
        let seq = *seq;
        self.queue.push(Reverse(Scheduled {
            at: at.max(self.now),
            dst,
            src,
            seq,
            ev,
        }));
    }

    /// Randomness for one message from `src` to `dst`: a function of the seed, the pair
    /// and how many draws the pair made before, so the order in which a replica emits
    /// messages to different destinations does not matter.
    fn pair_rng(&mut self, src: u32, dst: u32) -> Rng {
        let n = self.pair_draws.entry((src, dst)).or_default();
        *n += 1;
        let mut x = self.cfg.seed ^ 0x6a09_e667_f3bc_c908;
        for v in [src as u64, dst as u64, *n] {
            x = (x ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
        }
        Rng::new(x)
    }

    fn verbose(&self) -> bool {
        self.cfg.verbose > 0
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if self.verbose() {
            self.trace.push(line());
        }
    }

    fn flush_trace(&mut self) {
        if self.verbose() {
            let t = self.now - START_MS;
            for line in self.trace.drain(..) {
                crate::outln!("{t:>8} {line}");
            }
        } else {
            self.trace.clear();
        }
    }

    pub fn run(mut self) -> Report {
        if self.verbose() {
            crate::outln!(
                "seed {} nodes {} steps {} hostile {} profile: {}",
                self.cfg.seed,
                self.cfg.nodes,
                self.cfg.steps,
                self.hostile,
                self.profile.describe()
            );
        }
        for i in 0..self.nodes.len() {
            self.restart(i);
            let t = self.now + self.rng_misc.range(0, 25);
            self.at(t, Ev::NodeTimer(i));
        }
        self.at(self.now + 10, Ev::ClientTimer(0));
        self.at(self.now + 100, Ev::Phase);
        self.flush_trace();
        while let Some(Reverse(s)) = self.queue.pop() {
            self.now = s.at;
            self.fingerprint = (self.fingerprint
                ^ s.ev.tag()
                ^ (s.at as u64).rotate_left(32)
                ^ s.seq.rotate_left(48))
            .wrapping_mul(0x0100_0000_01b3);
            self.stats.events += 1;
            self.handle(s.ev);
            if matches!(self.phase, Phase::Heal { .. }) {
                self.watch();
            }
            if self.phase == Phase::Faults {
                self.fault_steps += 1;
                if self.fault_steps >= self.cfg.steps {
                    self.begin_heal();
                }
            }
            self.flush_trace();
            if self.queue.len() > STORM_EVENTS {
                self.storm();
                break;
            }
            if self.checker.failed() || self.phase == Phase::Done {
                break;
            }
        }
        self.stats.sim_ms = self.now - START_MS;
        self.stats.tick_ms = self.profile.tick_ms;
        let w = &self.watch;
        self.stats.elect_ms = w.quiet_at.zip(w.elected_at).map(|(q, e)| e - q);
        self.stats.reelect_ms = w.clock.zip(w.reelected_at).map(|(c, e)| e - c);
        self.stats.reelect_from_kill_ms = w.killed.zip(w.reelected_at).map(|((k, _), e)| e - k);
        self.stats.reelect_lagging = w.lagging.is_some();
        self.stats.elect_stalled_ms = w.stalled[0];
        self.stats.reelect_stalled_ms = w.stalled[1];
        self.stats.last_zxid = self.checker.last_committed();
        self.stats.reconfigs = self.checker.reconfigs_committed();
        self.stats.applied = self.checker.applied_events;
        let mut cs = ClientStats::default();
        for c in &self.clients {
            let s = &c.stats;
            cs.connects += s.connects;
            cs.sessions += s.sessions;
            cs.expired += s.expired;
            cs.writes_ok += s.writes_ok;
            cs.writes_failed += s.writes_failed;
            cs.reads_ok += s.reads_ok;
            cs.unknown += s.unknown;
            cs.timeouts += s.timeouts;
            cs.stuck += s.stuck;
            cs.ephemerals += s.ephemerals;
            cs.pauses += s.pauses;
            cs.reconfigs_ok += s.reconfigs_ok;
            cs.reconfigs_failed += s.reconfigs_failed;
        }
        self.stats.clients = cs;
        for (kind, (n, first)) in self.checker.waived() {
            self.notes
                .push(format!("waived {n} '{kind}' violations, first: {first}"));
        }
        if self.checker.unknown_content > 0 {
            self.notes.push(format!(
                "{} applies whose transaction was not in the applying server's log",
                self.checker.unknown_content
            ));
        }
        Report {
            hostile: self.hostile,
            profile: self.profile.describe(),
            violations: self.checker.violations().to_vec(),
            notes: self.notes,
            stats: self.stats,
            fingerprint: self.fingerprint,
            config: self.cfg,
        }
    }

    fn handle(&mut self, ev: Ev) {
        // A paused server handles nothing: what reaches it waits until it resumes.
        let held_for = match &ev {
            Ev::Peer { to: i, .. }
            | Ev::PeerDown { node: i, .. }
            | Ev::ToServer { node: i, .. }
            | Ev::Durable { node: i, .. } => Some(*i),
            _ => None,
        };
        if let Some(i) = held_for {
            if self.nodes[i].paused.is_some() {
                self.nodes[i].held.push(ev);
                return;
            }
        }
        match ev {
            Ev::NodeTimer(i) => {
                if self.nodes[i].live() {
                    self.step_node(i, None);
                }
                let t = self.now + self.rng_misc.range(15, 30);
                self.at(t, Ev::NodeTimer(i));
            }
            Ev::Peer {
                from,
                to,
                generation,
                msg,
            } => {
                if self.net.generation(from, to) != generation || self.nodes[to].replica.is_none() {
                    return;
                }
                if self.cfg.verbose > 1 {
                    let line = format!("{} -> {}: {}", from + 1, to + 1, describe_msg(&msg));
                    self.trace.push(line);
                }
                let n = self.nodes.len();
                self.heard[to * n + from] = self.now;
                let info = matches!(msg, PeerMsg::FollowerInfo { .. });
                if let PeerMsg::AckEpoch { epoch, promise, .. } = &msg {
                    self.acked_epoch[to * n + from] = Some((*epoch, *promise));
                }
                let sid = self.nodes[from].sid;
                self.step_node(to, Some(ReplicaInput::Peer { from: sid, msg }));
                // A looking replica ignores a FollowerInfo; one that decided at this
                // step's Tick (before the message) takes it.
                let looking = self.nodes[to]
                    .replica
                    .as_ref()
                    .is_none_or(|r| r.role() == Role::Looking);
                if info && !looking {
                    self.info_heard[to * n + from] = self.now;
                }
            }
            Ev::PeerDown { node, inc, peer } => {
                if self.nodes[node].inc == inc && self.nodes[node].replica.is_some() {
                    self.log(|| format!("server {} told: link to {} down", node + 1, peer + 1));
                    let peer = self.nodes[peer].sid;
                    self.step_node(node, Some(ReplicaInput::PeerDown { peer }));
                }
            }
            Ev::DiskDone { node, inc, id } => {
                if self.nodes[node].inc != inc || self.nodes[node].replica.is_none() {
                    return;
                }
                // The write reaches the disk even while the server is paused; it
                // learns so when it resumes.
                if let Some(zxid) = self.nodes[node].disk.complete(id) {
                    if self.nodes[node].paused.is_some() {
                        self.nodes[node].held.push(Ev::Durable { node, inc, zxid });
                    } else {
                        self.step_node(node, Some(ReplicaInput::Durable { zxid }));
                    }
                }
            }
            Ev::Durable { node, inc, zxid } => {
                if self.nodes[node].inc == inc && self.nodes[node].replica.is_some() {
                    self.step_node(node, Some(ReplicaInput::Durable { zxid }));
                }
            }
            Ev::ToServer {
                node,
                client,
                conn,
                what,
            } => self.deliver_to_server(node, client, conn, what),
            Ev::ToClient {
                client, conn, what, ..
            } => {
                let actions = self.with_client(client, |c, ctx| match what {
                    ToClient::Frame(f) => c.on_frame(ctx, conn, &f),
                    ToClient::Closed => {
                        c.on_closed(ctx, conn);
                        Vec::new()
                    }
                });
                self.client_actions(client, actions);
            }
            Ev::ClientTimer(c) => {
                let actions = self.with_client(c, |c, ctx| c.on_timer(ctx));
                self.client_actions(c, actions);
                if !self.clients[c].done() {
                    let t = self.now + self.rng_misc.range(10, 40);
                    self.at(t, Ev::ClientTimer(c));
                }
            }
            Ev::Fault => self.fault(),
            Ev::Restart(i) => {
                if self.nodes[i].replica.is_none() {
                    self.restart(i);
                }
            }
            Ev::Heal(epoch) => {
                if epoch == self.partition_epoch && self.net.is_partitioned() {
                    self.log(|| "partition healed".to_string());
                    self.net.heal();
                }
            }
            Ev::Phase => {
                self.phase_check();
                if self.phase != Phase::Done {
                    self.at(self.now + 100, Ev::Phase);
                }
            }
            Ev::Resume(i, token) => {
                if self.nodes[i].paused == Some(token) {
                    self.resume(i);
                }
            }
            Ev::Kill { node, inc, heal } => {
                let alive = self.nodes[node].inc == inc && self.nodes[node].replica.is_some();
                if heal {
                    if alive {
                        self.crash(node, "the heal's final kill of the leader");
                        let t = self.now + self.rng_fault.range(100, 3000);
                        self.at(t, Ev::Restart(node));
                        self.watch.killed = Some((self.now, self.nodes[node].sid));
                    } else {
                        self.watch.done = true;
                    }
                } else if alive && self.phase == Phase::Faults {
                    self.crash(node, "the leader killed");
                    let t = self.now + self.rng_fault.range(100, 3000);
                    self.at(t, Ev::Restart(node));
                }
            }
            Ev::HealKill => self.heal_kill(),
            Ev::PausedReconfig(i, token) => self.paused_reconfig(i, token),
            Ev::Watch => {}
        }
    }

    // ---------------------------------------------------------------- servers

    /// Which servers are running (what the reconfiguring clients may know; empty when
    /// there are none).
    fn servers_up(&self) -> Vec<bool> {
        if !self.cfg.reconfig {
            return Vec::new();
        }
        self.nodes.iter().map(|n| n.replica.is_some()).collect()
    }

    /// The configuration a (re)start reads: the saved committed membership if there is
    /// one (as `net` keeps it in `dataDir/membership`), else `zoo.cfg`'s. A server
    /// outside the initial membership has a `zoo.cfg` naming the initial members and
    /// itself as a participant, as ZooKeeper asks of a server about to join.
    fn replica_config(&self, i: usize) -> ReplicaConfig {
        let sid = self.nodes[i].sid;
        let (voters, observers) = match self.nodes[i].disk.membership() {
            Some((_, text)) => {
                let m = Membership::parse(text).expect("a saved membership parses");
                (m.voters(), m.observers())
            }
            None => {
                let mut v = self.initial.voters.clone();
                if !self.initial.is_member(sid) {
                    v.push(sid);
                    v.sort_unstable();
                }
                (v, self.initial.observers.clone())
            }
        };
        let mut c = ReplicaConfig::new(sid, voters);
        c.observers = observers;
        c.reconfig_enabled = self.cfg.reconfig;
        c.tick_ms = self.profile.tick_ms;
        c.init_limit = INIT_LIMIT;
        c.sync_limit = SYNC_LIMIT;
        c.leader_silence_ms = self.profile.silence_ms;
        c.max_batch_txns = self.profile.max_batch_txns;
        c.history_txns = self.profile.history_txns;
        c.record_applied = true;
        c
    }

    fn engine_config(&self, i: usize) -> EngineConfig {
        EngineConfig {
            server_id: self.nodes[i].sid as i64,
            tick_ms: self.profile.tick_ms as i32,
            min_session_timeout_ms: 2 * self.profile.tick_ms as i32,
            max_session_timeout_ms: 40 * self.profile.tick_ms as i32,
            super_digest: self
                .cfg
                .reconfig
                .then(|| keel_engine::acl::digest_id(crate::client::SUPER_AUTH)),
            ..Default::default()
        }
    }

    fn restart(&mut self, i: usize) {
        let local = self.now + self.nodes[i].clock_offset;
        let rec = match self.nodes[i].disk.recover() {
            Ok(r) => r,
            Err(e) => {
                let sid = self.nodes[i].sid;
                self.checker
                    .violate(self.now, "recovery", format!("server {sid}: {e}"));
                return;
            }
        };
        if rec.cut_bytes > 0 {
            self.stats.torn_cut += 1;
        }
        let mut engine = Engine::new(self.engine_config(i), local);
        let snap_zxid = match &rec.snapshot {
            Some(s) => {
                engine.load_snapshot(s);
                s.last_zxid as i64
            }
            None => 0,
        };
        let n_frames = rec.frames.len();
        let last_frame = rec.frames.last().map(|f| f.last).unwrap_or(0);
        let mut cfg = self.replica_config(i);
        // As `net` starts a member: the newest of zoo.cfg's membership, the saved one
        // and the snapshot's.
        let saved = self.nodes[i]
            .disk
            .membership()
            .map(|(_, text)| Membership::parse(text).expect("a saved membership parses"));
        let in_snapshot = Membership::parse(&engine.tree().config_text()).ok();
        let mut candidates = vec![Membership::placeholder(&cfg.voters, &cfg.observers)];
        candidates.extend(saved.clone());
        if saved.is_some() || self.cfg.sabotage != Some(Sabotage::ForgetMembership) {
            // The snapshot's /zookeeper/config would give the membership back: the
            // sabotage takes that too, leaving zoo.cfg's.
            candidates.extend(in_snapshot);
        }
        cfg.membership = Membership::newest(&candidates).map(|c| candidates.swap_remove(c));
        let replica = Replica::new(cfg, engine, rec.epochs, rec.frames, local);
        let node = &mut self.nodes[i];
        node.replica = Some(replica);
        node.last_applied = snap_zxid;
        node.applied_since_snapshot = 0;
        node.pending_snapshot = None;
        node.role = Role::Looking;
        node.role_since = self.now;
        node.fail_disk = false;
        let (sid, cut, epochs) = (node.sid, rec.cut_bytes, rec.epochs);
        self.log(|| {
            format!(
                "server {sid} starts: snapshot {snap_zxid:#x}, {n_frames} log frames through {last_frame:#x}, epochs {}/{}, torn bytes cut {cut}",
                epochs.accepted, epochs.current
            )
        });
        self.step_node(i, None);
    }

    fn crash(&mut self, i: usize, why: &str) {
        let p_torn = self.profile.p_torn;
        let torn = self.rng_disk.chance(p_torn);
        let node = &mut self.nodes[i];
        if node.replica.is_none() {
            return;
        }
        node.replica = None;
        node.inc += 1;
        node.disk.crash(&mut self.rng_disk, torn);
        if self.cfg.sabotage == Some(Sabotage::LyingDisk) {
            node.disk.lose_durable_tail(3);
        }
        if self.cfg.sabotage == Some(Sabotage::ForgetMembership) {
            node.disk.forget_membership();
        }
        node.pending_snapshot = None;
        node.role = Role::Looking;
        node.role_since = self.now;
        // A paused process can be killed too: what waited for it is lost with it.
        node.paused = None;
        node.held.clear();
        let conns: Vec<(ConnId, ConnInfo)> = std::mem::take(&mut node.conns).into_iter().collect();
        let sid = node.sid;
        self.stats.crashes += 1;
        self.log(|| format!("CRASH server {sid} ({why}; torn write possible: {torn})"));
        for (conn, info) in conns {
            let lat = self
                .pair_rng(i as u32, CLIENT + info.client as u32)
                .range(1, 30);
            let t = (self.now + lat).max(info.last_at);
            self.at(
                t,
                Ev::ToClient {
                    node: i,
                    client: info.client,
                    conn,
                    what: ToClient::Closed,
                },
            );
        }
        for p in self.net.break_node(i) {
            let mut until = self.now;
            if self.nodes[p].replica.is_some() {
                let t = self.now + self.pair_rng(i as u32, p as u32).range(1, 50);
                until = t;
                let inc = self.nodes[p].inc;
                self.at(
                    t,
                    Ev::PeerDown {
                        node: p,
                        inc,
                        peer: i,
                    },
                );
            }
            self.net.down_until(i, p, until + 1);
        }
    }

    fn disk_latency(&mut self, i: usize) -> i64 {
        let (lo, hi) = self.profile.disk_latency;
        let mut l = self.rng_disk.range(lo, hi + 1);
        if self.nodes[i].slow_until > self.now {
            l += self.rng_disk.range(50, 800);
        }
        l
    }

    /// One step of server `i`: `Tick`, the input, then its outputs, then the checks.
    fn step_node(&mut self, i: usize, input: Option<ReplicaInput>) {
        let local = self.now + self.nodes[i].clock_offset;
        let mut outs = Vec::new();
        let applied = {
            let r = self.nodes[i]
                .replica
                .as_mut()
                .expect("step of a live server");
            if input.is_none() || self.cfg.tick_every_input {
                r.step(ReplicaInput::Tick { now_ms: local });
            }
            if let Some(inp) = input {
                r.step(inp);
            }
            r.drain(&mut outs);
            r.take_applied()
        };
        let applied_before = self.nodes[i].last_applied;
        let mut fx = SimFx {
            w: self,
            i,
            installed: None,
            applied_before,
        };
        let fail_stop = effects::execute(outs, &mut fx).is_break();
        let installed = fx.installed;
        self.check_applied(i, &applied, installed);
        if self.cfg.reconfig {
            self.check_membership(i);
        }
        if fail_stop {
            self.stats.disk_failures += 1;
            self.crash(i, "disk write failed: fail-stop");
            let t = self.now + self.rng_fault.range(200, 3000);
            self.at(t, Ev::Restart(i));
            return;
        }
        self.maybe_snapshot(i);
    }

    fn send_peer(&mut self, i: usize, to: Sid, msg: PeerMsg) {
        let sid = self.nodes[i].sid;
        let Some(j) = self.nodes.iter().position(|n| n.sid == to) else {
            self.checker.violate(
                self.now,
                "outputs",
                format!("server {sid} sent to unknown server {to}"),
            );
            return;
        };
        if j == i {
            self.checker.violate(
                self.now,
                "outputs",
                format!("server {sid} sent a message to itself"),
            );
            return;
        }
        // What crosses the wire is the encoding.
        let msg = match PeerMsg::decode(&msg.encode()) {
            Ok(m) if m == msg => m,
            other => {
                self.checker.violate(
                    self.now,
                    "peer codec",
                    format!("{} does not survive encode/decode: {other:?}", msg.name()),
                );
                return;
            }
        };
        self.stats.messages += 1;
        let mut rng = self.pair_rng(i as u32, j as u32);
        let may_misbehave = !matches!(msg, PeerMsg::Request(_));
        let fate = self.net.route(i, j, self.now, &mut rng, may_misbehave);
        if matches!(msg, PeerMsg::Vote(_)) {
            let n = self.nodes.len();
            self.vote_lost[i * n + j] = match fate {
                Fate::Deliver { .. } => None,
                Fate::Dropped | Fate::Broke => Some(self.now),
            };
        }
        match fate {
            Fate::Dropped => {}
            Fate::Broke => {
                self.stats.link_breaks += 1;
                self.log(|| {
                    format!(
                        "link {}-{} breaks (message {} lost)",
                        i + 1,
                        j + 1,
                        msg.name()
                    )
                });
                self.tell_link_down(i, j);
            }
            Fate::Deliver {
                mut at,
                generation,
                hostile,
            } => {
                if self.cfg.sabotage == Some(Sabotage::SlowVotes)
                    && matches!(msg, PeerMsg::Vote(_))
                    && matches!(self.phase, Phase::Heal { .. })
                {
                    for t in &mut at {
                        *t += self.profile.tick_ms;
                    }
                }
                if hostile {
                    self.stats.hostile_deliveries += 1;
                    let n = at.len();
                    self.log(|| {
                        format!(
                            "hostile network: {} {}->{} delivered {} (x{n})",
                            msg.name(),
                            i + 1,
                            j + 1,
                            if n > 1 { "twice" } else { "out of order" }
                        )
                    });
                }
                for t in at {
                    let msg = msg.clone();
                    self.at(
                        t,
                        Ev::Peer {
                            from: i,
                            to: j,
                            generation,
                            msg,
                        },
                    );
                }
            }
        }
    }

    /// Leader `i` just accepted (logged and proposed) a reconfiguration to `new`: a
    /// quorum of its voters must be available, unless none of the voters in force was
    /// either. Available: the leader; a server up, not paused and on the leader's side
    /// of any partition; or one the leader heard from within syncLimit (plus 100 ms for
    /// the leader's clock, which advances at its ticks): a leader cannot know yet that
    /// a server it heard from so recently has stopped, and a correct one (ZooKeeper's
    /// `isQuorumSynced`) counts it. A reconfiguration that fails this can only be
    /// committed by a server that stopped answering more than syncLimit ago; until it
    /// comes back, every quorum needs the new voters and the ensemble is down.
    fn check_reconfig_quorum(&mut self, i: usize, new: &Members) {
        let n = self.nodes.len();
        let limit = SYNC_LIMIT * self.profile.tick_ms + 100;
        let now = self.now;
        let available = |s: Sid| -> bool {
            let j = s as usize - 1;
            if j == i {
                return true;
            }
            if j >= n {
                return false;
            }
            (self.nodes[j].live() && self.net.connected(i, j))
                || self.heard[i * n + j] >= now - limit
        };
        let new_ok: Vec<Sid> = new
            .voters
            .iter()
            .copied()
            .filter(|s| available(*s))
            .collect();
        let old = match &self.nodes[i].replica {
            Some(r) => Members::from_membership(r.membership()),
            None => return,
        };
        let old_ok: Vec<Sid> = old
            .voters
            .iter()
            .copied()
            .filter(|s| available(*s))
            .collect();
        if new.quorum_of(&new_ok).1 || !old.quorum_of(&old_ok).1 {
            return;
        }
        let mut why = Vec::new();
        for s in new.voters.iter().filter(|s| !new_ok.contains(s)) {
            let j = *s as usize - 1;
            let state = if j >= n {
                "not a server".to_string()
            } else {
                let node = &self.nodes[j];
                let last = self.heard[i * n + j];
                let heard = if last < START_MS {
                    "never heard".to_string()
                } else {
                    format!("last heard {}ms ago", now - last)
                };
                match (&node.replica, node.paused) {
                    (None, _) => format!("down, {heard}"),
                    (Some(_), Some(_)) => {
                        format!("paused for {}ms, {heard}", now - node.paused_at)
                    }
                    (Some(_), None) => format!("cut off by a partition, {heard}"),
                }
            };
            why.push(format!("{s}: {state}"));
        }
        let sid = self.nodes[i].sid;
        self.checker.violate(
            now,
            "reconfig quorum",
            format!(
                "leader {sid} accepted reconfiguration {new} with only {new_ok:?} of its voters available ({}; syncLimit is {}ms), while the voters in force {:?} had {old_ok:?}: until they answer, no quorum can commit anything",
                why.join("; "),
                SYNC_LIMIT * self.profile.tick_ms,
                old.voters
            ),
        );
    }

    /// Tells both ends of a broken link, within 5 ms; the link carries nothing until
    /// both know.
    fn tell_link_down(&mut self, a: usize, b: usize) {
        let mut until = self.now;
        for (x, y) in [(a, b), (b, a)] {
            if self.nodes[x].replica.is_some() {
                let t = self.now + self.pair_rng(y as u32, x as u32).range(0, 5);
                until = until.max(t);
                let inc = self.nodes[x].inc;
                self.at(
                    t,
                    Ev::PeerDown {
                        node: x,
                        inc,
                        peer: y,
                    },
                );
            }
        }
        self.net.down_until(a, b, until + 1);
    }

    /// Voter `i` is about to drop everything after `keep` from its durable storage: it
    /// must not hold a committed transaction there (that would shrink the set of
    /// servers holding it below what made it committed). Observers do not count for
    /// durability; a doomed candidate of an older epoch may legitimately truncate an
    /// observer that also holds what a newer epoch committed since, and so a server
    /// outside the membership (a learner). With reconfiguration, "voter" means: a
    /// voter of the membership in force at the dropped zxid, and of the newest
    /// committed one, which it knows of (it saved it or holds its reconfiguration
    /// durably; a voter that does not know yet may still follow as a learner, and the
    /// new membership's quorum that committed that reconfiguration holds what it drops).
    ///
    /// Nor does a transaction committed in an epoch this server has not accepted: the
    /// quorum whose acks committed it had all accepted that epoch, so this server is
    /// not among them, and they still hold it. That is a voter still syncing with a
    /// doomed candidate of an older epoch, whose truncation (computed before a newer
    /// epoch re-proposed and committed what it cuts) arrives after that commit; the
    /// newer leader gives it back when the voter joins it.
    fn check_drop(&mut self, i: usize, keep: i64, what: &str) {
        let sid = self.nodes[i].sid;
        let accepted = self.nodes[i].replica.as_ref().map(|r| r.epochs().accepted);
        let disk = &self.nodes[i].disk;
        let newest = self.checker.newest_membership();
        if !newest.is_voter(sid) {
            return;
        }
        if newest.version > 0 {
            let saved = disk.membership().is_some_and(|(v, _)| *v >= newest.version);
            let logged = self
                .checker
                .committed(newest.version)
                .is_some_and(|r| disk.durably_holds(r));
            if !saved && !logged {
                return;
            }
        }
        let end = disk.durable_through();
        if end <= keep {
            return;
        }
        // The newest committed transaction after `keep` this server holds durably as
        // a voter.
        let dropped = self
            .checker
            .committed_after(keep, end)
            .into_iter()
            .rev()
            .take(64)
            .find(|r| {
                disk.durably_holds(r)
                    && self.checker.membership_at(r.zxid).is_voter(sid)
                    && accepted
                        .is_none_or(|a| self.checker.commit_epoch(r.zxid).is_none_or(|e| a >= e))
            })
            .map(|r| r.zxid);
        if let Some(z) = dropped {
            let sid = self.nodes[i].sid;
            self.checker.violate(
                self.now,
                "durability",
                format!("server {sid} drops committed {z:#x} from its durable storage by {what} {keep:#x}"),
            );
        }
    }

    /// The checks on what server `i` applied in its last step.
    fn check_applied(&mut self, i: usize, applied: &[(i64, u64)], installed: Option<(i64, i64)>) {
        let sid = self.nodes[i].sid;
        let mut snap = installed;
        for &(z, d) in applied {
            if let Some((s, before)) = snap {
                if z > s {
                    self.checker.snapshot_installed(
                        self.now,
                        sid,
                        s,
                        before.max(self.nodes[i].last_applied),
                    );
                    self.nodes[i].last_applied = s;
                    snap = None;
                }
            }
            let prev = self.nodes[i].last_applied;
            let rec = self.nodes[i].disk.find(z, true).cloned();
            let durable_on: Option<Vec<Sid>> = rec.as_ref().map(|r| {
                self.nodes
                    .iter()
                    .filter(|n| n.disk.durably_holds(r))
                    .map(|n| n.sid)
                    .collect()
            });
            let epoch = self.nodes[i]
                .replica
                .as_ref()
                .map_or(0, |r| r.epochs().current);
            self.checker.applied(
                self.now,
                sid,
                prev,
                z,
                d,
                rec.as_ref(),
                durable_on.as_deref(),
                epoch,
            );
            self.nodes[i].last_applied = z;
            self.nodes[i].applied_since_snapshot += 1;
        }
        if let Some((s, before)) = snap {
            self.checker.snapshot_installed(
                self.now,
                sid,
                s,
                before.max(self.nodes[i].last_applied),
            );
            self.nodes[i].last_applied = s;
        }
        if let Some(r) = &self.nodes[i].replica {
            let (a, c) = (r.applied_zxid(), r.committed_zxid());
            if a != self.nodes[i].last_applied {
                let detail = format!(
                    "server {sid}: applied_zxid() is {a:#x} but take_applied() accounts for {:#x}",
                    self.nodes[i].last_applied
                );
                self.checker
                    .violate(self.now, "applied bookkeeping", detail);
            }
            if a > c {
                self.checker.violate(
                    self.now,
                    "applied bookkeeping",
                    format!("server {sid}: applied {a:#x} beyond committed {c:#x}"),
                );
            }
        }
    }

    /// With reconfiguration, after every step: a server runs with the membership of
    /// the newest reconfiguration it applied (or a newer committed one it saved before
    /// a crash lost the end of its log), that is the committed one of that version, and
    /// its quorums count that membership's voters.
    fn check_membership(&mut self, i: usize) {
        let Some(r) = &self.nodes[i].replica else {
            return;
        };
        let sid = self.nodes[i].sid;
        let m = r.membership();
        let applied = r.applied_zxid();
        let expect = self.checker.membership_at(applied + 1).version;
        let mut bad = Vec::new();
        if m.version < expect {
            bad.push(format!(
                "server {sid} applied through {applied:#x}, past reconfiguration {expect:#x}, but runs with membership {:#x}",
                m.version
            ));
        }
        if m.version > 0 {
            let mine = Members::from_membership(m);
            match self.checker.membership(m.version) {
                Some(c) if c.voters == mine.voters && c.observers == mine.observers => {}
                Some(c) => bad.push(format!(
                    "server {sid} runs with membership {mine}, but the committed one of that version is {c}"
                )),
                None if !self.checker.is_committed(m.version) => bad.push(format!(
                    "server {sid} runs with membership {mine}, which no server applied"
                )),
                None => {}
            }
            let cfg = r.config();
            if cfg.voters != mine.voters || cfg.observers != mine.observers {
                bad.push(format!(
                    "server {sid} runs with membership {mine}, but its quorums count voters {:?} observers {:?}",
                    cfg.voters, cfg.observers
                ));
            }
        }
        for b in bad {
            self.checker.violate(self.now, "membership", b);
        }
    }

    /// The simulator's own snapshots (as production's snapshot thread): take one of the
    /// committed state every so often, store it once the log is durable through it.
    fn maybe_snapshot(&mut self, i: usize) {
        let Some(every) = self.profile.snapshot_every else {
            return;
        };
        let node = &mut self.nodes[i];
        let Some(r) = &node.replica else {
            return;
        };
        if node.pending_snapshot.is_none()
            && node.applied_since_snapshot >= every
            && r.applied_zxid() > node.disk.snapshot_zxid()
        {
            node.pending_snapshot = Some(r.engine().snapshot());
            node.applied_since_snapshot = 0;
        }
        if let Some(p) = &node.pending_snapshot {
            let z = p.last_zxid as i64;
            if node.disk.durable_log_zxid() >= z || z <= node.disk.snapshot_zxid() {
                let p = node.pending_snapshot.take().unwrap();
                node.disk.compact(p);
                self.stats.snapshots_taken += 1;
                let sid = node.sid;
                if self.cfg.verbose > 1 {
                    self.trace.push(format!(
                        "server {sid}: snapshot at {z:#x} stored, log compacted"
                    ));
                }
            }
        }
    }

    // ---------------------------------------------------------------- clients

    /// Runs `f` on client `client` with its view of the world (`Ctx`), keeping what it
    /// traced when verbose; returns the actions it asked for.
    fn with_client(
        &mut self,
        client: usize,
        f: impl FnOnce(&mut Client, &mut Ctx) -> Vec<Action>,
    ) -> Vec<Action> {
        let mut trace = Vec::new();
        let up = self.servers_up();
        let mut ctx = Ctx {
            now: self.now,
            nodes: self.nodes.len(),
            up: &up,
            keys: &self.keys,
            next_conn: &mut self.next_conn,
            checker: &mut self.checker,
            trace: &mut trace,
        };
        let actions = f(&mut self.clients[client], &mut ctx);
        if self.cfg.verbose > 0 {
            self.trace.extend(trace);
        }
        actions
    }

    fn client_actions(&mut self, client: usize, actions: Vec<Action>) {
        for a in actions {
            let (node, conn, what) = match a {
                Action::Connect {
                    node,
                    conn,
                    req,
                    peer,
                } => (node, conn, ToServer::Connect { req, peer }),
                Action::Request {
                    node,
                    conn,
                    xid,
                    op,
                    body,
                } => (node, conn, ToServer::Request { xid, op, body }),
                Action::Disconnect { node, conn } => (node, conn, ToServer::Disconnected),
            };
            let lat = self
                .pair_rng(CLIENT + client as u32, node as u32)
                .range(1, 5);
            let t = (self.now + lat).max(self.client_last_at[client]);
            self.client_last_at[client] = t;
            self.at(
                t,
                Ev::ToServer {
                    node,
                    client,
                    conn,
                    what,
                },
            );
        }
    }

    fn deliver_to_server(&mut self, node: usize, client: usize, conn: ConnId, what: ToServer) {
        let alive = self.nodes[node].replica.is_some();
        match what {
            ToServer::Connect { req, peer } => {
                if !alive {
                    let t = self.now
                        + self
                            .pair_rng(node as u32, CLIENT + client as u32)
                            .range(1, 5);
                    self.at(
                        t,
                        Ev::ToClient {
                            node,
                            client,
                            conn,
                            what: ToClient::Closed,
                        },
                    );
                    return;
                }
                self.nodes[node].conns.insert(
                    conn,
                    ConnInfo {
                        client,
                        last_at: self.now,
                    },
                );
                self.step_node(
                    node,
                    Some(ReplicaInput::Client(Input::Connect { conn, peer, req })),
                );
            }
            ToServer::Request { xid, op, body } => {
                if alive && self.nodes[node].conns.contains_key(&conn) {
                    self.step_node(
                        node,
                        Some(ReplicaInput::Client(Input::Request {
                            conn,
                            xid,
                            op,
                            body,
                        })),
                    );
                }
            }
            ToServer::Disconnected => {
                if alive && self.nodes[node].conns.remove(&conn).is_some() {
                    self.step_node(
                        node,
                        Some(ReplicaInput::Client(Input::Disconnected {
                            conn,
                            hung_up: true,
                        })),
                    );
                }
            }
        }
    }

    // ---------------------------------------------------------------- faults

    fn fault(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let p = self.profile.clone();
        let mut kinds = Vec::new();
        if p.crash {
            kinds.push(0);
        }
        if p.partition {
            kinds.push(1);
        }
        if p.link_break {
            kinds.push(2);
        }
        if p.slow_disk {
            kinds.push(3);
        }
        if p.disk_fail {
            kinds.push(4);
        }
        if p.client_pause && self.clients.len() > 1 {
            kinds.push(5);
        }
        if p.pause {
            kinds.push(6);
            if p.crash {
                kinds.push(7);
            }
        }
        if !kinds.is_empty() {
            let n = self.nodes.len();
            let i = self.rng_fault.index(n);
            match *self.rng_fault.pick(&kinds) {
                0 => {
                    if p.power_loss && self.rng_fault.chance(0.1) {
                        self.stats.power_losses += 1;
                        self.log(|| "POWER LOSS: every server crashes".to_string());
                        for j in 0..n {
                            if self.nodes[j].replica.is_some() {
                                self.crash(j, "power loss");
                                let t = self.now + self.rng_fault.range(100, 2000);
                                self.at(t, Ev::Restart(j));
                            }
                        }
                    } else if self.nodes[i].replica.is_some() {
                        self.crash(i, "fault");
                        let t = self.now + self.rng_fault.range(100, 3000);
                        self.at(t, Ev::Restart(i));
                    }
                }
                1 => {
                    let side: Vec<u32> = if self.rng_fault.chance(0.5) {
                        (0..n).map(|j| (j == i) as u32).collect()
                    } else {
                        (0..n).map(|_| self.rng_fault.below(2) as u32).collect()
                    };
                    self.stats.partitions += 1;
                    self.partition_epoch += 1;
                    let sides = side.clone();
                    self.log(|| format!("PARTITION sides {sides:?}"));
                    for (a, b) in self.net.partition(side) {
                        self.tell_link_down(a, b);
                    }
                    let t = self.now + self.rng_fault.range(200, 5000);
                    let e = self.partition_epoch;
                    self.at(t, Ev::Heal(e));
                }
                2 => {
                    let j = (i + 1 + self.rng_fault.index(n - 1)) % n;
                    if n > 1 && self.net.connected(i, j) {
                        self.stats.link_breaks += 1;
                        self.log(|| format!("link {}-{} breaks", i + 1, j + 1));
                        self.net.break_link(i, j);
                        self.tell_link_down(i, j);
                    }
                }
                3 => {
                    self.stats.slow_disks += 1;
                    let until = self.now + self.rng_fault.range(500, 5000);
                    self.nodes[i].slow_until = until;
                    let d = until - self.now;
                    self.log(|| format!("server {}: disk slow for {d}ms", i + 1));
                }
                4 => {
                    if self.nodes[i].replica.is_some() {
                        self.log(|| format!("server {}: disk will fail at its next write", i + 1));
                        self.nodes[i].fail_disk = true;
                    }
                }
                6 => {
                    let mut i = i;
                    let mut branch = self.rng_fault.index(3);
                    if self.cfg.reconfig && self.rng_fault.chance(0.5) {
                        // With reconfiguration, often a voter past syncLimit: the
                        // shape a reconfiguration must not be accepted around.
                        let voters = self.checker.newest_membership().voters.clone();
                        if let Some(v) = voters.get(self.rng_fault.index(voters.len().max(1))) {
                            i = (*v as usize - 1).min(n - 1);
                        }
                        branch = 2;
                    }
                    if self.nodes[i].live() {
                        let limit = SYNC_LIMIT * self.profile.tick_ms;
                        // A lag (one message behind), a pause the others do not
                        // notice (below syncLimit), or one they do.
                        let d = match branch {
                            0 => self.rng_fault.range(20, 400),
                            1 => self.rng_fault.range(400, (limit * 9 / 10).max(500)),
                            _ => self.rng_fault.range(limit + limit / 10, 2 * limit + 1000),
                        };
                        let token = self.pause(i, d);
                        if self.cfg.reconfig && d > limit + 400 {
                            let late = self.rng_fault.range(300, (d - limit - 100).min(1500));
                            self.at(self.now + limit + late, Ev::PausedReconfig(i, token));
                        }
                    }
                }
                7 => {
                    self.kill_leader_lagging(false, true);
                }
                _ => {
                    let c = 1 + self.rng_fault.index(self.cfg.clients.max(1));
                    let d = self.rng_fault.range(1000, 8000);
                    self.clients[c].paused_until = self.now + d;
                    self.clients[c].stats.pauses += 1;
                    self.log(|| format!("client {c} pauses for {d}ms"));
                }
            }
        }
        let (lo, hi) = p.fault_gap;
        let t = self.now + self.rng_fault.range(lo, hi);
        self.at(t, Ev::Fault);
    }

    /// Too many events queued: servers multiply messages faster than the network
    /// delivers them (an echo that amplifies). Reported with the busiest links, and
    /// the run ends (unchecked, it would take the machine's memory).
    fn storm(&mut self) {
        let mut per_link: BTreeMap<(usize, usize, &'static str), u64> = BTreeMap::new();
        for Reverse(e) in self.queue.iter() {
            if let Ev::Peer { from, to, msg, .. } = &e.ev {
                *per_link.entry((*from, *to, msg.name())).or_default() += 1;
            }
        }
        let mut top: Vec<_> = per_link.into_iter().collect();
        top.sort_by_key(|(_, n)| Reverse(*n));
        let busiest = top
            .iter()
            .take(4)
            .map(|((f, t, m), n)| format!("{n} {m} {}->{}", f + 1, t + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let roles = self.roles_summary();
        self.checker.violate(
            self.now,
            "message storm",
            format!(
                "{} events queued (servers multiply messages faster than they are delivered); busiest: {busiest}: {roles}",
                self.queue.len()
            ),
        );
        if !self.checker.failed() {
            self.notes
                .push("run ended at a message storm; end checks skipped".into());
        }
        self.phase = Phase::Done;
    }

    /// Stops server `i` (`SIGSTOP`) for `ms`; returns the pause's token.
    fn pause(&mut self, i: usize, ms: i64) -> u64 {
        self.pause_seq += 1;
        let token = self.pause_seq;
        let node = &mut self.nodes[i];
        node.paused = Some(token);
        node.paused_at = self.now;
        self.stats.pauses += 1;
        let sid = node.sid;
        self.log(|| format!("PAUSE server {sid} for {ms}ms (SIGSTOP)"));
        self.at(self.now + ms, Ev::Resume(i, token));
        token
    }

    /// Server `i` resumes (`SIGCONT`): it handles what waited for it, in the order it
    /// arrived, at once (each input after a `Tick` of the present, as always).
    fn resume(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.paused = None;
        let held = std::mem::take(&mut node.held);
        let (sid, d, n) = (node.sid, self.now - node.paused_at, held.len());
        self.log(|| format!("RESUME server {sid} after {d}ms; {n} events waited"));
        if self.nodes[i].replica.is_some() {
            // The timer fires first (the process was stopped past its timers).
            self.step_node(i, None);
        }
        for ev in held {
            self.handle(ev);
        }
    }

    /// The live server that leads, if any.
    fn leading_node(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.live() && n.role == Role::Leading)
    }

    /// Kills the leader (`kill -9`, restarted 0.1–3 s later); with `lag`, one of its
    /// voting followers is paused from up to 150 ms before the kill until 20–400 ms
    /// after it, so that it misses the leader's last messages and reads the survivors'
    /// first votes while it still follows the dead leader: one message behind.
    fn kill_leader_lagging(&mut self, heal: bool, lag: bool) -> bool {
        // The heal kills the leader that serves; a fault, whichever leads.
        let leader = if heal {
            self.serving_leader()
                .and_then(|l| self.nodes.iter().position(|n| n.sid == l))
        } else {
            self.leading_node()
        };
        let Some(li) = leader else {
            return false;
        };
        let l = self.nodes[li].sid;
        let mut lagging = None;
        if lag {
            let newest = self.checker.newest_membership();
            let cands: Vec<usize> = (0..self.nodes.len())
                .filter(|&j| {
                    let n = &self.nodes[j];
                    j != li
                        && n.live()
                        && n.role == Role::Following { leader: l }
                        && newest.is_voter(n.sid)
                })
                .collect();
            if !cands.is_empty() {
                lagging = Some(*self.rng_fault.pick(&cands));
            }
        }
        let before = if lagging.is_some() {
            self.rng_fault.range(0, 150)
        } else {
            0
        };
        if let Some(f) = lagging {
            let d = before + self.rng_fault.range(20, 400);
            self.pause(f, d);
            self.stats.lagging_kills += 1;
            if heal {
                self.watch.lagging = Some(self.nodes[f].sid);
            }
        }
        self.log(|| format!("KILL the leader {l} in {before}ms"));
        let inc = self.nodes[li].inc;
        self.at(
            self.now + before,
            Ev::Kill {
                node: li,
                inc,
                heal,
            },
        );
        true
    }

    /// A reconfiguration issued while server `i` is paused past syncLimit: the new
    /// voters are the leader and `i` (the other voters leave), or when they are the
    /// only voters, `i` and a server from outside (the leader leaves); either way only
    /// `i` could help commit it. The leader must refuse it (NewConfigNoQuorum): the
    /// `reconfig quorum` check fails if it does not.
    fn paused_reconfig(&mut self, i: usize, token: u64) {
        if self.phase != Phase::Faults || self.nodes[i].paused != Some(token) {
            return;
        }
        let retry = Ev::PausedReconfig(i, token);
        let Some(li) = self.leading_node() else {
            self.at(self.now + 300, retry);
            return;
        };
        let (p, l) = (self.nodes[i].sid, self.nodes[li].sid);
        let cur = self.checker.newest_membership();
        if !cur.is_voter(p) || !cur.is_voter(l) {
            return;
        }
        let others = cur.voters.iter().any(|s| *s != p && *s != l);
        let partner = if others {
            l
        } else {
            let outside: Vec<Sid> = self
                .nodes
                .iter()
                .map(|n| n.sid)
                .filter(|s| !cur.is_member(*s))
                .collect();
            if outside.is_empty() {
                return;
            }
            *self.rng_fault.pick(&outside)
        };
        let spec = |s: Sid| {
            format!(
                "server.{s}=127.0.0.1:{}:{}:participant;{}",
                2888 + s,
                3888 + s,
                2180 + s
            )
        };
        let plan = crate::client::ReconfigPlan {
            joining: String::new(),
            leaving: String::new(),
            new_members: format!("{},{}", spec(p.min(partner)), spec(p.max(partner))),
            cur_config_id: -1,
        };
        // A reconfiguring client not stuck on the paused server.
        let Some(c) = (0..self.clients.len()).find(|&c| {
            self.clients[c].mode == Mode::Reconfig
                && self.clients[c].issuing
                && self.clients[c].inject.is_none()
                && self.clients[c].connection().is_some_and(|(n, _)| n != i)
        }) else {
            self.at(self.now + 300, retry);
            return;
        };
        self.log(|| {
            format!(
                "client {c} will reconfigure while server {p} is paused: {}",
                plan.describe()
            )
        });
        self.clients[c].inject = Some(plan);
        self.stats.paused_reconfigs += 1;
    }

    /// Whether a quorum of voters is live (up and not paused): of the newest committed
    /// membership, and of every reconfiguration a live server has pending.
    fn live_quorum(&self) -> bool {
        let live: Vec<Sid> = self
            .nodes
            .iter()
            .filter(|n| n.live())
            .map(|n| n.sid)
            .collect();
        if !self.checker.newest_membership().quorum_of(&live).1 {
            return false;
        }
        self.nodes.iter().filter(|n| n.live()).all(|n| {
            n.replica
                .as_ref()
                .and_then(|r| r.pending_membership())
                .is_none_or(|m| Members::from_membership(m).quorum_of(&live).1)
        })
    }

    /// A live leader serving (broadcast phase) with a quorum of voters following it
    /// (live, in its broadcast phase): a quorum as the leader counts it (both
    /// memberships while a reconfiguration is pending) and of the newest committed
    /// membership.
    fn serving_leader(&self) -> Option<Sid> {
        for n in &self.nodes {
            if !n.live() || n.role != Role::Leading {
                continue;
            }
            let l = n.sid;
            let following: Vec<Sid> = self
                .nodes
                .iter()
                .filter(|m| m.sid == l || (m.live() && m.role == Role::Following { leader: l }))
                .map(|m| m.sid)
                .collect();
            let r = n.replica.as_ref().unwrap();
            if r.config().has_quorum(|s| following.contains(&s))
                && self.checker.newest_membership().quorum_of(&following).1
            {
                return Some(l);
            }
        }
        None
    }

    /// The heal's final leader kill, once a leader serves.
    fn heal_kill(&mut self) {
        if self.watch.done || self.watch.killed.is_some() {
            return;
        }
        let lag = self.watch.kill.unwrap_or(false);
        if !self.kill_leader_lagging(true, lag) {
            // It lost its quorum meanwhile: try again shortly.
            self.at(self.now + 100, Ev::HealKill);
        }
    }

    /// The election bound, after every event of the heal phase: once the ensemble is
    /// quiet, a leader serves a quorum within `ELECT_BOUND_MS`; after the final kill,
    /// once a quorum of voters is live again, within `ELECT_BOUND_MS` again.
    fn watch(&mut self) {
        if self.watch.done {
            return;
        }
        let Some(quiet) = self.watch.quiet_at else {
            return;
        };
        let now = self.now;
        if now < quiet {
            return;
        }
        // The window being timed: from quiet until a leader serves, then (with the
        // final kill) from a live quorum after the kill until a leader serves again.
        let (from, what) = if self.watch.elected_at.is_none() {
            (quiet, "the ensemble became quiet".to_string())
        } else {
            let Some((killed_at, killed)) = self.watch.killed else {
                return;
            };
            if self.watch.clock.is_none() {
                if !self.live_quorum() {
                    return;
                }
                self.watch.clock = Some(now);
                self.watch.missed = false;
                self.watch.seen.clear();
                self.watch.sampled_at = now;
            }
            let lag = match self.watch.lagging {
                Some(f) => format!("; server {f} lagged around the kill"),
                None => String::new(),
            };
            (
                self.watch.clock.unwrap(),
                format!(
                    "a quorum was live again ({}ms after the leader {killed} was killed{lag})",
                    now - killed_at
                ),
            )
        };
        if self.serving_leader().is_some() {
            if self.watch.elected_at.is_none() {
                self.watch.elected_at = Some(now);
                let took = now - quiet;
                self.log(|| {
                    format!("=== a leader serves a quorum {took}ms after the ensemble became quiet")
                });
                if self.watch.kill.is_some() {
                    let t = now + self.rng_fault.range(50, 1000);
                    self.at(t, Ev::HealKill);
                } else {
                    self.watch.done = true;
                }
            } else {
                self.watch.reelected_at = Some(now);
                self.watch.done = true;
                let took = now - from;
                self.log(|| format!("=== re-elected {took}ms after {what}"));
            }
            return;
        }
        // While waiting: which known stall shapes hold, and for how long (sampled
        // every 20 ms), so that a miss is blamed on what held it up, not only on what
        // the roles look like at the deadline (a stall may just have ended).
        if now - self.watch.sampled_at >= 20 {
            let (kind, why) = self.diagnose_stall();
            if kind != "election bound" {
                let d = now - self.watch.sampled_at;
                let e = self.watch.seen.entry(kind).or_insert((0, why));
                e.0 += d;
                self.watch.stalled[self.watch.elected_at.is_some() as usize] += d;
            }
            self.watch.sampled_at = now;
        }
        if now - from > ELECT_BOUND_MS && !self.watch.missed {
            self.watch.missed = true;
            let roles = self.roles_summary();
            let waited = now - from;
            if self.net.silent_losses > 0 {
                // Outside the transport's contract a lost message is noticed only by
                // timeouts (syncLimit, initLimit: ticks); the bound does not apply.
                let lost = self.net.silent_losses;
                self.notes.push(format!(
                    "election bound not checked: {lost} messages were lost silently (hostile network); no leader served a quorum {waited}ms after {what}: {roles}"
                ));
                return;
            }
            // The stall that held for most of the window, if it held for half of it.
            let held = self
                .watch
                .seen
                .iter()
                .max_by_key(|(_, (ms, _))| *ms)
                .filter(|(_, (ms, _))| 2 * ms >= waited)
                .map(|(k, (ms, why))| (*k, format!("; for {ms}ms of it {why}")));
            let (kind, why) = match held {
                Some(h) => h,
                None => {
                    let (k, w) = self.diagnose_stall();
                    (
                        k,
                        if w.is_empty() {
                            w
                        } else {
                            format!("; now {w}")
                        },
                    )
                }
            };
            let tick = self.profile.tick_ms;
            self.checker.violate(
                now,
                kind,
                format!(
                    "no leader serving a quorum {waited}ms after {what} (tickTime {tick}ms, bound {ELECT_BOUND_MS}ms){why}: {roles}"
                ),
            );
        }
    }

    /// The shapes of election stall present now, for an election-bound violation: the
    /// four the simulator found in the engine get kinds of their own
    /// (docs/simulator.md, "Election stalls"), so that a run can set them aside
    /// (`--waive 'election bound/'`) and still check the bound otherwise. Returns the
    /// first shape's kind (in this order) and every shape present, described:
    /// - `election bound/abandoned learner`: a live server syncs with or follows a
    ///   live server that neither leads nor establishes (it gave up: lost its quorum,
    ///   found a follower ahead of it, ...). Nothing tells the learner, which waits
    ///   out initLimit or syncLimit ticks.
    /// - `election bound/dead leader joined`: a live server syncs with a server that
    ///   is down: it joined it on reports of others that still followed it (their
    ///   votes, or reports kept from before the crash) after it had lost its link to
    ///   it, and waits out initLimit.
    /// - `election bound/re-acked epoch`: a live server establishing an epoch has had
    ///   it acknowledged without a promise (`AckEpoch { promise: false }`: the
    ///   follower had accepted that epoch already, from an earlier attempt of the same
    ///   leader) by a learner that still syncs with it; such acks never count, so it
    ///   waits out initLimit.
    /// - `election bound/follower info unheard`: a live server establishing an epoch
    ///   has a learner syncing with it whose `FollowerInfo` it never took: it arrived
    ///   while the leader was still looking (it decided after its followers did) and
    ///   was ignored, or a partition lost it; a learner sends it again only a tick
    ///   later.
    /// - `election bound/lone establishment`: a live server establishing an epoch has
    ///   no quorum of voters syncing with it, and keeps its own vote out of the
    ///   election (it answers as a leader) until initLimit.
    /// - `election bound/unrepeated vote`: two live voters look, and the last vote one
    ///   sent the other was lost to a partition or a link break a second or more ago:
    ///   a vote re-sent with a backoff that has grown to a tick (after a long time
    ///   looking) is not repeated when the partition heals, for up to a tick.
    /// - `election bound`: anything else.
    fn diagnose_stall(&self) -> (&'static str, String) {
        let n = self.nodes.len();
        let idx = |s: Sid| (s as usize).checked_sub(1).filter(|j| *j < n);
        let mut found: Vec<(&'static str, String)> = Vec::new();
        for x in self.nodes.iter().filter(|x| x.live()) {
            let l = match x.role {
                Role::Syncing { leader } | Role::Following { leader } => leader,
                _ => continue,
            };
            let Some(li) = idx(l) else { continue };
            let ln = &self.nodes[li];
            if ln.live() && !matches!(ln.role, Role::Leading | Role::Establishing) {
                found.push((
                    "election bound/abandoned learner",
                    format!("{} waits on {l}, which is {:?}", x.sid, ln.role),
                ));
            } else if ln.replica.is_none() && x.role == (Role::Syncing { leader: l }) {
                found.push((
                    "election bound/dead leader joined",
                    format!("{} syncs with {l}, which is down", x.sid),
                ));
            }
        }
        let establishing = |l: &Node| l.live() && l.role == Role::Establishing;
        let syncing_with = |li: usize, pred: &dyn Fn(usize) -> bool| -> Vec<Sid> {
            let l = self.nodes[li].sid;
            (0..n)
                .filter(|&j| {
                    let x = &self.nodes[j];
                    x.live() && x.role == Role::Syncing { leader: l } && pred(j)
                })
                .map(|j| self.nodes[j].sid)
                .collect()
        };
        for (li, l) in self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, l)| establishing(l))
        {
            let re_acked = syncing_with(li, &|j| {
                self.acked_epoch[li * n + j].is_some_and(|(_, promise)| !promise)
            });
            if !re_acked.is_empty() {
                found.push((
                    "election bound/re-acked epoch",
                    format!(
                        "{} establishes; {re_acked:?} acked its epoch without a promise",
                        l.sid
                    ),
                ));
            }
            let unheard = syncing_with(li, &|j| {
                self.info_heard[li * n + j] < self.nodes[j].role_since
            });
            if !unheard.is_empty() {
                found.push((
                    "election bound/follower info unheard",
                    format!(
                        "{} establishes; it never took the FollowerInfo {unheard:?} sent when they chose it (it was still looking, or a partition lost it)",
                        l.sid
                    ),
                ));
            }
            let mut with = syncing_with(li, &|_| true);
            with.push(l.sid);
            let newest = self.checker.newest_membership();
            let joint = l
                .replica
                .as_ref()
                .is_some_and(|r| r.config().has_quorum(|s| with.contains(&s)));
            if !newest.quorum_of(&with).1 || !joint {
                found.push((
                    "election bound/lone establishment",
                    format!("{} establishes with only {with:?}", l.sid),
                ));
            }
        }
        let newest = self.checker.newest_membership();
        let looking: Vec<usize> = (0..n)
            .filter(|&j| {
                let x = &self.nodes[j];
                x.live() && x.role == Role::Looking && newest.is_voter(x.sid)
            })
            .collect();
        for &a in &looking {
            for &b in &looking {
                if let Some(t) = self.vote_lost[a * n + b].filter(|t| self.now - t >= 1000) {
                    found.push((
                        "election bound/unrepeated vote",
                        format!(
                            "{} and {} look, and {}'s last vote to {} was lost {}ms ago (a partition or a link break took it)",
                            self.nodes[a].sid,
                            self.nodes[b].sid,
                            self.nodes[a].sid,
                            self.nodes[b].sid,
                            self.now - t
                        ),
                    ));
                }
            }
        }
        let kind = found.first().map_or("election bound", |f| f.0);
        let why = found
            .iter()
            .map(|(k, w)| format!("{}: {w}", k.trim_start_matches("election bound/")))
            .collect::<Vec<_>>()
            .join("; ");
        (kind, why)
    }

    /// Every server's role (for a liveness report).
    fn roles_summary(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            if !s.is_empty() {
                s.push_str(", ");
            }
            let _ = write!(s, "{} ", n.sid);
            match (&n.replica, n.paused) {
                (None, _) => s.push_str("down"),
                (Some(_), Some(_)) => s.push_str("paused"),
                (Some(_), None) => {
                    let _ = write!(s, "{:?}", n.role);
                }
            }
        }
        s.push_str(&self.membership_summary());
        s
    }

    fn begin_heal(&mut self) {
        self.log(|| "=== HEAL: faults stop, partitions heal, every server restarts".to_string());
        self.net.heal();
        self.net.cfg = NetConfig::calm();
        for c in 0..self.clients.len() {
            self.clients[c].paused_until = 0;
        }
        // Quiet once every server is up again and nothing sent or written during the
        // faults is still in flight (a latency spike holds its link up to 1.5 s; a slow
        // disk completes in order).
        let mut quiet = self.now.max(self.net.drained_at());
        for n in 0..self.nodes.len() {
            self.nodes[n].slow_until = 0;
            self.nodes[n].fail_disk = false;
            if self.nodes[n].replica.is_none() {
                let t = self.now + self.rng_fault.range(0, 300);
                quiet = quiet.max(t);
                self.at(t, Ev::Restart(n));
            } else if let Some(t) = self.nodes[n].disk.pending_until() {
                quiet = quiet.max(t);
            }
        }
        self.stuck_at_heal = self.clients.iter().map(|c| c.stats.stuck).sum();
        // Timeouts that legitimately take ticks (a silently lost message, under the
        // hostile network, is only noticed after syncLimit or initLimit) stretch the
        // overall deadline; the election bound does not stretch.
        self.phase = Phase::Heal {
            since: self.now,
            deadline: self.now + 60_000 + 3 * INIT_LIMIT * self.profile.tick_ms,
        };
        self.watch = Watch {
            quiet_at: Some(quiet),
            kill: self.profile.heal_kill.then_some(self.profile.heal_lag),
            sampled_at: quiet,
            ..Watch::default()
        };
        self.at(quiet, Ev::Watch);
        // SIGCONT for every paused server.
        for n in 0..self.nodes.len() {
            if self.nodes[n].paused.is_some() {
                self.resume(n);
            }
        }
    }

    // ---------------------------------------------------------------- phases

    /// Every server up and serving under one leader, with the same state applied.
    fn stable(&self) -> Option<String> {
        let mut leader = None;
        for n in &self.nodes {
            let Some(r) = &n.replica else {
                return Some(format!("server {} is down", n.sid));
            };
            if n.paused.is_some() {
                return Some(format!("server {} is paused", n.sid));
            }
            match r.role() {
                Role::Leading => {
                    if leader.replace(n.sid).is_some() {
                        return Some("two servers leading".into());
                    }
                }
                Role::Following { .. } => {}
                other => return Some(format!("server {} is {other:?}", n.sid)),
            }
        }
        let Some(l) = leader else {
            return Some("no leader".into());
        };
        let lr = self.nodes[(l - 1) as usize].replica.as_ref().unwrap();
        let target = lr.committed_zxid();
        for n in &self.nodes {
            let r = n.replica.as_ref().unwrap();
            if let Role::Following { leader } = r.role() {
                if leader != l {
                    return Some(format!("server {} follows {leader}, not {l}", n.sid));
                }
            }
            if r.applied_zxid() != target {
                return Some(format!(
                    "server {} applied {:#x}, leader committed {target:#x}",
                    n.sid,
                    r.applied_zxid()
                ));
            }
        }
        None
    }

    /// A liveness deadline passed: the run ends there (when `liveness` is waived too,
    /// with a note instead of the end checks, which need a settled cluster).
    fn liveness_failed(&mut self) {
        if !self.checker.failed() {
            self.notes
                .push("run ended at a missed liveness deadline; end checks skipped".into());
        }
        self.phase = Phase::Done;
    }

    /// With reconfiguration: each server's membership (for a liveness report).
    fn membership_summary(&self) -> String {
        if !self.cfg.reconfig {
            return String::new();
        }
        let mut s = format!(
            "; newest committed membership {}",
            self.checker.newest_membership()
        );
        for n in &self.nodes {
            if let Some(r) = &n.replica {
                let _ = write!(
                    s,
                    "; server {} {:?} with {}",
                    n.sid,
                    r.role(),
                    Members::from_membership(r.membership())
                );
                if let Some(p) = r.pending_membership() {
                    let _ = write!(s, " (pending {})", Members::from_membership(p));
                }
            }
        }
        s
    }

    fn phase_check(&mut self) {
        match self.phase {
            Phase::Bootstrap { deadline } => {
                if self.clients[0].done() {
                    self.log(|| "=== keys created; faults begin".to_string());
                    self.phase = Phase::Faults;
                    for c in 1..self.clients.len() {
                        self.clients[c].issuing = true;
                        let t = self.now + self.rng_misc.range(0, 50);
                        self.at(t, Ev::ClientTimer(c));
                    }
                    let t = self.now + self.rng_fault.range(50, 500);
                    self.at(t, Ev::Fault);
                    if self.cfg.steps == 0 {
                        self.begin_heal();
                    }
                } else if self.now > deadline {
                    let why = self
                        .stable()
                        .unwrap_or_else(|| "cluster looks stable".into());
                    self.checker.violate(
                        self.now,
                        "liveness",
                        format!("the set-up client could not create the keys within 30 s of start with no faults ({why})"),
                    );
                    self.liveness_failed();
                }
                if matches!(self.phase, Phase::Faults) {
                    self.net.cfg = self.profile.net.clone();
                }
            }
            Phase::Faults => {}
            Phase::Heal { since, deadline } => {
                let acked_after_heal = self.checker.ops().iter().any(|o| {
                    o.call >= since
                        && matches!(o.kind, OpKind::Write { .. })
                        && matches!(o.outcome, Outcome::WriteOk { .. })
                });
                let stable = self.stable();
                if stable.is_none() && acked_after_heal && self.watch.done {
                    let took = self.now - since;
                    self.log(|| format!("=== stable with a write acknowledged {took}ms after healing; clients stop"));
                    for c in 1..self.clients.len() {
                        self.clients[c].issuing = false;
                    }
                    self.phase = Phase::Quiesce {
                        deadline: self.now + 30_000 + 10 * self.profile.tick_ms,
                    };
                } else if self.now > deadline {
                    let mut why = stable.unwrap_or_else(|| "no write acknowledged".into());
                    why.push_str(&self.membership_summary());
                    self.checker.violate(
                        self.now,
                        "liveness",
                        format!(
                            "not stable {} s after faults stopped: {why}",
                            (deadline - since) / 1000
                        ),
                    );
                    self.liveness_failed();
                }
            }
            Phase::Quiesce { deadline } => {
                let busy = self.clients[1..]
                    .iter()
                    .filter(|c| c.has_outstanding())
                    .count();
                if busy == 0 {
                    let first = self.clients.len();
                    for n in 0..self.nodes.len() {
                        let id = self.clients.len();
                        let steps = (0..self.keys.len())
                            .map(|key| Planned::Read { key })
                            .collect();
                        let rng = self.rng_misc.fork();
                        self.clients.push(Client::new(
                            id,
                            Mode::Script {
                                node: Some(n),
                                steps,
                            },
                            rng,
                            self.now,
                        ));
                        self.client_last_at.push(0);
                        self.at(self.now + 1, Ev::ClientTimer(id));
                    }
                    self.phase = Phase::FinalReads {
                        deadline: self.now + 30_000 + 10 * self.profile.tick_ms,
                        first_reader: first,
                    };
                } else if self.now > deadline {
                    self.checker.violate(
                        self.now,
                        "liveness",
                        format!(
                            "{busy} clients still wait for replies {} s after the cluster became stable",
                            (30_000 + 10 * self.profile.tick_ms) / 1000
                        ),
                    );
                    self.liveness_failed();
                }
            }
            Phase::FinalReads {
                deadline,
                first_reader,
            } => {
                let readers_done = self.clients[first_reader..].iter().all(|c| c.done());
                if readers_done && self.stable().is_none() {
                    self.finish(first_reader);
                    self.phase = Phase::Done;
                } else if self.now > deadline {
                    let mut why = self.stable().unwrap_or_else(|| "readers not done".into());
                    why.push_str(&self.membership_summary());
                    self.checker.violate(
                        self.now,
                        "liveness",
                        format!(
                            "final reads did not complete within {} s on a stable cluster: {why}",
                            (30_000 + 10 * self.profile.tick_ms) / 1000
                        ),
                    );
                    self.liveness_failed();
                }
            }
            Phase::Done => {}
        }
    }

    fn finish(&mut self, first_reader: usize) {
        let stuck: u64 = self.clients.iter().map(|c| c.stats.stuck).sum();
        if stuck > self.stuck_at_heal {
            self.notes.push(format!(
                "{} requests went unanswered for 3 session timeouts after faults stopped",
                stuck - self.stuck_at_heal
            ));
        }
        for n in 0..self.nodes.len() {
            let reader = first_reader + n;
            let results = self.clients[reader].read_results.clone();
            let sid = self.nodes[n].sid;
            for (key, value, mzxid) in results {
                self.checker.final_read(self.now, sid, key, &value, mzxid);
            }
        }
        // Every server holds the same tree.
        let mut trees: Vec<SnapshotData> = self
            .nodes
            .iter()
            .map(|n| n.replica.as_ref().unwrap().engine().snapshot())
            .collect();
        if self.cfg.reconfig {
            // `/zookeeper/config`'s text is checked on its own (a server that never
            // applied a reconfiguration keeps its own `zoo.cfg`'s, as in ZooKeeper).
            self.final_membership(&trees);
            for t in &mut trees {
                for n in &mut t.nodes {
                    if n.path == CONFIG_NODE {
                        n.data = None;
                    }
                }
            }
        }
        for (k, t) in trees.iter().enumerate().skip(1) {
            if t.nodes != trees[0].nodes {
                let a: BTreeMap<&str, _> = trees[0]
                    .nodes
                    .iter()
                    .map(|n| (n.path.as_str(), n))
                    .collect();
                let b: BTreeMap<&str, _> = t.nodes.iter().map(|n| (n.path.as_str(), n)).collect();
                let diff = a
                    .keys()
                    .chain(b.keys())
                    .find(|p| a.get(*p) != b.get(*p))
                    .map(|p| format!("{p}: {:?} vs {:?}", a.get(p), b.get(p)))
                    .unwrap_or_default();
                self.checker.violate(
                    self.now,
                    "final state",
                    format!(
                        "servers {} and {} hold different trees: {diff}",
                        self.nodes[0].sid, self.nodes[k].sid
                    ),
                );
            }
            if t.sessions != trees[0].sessions {
                let a: Vec<i64> = trees[0].sessions.iter().map(|s| s.id).collect();
                let b: Vec<i64> = t.sessions.iter().map(|s| s.id).collect();
                self.checker.violate(
                    self.now,
                    "final state",
                    format!(
                        "servers {} and {} hold different sessions: {a:x?} vs {b:x?}",
                        self.nodes[0].sid, self.nodes[k].sid
                    ),
                );
            }
        }
        // No ephemeral node outlives its session.
        let live: std::collections::HashSet<i64> = trees[0].sessions.iter().map(|s| s.id).collect();
        for n in &trees[0].nodes {
            let owner = n.stat.ephemeral_owner;
            let special = owner == i64::MIN || (owner as u64) >> 56 == 0xff;
            if owner != 0 && !special && !live.contains(&owner) {
                self.checker.violate(
                    self.now,
                    "final state",
                    format!("ephemeral {} outlives its session {owner:#x}", n.path),
                );
            }
        }
        let notes = self.checker.finish(self.now, self.cfg.lin_budget);
        self.notes.extend(notes);
        self.log(|| "=== end checks done".to_string());
    }
}

use keel_engine::tree::CONFIG_NODE;

impl World {
    /// At the end, on a stable cluster: every server runs with the newest committed
    /// membership and its `/zookeeper/config` holds that reconfiguration's text (or,
    /// when none committed, the initial members agree on theirs).
    fn final_membership(&mut self, trees: &[SnapshotData]) {
        let newest = self.checker.newest_membership().clone();
        let text = self
            .checker
            .committed(newest.version)
            .and_then(|r| match &r.txn {
                keel_engine::txn::Txn::Reconfig { data } => Some(data.clone()),
                _ => None,
            });
        let config = |t: &SnapshotData| {
            t.nodes
                .iter()
                .find(|n| n.path == CONFIG_NODE)
                .and_then(|n| n.data.clone())
                .unwrap_or_default()
        };
        let mut bad = Vec::new();
        let mut first_member: Option<(Sid, Vec<u8>)> = None;
        for (n, t) in self.nodes.iter().zip(trees) {
            let r = n.replica.as_ref().unwrap();
            let m = r.membership();
            let data = config(t);
            if m.version != newest.version {
                bad.push(format!(
                    "server {} ends with membership {:#x}, not the newest committed {newest}",
                    n.sid, m.version
                ));
            }
            if newest.version > 0 {
                let cfg = r.config();
                if cfg.voters != newest.voters || cfg.observers != newest.observers {
                    bad.push(format!(
                        "server {} ends counting voters {:?} observers {:?}, not those of {newest}",
                        n.sid, cfg.voters, cfg.observers
                    ));
                }
                if text.as_ref().is_some_and(|x| *x != data) {
                    bad.push(format!(
                        "server {} ends with /zookeeper/config {:?}, not reconfiguration {:#x}'s text",
                        n.sid,
                        String::from_utf8_lossy(&data),
                        newest.version
                    ));
                }
            } else if self.initial.is_member(n.sid) {
                match &first_member {
                    None => first_member = Some((n.sid, data)),
                    Some((s, d)) if *d != data => bad.push(format!(
                        "servers {s} and {} end with different /zookeeper/config: {:?} vs {:?}",
                        n.sid,
                        String::from_utf8_lossy(d),
                        String::from_utf8_lossy(&data)
                    )),
                    Some(_) => {}
                }
            }
        }
        for b in bad {
            self.checker.violate(self.now, "membership", b);
        }
    }
}

fn describe_msg(m: &PeerMsg) -> String {
    match m {
        PeerMsg::Proposal(f) => format!("proposal {:#x}..{:#x}", f.first, f.last),
        PeerMsg::Sync { mode, frames, .. } => format!(
            "sync {:?} + {} frames",
            match mode {
                keel_engine::zab::SyncMode::Snap { zxid, .. } => format!("SNAP {zxid:#x}"),
                other => format!("{other:?}"),
            },
            frames.len()
        ),
        PeerMsg::Request(f) => format!("request op {} session {:#x}", f.opcode, f.session),
        other => format!("{other:?}"),
    }
}

/// Runs one seed.
pub fn run(cfg: SimConfig) -> Report {
    World::new(cfg).run()
}

/// Server `i`'s outputs carried out on the simulated network, disk and clients, with
/// the checks that watch them.
struct SimFx<'a> {
    w: &'a mut World,
    i: usize,
    /// A snapshot installed by these outputs: (its zxid, applied before it).
    installed: Option<(i64, i64)>,
    applied_before: i64,
}

impl effects::Effects for SimFx<'_> {
    fn send_to_client(&mut self, conn: u64, frame: Vec<u8>) {
        let i = self.i;
        let w = &mut *self.w;
        if let Some(client) = w.nodes[i].conns.get(&conn).map(|c| c.client) {
            let lat = w.pair_rng(i as u32, CLIENT + client as u32).range(1, 5);
            let c = w.nodes[i].conns.get_mut(&conn).unwrap();
            let t = (w.now + lat).max(c.last_at);
            c.last_at = t;
            w.at(
                t,
                Ev::ToClient {
                    node: i,
                    client,
                    conn,
                    what: ToClient::Frame(frame),
                },
            );
        }
    }

    fn close_client(&mut self, conn: u64) {
        let i = self.i;
        let w = &mut *self.w;
        if let Some(c) = w.nodes[i].conns.remove(&conn) {
            let lat = w.pair_rng(i as u32, CLIENT + c.client as u32).range(1, 5);
            let t = (w.now + lat).max(c.last_at);
            w.at(
                t,
                Ev::ToClient {
                    node: i,
                    client: c.client,
                    conn,
                    what: ToClient::Closed,
                },
            );
        }
    }

    fn send_to_peer(&mut self, to: Sid, msg: PeerMsg) {
        self.w.send_peer(self.i, to, msg);
    }

    fn send_snapshot(&mut self, to: Sid, snapshot: effects::SnapshotSend) {
        let (i, sid) = (self.i, self.w.nodes[self.i].sid);
        let w = &mut *self.w;
        match snapshot.into_message() {
            (Ok(sync), then) => {
                w.send_peer(i, to, sync);
                w.send_peer(i, to, then);
            }
            (Err(e), _) => w.checker.violate(
                w.now,
                "outputs",
                format!("server {sid}: its snapshot does not encode: {e}"),
            ),
        }
    }

    fn append(&mut self, frame: LogFrame) -> ControlFlow<()> {
        let i = self.i;
        let sid = self.w.nodes[self.i].sid;
        let w = &mut *self.w;
        if w.nodes[i].fail_disk {
            w.log(|| format!("server {sid}: disk write fails"));
            return ControlFlow::Break(());
        }
        let lat = w.disk_latency(i);
        let (first, last) = (frame.first, frame.last);
        let (id, at) = w.nodes[i].disk.append(frame, w.now, lat);
        let inc = w.nodes[i].inc;
        if w.cfg.verbose > 1 {
            w.trace.push(format!(
                "server {sid}: persist {first:#x}..{last:#x} (durable at +{})",
                at - w.now
            ));
        }
        w.at(at, Ev::DiskDone { node: i, inc, id });
        ControlFlow::Continue(())
    }

    fn truncate_log(&mut self, after: i64) {
        let i = self.i;
        let sid = self.w.nodes[self.i].sid;
        let w = &mut *self.w;
        w.stats.truncations += 1;
        w.log(|| format!("server {sid}: truncate log after {after:#x}"));
        w.check_drop(i, after, "truncating its log after");
        w.nodes[i].disk.truncate_after(after);
    }

    fn install_snapshot(&mut self, data: keel_engine::snapshot::SnapshotData) {
        let i = self.i;
        let sid = self.w.nodes[self.i].sid;
        let w = &mut *self.w;
        let z = data.last_zxid as i64;
        w.stats.snap_syncs += 1;
        w.log(|| {
            format!(
                "server {sid}: install snapshot at {z:#x} ({} nodes)",
                data.nodes.len()
            )
        });
        self.installed = Some((z, self.applied_before));
        w.check_drop(i, z, "replacing its log with a snapshot at");
        w.nodes[i].disk.install_snapshot(data);
        w.nodes[i].pending_snapshot = None;
        w.nodes[i].applied_since_snapshot = 0;
    }

    fn save_epochs(&mut self, e: Epochs) {
        let i = self.i;
        let sid = self.w.nodes[self.i].sid;
        let w = &mut *self.w;
        let old = w.nodes[i].disk.epochs();
        w.checker.epochs_saved(w.now, sid, old, e);
        w.nodes[i].disk.save_epochs(e);
    }

    fn membership(&mut self, text: String, committed: bool) {
        let i = self.i;
        let sid = self.w.nodes[self.i].sid;
        let w = &mut *self.w;
        let m = Membership::parse(&text);
        let (version, shown) = match &m {
            Ok(m) => {
                let members = Members::from_membership(m);
                if !committed && w.nodes[i].role == Role::Leading {
                    w.check_reconfig_quorum(i, &members);
                }
                (m.version, members.to_string())
            }
            Err(e) => {
                w.checker.violate(
                    w.now,
                    "membership",
                    format!(
                        "server {sid} reported a membership that does not parse: {}: {text:?}",
                        e.0
                    ),
                );
                return;
            }
        };
        w.log(|| {
            format!(
                "server {sid}: membership {shown} {}",
                if committed {
                    "in force (saved)"
                } else {
                    "pending"
                }
            )
        });
        if committed {
            if let Some((old, _)) = w.nodes[i].disk.membership() {
                if version < *old {
                    let old = *old;
                    w.checker.violate(
                        w.now,
                        "membership",
                        format!("server {sid} saved membership {version:#x} after {old:#x}"),
                    );
                }
            }
            w.nodes[i].disk.save_membership(version, text);
        }
    }

    fn role(&mut self, role: Role, epoch: i64) {
        let i = self.i;
        let sid = self.w.nodes[self.i].sid;
        let w = &mut *self.w;
        w.nodes[i].role = role;
        w.nodes[i].role_since = w.now;
        w.nodes[i].epoch = epoch;
        w.log(|| format!("server {sid}: role {role:?} epoch {epoch}"));
        if role == Role::Leading {
            w.stats.leaders += 1;
            w.checker.leading(w.now, sid, epoch);
        }
    }
}
