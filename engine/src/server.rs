//! The engine: ZooKeeper's data model (tree, sessions, watches, the one apply path)
//! behind a deterministic state machine, `step(Input)` then `drain(&mut outputs)`.
//! Inputs are connections, request frames, ticks of the wall clock and durability
//! reports from the log; outputs are frames to send, connections to close and log
//! frames to persist. It serves clients through one of two front-ends (`Front`),
//! each owning its own queues:
//!
//! - **Standalone** (`server/standalone.rs`). Writes are validated ("prep") against the tree and
//!   applied to it at once, but nothing a client could observe leaves the engine until
//!   the log reports the writes before it durable: every output is tagged with the
//!   last zxid when it was produced and held until `Durable` covers it. A client
//!   therefore never sees state a crash could take back, and a log failure is
//!   fail-stop (the process exits), so the in-memory tree is never ahead of a log that
//!   is still being served. Reads queue behind earlier writes as in ZooKeeper's single
//!   request pipeline.
//! - **Ensemble member** (`server/replicated.rs`). Writes go to the leader; committed
//!   transactions come back through `apply_committed`, the same apply path.
//!
//! What both share is here: handshakes, dispatch (each front-end takes its own
//! requests first: `standalone_request`, `member_request`), reads, watches, auth, and
//! the outputs' timing. Connection statistics are `stats.rs`'s; the state itself is
//! `model.rs`'s `DataModel`.

use std::collections::HashMap;
use std::net::SocketAddr;

use tracing::{debug, info, warn};

use crate::acl;
use crate::jute::{JuteError, Writer};
use crate::model::DataModel;
use crate::prep::Applied;
use crate::proto::{
    self, event, op, perm, state, xid, Code, ConnectRequest, Id, Request, SetWatches,
};
use crate::session::Sessions;
pub use crate::snapshot::SnapshotView;
use crate::snapshot::{ArchivedSnapshotData, SnapNodeRef, SnapshotData};
pub use crate::stats::{ConnStats, Counters, Latency};
use crate::tree::Node;
use crate::tree::{DataTree, Trigger};
use crate::txn::{self, TxnRecord};
use crate::watch::{ConnId, Mode, Watches};

mod replicated;
mod standalone;

pub use replicated::SessionTouch;
use standalone::Standalone;

pub use crate::config::{EngineConfig, DEFAULT_MAX_MULTI_READ_BYTES};

#[derive(Debug)]
pub enum Input {
    /// The wall clock, in ms since the epoch. Feed it before each batch of inputs.
    Tick { now_ms: i64 },
    Connect {
        conn: ConnId,
        peer: SocketAddr,
        req: ConnectRequest,
    },
    /// One request frame after the handshake: header fields and the undecoded body.
    Request {
        conn: ConnId,
        xid: i32,
        op: i32,
        body: Vec<u8>,
    },
    /// The connection ended. `hung_up`: the client ended it (EOF or a reset), not this
    /// server's network layer (a bad frame, a client cut off for not reading).
    Disconnected { conn: ConnId, hung_up: bool },
    /// The log has made everything up to `zxid` durable.
    Durable { zxid: i64 },
}

#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    Send {
        conn: ConnId,
        frame: Vec<u8>,
    },
    /// Close after sending what was queued before it.
    Close {
        conn: ConnId,
    },
    Persist {
        first_zxid: i64,
        last_zxid: i64,
        payload: Vec<u8>,
    },
}

struct Conn {
    session: i64,
    auth: Vec<Id>,
    stats: ConnStats,
}

