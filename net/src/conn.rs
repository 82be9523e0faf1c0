//! One client connection on a network core: reads length-prefixed frames, recognises
//! four-letter words, enforces jute.maxbuffer and the handshake deadline, forwards
//! requests to the engine and writes what the engine sends back, batching queued frames
//! into one write.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use compio::buf::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use keel_engine::proto::ConnectRequest;
use keel_engine::watch::ConnId;
use keel_engine::Input;
use tracing::{debug, info, warn};

use crate::msg::{ToConn, ToEngine};

/// Settings every connection needs.
pub struct ConnSettings {
    pub max_buffer: usize,
    pub handshake_timeout: Duration,
    pub read_buffer: usize,
}

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
    let (tx, rx) = flume::unbounded::<ToConn>();
    let writer = compio::runtime::spawn(write_loop(stream.clone(), rx));
    let mut reader = FrameReader {
        start: 0,
        stream: stream.clone(),
        acc: Vec::new(),
        scratch: Vec::with_capacity(settings.read_buffer),
    };
    let end = read_loop(&mut reader, peer, conn, &engine, &tx, &settings).await;
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
        End::EngineGone => {}
    }
    let _ = engine.send(ToEngine::Input(Input::Disconnected { conn }));
    let _ = tx.send(ToConn::Close);
    let _ = writer.await;
}

async fn read_loop(
    r: &mut FrameReader,
    peer: SocketAddr,
    conn: ConnId,
    engine: &flume::Sender<ToEngine>,
    tx: &flume::Sender<ToConn>,
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
        let body = r.body(prefix, settings.max_buffer).await?.to_vec();
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

async fn write_loop(mut stream: TcpStream, rx: flume::Receiver<ToConn>) {
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let Ok(first) = rx.recv_async().await else {
            break;
        };
        let mut close = false;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                ToConn::Frame(f) => out.extend_from_slice(&f),
                ToConn::Close => {
                    close = true;
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        if !out.is_empty() {
            let BufResult(res, buf) = stream.write_all(std::mem::take(&mut out)).await;
            out = buf;
            out.clear();
            if res.is_err() {
                close = true;
            }
        }
        if close {
            break;
        }
    }
    // Wake the reader too: shutting down both directions ends its pending read.
    let _ = socket2::SockRef::from(&stream).shutdown(std::net::Shutdown::Both);
}
