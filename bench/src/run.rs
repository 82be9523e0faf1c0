//! The load generator: `sessions` ZooKeeper sessions, each keeping up to `inflight`
//! requests outstanding, for a warm-up and then a measured duration (or for an exact
//! number of requests).
//!
//! # What is counted
//!
//! * A request is *measured* when it starts at or after the end of the warm-up; only
//!   measured requests are counted, each exactly once, when its reply (or the loss of its
//!   connection, or the drain timeout) settles it.
//! * A reply with code 0 is a success: it is counted in `ok` and its latency goes into
//!   the histogram. Any other code (for a multi, the code of the op that failed) is an
//!   error, counted by code name, and never enters the histogram. Requests outstanding
//!   when a connection is lost count as `ConnectionLoss`; those still unanswered
//!   `drain_timeout` after the end count as `RequestTimeout`.
//! * Every percentile comes from the merged HdrHistogram of successes (µs, 3 significant
//!   digits).
//!
//! # Closed and open loop
//!
//! By default each session sends a new request as soon as one completes (closed loop):
//! throughput is what the server sustains at that concurrency. With `rate` the sessions
//! send on a fixed schedule (`rate / sessions` per second each, staggered) and a
//! request's latency is measured from the time it was *due*, not the time it went out, so
//! a stall that delays sending is charged to the requests it delayed (no coordinated
//! omission). `inflight` still caps what is outstanding per session; requests that fall
//! due while the cap is reached wait and are charged for it.
//!
//! # Workloads and the znodes they use (all under `root`)
//!
//! | workload | request | znodes |
//! |---|---|---|
//! | `create` | create, a new node each time | `root/create/c<n>`, n = 0, 1, 2, ... across all sessions |
//! | `set` | setData on a random key | `root/keys/k<i>`, i < keys, loaded first |
//! | `get` | getData of a random key | the same |
//! | `delete` | delete, each node once | `root/delete/d<i>`, i < keys, loaded first; the run ends early when they are all gone |
//! | `mixed:R` | R % getData, the rest setData | `root/keys/k<i>` |
//! | `multi:K` | one multi of K setData ops | `root/keys/k<i>` |
//! | `watch` | session 0 sets hot keys; every other session holds an exists watch on each and re-arms it when it fires | `root/watch/w<i>`, i < min(keys, 64) |
//!
//! For `watch` an op is one delivered notification, timed from the send of the setData
//! that fired it; the writer sets a key again only when every watcher has re-armed its
//! watch on it, so each set fires exactly one event per watcher.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use keel_engine::proto::{event, Code};

use crate::client::{Client, Event, Op};
use crate::report::{code_name, fmt_count, fmt_us, json_f64, json_str, named_errors};
use crate::usage::Usage;

/// Most hot keys the `watch` workload uses.
pub const WATCH_KEYS_MAX: u64 = 64;
/// Requests in flight per session while loading keys.
const PRELOAD_INFLIGHT: usize = 64;
/// Highest latency the histograms hold (1 h in µs); larger values are clamped.
const HIST_MAX_US: u64 = 3_600_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Create,
    Set,
    Get,
    Delete,
    /// `read_pct` % getData, the rest setData.
    Mixed {
        read_pct: u32,
    },
    /// One multi of `ops` setData ops per request.
    Multi {
        ops: usize,
    },
    Watch,
}

impl Workload {
    pub fn parse(s: &str) -> Result<Workload, String> {
        let (name, arg) = match s.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (s, None),
        };
        let num = |what: &str| -> Result<u64, String> {
            let a = arg.ok_or_else(|| {
                format!(
                    "workload `{name}` needs {what}, as in `{name}:{}`",
                    if name == "mixed" { 90 } else { 4 }
                )
            })?;
            a.parse::<u64>()
                .map_err(|_| format!("workload `{s}`: `{a}` is not a whole number"))
        };
        let w = match name {
            "create" => Workload::Create,
            "set" => Workload::Set,
            "get" => Workload::Get,
            "delete" => Workload::Delete,
            "watch" => Workload::Watch,
            "mixed" => {
                let r = num("a read percentage")?;
                if r > 100 {
                    return Err(format!(
                        "workload `{s}`: the read percentage must be 0..=100"
                    ));
                }
                Workload::Mixed { read_pct: r as u32 }
            }
            "multi" => {
                let k = num("an op count")?;
                if k == 0 || k > 10_000 {
                    return Err(format!("workload `{s}`: the op count must be 1..=10000"));
                }
                Workload::Multi { ops: k as usize }
            }
            _ => {
                return Err(format!(
                    "unknown workload `{s}` (create, set, get, delete, mixed:R, multi:K, watch)"
                ))
            }
        };
        if arg.is_some() && !matches!(w, Workload::Mixed { .. } | Workload::Multi { .. }) {
            return Err(format!("workload `{name}` takes no argument"));
        }
        Ok(w)
    }

    /// Whether it reads and writes the `root/keys` set.
    fn uses_keys(self) -> bool {
        matches!(
            self,
            Workload::Set | Workload::Get | Workload::Mixed { .. } | Workload::Multi { .. }
        )
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Create => f.write_str("create"),
            Workload::Set => f.write_str("set"),
            Workload::Get => f.write_str("get"),
            Workload::Delete => f.write_str("delete"),
            Workload::Mixed { read_pct } => write!(f, "mixed:{read_pct}"),
            Workload::Multi { ops } => write!(f, "multi:{ops}"),
            Workload::Watch => f.write_str("watch"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Servers; session `s` connects to `connect[s % len]`.
    pub connect: Vec<SocketAddr>,
    pub sessions: usize,
    /// Requests outstanding per session at most.
    pub inflight: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub value_size: usize,
    pub keys: u64,
    pub workload: Workload,
    /// Open loop: requests per second over all sessions.
    pub rate: Option<f64>,
    /// Stop after exactly this many requests (no warm-up; `duration` becomes a cap).
    pub requests: Option<u64>,
    /// The znode under which the run works; created if missing.
    pub root: String,
    pub session_timeout: Duration,
    /// Print a progress line per second on stderr.
    pub progress: bool,
    /// Write the interval histograms as an HdrHistogram log.
    pub hist_out: Option<PathBuf>,
    /// How long to wait for outstanding replies after the end.
    pub drain_timeout: Duration,
    /// Server processes whose CPU time and context switches over the measured window
    /// go into [`RunResult::server`] (none: not measured).
    pub server_pids: Vec<u32>,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            connect: vec![SocketAddr::from(([127, 0, 0, 1], 2181))],
            sessions: 8,
            inflight: 8,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            value_size: 128,
            keys: 10_000,
            workload: Workload::Set,
            rate: None,
            requests: None,
            root: "/keel-bench".into(),
            session_timeout: Duration::from_secs(30),
            progress: false,
            hist_out: None,
            drain_timeout: Duration::from_secs(10),
            server_pids: Vec::new(),
        }
    }
}