pub struct Engine {
    cfg: EngineConfig,
    /// Tree, sessions, watches and the last zxid applied: the state every front-end
    /// serves.
    model: DataModel,
    conns: HashMap<ConnId, Conn>,
    now_ms: i64,
    /// Arrival time of the request being handled, so its reply can be timed.
    current_request: Option<(ConnId, &'static str, i32, i64)>,
    /// Sessions whose last connections ended by the client hanging up right after a
    /// reply, and how many times in a row (see `note_hang_up`).
    hang_ups: HashMap<i64, u32>,
    ready: Vec<Output>,
    /// Bytes of the frames in `ready`: drivers end a turn early past a bound, so that
    /// a burst of large replies is written (or its reader cut off) before more are built.
    ready_bytes: usize,
    next_expiry_scan: i64,
    next_container_scan: i64,
    pub counters: Counters,
    /// How writes become durable and when outputs may leave: standalone, or an
    /// ensemble member.
    front: Front,
}

/// The two front-ends over the engine's data model, each owning its own queues.
enum Front {
    /// A standalone server: a write is applied at once and logged here, and every
    /// output waits until the log reports the writes before it durable.
    Standalone(Standalone),
    /// An ensemble member (`replicated.rs`): requests go to the leader, committed
    /// transactions come back to be applied; outputs leave at once (what they show is
    /// committed, so durable on a quorum).
    Member(replicated::Repl),
}

impl Front {
    fn member(&self) -> Option<&replicated::Repl> {
        match self {
            Front::Member(r) => Some(r),
            Front::Standalone(_) => None,
        }
    }
    fn member_mut(&mut self) -> Option<&mut replicated::Repl> {
        match self {
            Front::Member(r) => Some(r),
            Front::Standalone(_) => None,
        }
    }
    fn is_member(&self) -> bool {
        matches!(self, Front::Member(_))
    }
}

impl Engine {
    pub fn new(cfg: EngineConfig, now_ms: i64) -> Engine {
        Engine {
            next_container_scan: now_ms + cfg.container_check_ms,
            model: DataModel::new(cfg.server_id, now_ms),
            cfg,
            conns: HashMap::new(),
            now_ms,
            ready: Vec::new(),
            hang_ups: HashMap::new(),
            ready_bytes: 0,
            current_request: None,
            next_expiry_scan: now_ms,
            counters: Counters::default(),
            front: Front::Standalone(Standalone::default()),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }
    pub fn tree(&self) -> &DataTree {
        &self.model.tree
    }
    pub fn sessions(&self) -> &Sessions {
        &self.model.sessions
    }
    pub fn watches(&self) -> &Watches {
        &self.model.watches
    }
    pub fn last_zxid(&self) -> i64 {
        self.model.last_zxid
    }
    /// The highest zxid known durable: the log's report when standalone; a member's
    /// tree holds committed transactions only.
    pub fn durable_zxid(&self) -> i64 {
        match &self.front {
            Front::Standalone(s) => s.durable_zxid,
            Front::Member(_) => self.model.last_zxid,
        }
    }
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }
    /// Requests whose outputs wait for the log.
    pub fn outstanding(&self) -> usize {
        match &self.front {
            Front::Standalone(s) => s.held.len(),
            Front::Member(_) => 0,
        }
    }
    pub fn connection_session(&self, conn: ConnId) -> Option<i64> {
        self.conns.get(&conn).map(|c| c.session)
    }

    // ---------------------------------------------------------------- recovery

    /// Replaces the state with a snapshot (before replaying the log after it).
    pub fn load_snapshot(&mut self, snap: &SnapshotData) {
        let sessions = snap
            .sessions
            .iter()
            .map(|s| (s.id, s.timeout_ms, s.password.clone()));
        self.load_nodes(snap.last_zxid as i64, snap.node_refs(), sessions);
    }

    /// Replaces the state with a snapshot read in place from its validated archive (no
    /// intermediate copy): what a restart does.
    pub fn load_archived(&mut self, snap: &ArchivedSnapshotData) {
        let sessions = snap.sessions.iter().map(|s| {
            (
                s.id.to_native(),
                s.timeout_ms.to_native(),
                s.password.as_slice().to_vec(),
            )
        });
        self.load_nodes(
            snap.last_zxid.to_native() as i64,
            snap.node_refs(),
            sessions,
        );
    }

    /// The one way state is loaded from a snapshot, whatever form it is read from.
    fn load_nodes<'a>(
        &mut self,
        last_zxid: i64,
        nodes: impl Iterator<Item = SnapNodeRef<'a>>,
        sessions: impl Iterator<Item = (i64, i32, Vec<u8>)>,
    ) {
        self.model
            .load(self.cfg.server_id, self.now_ms, last_zxid, nodes, sessions);
        self.recovered_durable();
    }

    /// Re-applies one log frame's transactions (those after the current zxid).
    pub fn replay(&mut self, payload: &[u8]) -> Result<usize, JuteError> {
        let records = txn::decode_batch(payload)?;
        let mut n = 0;
        for rec in records {
            if rec.zxid <= self.model.last_zxid {
                continue;
            }
            let mut triggers = Vec::new();
            self.apply(&rec, &mut triggers);
            self.model.last_zxid = rec.zxid;
            n += 1;
        }
        self.recovered_durable();
        self.model.sessions.reset_deadlines(self.now_ms);
        Ok(n)
    }

    /// The tree and sessions as of `last_zxid`, consistent (taken between
    /// transactions), in O(1): see [`DataModel::snapshot_view`].
    pub fn snapshot_view(&self) -> SnapshotView {
        self.model.snapshot_view()
    }

    /// `snapshot_view().into_data()`: the whole snapshot in the archive's form.
    pub fn snapshot(&self) -> SnapshotData {
        self.snapshot_view().into_data()
    }

