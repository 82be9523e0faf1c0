//! `keel-sim`: run the deterministic simulator over a range of seeds, or replay one.
//!
//! ```text
//! keel-sim --seeds N [--start S] [--nodes 3|5] [--steps K] [--jobs J]   many seeds
//! keel-sim --seed X [--nodes ..] [--steps ..] [-v|-vv]                  one seed, with a trace
//! keel-sim --seed X --check-determinism                                 run twice, compare
//! ```
//! Options shared by both: `--clients C`, `--keys K`, `--hostile on|off` (default: the
//! seed decides), `--reconfig on|off` (default off: the reconfiguration workload),
//! `--tick MS` (default: the seed draws tickTime from 100/500/2000/6000). Many seeds run
//! in child processes (`--worker`), `--jobs` at a time, so a panic in one seed (release
//! builds abort) is reported with its seed and the run goes on; the summary gives the
//! time-to-elect distribution, and `--times FILE` writes it per seed (CSV). Exit status:
//! 0 if every seed passed, 1 otherwise.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use keel_sim::{failure_line, run, run_catching, SimConfig};

struct Args {
    cfg: SimConfig,
    seed: Option<u64>,
    seeds: u64,
    start: u64,
    jobs: usize,
    worker: bool,
    determinism: bool,
    /// Per-seed election times (CSV) for `--seeds`.
    times: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: keel-sim --seeds N [--start S] [--nodes 3|5] [--steps K] [--clients C] [--keys K] [--observers K] [--hostile on|off] [--reconfig on|off] [--waive KIND]... [--timer-ticks-only] [--tick MS] [--jobs J] [--times FILE]\n       keel-sim --seed X [same options] [-v|-vv] [--check-determinism]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut a = Args {
        cfg: SimConfig::default(),
        seed: None,
        seeds: 100,
        start: 0,
        jobs: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        worker: false,
        determinism: false,
        times: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| -> String {
            it.next().unwrap_or_else(|| {
                eprintln!("{name} needs a value");
                usage()
            })
        };
        let num = |s: String| -> u64 {
            s.parse().unwrap_or_else(|_| {
                eprintln!("not a number: {s}");
                usage()
            })
        };
        match arg.as_str() {
            "--seed" => a.seed = Some(num(val("--seed"))),
            "--seeds" => a.seeds = num(val("--seeds")),
            "--start" => a.start = num(val("--start")),
            "--nodes" => a.cfg.nodes = num(val("--nodes")) as usize,
            "--steps" => a.cfg.steps = num(val("--steps")),
            "--clients" => a.cfg.clients = num(val("--clients")) as usize,
            "--keys" => a.cfg.keys = num(val("--keys")).max(1) as usize,
            "--observers" => a.cfg.observers = num(val("--observers")) as usize,
            "--jobs" => a.jobs = num(val("--jobs")).max(1) as usize,
            "--hostile" => {
                a.cfg.hostile = match val("--hostile").as_str() {
                    "on" => Some(true),
                    "off" => Some(false),
                    "seed" => None,
                    _ => usage(),
                }
            }
            "--reconfig" => {
                a.cfg.reconfig = match val("--reconfig").as_str() {
                    "on" => true,
                    "off" => false,
                    _ => usage(),
                }
            }
            "-v" => a.cfg.verbose = 1,
            "-vv" => a.cfg.verbose = 2,
            "--worker" => a.worker = true,
            "--check-determinism" => a.determinism = true,
            "--timer-ticks-only" => a.cfg.tick_every_input = false,
            "--waive" => a.cfg.waive.push(val("--waive")),
            "--tick" => a.cfg.tick_ms = Some(num(val("--tick")).max(1) as i64),
            "--times" => a.times = Some(val("--times")),
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument {other}");
                usage()
            }
        }
    }
    if !(1..=9).contains(&a.cfg.nodes) || a.cfg.observers >= a.cfg.nodes {
        eprintln!("--nodes must be 1..=9, with fewer --observers");
        usage()
    }
    a
}

