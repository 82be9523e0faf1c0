//! A small ZooKeeper-protocol client made for generating load.
//!
//! It speaks the client protocol of Apache ZooKeeper 3.x (the connect handshake, then
//! length-prefixed `RequestHeader`/`ReplyHeader` frames), so it runs against any
//! ZooKeeper-compatible server. It does what a load generator needs and nothing more:
//! many requests in flight per session, matched to their replies by xid; pings while
//! idle; create, delete, setData, getData, exists and getChildren (all optionally
//! watching), check and multi; and watch notifications. No reconnects, no chroot, no
//! auth: a lost connection fails everything outstanding with `ConnectionLoss` and the
//! caller decides what to count.
//!
//! # I/O model: std threads and blocking sockets
//!
//! Each [`Client`] is owned by one *driver* thread, which encodes requests into a buffer
//! and writes everything queued in one `write` per wake-up, and one *reader* thread per
//! connection, which does nothing but read reply frames, stamp their arrival time and
//! pass them over a channel. Why this and not an async runtime:
//!
//! * Arrival times are taken by a thread that only reads, so a busy driver (encoding the
//!   next requests, recording a histogram) never inflates a measured latency, and a
//!   reply is timed when it arrives, not when a scheduler gets to it.
//! * Sessions share nothing, so there is nothing to gain from multiplexing them on few
//!   threads at the sizes a benchmark uses (tens to a few hundred sessions: two threads
//!   each is cheap on Linux), and the code stays a straight loop per session.
//! * No runtime dependency: the workspace's runtime (compio) is the server's, and
//!   bringing tokio in only for the generator would cost build time for no measured gain.
//!
//! Beyond a few thousand sessions per process an event loop would be the better fit.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use keel_engine::jute::{JuteError, Reader};
use keel_engine::proto::{op, perm, xid as special, Stat};

/// Largest reply frame accepted (ZooKeeper's default `jute.maxbuffer` is 1 MiB).
pub const MAX_FRAME: usize = 64 << 20;

/// One request, borrowing its path and data.
#[derive(Debug, Clone, Copy)]
pub enum Op<'a> {
    /// A create with the `world:anyone` all-permissions ACL; `flags` is the create mode.
    Create {
        path: &'a str,
        data: &'a [u8],
        flags: i32,
    },
    Delete {
        path: &'a str,
        version: i32,
    },
    SetData {
        path: &'a str,
        data: &'a [u8],
        version: i32,
    },
    GetData {
        path: &'a str,
        watch: bool,
    },
    Exists {
        path: &'a str,
        watch: bool,
    },
    GetChildren {
        path: &'a str,
        watch: bool,
    },
    Check {
        path: &'a str,
        version: i32,
    },
    /// A transaction of create / delete / setData / check ops.
    Multi(&'a [Op<'a>]),
}

impl Op<'_> {
    pub fn opcode(&self) -> i32 {
        match self {
            Op::Create { .. } => op::CREATE,
            Op::Delete { .. } => op::DELETE,
            Op::SetData { .. } => op::SET_DATA,
            Op::GetData { .. } => op::GET_DATA,
            Op::Exists { .. } => op::EXISTS,
            Op::GetChildren { .. } => op::GET_CHILDREN,
            Op::Check { .. } => op::CHECK,
            Op::Multi(_) => op::MULTI,
        }
    }

    /// Appends the jute request body (after the `RequestHeader`).
    pub fn encode_body(&self, buf: &mut Vec<u8>) {
        match *self {
            Op::Create { path, data, flags } => {
                put_str(buf, path);
                put_buf(buf, data);
                // vector<ACL> with the one entry world:anyone, all permissions
                put_i32(buf, 1);
                put_i32(buf, perm::ALL);
                put_str(buf, "world");
                put_str(buf, "anyone");
                put_i32(buf, flags);
            }
            Op::Delete { path, version } | Op::Check { path, version } => {
                put_str(buf, path);
                put_i32(buf, version);
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                put_str(buf, path);
                put_buf(buf, data);
                put_i32(buf, version);
            }
            Op::GetData { path, watch }
            | Op::Exists { path, watch }
            | Op::GetChildren { path, watch } => {
                put_str(buf, path);
                buf.push(watch as u8);
            }
            Op::Multi(ops) => {
                for o in ops {
                    // MultiHeader{type, done, err}
                    put_i32(buf, o.opcode());
                    buf.push(0);
                    put_i32(buf, -1);
                    o.encode_body(buf);
                }
                put_i32(buf, -1);
                buf.push(1);
                put_i32(buf, -1);
            }
        }
    }
}