    // ---------------------------------------------------------------- the loop

    pub fn step(&mut self, input: Input) {
        match input {
            Input::Tick { now_ms } => self.tick(now_ms),
            Input::Connect { conn, peer, req } => self.connect(conn, peer, req),
            Input::Request {
                conn,
                xid,
                op,
                body,
            } => {
                self.current_request = Some((conn, op_name(op), xid, self.now_ms));
                self.request(conn, xid, op, &body);
                self.current_request = None;
            }
            Input::Disconnected { conn, hung_up } => self.disconnected(conn, hung_up),
            Input::Durable { zxid } => self.durable(zxid),
        }
    }

    /// Moves every output that may leave now into `out`, the pending log frame first.
    pub fn drain(&mut self, out: &mut Vec<Output>) {
        if let Front::Standalone(s) = &mut self.front {
            if let (Some(first), Some(last)) = (s.log_batch.first(), s.log_batch.last()) {
                out.push(Output::Persist {
                    first_zxid: first.zxid,
                    last_zxid: last.zxid,
                    payload: txn::encode_batch(&s.log_batch),
                });
                s.log_batch.clear();
            }
        }
        out.append(&mut self.ready);
        self.ready_bytes = 0;
    }

    /// Bytes of client frames ready to leave (see `drain`).
    pub fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    fn emit(&mut self, o: Output) {
        self.emit_timed(o, None);
    }

    fn emit_timed(&mut self, o: Output, started: Option<i64>) {
        if let Output::Send { .. } = o {
            self.counters.packets_sent += 1;
        }
        let last = self.model.last_zxid;
        let Front::Standalone(s) = &mut self.front else {
            return self.release(o, started);
        };
        if s.held.is_empty() && last <= s.durable_zxid {
            return self.release(o, started);
        }
        if let (Output::Send { conn, .. }, Some(_)) = (&o, started) {
            if let Some(c) = self.conns.get_mut(conn) {
                c.stats.held();
            }
        }
        s.held.push_back((last, o, started));
    }

    fn release(&mut self, o: Output, started: Option<i64>) {
        if let Output::Send { conn, .. } = &o {
            let now = self.now_ms;
            if let Some(c) = self.conns.get_mut(conn) {
                if let Some(lat) = c.stats.sent(now, started) {
                    self.counters.latency.record(lat);
                }
            }
        }
        if let Output::Send { frame, .. } = &o {
            self.ready_bytes += frame.len();
        }
        self.ready.push(o);
    }

    /// Sends a frame that answers no request being timed (a notification, a connect
    /// response).
    fn send(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.emit_timed(Output::Send { conn, frame }, None);
    }

    /// Sends `frame`, the reply with `xid` on `conn`; when that is the request being
    /// handled, its latency is recorded once the reply is released.
    fn reply(&mut self, conn: ConnId, xid: i32, frame: Vec<u8>) {
        let started = match self.current_request {
            Some((c, _, x, t)) if c == conn && x == xid => Some(t),
            _ => None,
        };
        self.emit_timed(Output::Send { conn, frame }, started);
    }

    fn tick(&mut self, now_ms: i64) {
        self.now_ms = now_ms.max(self.now_ms);
        let scan = self.now_ms >= self.next_expiry_scan;
        if scan {
            self.next_expiry_scan = self.now_ms + (self.cfg.tick_ms as i64 / 4).clamp(10, 500);
        }
        match self.front {
            Front::Standalone(_) => self.standalone_tick(scan),
            Front::Member(_) => self.member_tick(scan),
        }
    }

    /// The containers and TTL nodes due for deletion now (ContainerManager's rules).
    pub fn reap_candidates(&self) -> Vec<String> {
        self.model.reap_candidates(&self.cfg, self.now_ms)
    }

    fn fire(&mut self, triggers: &[Trigger]) {
        let mut events = Vec::new();
        for t in triggers {
            let from = events.len();
            self.model.watches.fire(t, &mut events);
            if events.len() > from && !self.cfg.skip_acl {
                // As ZooKeeper 3.9 (CVE-2024-23944): a watcher that may not READ the
                // node an event is about does not hear of it; the watch is spent all
                // the same.
                let (Trigger::Created(_, acl)
                | Trigger::Deleted(_, acl)
                | Trigger::DataChanged(_, acl)
                | Trigger::ChildrenChanged(_, acl)) = t;
                let mut i = from;
                while i < events.len() {
                    if acl::check(acl, perm::READ, self.ids(events[i].0)).is_ok() {
                        i += 1;
                    } else {
                        events.remove(i);
                    }
                }
            }
        }
        for (conn, kind, p) in events {
            self.send(conn, proto::notification(kind, state::SYNC_CONNECTED, &p));
        }
    }

