//! Simulated ZooKeeper clients: the wire format they speak (request bodies written with
//! `keel_engine::jute`, length-prefixed replies parsed back) and their behaviour.
//!
//! A client holds one session at a time and behaves like the Java client: it connects to
//! a random server, resumes its session (id, password, last zxid seen) after a lost
//! connection, starts a new session when told the old one expired, pings when idle,
//! and gives up on a connection that stays silent for two thirds of the session
//! timeout. Requests in flight on a lost connection have an unknown outcome; the
//! checker treats them so. A client runs either random work (`setData` with unique
//! values, `getData`, `sync` + `getData`, occasionally `closeSession`) or a script
//! (the set-up `create`s, the final reads pinned to one server). With `--reconfig on`
//! two more clients authenticate as the superuser and now and then ask for a random
//! `reconfig` (see [`plan_reconfig`]).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};

use keel_engine::jute::{JuteError, Reader, Writer};
use keel_engine::proto::{op, ConnectRequest};
use keel_engine::watch::ConnId;

use crate::checker::{Checker, Members, OpId, OpKind, SessionTag, INIT_VALUE};
use crate::rng::Rng;

/// The superuser's `digest` credentials (the servers' `super_digest` is made from them).
pub const SUPER_AUTH: &str = "super:secret";

/// What a client asks the world to do.
#[derive(Debug)]
pub enum Action {
    Connect {
        node: usize,
        conn: ConnId,
        req: ConnectRequest,
        peer: SocketAddr,
    },
    Request {
        node: usize,
        conn: ConnId,
        xid: i32,
        op: i32,
        body: Vec<u8>,
    },
    /// The client closes the connection (the server gets `Disconnected`).
    Disconnect { node: usize, conn: ConnId },
}

/// A step of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    Create { key: usize },
    Read { key: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Random work until told to stop.
    Worker,
    /// Run these steps, on `node` if given (else any server), then stop.
    Script {
        node: Option<usize>,
        steps: VecDeque<Planned>,
    },
    /// Authenticated as the superuser, a random `reconfig` every 0.6–6 s (sometimes
    /// two pipelined) until told to stop.
    Reconfig,
}

#[derive(Debug)]
enum Conn {
    Idle {
        retry_at: i64,
    },
    Connecting {
        node: usize,
        conn: ConnId,
        since: i64,
    },
    Connected {
        node: usize,
        conn: ConnId,
    },
}

#[derive(Debug, Clone)]
struct Session {
    id: i64,
    password: Vec<u8>,
    timeout_ms: i32,
    tag: SessionTag,
}

#[derive(Debug)]
enum Req {
    Op {
        id: OpId,
        kind: OpKind,
    },
    Script {
        id: OpId,
        step: Planned,
    },
    /// `create` of an ephemeral node (not part of the register history; what becomes
    /// of ephemerals is checked on the final trees).
    Ephemeral,
    Close,
}

#[derive(Debug)]
struct Outstanding {
    xid: i32,
    req: Req,
    sent_at: i64,
}

#[derive(Debug, Default, Clone)]
pub struct ClientStats {
    pub connects: u64,
    pub sessions: u64,
    pub expired: u64,
    pub writes_ok: u64,
    pub writes_failed: u64,
    pub reads_ok: u64,
    pub unknown: u64,
    pub timeouts: u64,
    pub stuck: u64,
    pub ephemerals: u64,
    pub pauses: u64,
    /// `reconfig`s answered 0, and answered with an error.
    pub reconfigs_ok: u64,
    pub reconfigs_failed: u64,
}

pub struct Client {
    pub id: usize,
    pub mode: Mode,
    /// Whether to start new work (the world turns it off to quiesce).
    pub issuing: bool,
    /// A pause (think: a long GC): until then the client sends nothing, not even pings,
    /// and notices nothing, so its session may expire.
    pub paused_until: i64,
    conn: Conn,
    session: Option<Session>,
    closing: bool,
    last_zxid_seen: i64,
    outstanding: VecDeque<Outstanding>,
    next_xid: i32,
    last_recv: i64,
    last_send: i64,
    next_op_at: i64,
    value_seq: u64,
    requested_timeout: i32,
    max_inflight: usize,
    /// Results of a script's reads: (key, value, mzxid).
    pub read_results: Vec<(usize, Vec<u8>, i64)>,
    rng: Rng,
    pub stats: ClientStats,
    /// With `Mode::Reconfig`: a reconfiguration the world wants issued next (one
    /// issued while a server is paused), before any random one.
    pub inject: Option<ReconfigPlan>,
}

