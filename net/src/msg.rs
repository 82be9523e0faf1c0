//! Messages between the network cores, the engine thread and the log thread. Cores
//! never share state with the engine: they talk through these channels.

use keel_engine::watch::ConnId;
use keel_engine::zab::{PeerMsg, Sid};
use keel_engine::Input;

/// To the engine thread.
pub enum ToEngine {
    /// A new connection and the channel its replies go to.
    Register {
        conn: ConnId,
        tx: flume::Sender<ToConn>,
    },
    Input(Input),
    /// A four-letter word arrived instead of a handshake.
    FourLetter {
        conn: ConnId,
        peer: std::net::SocketAddr,
        cmd: String,
        tx: flume::Sender<ToConn>,
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
    /// Ensemble: group commit made every frame through `zxid` durable. `generation`
    /// names the group-commit thread that reported it: the loop replaces that thread
    /// to truncate the log, and reports of a replaced one are stale.
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
