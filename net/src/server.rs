//! Assembles a server: recovery, the group-commit log thread, the engine thread (an
//! `Engine` standalone, a `Replica` in an ensemble, with the peer transport), the
//! snapshot thread and the network cores; and takes it down again.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use keel_engine::{Engine, EngineConfig};
use keel_tuning::Knobs;
use keel_wal::GroupCommit;
use thiserror::Error;
use tracing::info;

use keel_engine::zab::{Epochs, Replica, ReplicaConfig, Role};

use crate::conn::ConnSettings;
use crate::engine_loop::{now_ms, EngineLoop};
use crate::ensemble::ReplicaLoop;
use crate::fourlw::{self, ServerInfo};
use crate::listener::{self, ConnLimits};
use crate::msg::ToEngine;
use crate::peer::{self, PeerEvent, PeerNet};
use crate::storage::{self, GroupSink, Layout, StorageError};

/// Default `keel.maxQueuedReplyBytes`: 64 MiB of replies a client has not read.
pub const DEFAULT_MAX_QUEUED_REPLY_BYTES: usize = 64 << 20;

/// Everything a standalone server needs to start.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    pub client_addr: SocketAddr,
    pub engine: EngineConfig,
    pub max_client_cnxns: usize,
    /// `zookeeper.maxCnxns` (`maxCnxns`): most client connections in all; 0 = no limit.
    pub max_cnxns: usize,
    /// `clientPortListenBacklog`; `None`: Keel's default (1024).
    pub listen_backlog: Option<u32>,
    /// `globalOutstandingLimit`: requests a connection may have unanswered before it is
    /// no longer read.
    pub max_outstanding: usize,
    /// `keel.maxQueuedReplyBytes`: reply bytes a connection may have unwritten before it
    /// is cut off.
    pub max_queued_reply_bytes: usize,
    /// `keel.maxPeerFrameBytes`: the largest peer frame that carries transactions or a
    /// snapshot (a SNAP synchronisation is one frame), sent or accepted.
    pub max_peer_frame_bytes: usize,
    /// `keel.leaderSilenceMs`: the opt-in failure detector (see
    /// `ReplicaConfig::leader_silence_ms`); `None` (the default, or 0): syncLimit ticks.
    pub leader_silence_ms: Option<i64>,
    pub max_buffer: usize,
    pub handshake_timeout: Duration,
    pub snap_count: i64,
    pub snap_retain: usize,
    pub four_letter_words: BTreeSet<String>,
    /// The configuration the options came from (`conf` answers it), if any.
    pub config: Option<crate::config::Config>,
    pub knobs: Knobs,
    /// Set for a member of an ensemble; `None` runs standalone.
    pub ensemble: Option<EnsembleOptions>,
}

/// What an ensemble member needs beyond a standalone server's options.
#[derive(Debug, Clone)]
pub struct EnsembleOptions {
    /// This server's id (`myid`).
    pub my_id: u64,
    /// Every member, this one included.
    pub members: Vec<Member>,
    /// `tickTime` in ms.
    pub tick_ms: i64,
    /// `initLimit` in ticks.
    pub init_limit: i64,
    /// `syncLimit` in ticks.
    pub sync_limit: i64,
    /// `readonlymode.enabled`: serve read-only clients while cut off from the quorum.
    pub read_only_mode: bool,
    /// What `/zookeeper/config` holds: the membership in ZooKeeper's format.
    pub config_data: String,
    /// The membership's version (`zoo.cfg`'s `version`, or the dynamic file's suffix).
    pub config_version: i64,
    /// `reconfigEnabled`: accept `reconfig` requests when leading.
    pub reconfig_enabled: bool,
    /// `standaloneEnabled`: a reconfiguration may not leave fewer than two voters.
    pub standalone_enabled: bool,
}

pub use crate::membership::Member;

#[derive(Debug, Error)]
pub enum StartError {
    #[error("recovering the data directory failed: {0}")]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for peers on {addr} (this server's quorum port): {source}")]
    PeerBind {
        addr: String,
        source: std::io::Error,
    },
}