/// Reply header of a ZooKeeper response.
#[derive(Debug, Clone, Copy)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

/// The fields of a `Stat` the checker uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatLite {
    pub mzxid: i64,
    pub version: i32,
}

fn read_stat(r: &mut Reader) -> Result<StatLite, JuteError> {
    let _czxid = r.i64()?;
    let mzxid = r.i64()?;
    let _ctime = r.i64()?;
    let _mtime = r.i64()?;
    let version = r.i32()?;
    let _cversion = r.i32()?;
    let _aversion = r.i32()?;
    let _owner = r.i64()?;
    let _len = r.i32()?;
    let _children = r.i32()?;
    let _pzxid = r.i64()?;
    Ok(StatLite { mzxid, version })
}

/// Strips the 4-byte length prefix (checking it).
pub fn unframe(frame: &[u8]) -> Result<&[u8], String> {
    if frame.len() < 4 {
        return Err(format!("frame of {} bytes", frame.len()));
    }
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    if len != frame.len() - 4 {
        return Err(format!(
            "frame length {len} but {} bytes follow",
            frame.len() - 4
        ));
    }
    Ok(&frame[4..])
}

/// The connect response: (timeout, session id, password).
pub fn parse_connect_response(body: &[u8]) -> Result<(i32, i64, Vec<u8>), JuteError> {
    let mut r = Reader::new(body);
    let _proto = r.i32()?;
    let timeout = r.i32()?;
    let session = r.i64()?;
    let password = r.bytes()?;
    Ok((timeout, session, password))
}

pub fn parse_header(r: &mut Reader) -> Result<ReplyHeader, JuteError> {
    Ok(ReplyHeader {
        xid: r.i32()?,
        zxid: r.i64()?,
        err: r.i32()?,
    })
}

pub fn set_data_body(path: &str, data: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).buffer(data).i32(-1);
    w.buf
}

pub fn get_data_body(path: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).bool(false);
    w.buf
}

pub fn sync_body(path: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path);
    w.buf
}

/// `create(path, data, world:anyone ALL, persistent)`.
pub fn create_body(path: &str, data: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(path).buffer(data);
    w.i32(1).i32(31).string("world").string("anyone");
    w.i32(0);
    w.buf
}

const NODE_EXISTS: i32 = -110;

pub struct Ctx<'a> {
    pub now: i64,
    pub nodes: usize,
    /// Which servers are running now (the reconfiguring client's oracle: it prefers
    /// memberships a majority of whose voters are up).
    pub up: &'a [bool],
    pub keys: &'a [String],
    pub next_conn: &'a mut ConnId,
    pub checker: &'a mut Checker,
    pub trace: &'a mut Vec<String>,
}

impl Client {
    pub fn new(id: usize, mode: Mode, rng: Rng, start_at: i64) -> Client {
        let mut rng = rng;
        let requested_timeout = rng.range(2000, 4001) as i32;
        let max_inflight = 1 + rng.index(3);
        Client {
            id,
            mode,
            issuing: true,
            paused_until: 0,
            conn: Conn::Idle { retry_at: start_at },
            session: None,
            closing: false,
            last_zxid_seen: 0,
            outstanding: VecDeque::new(),
            next_xid: 1,
            last_recv: start_at,
            last_send: start_at,
            next_op_at: start_at,
            value_seq: 0,
            requested_timeout,
            max_inflight,
            read_results: Vec::new(),
            rng,
            stats: ClientStats::default(),
            inject: None,
        }
    }

    /// A script is done once every step has its answer.
    pub fn done(&self) -> bool {
        match &self.mode {
            Mode::Script { steps, .. } => steps.is_empty() && self.outstanding.is_empty(),
            Mode::Worker | Mode::Reconfig => false,
        }
    }

    pub fn has_outstanding(&self) -> bool {
        !self.outstanding.is_empty()
    }

    pub fn connection(&self) -> Option<(usize, ConnId)> {
        match self.conn {
            Conn::Connecting { node, conn, .. } | Conn::Connected { node, conn } => {
                Some((node, conn))
            }
            Conn::Idle { .. } => None,
        }
    }

