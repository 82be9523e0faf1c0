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
