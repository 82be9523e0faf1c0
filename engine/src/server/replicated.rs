//! The engine in an ensemble ("replicated mode"): the tree only ever holds committed
//! transactions. Writes, session creation and close, and `sync` are handed to the
//! leader as [`Forward`]s; committed transactions come back through
//! [`Engine::apply_committed`], which applies them through the one apply path, fires
//! watches and answers this server's own clients. Reads are answered locally, after
//! the same session's earlier requests (a per-session FIFO), as in ZooKeeper.
//!
//! Session expiry is the leader's decision: in this mode `tick` expires nothing; the
//! replica asks [`Engine::expired_sessions`] when it leads and proposes the closes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use tracing::debug;

use super::{connect_response, connect_response_ro, Engine, Front, Output};
use crate::forward::{Forward, FWD_CLOSE_SESSION, FWD_SYNC};
use crate::jute::Writer;
use crate::proto::{self, op, Code};
use crate::session;
use crate::txn::{Txn, TxnRecord};
use crate::watch::ConnId;

/// The cxid of the `sync` that revalidates a session unknown here (no client uses it:
/// client xids are positive, ZooKeeper's special ones small negatives).
const REVALIDATE_CXID: i32 = i32::MIN;

/// Sessions active since the last report, for the leader's expiry clock.
pub type SessionTouch = Vec<i64>;

/// A request of one session waiting for the leader, or queued behind one.
#[derive(Debug)]
enum Pending {
    /// A new session, waiting for its createSession to commit.
    Connect {
        conn: ConnId,
        timeout: i32,
        password: Vec<u8>,
        read_only: bool,
    },
    /// A forwarded write (or close), waiting for the commit of (session, xid).
    Write { conn: ConnId, xid: i32, opcode: i32 },
    /// A forwarded `sync`, waiting for the leader's answer.
    Sync {
        conn: ConnId,
        xid: i32,
        path: String,
    },
    /// A connection resuming a session unknown here, waiting until this server has
    /// caught up with the leader to check again.
    Revalidate {
        conn: ConnId,
        peer: SocketAddr,
        req: crate::proto::ConnectRequest,
        timeout: i32,
    },
    /// Any request that arrived while an earlier one of its session was pending.
    Queued {
        conn: ConnId,
        xid: i32,
        opcode: i32,
        body: Vec<u8>,
    },
}

#[derive(Debug, Default)]
pub(super) struct Repl {
    /// Whether clients are served (the replica is in its broadcast phase).
    serving: bool,
    /// Read-only mode: cut off from the quorum, serving reads to clients that asked
    /// for read-only sessions.
    read_only: bool,
    /// Sessions created in read-only mode: local to this server, never replicated
    /// (a client moving to a read-write server starts a new session, as ZooKeeper's
    /// clients do when they have not seen one before).
    ro_sessions: HashMap<i64, (i32, Vec<u8>)>,
    /// Local sessions (`localSessionsEnabled`): id → (timeout, password, deadline).
    local: HashMap<i64, (i32, Vec<u8>, i64)>,
    pending: HashMap<i64, VecDeque<Pending>>,
    forwards: Vec<Forward>,
    touched: HashSet<i64>,
}

impl Repl {
    /// Whether a request with `opcode` may be forwarded while `session` has requests
    /// pending: it is a write (a multi, a close) and everything pending before it is a
    /// forwarded write. Such a write is proposed behind the earlier ones (one link to
    /// the leader, which preps a session's forwards in arrival order against its
    /// speculative tree) and answered when it commits, after them; so a session's
    /// writes are pipelined, as ZooKeeper pipelines them, while its reads, `sync`s and
    /// anything behind a close still wait for every earlier request. A write that would
    /// be answered here instead of forwarded must not overtake: a local session's
    /// writes (one may be refused here) are never pipelined, and a body that does not
    /// decode is queued ([`Engine::request`] checks) to be refused in its turn.
    fn may_pipeline(&self, session: i64, opcode: i32) -> bool {
        let write = matches!(
            opcode,
            op::CREATE
                | op::CREATE2
                | op::CREATE_CONTAINER
                | op::CREATE_TTL
                | op::DELETE
                | op::SET_DATA
                | op::SET_ACL
                | op::MULTI
                | op::CLOSE_SESSION
        );
        write
            && self.serving
            && !self.read_only
            && !self.local.contains_key(&session)
            && self.pending.get(&session).is_some_and(|q| {
                q.iter().all(
                    |p| matches!(p, Pending::Write { opcode, .. } if *opcode != op::CLOSE_SESSION),
                )
            })
    }
}

