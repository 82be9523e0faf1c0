//! keel-bench: a ZooKeeper-protocol load generator ([`run`]), the client it is built on
//! ([`client`]) and the side-by-side harness that runs the same matrix against Apache
//! ZooKeeper and Keel ([`compare`]), and the footprint measurements: memory per znode
//! ([`memory`]) and restart time ([`restart`]), both loading with [`load`] and reading
//! their load flags with [`load_args`].
//!
//! Where it sits: outside Keel, a client of the path docs/architecture.md walks in "One
//! setData, file by file"; its numbers are in docs/benchmarks.md.

pub mod client;
pub mod compare;
pub mod load;
pub mod load_args;
pub mod memory;
pub mod plot;
pub mod report;
pub mod restart;
pub mod run;
pub mod sweep;
pub mod usage;

pub use run::{run, RunConfig, RunResult, Workload};
pub mod wal;
