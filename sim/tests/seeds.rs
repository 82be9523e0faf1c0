//! The simulator over many seeds, as CI runs it (`cargo test --workspace`): 3- and
//! 5-server ensembles, every fault kind (SIGSTOP-like pauses and leaders killed with a
//! lagging follower included), tickTime drawn per seed, the checks after every step
//! and at the end (the election bound and the reconfiguration quorum among them), and
//! the reconfiguration workload on a pool of 5 servers.
//! A failing seed prints the command that replays it with a trace.
//!
//! Environment:
//! - `KEEL_SIM_SEEDS` (default 300): seeds per ensemble size;
//! - `KEEL_SIM_RECONFIG_SEEDS` (default 300): seeds of the reconfiguration workload;
//! - `KEEL_SIM_START` (default 0): first seed;
//! - `KEEL_SIM_STEPS` (default 20000): events in each run's fault phase;
//! - `KEEL_SIM_WAIVE` (default none): comma-separated violation kinds to record as
//!   notes instead of failures (to set a known finding aside; see docs/simulator.md);
//! - `KEEL_SIM_STRICT` (set: on): do not waive the known election stalls
//!   (`LIVENESS_KNOWN`) in the seed runs either.
//!
//! For long runs use the binary instead (`cargo run --release -p keel-sim -- --seeds N`),
//! which runs seeds in parallel child processes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use keel_sim::{failure_line, run, run_catching, Sabotage, SimConfig};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Violation kinds the reconfiguration seeds record as notes instead of failures: none
/// (the reconfiguration findings in docs/simulator.md are fixed). A kind listed here
/// ends a seed's run early when waived (without the end checks); the checks during the
/// run still apply.
const RECONFIG_KNOWN: &[&str] = &[];

/// Election stalls the simulator found in the engine and that still wait for an engine
/// change (docs/simulator.md, "Found with the election bound"): none. The diagnosed
/// kinds (`election bound/abandoned learner`, `.../lone establishment`, `.../re-acked
/// epoch`, `.../unrepeated vote`, `.../dead leader joined`) were waived here until the
/// engine changes of issue 19 landed; a kind listed here is recorded as a note (the
/// seed still runs to its end and every other check applies). `KEEL_SIM_STRICT` turns
/// the list off.
const LIVENESS_KNOWN: &[&str] = &[];

fn known(extra: &[&str]) -> Vec<String> {
    LIVENESS_KNOWN
        .iter()
        .chain(extra)
        .map(|k| k.to_string())
        .collect()
}

fn run_seeds(nodes: usize) {
    run_many(
        env("KEEL_SIM_SEEDS", 300),
        SimConfig {
            nodes,
            ..SimConfig::default()
        },
        &[],
    );
}