/// A started server. Dropping it does not stop it; call `shutdown`.
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub driver: String,
    engine_tx: flume::Sender<ToEngine>,
    engine_thread: Option<std::thread::JoinHandle<Option<GroupCommit>>>,
    peers: Option<Arc<PeerNet>>,
}

impl RunningServer {
    /// Stops taking requests, makes the log durable and joins the engine thread.
    pub fn shutdown(mut self) {
        let _ = self.engine_tx.send(ToEngine::Shutdown);
        if let Some(h) = self.engine_thread.take() {
            if let Ok(Some(gc)) = h.join() {
                let _ = gc.shutdown();
            }
        }
        if let Some(peers) = self.peers.take() {
            if let Ok(peers) = Arc::try_unwrap(peers) {
                peers.shutdown();
            }
        }
    }
}

/// What recovery produced, by mode.
enum Core {
    Standalone {
        engine: Box<Engine>,
        group: GroupCommit,
    },
    Member {
        replica: Box<Replica>,
        group: GroupCommit,
        peers: Arc<PeerNet>,
        epochs: Epochs,
        observer: bool,
    },
}

pub fn start(opts: ServerOptions) -> Result<RunningServer, StartError> {
    let now = now_ms();
    let mut engine = Engine::new(opts.engine.clone(), now);
    let layout = Layout::new(&opts.data_dir, &opts.data_log_dir);
    let (engine_tx, engine_rx) = flume::unbounded::<ToEngine>();
    let (core, wal_backend) = match &opts.ensemble {
        None => {
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
            let group = storage::spawn_group(recovered.log, 0, engine_tx.clone());
            (
                Core::Standalone {
                    engine: Box::new(engine),
                    group,
                },
                wal_backend,
            )
        }
        Some(ens) => {
            let recovered = storage::recover_member(
                &layout,
                &opts.data_dir,
                &mut engine,
                opts.knobs.wal_segment_bytes,
                opts.knobs.wal_preallocate,
            )?;
            let wal_backend = format!(
                "{} ({:?})",
                recovered.log.backend(),
                recovered.log.io_mode()
            );
            // The newest of zoo.cfg's membership, the one saved by the last committed
            // reconfiguration and the newest snapshot's.
            let static_members = ens.members.clone();
            let mut ens = ens.clone();
            let saved = crate::membership::load(&opts.data_dir)
                .map_err(|e| StartError::Storage(StorageError::Membership(e)))?;
            let configured = crate::membership::parse(&ens.config_data)
                .map(|p| (ens.config_data.clone(), p))
                .map_err(|e| {
                    StartError::Storage(StorageError::Membership(format!(
                        "zoo.cfg's server lines: {e}"
                    )))
                })?;
            let chosen =
                crate::membership::at_start(configured, saved, Some(engine.tree().config_text()));
            let file = crate::membership::file(&opts.data_dir);
            match chosen.source {
                crate::membership::Source::ZooCfg => {}
                crate::membership::Source::Saved => info!(
                    "membership 0x{:x} from the last reconfiguration ({}) replaces zoo.cfg's",
                    chosen.parsed.membership.version,
                    file.display()
                ),
                crate::membership::Source::Snapshot => {
                    info!(
                        "membership 0x{:x} from the newest snapshot replaces the configured one",
                        chosen.parsed.membership.version
                    );
                    if let Err(e) = crate::membership::save(&opts.data_dir, &chosen.text) {
                        return Err(StartError::Storage(StorageError::Membership(format!(
                            "{}: {e}",
                            file.display()
                        ))));
                    }
                }
            }
            let membership = chosen.parsed.membership;
            ens.members = chosen.parsed.members;
            ens.config_data = chosen.text;
            ens.config_version = membership.version;
            // A server removed by a reconfiguration still starts (as a non-voting
            // learner) from its own zoo.cfg line.
            let me = ens
                .members
                .iter()
                .chain(static_members.iter())
                .find(|m| m.id == ens.my_id)
                .cloned()
                .ok_or_else(|| StartError::PeerBind {
                    addr: format!("server.{}", ens.my_id),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "this server's id is not among the members",
                    ),
                })?;
            let quorum =
                peer::bind_quorum(&me.peer_addr).map_err(|source| StartError::PeerBind {
                    addr: me.peer_addr.clone(),
                    source,
                })?;
            let mut rcfg = ReplicaConfig::new(
                ens.my_id,
                ens.members
                    .iter()
                    .filter(|m| !m.observer)
                    .map(|m| m.id)
                    .collect(),
            );
            rcfg.observers = ens
                .members
                .iter()
                .filter(|m| m.observer)
                .map(|m| m.id)
                .collect();
            rcfg.tick_ms = ens.tick_ms;
            rcfg.init_limit = ens.init_limit;
            rcfg.sync_limit = ens.sync_limit;
            rcfg.leader_silence_ms = opts.leader_silence_ms;
            if let Some(ms) = opts.leader_silence_ms {
                info!(
                    "keel.leaderSilenceMs={ms}: a silent leader is given up after {} ms (syncLimit x tickTime is {} ms)",
                    rcfg.silence_ms(),
                    ens.sync_limit * ens.tick_ms
                );
            }
            rcfg.max_batch_txns = opts.knobs.max_batch_txns.max(1);
            rcfg.read_only_mode = ens.read_only_mode;
            rcfg.reconfig_enabled = ens.reconfig_enabled;
            rcfg.standalone_enabled = ens.standalone_enabled;
            rcfg.membership = Some(membership);
            let peer_tx = engine_tx.clone();
            let mut settings = peer::PeerSettings::new(
                ens.my_id,
                ens.members
                    .iter()
                    .filter(|m| m.id != ens.my_id)
                    .map(|m| peer::PeerAddr {
                        id: m.id,
                        addr: m.peer_addr.clone(),
                    })
                    .collect(),
            );
            settings.max_frame = opts.max_peer_frame_bytes;
            settings.write_timeout = Duration::from_millis(
                (ens.tick_ms * ens.init_limit.max(ens.sync_limit)).clamp(5_000, 120_000) as u64,
            );
            let replica = Replica::new(rcfg, engine, recovered.epochs, recovered.frames, now_ms());
            let peers = PeerNet::start(
                settings,
                quorum,
                Arc::new(move |e| {
                    let _ = peer_tx.send(match e {
                        PeerEvent::Msg { from, msg } => ToEngine::Peer { from, msg },
                        PeerEvent::Down { peer } => ToEngine::PeerDown { peer },
                    });
                }),
            )
            .map_err(|source| StartError::PeerBind {
                addr: me.peer_addr.clone(),
                source,
            })?;
            info!(
                "ensemble member {} of {}: peer links on {} (quorum port)",
                ens.my_id,
                ens.members.len(),
                peers.local_addr()
            );
            let group = storage::spawn_group(recovered.log, 0, engine_tx.clone());
            (
                Core::Member {
                    replica: Box::new(replica),
                    group,
                    peers: Arc::new(peers),
                    epochs: recovered.epochs,
                    observer: me.observer,
                },
                wal_backend,
            )
        }
    };

    // Listeners first, so a bind failure is reported before anything runs.
    let cores = opts.knobs.net_cores.max(1);
    let mut listeners = Vec::with_capacity(cores);
    let backlog = opts
        .listen_backlog
        .map_or(listener::DEFAULT_BACKLOG, |b| b as i32);
    let first = listener::bind(opts.client_addr, backlog).map_err(|source| StartError::Bind {
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
            listener::bind(local_addr, backlog).map_err(|source| StartError::Bind {
                addr: local_addr,
                source,
            })?,
        );
    }

    let in_flight = crate::msg::InFlight::new(crate::msg::DEFAULT_IN_FLIGHT_BYTES);
    let settings = Arc::new(ConnSettings {
        max_buffer: opts.max_buffer,
        handshake_timeout: opts.handshake_timeout,
        read_buffer: opts.knobs.read_buffer_bytes,
        max_outstanding: opts.max_outstanding.max(1),
        max_queued_bytes: opts.max_queued_reply_bytes.max(1),
        in_flight: in_flight.clone(),
    });
    let limits = ConnLimits::new(opts.max_client_cnxns, opts.max_cnxns);
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

    let applied = match &core {
        Core::Standalone { engine, .. } => engine.last_zxid(),
        Core::Member { replica, .. } => replica.engine().last_zxid(),
    };
    let durable = Arc::new(AtomicI64::new(applied));
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
    let mut peers_handle = None;
    let thread_body: Box<dyn FnOnce() -> Option<GroupCommit> + Send> = match core {
        Core::Standalone { engine, group } => Box::new(move || {
            let sink = GroupSink(group);
            let lp = EngineLoop {
                engine: *engine,
                rx: engine_rx,
                log: sink,
                info,
                snap_count,
                snap_tx: Some(snap_tx),
                durable,
                max_batch,
                in_flight,
            };
            let GroupSink(group) = lp.run_and_return_sink();
            Some(group)
        }),
        Core::Member {
            replica,
            group,
            peers,
            epochs,
            observer,
        } => {
            peers_handle = Some(peers.clone());
            let tx = engine_tx.clone();
            let data_dir = opts.data_dir.clone();
            let snap_dir = layout.snap_dir.clone();
            Box::new(move || {
                let lp = ReplicaLoop {
                    replica: *replica,
                    rx: engine_rx,
                    tx,
                    group: Some(group),
                    generation: 0,
                    peers,
                    info,
                    data_dir,
                    snap_dir,
                    snap_count,
                    snap_tx: Some(snap_tx),
                    durable,
                    max_batch,
                    in_flight,
                    epochs,
                    observer,
                    role: Role::Looking,
                    epoch: 0,
                };
                lp.run()
            })
        }
    };
    let engine_thread = std::thread::Builder::new()
        .name("keel-engine".into())
        .spawn(thread_body)
        .map_err(|source| StartError::Bind {
            addr: local_addr,
            source,
        })?;

    match &opts.ensemble {
        None => info!(
            "keel {} serving ZooKeeper {} clients on {local_addr} ({cores} network core(s), runtime driver {driver}, log backend {wal_backend}, data dir {})",
            env!("CARGO_PKG_VERSION"),
            fourlw::ZK_COMPAT_VERSION,
            opts.data_dir.display()
        ),
        Some(ens) => info!(
            "keel {} ensemble member {} listening for ZooKeeper {} clients on {local_addr}; it serves them once it follows or leads ({cores} network core(s), runtime driver {driver}, log backend {wal_backend}, data dir {})",
            env!("CARGO_PKG_VERSION"),
            ens.my_id,
            fourlw::ZK_COMPAT_VERSION,
            opts.data_dir.display()
        ),
    }
    Ok(RunningServer {
        local_addr,
        driver,
        engine_tx,
        engine_thread: Some(engine_thread),
        peers: peers_handle,
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
    #[error("server.{id}: cannot use {host:?} as a peer address: {reason}")]
    Peer {
        id: u64,
        host: String,
        reason: String,
    },
}

impl ServerOptions {
    /// Options from a parsed zoo.cfg (plus `-D` properties that only the JVM side of
    /// ZooKeeper reads, such as `znode.container.checkIntervalMs`), with the knobs from
    /// the environment.
    pub fn from_config(
        cfg: &crate::config::Config,
        props: &[(String, String)],
    ) -> Result<ServerOptions, OptionsError> {
        let ensemble = if cfg.is_distributed() {
            Some(ensemble_options(cfg)?)
        } else {
            None
        };
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
            skip_acl: cfg.skip_acl,
            extended_types: cfg.extended_types,
            container_check_ms: prop_ms("znode.container.checkIntervalMs", 60_000)?,
            container_never_used_ms: prop_ms("znode.container.maxNeverUsedIntervalMs", 0)?,
            // Standalone ZooKeeper seeds session ids with server id 1 (createSessionTrackerServerId).
            server_id: cfg.server_id.unwrap_or(1) as i64,
            secret: rand::random(),
            local_sessions: cfg.local_sessions,
            local_sessions_upgrading: cfg.local_sessions_upgrading,
            max_multi_read_bytes: (cfg.jute_max_buffer as usize)
                .saturating_mul(4)
                .max(keel_engine::server::DEFAULT_MAX_MULTI_READ_BYTES),
        };
        Ok(ServerOptions {
            data_dir: cfg.data_dir.clone(),
            data_log_dir: cfg.data_log_dir.clone(),
            client_addr: SocketAddr::new(ip, cfg.client_port),
            engine,
            max_client_cnxns: cfg.max_client_cnxns as usize,
            max_cnxns: cfg.max_cnxns as usize,
            listen_backlog: cfg.client_port_listen_backlog,
            max_outstanding: cfg.global_outstanding_limit.max(1) as usize,
            max_queued_reply_bytes: prop_ms(
                "keel.maxQueuedReplyBytes",
                DEFAULT_MAX_QUEUED_REPLY_BYTES as i64,
            )?
            .max(1) as usize,
            max_peer_frame_bytes: prop_ms("keel.maxPeerFrameBytes", peer::DEFAULT_MAX_FRAME as i64)?
                .clamp(
                    keel_engine::zab::msg::CONTROL_FRAME_MAX as i64,
                    u32::MAX as i64,
                ) as usize,
            leader_silence_ms: match prop_ms("keel.leaderSilenceMs", 0)? {
                0 => None,
                ms if ms < 0 => {
                    return Err(OptionsError::Property {
                        name: "keel.leaderSilenceMs".into(),
                        value: ms.to_string(),
                    })
                }
                ms => Some(ms),
            },
            max_buffer: cfg.jute_max_buffer as usize,
            handshake_timeout: Duration::from_millis(
                prop_ms("zookeeper.nio.sessionlessCnxnTimeout", 10_000)?.max(1) as u64,
            ),
            snap_count: cfg.snap_count as i64,
            snap_retain: cfg.snap_retain_count as usize,
            four_letter_words: cfg.four_letter_words.clone(),
            config: Some(cfg.clone()),
            knobs: Knobs::from_env()?,
            ensemble,
        })
    }
}

