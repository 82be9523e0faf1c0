//! keel-sim: a deterministic simulator for Keel's ensemble. From one `u64` seed it runs
//! N real [`keel_engine::zab::Replica`]s (the sans-I/O ZAB state machine) with simulated
//! disks, a simulated network and simulated ZooKeeper clients, injects faults (crash
//! and restart losing unsynced writes, torn writes, slow and failing disks, partitions,
//! link breaks, SIGSTOP-like pauses, message delay and — out of the transport's
//! contract — reordering, duplication and loss), checks safety after every step and,
//! once the faults heal, liveness: an election bound that does not grow with
//! `tickTime`, and that no reconfiguration is accepted that live servers cannot
//! commit. See `docs/simulator.md`.
//!
//! | module | owns |
//! |---|---|
//! | [`rng`] | the seeded PRNG every random choice comes from |
//! | [`network`] | links between servers: latency, FIFO, generations, partitions, hostile faults |
//! | [`disk`] | one server's log, snapshot and epochs; what a crash leaves; torn-tail recovery |
//! | [`client`] | ZooKeeper clients: wire encoding, sessions, reconnects, their workload |
//! | [`lin`] | a Wing–Gong/Lowe linearizability search and the versioned-register model |
//! | [`checker`] | every safety check: replicated log, durability, sessions, reads, writes |
//! | [`world`] | the event loop: servers, faults (pauses included), phases, liveness after healing (election bound, reconfiguration quorum, time to elect) |
//!
//! Where it sits: it drives the replica of docs/architecture.md's "One setData, file by
//! file" (the ensemble leader's walk) through `zab::effects::execute`, as `net` does.

/// `println!` that ends the process quietly when stdout is closed (`keel-sim -v | head`).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            std::process::exit(0);
        }
    }};
}

pub mod checker;
pub mod client;
pub mod disk;
pub mod lin;
pub mod network;
pub mod rng;
pub mod world;

pub use world::{run, Report, Sabotage, SimConfig, Stats};

use checker::Violation;

/// Runs one seed; a panic (in a replica or in the simulator) becomes a failed report.
/// Only catches with `panic = "unwind"` builds (tests, dev); with `panic = "abort"` the
/// process ends, which the `keel-sim` binary handles by running seeds in child processes.
pub fn run_catching(cfg: SimConfig) -> Report {
    let c = cfg.clone();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || run(c))) {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            Report {
                config: cfg,
                hostile: false,
                profile: String::new(),
                violations: vec![Violation {
                    at_ms: -1,
                    kind: "panic",
                    detail: msg,
                }],
                notes: Vec::new(),
                stats: Stats::default(),
                fingerprint: 0,
            }
        }
    }
}

/// One line for a failing seed: the first violation and the replay command.
pub fn failure_line(r: &Report) -> String {
    let v = r
        .violations
        .first()
        .map(|v| v.to_string())
        .unwrap_or_default();
    format!(
        "FAIL seed={}{}: {v}\n  replay: {}",
        r.config.seed,
        if r.hostile { " (hostile network)" } else { "" },
        r.config.replay_command()
    )
}
