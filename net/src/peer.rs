//! The peer transport of an ensemble: one TCP connection per pair of servers, carrying
//! [`PeerMsg`]s.
//!
//! * Every server listens on its **quorum port** (the second number of its `server.N`
//!   line). The election port (the third) is parsed but not used: elections and the
//!   broadcast share the one link.
//! * Of each pair, the server with the **smaller id dials** the larger one's quorum
//!   port, retrying with a backoff (50 ms doubling to 500 ms) while it is down, and
//!   redials as soon as a link breaks. The larger id only accepts.
//! * Both ends first send a **hello**: `"KEEL"`, `u32` protocol version, `u64` server id
//!   (big-endian, 16 bytes). The acceptor refuses an id it does not know or that is not
//!   smaller than its own; the dialer refuses an answer from a server other than the
//!   one it meant to reach. Hellos must arrive within [`HELLO_TIMEOUT`].
//! * Then each side writes frames: `u32` big-endian length, then [`PeerMsg::encode`]'s
//!   bytes. Everything queued for a peer is written with one `write` call. A length
//!   above [`PeerSettings::max_frame`] or a body [`PeerMsg::decode`] refuses closes
//!   that link with an error in the log (never a panic, never an allocation of the
//!   announced length: the body is read as it arrives).
//! * Links are threads: an accept thread, a dialer thread per larger-id peer, and a
//!   reader (the dialer or handshake thread itself) plus a writer thread per live link.
//!   Inbound messages and link failures go to one callback (the engine channel).
//!
//! Delivery guarantees, as the replica expects them: on a link, messages arrive in the
//! order sent. When a link breaks (EOF, I/O error, bad frame, a newer link from the same
//! peer replacing it, or the queue for it overflowing), the messages still queued for it
//! are dropped and [`PeerEvent::Down`] is delivered, exactly once per link; nothing read
//! from that link is delivered after its `Down`. While a peer has no link, messages for
//! it are dropped — all but the newest [`PeerMsg::Vote`], which is kept and written
//! first when a link comes up, so a server that starts before its peers is heard at
//! once (votes are superseded by newer ones and the election re-sends them anyway).
//! Nothing phase-bound (a proposal, a commit, a sync) ever crosses from before a break
//! to a new link.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use keel_engine::zab::{PeerMsg, Sid};
use tracing::{debug, error, info, warn};

/// Magic at the start of a hello.
const HELLO_MAGIC: &[u8; 4] = b"KEEL";
/// Version of the peer protocol (hello + framing + `PeerMsg` encoding).
pub const PEER_PROTOCOL_VERSION: u32 = 1;
/// Bytes in a hello.
const HELLO_LEN: usize = 16;
/// How long either side waits for the other's hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Default largest peer frame: 1 GiB. A `Sync` with a snapshot is one frame, so this
/// bounds the size of a state a leader can send to a follower that is far behind.
pub const DEFAULT_MAX_FRAME: usize = 1 << 30;
/// Default most bytes queued for one peer (down, or not reading fast enough) before
/// the queue is dropped and the link declared broken: 256 MiB. One message larger
/// than this is still queued on its own.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 256 << 20;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// What the transport reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    Msg {
        from: Sid,
        msg: PeerMsg,
    },
    /// The link to `peer` broke: messages sent to it since the last `Down` may be lost.
    Down {
        peer: Sid,
    },
}

/// Where events go. Called from transport threads, for one peer never concurrently.
pub type Deliver = Arc<dyn Fn(PeerEvent) + Send + Sync>;

/// One other member of the ensemble.
#[derive(Debug, Clone)]
pub struct PeerAddr {
    pub id: Sid,
    /// `host:quorumPort` (IPv6 literals in brackets), resolved at every dial.
    pub addr: String,
}

#[derive(Debug, Clone)]
pub struct PeerSettings {
    pub my_id: Sid,
    /// Every other member.
    pub peers: Vec<PeerAddr>,
    /// Largest frame accepted or sent, in bytes.
    pub max_frame: usize,
    /// Most bytes queued for one peer (link down or slow) before the queue is dropped
    /// and the link reported down.
    pub max_queued_bytes: usize,
    /// A write that makes no progress for this long breaks the link.
    pub write_timeout: Duration,
}