impl RunConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.connect.is_empty() {
            return Err("no server to connect to".into());
        }
        if self.sessions == 0 || self.inflight == 0 {
            return Err("--sessions and --inflight must be 1 or more".into());
        }
        if self.keys == 0 {
            return Err("--keys must be 1 or more".into());
        }
        if self.workload == Workload::Watch && self.sessions < 2 {
            return Err(
                "the watch workload needs 2 or more sessions (one writer, the rest watch)".into(),
            );
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err("--rate must be a positive number of requests per second".into());
            }
        }
        if !self.root.starts_with('/')
            || self.root.len() < 2
            || self.root.ends_with('/')
            || self.root.contains("//")
        {
            return Err(format!(
                "--root `{}` must be an absolute znode path other than /",
                self.root
            ));
        }
        Ok(())
    }

    fn measure_start(&self, t0: Instant) -> Instant {
        if self.requests.is_some() {
            t0
        } else {
            t0 + self.warmup
        }
    }

    fn deadline(&self, t0: Instant) -> Instant {
        self.measure_start(t0) + self.duration
    }
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub workload: Workload,
    pub sessions: usize,
    pub inflight: usize,
    pub rate: Option<f64>,
    pub value_size: usize,
    /// Measured requests that succeeded.
    pub ok: u64,
    /// Measured requests that failed, by code number.
    pub errors: BTreeMap<i32, u64>,
    /// Measured requests sent (for `watch`: notifications expected).
    pub issued: u64,
    /// The measured window: from the end of the warm-up to the last completion.
    pub elapsed: Duration,
    /// Latency of every success, in µs.
    pub hist: Histogram<u64>,
    /// Things worth knowing about the run (keys used up, requests never sent, ...).
    pub notes: Vec<String>,
    /// What the servers of [`RunConfig::server_pids`] spent from the end of the
    /// warm-up to the end of the measured window, and how long that was.
    pub server: Option<(Usage, Duration)>,
}

impl RunResult {
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Successes per second of the measured window.
    pub fn ops_per_sec(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.ok as f64 / s
        } else {
            0.0
        }
    }

    /// Server CPU time per successful operation, µs (all server processes together).
    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        let (u, window) = self.server?;
        let ops = self.ops_per_sec() * window.as_secs_f64();
        (ops >= 1.0).then(|| u.cpu.as_secs_f64() * 1e6 / ops)
    }

    /// Server context switches (voluntary and not) per successful operation.
    pub fn server_switches_per_op(&self) -> Option<f64> {
        let (u, window) = self.server?;
        let ops = self.ops_per_sec() * window.as_secs_f64();
        (ops >= 1.0).then(|| u.switches() as f64 / ops)
    }

    /// The latency at `q` (0..=1) in µs, from the histogram; 0 when nothing succeeded.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }

    pub fn max_us(&self) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.max()
        }
    }

    /// One line of JSON with the numbers.
    pub fn json(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\"workload\":{},\"sessions\":{},\"inflight\":{},\"rate\":{},\"value_size\":{},\"duration_s\":{},\"requests\":{},\"ok\":{},\"error_count\":{},\"ops_per_sec\":{},",
            json_str(&self.workload.to_string()),
            self.sessions,
            self.inflight,
            self.rate.map(|r| json_f64(r, 1)).unwrap_or_else(|| "null".into()),
            self.value_size,
            json_f64(self.elapsed.as_secs_f64(), 3),
            self.ok + self.error_total(),
            self.ok,
            self.error_total(),
            json_f64(self.ops_per_sec(), 1),
        );
        let mean = if self.hist.is_empty() {
            0.0
        } else {
            self.hist.mean()
        };
        let _ = write!(
            s,
            "\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"mean_us\":{},\"errors\":{{",
            self.quantile_us(0.50),
            self.quantile_us(0.90),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            self.max_us(),
            json_f64(mean, 1)
        );
        for (i, (name, n)) in named_errors(&self.errors).iter().enumerate() {
            let _ = write!(
                s,
                "{}{}:{}",
                if i > 0 { "," } else { "" },
                json_str(name),
                n
            );
        }
        s.push('}');
        if let (Some(cpu), Some(cs)) = (self.server_cpu_us_per_op(), self.server_switches_per_op())
        {
            let _ = write!(
                s,
                ",\"server_cpu_us_per_op\":{},\"server_switches_per_op\":{}",
                json_f64(cpu, 2),
                json_f64(cs, 3)
            );
        }
        s.push('}');
        s
    }

    /// The human summary (several lines).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let mode = match self.rate {
            Some(r) => format!("open loop at {} req/s", fmt_count(r)),
            None => "closed loop".into(),
        };
        let _ = writeln!(
            s,
            "{}: {} session(s) x {} in flight, {mode}, {:.2} s measured, {}-byte values",
            self.workload,
            self.sessions,
            self.inflight,
            self.elapsed.as_secs_f64(),
            self.value_size
        );
        let what = if self.workload == Workload::Watch {
            "notifications"
        } else {
            "requests"
        };
        let _ = writeln!(
            s,
            "  {what:<10} {} (ok {}, errors {})",
            self.ok + self.error_total(),
            self.ok,
            self.error_total()
        );
        let _ = writeln!(s, "  throughput {} ops/s", fmt_count(self.ops_per_sec()));
        if self.hist.is_empty() {
            let _ = writeln!(s, "  latency    no successful requests");
        } else {
            let _ = writeln!(
                s,
                "  latency    p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {})",
                fmt_us(self.quantile_us(0.5)),
                fmt_us(self.quantile_us(0.9)),
                fmt_us(self.quantile_us(0.99)),
                fmt_us(self.quantile_us(0.999)),
                fmt_us(self.max_us()),
                fmt_us(self.hist.mean().round() as u64)
            );
        }
        for (name, n) in named_errors(&self.errors) {
            let _ = writeln!(s, "  error      {name}: {n}");
        }
        for n in &self.notes {
            let _ = writeln!(s, "  note       {n}");
        }
        s
    }
}

