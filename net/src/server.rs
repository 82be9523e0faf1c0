//! Assembles a standalone server: recovery, the group-commit log thread, the engine
//! thread, the snapshot thread and the network cores; and takes it down again.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use keel_engine::{Engine, EngineConfig, Input};
use keel_tuning::Knobs;
use keel_wal::GroupCommit;
use thiserror::Error;
use tracing::{error, info};

use crate::conn::ConnSettings;
use crate::engine_loop::{now_ms, EngineLoop};
use crate::fourlw::{self, ServerInfo};
use crate::listener::{self, ConnLimits};
use crate::msg::ToEngine;
use crate::storage::{self, GroupSink, Layout, StorageError};

/// Everything a standalone server needs to start.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_addr: SocketAddr,
    pub engine: EngineConfig,
    pub max_client_cnxns: usize,
    pub max_buffer: usize,
    pub handshake_timeout: Duration,
    pub snap_count: i64,
    pub snap_retain: usize,
    pub four_letter_words: BTreeSet<String>,
    /// The configuration the options came from (`conf` answers it), if any.
    pub config: Option<crate::config::Config>,
    pub knobs: Knobs,
}

#[derive(Debug, Error)]
pub enum StartError {
    #[error("recovering the data directory failed: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A started server. Dropping it does not stop it; call `shutdown`.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub driver: String,
    engine_tx: flume::Sender<ToEngine>,
    engine_thread: Option<std::thread::JoinHandle<GroupCommit>>,
}

impl RunningServer {
    /// Stops taking requests, makes the log durable and joins the engine thread.
    pub fn shutdown(mut self) {
        let _ = self.engine_tx.send(ToEngine::Shutdown);
        if let Some(h) = self.engine_thread.take() {
            if let Ok(gc) = h.join() {
                let _ = gc.shutdown();
            }
        }
    }
}

pub fn start(opts: ServerOptions) -> Result<RunningServer, StartError> {
    let now = now_ms();
    let mut engine = Engine::new(opts.engine.clone(), now);
    let layout = Layout::new(&opts.data_dir, &opts.data_log_dir);
    let recovered = storage::recover(
        &layout,
        &mut engine,
        opts.knobs.wal_segment_bytes,
        opts.knobs.wal_preallocate,
    )?;
    let wal_backend = format!(
        "{} ({:?})",
        recovered.log.backend(),
        recovered.log.io_mode()
    );

    let (engine_tx, engine_rx) = flume::unbounded::<ToEngine>();
    let durable_tx = engine_tx.clone();
    let group = GroupCommit::spawn(
        recovered.log,
        Box::new(move |zxid| {
            let _ = durable_tx.send(ToEngine::Input(Input::Durable { zxid: zxid as i64 }));
        }),
        Box::new(|e| {
            // fsync errors are not retried (fsyncgate): memory may now be ahead of what
            // the disk can give back, so the only safe move is to stop.
            error!("FATAL: the write-ahead log failed: {e}; exiting so no unlogged write is ever acknowledged");
            std::process::exit(70);
        }),
    );

    // Listeners first, so a bind failure is reported before anything runs.
    let cores = opts.knobs.net_cores.max(1);
    let mut listeners = Vec::with_capacity(cores);
    let first = listener::bind(opts.client_addr).map_err(|source| StartError::Bind {
        addr: opts.client_addr,
        source,
    })?;
    let local_addr = first.local_addr().map_err(|source| StartError::Bind {
        addr: opts.client_addr,
        source,
    })?;
    listeners.push(first);
    for _ in 1..cores {
        listeners.push(
            listener::bind(local_addr).map_err(|source| StartError::Bind {
                addr: local_addr,
                source,
            })?,
        );
    }

    let settings = Arc::new(ConnSettings {
        max_buffer: opts.max_buffer,
        handshake_timeout: opts.handshake_timeout,
        read_buffer: opts.knobs.read_buffer_bytes,
    });
    let limits = ConnLimits::new(opts.max_client_cnxns);
    let (driver_tx, driver_rx) = std::sync::mpsc::channel();
    let core_ids = keel_tuning::available_cores();
    for (i, l) in listeners.into_iter().enumerate() {
        let engine_tx = engine_tx.clone();
        let settings = settings.clone();
        let limits = limits.clone();
        let pin = opts.knobs.pin_cores.then(|| (i + 1) % core_ids.max(1));
        let driver_tx = (i == 0).then(|| driver_tx.clone());
        std::thread::Builder::new()
            .name(format!("keel-net-{i}"))
            .spawn(move || listener::run_core(i, pin, l, engine_tx, settings, limits, driver_tx))
            .map_err(|source| StartError::Bind {
                addr: local_addr,
                source,
            })?;
    }
    let driver = driver_rx
        .recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| "unknown".into());

    let durable = Arc::new(AtomicI64::new(engine.last_zxid()));
    let (snap_tx, _snap_thread) = storage::spawn_snapshot_writer(
        layout.snap_dir.clone(),
        durable.clone(),
        opts.snap_retain.max(3),
        engine_tx.clone(),
    );
    let info = Arc::new(ServerInfo {
        allowed: opts.four_letter_words.clone(),
        config: opts.config.clone(),
        data_dir: opts.data_dir.clone(),
        log_dir: opts.data_log_dir.clone(),
        env: environment(&opts),
        driver: driver.clone(),
        wal_backend: wal_backend.clone(),
        started: std::time::Instant::now(),
    });
    let snap_count = opts.snap_count.max(2);
    let max_batch = opts.knobs.max_batch_txns;
    let engine_thread = std::thread::Builder::new()
        .name("keel-engine".into())
        .spawn(move || {
            let sink = GroupSink(group);
            let lp = EngineLoop {
                engine,
                rx: engine_rx,
                log: sink,
                info,
                snap_count,
                snap_tx: Some(snap_tx),
                durable,
                max_batch,
            };
            let GroupSink(group) = lp.run_and_return_sink();
            group
        })
        .map_err(|source| StartError::Bind {
            addr: local_addr,
            source,
        })?;

    info!(
        "keel {} serving ZooKeeper {} clients on {local_addr} ({cores} network core(s), runtime driver {driver}, log backend {wal_backend}, data dir {})",
        env!("CARGO_PKG_VERSION"),
        fourlw::ZK_COMPAT_VERSION,
        opts.data_dir.display()
    );
    Ok(RunningServer {
        local_addr,
        driver,
        engine_tx,
        engine_thread: Some(engine_thread),
    })
}

