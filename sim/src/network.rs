//! The simulated network between servers: per-link latency, partitions, link breaks,
//! and (outside the transport's contract, at low rates, when enabled) raw reordering,
//! duplication and silent loss.
//!
//! Within the contract (`keel_engine::zab`: "messages on a link arrive in the order
//! sent, or not at all after a `PeerDown`") a directed link is a FIFO stream with a
//! random latency per message (delivery times never go backwards on one link) and a
//! *generation*: a break bumps the generation of both directions, which drops every
//! message in flight, and both ends are told with `PeerDown`. A partition breaks every
//! link across it; while partitioned, messages are dropped. Crashing a node breaks its
//! links too.
//!
//! Outside the contract (`hostile`): a message may be delivered early (overtaking
//! earlier ones), twice, or not at all without a `PeerDown`. A replica should defend
//! itself (epochs, zxid checks, re-synchronisation); failures that only happen with
//! these are reported as such by the simulator.

use crate::rng::Rng;

#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Base one-way latency range in ms.
    pub min_latency_ms: i64,
    pub max_latency_ms: i64,
    /// Chance a message is slow (a latency spike up to `spike_ms`).
    pub p_spike: f64,
    pub spike_ms: i64,
    /// Chance a message breaks its link (it and everything in flight are lost; both
    /// ends get `PeerDown`).
    pub p_break: f64,
    /// Outside the contract: deliver without waiting for earlier messages.
    pub p_reorder: f64,
    /// Outside the contract: deliver twice.
    pub p_dup: f64,
    /// Outside the contract: lose silently.
    pub p_silent_loss: f64,
}

impl NetConfig {
    pub fn calm() -> NetConfig {
        NetConfig {
            min_latency_ms: 1,
            max_latency_ms: 4,
            p_spike: 0.0,
            spike_ms: 0,
            p_break: 0.0,
            p_reorder: 0.0,
            p_dup: 0.0,
            p_silent_loss: 0.0,
        }
    }

    pub fn hostile(&self) -> bool {
        self.p_reorder > 0.0 || self.p_dup > 0.0 || self.p_silent_loss > 0.0
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Link {
    generation: u64,
    /// Latest delivery time scheduled on this link (FIFO: never go earlier).
    last_at: i64,
    /// After a break the link stays down until both ends have been told (`PeerDown`):
    /// a message sent after the break must not reach a receiver that has not yet
    /// heard that earlier ones were lost.
    down_until: i64,
}

/// What happens to one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped: the link is partitioned (its ends were told when it broke).
    Dropped,
    /// The message broke its link: it and everything in flight on the link (both
    /// directions) are lost; deliver `PeerDown` to both ends.
    Broke,
    /// Deliver at these times (two for a duplicate), if the link's generation is still
    /// `generation` then. `hostile` marks an out-of-contract delivery (for traces).
    Deliver {
        at: Vec<i64>,
        generation: u64,
        hostile: bool,
    },
}

#[derive(Debug)]
pub struct Network {
    n: usize,
    links: Vec<Link>,
    /// Partition side of each node; two nodes can talk iff their sides are equal.
    side: Vec<u32>,
    pub cfg: NetConfig,
    /// Messages lost silently (hostile network) so far.
    pub silent_losses: u64,
}

impl Network {
    pub fn new(n: usize, cfg: NetConfig) -> Network {
        Network {
            n,
            links: vec![Link::default(); n * n],
            side: vec![0; n],
            cfg,
            silent_losses: 0,
        }
    }

    fn link(&mut self, from: usize, to: usize) -> &mut Link {
        &mut self.links[from * self.n + to]
    }

    pub fn generation(&self, from: usize, to: usize) -> u64 {
        self.links[from * self.n + to].generation
    }

    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.side[a] == self.side[b]
    }

    pub fn is_partitioned(&self) -> bool {
        self.side.iter().any(|s| *s != self.side[0])
    }

    /// Breaks the link between `a` and `b` (both directions): in-flight messages are
    /// lost. The caller tells both ends with `PeerDown`; until it has (`until`),
    /// messages on the link are dropped.
    pub fn break_link(&mut self, a: usize, b: usize) {
        self.link(a, b).generation += 1;
        self.link(b, a).generation += 1;
    }

    /// The link between `a` and `b` carries nothing before `until` (both ends are told
    /// of the break by then).
    pub fn down_until(&mut self, a: usize, b: usize, until: i64) {
        let l = self.link(a, b);
        l.down_until = l.down_until.max(until);
        let l = self.link(b, a);
        l.down_until = l.down_until.max(until);
    }