fn new_hist() -> Histogram<u64> {
    // 1 µs .. 1 h at 3 significant digits always fits, so this cannot fail.
    Histogram::new_with_bounds(1, HIST_MAX_US, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits is valid"))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One session's counters, read by the reporter while the session runs.
struct SessionStats {
    interval: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    errors: Mutex<BTreeMap<i32, u64>>,
    error_count: AtomicU64,
    /// Everything settled in any phase (for the progress line's ops/s).
    settled: AtomicU64,
    issued: AtomicU64,
    /// The last measured settlement, in ns after t0.
    last_done_ns: AtomicU64,
}

impl SessionStats {
    fn new() -> SessionStats {
        SessionStats {
            interval: Mutex::new(new_hist()),
            ok: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            error_count: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            last_done_ns: AtomicU64::new(0),
        }
    }
}

/// Where the sessions wait, connected and loaded, until the main thread starts the clock.
struct Gate {
    state: Mutex<(usize, bool)>,
    cv: Condvar,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            state: Mutex::new((0, false)),
            cv: Condvar::new(),
        }
    }

    fn arrive_and_wait(&self) {
        let mut g = lock(&self.state);
        g.0 += 1;
        self.cv.notify_all();
        while !g.1 {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn wait_for(&self, n: usize) {
        let mut g = lock(&self.state);
        while g.0 < n {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn open(&self) {
        lock(&self.state).1 = true;
        self.cv.notify_all();
    }
}

/// Hot-key state shared by the watch writer and the watchers.
struct WatchShared {
    keys: usize,
    watchers: usize,
    /// Watchers whose watch on the key is armed since its last set.
    armed: Vec<AtomicUsize>,
    /// When the last set of the key was sent, ns after t0.
    set_ns: Vec<AtomicU64>,
    /// Sets of the key that will fire (sent, and not failed).
    sets: Vec<AtomicU64>,
    writer_done: AtomicBool,
}

struct Shared {
    cfg: RunConfig,
    value: Vec<u8>,
    tickets: AtomicU64,
    limit: u64,
    stop: AtomicBool,
    t0: OnceLock<Instant>,
    stats: Vec<SessionStats>,
    watch: WatchShared,
    preload: bool,
    setup_errors: Mutex<Vec<String>>,
    notes: Mutex<Vec<String>>,
}

impl Shared {
    fn t0(&self) -> Instant {
        *self.t0.get_or_init(Instant::now)
    }

    /// Claims the next request number, `None` once the `requests` limit is reached.
    fn claim(&self) -> Option<u64> {
        if self.limit == u64::MAX {
            return Some(self.tickets.fetch_add(1, Ordering::Relaxed));
        }
        let t = self.tickets.fetch_add(1, Ordering::Relaxed);
        (t < self.limit).then_some(t)
    }

    fn note(&self, n: String) {
        let mut v = lock(&self.notes);
        if !v.contains(&n) {
            v.push(n);
        }
    }

    /// Settles one request of session `sess`.
    fn settle(&self, sess: usize, start: Instant, end: Instant, code: i32) {
        let st = &self.stats[sess];
        st.settled.fetch_add(1, Ordering::Relaxed);
        let t0 = self.t0();
        if start < self.cfg.measure_start(t0) {
            return;
        }
        st.last_done_ns.fetch_max(
            end.saturating_duration_since(t0).as_nanos() as u64,
            Ordering::Relaxed,
        );
        if code == 0 {
            st.ok.fetch_add(1, Ordering::Relaxed);
            let us = end.saturating_duration_since(start).as_micros().max(1) as u64;
            lock(&st.interval).saturating_record(us.min(HIST_MAX_US));
        } else {
            *lock(&st.errors).entry(code).or_insert(0) += 1;
            st.error_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn kv_path(&self, out: &mut String, i: u64) {
        out.clear();
        let _ = write!(out, "{}/keys/k{i}", self.cfg.root);
    }
}

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Builds one session's requests.
struct Gen<'a> {
    sh: &'a Shared,
    rng: Rng,
    path: String,
    paths: Vec<String>,
}

impl<'a> Gen<'a> {
    fn new(sh: &'a Shared, sess: usize) -> Gen<'a> {
        Gen {
            sh,
            rng: Rng::new(sess as u64 + 1),
            path: String::new(),
            paths: Vec::new(),
        }
    }

    /// Queues the request numbered `ticket`; false when the workload has nothing left.
    fn queue(&mut self, client: &mut Client, ticket: u64, start: Instant) -> bool {
        let cfg = &self.sh.cfg;
        let value = &self.sh.value[..];
        match cfg.workload {
            Workload::Create => {
                self.path.clear();
                let _ = write!(self.path, "{}/create/c{ticket}", cfg.root);
                client.queue(
                    &Op::Create {
                        path: &self.path,
                        data: value,
                        flags: 0,
                    },
                    0,
                    start,
                );
            }
            Workload::Delete => {
                if ticket >= cfg.keys {
                    self.sh.note(format!(
                        "all {} nodes were deleted before the end of the run",
                        cfg.keys
                    ));
                    return false;
                }
                self.path.clear();
                let _ = write!(self.path, "{}/delete/d{ticket}", cfg.root);
                client.queue(
                    &Op::Delete {
                        path: &self.path,
                        version: -1,
                    },
                    0,
                    start,
                );
            }
            Workload::Set | Workload::Get | Workload::Mixed { .. } => {
                let read = match cfg.workload {
                    Workload::Get => true,
                    Workload::Set => false,
                    Workload::Mixed { read_pct } => self.rng.below(100) < read_pct as u64,
                    _ => false,
                };
                let k = self.rng.below(cfg.keys);
                self.sh.kv_path(&mut self.path, k);
                if read {
                    client.queue(
                        &Op::GetData {
                            path: &self.path,
                            watch: false,
                        },
                        0,
                        start,
                    );
                } else {
                    client.queue(
                        &Op::SetData {
                            path: &self.path,
                            data: value,
                            version: -1,
                        },
                        0,
                        start,
                    );
                }
            }
            Workload::Multi { ops } => {
                self.paths.resize(ops, String::new());
                for i in 0..ops {
                    let k = self.rng.below(cfg.keys);
                    let mut p = std::mem::take(&mut self.paths[i]);
                    self.sh.kv_path(&mut p, k);
                    self.paths[i] = p;
                }
                let v: Vec<Op> = self
                    .paths
                    .iter()
                    .map(|p| Op::SetData {
                        path: p,
                        data: value,
                        version: -1,
                    })
                    .collect();
                client.queue(&Op::Multi(&v), 0, start);
            }
            Workload::Watch => return false,
        }
        true
    }
}

/// Runs the benchmark described by `cfg`.
pub fn run(cfg: &RunConfig) -> Result<RunResult, String> {
    cfg.validate()?;
    let cfg = cfg.clone();
    let n = cfg.sessions;

    // Set-up on a control session: the directories, and whether the keys are loaded.
    let mut control = Client::connect(cfg.connect[0], cfg.session_timeout, Duration::from_secs(10))
        .map_err(|e| format!("cannot connect to {}: {e}", cfg.connect[0]))?;
    let dir = match cfg.workload {
        Workload::Create => "create",
        Workload::Delete => "delete",
        Workload::Watch => "watch",
        _ => "keys",
    };
    ensure_path(&mut control, &format!("{}/{dir}", cfg.root))?;
    let marker = format!("{}/keys-loaded-{}-{}", cfg.root, cfg.keys, cfg.value_size);
    let preload = match cfg.workload {
        Workload::Create => false,
        w if w.uses_keys() => {
            let r = control
                .call(
                    &Op::Exists {
                        path: &marker,
                        watch: false,
                    },
                    Duration::from_secs(30),
                )
                .map_err(|e| format!("exists {marker}: {e}"))?;
            r.code() != 0
        }
        _ => true,
    };

    let watch_keys = if cfg.workload == Workload::Watch {
        cfg.keys.min(WATCH_KEYS_MAX) as usize
    } else {
        0
    };
    let sh = Shared {
        value: (0..cfg.value_size).map(|i| b'a' + (i % 26) as u8).collect(),
        tickets: AtomicU64::new(0),
        limit: cfg.requests.unwrap_or(u64::MAX),
        stop: AtomicBool::new(false),
        t0: OnceLock::new(),
        stats: (0..n).map(|_| SessionStats::new()).collect(),
        watch: WatchShared {
            keys: watch_keys,
            watchers: n.saturating_sub(1),
            armed: (0..watch_keys).map(|_| AtomicUsize::new(0)).collect(),
            set_ns: (0..watch_keys).map(|_| AtomicU64::new(0)).collect(),
            sets: (0..watch_keys).map(|_| AtomicU64::new(0)).collect(),
            writer_done: AtomicBool::new(false),
        },
        preload,
        setup_errors: Mutex::new(Vec::new()),
        notes: Mutex::new(Vec::new()),
        cfg,
    };
    let cfg = &sh.cfg;

    let mut log_file = match &cfg.hist_out {
        Some(p) => {
            Some(BufWriter::new(File::create(p).map_err(|e| {
                format!("cannot create {}: {e}", p.display())
            })?))
        }
        None => None,
    };

    let gate = Gate::new();
    let (done_tx, done_rx) = mpsc::channel::<usize>();
    let mut result = Err(String::new());
    let mut server = None;
    let window_over = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut started = 0;
        for sess in 0..n {
            let sh = &sh;
            let gate = &gate;
            let done_tx = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("bench-{sess}"))
                .spawn_scoped(scope, move || {
                    session_main(sess, sh, gate);
                    let _ = done_tx.send(sess);
                });
            match spawned {
                Ok(_) => started += 1,
                Err(e) => {
                    lock(&sh.setup_errors).push(format!("cannot start a session thread: {e}"));
                    break;
                }
            }
        }
        drop(done_tx);
        gate.wait_for(started);
        let t0 = sh.t0();
        gate.open();
        let setup = lock(&sh.setup_errors).clone();
        if !setup.is_empty() {
            sh.stop.store(true, Ordering::Relaxed);
            result = Err(setup.join("; "));
            return;
        }
        if preload && cfg.workload.uses_keys() {
            let _ = control.call(
                &Op::Create {
                    path: &marker,
                    data: b"",
                    flags: 0,
                },
                Duration::from_secs(30),
            );
        }
        let probe = (!cfg.server_pids.is_empty()).then(|| {
            let (window_over, cfg) = (&window_over, cfg);
            scope.spawn(move || probe_window(cfg, t0, window_over))
        });
        result = report_loop(&sh, t0, started, &done_rx, log_file.as_mut(), &mut control);
        window_over.store(true, Ordering::Relaxed);
        server = probe.and_then(|p| p.join().ok().flatten());
    });
    control.close();
    let (total, _intervals) = result?;
    if let (Some(f), Some(p)) = (log_file.as_mut(), cfg.hist_out.as_ref()) {
        f.flush()
            .map_err(|e| format!("writing {}: {e}", p.display()))?;
    }

    let t0 = sh.t0();
    let measure_start = cfg.measure_start(t0);
    let mut ok = 0;
    let mut issued = 0;
    let mut errors = BTreeMap::new();
    let mut last_ns = 0;
    for st in &sh.stats {
        ok += st.ok.load(Ordering::Relaxed);
        issued += st.issued.load(Ordering::Relaxed);
        last_ns = last_ns.max(st.last_done_ns.load(Ordering::Relaxed));
        for (c, k) in lock(&st.errors).iter() {
            *errors.entry(*c).or_insert(0) += k;
        }
    }
    let end = if last_ns > 0 {
        t0 + Duration::from_nanos(last_ns)
    } else {
        Instant::now().min(cfg.deadline(t0))
    };
    let elapsed = end
        .saturating_duration_since(measure_start)
        .max(Duration::from_millis(1));
    let mut notes = lock(&sh.notes).clone();
    let settled = ok + errors.values().sum::<u64>();
    if cfg.workload != Workload::Watch && issued != settled {
        notes.push(format!(
            "{issued} measured requests were sent but {settled} settled: the counting is off"
        ));
    }
    Ok(RunResult {
        workload: cfg.workload,
        sessions: cfg.sessions,
        inflight: cfg.inflight,
        rate: cfg.rate,
        value_size: cfg.value_size,
        ok,
        errors,
        issued,
        elapsed,
        hist: total,
        notes,
        server,
    })
}

/// Samples the servers' usage at the end of the warm-up and at the end of the
/// measured window (or when the run ends first): what they spent in between, and how
/// long that was. Waits in short steps so a run that ends early is not held up.
fn probe_window(cfg: &RunConfig, t0: Instant, over: &AtomicBool) -> Option<(Usage, Duration)> {
    let until = |t: Instant| {
        while Instant::now() < t && !over.load(Ordering::Relaxed) {
            std::thread::sleep(
                Duration::from_millis(20).min(t.saturating_duration_since(Instant::now())),
            );
        }
    };
    until(cfg.measure_start(t0));
    if over.load(Ordering::Relaxed) {
        return None;
    }
    let (a, from) = (Usage::of(&cfg.server_pids)?, Instant::now());
    until(cfg.deadline(t0));
    let b = Usage::of(&cfg.server_pids)?;
    Some((b.since(&a), from.elapsed()))
}

/// Creates `path` and its missing ancestors (empty persistent nodes).
pub fn ensure_path(client: &mut Client, path: &str) -> Result<(), String> {
    let mut at = 0;
    while at < path.len() {
        let end = path[at + 1..]
            .find('/')
            .map(|i| at + 1 + i)
            .unwrap_or(path.len());
        let p = &path[..end];
        let r = client
            .call(
                &Op::Create {
                    path: p,
                    data: b"",
                    flags: 0,
                },
                Duration::from_secs(30),
            )
            .map_err(|e| format!("create {p}: {e}"))?;
        let code = r.code();
        if code != 0 && code != Code::NodeExists as i32 {
            return Err(format!("create {p}: {}", code_name(code)));
        }
        at = end;
    }
    Ok(())
}

fn session_main(sess: usize, sh: &Shared, gate: &Gate) {
    let cfg = &sh.cfg;
    let addr = cfg.connect[sess % cfg.connect.len()];
    let mut client = match Client::connect(addr, cfg.session_timeout, Duration::from_secs(10)) {
        Ok(c) => Some(c),
        Err(e) => {
            lock(&sh.setup_errors).push(format!("session {sess}: cannot connect to {addr}: {e}"));
            None
        }
    };
    if let Some(c) = client.as_mut() {
        if sh.preload {
            if let Err(e) = preload(sess, c, sh) {
                lock(&sh.setup_errors).push(format!("session {sess}: loading keys: {e}"));
            }
        }
    }
    gate.arrive_and_wait();
    let Some(mut client) = client else { return };
    if !lock(&sh.setup_errors).is_empty() {
        client.close();
        return;
    }
    match cfg.workload {
        Workload::Watch if sess == 0 => {
            drive_watch_writer(&mut client, sh);
            sh.watch.writer_done.store(true, Ordering::Release);
        }
        Workload::Watch => drive_watcher(sess, &mut client, sh),
        _ => drive(sess, &mut client, sh),
    }
    client.close();
}

/// Creates this session's share of the workload's nodes; existing ones are fine.
fn preload(sess: usize, client: &mut Client, sh: &Shared) -> Result<(), String> {
    let cfg = &sh.cfg;
    let (count, prefix) = match cfg.workload {
        Workload::Delete => (cfg.keys, format!("{}/delete/d", cfg.root)),
        Workload::Watch => (sh.watch.keys as u64, format!("{}/watch/w", cfg.root)),
        Workload::Create => return Ok(()),
        _ => (cfg.keys, format!("{}/keys/k", cfg.root)),
    };
    let mut i = sess as u64;
    let step = cfg.sessions as u64;
    let mut path = String::new();
    loop {
        while client.outstanding() < PRELOAD_INFLIGHT && i < count {
            path.clear();
            let _ = write!(path, "{prefix}{i}");
            client.queue(
                &Op::Create {
                    path: &path,
                    data: &sh.value,
                    flags: 0,
                },
                i,
                Instant::now(),
            );
            i += step;
        }
        client.flush().map_err(|e| e.to_string())?;
        if client.outstanding() == 0 {
            return Ok(());
        }
        match client.poll(Some(Duration::from_secs(30))) {
            Some(Event::Reply(r)) => {
                let code = r.code();
                if code != 0 && code != Code::NodeExists as i32 {
                    return Err(format!("create {prefix}{}: {}", r.tag, code_name(code)));
                }
            }
            Some(Event::Watch(_)) => {}
            Some(Event::Closed { reason, .. }) => return Err(reason),
            None => return Err("no reply within 30 s".into()),
        }
    }
}

/// Settles what `ev` reports; returns false when the connection is gone.
fn handle(sess: usize, sh: &Shared, ev: Event) -> bool {
    match ev {
        Event::Reply(r) => {
            sh.settle(sess, r.start, r.received, r.code());
            true
        }
        Event::Watch(_) => true,
        Event::Closed { reason, lost } => {
            let now = Instant::now();
            for p in &lost {
                sh.settle(sess, p.start, now, Code::ConnectionLoss as i32);
            }
            sh.note(format!("a session lost its connection: {reason}"));
            false
        }
    }
}

/// Fails what is still outstanding after the drain timeout.
fn abandon(sess: usize, sh: &Shared, client: &mut Client) {
    let now = Instant::now();
    let n = client.outstanding();
    if let Some(Event::Closed { lost, .. }) = client.abandon() {
        for p in &lost {
            sh.settle(sess, p.start, now, Code::RequestTimeout as i32);
        }
    }
    sh.note(format!(
        "{n} request(s) were still unanswered {:?} after the end and count as RequestTimeout",
        sh.cfg.drain_timeout
    ));
}

/// The request loop of the create/set/get/delete/mixed/multi workloads.
fn drive(sess: usize, client: &mut Client, sh: &Shared) {
    let cfg = &sh.cfg;
    let st = &sh.stats[sess];
    let t0 = sh.t0();
    let measure_start = cfg.measure_start(t0);
    let deadline = cfg.deadline(t0);
    let interval = cfg
        .rate
        .map(|r| Duration::from_secs_f64(cfg.sessions as f64 / r));
    let mut next_due = interval.map(|iv| t0 + iv.mul_f64(sess as f64 / cfg.sessions as f64));
    let mut gen = Gen::new(sh, sess);
    let mut stopping = false;
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if !stopping && (now >= deadline || sh.stop.load(Ordering::Relaxed)) {
            stopping = true;
            if let (Some(iv), Some(due)) = (interval, next_due) {
                if due < deadline && now >= deadline {
                    let unsent = ((deadline - due).as_secs_f64() / iv.as_secs_f64()).ceil() as u64;
                    if unsent > 0 {
                        sh.note("some requests fell due but were never sent: the server did not keep up with --rate".into());
                    }
                }
            }
        }
        if !stopping {
            while client.outstanding() < cfg.inflight {
                let start = match (interval, next_due) {
                    (Some(iv), Some(due)) => {
                        if due > now {
                            break;
                        }
                        if due >= deadline {
                            stopping = true;
                            break;
                        }
                        next_due = Some(due + iv);
                        due
                    }
                    _ => Instant::now(),
                };
                let Some(ticket) = sh.claim() else {
                    stopping = true;
                    break;
                };
                if !gen.queue(client, ticket, start) {
                    stopping = true;
                    break;
                }
                if start >= measure_start {
                    st.issued.fetch_add(1, Ordering::Relaxed);
                }
            }
            // A write error shuts the socket; the reader then reports the loss.
            let _ = client.flush();
        }
        if stopping && client.outstanding() == 0 {
            return;
        }
        let now = Instant::now();
        let mut wake = if stopping {
            *drain_until.get_or_insert(now + cfg.drain_timeout)
        } else {
            deadline
        };
        if stopping && now >= wake {
            abandon(sess, sh, client);
            return;
        }
        if let (false, Some(due)) = (stopping, next_due) {
            if client.outstanding() < cfg.inflight {
                wake = wake.min(due);
            }
        }
        wake = wake.min(now + client.ping_interval());
        let mut alive = true;
        if let Some(ev) = client.poll(Some(wake.saturating_duration_since(now))) {
            alive &= handle(sess, sh, ev);
            while let Some(ev) = client.try_poll() {
                alive &= handle(sess, sh, ev);
            }
        }
        if !alive {
            return;
        }
        let _ = client.ping_if_idle();
    }
}

/// Session 0 of `watch`: sets hot keys whose watches are all armed.
fn drive_watch_writer(client: &mut Client, sh: &Shared) {
    let cfg = &sh.cfg;
    let w = &sh.watch;
    let t0 = sh.t0();
    let measure_start = cfg.measure_start(t0);
    let deadline = cfg.deadline(t0);
    let mut busy = vec![false; w.keys];
    let mut cursor = 0;
    let mut stopping = false;
    let mut drain_until: Option<Instant> = None;
    let mut path = String::new();
    loop {
        let now = Instant::now();
        if !stopping && (now >= deadline || sh.stop.load(Ordering::Relaxed)) {
            stopping = true;
        }
        let mut starved = false;
        if !stopping {
            while client.outstanding() < cfg.inflight {
                let found = (0..w.keys)
                    .map(|j| (cursor + j) % w.keys)
                    .find(|&k| !busy[k] && w.armed[k].load(Ordering::Acquire) == w.watchers);
                let Some(k) = found else {
                    starved = true;
                    break;
                };
                cursor = k + 1;
                if sh.claim().is_none() {
                    stopping = true;
                    break;
                }
                busy[k] = true;
                w.armed[k].store(0, Ordering::Release);
                let start = Instant::now();
                w.set_ns[k].store(
                    start.saturating_duration_since(t0).as_nanos() as u64,
                    Ordering::Release,
                );
                w.sets[k].fetch_add(1, Ordering::AcqRel);
                if start >= measure_start {
                    sh.stats[0]
                        .issued
                        .fetch_add(w.watchers as u64, Ordering::Relaxed);
                }
                path.clear();
                let _ = write!(path, "{}/watch/w{k}", cfg.root);
                client.queue(
                    &Op::SetData {
                        path: &path,
                        data: &sh.value,
                        version: -1,
                    },
                    k as u64,
                    start,
                );
            }
            let _ = client.flush();
        }
        if stopping && client.outstanding() == 0 {
            return;
        }
        let now = Instant::now();
        let mut wake = if stopping {
            *drain_until.get_or_insert(now + cfg.drain_timeout)
        } else {
            deadline
        };
        if stopping && now >= wake {
            abandon(0, sh, client);
            return;
        }
        if starved {
            // Waiting on other sessions' re-arms, which do not come through this socket.
            wake = wake.min(now + Duration::from_micros(200));
        }
        wake = wake.min(now + client.ping_interval());
        let mut events = Vec::new();
        if let Some(ev) = client.poll(Some(wake.saturating_duration_since(now))) {
            events.push(ev);
            while let Some(ev) = client.try_poll() {
                events.push(ev);
            }
        }
        for ev in events {
            match ev {
                Event::Reply(r) => {
                    let k = r.tag as usize;
                    if let Some(b) = busy.get_mut(k) {
                        *b = false;
                    }
                    let code = r.code();
                    if code != 0 {
                        // No event will fire: take the set back and leave the watches armed.
                        if k < w.keys {
                            w.sets[k].fetch_sub(1, Ordering::AcqRel);
                            w.armed[k].store(w.watchers, Ordering::Release);
                        }
                        sh.settle(0, r.start, r.received, code);
                    }
                }
                Event::Watch(_) => {}
                Event::Closed { reason, lost } => {
                    let now = Instant::now();
                    for p in &lost {
                        if (p.tag as usize) < w.keys {
                            w.sets[p.tag as usize].fetch_sub(1, Ordering::AcqRel);
                        }
                        sh.settle(0, p.start, now, Code::ConnectionLoss as i32);
                    }
                    sh.note(format!("the watch writer lost its connection: {reason}"));
                    return;
                }
            }
        }
        let _ = client.ping_if_idle();
    }
}

/// A watching session of `watch`: holds an exists watch on every hot key.
fn drive_watcher(sess: usize, client: &mut Client, sh: &Shared) {
    let cfg = &sh.cfg;
    let w = &sh.watch;
    let t0 = sh.t0();
    let prefix = format!("{}/watch/w", cfg.root);
    let mut seen = vec![0u64; w.keys];
    let mut path = String::new();
    for k in 0..w.keys {
        path.clear();
        let _ = write!(path, "{prefix}{k}");
        client.queue(
            &Op::Exists {
                path: &path,
                watch: true,
            },
            k as u64,
            Instant::now(),
        );
    }
    let _ = client.flush();
    let mut drain_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let writer_done = w.writer_done.load(Ordering::Acquire);
        if writer_done {
            if client.outstanding() == 0
                && (0..w.keys).all(|k| seen[k] >= w.sets[k].load(Ordering::Acquire))
            {
                return;
            }
            let until = *drain_until.get_or_insert(now + cfg.drain_timeout);
            if now >= until {
                let missing: u64 = (0..w.keys)
                    .map(|k| w.sets[k].load(Ordering::Acquire).saturating_sub(seen[k]))
                    .sum();
                if missing > 0 {
                    sh.note(format!("{missing} notification(s) never arrived"));
                    *lock(&sh.stats[sess].errors)
                        .entry(Code::RequestTimeout as i32)
                        .or_insert(0) += missing;
                }
                abandon(sess, sh, client);
                return;
            }
        }
        // The writer's end is not signalled through this socket: look again every few ms.
        let timeout = client
            .ping_interval()
            .min(Duration::from_millis(if writer_done { 5 } else { 20 }));
        let mut events = Vec::new();
        if let Some(ev) = client.poll(Some(timeout)) {
            events.push(ev);
            while let Some(ev) = client.try_poll() {
                events.push(ev);
            }
        }
        let mut rearm = false;
        for ev in events {
            match ev {
                Event::Reply(r) => {
                    let code = r.code();
                    let k = r.tag as usize;
                    if (code == 0 || code == Code::NoNode as i32) && k < w.keys {
                        w.armed[k].fetch_add(1, Ordering::AcqRel);
                    } else {
                        sh.settle(sess, r.start, r.received, code);
                    }
                }
                Event::Watch(ev) => {
                    if ev.kind != event::NODE_DATA_CHANGED {
                        continue;
                    }
                    let Some(k) = ev
                        .path
                        .strip_prefix(&prefix)
                        .and_then(|s| s.parse::<usize>().ok())
                        .filter(|k| *k < w.keys)
                    else {
                        continue;
                    };
                    seen[k] += 1;
                    let start = t0 + Duration::from_nanos(w.set_ns[k].load(Ordering::Acquire));
                    sh.settle(sess, start, ev.received, 0);
                    path.clear();
                    let _ = write!(path, "{prefix}{k}");
                    client.queue(
                        &Op::Exists {
                            path: &path,
                            watch: true,
                        },
                        k as u64,
                        Instant::now(),
                    );
                    rearm = true;
                }
                Event::Closed { reason, .. } => {
                    sh.note(format!("a watcher lost its connection: {reason}"));
                    return;
                }
            }
        }
        if rearm {
            let _ = client.flush();
        }
        let _ = client.ping_if_idle();
    }
}

/// Collects the sessions' interval histograms once a second, prints progress, writes the
/// log, until every session has finished; returns the merged histogram.
fn report_loop(
    sh: &Shared,
    t0: Instant,
    n: usize,
    done_rx: &mpsc::Receiver<usize>,
    log: Option<&mut BufWriter<File>>,
    control: &mut Client,
) -> Result<(Histogram<u64>, usize), String> {
    let cfg = &sh.cfg;
    let measure_start = cfg.measure_start(t0);
    let mut total = new_hist();
    let mut interval = new_hist();
    let mut serializer = V2DeflateSerializer::new();
    let start_wall = SystemTime::now();
    let mut log_writer = match log {
        Some(w) => {
            let mut b = IntervalLogWriterBuilder::new();
            b.add_comment(&format!(
                "keel-bench {} {}x{} value {} B: latency of successful requests in microseconds",
                cfg.workload, cfg.sessions, cfg.inflight, cfg.value_size
            ));
            b.with_start_time(start_wall)
                .with_base_time(start_wall)
                .with_max_value_divisor(1000.0);
            Some(
                b.begin_log_with(w, &mut serializer)
                    .map_err(|e| format!("writing the histogram log: {e}"))?,
            )
        }
        None => None,
    };
    let mut finished = 0;
    let mut tick = 1u32;
    let mut last_settled = 0u64;
    let mut last_t = t0;
    let mut intervals = 0;
    loop {
        let next = t0 + Duration::from_secs(tick as u64);
        let mut all_done = false;
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match done_rx.recv_timeout(left) {
                Ok(_) => {
                    finished += 1;
                    if finished == n {
                        all_done = true;
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    all_done = true;
                    break;
                }
            }
        }
        let now = Instant::now();
        interval.reset();
        let mut settled = 0;
        let mut errs = 0;
        for st in &sh.stats {
            let mut h = lock(&st.interval);
            let _ = interval.add(&*h);
            h.reset();
            drop(h);
            settled += st.settled.load(Ordering::Relaxed);
            errs += st.error_count.load(Ordering::Relaxed);
        }
        let _ = total.add(&interval);
        if now > measure_start && (!interval.is_empty() || all_done) {
            if let Some(lw) = log_writer.as_mut() {
                let from = last_t.max(measure_start).saturating_duration_since(t0);
                let dur = now.saturating_duration_since(last_t.max(measure_start));
                lw.write_histogram(&interval, from, dur, None)
                    .map_err(|e| format!("writing the histogram log: {e}"))?;
                intervals += 1;
            }
        }
        if cfg.progress && !all_done {
            let secs = now
                .saturating_duration_since(last_t)
                .as_secs_f64()
                .max(1e-3);
            let rate = (settled - last_settled) as f64 / secs;
            let phase = if last_t < measure_start {
                "warm-up "
            } else {
                "measured"
            };
            let p99 = if total.is_empty() {
                "-".to_string()
            } else {
                fmt_us(total.value_at_quantile(0.99))
            };
            eprintln!(
                "[{:>5.1}s] {phase} {:>10} ops/s   p99 so far {:>10}   errors {}",
                now.saturating_duration_since(t0).as_secs_f64(),
                fmt_count(rate),
                p99,
                errs
            );
        }
        last_settled = settled;
        last_t = now;
        let _ = control.ping_if_idle();
        if all_done {
            break;
        }
        tick += 1;
    }
    drop(log_writer);
    Ok((total, intervals))
}
