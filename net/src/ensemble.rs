//! The engine thread of an ensemble member: the single owner of the [`Replica`]. Like
//! [`EngineLoop`](crate::engine_loop::EngineLoop), it batches whatever the network
//! cores, the peer links and the log have sent since its last turn, feeds it to the
//! replica after the current time, and carries out the outputs in the order drained:
//! client frames to connections, peer messages to the peer transport, log frames to
//! group commit; log truncation, snapshot installation and epoch writes synchronously
//! and durably before the next output.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use keel_engine::watch::ConnId;
use keel_engine::zab::{effects, Epochs, LogFrame, PeerMsg, Replica, ReplicaInput, Role, Sid};
use keel_engine::Input;
use keel_wal::{GroupCommit, Log};
use tracing::{error, info, warn};

use crate::engine_loop::now_ms;
use crate::fourlw::{self, Mode, ServerInfo};
use crate::msg::{self, Outbox, ToEngine, Turn};
use crate::peer::PeerNet;
use crate::storage;

pub use crate::storage::{spawn_group, EXIT_STORAGE_FAILED};

fn fatal(what: std::fmt::Arguments) -> ! {
    error!("FATAL: {what}; exiting (an ensemble member whose disk failed must not go on)");
    std::process::exit(EXIT_STORAGE_FAILED)
}

/// Proposal sizes for `srvr` / `mntr` (ZooKeeper's `BufferStats`).
#[derive(Debug, Clone, Copy)]
struct SizeStats {
    last: i64,
    min: i64,
    max: i64,
}

impl Default for SizeStats {
    fn default() -> Self {
        SizeStats {
            last: -1,
            min: -1,
            max: -1,
        }
    }
}

impl SizeStats {
    fn add(&mut self, n: i64) {
        self.last = n;
        self.min = if self.min < 0 { n } else { self.min.min(n) };
        self.max = self.max.max(n);
    }
}

pub struct ReplicaLoop {
    pub replica: Replica,
    pub rx: flume::Receiver<ToEngine>,
    /// The loop's own channel, for the group-commit threads it (re)starts.
    pub tx: flume::Sender<ToEngine>,
    pub group: Option<GroupCommit>,
    /// Generation of `group`; durability reports of older ones are ignored.
    pub generation: u64,
    pub peers: Arc<PeerNet>,
    pub info: Arc<ServerInfo>,
    pub data_dir: PathBuf,
    pub snap_dir: PathBuf,
    pub snap_count: i64,
    pub snap_tx: Option<crate::storage::SnapshotTx>,
    /// Highest zxid the log reported durable (shared with the snapshot thread).
    pub durable: Arc<AtomicI64>,
    pub max_batch: usize,
    /// Request bytes waiting for this loop: given back as each request is handled.
    pub in_flight: Arc<crate::msg::InFlight>,
    /// Epochs as last persisted.
    pub epochs: Epochs,
    /// This server is an observer.
    pub observer: bool,
    /// Role and epoch shared with whoever reports them (4lw, `keel cluster`, tests).
    pub role: Role,
    pub epoch: i64,
}

impl ReplicaLoop {
    /// Runs until `Shutdown`, then hands group commit back so the caller can flush it.
    pub fn run(mut self) -> Option<GroupCommit> {
        self.run_inner();
        self.group.take()
    }

    fn mode(&self, proposals: &SizeStats) -> Mode {
        Mode {
            name: self.role.zk_name(self.observer),
            serving: self.role.is_serving(),
            proposal_sizes: (self.role == Role::Leading).then_some((
                proposals.last,
                proposals.min,
                proposals.max,
            )),
            replica: Some((
                self.epoch,
                self.replica.last_logged_zxid(),
                self.replica.committed_zxid(),
                self.durable.load(Ordering::Acquire),
            )),
            learners: if self.role == Role::Leading {
                self.replica.learner_counts()
            } else {
                None
            },
        }
    }