/// Runs `n` seeds of `base`; returns how many reconfigurations were issued while a
/// voter they need was paused past syncLimit (summed over the seeds).
fn run_many(n: u64, base: SimConfig, known: &[&str]) -> u64 {
    let nodes = base.nodes;
    let start = env("KEEL_SIM_START", 0);
    let steps = env("KEEL_SIM_STEPS", 20000);
    let waive: Vec<String> = std::env::var("KEEL_SIM_WAIVE")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .chain(known.iter().map(|k| k.to_string()))
        .chain(
            LIVENESS_KNOWN
                .iter()
                .filter(|_| std::env::var_os("KEEL_SIM_STRICT").is_none())
                .map(|k| k.to_string()),
        )
        .collect();
    let next = AtomicU64::new(start);
    let failures = Mutex::new(Vec::new());
    let paused_reconfigs = AtomicU64::new(0);
    let threads = std::thread::available_parallelism()
        .map(|t| t.get())
        .unwrap_or(1)
        .min(4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= start + n {
                    break;
                }
                let r = run_catching(SimConfig {
                    seed,
                    steps,
                    waive: waive.clone(),
                    ..base.clone()
                });
                paused_reconfigs.fetch_add(r.stats.paused_reconfigs, Ordering::Relaxed);
                if !r.ok() {
                    let line = failure_line(&r);
                    eprintln!("{line}");
                    failures.lock().unwrap().push(line);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {n} seeds failed with {nodes} servers:\n{}",
        failures.len(),
        failures.join("\n")
    );
    paused_reconfigs.into_inner()
}

#[test]
fn seeds_three_servers() {
    run_seeds(3);
}

#[test]
fn seeds_five_servers() {
    run_seeds(5);
}

/// A pool of 5 servers, 3 of them the initial membership, with random `reconfig`s;
/// among them, reconfigurations issued while a voter they need is paused past
/// syncLimit (so that only it could help commit them): the leader must refuse those,
/// which the `reconfig quorum` check verifies (engine/src/zab/leader.rs once counted
/// such a paused follower as synced and accepted them).
#[test]
fn seeds_reconfiguration() {
    let n = env("KEEL_SIM_RECONFIG_SEEDS", 300);
    let issued = run_many(
        n,
        SimConfig {
            nodes: 5,
            reconfig: true,
            ..SimConfig::default()
        },
        RECONFIG_KNOWN,
    );
    if n >= 200 && env("KEEL_SIM_STEPS", 20000) >= 20000 {
        assert!(
            issued >= n / 60,
            "only {issued} reconfigurations issued while a voter was paused in {n} seeds"
        );
    }
}

/// The reconfiguration workload does reconfigure: changes commit, others are refused.
#[test]
fn reconfiguration_runs_are_not_vacuous() {
    let (mut committed, mut refused, mut crashes) = (0, 0, 0);
    for seed in 0..20 {
        let r = run(SimConfig {
            seed,
            nodes: 5,
            steps: 5000,
            reconfig: true,
            waive: known(RECONFIG_KNOWN),
            ..SimConfig::default()
        });
        assert!(r.ok(), "seed {seed}: {:?}", r.violations);
        committed += r.stats.reconfigs;
        refused += r.stats.clients.reconfigs_failed;
        crashes += r.stats.crashes;
    }
    assert!(committed > 40, "{committed} reconfigurations committed");
    assert!(refused > 10, "{refused} reconfigurations refused");
    assert!(crashes > 5, "{crashes} crashes");
}

/// The membership checks have teeth: servers that forget the committed membership at a
/// crash (restarting with `zoo.cfg`'s) are caught by the membership check, and with
/// that waived, by the replicated-log checks (quorums counted in the wrong membership).
#[test]
fn a_forgotten_membership_is_caught() {
    let mut kinds = std::collections::BTreeMap::new();
    for seed in 0..40 {
        let r = run(SimConfig {
            seed,
            nodes: 5,
            steps: 8000,
            reconfig: true,
            hostile: Some(false),
            sabotage: Some(Sabotage::ForgetMembership),
            waive: known(RECONFIG_KNOWN),
            ..SimConfig::default()
        });
        if let Some(v) = r.violations.first() {
            *kinds.entry(v.kind).or_insert(0) += 1;
        }
    }
    let caught: u32 = kinds.values().sum();
    assert!(caught >= 10, "only {caught} of 40 runs failed: {kinds:?}");
    let mut deep = 0;
    for seed in 0..200 {
        let mut waive = known(RECONFIG_KNOWN);
        waive.push("membership".into());
        let r = run(SimConfig {
            seed,
            nodes: 5,
            steps: 8000,
            reconfig: true,
            hostile: Some(false),
            sabotage: Some(Sabotage::ForgetMembership),
            waive,
            ..SimConfig::default()
        });
        if r.violations.first().is_some_and(|v| {
            matches!(
                v.kind,
                "commit quorum" | "committed prefix" | "durability" | "leadership"
            )
        }) {
            deep += 1;
        }
    }
    eprintln!(
        "forgotten membership: first violations {kinds:?}; the log checks caught {deep} of 200"
    );
    assert!(deep >= 3, "the log checks caught only {deep} of 200");
}

/// One seed, one run: the replay command is only useful if this holds.
#[test]
fn a_seed_replays_identically() {
    for (seed, reconfig) in [(1, false), (7, false), (42, false), (3, true), (42, true)] {
        let cfg = SimConfig {
            seed,
            steps: 3000,
            nodes: if reconfig { 5 } else { 3 },
            reconfig,
            ..SimConfig::default()
        };
        let a = run(cfg.clone());
        let b = run(cfg);
        assert_eq!(a.fingerprint, b.fingerprint, "seed {seed}");
        assert_eq!(a.stats.events, b.stats.events, "seed {seed}");
        assert_eq!(a.violations.len(), b.violations.len(), "seed {seed}");
    }
}

/// The run does what it claims: clients get writes acknowledged, faults happen.
#[test]
fn runs_are_not_vacuous() {
    let mut writes = 0;
    let mut crashes = 0;
    let mut partitions = 0;
    for seed in 0..20 {
        let r = run(SimConfig {
            seed,
            steps: 5000,
            ..SimConfig::default()
        });
        writes += r.stats.clients.writes_ok;
        crashes += r.stats.crashes;
        partitions += r.stats.partitions;
    }
    assert!(writes > 1000, "{writes} writes acknowledged");
    assert!(crashes > 5, "{crashes} crashes");
    assert!(partitions > 5, "{partitions} partitions");
}

/// The checks have teeth: with disks that lose acknowledged writes at a crash, runs
/// must fail (a lost write, a diverged log or a broken durability quorum).
#[test]
fn a_lying_disk_is_caught() {
    let mut caught = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let r = run(SimConfig {
            seed,
            steps: 8000,
            hostile: Some(false),
            sabotage: Some(Sabotage::LyingDisk),
            ..SimConfig::default()
        });
        if let Some(v) = r.violations.first() {
            caught += 1;
            kinds.insert(v.kind);
        }
    }
    assert!(
        caught >= 10,
        "only {caught} of 40 runs with lying disks failed: {kinds:?}"
    );
}

