//! keel-bench: a ZooKeeper-protocol load generator ([`run`]), the client it is built on
//! ([`client`]) and the side-by-side harness that runs the same matrix against Apache
//! ZooKeeper and Keel ([`compare`]).

pub mod client;
pub mod compare;
pub mod plot;
pub mod report;
pub mod run;

pub use run::{run, RunConfig, RunResult, Workload};
