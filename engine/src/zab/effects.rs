//! Carrying out a replica's outputs: the one place that turns [`ReplicaOutput`]s into
//! calls on a driver's [`Effects`], in order, so that production (`net`), the
//! simulator and the engine tests cannot each read the contract differently.
//!
//! The driver procedure, as every driver runs it:
//!
//! 1. feed one [`ReplicaInput`](super::ReplicaInput) with [`Replica::step`](super::Replica::step);
//! 2. take what is ready with [`Replica::drain`](super::Replica::drain);
//! 3. hand it to [`execute`] with the driver's [`Effects`]: each output becomes one
//!    call, in the order drained; the synchronous ones (`truncate_log`,
//!    `install_snapshot`, `save_epochs`, a committed `membership`) are durable when
//!    the call returns, `append` only starts a write;
//! 4. when an appended write is on disk, feed `Durable { zxid }` (back to 1).
//!
//! An `append` that fails stops the server (fail-stop): the driver returns
//! [`ControlFlow::Break`] and `execute` carries out nothing after it.
//!
//! ```
//! use std::ops::ControlFlow;
//! use keel_engine::zab::{effects, Epochs, LogFrame, PeerMsg, Role, Sid};
//! use keel_engine::zab::{Replica, ReplicaConfig, ReplicaInput};
//! use keel_engine::{Engine, EngineConfig};
//!
//! /// A one-voter ensemble whose disk is durable at once.
//! #[derive(Default)]
//! struct Disk { frames: Vec<LogFrame>, epochs: Epochs, durable: Option<i64>, role: Option<Role> }
//!
//! impl effects::Effects for Disk {
//!     fn send_to_client(&mut self, _conn: u64, _frame: Vec<u8>) {}
//!     fn close_client(&mut self, _conn: u64) {}
//!     fn send_to_peer(&mut self, _to: Sid, _msg: PeerMsg) {}
//!     fn send_snapshot(&mut self, _to: Sid, _snapshot: effects::SnapshotSend) {}
//!     fn append(&mut self, frame: LogFrame) -> ControlFlow<()> {
//!         self.durable = Some(frame.last);
//!         self.frames.push(frame);
//!         ControlFlow::Continue(())
//!     }
//!     fn truncate_log(&mut self, after: i64) { self.frames.retain(|f| f.first <= after) }
//!     fn install_snapshot(&mut self, _data: keel_engine::snapshot::SnapshotData) { self.frames.clear() }
//!     fn save_epochs(&mut self, epochs: Epochs) { self.epochs = epochs }
//!     fn membership(&mut self, _text: String, _committed: bool) {}
//!     fn role(&mut self, role: Role, _epoch: i64) { self.role = Some(role) }
//! }
//!
//! let engine = Engine::new(EngineConfig::default(), 0);
//! let mut r = Replica::new(ReplicaConfig::new(1, vec![1]), engine, Epochs::default(), vec![], 0);
//! let mut disk = Disk::default();
//! let mut out = Vec::new();
//! for now in (0..2000).step_by(10) {
//!     r.step(ReplicaInput::Tick { now_ms: now });                     // 1
//!     r.drain(&mut out);                                              // 2
//!     let _ = effects::execute(out.drain(..), &mut disk);             // 3
//!     if let Some(zxid) = disk.durable.take() {
//!         r.step(ReplicaInput::Durable { zxid });                     // 4
//!         r.drain(&mut out);
//!         let _ = effects::execute(out.drain(..), &mut disk);
//!     }
//! }
//! assert_eq!(r.role(), Role::Leading);
//! assert_eq!(disk.role, Some(Role::Leading));
//! ```

use std::ops::ControlFlow;

use super::{ClientOutput, Epochs, LogFrame, PeerMsg, ReplicaOutput, Role, Sid};

/// A SNAP synchronisation to send (see [`ReplicaOutput::SendSnapshot`]): the archive is
/// [`SnapshotSend::into_message`], O(tree), which a driver builds off the thread that
/// drives the replica; `then` goes right after it, before anything else for that peer.
pub struct SnapshotSend {
    pub epoch: i64,
    pub view: crate::server::SnapshotView,
    pub frames: Vec<LogFrame>,
    pub then: PeerMsg,
}

impl SnapshotSend {
    /// The `Sync` message carrying the snapshot and the frames after it.
    pub fn into_message(self) -> (Result<PeerMsg, crate::snapshot::EncodeError>, PeerMsg) {
        (
            super::snap_sync(self.epoch, self.view, self.frames),
            self.then,
        )
    }
}

/// What a driver does for a replica. One method per kind of output; see the module
/// documentation for the order and durability each must keep.
pub trait Effects {
    /// A reply or notification for one of this server's client connections.
    fn send_to_client(&mut self, conn: u64, frame: Vec<u8>);
    /// Close a client connection after what was queued for it.
    fn close_client(&mut self, conn: u64);
    /// A message for another server (dropped if there is no link to it).
    fn send_to_peer(&mut self, to: Sid, msg: PeerMsg);
    /// Synchronise `to` by SNAP.
    fn send_snapshot(&mut self, to: Sid, snapshot: SnapshotSend);
    /// Start appending `frame` to the log; report `Durable` once it is on disk.
    /// `Break`: the write failed and the server stops (nothing after it is done).
    fn append(&mut self, frame: LogFrame) -> ControlFlow<()>;
    /// Remove every log frame after `after`, durably, before returning.
    fn truncate_log(&mut self, after: i64);
    /// Make `data` the newest snapshot and empty the log, durably, before returning.
    fn install_snapshot(&mut self, data: crate::snapshot::SnapshotData);
    /// Persist the epochs, durably, before returning.
    fn save_epochs(&mut self, epochs: Epochs);
    /// The membership changed (`committed`: persist it, durably; otherwise a logged
    /// reconfiguration whose new servers should become reachable).
    fn membership(&mut self, text: String, committed: bool);
    /// The role changed (logs, `srvr`, statistics).
    fn role(&mut self, role: Role, epoch: i64);
}

/// Carries out `outputs` in order on `fx`. Stops at an `append` that fails, returning
/// `Break` (the driver then stops the server); `Continue` when all were carried out.
pub fn execute(
    outputs: impl IntoIterator<Item = ReplicaOutput>,
    fx: &mut impl Effects,
) -> ControlFlow<()> {
    for o in outputs {
        match o {
            ReplicaOutput::Client(ClientOutput::Send { conn, frame }) => {
                fx.send_to_client(conn, frame)
            }
            ReplicaOutput::Client(ClientOutput::Close { conn }) => fx.close_client(conn),
            ReplicaOutput::Peer { to, msg } => fx.send_to_peer(to, msg),
            ReplicaOutput::SendSnapshot {
                to,
                epoch,
                view,
                frames,
                then,
            } => fx.send_snapshot(
                to,
                SnapshotSend {
                    epoch,
                    view,
                    frames,
                    then,
                },
            ),
            ReplicaOutput::Persist(frame) => fx.append(frame)?,
            ReplicaOutput::TruncateLog { after } => fx.truncate_log(after),
            ReplicaOutput::InstallSnapshot { data } => fx.install_snapshot(data),
            ReplicaOutput::SaveEpochs(e) => fx.save_epochs(e),
            ReplicaOutput::Membership { text, committed } => fx.membership(text, committed),
            ReplicaOutput::Role { role, epoch } => fx.role(role, epoch),
        }
    }
    ControlFlow::Continue(())
}