impl PeerSettings {
    pub fn new(my_id: Sid, peers: Vec<PeerAddr>) -> PeerSettings {
        PeerSettings {
            my_id,
            peers,
            max_frame: DEFAULT_MAX_FRAME,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Binds this server's quorum port (`host:port` from its `server.N` line) with
/// `SO_REUSEADDR`, retrying for 5 s while a previous process still holds it.
pub fn bind_quorum(addr: &str) -> std::io::Result<TcpListener> {
    let resolved: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
    let Some(first) = resolved.first().copied() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the host name resolves to no address",
        ));
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(first),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        sock.set_reuse_address(true)?;
        match sock.bind(&first.into()).and_then(|_| sock.listen(128)) {
            Ok(()) => return Ok(sock.into()),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e),
        }
    }
}

struct Link {
    id: u64,
    /// A handle on the socket, to shut it down from elsewhere.
    stream: TcpStream,
}

#[derive(Default)]
struct SlotState {
    link: Option<Link>,
    /// Encoded messages (without the length prefix) not yet taken by a writer.
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
}

struct Slot {
    addr: String,
    state: Mutex<SlotState>,
    /// Wakes the writer of the current link.
    cv: Condvar,
}

struct Inner {
    settings: PeerSettings,
    slots: HashMap<Sid, Slot>,
    deliver: Deliver,
    stop: AtomicBool,
    next_link: AtomicU64,
    listen_addr: SocketAddr,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running transport. `send` may be called from any thread.
pub struct PeerNet {
    inner: Arc<Inner>,
}

fn lock(slot: &Slot) -> MutexGuard<'_, SlotState> {
    slot.state.lock().unwrap_or_else(|p| p.into_inner())
}

impl PeerNet {
    /// Starts accepting on `listener` (this server's quorum port) and dialing every peer
    /// with a larger id.
    pub fn start(
        settings: PeerSettings,
        listener: TcpListener,
        deliver: Deliver,
    ) -> std::io::Result<PeerNet> {
        let listen_addr = listener.local_addr()?;
        listener.set_nonblocking(false)?;
        let slots = settings
            .peers
            .iter()
            .filter(|p| p.id != settings.my_id)
            .map(|p| {
                (
                    p.id,
                    Slot {
                        addr: p.addr.clone(),
                        state: Mutex::new(SlotState::default()),
                        cv: Condvar::new(),
                    },
                )
            })
            .collect();
        let inner = Arc::new(Inner {
            settings,
            slots,
            deliver,
            stop: AtomicBool::new(false),
            next_link: AtomicU64::new(1),
            listen_addr,
            threads: Mutex::new(Vec::new()),
        });
        let mut handles = Vec::new();
        {
            let inner = inner.clone();
            handles.push(
                std::thread::Builder::new()
                    .name("keel-peer-accept".into())
                    .spawn(move || accept_loop(inner, listener))?,
            );
        }
        let mut dial: Vec<Sid> = inner
            .slots
            .keys()
            .copied()
            .filter(|id| *id > inner.settings.my_id)
            .collect();
        dial.sort_unstable();
        for peer in dial {
            let inner = inner.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("keel-peer-{peer}"))
                    .spawn(move || dial_loop(inner, peer))?,
            );
        }
        inner
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(handles);
        Ok(PeerNet { inner })
    }

    /// The address the quorum port is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.listen_addr
    }

    /// Queues `msg` for `to`. Never blocks on the network.
    pub fn send(&self, to: Sid, msg: &PeerMsg) {
        let Some(slot) = self.inner.slots.get(&to) else {
            warn!(
                "dropping a {} message for server {to}, which is not a peer",
                msg.name()
            );
            return;
        };
        let bytes = msg.encode();
        if bytes.len() > self.inner.settings.max_frame {
            error!(
                "a {} message for server {to} is {} bytes, above the peer frame limit of {}; dropping it and resetting the link",
                msg.name(),
                bytes.len(),
                self.inner.settings.max_frame
            );
            let mut st = lock(slot);
            drop_link(&self.inner, to, slot, &mut st, None);
            return;
        }
        let mut st = lock(slot);
        if st.link.is_none() {
            if matches!(msg, PeerMsg::Vote(_)) {
                st.queue.clear();
                st.queued_bytes = bytes.len();
                st.queue.push_back(bytes);
            } else {
                debug!("no link to server {to}: dropping a {} message", msg.name());
            }
            return;
        }
        if st.queued_bytes + bytes.len() > self.inner.settings.max_queued_bytes {
            warn!(
                "more than {} bytes queued for server {to}; dropping them and reporting the link down",
                self.inner.settings.max_queued_bytes
            );
            drop_link(&self.inner, to, slot, &mut st, None);
        }
        st.queued_bytes += bytes.len();
        st.queue.push_back(bytes);
        slot.cv.notify_all();
    }

    /// Whether a link to `peer` is up now (for tests and diagnostics).
    pub fn is_connected(&self, peer: Sid) -> bool {
        self.inner
            .slots
            .get(&peer)
            .is_some_and(|s| lock(s).link.is_some())
    }

    /// Closes every link and stops every transport thread (joining them).
    pub fn shutdown(self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        for slot in self.inner.slots.values() {
            let mut st = lock(slot);
            if let Some(link) = st.link.take() {
                let _ = link.stream.shutdown(Shutdown::Both);
            }
            st.queue.clear();
            st.queued_bytes = 0;
            slot.cv.notify_all();
        }
        // Wake the accept thread.
        let mut wake = self.inner.listen_addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let _ = TcpStream::connect_timeout(&wake, Duration::from_millis(200));
        let handles =
            std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}

