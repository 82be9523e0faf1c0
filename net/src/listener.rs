//! Network cores: one pinned thread per core, each running its own compio runtime
//! (io_uring where the kernel allows, polling otherwise) with its own listening socket on
//! the client port (SO_REUSEPORT lets the kernel spread connections across cores).
//! `maxClientCnxns` is enforced here, at accept, across all cores.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tracing::{info, warn};

use crate::conn::{self, ConnSettings};
use crate::msg::ToEngine;

/// Connections per client address and in all, shared by all cores.
#[derive(Default)]
pub struct ConnLimits {
    /// `maxClientCnxns`; 0 = no limit.
    max_per_ip: usize,
    /// `zookeeper.maxCnxns`; 0 = no limit.
    max_total: usize,
    /// Per address; the total is the sum, kept beside it.
    counts: Mutex<(HashMap<IpAddr, usize>, usize)>,
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerAddress(usize),
    Total(usize),
}

/// The listen backlog when `clientPortListenBacklog` is not set.
pub const DEFAULT_BACKLOG: i32 = 1024;

impl ConnLimits {
    pub fn new(max_per_ip: usize, max_total: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            max_per_ip,
            max_total,
            counts: Mutex::new((HashMap::new(), 0)),
        })
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnGuard, Refusal> {
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (counts, total) = &mut *guard;
        if self.max_total != 0 && *total >= self.max_total {
            return Err(Refusal::Total(self.max_total));
        }
        let n = counts.entry(ip).or_insert(0);
        if self.max_per_ip != 0 && *n >= self.max_per_ip {
            return Err(Refusal::PerAddress(self.max_per_ip));
        }
        *n += 1;
        *total += 1;
        Ok(ConnGuard {
            limits: self.clone(),
            ip,
        })
    }
}

struct ConnGuard {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut guard = self.limits.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (counts, total) = &mut *guard;
        *total = total.saturating_sub(1);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Binds the client port with SO_REUSEADDR (rebind at once after a restart) and
/// SO_REUSEPORT (one listener per core). A port still held by a process that is going
/// away is retried for a few seconds.
pub fn bind(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.set_reuse_port(true)?;
        match sock.bind(&addr.into()).and_then(|_| sock.listen(backlog)) {
            Ok(()) => {
                sock.set_nonblocking(true)?;
                return Ok(sock.into());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Runs one core's accept loop until the process exits.
pub fn run_core(
    core: usize,
    pin: Option<usize>,
    listener: std::net::TcpListener,
    engine: flume::Sender<ToEngine>,
    settings: Arc<ConnSettings>,
    limits: Arc<ConnLimits>,
    driver_tx: Option<std::sync::mpsc::Sender<String>>,
) {
    if let Some(c) = pin {
        keel_tuning::pin_current_thread(c);
    }
    let rt = match compio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            warn!("core {core}: cannot start a runtime: {e}");
            return;
        }
    };
    if let Some(tx) = driver_tx {
        let _ = tx.send(format!("{:?}", rt.driver_type()));
    }
    rt.block_on(async move {
        let listener = match compio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                warn!("core {core}: cannot register the listener: {e}");
                return;
            }
        };
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!("core {core}: accept failed: {e}");
                    compio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let guard = match limits.admit(peer.ip()) {
                Ok(g) => g,
                Err(Refusal::PerAddress(max)) => {
                    warn!("too many connections from {} - max is {max}", peer.ip());
                    drop(stream);
                    continue;
                }
                Err(Refusal::Total(max)) => {
                    warn!(
                        "refusing a connection from {}: {max} client connections already (zookeeper.maxCnxns)",
                        peer.ip()
                    );
                    drop(stream);
                    continue;
                }
            };
            let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
            let engine = engine.clone();
            let settings = settings.clone();
            compio::runtime::spawn(async move {
                let _guard = guard;
                conn::serve(stream, peer, conn, engine, settings).await;
            })
            .detach();
        }
    });
    info!("core {core} stopped");
}