fn environment(opts: &ServerOptions) -> Vec<(String, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    vec![
        ("zookeeper.version".into(), fourlw::version_string()),
        ("keel.version".into(), env!("CARGO_PKG_VERSION").into()),
        ("host.name".into(), host),
        (
            "java.version".into(),
            "none (keel is written in Rust)".into(),
        ),
        ("os.name".into(), std::env::consts::OS.into()),
        ("os.arch".into(), std::env::consts::ARCH.into()),
        ("user.dir".into(), cwd),
        ("keel.dataDir".into(), opts.data_dir.display().to_string()),
        (
            "keel.dataLogDir".into(),
            opts.data_log_dir.display().to_string(),
        ),
    ]
}

#[derive(Debug, Error)]
pub enum OptionsError {
    #[error("clientPortAddress {addr:?} with clientPort {port} is not a usable address: {source}")]
    Address {
        addr: String,
        port: u16,
        source: std::net::AddrParseError,
    },
    #[error("-D{name}={value}: expected a whole number of milliseconds")]
    Property { name: String, value: String },
    #[error("{0}")]
    Knobs(#[from] keel_tuning::KnobError),
    #[error("this build runs standalone servers only; the config names {0} server.N lines (ensembles are not built yet)")]
    Ensemble(usize),
}

impl ServerOptions {
    /// Options from a parsed zoo.cfg (plus `-D` properties that only the JVM side of
    /// ZooKeeper reads, such as `znode.container.checkIntervalMs`), with the knobs from
    /// the environment.
    pub fn from_config(
        cfg: &crate::config::Config,
        props: &[(String, String)],
    ) -> Result<ServerOptions, OptionsError> {
        if cfg.is_distributed() {
            return Err(OptionsError::Ensemble(cfg.servers.len()));
        }
        let host = cfg.client_bind_address();
        let ip: std::net::IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|source| OptionsError::Address {
                addr: host.clone(),
                port: cfg.client_port,
                source,
            })?;
        let prop_ms = |name: &str, default: i64| -> Result<i64, OptionsError> {
            match props.iter().rev().find(|(k, _)| k == name) {
                None => Ok(default),
                Some((_, v)) => v.trim().parse().map_err(|_| OptionsError::Property {
                    name: name.into(),
                    value: v.clone(),
                }),
            }
        };
        let engine = EngineConfig {
            tick_ms: cfg.tick_time_ms as i32,
            min_session_timeout_ms: cfg.min_session_timeout_ms as i32,
            max_session_timeout_ms: cfg.max_session_timeout_ms as i32,
            super_digest: cfg.super_digest.clone(),
            extended_types: cfg.extended_types,
            container_check_ms: prop_ms("znode.container.checkIntervalMs", 60_000)?,
            container_never_used_ms: prop_ms("znode.container.maxNeverUsedIntervalMs", 0)?,
            // Standalone ZooKeeper seeds session ids with server id 1 (createSessionTrackerServerId).
            server_id: cfg.server_id.unwrap_or(1) as i64,
            secret: rand::random(),
        };
        Ok(ServerOptions {
            data_dir: cfg.data_dir.clone(),
            data_log_dir: cfg.data_log_dir.clone(),
            client_addr: SocketAddr::new(ip, cfg.client_port),
            engine,
            max_client_cnxns: cfg.max_client_cnxns as usize,
            max_buffer: cfg.jute_max_buffer as usize,
            handshake_timeout: Duration::from_millis(
                prop_ms("zookeeper.nio.sessionlessCnxnTimeout", 10_000)?.max(1) as u64,
            ),
            snap_count: cfg.snap_count as i64,
            snap_retain: cfg.snap_retain_count as usize,
            four_letter_words: cfg.four_letter_words.clone(),
            config: Some(cfg.clone()),
            knobs: Knobs::from_env()?,
        })
    }
}
