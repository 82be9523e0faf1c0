//! Statistics of client connections and of the server, as ZooKeeper's four-letter
//! words show them (`cons`, `stat`, `srvr`, `mntr`, reset by `crst` and `srst`). Kept
//! apart from the engine's state machine: the engine tells a connection's
//! [`ConnStats`] that a request arrived, that a reply is held for the log, and that
//! a reply left (with when its request arrived), and the figures follow from those.

use std::net::SocketAddr;

/// Latency of answered requests, in ms: min, max, and the sum and count for the mean.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub min_ms: i64,
    pub max_ms: i64,
    pub total_ms: i64,
    pub count: u64,
}

impl Latency {
    pub fn record(&mut self, ms: i64) {
        if self.count == 0 || ms < self.min_ms {
            self.min_ms = ms;
        }
        self.max_ms = self.max_ms.max(ms);
        self.total_ms += ms;
        self.count += 1;
    }

    /// The mean, as `stat` and `mntr` print it (a fraction).
    pub fn avg_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ms as f64 / self.count as f64
        }
    }

    /// The mean in whole ms, as `cons` prints it.
    pub fn avg_whole_ms(&self) -> i64 {
        if self.count == 0 {
            0
        } else {
            self.total_ms / self.count as i64
        }
    }
}

/// Per-connection statistics, as ZooKeeper's `cons` shows them.
#[derive(Debug, Clone)]
pub struct ConnStats {
    pub peer: SocketAddr,
    pub session: i64,
    pub timeout_ms: i32,
    pub established_ms: i64,
    pub received: u64,
    pub sent: u64,
    /// Replies not yet released (waiting for the log).
    pub queued: u64,
    pub last_op: &'static str,
    pub last_cxid: i32,
    pub last_zxid: i64,
    pub last_response_ms: i64,
    pub last_latency_ms: i64,
    pub latency: Latency,
}

impl ConnStats {
    /// A connection that just opened `session` (its connect request counts as received).
    pub fn opened(peer: SocketAddr, now_ms: i64, session: i64, timeout_ms: i32) -> ConnStats {
        ConnStats {
            session,
            timeout_ms,
            received: 1,
            last_op: "SESS",
            ..ConnStats::blank(peer, now_ms)
        }
    }

    fn blank(peer: SocketAddr, now_ms: i64) -> ConnStats {
        ConnStats {
            peer,
            session: 0,
            timeout_ms: 0,
            established_ms: now_ms,
            received: 0,
            sent: 0,
            queued: 0,
            last_op: "NA",
            last_cxid: -1,
            last_zxid: -1,
            last_response_ms: 0,
            last_latency_ms: 0,
            latency: Latency::default(),
        }
    }

    /// `crst`: every counter back to zero; who and since when stay.
    pub fn reset(&mut self) {
        *self = ConnStats {
            session: self.session,
            timeout_ms: self.timeout_ms,
            established_ms: self.established_ms,
            ..ConnStats::blank(self.peer, 0)
        };
    }

    /// A request arrived: `op` its name, `xid` its xid (special negative ones are not
    /// a client's cxid), `last_zxid` the server's last zxid then.
    pub fn requested(&mut self, op: &'static str, xid: i32, last_zxid: i64) {
        self.received += 1;
        self.last_op = op;
        if xid >= 0 {
            self.last_cxid = xid;
        }
        self.last_zxid = last_zxid;
    }

    /// The reply to a timed request waits for the log.
    pub fn held(&mut self) {
        self.queued += 1;
    }

    /// A frame left at `now_ms`; when it answers a timed request, `started` is when
    /// that arrived, and its latency is returned.
    pub fn sent(&mut self, now_ms: i64, started: Option<i64>) -> Option<i64> {
        self.sent += 1;
        let t = started?;
        let lat = (now_ms - t).max(0);
        self.latency.record(lat);
        self.last_latency_ms = lat;
        self.last_response_ms = now_ms;
        self.queued = self.queued.saturating_sub(1);
        Some(lat)
    }
}

/// Counters for `srvr`, `stat` and `mntr`.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub requests: u64,
    pub writes: u64,
    pub reads: u64,
    pub sessions_expired: u64,
    pub latency: Latency,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_timed_from_its_request_and_counted_once() {
        let peer: SocketAddr = "127.0.0.1:5000".parse().expect("address");
        let mut s = ConnStats::opened(peer, 100, 7, 4000);
        assert_eq!((s.received, s.last_op), (1, "SESS"));
        s.requested("SETD", 3, 0x10);
        s.held();
        assert_eq!((s.received, s.queued, s.last_cxid), (2, 1, 3));
        assert_eq!(s.sent(130, Some(110)), Some(20));
        assert_eq!(s.sent(140, None), None, "a notification is not timed");
        s.requested("PING", -2, 0x10);
        assert_eq!(s.last_cxid, 3, "special xids are not a client's cxid");
        assert_eq!((s.sent, s.queued, s.last_latency_ms), (2, 0, 20));
        s.requested("GETD", 4, 0x10);
        s.sent(150, Some(145));
        assert_eq!(
            s.latency,
            Latency {
                min_ms: 5,
                max_ms: 20,
                total_ms: 25,
                count: 2
            }
        );
        assert_eq!((s.latency.avg_whole_ms(), s.latency.avg_ms()), (12, 12.5));
        s.reset();
        assert_eq!((s.session, s.received, s.latency.count), (7, 0, 0));
        assert_eq!(Latency::default().avg_ms(), 0.0);
    }
}