fn main() {
    let a = parse();
    if let Some(seed) = a.seed {
        std::process::exit(one(&a, seed));
    }
    if a.worker {
        worker(&a);
        return;
    }
    std::process::exit(many(&a));
}

fn one(a: &Args, seed: u64) -> i32 {
    let mut cfg = a.cfg.clone();
    cfg.seed = seed;
    let t = Instant::now();
    if a.determinism {
        let mut quiet = cfg.clone();
        quiet.verbose = 0;
        let r1 = run(quiet.clone());
        let r2 = run(quiet);
        if r1.fingerprint != r2.fingerprint || r1.stats.events != r2.stats.events {
            keel_sim::outln!(
                "NOT DETERMINISTIC: seed {seed}: fingerprints {:#x} / {:#x}, events {} / {}",
                r1.fingerprint,
                r2.fingerprint,
                r1.stats.events,
                r2.stats.events
            );
            return 1;
        }
        keel_sim::outln!(
            "deterministic: fingerprint {:#x}, {} events",
            r1.fingerprint,
            r1.stats.events
        );
    }
    let r = run(cfg);
    keel_sim::outln!(
        "profile: {}{}",
        r.profile,
        if r.hostile { " [hostile]" } else { "" }
    );
    keel_sim::outln!("stats: {:?}", r.stats);
    let st = &r.stats;
    let ms = |x: Option<i64>| x.map_or("-".to_string(), |v| format!("{v} ms"));
    keel_sim::outln!(
        "time to elect (tickTime {} ms, bound {} ms): after the heal {}; after the final leader kill {} from a live quorum, {} from the kill{}",
        st.tick_ms,
        keel_sim::world::ELECT_BOUND_MS,
        ms(st.elect_ms),
        ms(st.reelect_ms),
        ms(st.reelect_from_kill_ms),
        if st.reelect_lagging {
            " (a survivor lagged)"
        } else {
            ""
        }
    );
    for n in &r.notes {
        keel_sim::outln!("note: {n}");
    }
    keel_sim::outln!("wall time {:.2}s", t.elapsed().as_secs_f64());
    if r.ok() {
        keel_sim::outln!("seed {seed}: ok (fingerprint {:#x})", r.fingerprint);
        0
    } else {
        for v in &r.violations {
            keel_sim::outln!("VIOLATION {v}");
        }
        keel_sim::outln!("{}", failure_line(&r));
        1
    }
}

/// Runs `--start .. --start + --seeds` and prints one machine-readable line per seed.
fn worker(a: &Args) {
    let out = std::io::stdout();
    for seed in a.start..a.start + a.seeds {
        let mut cfg = a.cfg.clone();
        cfg.seed = seed;
        cfg.verbose = 0;
        {
            let mut o = out.lock();
            let _ = writeln!(o, "BEGIN {seed}");
            let _ = o.flush();
        }
        let r = run_catching(cfg);
        let mut o = out.lock();
        if r.ok() {
            let st = &r.stats;
            let ms = |x: Option<i64>| x.unwrap_or(-1);
            let _ = writeln!(
                o,
                "OK {seed} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
                st.events,
                st.sim_ms,
                st.clients.writes_ok,
                r.hostile as u8,
                st.crashes,
                st.power_losses,
                st.torn_cut,
                st.partitions,
                st.link_breaks,
                st.snap_syncs,
                st.truncations,
                st.leaders,
                st.clients.expired,
                st.clients.unknown,
                st.reconfigs,
                st.clients.reconfigs_ok,
                st.clients.reconfigs_failed,
                st.pauses,
                st.lagging_kills,
                st.paused_reconfigs,
                st.tick_ms,
                ms(st.elect_ms),
                ms(st.reelect_ms),
                ms(st.reelect_from_kill_ms),
                st.reelect_lagging as u8,
                st.elect_stalled_ms,
                st.reelect_stalled_ms
            );
        } else {
            let line = failure_line(&r).replace('\n', "\t");
            let _ = writeln!(o, "FAIL {seed} {} {line}", r.hostile as u8);
        }
        for n in &r.notes {
            let _ = writeln!(o, "NOTE {seed} {n}");
        }
        let _ = o.flush();
    }
}

