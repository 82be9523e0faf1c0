//! The standalone front-end: a write is prepped and applied to the data model at
//! once, logged by this server alone (the turn's transactions become one
//! `Output::Persist`), and everything a client could observe after it (its reply,
//! watch events, later replies) is held until the log reports it durable. Session
//! expiry and container reaping are this server's own writes. (An ensemble member's
//! front-end is `replicated.rs`.)

use std::collections::VecDeque;
use std::net::SocketAddr;

use tracing::{debug, info};

use super::{connect_response, is_multi_write_op, Engine, Front, Output};
use crate::prep::{self, write_reply, Applied};
use crate::proto::{self, Code, Request};
use crate::session;
use crate::txn::{Txn, TxnRecord};
use crate::watch::ConnId;

#[derive(Default)]
pub(super) struct Standalone {
    /// Outputs waiting for the log, tagged with the zxid that must be durable first and,
    /// for replies, when their request arrived (for latency statistics). Never holds
    /// anything once `durable_zxid` reaches the engine's last zxid.
    pub(super) held: VecDeque<(i64, Output, Option<i64>)>,
    /// Transactions applied since the last `drain`, to be logged as one frame.
    pub(super) log_batch: Vec<TxnRecord>,
    /// The highest zxid the log reports durable.
    pub(super) durable_zxid: i64,
}

impl Engine {
    /// The standalone part of a tick: expire sessions (`scan`) and reap containers and
    /// TTL nodes when due, each as a write of this server's.
    pub(super) fn standalone_tick(&mut self, scan: bool) {
        if scan {
            for id in self.model.sessions.expired(self.now_ms) {
                info!(session = format_args!("0x{id:x}"), "session expired");
                self.counters.sessions_expired += 1;
                self.close_session(id, 0, None);
            }
        }
        if self.now_ms >= self.next_container_scan {
            self.next_container_scan = self.now_ms + self.cfg.container_check_ms.max(1);
            self.reap_containers();
        }
    }

    /// A new session: created, logged and answered here.
    pub(super) fn standalone_create_session(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        timeout: i32,
        ro: bool,
    ) {
        let id = self.model.sessions.allocate_id();
        let password = session::password(id, self.cfg.secret);
        let rec = self.log(
            id,
            0,
            Txn::CreateSession {
                timeout_ms: timeout,
                password: password.clone(),
            },
        );
        self.commit(rec);
        if let Some(s) = self.model.sessions.get_mut(id) {
            s.conn = Some(conn);
        }
        self.conns.insert(conn, self.new_conn(peer, id, timeout));
        debug!(
            "established session 0x{id:x} with timeout {timeout} for client {}",
            peer.ip()
        );
        self.send(conn, connect_response(timeout, id, &password, ro));
    }

    /// Answers `code` to a request ZooKeeper refuses with a logged error transaction
    /// (it takes a zxid, as there).
    fn logged_refusal(&mut self, conn: ConnId, session: i64, xid: i32, code: Code) {
        let rec = self.log(
            session,
            xid,
            Txn::Error {
                code: code.as_i32(),
            },
        );
        let z = rec.zxid;
        self.commit(rec);
        self.reply(conn, xid, proto::empty_reply(xid, z, code));
    }

    /// The requests the standalone front-end handles itself: writes (prepped, applied,
    /// logged), closing the session, and what ZooKeeper answers with a logged error
    /// (`reconfig` on a standalone server, a multi with a read in it). Anything else is
    /// given back to be answered as both front-ends answer it.
    pub(super) fn standalone_request(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        opcode: i32,
        req: Request,
    ) -> Option<Request> {
        match req {
            Request::CloseSession => self.close_session(session, xid, Some((conn, xid))),
            Request::Reconfig { .. } => {
                self.logged_refusal(conn, session, xid, Code::ReconfigDisabled);
            }
            Request::Multi(ops) if !ops.iter().all(is_multi_write_op) => {
                self.logged_refusal(conn, session, xid, Code::MarshallingError);
            }
            // A bare check is answered as ZooKeeper 3.8 answers it: not at all.
            r @ Request::Check { .. } => return Some(r),
            r if r.is_write() => self.write(conn, session, xid, opcode, r),
            r => return Some(r),
        }
        None
    }

