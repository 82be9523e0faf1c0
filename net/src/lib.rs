//! keel-net: Keel's runtime and wire protocols. Network cores (compio, one pinned
//! runtime per core) own the client connections; one engine thread owns the state
//! machine; the log has its own thread. They talk only through channels (`msg`).
//!
//! Where this crate sits on a request's way through Keel: docs/architecture.md, "One
//! setData, file by file".

pub mod cli;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod doctor;
pub mod engine_loop;
pub mod ensemble;
pub mod fourlw;
pub mod listener;
pub mod membership;
pub mod msg;
pub mod peer;
pub mod server;
pub mod storage;
pub mod walcmd;