/// One passing seed's election times (ms; -1: not measured).
struct Times {
    seed: u64,
    tick: i64,
    elect: i64,
    reelect: i64,
    from_kill: i64,
    lagging: bool,
    /// How long a known engine stall held in each window (0: a clean election).
    stalled: (i64, i64),
}

struct Tally {
    /// Sums of the per-seed counters after `OK seed events sim_ms writes hostile`.
    counters: [u64; 16],
    times: Vec<Times>,
    /// Waived violations by kind: (seeds, violations).
    waived: std::collections::BTreeMap<String, (u64, u64)>,
    passed: u64,
    failed: Vec<String>,
    hostile_failed: u64,
    events: u64,
    sim_ms: i64,
    writes: u64,
    notes: u64,
}

fn many(a: &Args) -> i32 {
    let t = Instant::now();
    let exe = std::env::current_exe().expect("own path");
    let end = a.start + a.seeds;
    let jobs = (a.jobs as u64).min(a.seeds.max(1));
    let chunk = a.seeds.div_ceil(jobs.max(1)).max(1);
    let tally = std::sync::Mutex::new(Tally {
        counters: [0; 16],
        times: Vec::new(),
        waived: std::collections::BTreeMap::new(),
        passed: 0,
        failed: Vec::new(),
        hostile_failed: 0,
        events: 0,
        sim_ms: 0,
        writes: 0,
        notes: 0,
    });
    std::thread::scope(|s| {
        let mut lo = a.start;
        while lo < end {
            let hi = (lo + chunk).min(end);
            let exe = &exe;
            let tally = &tally;
            s.spawn(move || run_chunk(a, exe, lo, hi, tally));
            lo = hi;
        }
    });
    let t_all = tally.into_inner().unwrap();
    keel_sim::outln!(
        "keel-sim: seeds {}..{} ({} nodes, {} steps): {} passed, {} failed ({} with the hostile network); {} events, {:.0} s simulated, {} writes acknowledged, {} notes; {:.1} s",
        a.start,
        end,
        a.cfg.nodes,
        a.cfg.steps,
        t_all.passed,
        t_all.failed.len(),
        t_all.hostile_failed,
        t_all.events,
        t_all.sim_ms as f64 / 1000.0,
        t_all.writes,
        t_all.notes,
        t.elapsed().as_secs_f64()
    );
    let c = t_all.counters;
    keel_sim::outln!(
        "  passing seeds saw: {} crashes, {} power losses, {} torn tails cut, {} partitions, {} link breaks, {} SNAP syncs, {} TRUNCs, {} leaders, {} sessions expired, {} unknown outcomes, {} pauses, {} leaders killed with a follower lagging",
        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[13], c[14]
    );
    for (kind, (seeds, n)) in &t_all.waived {
        keel_sim::outln!("  waived '{kind}': {n} violations in {seeds} seeds");
    }
    print_times(&t_all.times);
    if let Some(path) = &a.times {
        let mut t: Vec<&Times> = t_all.times.iter().collect();
        t.sort_by_key(|t| t.seed);
        let mut s = String::from(
            "seed,tick_ms,elect_ms,reelect_ms,reelect_from_kill_ms,lagging,elect_stalled_ms,reelect_stalled_ms\n",
        );
        for x in t {
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{}",
                x.seed,
                x.tick,
                x.elect,
                x.reelect,
                x.from_kill,
                x.lagging as u8,
                x.stalled.0,
                x.stalled.1
            );
        }
        if let Err(e) = std::fs::write(path, s) {
            eprintln!("cannot write {path}: {e}");
        }
    }
    if a.cfg.reconfig {
        keel_sim::outln!(
            "  reconfiguration: {} committed, {} answered 0, {} answered with an error; {} issued while a voter they need was paused past syncLimit",
            c[10],
            c[11],
            c[12],
            c[15]
        );
    }
    if t_all.failed.is_empty() {
        0
    } else {
        1
    }
}