impl Engine {
    /// Switches this engine to replicated mode (before any client connects).
    pub fn set_replicated(&mut self) {
        self.front = Front::Member(Repl::default());
    }

    /// The member's part of a tick: global expiry and container reaping are the
    /// leader's, proposed like any write; local sessions are this server's alone.
    pub(super) fn member_tick(&mut self, scan: bool) {
        if scan {
            self.expire_local_sessions();
        }
    }

    /// The requests a member hands to the leader: every write (a bare `check` is none),
    /// a multi, `sync`, closing the session and `reconfig`. Anything else is given
    /// back to be answered here, as both front-ends answer it.
    pub(super) fn member_request(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        opcode: i32,
        body: &[u8],
        req: proto::Request,
    ) -> Option<proto::Request> {
        use proto::Request;
        let forward = matches!(
            req,
            Request::Sync { .. }
                | Request::CloseSession
                | Request::Reconfig { .. }
                | Request::Multi(_)
        ) || (req.is_write() && !matches!(req, Request::Check { .. }));
        if !forward {
            return Some(req);
        }
        self.repl_forward(conn, session, xid, opcode, body, &req);
        None
    }

    /// Sets what `/zookeeper/config` holds (the ensemble's membership, from the
    /// configuration; the same on every member, so not a transaction).
    pub fn set_config_znode(&mut self, data: Vec<u8>) {
        self.model.tree.set_config_data(data);
    }

    pub fn is_replicated(&self) -> bool {
        self.front.is_member()
    }

    /// Starts or stops serving clients. Stopping closes every connection (their
    /// sessions live on: clients reconnect, here or elsewhere) and forgets pending
    /// requests, whose outcome the clients learn by reading.
    pub fn set_serving(&mut self, serving: bool) {
        let Some(r) = self.front.member_mut() else {
            return;
        };
        r.serving = serving;
        if serving && !r.read_only {
            return;
        }
        r.read_only = false;
        r.ro_sessions.clear();
        r.local.clear();
        r.pending.clear();
        r.forwards.clear();
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for c in conns {
            self.drop_conn(c);
            self.emit(Output::Close { conn: c });
        }
    }

    pub fn is_serving(&self) -> bool {
        self.front.member().is_some_and(|r| r.serving)
    }

    /// Enters read-only mode (`readonlymode.enabled`, the replica cut off from the
    /// quorum): clients that accept it may connect and read; writes are refused with
    /// `NotReadOnly`. Leaving it (`set_serving`) closes those connections.
    pub fn set_read_only(&mut self) {
        self.set_serving(false);
        if let Some(r) = self.front.member_mut() {
            r.read_only = true;
        }
    }

    pub fn is_read_only(&self) -> bool {
        self.front.member().is_some_and(|r| r.read_only)
    }

