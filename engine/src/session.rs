//! Sessions: ids, passwords, negotiated timeouts and expiry deadlines. Expiry is decided
//! here from the time the caller feeds in (time is an input), never from a clock.

use std::collections::HashMap;

use crate::watch::ConnId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: i64,
    pub timeout_ms: i32,
    pub password: Vec<u8>,
    /// When the session expires unless touched; refreshed by every packet from its client.
    pub expires_at: i64,
    /// The connection currently attached, if any.
    pub conn: Option<ConnId>,
    /// Set once a close or expiry has been decided, so it is not decided twice.
    pub closing: bool,
}

#[derive(Debug, Default)]
pub struct Sessions {
    map: HashMap<i64, Session>,
    next_id: i64,
}

impl Sessions {
    /// Seeds the id counter as ZooKeeper does: `((now << 24) >>> 8) | (serverId << 56)`,
    /// so ids from different servers and different starts do not collide.
    pub fn new(server_id: i64, now_ms: i64) -> Sessions {
        let base = (((now_ms as u64) << 24) >> 8) as i64;
        Sessions {
            map: HashMap::new(),
            next_id: base | (server_id << 56),
        }
    }

    pub fn allocate_id(&mut self) -> i64 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id != 0 && !self.map.contains_key(&self.next_id) {
                return self.next_id;
            }
        }
    }

    pub fn insert(&mut self, s: Session) {
        self.map.insert(s.id, s);
    }

    pub fn remove(&mut self, id: i64) -> Option<Session> {
        self.map.remove(&id)
    }

    pub fn get(&self, id: i64) -> Option<&Session> {
        self.map.get(&id)
    }

    pub fn get_mut(&mut self, id: i64) -> Option<&mut Session> {
        self.map.get_mut(&id)
    }

    pub fn touch(&mut self, id: i64, now_ms: i64) {
        if let Some(s) = self.map.get_mut(&id) {
            s.expires_at = now_ms + s.timeout_ms as i64;
        }
    }

    /// Sessions past their deadline that are not already closing.
    pub fn expired(&self, now_ms: i64) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .map
            .values()
            .filter(|s| !s.closing && s.expires_at <= now_ms)
            .map(|s| s.id)
            .collect();
        v.sort_unstable();
        v
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.map.values()
    }

    /// Restarts every deadline from `now` (after recovery the server's downtime must not
    /// count against clients).
    pub fn reset_deadlines(&mut self, now_ms: i64) {
        for s in self.map.values_mut() {
            s.expires_at = now_ms + s.timeout_ms as i64;
        }
    }
}

/// 16 password bytes derived from the session id and the server's secret (splitmix64).
pub fn password(session_id: i64, secret: u64) -> Vec<u8> {
    let mut x = (session_id as u64) ^ secret;
    let mut out = Vec::with_capacity(16);
    for _ in 0..2 {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_expiry_is_by_deadline() {
        let mut s = Sessions::new(1, 1_700_000_000_000);
        let a = s.allocate_id();
        let b = s.allocate_id();
        assert_ne!(a, b);
        assert_eq!(a >> 56, 1);
        s.insert(Session {
            id: a,
            timeout_ms: 100,
            password: password(a, 9),
            expires_at: 100,
            conn: None,
            closing: false,
        });
        assert!(s.expired(99).is_empty());
        assert_eq!(s.expired(100), vec![a]);
        s.touch(a, 100);
        assert!(s.expired(150).is_empty());
        assert_ne!(password(a, 9), password(b, 9));
    }
}