/// "median / p99 / max over N" of `v` (sorted here).
fn dist(v: &mut [i64]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort_unstable();
    let q = |p: f64| v[(((v.len() - 1) as f64) * p).round() as usize];
    format!(
        "median {} / p99 {} / max {} ms over {}",
        q(0.5),
        q(0.99),
        v[v.len() - 1],
        v.len()
    )
}

/// A window in which one of the engine's known stall shapes held this long is not a
/// clean election (they hold briefly in every election: followers decide a few ms
/// before their leader does).
const STALL_MS: i64 = 500;

/// The time-to-elect summary: after the heal (quiet to a leader serving a quorum),
/// and after the final leader kill (a quorum live again to a leader serving), overall
/// and per tickTime, with and without a lagging survivor.
fn print_times(times: &[Times]) {
    if times.is_empty() {
        return;
    }
    let pick = |f: &dyn Fn(&Times) -> Option<i64>| -> Vec<i64> {
        times.iter().filter_map(f).filter(|x| *x >= 0).collect()
    };
    keel_sim::outln!(
        "  time to elect (bound {} ms):",
        keel_sim::world::ELECT_BOUND_MS
    );
    keel_sim::outln!(
        "    after the heal (quiet -> a leader serving a quorum): {}",
        dist(&mut pick(&|t| Some(t.elect)))
    );
    keel_sim::outln!(
        "    after the final leader kill (a quorum live -> serving): {}; from the kill: {}",
        dist(&mut pick(&|t| Some(t.reelect))),
        dist(&mut pick(&|t| Some(t.from_kill)))
    );
    keel_sim::outln!(
        "    clean elections (no known engine stall held {STALL_MS} ms or more while waiting): after the heal {}; after the kill {}",
        dist(&mut pick(&|t| (t.stalled.0 < STALL_MS).then_some(t.elect))),
        dist(&mut pick(&|t| (t.stalled.1 < STALL_MS).then_some(t.reelect)))
    );
    let mut ticks: Vec<i64> = times.iter().map(|t| t.tick).collect();
    ticks.sort_unstable();
    ticks.dedup();
    for tick in ticks {
        let of = |lag: Option<bool>, clean: bool| {
            move |t: &Times| {
                (t.tick == tick
                    && lag.is_none_or(|l| t.lagging == l)
                    && (!clean || t.stalled.1 < STALL_MS))
                    .then_some(t.reelect)
            }
        };
        keel_sim::outln!(
            "    tickTime {tick}: re-election {}; with a lagging survivor {}; clean ones {}",
            dist(&mut pick(&of(Some(false), false))),
            dist(&mut pick(&of(Some(true), false))),
            dist(&mut pick(&of(None, true)))
        );
    }
}