/// The ensemble part of the options: members from the `server.N` lines (the first
/// address of each; Keel dials one), this server's id from `myid`.
fn ensemble_options(cfg: &crate::config::Config) -> Result<EnsembleOptions, OptionsError> {
    let my_id = cfg.server_id.ok_or_else(|| OptionsError::Peer {
        id: 0,
        host: String::new(),
        reason: "no myid".into(),
    })?;
    let mut members = Vec::with_capacity(cfg.servers.len());
    for s in &cfg.servers {
        members.push(
            crate::membership::member_of(s).ok_or_else(|| OptionsError::Peer {
                id: s.id,
                host: String::new(),
                reason: "no address".into(),
            })?,
        );
    }
    Ok(EnsembleOptions {
        my_id,
        members,
        tick_ms: cfg.tick_time_ms as i64,
        init_limit: cfg.init_limit as i64,
        sync_limit: cfg.sync_limit as i64,
        read_only_mode: cfg.read_only_mode,
        config_data: cfg.membership(),
        config_version: cfg.config_version as i64,
        reconfig_enabled: cfg.reconfig_enabled,
        standalone_enabled: cfg.standalone_enabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensemble_options_from_server_lines() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("myid"), "2").unwrap();
        let cfg_path = d.path().join("zoo.cfg");
        std::fs::write(
            &cfg_path,
            format!(
                "tickTime=100\ninitLimit=10\nsyncLimit=5\ndataDir={}\n\
                 server.1=127.0.0.1:2888:3888;2181\nserver.2=127.0.0.1:2889:3889;2182\n\
                 server.3=[::1]:2890:3890:participant;2183\nserver.4=localhost:2891:3891:observer;2184\n",
                d.path().display()
            ),
        )
        .unwrap();
        let cfg = crate::config::Config::from_file(&cfg_path).unwrap();
        let o = ServerOptions::from_config(&cfg, &[]).unwrap();
        assert_eq!(o.client_addr.port(), 2182);
        assert_eq!(o.engine.server_id, 2);
        let e = o.ensemble.expect("an ensemble");
        assert_eq!(
            (e.my_id, e.tick_ms, e.init_limit, e.sync_limit),
            (2, 100, 10, 5)
        );
        let m: Vec<_> = e
            .members
            .iter()
            .map(|m| (m.id, m.observer, m.peer_addr.as_str()))
            .collect();
        assert_eq!(
            m,
            vec![
                (1, false, "127.0.0.1:2888"),
                (2, false, "127.0.0.1:2889"),
                (3, false, "[::1]:2890"),
                (4, true, "localhost:2891")
            ]
        );
    }
}