    fn run_inner(&mut self) {
        let mut routes: HashMap<ConnId, Outbox> = HashMap::new();
        let mut outputs = Vec::new();
        let mut snaps =
            storage::SnapSchedule::new(self.snap_count, self.replica.engine().last_zxid());
        let mut proposals = SizeStats::default();
        let tick_ms = self.replica.config().tick_ms.max(1) as u64;
        let tick = Duration::from_millis((tick_ms / 10).clamp(5, 100));
        info!(
            "ensemble member {} starting as {}",
            self.replica.config().my_id,
            if self.observer {
                "an observer"
            } else {
                "a participant"
            }
        );
        loop {
            let Some(mut turn) = Turn::wait(&self.rx, tick, self.max_batch) else {
                break;
            };
            self.replica.step(ReplicaInput::Tick { now_ms: now_ms() });
            let mut stop = false;
            while let Some(m) = turn.next() {
                match m {
                    ToEngine::Register { conn, tx } => {
                        routes.insert(conn, tx);
                    }
                    ToEngine::Input(input) => match input {
                        // Durability comes tagged with its generation (ToEngine::Durable)
                        // and time from this loop; neither arrives this way.
                        Input::Durable { .. } | Input::Tick { .. } => {}
                        input => {
                            if let Input::Disconnected { conn, .. } = &input {
                                routes.remove(conn);
                            }
                            let handled = match &input {
                                Input::Request { body, .. } => Some(body.len()),
                                _ => None,
                            };
                            self.replica.step(ReplicaInput::Client(input));
                            if let Some(n) = handled {
                                self.in_flight.give_back(n);
                            }
                            if self.replica.engine().ready_bytes() >= msg::TURN_OUTPUT_BYTES {
                                turn.end();
                            }
                        }
                    },
                    ToEngine::Durable { generation, zxid } => {
                        if generation == self.generation {
                            self.durable.fetch_max(zxid, Ordering::AcqRel);
                            self.replica.step(ReplicaInput::Durable { zxid });
                        }
                    }
                    ToEngine::Peer { from, msg } => {
                        // A Sync may truncate the log or replace it with a snapshot:
                        // end the turn here, so those are carried out (and the log's
                        // generation moves on) before any later durability report is
                        // fed; a report of the old log must not count for the new one.
                        if matches!(msg, PeerMsg::Sync { .. }) {
                            turn.end();
                        }
                        self.replica.step(ReplicaInput::Peer { from, msg });
                    }
                    ToEngine::PeerDown { peer } => {
                        self.replica.step(ReplicaInput::PeerDown { peer });
                    }
                    ToEngine::FourLetter { cmd, tx, peer, .. } => {
                        let mode = self.mode(&proposals);
                        let text = fourlw::answer_in(
                            &cmd,
                            self.replica.engine_mut(),
                            &self.info,
                            peer,
                            &mode,
                        );
                        let _ = tx.send(text.into_bytes());
                        tx.close();
                    }
                    ToEngine::PurgeLog { through_zxid } => {
                        if let Some(g) = &self.group {
                            match g.purge_through(through_zxid as u64) {
                                Ok(0) => {}
                                Ok(n) => info!(
                                    "purged {n} log segment(s) through zxid {through_zxid:#x}"
                                ),
                                Err(e) => warn!(
                                    "purging log segments through {through_zxid:#x} failed: {e}"
                                ),
                            }
                        }
                    }
                    ToEngine::Shutdown => stop = true,
                }
            }
            self.replica.drain(&mut outputs);
            let mut cut = Vec::new();
            let mut fx = TurnFx {
                lp: self,
                routes: &mut routes,
                cut: &mut cut,
                proposals: &mut proposals,
                snaps: &mut snaps,
            };
            // A failed append is fail-stop inside `append` (the group-commit thread
            // exits the process), so the flow always continues here.
            let _ = effects::execute(outputs.drain(..), &mut fx);
            self.peers.flush();
            // A connection cut off for not reading is gone for the engine at once.
            for conn in cut {
                self.replica.step(ReplicaInput::Client(Input::Disconnected {
                    conn,
                    hung_up: false,
                }));
            }
            if let Some(snap_tx) = &self.snap_tx {
                snaps.after_turn(snap_tx, self.replica.engine());
            }
            if stop {
                break;
            }
        }
    }