    /// The one apply path, used live and in replay.
    fn apply(&mut self, rec: &TxnRecord, triggers: &mut Vec<Trigger>) -> Applied {
        self.model.apply(rec, self.now_ms, triggers)
    }

    // ---------------------------------------------------------------- sessions

    fn connect(&mut self, conn: ConnId, peer: SocketAddr, req: ConnectRequest) {
        self.counters.packets_received += 1;
        let addr = peer.ip();
        if self.front.is_member() && !self.is_serving() {
            // As ZooKeeper: a server that is not in broadcast refuses clients, unless
            // it is in read-only mode and the client accepts that.
            if self.is_read_only() && req.read_only {
                self.ro_connect(conn, peer, req);
            } else {
                self.emit(Output::Close { conn });
            }
            return;
        }
        if req.last_zxid_seen > self.model.last_zxid {
            warn!(
                "refusing session request for client {addr}: it has seen zxid 0x{:x}, our last zxid is 0x{:x}; the client must try another server",
                req.last_zxid_seen, self.model.last_zxid
            );
            self.emit(Output::Close { conn });
            return;
        }
        let timeout = req.timeout_ms.clamp(
            self.cfg.min_session_timeout_ms,
            self.cfg.max_session_timeout_ms,
        );
        let ro = req.has_read_only;
        if req.session_id == 0 {
            match self.front {
                Front::Standalone(_) => self.standalone_create_session(conn, peer, timeout, ro),
                Front::Member(_) if self.cfg.local_sessions => {
                    self.local_create_session(conn, peer, timeout, ro)
                }
                Front::Member(_) => self.repl_create_session(conn, peer, timeout, ro),
            }
            return;
        }
        let id = req.session_id;
        // As ZooKeeper does (closeSession(CLIENT_RECONNECT) before checking the password),
        // any attempt to resume a session closes the connection it has now.
        if let Some(old) = self
            .model
            .sessions
            .get(id)
            .and_then(|s| s.conn)
            .filter(|o| *o != conn)
        {
            self.drop_conn(old);
            self.emit(Output::Close { conn: old });
        }
        self.resume_session(conn, peer, req, timeout, true);
    }

    /// Attaches `conn` to the existing session it asks for, or answers that the session
    /// expired. In an ensemble a session this server does not know yet (created
    /// through another member, its commit still on the way here) is first checked
    /// again after catching up with the leader, as ZooKeeper revalidates it there.
    fn resume_session(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        req: ConnectRequest,
        timeout: i32,
        may_revalidate: bool,
    ) {
        let id = req.session_id;
        let ro = req.has_read_only;
        let valid = self
            .model
            .sessions
            .get(id)
            .is_some_and(|s| !s.closing && s.password == req.password)
            || self.local_session_valid(id, &req.password);
        if !valid
            && may_revalidate
            && self.model.sessions.get(id).is_none()
            && self.repl_revalidate(conn, peer, &req, timeout)
        {
            return;
        }
        if !valid {
            info!(
                "invalid session 0x{id:x} for client {}, probably expired",
                peer.ip()
            );
            self.drop_conn(conn);
            self.send(conn, connect_response(0, 0, &[0; 16], ro));
            self.emit(Output::Close { conn });
            return;
        }
        if let Some(s) = self.model.sessions.get_mut(id) {
            s.conn = Some(conn);
            s.expires_at = self.now_ms + timeout as i64;
        }
        self.conns.insert(conn, self.new_conn(peer, id, timeout));
        self.repl_touch(id);
        let password = req.password;
        self.send(conn, connect_response(timeout, id, &password, ro));
    }

    fn new_conn(&self, peer: SocketAddr, session: i64, timeout_ms: i32) -> Conn {
        Conn {
            session,
            auth: vec![Id::new("ip", &peer.ip().to_string())],
            stats: ConnStats::opened(peer, self.now_ms, session, timeout_ms),
        }
    }

