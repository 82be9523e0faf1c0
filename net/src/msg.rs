//! Messages between the network cores, the engine thread and the log thread. Cores
//! never share state with the engine: they talk through these channels.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use keel_engine::watch::ConnId;
use keel_engine::zab::{PeerMsg, Sid};
use keel_engine::Input;

/// To the engine thread.
pub enum ToEngine {
    /// A new connection and the queue its replies go to.
    Register {
        conn: ConnId,
        tx: Outbox,
    },
    Input(Input),
    /// A four-letter word arrived instead of a handshake.
    FourLetter {
        conn: ConnId,
        peer: std::net::SocketAddr,
        cmd: String,
        tx: Outbox,
    },
    /// Delete log segments wholly at or before this zxid (no snapshot needs them).
    PurgeLog {
        through_zxid: i64,
    },
    /// Ensemble: a message from another server (from the peer transport).
    Peer {
        from: Sid,
        msg: PeerMsg,
    },
    /// Ensemble: the link to `peer` broke; messages sent to it since may be lost.
    PeerDown {
        peer: Sid,
    },
    /// Group commit made every frame through `zxid` durable. `generation` names the
    /// group-commit thread that reported it: an ensemble member replaces that thread to
    /// truncate the log, and reports of a replaced one are stale (standalone: always 0).
    Durable {
        generation: u64,
        zxid: i64,
    },
    /// Stop: flush the log and exit the loop.
    Shutdown,
}

/// To one connection's writer.
#[derive(Debug)]
pub enum ToConn {
    Frame(Vec<u8>),
    /// Write what is queued, then close the socket.
    Close,
}

/// The engine's end of one connection's reply queue. Frames go to the connection's
/// writer in order; the bytes queued and not yet written are counted, and a connection
/// whose client does not read its replies is cut off at a bound instead of growing the
/// server without one.
#[derive(Clone)]
pub struct Outbox {
    tx: flume::Sender<ToConn>,
    /// Bytes of frames queued and not yet written (the writer subtracts what it wrote).
    queued: Arc<AtomicUsize>,
    /// Most bytes queued at once; a frame that would go past it is refused, unless the
    /// queue is empty (one reply larger than the bound still goes out).
    limit: usize,
    /// Tells the writer to stop now, even in the middle of a write the client is not
    /// reading: closing the socket also ends the reader.
    abort: flume::Sender<()>,
    /// Set (before the writer is told) when this server cut the connection off, so its
    /// end is not taken for the client hanging up.
    cut_off: Arc<AtomicBool>,
}

/// The writer's end of an [`Outbox`].
pub struct Inbox {
    pub frames: flume::Receiver<ToConn>,
    pub queued: Arc<AtomicUsize>,
    pub abort: flume::Receiver<()>,
}

/// A frame refused because the connection holds too many unwritten bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    pub queued: usize,
    pub limit: usize,
}

