//! What a member hands its leader: a client's write, a session's creation or close, or
//! a `sync`, with the connection's identities for the leader's ACL checks. The member's
//! front-end (`server/replicated`) builds these; the leader (`zab::leader`) turns them
//! into transactions; `zab::msg` carries them on the wire. Owned by neither side, so
//! neither depends on the other for it.

use crate::jute::{Reader, Writer};
use crate::proto::Id;

/// A write or session request a server hands to the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub session: i64,
    pub cxid: i32,
    pub opcode: i32,
    /// The request body as the client sent it (undecoded), or for `createSession`
    /// `i32 timeout` + `buffer password` (see [`Forward::create_session`]).
    pub body: Vec<u8>,
    /// The connection's authenticated ids (`scheme`, `id`), for the leader's ACL checks.
    pub auth: Vec<(String, String)>,
}

/// Opcode of a forwarded session creation (ZooKeeper's `createSession`).
pub const FWD_CREATE_SESSION: i32 = -10;
/// Opcode of a forwarded session close (ZooKeeper's `closeSession`).
pub const FWD_CLOSE_SESSION: i32 = -11;
/// Opcode of a forwarded `sync`: answered by `SyncDone` once the leader has committed
/// everything it had proposed when it got it.
pub const FWD_SYNC: i32 = 9;

impl Forward {
    /// Asks the leader to log a createSession (a new session, or a local one upgraded).
    pub fn create_session(session: i64, timeout_ms: i32, password: &[u8]) -> Forward {
        let mut body = Writer::new();
        body.i32(timeout_ms).buffer(password);
        Forward {
            session,
            cxid: 0,
            opcode: FWD_CREATE_SESSION,
            body: body.buf,
            auth: Vec::new(),
        }
    }

    /// The timeout and password of a forwarded createSession; `None` if the body (from a
    /// peer) does not hold them.
    pub fn session_to_create(&self) -> Option<(i32, Vec<u8>)> {
        let mut r = Reader::new(&self.body);
        let t = r.i32().ok()?;
        let p = r.bytes().ok()?;
        Some((t, p))
    }

    /// The identities the forwarding member authenticated the connection with.
    pub fn ids(&self) -> Vec<Id> {
        self.auth.iter().map(|(s, i)| Id::new(s, i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forwarded_create_session_reads_back_and_a_short_body_is_none() {
        let f = Forward::create_session(7, 30_000, &[1; 16]);
        assert_eq!(f.opcode, FWD_CREATE_SESSION);
        assert_eq!(f.session_to_create(), Some((30_000, vec![1; 16])));
        let short = Forward {
            body: f.body[..6].to_vec(),
            ..f
        };
        assert_eq!(short.session_to_create(), None);
    }
}