    /// Connections with their statistics (for `cons`, `stat`).
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, &ConnStats)> {
        self.conns.iter().map(|(id, c)| (*id, &c.stats))
    }

    /// `crst`: zeroes every connection's counters.
    pub fn reset_connection_stats(&mut self) {
        for c in self.conns.values_mut() {
            c.stats.reset();
        }
    }

    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(s) = self.model.sessions.get_mut(c.session) {
                if s.conn == Some(conn) {
                    s.conn = None;
                }
            }
        }
        self.model.watches.remove_conn(conn);
    }

    /// The client ended the connection (the engine's own closes drop the connection
    /// first, so they never get here).
    fn disconnected(&mut self, conn: ConnId, hung_up: bool) {
        if hung_up {
            self.note_hang_up(conn);
        }
        self.drop_conn(conn);
    }

    /// A client that hangs up right after a reply, without closing its session, may
    /// have refused that reply (ZooKeeper's Java client drops the connection on an
    /// unexpected xid, reconnects and repeats the request). Once is a network blip or a
    /// client going away (DEBUG); the same session doing it again on its next connection
    /// is that loop, and the client's own log is usually its only other trace: WARN.
    fn note_hang_up(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let s = &c.stats;
        let session = c.session;
        let closing = self.model.sessions.get(session).is_some_and(|x| x.closing);
        let gap = self.now_ms - s.last_response_ms;
        if closing || s.latency.count == 0 || s.last_op == "PING" || gap > 1000 {
            self.hang_ups.remove(&session);
            return;
        }
        if self.hang_ups.len() >= 10_000 {
            self.hang_ups.clear();
        }
        let n = self.hang_ups.entry(session).or_insert(0);
        *n += 1;
        if *n >= 2 {
            warn!(
                "session 0x{session:x} ({}) hung up {gap} ms after our reply to {} (xid {}) without closing its session, {} times in a row: the client is probably rejecting that reply",
                s.peer, s.last_op, s.last_cxid, n
            );
        } else {
            debug!(
                "session 0x{session:x} ({}) hung up {gap} ms after our reply to {} (xid {})",
                s.peer, s.last_op, s.last_cxid
            );
        }
    }

    // ---------------------------------------------------------------- requests

    fn request(&mut self, conn: ConnId, xid: i32, opcode: i32, body: &[u8]) {
        self.counters.packets_received += 1;
        let last_zxid = self.model.last_zxid;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.stats.requested(op_name(opcode), xid, last_zxid);
        let session = c.session;
        self.model.sessions.touch(session, self.now_ms);
        if self.repl_queue(conn, session, xid, opcode, body) {
            return;
        }
        if self.is_read_only() && self.ro_refuse(conn, session, xid, opcode) {
            return;
        }
        if !proto::is_client_op(opcode) {
            // ZooKeeper's UnimplementedRequestProcessor: answer, then close.
            warn!("received packet of unknown type {opcode} from session 0x{session:x}; closing the connection");
            self.reply(conn, xid, proto::empty_reply(xid, -1, Code::Unimplemented));
            self.drop_conn(conn);
            self.emit(Output::Close { conn });
            return;
        }
        let req = match Request::decode(opcode, body) {
            Ok(r) => r,
            Err(_) if self.repl_pipelining(session) => {
                // A pipelined write that will be refused here: it must wait its turn.
                self.repl_queue_behind(conn, session, xid, opcode, body);
                return;
            }
            Err(e) => {
                warn!("malformed request (op {opcode}) from session 0x{session:x}: {e}; answering MarshallingError");
                let z = self.model.last_zxid;
                self.reply(
                    conn,
                    xid,
                    proto::empty_reply(xid, z, Code::MarshallingError),
                );
                return;
            }
        };
        self.counters.requests += 1;
        if req.is_write() {
            self.counters.writes += 1;
        } else {
            self.counters.reads += 1;
        }
        // What the front-end handles itself (writes above all); the rest is answered
        // the same way by both.
        let req = match self.front {
            Front::Standalone(_) => self.standalone_request(conn, session, xid, opcode, req),
            Front::Member(_) => self.member_request(conn, session, xid, opcode, body, req),
        };
        let Some(req) = req else {
            return;
        };
        match req {
            Request::Ping => {
                let z = self.model.last_zxid;
                self.reply(conn, xid::PING, proto::empty_reply(xid::PING, z, Code::Ok));
            }
            Request::Auth { scheme, auth, .. } => self.auth(conn, xid, &scheme, &auth),
            Request::SetWatches(sw) => self.set_watches(conn, xid, sw),
            Request::Sasl => {
                // No SASL configured: ZooKeeper answers OK with a null token, zxid 0.
                let mut w = Writer::framed();
                proto::reply_header(&mut w, xid, 0, 0);
                w.opt_buffer(None);
                self.reply(conn, xid, w.finish_frame());
            }
            Request::Check { .. } => {
                // ZooKeeper 3.8 only knows check inside a multi: a bare one is never
                // answered and takes no zxid. Do the same, but say so.
                warn!("check outside a multi from session 0x{session:x} is not answered (as in ZooKeeper 3.8)");
            }
            Request::MultiRead(ops) if !ops.iter().all(is_multi_read_op) => {
                let z = self.model.last_zxid;
                let mut w = Writer::framed();
                proto::reply_header(&mut w, xid, z, Code::MarshallingError.as_i32());
                w.i32(-1).bool(true).i32(-1);
                self.reply(conn, xid, w.finish_frame());
            }
            r => {
                let z = self.model.last_zxid;
                match self.read(conn, &r) {
                    Ok(body) => {
                        let mut out = Writer::framed();
                        proto::reply_header(&mut out, xid, z, 0);
                        out.buf.extend_from_slice(&body.buf);
                        self.reply(conn, xid, out.finish_frame());
                    }
                    Err(code) => self.reply(conn, xid, proto::empty_reply(xid, z, code)),
                }
            }
        }
    }

    /// addAuth. Answered with the request's own xid (clients send -4), as ZooKeeper's
    /// processPacket does.
    fn auth(&mut self, conn: ConnId, xid: i32, scheme: &str, auth: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match acl::authenticate(
            scheme,
            auth,
            c.stats.peer.ip(),
            self.cfg.super_digest.as_deref(),
        ) {
            Ok(ids) => {
                for id in ids {
                    if !c.auth.contains(&id) {
                        c.auth.push(id);
                    }
                }
                self.reply(conn, xid, proto::empty_reply(xid, 0, Code::Ok));
            }
            Err(code) => {
                warn!(
                    "authentication with unknown scheme {scheme:?} failed; closing the connection"
                );
                self.reply(conn, xid, proto::empty_reply(xid, 0, code));
                self.drop_conn(conn);
                self.emit(Output::Close { conn });
            }
        }
    }

    /// setWatches after a reconnect: events the client missed (judged by relativeZxid)
    /// are delivered now; the rest are armed. The reply carries the request's own xid,
    /// as ZooKeeper's FinalRequestProcessor answers: the C client sends -8 and so gets
    /// -8 back, while the 3.8 Java client sends an ordinary xid and drops the
    /// connection on any other.
    fn set_watches(&mut self, conn: ConnId, xid: i32, sw: SetWatches) {
        let rz = sw.relative_zxid;
        let mut events = Vec::new();
        // An event about a node this client may not READ is not delivered (stricter than
        // ZooKeeper 3.9, which filters these only once armed): the watch is spent, as
        // a filtered trigger spends it.
        let ids = self
            .conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        let readable = |n: &Node| self.cfg.skip_acl || acl::check(&n.acl, perm::READ, &ids).is_ok();
        for p in &sw.data {
            match self.model.tree.get(p) {
                None => events.push((event::NODE_DELETED, p.clone())),
                Some(n) if n.stat.mzxid > rz => {
                    if readable(n) {
                        events.push((event::NODE_DATA_CHANGED, p.clone()))
                    }
                }
                Some(_) => self.model.watches.data.add(p, conn, Mode::Standard),
            }
        }
        for p in &sw.exist {
            match self.model.tree.get(p) {
                Some(n) => {
                    if readable(n) {
                        events.push((event::NODE_CREATED, p.clone()))
                    }
                }
                None => self.model.watches.data.add(p, conn, Mode::Standard),
            }
        }
        for p in &sw.child {
            match self.model.tree.get(p) {
                None => events.push((event::NODE_DELETED, p.clone())),
                Some(n) if n.stat.pzxid > rz => {
                    if readable(n) {
                        events.push((event::NODE_CHILDREN_CHANGED, p.clone()))
                    }
                }
                Some(_) => self.model.watches.child.add(p, conn, Mode::Standard),
            }
        }
        for p in &sw.persistent {
            self.model.watches.data.add(p, conn, Mode::Persistent);
            self.model.watches.child.add(p, conn, Mode::Persistent);
        }
        for p in &sw.persistent_recursive {
            self.model
                .watches
                .data
                .add(p, conn, Mode::PersistentRecursive);
        }
        for (kind, p) in events {
            self.send(conn, proto::notification(kind, state::SYNC_CONNECTED, &p));
        }
        let z = self.model.last_zxid;
        self.reply(conn, xid, proto::empty_reply(xid, z, Code::Ok));
    }

    /// A node by path for reads: ZooKeeper keeps the root under both "" and "/".
    fn lookup(&self, p: &str) -> Option<&Node> {
        self.model.tree.get(if p.is_empty() { "/" } else { p })
    }

    fn ids(&self, conn: ConnId) -> &[Id] {
        self.conns
            .get(&conn)
            .map(|c| c.auth.as_slice())
            .unwrap_or(&[])
    }

    fn node_acl_check(&self, conn: ConnId, p: &str, want: i32) -> Result<&Node, Code> {
        let n = self.lookup(p).ok_or(Code::NoNode)?;
        if !self.cfg.skip_acl {
            acl::check(&n.acl, want, self.ids(conn))?;
        }
        Ok(n)
    }

    /// Answers a read into `w` (the reply body), arming watches as ZooKeeper does.
    fn read(&mut self, conn: ConnId, req: &Request) -> Result<Writer, Code> {
        let mut body = Writer::new();
        match req {
            Request::Exists { path: p, watch } => {
                // ZooKeeper 3.9: an existing node needs READ (3.8.0 did not check), and
                // a refused exists arms no watch.
                if let Some(n) = self.lookup(p) {
                    if !self.cfg.skip_acl {
                        acl::check(&n.acl, perm::READ, self.ids(conn))?;
                    }
                }
                if *watch {
                    self.model.watches.data.add(p, conn, Mode::Standard);
                }
                let n = self.lookup(p).ok_or(Code::NoNode)?;
                n.full_stat().write(&mut body);
            }
            Request::GetData { path: p, watch } => {
                let n = self.node_acl_check(conn, p, perm::READ)?;
                body.opt_buffer(n.data.as_deref());
                n.full_stat().write(&mut body);
                if *watch {
                    self.model.watches.data.add(p, conn, Mode::Standard);
                }
            }
            Request::GetChildren {
                path: p,
                watch,
                with_stat,
            } => {
                let n = self.node_acl_check(conn, p, perm::READ)?;
                body.i32(n.children.len() as i32);
                for c in &n.children {
                    body.string(c);
                }
                if *with_stat {
                    n.full_stat().write(&mut body);
                }
                if *watch {
                    self.model.watches.child.add(p, conn, Mode::Standard);
                }
            }
            Request::GetAcl { path: p } => {
                let n = self.node_acl_check(conn, p, perm::READ | perm::ADMIN)?;
                let ids = self.ids(conn);
                let acl = if acl::check(&n.acl, perm::ADMIN, ids).is_ok() {
                    n.acl.to_vec()
                } else {
                    acl::redacted(&n.acl)
                };
                proto::write_acls(&mut body, &acl);
                n.full_stat().write(&mut body);
            }
            Request::Sync { path: p } => {
                body.string(p);
            }
            Request::GetAllChildrenNumber { path: p } => {
                self.node_acl_check(conn, p, perm::READ)?;
                // ZooKeeper counts the keys below `p + "/"`; for "" that is every node.
                let n = if p.is_empty() {
                    self.model.tree.len()
                } else {
                    self.model.tree.descendants(p)
                };
                body.i32(n as i32);
            }
            Request::GetEphemerals { prefix } => {
                let session = self.conns.get(&conn).map(|c| c.session).unwrap_or(0);
                let all = prefix.trim().is_empty() || prefix.trim() == "/";
                let list: Vec<&String> = self
                    .model
                    .tree
                    .ephemerals_of(session)
                    .filter(|p| all || p.starts_with(prefix.as_str()))
                    .collect();
                body.strings(&list);
            }
            Request::WhoAmI => {
                // ClientInfo{authScheme, user}: a digest id shows its user name only.
                let ids = self.ids(conn);
                body.i32(ids.len() as i32);
                for id in ids {
                    let user = if id.scheme == "digest" {
                        id.id.split(':').next().unwrap_or("")
                    } else {
                        id.id.as_str()
                    };
                    body.string(&id.scheme).string(user);
                }
            }
            Request::AddWatch { path: p, mode } => {
                match mode {
                    0 => {
                        self.model.watches.data.add(p, conn, Mode::Persistent);
                        self.model.watches.child.add(p, conn, Mode::Persistent);
                    }
                    1 => self
                        .model
                        .watches
                        .data
                        .add(p, conn, Mode::PersistentRecursive),
                    _ => return Err(Code::MarshallingError),
                }
                // The reply carries an ErrorResponse{err = 0}.
                body.i32(0);
            }
            Request::CheckWatches { path: p, kind } | Request::RemoveWatches { path: p, kind } => {
                let remove = matches!(req, Request::RemoveWatches { .. });
                if !(1..=3).contains(kind) {
                    // ZooKeeper 3.8 knows only Children, Data and Any here.
                    return Err(Code::MarshallingError);
                }
                if !self.watch_op(conn, p, *kind, remove) {
                    return Err(Code::NoWatcher);
                }
            }
            Request::MultiRead(ops) => {
                for o in ops {
                    // ZooKeeper's multiRead ops carry no watch flag: watches are never set.
                    let (t, unwatched) = match o {
                        Request::GetData { path, .. } => (
                            op::GET_DATA,
                            Request::GetData {
                                path: path.clone(),
                                watch: false,
                            },
                        ),
                        Request::GetChildren { path, .. } => (
                            op::GET_CHILDREN,
                            Request::GetChildren {
                                path: path.clone(),
                                watch: false,
                                with_stat: false,
                            },
                        ),
                        other => (op::ERROR, other.clone()),
                    };
                    let res = self.read(conn, &unwatched);
                    match res {
                        Ok(r) => {
                            if body.buf.len() + r.buf.len() > self.cfg.max_multi_read_bytes {
                                let session = self.conns.get(&conn).map_or(0, |c| c.session);
                                warn!(
                                    "multiRead of {} operations from session 0x{session:x} refused: its reply would pass {} bytes",
                                    ops.len(),
                                    self.cfg.max_multi_read_bytes
                                );
                                return Err(Code::MarshallingError);
                            }
                            body.i32(t).bool(false).i32(0);
                            body.buf.extend_from_slice(&r.buf);
                        }
                        Err(code) => {
                            body.i32(op::ERROR)
                                .bool(false)
                                .i32(code.as_i32())
                                .i32(code.as_i32());
                        }
                    }
                }
                body.i32(-1).bool(true).i32(-1);
            }
            _ => return Err(Code::Unimplemented),
        }
        Ok(body)
    }

    /// checkWatches / removeWatches by `WatcherType` (Children 1, Data 2, Any 3), any
    /// mode. ZooKeeper 3.8 answers checkWatches OK when any connection watches the path
    /// in that table; removeWatches removes only this connection's watches.
    fn watch_op(&mut self, conn: ConnId, p: &str, kind: i32, remove: bool) -> bool {
        use Mode::*;
        const ALL: &[Mode] = &[Standard, Persistent, PersistentRecursive];
        let (data, child) = (kind != 1, kind != 2);
        if !remove {
            let watched = |t: &crate::watch::Table| t.watches_path(p);
            return (data && watched(&self.model.watches.data))
                || (child && watched(&self.model.watches.child));
        }
        let mut found = false;
        if data {
            found |= self.model.watches.data.remove(p, conn, ALL);
        }
        if child {
            found |= self.model.watches.child.remove(p, conn, ALL);
        }
        found
    }
}