    /// A client that accepts read-only service connects while we are read-only.
    pub(super) fn ro_connect(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        req: crate::proto::ConnectRequest,
    ) {
        let timeout = req.timeout_ms.clamp(
            self.cfg.min_session_timeout_ms,
            self.cfg.max_session_timeout_ms,
        );
        let (id, password) = if req.session_id == 0 {
            let id = self.model.sessions.allocate_id();
            let pw = session::password(id, self.cfg.secret);
            if let Some(r) = self.front.member_mut() {
                r.ro_sessions.insert(id, (timeout, pw.clone()));
            }
            (id, pw)
        } else {
            let id = req.session_id;
            let known = self
                .model
                .sessions
                .get(id)
                .is_some_and(|s| s.password == req.password)
                || self
                    .front
                    .member()
                    .and_then(|r| r.ro_sessions.get(&id))
                    .is_some_and(|(_, p)| *p == req.password);
            if !known {
                self.send(conn, connect_response(0, 0, &[0; 16], req.has_read_only));
                self.emit(Output::Close { conn });
                return;
            }
            (id, req.password.clone())
        };
        debug!("read-only session 0x{id:x} for {peer}");
        self.conns.insert(conn, self.new_conn(peer, id, timeout));
        let frame = connect_response_ro(timeout, id, &password, req.has_read_only, true);
        self.send(conn, frame);
    }

    /// Read-only mode: answers what it must refuse (writes, `sync`: `NotReadOnly`)
    /// or handles locally (close). Returns whether the request was dealt with.
    pub(super) fn ro_refuse(&mut self, conn: ConnId, session: i64, xid: i32, opcode: i32) -> bool {
        let z = self.model.last_zxid;
        match opcode {
            op::CLOSE_SESSION => {
                if let Some(r) = self.front.member_mut() {
                    r.ro_sessions.remove(&session);
                }
                self.reply(conn, xid, proto::empty_reply(xid, z, Code::Ok));
                self.drop_conn(conn);
                self.emit(Output::Close { conn });
                true
            }
            op::CREATE
            | op::CREATE2
            | op::CREATE_CONTAINER
            | op::CREATE_TTL
            | op::DELETE
            | op::DELETE_CONTAINER
            | op::SET_DATA
            | op::SET_ACL
            | op::MULTI
            | op::CHECK
            | op::RECONFIG
            | op::SYNC => {
                self.reply(conn, xid, proto::empty_reply(xid, z, Code::NotReadOnly));
                true
            }
            _ => false,
        }
    }

    /// Requests for the leader produced since the last call.
    pub fn take_forwards(&mut self) -> Vec<Forward> {
        self.front
            .member_mut()
            .map(|r| std::mem::take(&mut r.forwards))
            .unwrap_or_default()
    }

    /// Sessions whose clients were active since the last call.
    pub fn take_touched(&mut self) -> SessionTouch {
        let Some(r) = self.front.member_mut() else {
            return Vec::new();
        };
        let mut v: Vec<i64> = r.touched.drain().collect();
        v.sort_unstable();
        v
    }

    /// The leader heard that these sessions are alive (from a follower's ping).
    pub fn touch_sessions(&mut self, ids: &[i64]) {
        for id in ids {
            self.model.sessions.touch(*id, self.now_ms);
        }
    }

    /// A new leader gives every session a fresh timeout and forgets undecided closes
    /// (the old leader's may never have been proposed).
    pub fn restart_session_clocks(&mut self) {
        self.model.sessions.reset_deadlines(self.now_ms);
        let ids: Vec<i64> = self.model.sessions.iter().map(|s| s.id).collect();
        for id in ids {
            if let Some(s) = self.model.sessions.get_mut(id) {
                s.closing = false;
            }
        }
    }

    /// Sessions past their deadline, marked closing so they are reported once.
    pub fn expired_sessions(&mut self) -> Vec<i64> {
        let ids = self.model.sessions.expired(self.now_ms);
        for id in &ids {
            if let Some(s) = self.model.sessions.get_mut(*id) {
                s.closing = true;
            }
            self.counters.sessions_expired += 1;
        }
        ids
    }

