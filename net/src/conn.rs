//! One client connection on a network core: reads length-prefixed frames, recognises
//! four-letter words, enforces jute.maxbuffer and the handshake deadline, forwards
//! requests to the engine and writes what the engine sends back, batching queued frames
//! into one write.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use compio::buf::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use futures_util::future::{select, Either};
use keel_engine::proto::{xid::NOTIFICATION as NOTIFICATION_XID, ConnectRequest};
use keel_engine::watch::ConnId;
use keel_engine::Input;
use tracing::{debug, info, warn};

use crate::msg::{InFlight, Inbox, Outbox, ToConn, ToEngine};

/// Settings every connection needs.
pub struct ConnSettings {
    pub max_buffer: usize,
    pub handshake_timeout: Duration,
    pub read_buffer: usize,
    /// Requests read and not yet answered before the connection is no longer read
    /// (`globalOutstandingLimit`, counted per connection).
    pub max_outstanding: usize,
    /// Reply bytes queued and not yet written before the connection is cut off
    /// (`keel.maxQueuedReplyBytes`).
    pub max_queued_bytes: usize,
    /// Request bytes of all connections waiting for the engine, bounded.
    pub in_flight: Arc<InFlight>,
}

/// The largest first frame a connection may send: a ConnectRequest is 45 bytes (49 with
/// the read-only flag). A stranger who has not finished its handshake may not make the
/// server hold `jute.maxbuffer` bytes for it.
pub const MAX_HANDSHAKE_FRAME: usize = 4096;

/// The read buffer a connection starts with, grown to `read_buffer` after its handshake:
/// thousands of connections that never get that far cost little memory.
const HANDSHAKE_READ_BUFFER: usize = 512;

/// The four-letter words ZooKeeper knows (`FourLetterCommands`).
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srvr", "srst", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// Why a connection ended; logged once.
#[derive(Debug)]
enum End {
    Eof,
    Io(std::io::Error),
    BadLength(i64),
    Malformed(String),
    HandshakeTimeout,
    EngineGone,
    /// The writer stopped (the socket failed, or the connection was cut off).
    WriterGone,
}

/// Bytes read but not yet consumed are `acc[start..]`. Consuming a frame only moves
/// `start`; the buffer is compacted before a read needs room, so pipelined frames that
/// arrive together are not shifted once per frame.
struct FrameReader {
    stream: TcpStream,
    acc: Vec<u8>,
    start: usize,
    scratch: Vec<u8>,
}

impl FrameReader {
    fn buffered(&self) -> usize {
        self.acc.len() - self.start
    }

    async fn fill(&mut self, want: usize) -> Result<(), End> {
        while self.buffered() < want {
            if self.start > 0 {
                self.acc.drain(..self.start);
                self.start = 0;
            }
            let mut buf = std::mem::take(&mut self.scratch);
            buf.clear();
            let BufResult(res, buf) = self.stream.read(buf).await;
            self.scratch = buf;
            match res {
                Ok(0) => return Err(End::Eof),
                Ok(n) => self.acc.extend_from_slice(&self.scratch[..n]),
                Err(e) => return Err(End::Io(e)),
            }
        }
        Ok(())
    }

    /// Consumes `n` buffered bytes (the caller has `fill`ed them) and returns them.
    fn take(&mut self, n: usize) -> &[u8] {
        let at = self.start;
        self.start += n;
        &self.acc[at..at + n]
    }

    /// Drops everything buffered.
    fn discard(&mut self) {
        self.start = self.acc.len();
    }

    /// The next frame's 4-byte length prefix, raw.
    async fn prefix(&mut self) -> Result<[u8; 4], End> {
        self.fill(4).await?;
        let b = self.take(4);
        Ok([b[0], b[1], b[2], b[3]])
    }

    /// The body of a frame whose prefix was read, checked against `max`, borrowed from
    /// the buffer until the next read.
    async fn body(&mut self, prefix: [u8; 4], max: usize) -> Result<&[u8], End> {
        let len = i32::from_be_bytes(prefix);
        if len < 0 || len as usize > max {
            return Err(End::BadLength(len as i64));
        }
        self.fill(len as usize).await?;
        Ok(self.take(len as usize))
    }
}

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    conn: ConnId,
    engine: flume::Sender<ToEngine>,
    settings: Arc<ConnSettings>,
) {
    let _ = stream.set_nodelay(true);
    let (tx, inbox) = Outbox::new(settings.max_queued_bytes);
    // One token per request read and not yet answered: the reader takes one before it
    // forwards a request (waiting, so not reading, while none is left) and the writer
    // gives one back per reply it writes.
    let (tokens, answered) = flume::bounded::<()>(settings.max_outstanding.max(1));
    let writer = compio::runtime::spawn(write_loop(stream.clone(), inbox, answered));
    let mut reader = FrameReader {
        start: 0,
        stream: stream.clone(),
        acc: Vec::new(),
        scratch: Vec::with_capacity(HANDSHAKE_READ_BUFFER),
    };
    let end = read_loop(&mut reader, peer, conn, &engine, &tx, &tokens, &settings).await;
    match &end {
        End::Eof => debug!(conn, %peer, "client closed the connection"),
        End::Io(e) => debug!(conn, %peer, "connection error: {e}"),
        End::BadLength(len) => {
            warn!(conn, %peer, "closing connection: frame length {len} is out of range (jute.maxbuffer is {})", settings.max_buffer)
        }
        End::Malformed(why) => warn!(conn, %peer, "closing connection: {why}"),
        End::HandshakeTimeout => {
            info!(conn, %peer, "closing connection: no handshake within {:?}", settings.handshake_timeout)
        }
        End::EngineGone | End::WriterGone => {}
    }
    let hung_up = matches!(end, End::Eof | End::Io(_)) && !tx.was_cut_off();
    let _ = engine.send(ToEngine::Input(Input::Disconnected { conn, hung_up }));
    tx.close();
    let _ = writer.await;
}