    fn role_changed(&mut self, role: Role, epoch: i64, proposals: &mut SizeStats) {
        if role.is_serving() && (!self.role.is_serving() || epoch != self.epoch) {
            info!(
                "serving clients as {} (epoch {epoch}); applied through {:#x}",
                role.zk_name(self.observer),
                self.replica.applied_zxid()
            );
        } else if !role.is_serving() && self.role.is_serving() {
            info!("not serving clients: {role:?}");
        }
        if role == Role::Leading && self.role != Role::Leading {
            *proposals = SizeStats::default();
        }
        self.role = role;
        self.epoch = epoch;
    }

    /// A reconfiguration was logged (`committed` false) or is now in force: links to
    /// its new servers, and, once committed, the copy in the data directory that a
    /// restart starts from (written before anything else happens: fail-stop if not).
    fn membership_changed(&mut self, text: &str, committed: bool) {
        let parsed = match crate::membership::parse(text) {
            Ok(p) => p,
            // The engine checked every spec with the same parser.
            Err(e) => fatal(format_args!(
                "a reconfiguration's membership does not parse: {e}"
            )),
        };
        if committed {
            if let Err(e) = crate::membership::save(&self.data_dir, text) {
                fatal(format_args!(
                    "cannot save the new membership to {}: {e}",
                    crate::membership::file(&self.data_dir).display()
                ));
            }
            self.observer = self.replica.config().is_observer();
            info!(
                "membership 0x{:x} in force and saved",
                parsed.membership.version
            );
        }
        let me = self.replica.config().my_id;
        self.peers.set_peers(
            parsed
                .members
                .into_iter()
                .filter(|m| m.id != me)
                .map(|m| crate::peer::PeerAddr {
                    id: m.id,
                    addr: m.peer_addr,
                })
                .collect(),
        );
    }

    /// Stops group commit (everything submitted is written first), hands the log to
    /// `f`, and starts a new group-commit thread of the next generation.
    /// `floor`: a zxid known durable by other means (an installed snapshot).
    fn with_log(&mut self, floor: i64, f: impl FnOnce(&mut Log)) {
        let Some(group) = self.group.take() else {
            fatal(format_args!("no log"));
        };
        let mut log = group.shutdown();
        f(&mut log);
        let durable = (log.durable_zxid() as i64).max(floor);
        self.generation += 1;
        // Reports of the old thread still queued are stale: what they cover may have
        // been cut. Everything the log kept is durable; say so under the new generation.
        self.durable.store(durable, Ordering::Release);
        let _ = self.tx.send(ToEngine::Durable {
            generation: self.generation,
            zxid: durable,
        });
        self.group = Some(spawn_group(log, self.generation, self.tx.clone()));
    }

    fn truncate_log(&mut self, after: i64) {
        info!("truncating the log after zxid {after:#x}, as the leader asks");
        self.with_log(0, |log| {
            if let Err(e) = log.truncate_after(after.max(0) as u64) {
                fatal(format_args!(
                    "truncating the log after {after:#x} failed: {e}"
                ));
            }
        });
    }

    /// The leader's snapshot replaces this server's state. Order, so that a crash at any
    /// point leaves either the old state or the new one, never less than both:
    /// 1. remove snapshots newer than the new one (the old log still holds what they
    ///    held, so the old state is intact);
    /// 2. write the new snapshot, durably;
    /// 3. only then empty the log. A crash between 2 and 3 restarts from the new
    ///    snapshot, followed by whatever of the old log lies beyond it (the same
    ///    leader's later proposals, if any).
    ///
    /// Emptying the log first, as this once did, left a moment where a crash restarted
    /// from an older snapshot with no log: transactions this server had acknowledged
    /// were gone.
    fn install_snapshot(&mut self, data: keel_engine::snapshot::SnapshotData) {
        let zxid = data.last_zxid;
        info!("installing the leader's snapshot at zxid {zxid:#x}");
        let store = storage::snapshot_store(self.snap_dir.clone());
        if let Err(e) = store.remove_after(zxid) {
            fatal(format_args!(
                "removing snapshots newer than {zxid:#x} from {} failed: {e}",
                self.snap_dir.display()
            ));
        }
        match storage::write_snapshot(&store, &data) {
            Ok(bytes) => info!("snapshot {zxid:#x} installed ({bytes} bytes)"),
            Err(e) => fatal(format_args!(
                "writing the leader's snapshot {zxid:#x} failed: {e}"
            )),
        }
        // Nothing but the snapshot is needed now: everything through `zxid` is durable.
        self.with_log(zxid as i64, |log| {
            if let Err(e) = log.truncate_after(0) {
                fatal(format_args!("emptying the log for a snapshot failed: {e}"));
            }
        });
    }
}

