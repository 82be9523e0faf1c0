//! keel-engine: Keel's state machine. It owns the ZooKeeper data model (tree, sessions,
//! watches, ACLs), turns requests into transactions and replies, and never performs
//! I/O: the caller feeds it inputs (connections, frames, clock ticks, durability
//! reports) and carries out its outputs (frames to send, log frames to persist).
//!
//! Where this crate sits on a request's way through Keel: docs/architecture.md, "One
//! setData, file by file".

pub mod acl;
pub mod config;
pub mod forward;
pub mod jute;
pub mod model;
pub mod path;
mod prep;
pub mod proto;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod stats;
pub mod tree;
pub mod txn;
pub mod watch;
pub mod zab;

pub use server::{Engine, EngineConfig, Input, Output};