/// ZooKeeper's four-letter names of the last operation (`cons`' `lop`).
fn op_name(code: i32) -> &'static str {
    match code {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => "CREA",
        op::DELETE | op::DELETE_CONTAINER => "DELE",
        op::EXISTS => "EXIS",
        op::GET_DATA => "GETD",
        op::SET_DATA => "SETD",
        op::GET_ACL => "GETA",
        op::SET_ACL => "SETA",
        op::GET_CHILDREN | op::GET_CHILDREN2 => "GETC",
        op::SYNC => "SYNC",
        op::PING => "PING",
        op::CHECK => "CHEC",
        op::MULTI => "MULT",
        op::MULTI_READ => "MLTR",
        op::RECONFIG => "RECO",
        op::CHECK_WATCHES => "CHKW",
        op::REMOVE_WATCHES => "REMW",
        op::AUTH => "AUTH",
        op::SET_WATCHES | op::SET_WATCHES2 => "SETW",
        op::SASL => "SASL",
        op::GET_EPHEMERALS => "GETE",
        op::GET_ALL_CHILDREN_NUMBER => "GETACN",
        op::ADD_WATCH => "ADDW",
        op::WHO_AM_I => "HOMI",
        op::CLOSE_SESSION => "CLOS",
        _ => "UNKN",
    }
}

pub(crate) fn is_multi_write_op(r: &Request) -> bool {
    matches!(
        r,
        Request::Create { .. }
            | Request::Delete { .. }
            | Request::SetData { .. }
            | Request::Check { .. }
    )
}

fn is_multi_read_op(r: &Request) -> bool {
    matches!(
        r,
        Request::GetData { .. }
            | Request::GetChildren {
                with_stat: false,
                ..
            }
    )
}

fn connect_response(timeout: i32, session: i64, password: &[u8], with_read_only: bool) -> Vec<u8> {
    connect_response_ro(timeout, session, password, with_read_only, false)
}

/// The connect response; `read_only` is ZooKeeper's `ConnectedReadOnly` flag, sent
/// only to clients whose request carried the field.
fn connect_response_ro(
    timeout: i32,
    session: i64,
    password: &[u8],
    with_read_only: bool,
    read_only: bool,
) -> Vec<u8> {
    let mut w = Writer::framed();
    w.i32(0).i32(timeout).i64(session).buffer(password);
    if with_read_only {
        w.bool(read_only);
    }
    w.finish_frame()
}