    fn timeout_ms(&self) -> i64 {
        self.session
            .as_ref()
            .map(|s| s.timeout_ms)
            .unwrap_or(self.requested_timeout) as i64
    }

    fn peer(&self) -> SocketAddr {
        SocketAddr::from((
            Ipv4Addr::new(10, 0, 0, (self.id % 250) as u8 + 1),
            40000 + self.id as u16,
        ))
    }

    /// Everything in flight has an unknown outcome; script steps go back in the queue.
    fn lose_outstanding(&mut self, ctx: &mut Ctx) {
        while let Some(o) = self.outstanding.pop_back() {
            match o.req {
                Req::Op { .. } => self.stats.unknown += 1,
                Req::Script { step, .. } => {
                    if let Mode::Script { steps, .. } = &mut self.mode {
                        steps.push_front(step);
                    }
                }
                Req::Ephemeral => {}
                Req::Close => {
                    // Unknown whether the session was closed: start over with a new one.
                    self.session = None;
                    self.closing = false;
                }
            }
        }
        let _ = ctx;
    }

    fn drop_connection(&mut self, ctx: &mut Ctx, why: &str, out: &mut Vec<Action>) {
        if let Some((node, conn)) = self.connection() {
            ctx.trace.push(format!(
                "client {} drops conn {conn} to server {} ({why})",
                self.id,
                node + 1
            ));
            out.push(Action::Disconnect { node, conn });
        }
        self.lose_outstanding(ctx);
        self.conn = Conn::Idle {
            retry_at: ctx.now + self.rng.range(20, 200),
        };
    }

