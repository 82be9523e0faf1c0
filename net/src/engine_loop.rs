//! The engine thread: the single owner of the `Engine`. It batches whatever the cores
//! and the log have sent since its last turn, feeds it to the engine with the current
//! time, and routes the outputs: frames to connections, log frames to group commit, and
//! a consistent snapshot to the snapshot thread every `snapCount` transactions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_engine::watch::ConnId;
use keel_engine::{Engine, Input, Output};

use crate::fourlw::{self, ServerInfo};
use crate::msg::{self, Outbox, ToEngine, Turn};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub use crate::storage::LogSink;

pub struct EngineLoop<L: LogSink> {
    pub engine: Engine,
    pub rx: flume::Receiver<ToEngine>,
    pub log: L,
    pub info: Arc<ServerInfo>,
    pub snap_count: i64,
    pub snap_tx: Option<crate::storage::SnapshotTx>,
    /// Highest zxid the log reported durable (shared with the snapshot thread).
    pub durable: Arc<AtomicI64>,
    /// Most inputs taken in one turn (`KEEL_MAX_BATCH_TXNS`): bounds how long replies
    /// already durable wait behind a burst of new requests.
    pub max_batch: usize,
    /// Request bytes waiting for this loop: given back as each request is handled.
    pub in_flight: Arc<crate::msg::InFlight>,
}

impl<L: LogSink> EngineLoop<L> {
    /// Runs until `Shutdown`, then hands the log sink back so the caller can flush it.
    pub fn run_and_return_sink(self) -> L {
        let mut this = self;
        this.run_inner();
        this.log
    }

    fn run_inner(&mut self) {
        let mut routes: HashMap<ConnId, Outbox> = HashMap::new();
        let mut outputs = Vec::new();
        let mut snaps = crate::storage::SnapSchedule::new(self.snap_count, self.engine.last_zxid());
        let tick =
            Duration::from_millis(((self.engine.config().tick_ms as u64) / 10).clamp(5, 100));
        loop {
            let Some(turn) = Turn::wait(&self.rx, tick, self.max_batch) else {
                break;
            };
            self.engine.step(Input::Tick { now_ms: now_ms() });
            let mut stop = false;
            let mut turn = turn;
            while let Some(m) = turn.next() {
                match m {
                    ToEngine::Register { conn, tx } => {
                        routes.insert(conn, tx);
                    }
                    // Durability comes from group commit as `ToEngine::Durable`, as in
                    // an ensemble (one message shape), and time from this loop.
                    ToEngine::Input(Input::Durable { .. } | Input::Tick { .. }) => {}
                    ToEngine::Durable { zxid, .. } => {
                        self.durable.store(zxid, Ordering::Release);
                        self.engine.step(Input::Durable { zxid });
                    }
                    ToEngine::Input(input) => {
                        if let Input::Disconnected { conn, .. } = &input {
                            routes.remove(conn);
                        }
                        let handled = match &input {
                            Input::Request { body, .. } => Some(body.len()),
                            _ => None,
                        };
                        self.engine.step(input);
                        if let Some(n) = handled {
                            self.in_flight.give_back(n);
                        }
                        if self.engine.ready_bytes() >= msg::TURN_OUTPUT_BYTES {
                            turn.end();
                        }
                    }
                    ToEngine::FourLetter { cmd, tx, peer, .. } => {
                        let text = fourlw::answer(&cmd, &mut self.engine, &self.info, peer);
                        let _ = tx.send(text.into_bytes());
                        tx.close();
                    }
                    ToEngine::PurgeLog { through_zxid } => self.log.purge_through(through_zxid),
                    // Ensemble traffic never reaches a standalone server.
                    ToEngine::Peer { .. } | ToEngine::PeerDown { .. } => {}
                    ToEngine::Shutdown => stop = true,
                }
            }
            self.engine.drain(&mut outputs);
            let mut cut = Vec::new();
            for o in outputs.drain(..) {
                match o {
                    Output::Send { conn, frame } => {
                        if let Some(tx) = routes.get(&conn) {
                            if !msg::deliver(conn, tx, frame) {
                                routes.remove(&conn);
                                cut.push(conn);
                            }
                        }
                    }
                    Output::Close { conn } => {
                        if let Some(tx) = routes.remove(&conn) {
                            tx.close();
                        }
                    }
                    Output::Persist {
                        first_zxid,
                        last_zxid,
                        payload,
                    } => self.log.submit(first_zxid, last_zxid, payload),
                }
            }
            // A connection cut off for not reading is gone for the engine at once: the
            // requests it still has queued here cost nothing more.
            for conn in cut {
                self.engine.step(Input::Disconnected {
                    conn,
                    hung_up: false,
                });
            }
            if let Some(snap_tx) = &self.snap_tx {
                snaps.after_turn(snap_tx, &self.engine);
            }
            if stop {
                break;
            }
        }
    }
}