async fn read_loop(
    r: &mut FrameReader,
    peer: SocketAddr,
    conn: ConnId,
    engine: &flume::Sender<ToEngine>,
    tx: &Outbox,
    tokens: &flume::Sender<()>,
    settings: &ConnSettings,
) -> End {
    // The handshake (or a four-letter word) must arrive before the deadline.
    let first = compio::time::timeout(settings.handshake_timeout, async {
        let prefix = r.prefix().await?;
        if let Ok(word) = std::str::from_utf8(&prefix) {
            if FOUR_LETTER_WORDS.contains(&word) {
                return Ok(Err(word.to_owned()));
            }
        }
        let body = r
            .body(prefix, settings.max_buffer.min(MAX_HANDSHAKE_FRAME))
            .await?
            .to_vec();
        Ok::<_, End>(Ok(body))
    })
    .await;
    let body = match first {
        Err(_) => return End::HandshakeTimeout,
        Ok(Err(e)) => return e,
        Ok(Ok(Err(word))) => {
            let _ = engine.send(ToEngine::FourLetter {
                conn,
                peer,
                cmd: word,
                tx: tx.clone(),
            });
            // The engine answers and closes; wait for the client to go away.
            loop {
                if let Err(e) = r.fill(r.buffered() + 1).await {
                    return e;
                }
                r.discard();
            }
        }
        Ok(Ok(Ok(body))) => body,
    };
    let req = match ConnectRequest::decode(&body) {
        Ok(req) => req,
        Err(e) => return End::Malformed(format!("bad connect request: {e}")),
    };
    if engine
        .send(ToEngine::Register {
            conn,
            tx: tx.clone(),
        })
        .is_err()
    {
        return End::EngineGone;
    }
    r.scratch.reserve(settings.read_buffer);
    if engine
        .send(ToEngine::Input(Input::Connect { conn, peer, req }))
        .is_err()
    {
        return End::EngineGone;
    }
    loop {
        let prefix = match r.prefix().await {
            Ok(p) => p,
            Err(e) => return e,
        };
        let frame = match r.body(prefix, settings.max_buffer).await {
            Ok(f) => f,
            Err(e) => return e,
        };
        if frame.len() < 8 {
            return End::Malformed(format!("request of {} bytes has no header", frame.len()));
        }
        let xid = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
        let op = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        // The one copy of the body: out of the read buffer, to the engine.
        let body = frame[8..].to_vec();
        // Backpressure: with `max_outstanding` requests unanswered, stop reading until
        // the writer hands a token back (or is gone).
        if tokens.try_send(()).is_err() {
            debug!(conn, %peer, "{} requests outstanding: not reading until replies drain", settings.max_outstanding);
            if tokens.send_async(()).await.is_err() {
                return End::WriterGone;
            }
        }
        // And with the engine's channel full (of every connection's requests), wait
        // for it to drain. Only an overloaded server gets here, so polling is fine.
        while !settings.in_flight.try_take(body.len()) {
            compio::time::sleep(Duration::from_millis(1)).await;
        }
        if engine
            .send(ToEngine::Input(Input::Request {
                conn,
                xid,
                op,
                body,
            }))
            .is_err()
        {
            return End::EngineGone;
        }
    }
}

/// Writes what the engine queues, batching frames already queued into one write.
/// Hands back one outstanding-request token per reply (every frame but notifications),
/// subtracts written bytes from the queue's count, and stops at once when aborted, even
/// in the middle of a write the client is not reading.
async fn write_loop(mut stream: TcpStream, inbox: Inbox, answered: flume::Receiver<()>) {
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let next_frame = pin!(inbox.frames.recv_async());
        let first = match select(next_frame, pin!(inbox.abort.recv_async())).await {
            Either::Left((Ok(m), _)) => m,
            Either::Left((Err(_), _)) | Either::Right(_) => break,
        };
        let mut close = false;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                ToConn::Frame(f) => {
                    // A reply header starts with its xid; notifications carry -1.
                    if f.get(4..8) != Some(&NOTIFICATION_XID.to_be_bytes()[..]) {
                        let _ = answered.try_recv();
                    }
                    out.extend_from_slice(&f);
                }
                ToConn::Close => {
                    close = true;
                    break;
                }
            }
            next = inbox.frames.try_recv().ok();
        }
        if !out.is_empty() {
            let n = out.len();
            let write = pin!(stream.write_all(std::mem::take(&mut out)));
            match select(write, pin!(inbox.abort.recv_async())).await {
                Either::Left((BufResult(res, buf), _)) => {
                    out = buf;
                    out.clear();
                    inbox.queued.fetch_sub(n, Ordering::AcqRel);
                    if res.is_err() {
                        close = true;
                    }
                }
                Either::Right(_) => close = true,
            }
        }
        if close {
            break;
        }
    }
    // Wake the reader too: shutting down both directions ends its pending read.
    let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Both);
}