/// One turn's outputs carried out: client frames to their connections, peer messages
/// to the transport, log frames to group commit, the rest synchronously and durably.
struct TurnFx<'a> {
    lp: &'a mut ReplicaLoop,
    routes: &'a mut HashMap<ConnId, Outbox>,
    /// Connections cut off for not reading their replies (the engine is told after).
    cut: &'a mut Vec<ConnId>,
    proposals: &'a mut SizeStats,
    snaps: &'a mut storage::SnapSchedule,
}

impl effects::Effects for TurnFx<'_> {
    fn send_to_client(&mut self, conn: u64, frame: Vec<u8>) {
        if let Some(tx) = self.routes.get(&conn) {
            if !msg::deliver(conn, tx, frame) {
                self.routes.remove(&conn);
                self.cut.push(conn);
            }
        }
    }

    fn close_client(&mut self, conn: u64) {
        if let Some(tx) = self.routes.remove(&conn) {
            tx.close();
        }
    }

    fn send_to_peer(&mut self, to: Sid, msg: PeerMsg) {
        // Sent after the turn's outputs by `PeerNet::flush`, one write per peer.
        self.lp.peers.queue(to, &msg);
    }

    fn send_snapshot(&mut self, to: Sid, snapshot: effects::SnapshotSend) {
        // The archive (O(tree)) is made on that follower's link thread, not here:
        // this thread serves every client meanwhile.
        let then = snapshot.then.clone();
        self.lp.peers.send_built(
            to,
            "sync (snapshot)",
            Box::new(move || {
                let (sync, _) = snapshot.into_message();
                sync.map(|m| m.encode()).map_err(|e| e.to_string())
            }),
        );
        self.lp.peers.send(to, &then);
    }

    fn append(&mut self, frame: LogFrame) -> ControlFlow<()> {
        if self.lp.role == Role::Leading {
            self.proposals.add(frame.payload.len() as i64);
        }
        let payload = Arc::try_unwrap(frame.payload).unwrap_or_else(|a| (*a).clone());
        match &self.lp.group {
            Some(g) => g.submit(frame.first as u64, frame.last as u64, payload),
            None => fatal(format_args!("no log to append to")),
        }
        ControlFlow::Continue(())
    }

    fn truncate_log(&mut self, after: i64) {
        self.lp.truncate_log(after);
    }

    fn install_snapshot(&mut self, data: keel_engine::snapshot::SnapshotData) {
        let zxid = data.last_zxid;
        self.lp.install_snapshot(data);
        self.snaps.installed(zxid as i64);
    }

    fn save_epochs(&mut self, epochs: Epochs) {
        if let Err(err) = storage::write_epochs(&self.lp.data_dir, self.lp.epochs, epochs) {
            fatal(format_args!(
                "cannot write the epoch files in {}: {err}",
                self.lp.data_dir.display()
            ));
        }
        self.lp.epochs = epochs;
    }

    fn membership(&mut self, text: String, committed: bool) {
        self.lp.membership_changed(&text, committed);
    }

    fn role(&mut self, role: Role, epoch: i64) {
        self.lp.role_changed(role, epoch, self.proposals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposal_sizes_keep_last_min_and_max() {
        let mut s = SizeStats::default();
        assert_eq!((s.last, s.min, s.max), (-1, -1, -1));
        s.add(10);
        s.add(4);
        s.add(7);
        assert_eq!((s.last, s.min, s.max), (7, 4, 10));
    }
}