/// Drops the current link of `peer` (if it is `only`, or any when `None`) and the
/// messages queued for it, and reports `Down` once. Called with the slot locked, so the
/// report is ordered with the link's messages.
fn drop_link(inner: &Inner, peer: Sid, slot: &Slot, st: &mut SlotState, only: Option<u64>) {
    if let Some(want) = only {
        if st.link.as_ref().map(|l| l.id) != Some(want) {
            return;
        }
    }
    if let Some(link) = st.link.take() {
        let _ = link.stream.shutdown(Shutdown::Both);
    }
    st.queue.clear();
    st.queued_bytes = 0;
    slot.cv.notify_all();
    if !inner.stop.load(Ordering::SeqCst) {
        (inner.deliver)(PeerEvent::Down { peer });
    }
}

fn hello(my_id: Sid) -> [u8; HELLO_LEN] {
    let mut h = [0u8; HELLO_LEN];
    h[..4].copy_from_slice(HELLO_MAGIC);
    h[4..8].copy_from_slice(&PEER_PROTOCOL_VERSION.to_be_bytes());
    h[8..].copy_from_slice(&my_id.to_be_bytes());
    h
}

/// Reads the other side's hello and returns its server id.
fn read_hello(stream: &mut TcpStream) -> Result<Sid, String> {
    stream
        .set_read_timeout(Some(HELLO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut h = [0u8; HELLO_LEN];
    stream
        .read_exact(&mut h)
        .map_err(|e| format!("no hello: {e}"))?;
    if &h[..4] != HELLO_MAGIC {
        return Err("not a Keel peer (bad hello magic)".into());
    }
    let version = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    if version != PEER_PROTOCOL_VERSION {
        return Err(format!(
            "peer protocol version {version}, this server speaks {PEER_PROTOCOL_VERSION}"
        ));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[8..]);
    stream.set_read_timeout(None).map_err(|e| e.to_string())?;
    Ok(Sid::from_be_bytes(id))
}

fn tune(stream: &TcpStream, write_timeout: Duration) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(write_timeout));
    let ka = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(5))
        .with_interval(Duration::from_secs(1))
        .with_retries(5);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&ka);
}

fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let accepted = listener.accept();
        if inner.stop.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, from)) => {
                let inner2 = inner.clone();
                let spawned = std::thread::Builder::new()
                    .name("keel-peer-in".into())
                    .spawn(move || inbound(inner2, stream, from));
                match spawned {
                    Ok(h) => {
                        let mut threads = inner.threads.lock().unwrap_or_else(|p| p.into_inner());
                        threads.retain(|t| !t.is_finished());
                        threads.push(h);
                    }
                    Err(e) => {
                        warn!("cannot start a thread for the peer connection from {from}: {e}")
                    }
                }
            }
            Err(e) => {
                warn!("accepting a peer connection failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn inbound(inner: Arc<Inner>, mut stream: TcpStream, from: SocketAddr) {
    let my_id = inner.settings.my_id;
    let peer = match read_hello(&mut stream) {
        Ok(id) => id,
        Err(e) => {
            warn!("peer connection from {from} refused: {e}");
            return;
        }
    };
    if peer == my_id {
        warn!("peer connection from {from} refused: it says it is server {peer}, which is this server's own id (two servers with one myid?)");
        return;
    }
    if !inner.slots.contains_key(&peer) {
        warn!(
            "peer connection from {from} refused: server {peer} is not a member of this ensemble"
        );
        return;
    }
    if peer > my_id {
        warn!("peer connection from {from} refused: server {peer} has the larger id, so this server ({my_id}) dials it, not the other way round");
        return;
    }
    if let Err(e) = stream.write_all(&hello(my_id)) {
        debug!("peer connection from server {peer} ({from}) lost during the hello: {e}");
        return;
    }
    run_link(&inner, peer, stream);
}

fn dial_loop(inner: Arc<Inner>, peer: Sid) {
    let slot = &inner.slots[&peer];
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u32;
    while !inner.stop.load(Ordering::SeqCst) {
        match dial(&inner, peer, &slot.addr) {
            Ok(stream) => {
                if failures > 0 {
                    info!(
                        "connected to server {peer} at {} after {failures} failed attempt(s)",
                        slot.addr
                    );
                }
                failures = 0;
                backoff = BACKOFF_MIN;
                run_link(&inner, peer, stream);
                // A peer that takes the hello and then drops the link must not be
                // redialled in a tight loop.
                sleep_unless_stopped(&inner, BACKOFF_MIN);
            }
            Err(e) => {
                failures += 1;
                if failures % 100 == 1 {
                    info!(
                        "cannot reach server {peer} at {} ({e}); retrying",
                        slot.addr
                    );
                } else {
                    debug!(
                        "cannot reach server {peer} at {} ({e}); retrying",
                        slot.addr
                    );
                }
                sleep_unless_stopped(&inner, backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

fn sleep_unless_stopped(inner: &Inner, d: Duration) {
    let until = Instant::now() + d;
    while !inner.stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

fn dial(inner: &Inner, peer: Sid, addr: &str) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .collect();
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
            Ok(mut s) => {
                s.write_all(&hello(inner.settings.my_id))
                    .map_err(|e| format!("hello: {e}"))?;
                let got = read_hello(&mut s)?;
                if got != peer {
                    return Err(format!(
                        "{a} answered as server {got}, not {peer}: check the server.N lines"
                    ));
                }
                return Ok(s);
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

/// Installs `stream` as the link to `peer` (replacing any older one), runs its writer
/// thread and reads from it on this thread until it breaks.
fn run_link(inner: &Arc<Inner>, peer: Sid, stream: TcpStream) {
    tune(&stream, inner.settings.write_timeout);
    let slot = &inner.slots[&peer];
    let id = inner.next_link.fetch_add(1, Ordering::Relaxed);
    let (reader, writer) = match (stream.try_clone(), stream.try_clone()) {
        (Ok(r), Ok(w)) => (r, w),
        _ => {
            warn!("cannot duplicate the socket of the link to server {peer}");
            return;
        }
    };
    {
        let mut st = lock(slot);
        if inner.stop.load(Ordering::SeqCst) {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
        if st.link.is_some() {
            info!("a new link from server {peer} replaces the old one");
            drop_link(inner, peer, slot, &mut st, None);
        }
        st.link = Some(Link { id, stream });
        slot.cv.notify_all();
    }
    info!("peer link to server {peer} is up");
    let w_inner = inner.clone();
    let writer = std::thread::Builder::new()
        .name(format!("keel-peer-w{peer}"))
        .spawn(move || write_loop(&w_inner, peer, id, writer));
    let why = read_loop(inner, peer, id, reader);
    {
        let mut st = lock(slot);
        let current = st.link.as_ref().map(|l| l.id) == Some(id);
        if current && !inner.stop.load(Ordering::SeqCst) {
            match &why {
                Ok(()) => info!("peer link to server {peer} closed"),
                Err(e) => warn!("peer link to server {peer} broken: {e}"),
            }
        }
        drop_link(inner, peer, slot, &mut st, Some(id));
    }
    if let Ok(h) = writer {
        let _ = h.join();
    }
}

/// Reads frames until the link ends: `Ok` on a clean EOF or when the link was replaced.
fn read_loop(inner: &Inner, peer: Sid, id: u64, stream: TcpStream) -> Result<(), String> {
    let slot = &inner.slots[&peer];
    let max = inner.settings.max_frame;
    let mut r = std::io::BufReader::with_capacity(64 * 1024, stream);
    let mut body = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > max {
            error!("server {peer} sent a peer frame of {n} bytes, above the limit of {max}; closing the link");
            return Err(format!("frame of {n} bytes refused"));
        }
        body.clear();
        // Read as the bytes arrive: a hostile length allocates nothing up front.
        let got = (&mut r)
            .take(n as u64)
            .read_to_end(&mut body)
            .map_err(|e| e.to_string())?;
        if got != n {
            return Err(format!("connection ended inside a {n}-byte frame"));
        }
        let msg = match PeerMsg::decode(&body) {
            Ok(m) => m,
            Err(e) => {
                error!(
                    "server {peer} sent a peer frame that does not decode ({e}); closing the link"
                );
                return Err(format!("bad frame: {e}"));
            }
        };
        if body.capacity() > 1 << 20 {
            body = Vec::new();
        }
        let st = lock(slot);
        if st.link.as_ref().map(|l| l.id) != Some(id) {
            return Ok(());
        }
        (inner.deliver)(PeerEvent::Msg { from: peer, msg });
        drop(st);
    }
}

fn write_loop(inner: &Inner, peer: Sid, id: u64, mut stream: TcpStream) {
    let slot = &inner.slots[&peer];
    let mut buf: Vec<u8> = Vec::new();
    loop {
        {
            let mut st = lock(slot);
            loop {
                if st.link.as_ref().map(|l| l.id) != Some(id) {
                    return;
                }
                if !st.queue.is_empty() {
                    break;
                }
                st = slot.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            buf.clear();
            for m in st.queue.drain(..) {
                buf.extend_from_slice(&(m.len() as u32).to_be_bytes());
                buf.extend_from_slice(&m);
            }
            st.queued_bytes = 0;
        }
        if let Err(e) = stream.write_all(&buf) {
            let mut st = lock(slot);
            if st.link.as_ref().map(|l| l.id) == Some(id) {
                warn!("writing to server {peer} failed: {e}; link down");
            }
            drop_link(inner, peer, slot, &mut st, Some(id));
            return;
        }
        if buf.capacity() > 4 << 20 {
            buf = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_engine::zab::{LogFrame, PeerState, Vote};

    fn listener() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").expect("bind")
    }

    fn collector() -> (Deliver, flume::Receiver<PeerEvent>) {
        let (tx, rx) = flume::unbounded();
        (
            Arc::new(move |e| {
                let _ = tx.send(e);
            }),
            rx,
        )
    }

    fn recv(rx: &flume::Receiver<PeerEvent>) -> PeerEvent {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("an event within 10 s")
    }

    fn vote(n: i64) -> PeerMsg {
        PeerMsg::Vote(Vote {
            leader: 2,
            zxid: n,
            peer_epoch: 1,
            round: n,
            state: PeerState::Looking,
        })
    }

    /// Two transports on loopback; `a` is server 1 (dials), `b` server 2 (accepts).
    fn pair() -> (
        PeerNet,
        flume::Receiver<PeerEvent>,
        PeerNet,
        flume::Receiver<PeerEvent>,
    ) {
        let (la, lb) = (listener(), listener());
        let (aa, ab) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
        let (da, ra) = collector();
        let (db, rb) = collector();
        let a = PeerNet::start(
            PeerSettings::new(
                1,
                vec![PeerAddr {
                    id: 2,
                    addr: ab.to_string(),
                }],
            ),
            la,
            da,
        )
        .unwrap();
        let b = PeerNet::start(
            PeerSettings::new(
                2,
                vec![PeerAddr {
                    id: 1,
                    addr: aa.to_string(),
                }],
            ),
            lb,
            db,
        )
        .unwrap();
        (a, ra, b, rb)
    }

    #[test]
    fn two_links_exchange_messages_in_order_both_ways() {
        // Server 2's port is bound but nobody accepts yet: server 1's dial waits for
        // the hello, so no link is up while these are sent.
        let lb = listener();
        let ab = lb.local_addr().unwrap();
        let (da, ra) = collector();
        let a = PeerNet::start(
            PeerSettings::new(
                1,
                vec![PeerAddr {
                    id: 2,
                    addr: ab.to_string(),
                }],
            ),
            listener(),
            da,
        )
        .unwrap();
        for i in 0..10 {
            a.send(2, &vote(i));
        }
        a.send(2, &PeerMsg::Commit { zxid: 1 }); // dropped: no link
        assert!(!a.is_connected(2));
        let (db, rb) = collector();
        let b = PeerNet::start(
            PeerSettings::new(
                2,
                vec![PeerAddr {
                    id: 1,
                    addr: a.local_addr().to_string(),
                }],
            ),
            lb,
            db,
        )
        .unwrap();
        // Only the newest vote was kept.
        assert_eq!(
            recv(&rb),
            PeerEvent::Msg {
                from: 1,
                msg: vote(9)
            }
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !a.is_connected(2) {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        for i in 10..200 {
            a.send(2, &vote(i));
        }
        let big = PeerMsg::Proposal(LogFrame {
            first: 1,
            last: 2,
            payload: Arc::new(vec![7u8; 3 << 20]),
        });
        a.send(2, &big);
        for i in 10..200 {
            assert_eq!(
                recv(&rb),
                PeerEvent::Msg {
                    from: 1,
                    msg: vote(i)
                }
            );
        }
        assert_eq!(recv(&rb), PeerEvent::Msg { from: 1, msg: big });
        b.send(1, &PeerMsg::Ack { zxid: 9 });
        assert_eq!(
            recv(&ra),
            PeerEvent::Msg {
                from: 2,
                msg: PeerMsg::Ack { zxid: 9 }
            }
        );
        assert!(a.is_connected(2) && b.is_connected(1));
        a.shutdown();
        // b sees the link go down.
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        b.shutdown();
    }

    #[test]
    fn a_restarted_peer_is_redialed() {
        let (a, ra, b, rb) = pair();
        a.send(2, &vote(1));
        assert_eq!(
            recv(&rb),
            PeerEvent::Msg {
                from: 1,
                msg: vote(1)
            }
        );
        let b_addr = b.local_addr();
        b.shutdown();
        assert_eq!(recv(&ra), PeerEvent::Down { peer: 2 });
        // A new server 2 on the same port.
        let lb = listener_at(b_addr);
        let (db, rb2) = collector();
        let b2 = PeerNet::start(
            PeerSettings::new(
                2,
                vec![PeerAddr {
                    id: 1,
                    addr: a.local_addr().to_string(),
                }],
            ),
            lb,
            db,
        )
        .unwrap();
        a.send(2, &vote(2));
        assert_eq!(
            recv(&rb2),
            PeerEvent::Msg {
                from: 1,
                msg: vote(2)
            }
        );
        drop(rb);
        a.shutdown();
        b2.shutdown();
    }

    fn listener_at(addr: SocketAddr) -> TcpListener {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.set_reuse_address(true).unwrap();
            if s.bind(&addr.into()).and_then(|_| s.listen(16)).is_ok() {
                return s.into();
            }
            assert!(Instant::now() < deadline, "rebinding {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A raw client that says hello as server 1 to a transport that is server 2.
    fn raw_peer(b: &PeerNet) -> TcpStream {
        let mut s = TcpStream::connect(b.local_addr()).unwrap();
        s.write_all(&hello(1)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut h = [0u8; HELLO_LEN];
        s.read_exact(&mut h).unwrap();
        assert_eq!(&h[..4], HELLO_MAGIC);
        assert_eq!(u64::from_be_bytes(h[8..].try_into().unwrap()), 2);
        s
    }

    fn server2(max_frame: usize) -> (PeerNet, flume::Receiver<PeerEvent>) {
        let (db, rb) = collector();
        let mut settings = PeerSettings::new(
            2,
            // Nobody listens there: server 2 never dials server 1 anyway.
            vec![PeerAddr {
                id: 1,
                addr: "127.0.0.1:9".into(),
            }],
        );
        settings.max_frame = max_frame;
        (PeerNet::start(settings, listener(), db).unwrap(), rb)
    }

    fn assert_closed(s: &mut TcpStream) {
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("expected the link closed, got {other:?}"),
        }
    }

    #[test]
    fn an_oversized_frame_closes_the_link() {
        let (b, rb) = server2(1024);
        let mut s = raw_peer(&b);
        // A good frame first.
        let ok = PeerMsg::Commit { zxid: 5 }.encode();
        s.write_all(&(ok.len() as u32).to_be_bytes()).unwrap();
        s.write_all(&ok).unwrap();
        assert_eq!(
            recv(&rb),
            PeerEvent::Msg {
                from: 1,
                msg: PeerMsg::Commit { zxid: 5 }
            }
        );
        // Announces 4 GiB - 1; only the length is sent.
        s.write_all(&u32::MAX.to_be_bytes()).unwrap();
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        assert_closed(&mut s);
        b.shutdown();
    }

    #[test]
    fn a_frame_that_does_not_decode_closes_the_link() {
        let (b, rb) = server2(1024);
        let mut s = raw_peer(&b);
        let garbage = [0u8, 0, 0, 99, 1, 2, 3];
        s.write_all(&(garbage.len() as u32).to_be_bytes()).unwrap();
        s.write_all(&garbage).unwrap();
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        assert_closed(&mut s);
        // A truncated message and an empty frame are refused the same way.
        let mut s = raw_peer(&b);
        let cut = &PeerMsg::Ack { zxid: 1 }.encode()[..6];
        s.write_all(&(cut.len() as u32).to_be_bytes()).unwrap();
        s.write_all(cut).unwrap();
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        assert_closed(&mut s);
        let mut s = raw_peer(&b);
        s.write_all(&0u32.to_be_bytes()).unwrap();
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        assert_closed(&mut s);
        b.shutdown();
    }

    #[test]
    fn bad_hellos_are_refused() {
        let (b, rb) = server2(1024);
        for hello_bytes in [
            b"GET / HTTP/1.1\r\n".to_vec(),
            hello(3).to_vec(), // not a member
            hello(2).to_vec(), // its own id
        ] {
            let mut s = TcpStream::connect(b.local_addr()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(&hello_bytes).unwrap();
            assert_closed(&mut s);
        }
        assert!(rb.try_recv().is_err(), "no link, so no events");
        assert!(!b.is_connected(1));
        b.shutdown();
    }

    #[test]
    fn a_new_link_from_the_same_peer_replaces_the_old() {
        let (b, rb) = server2(1 << 20);
        let mut old = raw_peer(&b);
        let _new = raw_peer(&b);
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        assert_closed(&mut old);
        b.send(1, &PeerMsg::Commit { zxid: 3 });
        let mut n = _new;
        let mut len = [0u8; 4];
        n.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        n.read_exact(&mut body).unwrap();
        assert_eq!(PeerMsg::decode(&body).unwrap(), PeerMsg::Commit { zxid: 3 });
        b.shutdown();
    }
}