    /// Applies one committed transaction (in zxid order, once), fires its watches and
    /// answers the local client that asked for it.
    pub fn apply_committed(&mut self, rec: &TxnRecord) {
        let mut triggers = Vec::new();
        let applied = self.apply(rec, &mut triggers);
        self.model.last_zxid = rec.zxid;
        self.fire(&triggers);
        let Some(r) = self.front.member_mut() else {
            return;
        };
        let Some(q) = r.pending.get_mut(&rec.session) else {
            if matches!(rec.txn, Txn::CloseSession) {
                self.close_local_session(rec.session);
            }
            return;
        };
        match (q.front(), &rec.txn) {
            (
                Some(Pending::Connect {
                    conn,
                    timeout,
                    password,
                    read_only,
                }),
                Txn::CreateSession { .. },
            ) => {
                let (conn, timeout, ro) = (*conn, *timeout, *read_only);
                let frame = connect_response(timeout, rec.session, password, ro);
                q.pop_front();
                if let Some(s) = self.model.sessions.get_mut(rec.session) {
                    s.conn = Some(conn);
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.session = rec.session;
                    c.stats.session = rec.session;
                }
                self.send(conn, frame);
            }
            (Some(Pending::Write { conn, xid, opcode }), _) if *xid == rec.cxid => {
                let (conn, xid, opcode) = (*conn, *xid, *opcode);
                q.pop_front();
                if opcode == op::CLOSE_SESSION {
                    self.reply(conn, xid, proto::empty_reply(xid, rec.zxid, Code::Ok));
                } else {
                    let frame = crate::prep::write_reply(xid, rec.zxid, opcode, &applied);
                    self.reply(conn, xid, frame);
                }
            }
            _ => {}
        }
        if matches!(rec.txn, Txn::CloseSession) {
            self.close_local_session(rec.session);
        } else {
            self.advance(rec.session);
        }
    }

    /// The leader answered the forwarded `sync` of (`session`, `cxid`): everything it
    /// had proposed before is applied here.
    pub fn sync_done(&mut self, session: i64, cxid: i32) {
        let Some(q) = self
            .front
            .member_mut()
            .and_then(|r| r.pending.get_mut(&session))
        else {
            return;
        };
        if cxid == REVALIDATE_CXID && matches!(q.front(), Some(Pending::Revalidate { .. })) {
            if let Some(Pending::Revalidate {
                conn,
                peer,
                req,
                timeout,
            }) = q.pop_front()
            {
                if q.is_empty() {
                    if let Some(r) = self.front.member_mut() {
                        r.pending.remove(&session);
                    }
                }
                // A connection that went while it waited needs no answer.
                if self.conns.remove(&conn).is_some() {
                    self.resume_session(conn, peer, req, timeout, false);
                }
                self.advance(session);
            }
            return;
        }
        if let Some(Pending::Sync { conn, xid, path }) = q.front() {
            if *xid == cxid {
                let mut w = Writer::framed();
                proto::reply_header(&mut w, *xid, self.model.last_zxid, 0);
                w.string(path);
                let (conn, xid) = (*conn, *xid);
                q.pop_front();
                self.reply(conn, xid, w.finish_frame());
                self.advance(session);
            }
        }
    }