    /// Breaks every link of `a` (a crash). Returns the peers to tell.
    pub fn break_node(&mut self, a: usize) -> Vec<usize> {
        let mut peers = Vec::new();
        for b in 0..self.n {
            if b != a {
                self.break_link(a, b);
                peers.push(b);
            }
        }
        peers
    }

    /// New partition sides; returns the pairs whose link broke (their ends must get
    /// `PeerDown`).
    pub fn partition(&mut self, side: Vec<u32>) -> Vec<(usize, usize)> {
        assert_eq!(side.len(), self.n);
        let mut broken = Vec::new();
        for a in 0..self.n {
            for b in a + 1..self.n {
                let was = self.side[a] == self.side[b];
                let now = side[a] == side[b];
                if was && !now {
                    broken.push((a, b));
                }
            }
        }
        self.side = side;
        for &(a, b) in &broken {
            self.break_link(a, b);
        }
        broken
    }

    /// When everything sent so far has arrived (the latest delivery time scheduled on
    /// any link; a latency spike holds its link up to `spike_ms`).
    pub fn drained_at(&self) -> i64 {
        self.links.iter().map(|l| l.last_at).max().unwrap_or(0)
    }

    pub fn heal(&mut self) {
        self.side = vec![0; self.n];
    }

    pub fn sides(&self) -> &[u32] {
        &self.side
    }

    /// Decides the fate of one message sent now from `from` to `to`. `may_misbehave`:
    /// whether this message may be reordered or duplicated when hostile (the
    /// simulator keeps forwarded client requests in order and single: see
    /// docs/simulator.md).
    pub fn route(
        &mut self,
        from: usize,
        to: usize,
        now: i64,
        rng: &mut Rng,
        may_misbehave: bool,
    ) -> Fate {
        if !self.connected(from, to) || now < self.link(from, to).down_until {
            return Fate::Dropped;
        }
        let cfg = self.cfg.clone();
        if rng.chance(cfg.p_break) {
            self.break_link(from, to);
            return Fate::Broke;
        }
        if rng.chance(cfg.p_silent_loss) {
            self.silent_losses += 1;
            return Fate::Dropped;
        }
        let mut lat = rng.range(cfg.min_latency_ms, cfg.max_latency_ms + 1);
        if cfg.spike_ms > 0 && rng.chance(cfg.p_spike) {
            lat += rng.range(0, cfg.spike_ms + 1);
        }
        let generation = self.generation(from, to);
        let link = self.link(from, to);
        let mut hostile = false;
        let at = if rng.chance(cfg.p_reorder) && may_misbehave {
            hostile = true;
            // Overtakes whatever is queued on the link.
            now + rng.range(0, cfg.min_latency_ms.max(1) + 1)
        } else {
            let at = (now + lat).max(link.last_at);
            link.last_at = at;
            at
        };
        let mut ats = vec![at];
        if rng.chance(cfg.p_dup) && may_misbehave {
            hostile = true;
            let again = at + rng.range(0, 20);
            ats.push(again);
        }
        Fate::Deliver {
            at: ats,
            generation,
            hostile,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_fifo_within_the_contract() {
        let mut cfg = NetConfig::calm();
        cfg.max_latency_ms = 50;
        cfg.p_spike = 0.3;
        cfg.spike_ms = 500;
        let mut net = Network::new(3, cfg);
        let mut rng = Rng::new(3);
        let mut last = 0;
        for t in 0..1000 {
            match net.route(0, 1, t, &mut rng, true) {
                Fate::Deliver { at, hostile, .. } => {
                    assert!(!hostile);
                    assert!(at[0] >= last && at[0] > t);
                    last = at[0];
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn partitions_break_links_and_drop() {
        let mut net = Network::new(3, NetConfig::calm());
        let mut rng = Rng::new(1);
        let g = net.generation(0, 2);
        let broken = net.partition(vec![0, 0, 1]);
        assert_eq!(broken, vec![(0, 2), (1, 2)]);
        assert_eq!(net.generation(0, 2), g + 1);
        assert_eq!(net.generation(2, 0), g + 1);
        assert_eq!(net.route(0, 2, 0, &mut rng, true), Fate::Dropped);
        assert!(matches!(
            net.route(0, 1, 0, &mut rng, true),
            Fate::Deliver { .. }
        ));
        net.heal();
        assert!(matches!(
            net.route(0, 2, 0, &mut rng, true),
            Fate::Deliver { .. }
        ));
        assert!(!net.is_partitioned());
    }
}