/// ...and the client-side checks alone (lost acknowledged writes, reads, final state)
/// catch it too, with the replicated-log checks waived.
#[test]
fn a_lying_disk_is_caught_by_the_client_checks() {
    let mut caught = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let r = run(SimConfig {
            seed,
            steps: 8000,
            hostile: Some(false),
            sabotage: Some(Sabotage::LyingDisk),
            waive: vec![
                "durability".into(),
                "commit quorum".into(),
                "committed prefix".into(),
                "apply order".into(),
                "applied bookkeeping".into(),
                "snapshot".into(),
            ],
            ..SimConfig::default()
        });
        if let Some(v) = r.violations.first() {
            caught += 1;
            kinds.insert(v.kind);
        }
    }
    eprintln!("client-side checks caught {caught} of 40: {kinds:?}");
    assert!(
        caught >= 5,
        "only {caught} of 40 runs with lying disks failed: {kinds:?}"
    );
}

/// The liveness shapes happen: servers are paused, leaders are killed with a follower
/// lagging, tickTime varies, and the time to elect after the heal (and after the final
/// leader kill) is measured in every passing seed.
#[test]
fn pauses_happen_and_elections_are_timed() {
    let (mut pauses, mut lagging, mut reelected, mut timed) = (0, 0, 0, 0);
    let mut ticks = std::collections::BTreeSet::new();
    for seed in 0..24 {
        let r = run(SimConfig {
            seed,
            steps: 4000,
            waive: known(&[]),
            ..SimConfig::default()
        });
        assert!(r.ok(), "seed {seed}: {:?}", r.violations);
        pauses += r.stats.pauses;
        lagging += r.stats.lagging_kills;
        ticks.insert(r.stats.tick_ms);
        timed += r.stats.elect_ms.is_some() as u32;
        reelected += r.stats.reelect_ms.is_some() as u32;
    }
    assert!(pauses > 20, "{pauses} pauses");
    assert!(
        lagging > 5,
        "{lagging} leaders killed with a follower lagging"
    );
    assert!(ticks.len() >= 3, "tickTimes drawn: {ticks:?}");
    assert_eq!(
        timed, 24,
        "time to elect after the heal measured in every seed"
    );
    assert!(
        reelected >= 6,
        "{reelected} re-elections after the final kill"
    );
}

/// The election bound has teeth: with votes that take a tick to arrive after the heal
/// (as if elections spoke once a tick), tickTime 6000 misses it whenever an election
/// is needed (the final leader kill, about half the seeds).
#[test]
fn an_election_paced_by_the_tick_misses_the_bound() {
    let mut missed = 0;
    for seed in 0..20 {
        let r = run(SimConfig {
            seed,
            steps: 3000,
            tick_ms: Some(6000),
            hostile: Some(false),
            sabotage: Some(Sabotage::SlowVotes),
            ..SimConfig::default()
        });
        if r.violations
            .iter()
            .any(|v| v.kind.starts_with("election bound"))
        {
            missed += 1;
        }
    }
    assert!(
        missed >= 5,
        "only {missed} of 20 runs with slow votes missed the bound"
    );
}