    fn close_local_session(&mut self, id: i64) {
        if let Some(r) = self.front.member_mut() {
            r.pending.remove(&id);
        }
        let conns: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.session == id)
            .map(|(k, _)| *k)
            .collect();
        for c in conns {
            self.drop_conn(c);
            self.emit(Output::Close { conn: c });
        }
    }

    /// Runs the session's queued requests until one has to wait again.
    fn advance(&mut self, session: i64) {
        let Some(r) = self.front.member_mut() else {
            return;
        };
        let Some(q) = r.pending.get_mut(&session) else {
            return;
        };
        if q.front()
            .is_some_and(|p| !matches!(p, Pending::Queued { .. }))
        {
            return;
        }
        let rest = std::mem::take(q);
        for p in rest {
            let busy = self
                .front
                .member()
                .and_then(|r| r.pending.get(&session))
                .is_some_and(|q| !q.is_empty());
            match p {
                Pending::Queued {
                    conn,
                    xid,
                    opcode,
                    body,
                } if !busy => {
                    if self.conns.contains_key(&conn) {
                        self.request(conn, xid, opcode, &body);
                    }
                }
                other => self.push_pending(session, other),
            }
        }
        if let Some(r) = self.front.member_mut() {
            if r.pending.get(&session).is_some_and(|q| q.is_empty()) {
                r.pending.remove(&session);
            }
        }
    }

    fn push_pending(&mut self, session: i64, p: Pending) {
        if let Some(r) = self.front.member_mut() {
            r.pending.entry(session).or_default().push_back(p);
        }
    }

    /// Replicated mode, before decoding: a request behind a pending one of its session
    /// waits its turn, unless it is a write behind nothing but forwarded writes: that
    /// one goes to the leader at once (see [`Repl::may_pipeline`]). Returns whether it
    /// was queued.
    pub(super) fn repl_queue(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        opcode: i32,
        body: &[u8],
    ) -> bool {
        let Some(r) = self.front.member_mut() else {
            return false;
        };
        r.touched.insert(session);
        if let Some(l) = r.local.get_mut(&session) {
            l.2 = self.now_ms + l.0 as i64;
        }
        let queue = r.pending.get(&session).is_some_and(|q| !q.is_empty())
            && !r.may_pipeline(session, opcode);
        if queue {
            self.repl_queue_behind(conn, session, xid, opcode, body);
        }
        queue
    }

    /// Whether `session` has requests pending here (a request going ahead of them was
    /// let through to be pipelined).
    pub(super) fn repl_pipelining(&self, session: i64) -> bool {
        self.front
            .member()
            .and_then(|r| r.pending.get(&session))
            .is_some_and(|q| !q.is_empty())
    }

    /// Queues a request behind its session's pending ones, to run in its turn.
    pub(super) fn repl_queue_behind(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        opcode: i32,
        body: &[u8],
    ) {
        self.push_pending(
            session,
            Pending::Queued {
                conn,
                xid,
                opcode,
                body: body.to_vec(),
            },
        );
    }

    /// Replicated mode: hands a write, close or sync to the leader.
    pub(super) fn repl_forward(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        opcode: i32,
        body: &[u8],
        req: &crate::proto::Request,
    ) {
        let sync_path = match req {
            crate::proto::Request::Sync { path } => Some(path.clone()),
            _ => None,
        };
        let auth: Vec<(String, String)> = self
            .conns
            .get(&conn)
            .map(|c| {
                c.auth
                    .iter()
                    .map(|i| (i.scheme.clone(), i.id.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if self
            .front
            .member()
            .is_some_and(|r| r.local.contains_key(&session))
        {
            if opcode == op::CLOSE_SESSION {
                // A local session closes here: nothing to replicate.
                if let Some(r) = self.front.member_mut() {
                    r.local.remove(&session);
                }
                let z = self.model.last_zxid;
                self.reply(conn, xid, proto::empty_reply(xid, z, Code::Ok));
                self.drop_conn(conn);
                self.emit(Output::Close { conn });
                return;
            }
            if req.creates_ephemeral() {
                if !self.cfg.local_sessions_upgrading {
                    let z = self.model.last_zxid;
                    self.reply(
                        conn,
                        xid,
                        proto::empty_reply(xid, z, Code::EphemeralOnLocalSession),
                    );
                    return;
                }
                // Upgrade: the session becomes global before the create that needs it.
                let Some((timeout, password, _)) = self
                    .front
                    .member_mut()
                    .and_then(|r| r.local.remove(&session))
                else {
                    return;
                };
                debug!("upgrading local session 0x{session:x} to global");
                self.forward_create_session(session, timeout, &password);
            }
        }
        let (fwd_op, pending) = match (opcode, sync_path) {
            (_, Some(path)) => (FWD_SYNC, Pending::Sync { conn, xid, path }),
            (op::CLOSE_SESSION, None) => (FWD_CLOSE_SESSION, Pending::Write { conn, xid, opcode }),
            (o, None) => (o, Pending::Write { conn, xid, opcode }),
        };
        if fwd_op == FWD_CLOSE_SESSION {
            if let Some(s) = self.model.sessions.get_mut(session) {
                s.closing = true;
            }
        }
        self.push_pending(session, pending);
        if let Some(r) = self.front.member_mut() {
            r.forwards.push(Forward {
                session,
                cxid: xid,
                opcode: fwd_op,
                body: body.to_vec(),
                auth,
            });
        }
    }

    /// Replicated mode: a new session is created by the leader; the id and password
    /// are chosen here (ids carry this server's id, so they never collide).
    pub(super) fn repl_create_session(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        timeout: i32,
        read_only: bool,
    ) {
        let id = self.model.sessions.allocate_id();
        let password = session::password(id, self.cfg.secret);
        debug!("forwarding createSession 0x{id:x} (timeout {timeout}) for {peer}");
        self.conns.insert(conn, self.new_conn(peer, id, timeout));
        self.forward_create_session(id, timeout, &password);
        self.push_pending(
            id,
            Pending::Connect {
                conn,
                timeout,
                password,
                read_only,
            },
        );
    }

    /// Asks the leader to log a createSession (a new session, or a local one upgraded).
    fn forward_create_session(&mut self, id: i64, timeout: i32, password: &[u8]) {
        if let Some(r) = self.front.member_mut() {
            r.forwards
                .push(Forward::create_session(id, timeout, password));
        }
    }

    /// Replicated mode: a session unknown here may have been created through another
    /// member a moment ago; ask the leader for a `sync` and check again once it is
    /// answered. False when that cannot be done (not serving, not replicated).
    pub(super) fn repl_revalidate(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        req: &crate::proto::ConnectRequest,
        timeout: i32,
    ) -> bool {
        if !self.is_serving() {
            return false;
        }
        let id = req.session_id;
        debug!("session 0x{id:x} unknown here; checking again after catching up with the leader");
        // Held like a connection of that session, so losing the leader closes it.
        self.conns.insert(conn, self.new_conn(peer, id, timeout));
        self.push_pending(
            id,
            Pending::Revalidate {
                conn,
                peer,
                req: req.clone(),
                timeout,
            },
        );
        if let Some(r) = self.front.member_mut() {
            r.forwards.push(Forward {
                session: id,
                cxid: REVALIDATE_CXID,
                opcode: FWD_SYNC,
                body: Vec::new(),
                auth: Vec::new(),
            });
        }
        true
    }

    /// `localSessionsEnabled`: a new session lives here only; answered at once.
    pub(super) fn local_create_session(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        timeout: i32,
        read_only: bool,
    ) {
        let id = self.model.sessions.allocate_id();
        let password = session::password(id, self.cfg.secret);
        let deadline = self.now_ms + timeout as i64;
        if let Some(r) = self.front.member_mut() {
            r.local.insert(id, (timeout, password.clone(), deadline));
        }
        debug!("local session 0x{id:x} (timeout {timeout}) for {peer}");
        self.conns.insert(conn, self.new_conn(peer, id, timeout));
        self.send(conn, connect_response(timeout, id, &password, read_only));
    }

    pub(super) fn local_session_valid(&self, id: i64, password: &[u8]) -> bool {
        self.front
            .member()
            .and_then(|r| r.local.get(&id))
            .is_some_and(|(_, p, _)| p == password)
    }

    /// Whether `id` is one of this server's local sessions.
    pub fn is_local_session(&self, id: i64) -> bool {
        self.front
            .member()
            .is_some_and(|r| r.local.contains_key(&id))
    }

    /// Local sessions past their deadline end here, closing their connections.
    pub(super) fn expire_local_sessions(&mut self) {
        let now = self.now_ms;
        let Some(r) = self.front.member_mut() else {
            return;
        };
        let dead: Vec<i64> = r
            .local
            .iter()
            .filter(|(_, l)| l.2 <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            if let Some(r) = self.front.member_mut() {
                r.local.remove(&id);
            }
            debug!("local session 0x{id:x} expired");
            self.counters.sessions_expired += 1;
            self.close_local_session(id);
        }
    }

    /// The connection's session, for the replica to note activity.
    pub(super) fn repl_touch(&mut self, session: i64) {
        if let Some(r) = self.front.member_mut() {
            r.touched.insert(session);
        }
    }
}