/// Runs seeds `lo..hi` in child processes; a child that dies (a panic under
/// `panic = "abort"`) has its current seed recorded as failed and a new child takes
/// the rest.
fn run_chunk(a: &Args, exe: &std::path::Path, lo: u64, hi: u64, tally: &std::sync::Mutex<Tally>) {
    let mut next = lo;
    while next < hi {
        let mut cmd = Command::new(exe);
        cmd.arg("--worker")
            .arg("--start")
            .arg(next.to_string())
            .arg("--seeds")
            .arg((hi - next).to_string())
            .arg("--nodes")
            .arg(a.cfg.nodes.to_string())
            .arg("--steps")
            .arg(a.cfg.steps.to_string())
            .arg("--clients")
            .arg(a.cfg.clients.to_string())
            .arg("--keys")
            .arg(a.cfg.keys.to_string())
            .arg("--observers")
            .arg(a.cfg.observers.to_string());
        if let Some(h) = a.cfg.hostile {
            cmd.arg("--hostile").arg(if h { "on" } else { "off" });
        }
        if !a.cfg.tick_every_input {
            cmd.arg("--timer-ticks-only");
        }
        if a.cfg.reconfig {
            cmd.arg("--reconfig").arg("on");
        }
        if let Some(t) = a.cfg.tick_ms {
            cmd.arg("--tick").arg(t.to_string());
        }
        for w in &a.cfg.waive {
            cmd.arg("--waive").arg(w);
        }
        // The panic message, not a backtrace, is what the report needs.
        cmd.env("RUST_BACKTRACE", "0");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let err_reader = std::thread::spawn(move || {
            let mut tail: Vec<String> = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                tail.push(line);
                if tail.len() > 200 {
                    tail.remove(0);
                }
            }
            tail
        });
        let mut current: Option<u64> = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut parts = line.splitn(3, ' ');
            let tag = parts.next().unwrap_or("");
            let seed: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let rest = parts.next().unwrap_or("");
            let mut t = tally.lock().unwrap();
            match tag {
                "BEGIN" => current = Some(seed),
                "OK" => {
                    current = None;
                    next = seed + 1;
                    t.passed += 1;
                    let f: Vec<i64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                    if f.len() >= 3 {
                        t.events += f[0] as u64;
                        t.sim_ms += f[1];
                        t.writes += f[2] as u64;
                    }
                    for (k, v) in f.iter().skip(4).take(16).enumerate() {
                        t.counters[k] += *v as u64;
                    }
                    if f.len() >= 27 {
                        t.times.push(Times {
                            seed,
                            tick: f[20],
                            elect: f[21],
                            reelect: f[22],
                            from_kill: f[23],
                            lagging: f[24] != 0,
                            stalled: (f[25], f[26]),
                        });
                    }
                }
                "FAIL" => {
                    current = None;
                    next = seed + 1;
                    let (h, msg) = rest.split_once(' ').unwrap_or(("0", rest));
                    if h == "1" {
                        t.hostile_failed += 1;
                    }
                    let msg = msg.replace('\t', "\n");
                    keel_sim::outln!("{msg}");
                    t.failed.push(msg);
                }
                "NOTE" => {
                    t.notes += 1;
                    // "waived N 'KIND' violations, first: ..."
                    if let Some(w) = rest.strip_prefix("waived ") {
                        let mut p = w.splitn(3, '\'');
                        let n: u64 = p.next().and_then(|x| x.trim().parse().ok()).unwrap_or(0);
                        if let Some(kind) = p.next() {
                            let e = t.waived.entry(kind.to_string()).or_insert((0, 0));
                            e.0 += 1;
                            e.1 += n;
                        }
                    }
                    if a.cfg.verbose > 0 {
                        keel_sim::outln!("note: seed {seed}: {rest}");
                    }
                }
                _ => {}
            }
        }
        let status = child.wait().expect("wait worker");
        let tail = err_reader.join().unwrap_or_default();
        if let Some(seed) = current {
            // The child died in the middle of a seed.
            let why = match tail.iter().rposition(|l| l.contains("panicked")) {
                Some(i) => tail[i..]
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" "),
                None => tail
                    .last()
                    .cloned()
                    .unwrap_or_else(|| format!("worker exited with {status}")),
            };
            let mut cfg = a.cfg.clone();
            cfg.seed = seed;
            let msg = format!(
                "FAIL seed={seed}: panic: {why}\n  replay: {}",
                cfg.replay_command()
            );
            keel_sim::outln!("{msg}");
            let mut t = tally.lock().unwrap();
            t.failed.push(msg);
            next = seed + 1;
        } else if next < hi {
            // Died between seeds or did not start: do not loop forever.
            let mut t = tally.lock().unwrap();
            t.failed.push(format!(
                "FAIL seeds {next}..{hi}: worker exited with {status} before running them"
            ));
            break;
        }
    }
}