impl Outbox {
    pub fn new(limit: usize) -> (Outbox, Inbox) {
        let (tx, frames) = flume::unbounded();
        let (abort, abort_rx) = flume::bounded(1);
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Outbox {
                tx,
                queued: queued.clone(),
                limit,
                abort,
                cut_off: Arc::new(AtomicBool::new(false)),
            },
            Inbox {
                frames,
                queued,
                abort: abort_rx,
            },
        )
    }

    /// Queues a frame for writing, or refuses it when the connection is over its bound.
    pub fn send(&self, frame: Vec<u8>) -> Result<(), Overflow> {
        let n = frame.len();
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before > 0 && before + n > self.limit {
            self.queued.fetch_sub(n, Ordering::AcqRel);
            return Err(Overflow {
                queued: before,
                limit: self.limit,
            });
        }
        if self.tx.send(ToConn::Frame(frame)).is_err() {
            // The writer is gone: nothing will subtract these bytes.
            self.queued.fetch_sub(n, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Writes what is queued, then closes.
    pub fn close(&self) {
        let _ = self.tx.send(ToConn::Close);
    }

    /// Closes now, dropping what is queued.
    pub fn abort(&self) {
        self.cut_off.store(true, Ordering::Release);
        let _ = self.abort.try_send(());
    }

    /// Whether [`Outbox::abort`] was called.
    pub fn was_cut_off(&self) -> bool {
        self.cut_off.load(Ordering::Acquire)
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

/// Request bytes forwarded by all connections and not yet handled by the engine: the
/// bound on the channel into the engine. Each connection is bounded by its outstanding
/// window; this bounds their sum, whatever the number of connections.
pub struct InFlight {
    bytes: AtomicUsize,
    limit: usize,
}

/// Default bound of [`InFlight`]: 256 MiB of requests waiting for the engine.
pub const DEFAULT_IN_FLIGHT_BYTES: usize = 256 << 20;

/// What one request costs in [`InFlight`] besides its body (so that empty ones count).
const REQUEST_OVERHEAD: usize = 64;

impl InFlight {
    pub fn new(limit: usize) -> Arc<InFlight> {
        Arc::new(InFlight {
            bytes: AtomicUsize::new(0),
            limit,
        })
    }

    /// Takes room for a request of `body` bytes, or says no (the caller waits and
    /// tries again). A request is always let in when nothing is in flight.
    pub fn try_take(&self, body: usize) -> bool {
        let n = body + REQUEST_OVERHEAD;
        let before = self.bytes.fetch_add(n, Ordering::AcqRel);
        if before > 0 && before + n > self.limit {
            self.bytes.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// The engine has handled a request of `body` bytes.
    pub fn give_back(&self, body: usize) {
        self.bytes
            .fetch_sub(body + REQUEST_OVERHEAD, Ordering::AcqRel);
    }
}

/// Client frames an engine turn builds before it ends early to write them: a burst of
/// large replies is bounded by this (plus one reply), not by the turn's request budget.
pub const TURN_OUTPUT_BYTES: usize = 8 << 20;

/// What an engine loop does with a frame for a connection: queue it, or cut off a
/// client that is not reading its replies. Returns false when the connection was cut off
/// (the caller forgets its route; the connection's end reaches the engine as usual).
pub fn deliver(conn: ConnId, tx: &Outbox, frame: Vec<u8>) -> bool {
    match tx.send(frame) {
        Ok(()) => true,
        Err(o) => {
            tracing::warn!(
                conn,
                "closing connection: its client is not reading its replies ({} bytes queued, at most {}: keel.maxQueuedReplyBytes)",
                o.queued,
                o.limit
            );
            tx.abort();
            false
        }
    }
}

/// One turn of an engine thread's loop (standalone or ensemble): the first message,
/// waited for up to a tick (a turn also runs when none came, for the timers), then
/// whatever is already queued, up to a budget, so that replies already durable do not
/// wait behind an endless burst of new requests.
pub struct Turn<'a> {
    rx: &'a flume::Receiver<ToEngine>,
    first: Option<ToEngine>,
    left: usize,
}

impl<'a> Turn<'a> {
    /// Waits up to `tick` for a message; `None` once every sender is gone.
    pub fn wait(
        rx: &'a flume::Receiver<ToEngine>,
        tick: std::time::Duration,
        budget: usize,
    ) -> Option<Turn<'a>> {
        let first = match rx.recv_timeout(tick) {
            Ok(m) => Some(m),
            Err(flume::RecvTimeoutError::Timeout) => None,
            Err(flume::RecvTimeoutError::Disconnected) => return None,
        };
        // With nothing after a tick's wait, there is nothing queued either.
        let left = if first.is_some() { budget.max(1) } else { 0 };
        Some(Turn { rx, first, left })
    }

    /// Ends the turn after the message just taken.
    pub fn end(&mut self) {
        self.left = 0;
    }
}

impl Iterator for Turn<'_> {
    type Item = ToEngine;

    fn next(&mut self) -> Option<ToEngine> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.first.take().or_else(|| self.rx.try_recv().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_turn_takes_what_is_queued_up_to_its_budget_and_can_end_early() {
        let (tx, rx) = flume::unbounded();
        // Nothing within the tick: a turn with no messages (timers still run).
        let mut t = Turn::wait(&rx, Duration::from_millis(1), 8).unwrap();
        assert!(t.next().is_none());
        for _ in 0..5 {
            tx.send(ToEngine::Shutdown).unwrap();
        }
        assert_eq!(Turn::wait(&rx, Duration::ZERO, 3).unwrap().count(), 3);
        let mut t = Turn::wait(&rx, Duration::ZERO, 3).unwrap();
        assert!(t.next().is_some());
        t.end();
        assert!(t.next().is_none());
        assert_eq!(rx.len(), 1, "the rest waits for the next turn");
        drop(tx);
        assert!(
            Turn::wait(&rx, Duration::ZERO, 3).is_some(),
            "one still queued"
        );
        assert!(
            Turn::wait(&rx, Duration::from_millis(1), 3).is_none(),
            "senders gone"
        );
    }
}