fn put_i32(buf: &mut Vec<u8>, v: i32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_i64(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&v.to_be_bytes());
}

fn put_buf(buf: &mut Vec<u8>, b: &[u8]) {
    put_i32(buf, b.len() as i32);
    buf.extend_from_slice(b);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_buf(buf, s.as_bytes());
}

/// A request that has been sent and not answered yet.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    pub xid: i32,
    pub op: i32,
    /// The caller's label for the request, returned with its reply.
    pub tag: u64,
    /// When the request counts as started: its send time, or in open-loop mode the time
    /// it was due.
    pub start: Instant,
}

/// A reply matched to its request.
pub struct Reply {
    pub xid: i32,
    pub op: i32,
    pub tag: u64,
    pub start: Instant,
    /// When the reader thread had the whole frame.
    pub received: Instant,
    pub zxid: i64,
    /// The `ReplyHeader` error code.
    pub err: i32,
    frame: Vec<u8>,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply")
            .field("xid", &self.xid)
            .field("op", &self.op)
            .field("err", &self.err)
            .field("body_len", &self.body().len())
            .finish()
    }
}

impl Reply {
    /// The reply body after the 16-byte header.
    pub fn body(&self) -> &[u8] {
        self.frame.get(16..).unwrap_or(&[])
    }

    pub fn latency(&self) -> Duration {
        self.received.saturating_duration_since(self.start)
    }

    /// The outcome: the header's code, or for a multi that the header calls a success,
    /// the code of the first op that failed (ZooKeeper's clients read it the same way).
    pub fn code(&self) -> i32 {
        if self.err != 0 || self.op != op::MULTI {
            return self.err;
        }
        multi_first_error(self.body()).unwrap_or(0)
    }

    /// getData: the data and its stat.
    pub fn data(&self) -> Result<(Vec<u8>, Stat), JuteError> {
        let mut r = Reader::new(self.body());
        let data = r.bytes()?;
        Ok((data, read_stat(&mut r)?))
    }

    /// exists / setData: the stat.
    pub fn stat(&self) -> Result<Stat, JuteError> {
        read_stat(&mut Reader::new(self.body()))
    }

    /// getChildren: the child names.
    pub fn children(&self) -> Result<Vec<String>, JuteError> {
        Reader::new(self.body()).strings()
    }

    /// create: the path created.
    pub fn created_path(&self) -> Result<String, JuteError> {
        Reader::new(self.body()).string()
    }
}

pub fn read_stat(r: &mut Reader) -> Result<Stat, JuteError> {
    Ok(Stat {
        czxid: r.i64()?,
        mzxid: r.i64()?,
        ctime: r.i64()?,
        mtime: r.i64()?,
        version: r.i32()?,
        cversion: r.i32()?,
        aversion: r.i32()?,
        ephemeral_owner: r.i64()?,
        data_length: r.i32()?,
        num_children: r.i32()?,
        pzxid: r.i64()?,
    })
}

/// The first non-zero `ErrorResult` in a multi reply body; `None` when every op
/// succeeded or the body does not parse.
pub fn multi_first_error(body: &[u8]) -> Option<i32> {
    let mut r = Reader::new(body);
    loop {
        let t = r.i32().ok()?;
        let done = r.bool().ok()?;
        let _err = r.i32().ok()?;
        if done {
            return None;
        }
        match t {
            op::ERROR => {
                let e = r.i32().ok()?;
                if e != 0 {
                    return Some(e);
                }
            }
            op::CREATE => {
                r.string().ok()?;
            }
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                r.string().ok()?;
                read_stat(&mut r).ok()?;
            }
            op::SET_DATA => {
                read_stat(&mut r).ok()?;
            }
            op::DELETE | op::CHECK => {}
            _ => return None,
        }
    }
}

/// A watch notification.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// `Watcher.Event.EventType` (see `keel_engine::proto::event`).
    pub kind: i32,
    pub state: i32,
    pub path: String,
    pub received: Instant,
}

/// What [`Client::poll`] hands back.
#[derive(Debug)]
pub enum Event {
    Reply(Reply),
    Watch(WatchEvent),
    /// The connection is gone; every request that was outstanding is in `lost`, and
    /// none of them will get a reply.
    Closed {
        reason: String,
        lost: Vec<Pending>,
    },
}

/// What the reader thread passes to the driver.
enum Incoming {
    Frame {
        xid: i32,
        zxid: i64,
        err: i32,
        frame: Vec<u8>,
        received: Instant,
    },
    Closed(String),
}