    /// Periodic wake-up: connect, time out, ping, start work.
    pub fn on_timer(&mut self, ctx: &mut Ctx) -> Vec<Action> {
        let mut out = Vec::new();
        let now = ctx.now;
        if now < self.paused_until {
            return out;
        }
        match self.conn {
            Conn::Idle { retry_at } => {
                if now < retry_at || self.done() {
                    return out;
                }
                if matches!(self.mode, Mode::Worker | Mode::Reconfig) && !self.issuing {
                    return out;
                }
                let node = match &self.mode {
                    Mode::Script { node: Some(n), .. } => *n,
                    _ => self.rng.index(ctx.nodes),
                };
                *ctx.next_conn += 1;
                let conn = *ctx.next_conn;
                let (sid, pw) = match &self.session {
                    Some(s) => (s.id, s.password.clone()),
                    None => (0, vec![0; 16]),
                };
                let req = ConnectRequest {
                    protocol_version: 0,
                    last_zxid_seen: self.last_zxid_seen,
                    timeout_ms: self.requested_timeout,
                    session_id: sid,
                    password: pw,
                    read_only: false,
                    has_read_only: true,
                };
                ctx.trace.push(format!(
                    "client {} connects to server {} (conn {conn}, session {sid:#x}, last zxid {:#x})",
                    self.id,
                    node + 1,
                    self.last_zxid_seen
                ));
                self.stats.connects += 1;
                self.conn = Conn::Connecting {
                    node,
                    conn,
                    since: now,
                };
                self.last_recv = now;
                self.last_send = now;
                out.push(Action::Connect {
                    node,
                    conn,
                    req,
                    peer: self.peer(),
                });
            }
            Conn::Connecting { since, .. } => {
                if now - since > self.timeout_ms() / 2 {
                    self.stats.timeouts += 1;
                    self.drop_connection(ctx, "connect timed out", &mut out);
                }
            }
            Conn::Connected { node, conn } => {
                let t = self.timeout_ms();
                if now - self.last_recv > t * 2 / 3 {
                    self.stats.timeouts += 1;
                    self.drop_connection(ctx, "read timeout", &mut out);
                    return out;
                }
                if self
                    .outstanding
                    .front()
                    .is_some_and(|o| now - o.sent_at > 3 * t)
                {
                    self.stats.stuck += 1;
                    self.drop_connection(
                        ctx,
                        "request unanswered for 3 session timeouts",
                        &mut out,
                    );
                    return out;
                }
                self.issue(ctx, node, conn, &mut out);
                if now - self.last_send >= t / 3 {
                    self.last_send = now;
                    out.push(Action::Request {
                        node,
                        conn,
                        xid: -2,
                        op: op::PING,
                        body: Vec::new(),
                    });
                }
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        node: usize,
        conn: ConnId,
        req: Req,
        opcode: i32,
        body: Vec<u8>,
        now: i64,
        out: &mut Vec<Action>,
    ) {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.outstanding.push_back(Outstanding {
            xid,
            req,
            sent_at: now,
        });
        self.last_send = now;
        out.push(Action::Request {
            node,
            conn,
            xid,
            op: opcode,
            body,
        });
    }

    fn issue(&mut self, ctx: &mut Ctx, node: usize, conn: ConnId, out: &mut Vec<Action>) {
        let now = ctx.now;
        let Some(session) = self.session.clone() else {
            return;
        };
        if self.closing {
            return;
        }
        match &mut self.mode {
            Mode::Script { steps, .. } => {
                // One step at a time, so an unknown outcome is simply retried.
                if !self.outstanding.is_empty() {
                    return;
                }
                let Some(step) = steps.pop_front() else {
                    return;
                };
                let (kind, opcode, body) = match step {
                    Planned::Create { key } => (
                        OpKind::Create {
                            key,
                            value: INIT_VALUE.to_vec(),
                        },
                        op::CREATE,
                        create_body(&ctx.keys[key], INIT_VALUE),
                    ),
                    Planned::Read { key } => (
                        OpKind::Read { key },
                        op::GET_DATA,
                        get_data_body(&ctx.keys[key]),
                    ),
                };
                let id = ctx.checker.invoke(session.tag, self.id, kind, now);
                self.send(node, conn, Req::Script { id, step }, opcode, body, now, out);
            }
            Mode::Reconfig => {
                if !self.issuing || !self.outstanding.is_empty() {
                    return;
                }
                let injected = self.inject.take();
                if injected.is_none() && now < self.next_op_at {
                    return;
                }
                // Now and then two at once: the second usually finds the first pending
                // (ReconfigInProgress).
                let n = match injected {
                    Some(_) => 1,
                    None => {
                        self.next_op_at = now + self.rng.range(600, 6000);
                        if self.rng.chance(0.15) {
                            2
                        } else {
                            1
                        }
                    }
                };
                let mut injected = injected;
                for _ in 0..n {
                    let p = match injected.take() {
                        Some(p) => p,
                        None => plan_reconfig(&mut self.rng, ctx.nodes, ctx.checker, ctx.up),
                    };
                    let mut w = Writer::new();
                    w.string(&p.joining)
                        .string(&p.leaving)
                        .string(&p.new_members)
                        .i64(p.cur_config_id);
                    let kind = OpKind::Reconfig {
                        cxid: self.next_xid,
                        what: p.describe(),
                    };
                    let id = ctx.checker.invoke(session.tag, self.id, kind.clone(), now);
                    ctx.trace.push(format!(
                        "client {} invokes #{id} reconfig {}",
                        self.id,
                        p.describe()
                    ));
                    self.send(
                        node,
                        conn,
                        Req::Op { id, kind },
                        op::RECONFIG,
                        w.buf,
                        now,
                        out,
                    );
                }
            }
            Mode::Worker => {
                if !self.issuing
                    || now < self.next_op_at
                    || self.outstanding.len() >= self.max_inflight
                {
                    return;
                }
                self.next_op_at = now + self.rng.range(0, 60);
                let key = self.rng.index(ctx.keys.len());
                let path = ctx.keys[key].clone();
                let r = self.rng.unit();
                if r < 0.45 {
                    self.value_seq += 1;
                    let value = format!("c{}-{}", self.id, self.value_seq).into_bytes();
                    let body = set_data_body(&path, &value);
                    let kind = OpKind::Write {
                        key,
                        value: value.clone(),
                    };
                    let id = ctx.checker.invoke(session.tag, self.id, kind.clone(), now);
                    ctx.trace.push(format!(
                        "client {} invokes #{id} setData {} = {:?}",
                        self.id,
                        path,
                        String::from_utf8_lossy(&value)
                    ));
                    self.send(
                        node,
                        conn,
                        Req::Op { id, kind },
                        op::SET_DATA,
                        body,
                        now,
                        out,
                    );
                } else if r < 0.88 || self.outstanding.len() + 2 > self.max_inflight.max(2) {
                    let kind = OpKind::Read { key };
                    let id = ctx.checker.invoke(session.tag, self.id, kind.clone(), now);
                    self.send(
                        node,
                        conn,
                        Req::Op { id, kind },
                        op::GET_DATA,
                        get_data_body(&path),
                        now,
                        out,
                    );
                } else if r < 0.91 {
                    self.value_seq += 1;
                    let path = format!("/e{}-{}", self.id, self.value_seq);
                    let mut w = keel_engine::jute::Writer::new();
                    w.string(&path).buffer(b"e");
                    w.i32(1).i32(31).string("world").string("anyone");
                    w.i32(1); // ephemeral
                    self.stats.ephemerals += 1;
                    self.send(node, conn, Req::Ephemeral, op::CREATE, w.buf, now, out);
                } else if r < 0.99 {
                    // sync, then read behind it (pipelined).
                    let id = ctx.checker.invoke(session.tag, self.id, OpKind::Sync, now);
                    self.send(
                        node,
                        conn,
                        Req::Op {
                            id,
                            kind: OpKind::Sync,
                        },
                        op::SYNC,
                        sync_body(&path),
                        now,
                        out,
                    );
                    let kind = OpKind::Read { key };
                    let id = ctx.checker.invoke(session.tag, self.id, kind.clone(), now);
                    self.send(
                        node,
                        conn,
                        Req::Op { id, kind },
                        op::GET_DATA,
                        get_data_body(&path),
                        now,
                        out,
                    );
                } else if self.outstanding.is_empty() {
                    ctx.trace.push(format!(
                        "client {} closes session {:#x}",
                        self.id, session.id
                    ));
                    self.closing = true;
                    self.send(
                        node,
                        conn,
                        Req::Close,
                        op::CLOSE_SESSION,
                        Vec::new(),
                        now,
                        out,
                    );
                }
            }
        }
    }

    /// A frame from the server on `conn`.
    pub fn on_frame(&mut self, ctx: &mut Ctx, conn: ConnId, frame: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        let now = ctx.now;
        let Some((node, cur)) = self.connection() else {
            return out;
        };
        if cur != conn {
            return out;
        }
        self.last_recv = now;
        let body = match unframe(frame) {
            Ok(b) => b,
            Err(e) => {
                ctx.checker
                    .violate(now, "wire", format!("server {}: {e}", node + 1));
                return out;
            }
        };
        if let Conn::Connecting { .. } = self.conn {
            let (timeout, sid, password) = match parse_connect_response(body) {
                Ok(x) => x,
                Err(e) => {
                    ctx.checker.violate(
                        now,
                        "wire",
                        format!("server {}: bad connect response: {e}", node + 1),
                    );
                    return out;
                }
            };
            if sid == 0 || timeout <= 0 {
                // Session expired (or unknown): start over with a new one.
                if let Some(s) = self.session.take() {
                    self.stats.expired += 1;
                    ctx.trace
                        .push(format!("client {}: session {:#x} expired", self.id, s.id));
                }
                self.closing = false;
                self.drop_connection(ctx, "session expired", &mut out);
                self.conn = Conn::Idle { retry_at: now };
                return out;
            }
            match &self.session {
                Some(s) if s.id == sid => {}
                Some(s) => {
                    let detail = format!(
                        "client {} resumed session {:#x} on server {} and got session {sid:#x}",
                        self.id,
                        s.id,
                        node + 1
                    );
                    ctx.checker.violate(now, "session", detail);
                }
                None => {
                    let tag = ctx.checker.new_session(sid);
                    self.stats.sessions += 1;
                    self.session = Some(Session {
                        id: sid,
                        password: password.clone(),
                        timeout_ms: timeout,
                        tag,
                    });
                    self.closing = false;
                }
            }
            if let Some(s) = &mut self.session {
                s.timeout_ms = timeout;
            }
            ctx.trace.push(format!(
                "client {} connected to server {} with session {sid:#x}",
                self.id,
                node + 1
            ));
            self.conn = Conn::Connected { node, conn };
            if self.mode == Mode::Reconfig {
                // Authentication belongs to the connection: again on every one.
                let mut w = Writer::new();
                w.i32(0).string("digest").buffer(SUPER_AUTH.as_bytes());
                out.push(Action::Request {
                    node,
                    conn,
                    xid: keel_engine::proto::xid::AUTH,
                    op: op::AUTH,
                    body: w.buf,
                });
            }
            self.issue(ctx, node, conn, &mut out);
            return out;
        }
        let mut r = Reader::new(body);
        let h = match parse_header(&mut r) {
            Ok(h) => h,
            Err(e) => {
                ctx.checker.violate(
                    now,
                    "wire",
                    format!("server {}: bad reply header: {e}", node + 1),
                );
                return out;
            }
        };
        if h.zxid > 0 {
            self.last_zxid_seen = self.last_zxid_seen.max(h.zxid);
        }
        if h.xid < 0 {
            // Ping (-2), notification (-1) and other special xids.
            return out;
        }
        let Some(pos) = self.outstanding.iter().position(|o| o.xid == h.xid) else {
            ctx.checker.violate(
                now,
                "wire",
                format!(
                    "client {}: reply to xid {} it never sent (or already answered)",
                    self.id, h.xid
                ),
            );
            return out;
        };
        if pos != 0 {
            if let Some(s) = &self.session {
                let first = self.outstanding[0].xid;
                ctx.checker.fifo_violation(now, s.tag, first, h.xid);
            }
        }
        let o = self.outstanding.remove(pos).unwrap();
        match o.req {
            Req::Op { id, kind } => self.op_reply(ctx, id, &kind, h, &mut r),
            Req::Script { id, step } => match step {
                Planned::Create { .. } => {
                    if h.err == 0 || h.err == NODE_EXISTS {
                        ctx.checker.done(now, id);
                    } else {
                        ctx.checker.failed_op(now, id, h.err);
                        if let Mode::Script { steps, .. } = &mut self.mode {
                            steps.push_front(step);
                        }
                    }
                }
                Planned::Read { key } => {
                    if h.err == 0 {
                        let parsed = r.bytes().and_then(|v| Ok((v, read_stat(&mut r)?)));
                        match parsed {
                            Ok((value, stat)) => {
                                ctx.checker.read_ok(
                                    now,
                                    id,
                                    h.zxid,
                                    value.clone(),
                                    stat.mzxid,
                                    stat.version,
                                );
                                self.read_results.push((key, value, stat.mzxid));
                            }
                            Err(e) => {
                                ctx.checker
                                    .violate(now, "wire", format!("getData reply: {e}"))
                            }
                        }
                    } else {
                        ctx.checker.failed_op(now, id, h.err);
                        if let Mode::Script { steps, .. } = &mut self.mode {
                            steps.push_front(step);
                        }
                    }
                }
            },
            Req::Ephemeral => {}
            Req::Close => {
                ctx.trace.push(format!(
                    "client {}: session closed (err {})",
                    self.id, h.err
                ));
                self.session = None;
                self.closing = false;
                self.drop_connection(ctx, "session closed", &mut out);
                self.conn = Conn::Idle { retry_at: now + 10 };
                return out;
            }
        }
        if let Conn::Connected { node, conn } = self.conn {
            self.issue(ctx, node, conn, &mut out);
        }
        out
    }

    fn op_reply(&mut self, ctx: &mut Ctx, id: OpId, kind: &OpKind, h: ReplyHeader, r: &mut Reader) {
        let now = ctx.now;
        if h.err != 0 {
            if matches!(kind, OpKind::Write { .. }) {
                self.stats.writes_failed += 1;
            }
            if matches!(kind, OpKind::Reconfig { .. }) {
                self.stats.reconfigs_failed += 1;
            }
            ctx.trace.push(format!(
                "client {}: #{id} failed with error {}",
                self.id, h.err
            ));
            ctx.checker.failed_op(now, id, h.err);
            return;
        }
        match kind {
            OpKind::Write { .. } => match read_stat(r) {
                Ok(stat) => {
                    self.stats.writes_ok += 1;
                    ctx.trace.push(format!(
                        "client {}: #{id} acknowledged at {:#x} (version {})",
                        self.id, h.zxid, stat.version
                    ));
                    ctx.checker
                        .write_ok(now, id, h.zxid, stat.mzxid, stat.version);
                }
                Err(e) => ctx
                    .checker
                    .violate(now, "wire", format!("setData reply: {e}")),
            },
            OpKind::Read { .. } => {
                let parsed = r.bytes().and_then(|v| Ok((v, read_stat(r)?)));
                match parsed {
                    Ok((value, stat)) => {
                        self.stats.reads_ok += 1;
                        ctx.checker
                            .read_ok(now, id, h.zxid, value, stat.mzxid, stat.version);
                    }
                    Err(e) => ctx
                        .checker
                        .violate(now, "wire", format!("getData reply: {e}")),
                }
            }
            OpKind::Sync => ctx.checker.sync_ok(now, id, h.zxid),
            OpKind::Create { .. } => ctx.checker.done(now, id),
            OpKind::Reconfig { .. } => match r.bytes().and_then(|d| Ok((d, read_stat(r)?))) {
                Ok((data, stat)) => {
                    self.stats.reconfigs_ok += 1;
                    ctx.trace.push(format!(
                        "client {}: #{id} reconfig committed at {:#x}: {:?}",
                        self.id,
                        h.zxid,
                        String::from_utf8_lossy(&data)
                    ));
                    if stat.mzxid != h.zxid {
                        ctx.checker.violate(
                            now,
                            "reconfig",
                            format!(
                                "reconfig reply: header zxid {:#x} but /zookeeper/config's mzxid {:#x}",
                                h.zxid, stat.mzxid
                            ),
                        );
                    }
                    ctx.checker.reconfig_ok(now, id, h.zxid, data);
                }
                Err(e) => ctx
                    .checker
                    .violate(now, "wire", format!("reconfig reply: {e}")),
            },
        }
    }

    /// The server closed `conn` (or it broke).
    pub fn on_closed(&mut self, ctx: &mut Ctx, conn: ConnId) {
        let Some((node, cur)) = self.connection() else {
            return;
        };
        if cur != conn {
            return;
        }
        ctx.trace.push(format!(
            "client {}: conn {conn} to server {} closed",
            self.id,
            node + 1
        ));
        self.lose_outstanding(ctx);
        self.conn = Conn::Idle {
            retry_at: ctx.now + self.rng.range(10, 150),
        };
    }
}

/// A `reconfig` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconfigPlan {
    pub joining: String,
    pub leaving: String,
    pub new_members: String,
    pub cur_config_id: i64,
}

impl ReconfigPlan {
    pub fn describe(&self) -> String {
        let mut s = String::new();
        if !self.joining.is_empty() {
            s.push_str(&format!("joining [{}] ", self.joining));
        }
        if !self.leaving.is_empty() {
            s.push_str(&format!("leaving [{}] ", self.leaving));
        }
        if !self.new_members.is_empty() {
            s.push_str(&format!("members [{}] ", self.new_members));
        }
        s.push_str(&format!("curConfigId {:#x}", self.cur_config_id));
        s
    }
}

/// `server.N=...` as the replicas' made-up initial membership writes it, with the
/// client port a `reconfig` needs (sometimes with its host, which the servers
/// canonicalise).
fn server_spec(rng: &mut Rng, id: u64, observer: bool) -> String {
    let role = if observer { "observer" } else { "participant" };
    let mut s = format!("server.{id}=127.0.0.1:{}:{}:{role}", 2888 + id, 3888 + id);
    if rng.chance(0.3) {
        s.push_str(&format!(";{}", 2180 + id));
    } else {
        s.push_str(&format!(";127.0.0.1:{}", 2180 + id));
    }
    s
}

/// A random reconfiguration of the pool (servers `1..=pool`) from the newest committed
/// membership the checker knows: remove a voter or an observer, add a server from
/// outside as a participant or an observer, change a member's role, replace the whole
/// list (bulk form), or now and then something malformed (BadArguments). It keeps at
/// least one voter and, four times in five, draws again (a few times) for a membership
/// a majority of whose voters are up. `curConfigId` is the newest version, -1 (any),
/// or a stale one.
pub fn plan_reconfig(rng: &mut Rng, pool: usize, checker: &Checker, up: &[bool]) -> ReconfigPlan {
    let cur = checker.newest_membership().clone();
    let want_live = rng.chance(0.8);
    let mut plan = None;
    for _ in 0..8 {
        let (p, voters) = draw_reconfig(rng, pool, &cur);
        let live = voters
            .iter()
            .filter(|s| up.get(**s as usize - 1) == Some(&true))
            .count();
        let good = voters.is_empty() || live > voters.len() / 2;
        plan = Some(p);
        if good || !want_live {
            break;
        }
    }
    let mut plan = plan.unwrap();
    let r = rng.unit();
    plan.cur_config_id = if r < 0.55 {
        cur.version
    } else if r < 0.85 {
        -1
    } else {
        let older: Vec<i64> = checker
            .memberships()
            .map(|m| m.version)
            .filter(|v| *v != cur.version)
            .collect();
        if !older.is_empty() && rng.chance(0.7) {
            *rng.pick(&older)
        } else {
            cur.version + 1 + rng.range(0, 3)
        }
    };
    plan
}

/// One draw: the request and the voters it would leave (empty for a malformed one).
fn draw_reconfig(rng: &mut Rng, pool: usize, cur: &Members) -> (ReconfigPlan, Vec<u64>) {
    let ids: Vec<u64> = (1..=pool as u64).collect();
    let outside: Vec<u64> = ids.iter().copied().filter(|s| !cur.is_member(*s)).collect();
    let mut plan = ReconfigPlan {
        joining: String::new(),
        leaving: String::new(),
        new_members: String::new(),
        cur_config_id: -1,
    };
    let mut voters = cur.voters.clone();
    let remove_weight = match cur.voters.len() {
        0 | 1 => 0.0,
        2 => 0.1,
        _ => 0.25,
    };
    let r = rng.unit();
    let mut acc = 0.0;
    let mut pick = |w: f64| {
        acc += w;
        r < acc
    };
    if pick(remove_weight) {
        let v = *rng.pick(&cur.voters);
        plan.leaving = v.to_string();
        voters.retain(|s| *s != v);
    } else if pick(0.25) && !outside.is_empty() {
        let n = *rng.pick(&outside);
        plan.joining = server_spec(rng, n, false);
        voters.push(n);
    } else if pick(0.08) && !outside.is_empty() {
        let n = *rng.pick(&outside);
        plan.joining = server_spec(rng, n, true);
    } else if pick(0.08) && !cur.observers.is_empty() {
        plan.leaving = rng.pick(&cur.observers).to_string();
    } else if pick(0.10) && cur.voters.len() + cur.observers.len() > 1 {
        // A member changes role.
        let members: Vec<u64> = cur.voters.iter().chain(&cur.observers).copied().collect();
        let m = *rng.pick(&members);
        if cur.is_voter(m) && cur.voters.len() > 1 {
            plan.joining = server_spec(rng, m, true);
            voters.retain(|s| *s != m);
        } else if !cur.is_voter(m) {
            plan.joining = server_spec(rng, m, false);
            voters.push(m);
        } else {
            plan.joining = server_spec(rng, m, false); // no change
        }
    } else if pick(0.06) && !outside.is_empty() && cur.voters.len() > 1 {
        // One out, one in, in one request.
        let v = *rng.pick(&cur.voters);
        let n = *rng.pick(&outside);
        plan.leaving = v.to_string();
        let obs = rng.chance(0.2);
        plan.joining = server_spec(rng, n, obs);
        voters.retain(|s| *s != v);
        if !plan.joining.contains(":observer") {
            voters.push(n);
        }
    } else if pick(0.04) {
        // Malformed: a server without ports, or no voter left.
        voters.clear();
        if rng.chance(0.5) {
            plan.joining = format!("server.{}=nohost", 1 + rng.index(pool));
        } else {
            plan.leaving = cur
                .voters
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(",");
        }
    } else {
        // Bulk: a whole new list, at least one voter.
        let mut list = Vec::new();
        voters.clear();
        for &s in &ids {
            let x = rng.unit();
            if x < 0.55 {
                voters.push(s);
                list.push(server_spec(rng, s, false));
            } else if x < 0.7 {
                list.push(server_spec(rng, s, true));
            }
        }
        if voters.is_empty() {
            let s = *rng.pick(&ids);
            list.retain(|e| !e.starts_with(&format!("server.{s}=")));
            list.push(server_spec(rng, s, false));
            voters.push(s);
        }
        plan.new_members = list.join(",");
    }
    voters.sort_unstable();
    (plan, voters)
}