    /// The log reports everything through `zxid` durable: what waited for it leaves.
    /// (A member's durability is the replica's business; it never asks.)
    pub(super) fn durable(&mut self, zxid: i64) {
        let Front::Standalone(s) = &mut self.front else {
            return;
        };
        if zxid <= s.durable_zxid {
            return;
        }
        s.durable_zxid = zxid;
        let mut ready = Vec::new();
        while s.held.front().is_some_and(|(z, _, _)| *z <= zxid) {
            if let Some((_, o, started)) = s.held.pop_front() {
                ready.push((o, started));
            }
        }
        for (o, started) in ready {
            self.release(o, started);
        }
    }

    pub(super) fn log(&mut self, session: i64, cxid: i32, txn: Txn) -> TxnRecord {
        self.model.last_zxid += 1;
        TxnRecord {
            zxid: self.model.last_zxid,
            time: self.now_ms,
            session,
            cxid,
            txn,
        }
    }

    /// ContainerManager: empty containers that once had children, and TTL nodes without
    /// children not modified within their TTL, are deleted like any write.
    pub(super) fn reap_containers(&mut self) {
        for p in self.reap_candidates() {
            debug!(path = %p, "reaping container/TTL node");
            let rec = self.log(0, 0, Txn::Delete { path: p });
            self.commit(rec);
        }
    }

    /// Applies a logged transaction, fires its watches and queues it for the log.
    pub(super) fn commit(&mut self, rec: TxnRecord) -> Applied {
        let mut triggers = Vec::new();
        let applied = self.apply(&rec, &mut triggers);
        self.fire(&triggers);
        self.queue_for_log(rec);
        applied
    }

    /// Queues a standalone write for the log (`drain` hands the batch out as one
    /// frame). A member never logs through its engine: its writes come back committed.
    pub(super) fn queue_for_log(&mut self, rec: TxnRecord) {
        match &mut self.front {
            Front::Standalone(s) => s.log_batch.push(rec),
            Front::Member(_) => {
                debug_assert!(false, "a member's engine logged 0x{:x} itself", rec.zxid)
            }
        }
    }

    /// What was just recovered from disk (a snapshot, log frames) is durable.
    pub(super) fn recovered_durable(&mut self) {
        if let Front::Standalone(s) = &mut self.front {
            s.durable_zxid = self.model.last_zxid;
        }
    }

    /// Logs a closeSession (client request when `reply` is set, or expiry), deleting the
    /// session's ephemerals, then closes its connection.
    pub(super) fn close_session(&mut self, id: i64, cxid: i32, reply: Option<(ConnId, i32)>) {
        let Some(s) = self.model.sessions.get_mut(id) else {
            return;
        };
        s.closing = true;
        let conn = s.conn;
        let rec = self.log(id, cxid, Txn::CloseSession);
        let zxid = rec.zxid;
        self.commit(rec);
        if let Some((c, x)) = reply {
            self.reply(c, x, proto::empty_reply(x, zxid, Code::Ok));
        }
        if let Some(c) = conn {
            self.drop_conn(c);
            self.emit(Output::Close { conn: c });
        }
    }

    pub(super) fn write(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        opcode: i32,
        req: Request,
    ) {
        let zxid = self.model.last_zxid + 1;
        let time = self.now_ms;
        let mut triggers = Vec::new();
        let ids = self
            .conns
            .get(&conn)
            .map(|c| c.auth.as_slice())
            .unwrap_or(&[]);
        let (txn, applied) = prep::prep_and_apply(
            &mut self.model.tree,
            &self.cfg,
            ids,
            session,
            zxid,
            time,
            req,
            &mut triggers,
        );
        let rec = self.log(session, xid, txn);
        debug_assert_eq!(rec.zxid, zxid);
        self.fire(&triggers);
        self.queue_for_log(rec);
        let frame = write_reply(xid, zxid, opcode, &applied);
        self.reply(conn, xid, frame);
    }
}