/// One ZooKeeper session over one TCP connection. Not `Sync`: one thread drives it.
pub struct Client {
    stream: TcpStream,
    rx: Receiver<Incoming>,
    reader: Option<JoinHandle<()>>,
    pending: HashMap<i32, Pending>,
    next_xid: i32,
    wbuf: Vec<u8>,
    last_send: Instant,
    session_id: i64,
    timeout: Duration,
    /// Events received while [`Client::call`] waited for its own reply.
    stash: VecDeque<Event>,
    closed: bool,
}

fn io_err(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl Client {
    /// Connects and opens a new session asking for `session_timeout`.
    pub fn connect(
        addr: SocketAddr,
        session_timeout: Duration,
        connect_timeout: Duration,
    ) -> io::Result<Client> {
        let mut stream = TcpStream::connect_timeout(&addr, connect_timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(connect_timeout))?;
        stream.set_write_timeout(Some(connect_timeout))?;

        // ConnectRequest{protocolVersion, lastZxidSeen, timeOut, sessionId, passwd} + readOnly
        let mut req = vec![0u8; 4];
        put_i32(&mut req, 0);
        put_i64(&mut req, 0);
        put_i32(
            &mut req,
            session_timeout.as_millis().min(i32::MAX as u128) as i32,
        );
        put_i64(&mut req, 0);
        put_buf(&mut req, &[0u8; 16]);
        req.push(0);
        let len = (req.len() - 4) as u32;
        req[..4].copy_from_slice(&len.to_be_bytes());
        stream.write_all(&req)?;

        let frame = read_frame(&mut stream)?;
        let mut r = Reader::new(&frame);
        let parse = |r: &mut Reader| -> Result<(i32, i64), JuteError> {
            let _proto = r.i32()?;
            let timeout = r.i32()?;
            let session = r.i64()?;
            let _passwd = r.bytes()?;
            Ok((timeout, session))
        };
        let (timeout_ms, session_id) =
            parse(&mut r).map_err(|e| io_err(format!("bad connect response: {e}")))?;
        if timeout_ms <= 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the server refused the session (negotiated timeout <= 0)",
            ));
        }
        stream.set_read_timeout(None)?;
        stream.set_write_timeout(None)?;

        let (tx, rx) = mpsc::channel();
        let rstream = stream.try_clone()?;
        let reader = std::thread::Builder::new()
            .name(format!("zk-read-{session_id:x}"))
            .spawn(move || reader_loop(rstream, tx))?;
        Ok(Client {
            stream,
            rx,
            reader: Some(reader),
            pending: HashMap::new(),
            next_xid: 1,
            wbuf: Vec::with_capacity(64 * 1024),
            last_send: Instant::now(),
            session_id,
            timeout: Duration::from_millis(timeout_ms as u64),
            stash: VecDeque::new(),
            closed: false,
        })
    }

    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.timeout
    }

    /// How long the session may stay silent before [`Client::ping_if_idle`] pings.
    pub fn ping_interval(&self) -> Duration {
        self.timeout / 3
    }

    /// Requests sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Encodes `op` into the send buffer (nothing is written until [`Client::flush`]) and
    /// returns its xid.
    pub fn queue(&mut self, req: &Op, tag: u64, start: Instant) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if self.next_xid >= i32::MAX - 1 {
            1
        } else {
            self.next_xid + 1
        };
        let at = self.wbuf.len();
        self.wbuf.extend_from_slice(&[0; 4]);
        put_i32(&mut self.wbuf, xid);
        put_i32(&mut self.wbuf, req.opcode());
        req.encode_body(&mut self.wbuf);
        let len = (self.wbuf.len() - at - 4) as u32;
        self.wbuf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self.pending.insert(
            xid,
            Pending {
                xid,
                op: req.opcode(),
                tag,
                start,
            },
        );
        xid
    }

    /// Writes everything queued. On a write error the connection is shut down, so the
    /// reader reports it and the outstanding requests come back in [`Event::Closed`].
    pub fn flush(&mut self) -> io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let r = self.stream.write_all(&self.wbuf);
        self.wbuf.clear();
        self.last_send = Instant::now();
        if r.is_err() {
            let _ = self.stream.shutdown(Shutdown::Both);
        }
        r
    }

    /// Queues and writes one request, timed from now.
    pub fn send(&mut self, req: &Op, tag: u64) -> io::Result<i32> {
        let xid = self.queue(req, tag, Instant::now());
        self.flush()?;
        Ok(xid)
    }

    /// Sends a ping when nothing was sent for a third of the session timeout.
    pub fn ping_if_idle(&mut self) -> io::Result<bool> {
        if self.closed || self.last_send.elapsed() < self.ping_interval() {
            return Ok(false);
        }
        let mut frame = Vec::with_capacity(12);
        put_i32(&mut frame, 8);
        put_i32(&mut frame, special::PING);
        put_i32(&mut frame, op::PING);
        self.wbuf.extend_from_slice(&frame);
        self.flush()?;
        Ok(true)
    }

    /// Waits up to `timeout` (forever with `None`) for the next reply, notification or
    /// the end of the connection; `None` when the time ran out (or the connection's end
    /// was already reported).
    pub fn poll(&mut self, timeout: Option<Duration>) -> Option<Event> {
        if let Some(e) = self.stash.pop_front() {
            return Some(e);
        }
        let inc = match timeout {
            None => match self.rx.recv() {
                Ok(i) => i,
                Err(_) => return self.disconnected(),
            },
            Some(t) => match self.rx.recv_timeout(t) {
                Ok(i) => i,
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => return self.disconnected(),
            },
        };
        Some(self.match_incoming(inc))
    }

    /// The next event if one is already here.
    pub fn try_poll(&mut self) -> Option<Event> {
        if let Some(e) = self.stash.pop_front() {
            return Some(e);
        }
        match self.rx.try_recv() {
            Ok(inc) => Some(self.match_incoming(inc)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => self.disconnected(),
        }
    }

    fn disconnected(&mut self) -> Option<Event> {
        if self.closed {
            return None;
        }
        Some(self.close_event("the reader thread stopped".into()))
    }

    fn close_event(&mut self, reason: String) -> Event {
        self.closed = true;
        let mut lost: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        lost.sort_by_key(|p| p.start);
        Event::Closed { reason, lost }
    }

    fn match_incoming(&mut self, inc: Incoming) -> Event {
        match inc {
            Incoming::Closed(reason) => self.close_event(reason),
            Incoming::Frame {
                xid,
                zxid,
                err,
                frame,
                received,
            } => {
                if xid == special::NOTIFICATION {
                    let mut r = Reader::new(frame.get(16..).unwrap_or(&[]));
                    let parsed = (|| -> Result<(i32, i32, String), JuteError> {
                        Ok((r.i32()?, r.i32()?, r.string()?))
                    })();
                    return match parsed {
                        Ok((kind, state, path)) => Event::Watch(WatchEvent {
                            kind,
                            state,
                            path,
                            received,
                        }),
                        Err(e) => self.protocol_error(format!("bad watch notification: {e}")),
                    };
                }
                match self.pending.remove(&xid) {
                    Some(p) => Event::Reply(Reply {
                        xid,
                        op: p.op,
                        tag: p.tag,
                        start: p.start,
                        received,
                        zxid,
                        err,
                        frame,
                    }),
                    None => self.protocol_error(format!(
                        "reply for xid {xid}, which is not outstanding (err {err})"
                    )),
                }
            }
        }
    }

    fn protocol_error(&mut self, reason: String) -> Event {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.close_event(reason)
    }

    /// Gives up on everything outstanding: shuts the connection down and returns the
    /// requests that will never be answered (`None` if the connection was already gone).
    pub fn abandon(&mut self) -> Option<Event> {
        if self.closed {
            return None;
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        Some(self.close_event("abandoned by the caller".into()))
    }

    /// Sends one request and waits for its reply; notifications and other replies that
    /// arrive meanwhile are kept for later polls.
    pub fn call(&mut self, req: &Op, timeout: Duration) -> io::Result<Reply> {
        let xid = self.send(req, 0)?;
        let deadline = Instant::now() + timeout;
        let mut early = Vec::new();
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Read from the channel directly: the stash holds events from before this call.
            let inc = match self.rx.recv_timeout(left) {
                Ok(i) => i,
                Err(RecvTimeoutError::Timeout) => {
                    break Err(io::Error::new(io::ErrorKind::TimedOut, "no reply in time"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let ev = self.close_event("the reader thread stopped".into());
                    early.push(ev);
                    break Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "connection lost",
                    ));
                }
            };
            match self.match_incoming(inc) {
                Event::Reply(r) if r.xid == xid => break Ok(r),
                ev @ Event::Closed { .. } => {
                    early.push(ev);
                    break Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "connection lost",
                    ));
                }
                ev => early.push(ev),
            }
        };
        self.stash.extend(early);
        result
    }

    /// Closes the session (closeSession, then the socket) and joins the reader.
    pub fn close(mut self) {
        if !self.closed {
            let _ = self.call_close();
        }
    }

    fn call_close(&mut self) -> io::Result<()> {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut frame = Vec::with_capacity(12);
        put_i32(&mut frame, 8);
        put_i32(&mut frame, xid);
        put_i32(&mut frame, op::CLOSE_SESSION);
        self.wbuf.extend_from_slice(&frame);
        self.pending.insert(
            xid,
            Pending {
                xid,
                op: op::CLOSE_SESSION,
                tag: 0,
                start: Instant::now(),
            },
        );
        self.flush()?;
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(inc) => match self.match_incoming(inc) {
                    Event::Reply(r) if r.xid == xid => return Ok(()),
                    Event::Closed { .. } => return Ok(()),
                    _ => {}
                },
                Err(_) => return Ok(()),
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

/// Reads one length-prefixed frame (used for the handshake, before the reader starts).
fn read_frame(stream: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let n = i32::from_be_bytes(len);
    if n < 0 || n as usize > MAX_FRAME {
        return Err(io_err(format!("bad frame length {n}")));
    }
    let mut buf = vec![0u8; n as usize];
    stream.read_exact(&mut buf)?;
    Ok(buf)
}

fn reader_loop(stream: TcpStream, tx: Sender<Incoming>) {
    let mut r = BufReader::with_capacity(256 * 1024, stream);
    loop {
        let frame = match read_frame(&mut r) {
            Ok(f) => f,
            Err(e) => {
                let reason = if e.kind() == io::ErrorKind::UnexpectedEof {
                    "the server closed the connection".to_string()
                } else {
                    e.to_string()
                };
                let _ = tx.send(Incoming::Closed(reason));
                return;
            }
        };
        let received = Instant::now();
        let mut rd = Reader::new(&frame);
        let header =
            (|| -> Result<(i32, i64, i32), JuteError> { Ok((rd.i32()?, rd.i64()?, rd.i32()?)) })();
        let (xid, zxid, err) = match header {
            Ok(h) => h,
            Err(e) => {
                let _ = tx.send(Incoming::Closed(format!("bad reply header: {e}")));
                return;
            }
        };
        if xid == special::PING {
            continue;
        }
        if tx
            .send(Incoming::Frame {
                xid,
                zxid,
                err,
                frame,
                received,
            })
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_engine::proto::Request;

    #[test]
    fn encodes_what_the_engine_decodes() {
        let mut b = Vec::new();
        Op::Create {
            path: "/a",
            data: b"xy",
            flags: 0,
        }
        .encode_body(&mut b);
        match Request::decode(op::CREATE, &b) {
            Ok(Request::Create {
                path, acl, flags, ..
            }) => assert_eq!((path.as_str(), flags, acl.len()), ("/a", 0, 1)),
            other => panic!("{other:?}"),
        }
        let ops = [
            Op::SetData {
                path: "/a",
                data: b"1",
                version: -1,
            },
            Op::Check {
                path: "/b",
                version: 3,
            },
        ];
        let mut b = Vec::new();
        Op::Multi(&ops).encode_body(&mut b);
        match Request::decode(op::MULTI, &b) {
            Ok(Request::Multi(v)) => assert_eq!(v.len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn multi_errors_are_found() {
        let mut b = Vec::new();
        // op 1 rolled back (0), op 2 failed NoNode, op 3 RuntimeInconsistency, then done
        for e in [0, -101, -2] {
            put_i32(&mut b, op::ERROR);
            b.push(0);
            put_i32(&mut b, e);
            put_i32(&mut b, e);
        }
        put_i32(&mut b, -1);
        b.push(1);
        put_i32(&mut b, -1);
        assert_eq!(multi_first_error(&b), Some(-101));
        let mut ok = Vec::new();
        put_i32(&mut ok, op::SET_DATA);
        ok.push(0);
        put_i32(&mut ok, 0);
        ok.extend_from_slice(&[0u8; 68]);
        put_i32(&mut ok, op::DELETE);
        ok.push(0);
        put_i32(&mut ok, 0);
        put_i32(&mut ok, -1);
        ok.push(1);
        put_i32(&mut ok, -1);
        assert_eq!(multi_first_error(&ok), None);
        assert_eq!(multi_first_error(&[1, 2]), None, "garbage never panics");
    }
}
