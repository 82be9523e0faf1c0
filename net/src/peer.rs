//! The peer transport of an ensemble: one TCP connection per pair of servers, carrying
//! [`PeerMsg`]s.
//!
//! * Every server listens on its **quorum port** (the second number of its `server.N`
//!   line). The election port (the third) is parsed but not used: elections and the
//!   broadcast share the one link.
//! * A peer is **named** when this server has its address: from its configuration
//!   ([`PeerSettings::peers`]) or, at run time, from [`PeerNet::set_peers`] (dynamic
//!   reconfiguration). Named peers are never forgotten: one that a later `set_peers` no
//!   longer lists keeps its address, its link and its dialer, because a server removed
//!   from the voting membership may still follow the leader as a non-voting learner.
//! * Of each pair, the server with the **smaller id dials** the larger one's quorum
//!   port while it has no link to it, retrying with a backoff (50 ms doubling to
//!   500 ms), and redials as soon as a link breaks.
//! * **Reverse dial.** A server joining by reconfiguration starts with a configuration
//!   naming the servers it joins (4 joining 1, 2, 3), while those do not know it until
//!   the reconfiguration that adds it commits — and that reconfiguration needs the new
//!   server connected first (it follows the leader as a non-voting learner, and the
//!   leader checks it is in sync). With the larger id joining, nobody would dial under
//!   the rule above. So a server also dials a named peer with a *smaller* id, but only
//!   while it has no link to it and only [`PeerSettings::reverse_dial_grace`] (1 s)
//!   after start or after the last link to it went down: normally the smaller side's own
//!   dial wins within that time, and no extra connection is made.
//! * **Accepting.** A connection is accepted from any id that is not named here (a
//!   joining server, or one named later): the transport creates its slot on the fly,
//!   with no address (it never dials it), until `set_peers` names it. A connection from
//!   a named smaller id is accepted. A connection from a named *larger* id is refused —
//!   this server dials that one itself — so a reverse dial to a server that knows the
//!   dialer never makes a second link; the refused dialer backs off (1 s doubling to
//!   5 s) and logs only the first refusal of a series above debug level. When
//!   `set_peers` names a peer that is linked through an inbound connection, the link is
//!   kept (this server dials it only once that link is down), so a reconfiguration does
//!   not break the link of the server it adds. At most `MAX_UNNAMED_PEERS` (64) servers
//!   that are not named are kept at once; the slot of one whose link has been gone for
//!   10 s is forgotten when another arrives.
//! * Both ends first send a **hello**: `"KEEL"`, `u32` protocol version, `u64` server id
//!   (big-endian, 16 bytes). The acceptor refuses its own id and, as said, a named
//!   larger id, by closing the connection without answering; the dialer refuses an
//!   answer from a server other than the one it meant to reach. Hellos must arrive
//!   within [`HELLO_TIMEOUT`].
//! * Then each side writes frames: `u32` big-endian length, then [`PeerMsg::encode`]'s
//!   bytes. Everything queued for a peer is written with one `write` call: by the
//!   engine thread itself after its turn ([`PeerNet::queue`] then [`PeerNet::flush`],
//!   a non-blocking `send`), or by the link's writer thread ([`PeerNet::send`], and
//!   whatever a full socket buffer left of a flush). A length
//!   above the bound for the frame's message type (read from its first 8 bytes:
//!   [`PeerSettings::max_frame`] for messages that carry transactions or snapshots,
//!   512 KiB for the others), a frame that stops arriving midway for
//!   [`PeerSettings::write_timeout`], or a body [`PeerMsg::decode`] refuses closes
//!   that link with an error in the log (never a panic, never an allocation of the
//!   announced length: the body is read as it arrives).
//! * Links are threads: an accept thread, a dialer thread per named peer, and a reader
//!   (the dialer or handshake thread itself) plus a writer thread per live link (which
//!   sleeps while the engine's own flushes keep up).
//!   Inbound messages and link failures go to one callback (the engine channel), for
//!   peers created on the fly as for named ones.
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
//! to a new link. Messages for a server that is neither named nor linked are dropped.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use keel_engine::zab::{PeerMsg, Sid};
use tracing::{debug, error, info, warn};

/// Most servers outside this server's configuration linked at once (servers about to
/// be added by a reconfiguration, or removed ones still following).
const MAX_UNNAMED_PEERS: usize = 64;

/// Most inbound peer connections waiting for their hello at once. A stranger who opens
/// connections to the quorum port and says nothing costs a thread each for up to
/// [`HELLO_TIMEOUT`]: past this many, new ones are closed at once.
const MAX_PENDING_HELLOS: usize = 16;

/// Magic at the start of a hello.
const HELLO_MAGIC: &[u8; 4] = b"KEEL";
/// Version of the peer protocol (hello + framing + `PeerMsg` encoding). 2: votes carry
/// the membership version, `NewLeader` the commit point, `UpToDate` the membership, and
/// `Membership` exists (dynamic reconfiguration).
pub const PEER_PROTOCOL_VERSION: u32 = 2;
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
/// Default time a server leaves a smaller-id peer to dial it before dialing it itself.
pub const DEFAULT_REVERSE_DIAL_GRACE: Duration = Duration::from_secs(1);

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Backoff after a reverse dial the other side refused: it knows this server and will
/// dial it, so retrying fast only costs both sides a connection (and the other side a
/// thread) per attempt. Retrying at all covers the other side forgetting this server
/// (a restart with a configuration that predates it).
const REFUSED_BACKOFF_MIN: Duration = Duration::from_secs(1);
const REFUSED_BACKOFF_MAX: Duration = Duration::from_secs(5);

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
    /// The other members known at start; [`PeerNet::set_peers`] names more later.
    pub peers: Vec<PeerAddr>,
    /// Largest frame accepted or sent, in bytes.
    pub max_frame: usize,
    /// Most bytes queued for one peer (link down or slow) before the queue is dropped
    /// and the link reported down.
    pub max_queued_bytes: usize,
    /// A write that makes no progress for this long breaks the link.
    pub write_timeout: Duration,
    /// How long after start, or after its last link went down, a named peer with a
    /// smaller id is left to dial this server before this server dials it (see the
    /// module documentation: reverse dial).
    pub reverse_dial_grace: Duration,
}

impl PeerSettings {
    pub fn new(my_id: Sid, peers: Vec<PeerAddr>) -> PeerSettings {
        PeerSettings {
            my_id,
            peers,
            max_frame: DEFAULT_MAX_FRAME,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            write_timeout: Duration::from_secs(10),
            reverse_dial_grace: DEFAULT_REVERSE_DIAL_GRACE,
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

struct SlotState {
    /// Where to dial the peer; `None` for a peer known only from its own connection
    /// (created on the fly), which this server never dials.
    addr: Option<String>,
    /// Whether a dialer thread runs for this peer (at most one ever does).
    dialer: bool,
    /// When the slot was created or its last link went down: the reverse dialer's grace
    /// period counts from here.
    down_since: Instant,
    link: Option<Link>,
    /// Messages not yet taken by a writer.
    queue: VecDeque<Queued>,
    queued_bytes: usize,
    /// The link whose writer thread has taken messages and is writing them now: while
    /// it is, [`PeerNet::flush`] leaves the queue to it, so bytes never interleave.
    writing: Option<u64>,
}

/// A message waiting for the link's writer thread.
enum Queued {
    /// Encoded (without the length prefix).
    Bytes(Vec<u8>),
    /// Already framed: what a direct write ([`PeerNet::flush`]) could not send at once.
    Framed(Vec<u8>),
    /// Encoded by the writer thread when it gets there (see [`PeerNet::send_built`]).
    Later {
        name: &'static str,
        build: Box<dyn FnOnce() -> Result<Vec<u8>, String> + Send>,
    },
}

struct Slot {
    state: Mutex<SlotState>,
    /// Wakes the writer of the current link.
    cv: Condvar,
    /// Wakes the dialer when the link goes down or the transport stops. Separate from
    /// `cv`, which every `send` notifies, so a dialer idling while its link is up is
    /// not woken once per message.
    dial_cv: Condvar,
    /// Connection attempts by the dialer (for tests and diagnostics).
    dials: AtomicU64,
}

impl Slot {
    fn new(addr: Option<String>) -> Slot {
        Slot {
            state: Mutex::new(SlotState {
                addr,
                dialer: false,
                down_since: Instant::now(),
                link: None,
                queue: VecDeque::new(),
                queued_bytes: 0,
                writing: None,
            }),
            cv: Condvar::new(),
            dial_cv: Condvar::new(),
            dials: AtomicU64::new(0),
        }
    }
}

struct Inner {
    settings: PeerSettings,
    /// Every peer this server has a slot for: named ones and those created on the fly.
    /// Slots are never removed, so an `Arc<Slot>` taken out stays the peer's slot. Lock
    /// order: this map, then a slot; the map lock is never held across I/O.
    slots: RwLock<HashMap<Sid, Arc<Slot>>>,
    deliver: Deliver,
    stop: AtomicBool,
    next_link: AtomicU64,
    listen_addr: SocketAddr,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Inbound connections whose hello has not been read yet (each has a thread).
    pending_hellos: AtomicUsize,
}

impl Inner {
    fn slot(&self, peer: Sid) -> Option<Arc<Slot>> {
        self.slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer)
            .cloned()
    }

    fn add_thread(&self, h: JoinHandle<()>) {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.retain(|t| !t.is_finished());
        threads.push(h);
    }
}

/// A running transport. `send` may be called from any thread.
pub struct PeerNet {
    inner: Arc<Inner>,
}

fn lock(slot: &Slot) -> MutexGuard<'_, SlotState> {
    slot.state.lock().unwrap_or_else(|p| p.into_inner())
}

impl PeerNet {
    /// Starts accepting on `listener` (this server's quorum port) and dialing the peers
    /// of `settings` (see the module documentation for who dials whom, and when).
    pub fn start(
        settings: PeerSettings,
        listener: TcpListener,
        deliver: Deliver,
    ) -> std::io::Result<PeerNet> {
        let listen_addr = listener.local_addr()?;
        listener.set_nonblocking(false)?;
        let slots: HashMap<Sid, Arc<Slot>> = settings
            .peers
            .iter()
            .filter(|p| p.id != settings.my_id)
            .map(|p| (p.id, Arc::new(Slot::new(Some(p.addr.clone())))))
            .collect();
        let mut dial: Vec<(Sid, Arc<Slot>)> =
            slots.iter().map(|(id, s)| (*id, s.clone())).collect();
        dial.sort_unstable_by_key(|(id, _)| *id);
        let inner = Arc::new(Inner {
            settings,
            slots: RwLock::new(slots),
            deliver,
            stop: AtomicBool::new(false),
            pending_hellos: AtomicUsize::new(0),
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
        for (peer, slot) in dial {
            lock(&slot).dialer = true;
            handles.push(spawn_dialer(&inner, peer, slot)?);
        }
        inner
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(handles);
        Ok(PeerNet { inner })
    }

    /// Names the peers of the current configuration (after a reconfiguration), as
    /// [`PeerSettings::peers`] did at start; this server's own id is skipped.
    ///
    /// * A peer not known yet gets a slot and a dialer (see the module documentation).
    /// * A peer known only from its own connection (created on the fly) gets its
    ///   address and a dialer; its current link, if any, is kept.
    /// * A peer whose address changed is dialed at the new address from its next dial
    ///   on; its current link, if any, is kept.
    /// * A peer no longer listed is kept as it is — its address, link and dialer — since
    ///   a server removed from the voting membership may still follow as a learner.
    ///
    /// Never blocks on the network.
    pub fn set_peers(&self, peers: Vec<PeerAddr>) {
        let my_id = self.inner.settings.my_id;
        let mut start: Vec<(Sid, Arc<Slot>)> = Vec::new();
        // Decided under the map lock, logged after it (logging is I/O).
        let mut news: Vec<String> = Vec::new();
        {
            let mut slots = self.inner.slots.write().unwrap_or_else(|p| p.into_inner());
            for p in peers {
                if p.id == my_id {
                    continue;
                }
                match slots.entry(p.id) {
                    Entry::Vacant(v) => {
                        news.push(format!("server {} at {} is now a peer", p.id, p.addr));
                        let slot = Arc::new(Slot::new(Some(p.addr)));
                        start.push((p.id, slot.clone()));
                        v.insert(slot);
                    }
                    Entry::Occupied(o) => {
                        let mut st = lock(o.get());
                        match &st.addr {
                            None => news.push(format!(
                                "server {}, known so far from its own connection, is now a peer at {}",
                                p.id, p.addr
                            )),
                            Some(old) if *old != p.addr => news.push(format!(
                                "server {} moves from {old} to {}; its next dial uses the new address",
                                p.id, p.addr
                            )),
                            Some(_) => {}
                        }
                        st.addr = Some(p.addr);
                        if !st.dialer {
                            start.push((p.id, o.get().clone()));
                        }
                    }
                }
            }
        }
        for n in news {
            info!("{n}");
        }
        // Threads are started without the map lock.
        for (peer, slot) in start {
            {
                let mut st = lock(&slot);
                if st.dialer {
                    // A concurrent `set_peers` started it.
                    continue;
                }
                st.dialer = true;
            }
            match spawn_dialer(&self.inner, peer, slot.clone()) {
                Ok(h) => self.inner.add_thread(h),
                Err(e) => {
                    // Left marked as not dialing, so the next `set_peers` retries.
                    lock(&slot).dialer = false;
                    error!("cannot start the thread that dials server {peer}: {e}; it is not dialed until the peers are set again");
                }
            }
        }
    }

    /// The address the quorum port is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.listen_addr
    }

    /// Queues `msg` for `to` and wakes the link's writer thread. Never blocks on the
    /// network.
    pub fn send(&self, to: Sid, msg: &PeerMsg) {
        if let Some(slot) = self.enqueue(to, msg) {
            slot.cv.notify_all();
        }
    }

    /// Queues `msg` for `to` without waking anyone: [`PeerNet::flush`], called after a
    /// turn's messages are queued, sends them. For the engine thread, which so writes
    /// a turn's messages for a peer with one system call of its own instead of waking
    /// that link's writer thread for them.
    pub fn queue(&self, to: Sid, msg: &PeerMsg) {
        self.enqueue(to, msg);
    }

    /// Sends what [`PeerNet::queue`] left queued: for each link with messages waiting,
    /// one non-blocking `send` of all of them, from the calling thread. What the socket
    /// does not take at once (its buffer is full: the peer reads slowly) stays queued,
    /// framed, and the link's writer thread is woken to finish it with blocking
    /// writes; so is a link whose writer is writing now or that has a message to be
    /// built late, so bytes never interleave and order is kept. Never blocks.
    pub fn flush(&self) {
        let slots: Vec<(Sid, Arc<Slot>)> = self
            .inner
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        for (peer, slot) in slots {
            let mut st = lock(&slot);
            if st.queue.is_empty() {
                continue;
            }
            let Some(id) = st.link.as_ref().map(|l| l.id) else {
                continue;
            };
            if st.writing == Some(id) || st.queue.iter().any(|q| matches!(q, Queued::Later { .. }))
            {
                slot.cv.notify_all();
                continue;
            }
            let mut buf = Vec::with_capacity(st.queued_bytes + 4 * st.queue.len());
            for q in st.queue.drain(..) {
                match q {
                    Queued::Bytes(m) => {
                        buf.extend_from_slice(&(m.len() as u32).to_be_bytes());
                        buf.extend_from_slice(&m);
                    }
                    Queued::Framed(b) => buf.extend_from_slice(&b),
                    Queued::Later { .. } => {}
                }
            }
            st.queued_bytes = 0;
            let sent = match &st.link {
                Some(link) => send_now(&link.stream, &buf),
                None => continue,
            };
            match sent {
                Ok(n) if n == buf.len() => {}
                Ok(n) => {
                    let rest = buf.split_off(n);
                    st.queued_bytes = rest.len();
                    st.queue.push_front(Queued::Framed(rest));
                    slot.cv.notify_all();
                }
                Err(e) => {
                    warn!("writing to server {peer} failed: {e}; link down");
                    drop_link(&self.inner, peer, &slot, &mut st, Some(id));
                }
            }
        }
    }

    /// Checks `msg` for `to` against the bounds and queues it; the slot, to wake its
    /// writer, when it was queued.
    fn enqueue(&self, to: Sid, msg: &PeerMsg) -> Option<Arc<Slot>> {
        let Some(slot) = self.inner.slot(to) else {
            warn!(
                "dropping a {} message for server {to}, which is not a peer",
                msg.name()
            );
            return None;
        };
        let bytes = msg.encode();
        if bytes.len() > self.inner.settings.max_frame {
            error!(
                "a {} message for server {to} is {} bytes, above the peer frame limit of {}; dropping it and resetting the link",
                msg.name(),
                bytes.len(),
                self.inner.settings.max_frame
            );
            let mut st = lock(&slot);
            drop_link(&self.inner, to, &slot, &mut st, None);
            return None;
        }
        let mut st = lock(&slot);
        if st.link.is_none() {
            if matches!(msg, PeerMsg::Vote(_)) {
                st.queue.clear();
                st.queued_bytes = bytes.len();
                st.queue.push_back(Queued::Bytes(bytes));
            } else {
                debug!("no link to server {to}: dropping a {} message", msg.name());
            }
            return None;
        }
        if st.queued_bytes + bytes.len() > self.inner.settings.max_queued_bytes {
            warn!(
                "more than {} bytes queued for server {to}; dropping them and reporting the link down",
                self.inner.settings.max_queued_bytes
            );
            drop_link(&self.inner, to, &slot, &mut st, None);
            // Not queued for the next link either: it would go out ahead of what the
            // protocol re-sends after the `Down`, out of order.
            return None;
        }
        st.queued_bytes += bytes.len();
        st.queue.push_back(Queued::Bytes(bytes));
        drop(st);
        Some(slot)
    }

    /// Queues a message for `to` that `build` encodes, on the link's writer thread when
    /// it gets to it, in order with everything else sent to `to`: for a message that is
    /// expensive to make (a snapshot for a follower), so that the caller's thread does
    /// not stop for it. Dropped, like any message but a vote, if there is no link now.
    /// A build that fails, or makes a frame above the limit, resets the link.
    pub fn send_built(
        &self,
        to: Sid,
        name: &'static str,
        build: Box<dyn FnOnce() -> Result<Vec<u8>, String> + Send>,
    ) {
        let Some(slot) = self.inner.slot(to) else {
            warn!("dropping a {name} message for server {to}, which is not a peer");
            return;
        };
        let mut st = lock(&slot);
        if st.link.is_none() {
            debug!("no link to server {to}: dropping a {name} message");
            return;
        }
        st.queue.push_back(Queued::Later { name, build });
        slot.cv.notify_all();
    }

    /// Whether a link to `peer` is up now (for tests and diagnostics).
    pub fn is_connected(&self, peer: Sid) -> bool {
        self.inner
            .slot(peer)
            .is_some_and(|s| lock(&s).link.is_some())
    }

    /// Closes every link and stops every transport thread (joining them).
    pub fn shutdown(self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        let slots: Vec<Arc<Slot>> = self
            .inner
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        // A slot created after this snapshot was created after `stop` was set, so no
        // link is ever installed in it (`run_link` checks `stop` under the slot lock).
        for slot in slots {
            let mut st = lock(&slot);
            if let Some(link) = st.link.take() {
                let _ = link.stream.shutdown(Shutdown::Both);
            }
            st.queue.clear();
            st.queued_bytes = 0;
            slot.cv.notify_all();
            slot.dial_cv.notify_all();
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
        // Until none are left: the accept thread may register a handshake thread
        // after a batch was taken.
        loop {
            let handles =
                std::mem::take(&mut *self.inner.threads.lock().unwrap_or_else(|p| p.into_inner()));
            if handles.is_empty() {
                break;
            }
            for h in handles {
                let _ = h.join();
            }
        }
    }

    /// Links made so far, in both directions and to every peer (for tests).
    #[cfg(test)]
    fn links_made(&self) -> u64 {
        self.inner.next_link.load(Ordering::SeqCst) - 1
    }

    /// Connection attempts of the dialer of `peer` so far (for tests).
    #[cfg(test)]
    fn dials(&self, peer: Sid) -> u64 {
        self.inner
            .slot(peer)
            .map_or(0, |s| s.dials.load(Ordering::SeqCst))
    }
}

/// Drops the current link of `peer` (if it is `only`, or any when `None`) and the
/// messages queued for it, and reports `Down` once. Called with the slot locked, so the
/// report is ordered with the link's messages.
/// Writes as much of `buf` as the socket takes now, without blocking (the socket stays
/// in blocking mode for the link's reader and writer threads: the flag is per call).
fn send_now(stream: &TcpStream, buf: &[u8]) -> std::io::Result<usize> {
    let sock = socket2::SockRef::from(stream);
    let mut n = 0;
    while n < buf.len() {
        match sock.send_with_flags(&buf[n..], libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn drop_link(inner: &Inner, peer: Sid, slot: &Slot, st: &mut SlotState, only: Option<u64>) {
    if let Some(want) = only {
        if st.link.as_ref().map(|l| l.id) != Some(want) {
            return;
        }
    }
    if let Some(link) = st.link.take() {
        let _ = link.stream.shutdown(Shutdown::Both);
        st.down_since = Instant::now();
        slot.dial_cv.notify_all();
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

/// Why no hello was had from the other side.
#[derive(Debug)]
enum HelloError {
    /// The connection ended before a whole hello arrived: how an acceptor refuses.
    Closed(std::io::Error),
    /// Anything else: a timeout, a socket error, or bytes that are not a hello.
    Bad(String),
}

impl std::fmt::Display for HelloError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HelloError::Closed(e) => write!(f, "no hello: {e}"),
            HelloError::Bad(e) => f.write_str(e),
        }
    }
}

/// Reads the other side's hello and returns its server id.
fn read_hello(stream: &mut TcpStream) -> Result<Sid, HelloError> {
    stream
        .set_read_timeout(Some(HELLO_TIMEOUT))
        .map_err(|e| HelloError::Bad(e.to_string()))?;
    let mut h = [0u8; HELLO_LEN];
    if let Err(e) = stream.read_exact(&mut h) {
        return Err(match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted => HelloError::Closed(e),
            _ => HelloError::Bad(format!("no hello: {e}")),
        });
    }
    if &h[..4] != HELLO_MAGIC {
        return Err(HelloError::Bad("not a Keel peer (bad hello magic)".into()));
    }
    let version = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    if version != PEER_PROTOCOL_VERSION {
        return Err(HelloError::Bad(format!(
            "peer protocol version {version}, this server speaks {PEER_PROTOCOL_VERSION}"
        )));
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&h[8..]);
    stream
        .set_read_timeout(None)
        .map_err(|e| HelloError::Bad(e.to_string()))?;
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
                let pending = inner.pending_hellos.fetch_add(1, Ordering::AcqRel);
                if pending >= MAX_PENDING_HELLOS {
                    inner.pending_hellos.fetch_sub(1, Ordering::AcqRel);
                    warn!("peer connection from {from} refused: {pending} peer connections are already waiting for their hello");
                    drop(stream);
                    continue;
                }
                let inner2 = inner.clone();
                let spawned = std::thread::Builder::new()
                    .name("keel-peer-in".into())
                    .spawn(move || inbound(inner2, stream, from));
                match spawned {
                    Ok(h) => inner.add_thread(h),
                    Err(e) => {
                        inner.pending_hellos.fetch_sub(1, Ordering::AcqRel);
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
    let theirs = read_hello(&mut stream);
    inner.pending_hellos.fetch_sub(1, Ordering::AcqRel);
    let peer = match theirs {
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
    // Decided under the map lock, logged after it (logging is I/O).
    let (slot, created) = {
        let mut slots = inner.slots.write().unwrap_or_else(|p| p.into_inner());
        match slots.entry(peer) {
            Entry::Occupied(o) => {
                if peer > my_id && lock(o.get()).addr.is_some() {
                    (None, false)
                } else {
                    (Some(o.get().clone()), false)
                }
            }
            Entry::Vacant(_) => {
                // Servers we do not know: forget those whose link has been gone a
                // while (their `Down` was delivered; a slot just made for a link about
                // to be installed is young), and keep at most a few, so hellos with
                // ever new ids cannot grow the map without bound.
                slots.retain(|_, s| {
                    let st = lock(s);
                    st.addr.is_some()
                        || st.link.is_some()
                        || st.down_since.elapsed() < Duration::from_secs(10)
                });
                let unnamed = slots.values().filter(|s| lock(s).addr.is_none()).count();
                if unnamed >= MAX_UNNAMED_PEERS {
                    (None, true)
                } else {
                    let s = Arc::new(Slot::new(None));
                    slots.insert(peer, s.clone());
                    (Some(s), true)
                }
            }
        }
    };
    if slot.is_none() && created {
        warn!("peer connection from {from} refused: server {peer} is not in this server's configuration and {MAX_UNNAMED_PEERS} such servers are linked already");
        return;
    }
    let Some(slot) = slot else {
        // Expected now and then, not a fault: a reverse dial from a server that this
        // one is dialing (or about to) itself. Refusing it keeps one link per pair; the
        // other side backs off.
        debug!("peer connection from {from} refused: server {peer} has the larger id and is a named peer, so this server ({my_id}) dials it");
        return;
    };
    if created {
        info!("accepting a peer connection from server {peer} ({from}), which is not in this server's configuration (a server joining the ensemble?)");
    }
    if let Err(e) = stream.write_all(&hello(my_id)) {
        debug!("peer connection from server {peer} ({from}) lost during the hello: {e}");
        return;
    }
    run_link(&inner, peer, &slot, stream);
}

fn spawn_dialer(inner: &Arc<Inner>, peer: Sid, slot: Arc<Slot>) -> std::io::Result<JoinHandle<()>> {
    let inner = inner.clone();
    std::thread::Builder::new()
        .name(format!("keel-peer-{peer}"))
        .spawn(move || dial_loop(inner, peer, slot))
}

/// Waits until `peer` should be dialed — it has no link, `not_before` has passed and,
/// for a reverse dial, the grace period since its last link went down has too — and
/// returns the address to dial; `None` once the transport stops.
fn wait_to_dial(inner: &Inner, slot: &Slot, reverse: bool, not_before: Instant) -> Option<String> {
    let mut st = lock(slot);
    loop {
        // Checked under the slot lock: `shutdown` sets `stop` before it locks the slot
        // to notify, so the notification cannot fall between this check and the wait.
        if inner.stop.load(Ordering::SeqCst) {
            return None;
        }
        if st.link.is_some() {
            st = slot.dial_cv.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        let mut at = not_before;
        if reverse {
            at = at.max(st.down_since + inner.settings.reverse_dial_grace);
        }
        let now = Instant::now();
        if at <= now {
            if let Some(addr) = &st.addr {
                return Some(addr.clone());
            }
            // Dialers only run for named peers and an address is never taken away;
            // wait rather than spin should that ever change.
            st = slot.dial_cv.wait(st).unwrap_or_else(|p| p.into_inner());
            continue;
        }
        st = slot
            .dial_cv
            .wait_timeout(st, at - now)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

/// Dials `peer` whenever it has no link: at once for a larger id, after the grace
/// period for a smaller one (a reverse dial).
fn dial_loop(inner: Arc<Inner>, peer: Sid, slot: Arc<Slot>) {
    let reverse = peer < inner.settings.my_id;
    let kind = if reverse { "reverse dial" } else { "dial" };
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u32;
    let mut not_before = Instant::now();
    while let Some(addr) = wait_to_dial(&inner, &slot, reverse, not_before) {
        slot.dials.fetch_add(1, Ordering::SeqCst);
        match dial(&inner, peer, &addr) {
            Ok(stream) => {
                if failures > 0 {
                    info!(
                        "connected to server {peer} at {addr} after {failures} failed attempt(s)"
                    );
                }
                failures = 0;
                backoff = BACKOFF_MIN;
                run_link(&inner, peer, &slot, stream);
                // A peer that takes the hello and then drops the link must not be
                // redialled in a tight loop.
                not_before = Instant::now() + BACKOFF_MIN;
            }
            Err(e) => {
                failures += 1;
                let refused = reverse && matches!(e, DialError::Refused(_));
                // A reverse dial is a fallback, failing routinely (the smaller side
                // down, or dialing us itself): only the first failure of a series is
                // worth more than debug. A regular dial failing is news every so often.
                let loud = if reverse {
                    failures == 1
                } else {
                    failures % 100 == 1
                };
                if refused {
                    if loud {
                        info!("server {peer} at {addr} refused this server's {kind} ({e}): it knows this server and dials it itself; retrying now and then in case it forgets");
                    } else {
                        debug!(
                            "server {peer} at {addr} refused this server's {kind} ({e}); retrying"
                        );
                    }
                    backoff = (backoff * 2).clamp(REFUSED_BACKOFF_MIN, REFUSED_BACKOFF_MAX);
                    not_before = Instant::now() + backoff;
                } else {
                    if loud {
                        info!("cannot reach server {peer} at {addr} ({kind}: {e}); retrying");
                    } else {
                        debug!("cannot reach server {peer} at {addr} ({kind}: {e}); retrying");
                    }
                    not_before = Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// Why a dial made no link.
#[derive(Debug)]
enum DialError {
    /// The server at the address closed the connection instead of answering the hello.
    Refused(String),
    /// No connection, or no usable answer.
    Failed(String),
}

impl std::fmt::Display for DialError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DialError::Refused(e) | DialError::Failed(e) => f.write_str(e),
        }
    }
}

fn dial(inner: &Inner, peer: Sid, addr: &str) -> Result<TcpStream, DialError> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| DialError::Failed(format!("cannot resolve: {e}")))?
        .collect();
    let mut last = String::from("no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
            Ok(mut s) => {
                s.write_all(&hello(inner.settings.my_id))
                    .map_err(|e| DialError::Failed(format!("{a}: hello: {e}")))?;
                let got = match read_hello(&mut s) {
                    Ok(id) => id,
                    Err(HelloError::Closed(e)) => {
                        return Err(DialError::Refused(format!("{a}: closed at the hello: {e}")))
                    }
                    Err(e) => return Err(DialError::Failed(format!("{a}: {e}"))),
                };
                if got != peer {
                    return Err(DialError::Failed(format!(
                        "{a} answered as server {got}, not {peer}: check the server.N lines"
                    )));
                }
                return Ok(s);
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(DialError::Failed(last))
}

/// Installs `stream` as the link to `peer` (replacing any older one), runs its writer
/// thread and reads from it on this thread until it breaks.
fn run_link(inner: &Arc<Inner>, peer: Sid, slot: &Arc<Slot>, stream: TcpStream) {
    tune(&stream, inner.settings.write_timeout);
    let id = inner.next_link.fetch_add(1, Ordering::SeqCst);
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
    let w_slot = slot.clone();
    let writer = std::thread::Builder::new()
        .name(format!("keel-peer-w{peer}"))
        .spawn(move || write_loop(&w_inner, peer, &w_slot, id, writer));
    let why = match &writer {
        Ok(_) => read_loop(inner, peer, slot, id, reader),
        // Without a writer nothing queued would ever be sent: give the link up.
        Err(e) => Err(format!("cannot start its writer thread: {e}")),
    };
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
///
/// A link may be idle between frames for as long as it likes (followers of one leader
/// never talk to each other), but a frame, once begun, must keep arriving: a read that
/// waits [`PeerSettings::write_timeout`] for the next byte inside a frame breaks the
/// link, so a peer cannot hold this thread and a frame's buffer with a half-sent frame.
/// A frame's length is checked against the bound for its message type
/// ([`msg::frame_limit`](keel_engine::zab::msg::frame_limit)) before its body is read.
fn read_loop(
    inner: &Inner,
    peer: Sid,
    slot: &Slot,
    id: u64,
    stream: TcpStream,
) -> Result<(), String> {
    let max = inner.settings.max_frame;
    let stall = inner.settings.write_timeout;
    stream
        .set_read_timeout(Some(stall))
        .map_err(|e| e.to_string())?;
    let mut r = std::io::BufReader::with_capacity(64 * 1024, stream);
    let mut body = Vec::new();
    loop {
        // The length and the message tag: 8 bytes, any wait before the first of them.
        let mut head = [0u8; 8];
        let mut filled = 0;
        while filled < head.len() {
            match r.read(&mut head[filled..]) {
                Ok(0) if filled == 0 => return Ok(()),
                Ok(0) => return Err("connection ended inside a frame header".into()),
                Ok(k) => filled += k,
                Err(e) if is_timeout(&e) && filled == 0 => {
                    if inner.stop.load(Ordering::SeqCst) || !is_current(slot, id) {
                        return Ok(());
                    }
                }
                Err(e) if is_timeout(&e) => {
                    return Err(format!(
                        "no byte for {} ms inside a frame header",
                        stall.as_millis()
                    ))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.to_string()),
            }
            if filled >= 4 {
                // Refused from its length alone when no message may be that long, or
                // too short to hold a message tag.
                let n = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
                if n > max {
                    error!("server {peer} sent a peer frame of {n} bytes, above the limit of {max}; closing the link");
                    return Err(format!("frame of {n} bytes refused"));
                }
                if n < 4 {
                    return Err("a peer frame too short to hold a message".into());
                }
            }
        }
        let n = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let tag = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        let limit = keel_engine::zab::msg::frame_limit(tag, max);
        if n > limit {
            error!("server {peer} sent a peer frame of {n} bytes with message tag {tag}, above the limit of {limit} for it; closing the link");
            return Err(format!("frame of {n} bytes refused"));
        }
        body.clear();
        body.extend_from_slice(&head[4..]);
        // Read as the bytes arrive: a hostile length allocates nothing up front.
        let got = (&mut r)
            .take(n as u64 - 4)
            .read_to_end(&mut body)
            .map_err(|e| {
                if is_timeout(&e) {
                    format!(
                        "no byte for {} ms inside a {n}-byte frame",
                        stall.as_millis()
                    )
                } else {
                    e.to_string()
                }
            })?;
        if got != n - 4 {
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

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn is_current(slot: &Slot, id: u64) -> bool {
    lock(slot).link.as_ref().map(|l| l.id) == Some(id)
}

fn write_loop(inner: &Inner, peer: Sid, slot: &Slot, id: u64, mut stream: TcpStream) {
    let mut buf: Vec<u8> = Vec::new();
    let mut taken: Vec<Queued> = Vec::new();
    loop {
        {
            let mut st = lock(slot);
            if st.writing == Some(id) {
                st.writing = None;
            }
            loop {
                if st.link.as_ref().map(|l| l.id) != Some(id) {
                    return;
                }
                if !st.queue.is_empty() {
                    break;
                }
                st = slot.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            taken.extend(st.queue.drain(..));
            st.queued_bytes = 0;
            st.writing = Some(id);
        }
        // Messages built late are built here, outside the lock, in their place.
        buf.clear();
        for q in taken.drain(..) {
            let m = match q {
                Queued::Bytes(m) => m,
                Queued::Framed(b) => {
                    buf.extend_from_slice(&b);
                    continue;
                }
                Queued::Later { name, build } => match build() {
                    Ok(m) if m.len() <= inner.settings.max_frame => m,
                    Ok(m) => {
                        error!(
                            "a {name} message for server {peer} is {} bytes, above the peer frame limit of {}; resetting the link",
                            m.len(),
                            inner.settings.max_frame
                        );
                        drop_link(inner, peer, slot, &mut lock(slot), Some(id));
                        return;
                    }
                    Err(e) => {
                        error!("cannot make a {name} message for server {peer}: {e}; resetting the link");
                        drop_link(inner, peer, slot, &mut lock(slot), Some(id));
                        return;
                    }
                },
            };
            buf.extend_from_slice(&(m.len() as u32).to_be_bytes());
            buf.extend_from_slice(&m);
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
            config_version: 0,
        })
    }

    fn msg(from: Sid, msg: PeerMsg) -> PeerEvent {
        PeerEvent::Msg { from, msg }
    }

    /// Grace before a reverse dial in the tests that use [`settings`]: short, so they
    /// run quickly. Nothing in them depends on a race against it.
    const TEST_GRACE: Duration = Duration::from_millis(100);

    /// Settings for server `id` naming `peers` (id, address).
    fn settings(id: Sid, peers: &[(Sid, String)]) -> PeerSettings {
        let mut s = PeerSettings::new(
            id,
            peers
                .iter()
                .map(|(id, addr)| PeerAddr {
                    id: *id,
                    addr: addr.clone(),
                })
                .collect(),
        );
        s.reverse_dial_grace = TEST_GRACE;
        s
    }

    /// Reads one frame from a raw peer connection.
    fn read_frame(s: &mut TcpStream) -> PeerMsg {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        PeerMsg::decode(&body).unwrap()
    }

    fn write_frame(s: &mut TcpStream, m: &PeerMsg) {
        let body = m.encode();
        s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
        s.write_all(&body).unwrap();
    }

    /// Asserts that no `Down` was delivered so far (every event already delivered is
    /// taken off `rx`).
    fn assert_no_down(rx: &flume::Receiver<PeerEvent>) {
        for e in rx.try_iter() {
            assert!(!matches!(e, PeerEvent::Down { .. }), "unexpected {e:?}");
        }
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

    /// Waits (polling with a deadline) until `a` has a link to `to`.
    fn wait_linked(a: &PeerNet, to: Sid) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !a.is_connected(to) {
            assert!(Instant::now() < deadline, "no link to {to}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_message_built_late_keeps_its_place_and_a_failed_build_resets_the_link() {
        let (a, _ra, _b, rb) = pair();
        wait_linked(&a, 2);
        a.send(2, &vote(1));
        // Built on the writer thread; it blocks only that link, never the caller.
        a.send_built(2, "slow", Box::new(|| Ok(vote(2).encode())));
        a.send(2, &vote(3));
        for i in 1..=3 {
            assert_eq!(
                recv(&rb),
                PeerEvent::Msg {
                    from: 1,
                    msg: vote(i)
                }
            );
        }
        a.send_built(2, "broken", Box::new(|| Err("no archive".into())));
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
    }

    /// The engine's way of sending: a turn's messages queued, then one direct write.
    /// Megabytes in one flush fill the socket's buffer, so the rest is left to the
    /// writer thread; messages sent the other way (waking the writer) and one built
    /// late, in between, keep their places.
    #[test]
    fn queued_messages_are_flushed_in_order_with_the_writers() {
        let (a, _ra, _b, rb) = pair();
        wait_linked(&a, 2);
        let n = 300_000i64;
        for round in 0..3i64 {
            let base = round * (n + 2);
            for i in 0..n {
                a.queue(2, &PeerMsg::Commit { zxid: base + i });
            }
            a.flush();
            a.send(2, &PeerMsg::Commit { zxid: base + n });
            let z = base + n + 1;
            a.send_built(
                2,
                "late",
                Box::new(move || Ok(PeerMsg::Commit { zxid: z }.encode())),
            );
            a.flush();
        }
        for want in 0..3 * (n + 2) {
            match recv(&rb) {
                PeerEvent::Msg {
                    from: 1,
                    msg: PeerMsg::Commit { zxid },
                } => assert_eq!(zxid, want),
                other => panic!("expected commit {want}, got {other:?}"),
            }
        }
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
            // A real batch (peer links refuse frames that do not decode), 3 MiB.
            payload: Arc::new(keel_engine::txn::encode_batch(&[
                keel_engine::txn::TxnRecord {
                    zxid: 1,
                    time: 0,
                    session: 1,
                    cxid: 1,
                    txn: keel_engine::txn::Txn::SetData {
                        path: "/big".into(),
                        data: Some(vec![7u8; 3 << 20]),
                        version: 1,
                    },
                },
                keel_engine::txn::TxnRecord {
                    zxid: 2,
                    time: 0,
                    session: 1,
                    cxid: 2,
                    txn: keel_engine::txn::Txn::Delete {
                        path: "/big".into(),
                    },
                },
            ])),
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
        raw_peer_as(b, 1)
    }

    /// A raw client that says hello as server `id` to a transport that is server 2.
    fn raw_peer_as(b: &PeerNet, id: Sid) -> TcpStream {
        let mut s = TcpStream::connect(b.local_addr()).unwrap();
        s.write_all(&hello(id)).unwrap();
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
            // Nobody listens there: server 2's reverse dials to server 1 fail, making
            // no link and no event.
            vec![PeerAddr {
                id: 1,
                addr: "127.0.0.1:9".into(),
            }],
        );
        settings.max_frame = max_frame;
        (PeerNet::start(settings, listener(), db).unwrap(), rb)
    }

    #[test]
    fn a_control_message_above_its_bound_is_refused_from_its_header() {
        let (b, rb) = server2(4 << 20);
        // A membership text of 600 KiB: above the 512 KiB of a control message.
        let mut s = raw_peer(&b);
        let big = PeerMsg::Membership {
            text: "x".repeat(600 << 10),
        }
        .encode();
        // Only the length and the tag are sent: the refusal needs nothing more.
        s.write_all(&(big.len() as u32).to_be_bytes()).unwrap();
        s.write_all(&big[..4]).unwrap();
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        assert_closed(&mut s);
        // A tag no message has is refused the same way, whatever its length.
        let mut s = raw_peer(&b);
        s.write_all(&8u32.to_be_bytes()).unwrap();
        s.write_all(&77i32.to_be_bytes()).unwrap();
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        assert_closed(&mut s);
        // A bulk message (a ping listing 100,000 sessions, 800 KB) of that size passes.
        let mut s = raw_peer(&b);
        let ping = PeerMsg::Ping {
            sessions: (0..100_000).collect(),
        };
        write_frame(&mut s, &ping);
        assert_eq!(recv(&rb), msg(1, ping));
        b.shutdown();
    }

    #[test]
    fn a_frame_that_stalls_midway_breaks_the_link_but_an_idle_link_stays() {
        let (db, rb) = collector();
        let mut settings = PeerSettings::new(
            2,
            vec![PeerAddr {
                id: 1,
                addr: "127.0.0.1:9".into(),
            }],
        );
        settings.write_timeout = Duration::from_millis(200);
        let b = PeerNet::start(settings, listener(), db).unwrap();
        let mut s = raw_peer(&b);
        write_frame(&mut s, &PeerMsg::Commit { zxid: 1 });
        assert_eq!(recv(&rb), msg(1, PeerMsg::Commit { zxid: 1 }));
        // Silence between frames, five times the stall bound, is not a fault (this
        // wait is what is tested, not a synchronisation).
        std::thread::sleep(Duration::from_millis(1000));
        write_frame(&mut s, &PeerMsg::Commit { zxid: 2 });
        assert_eq!(recv(&rb), msg(1, PeerMsg::Commit { zxid: 2 }));
        assert!(b.is_connected(1));
        // Half a header, then nothing: the link is dropped.
        s.write_all(&[0, 0]).unwrap();
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        assert_closed(&mut s);
        // And half a body the same.
        let mut s = raw_peer(&b);
        let c = PeerMsg::Commit { zxid: 3 }.encode();
        s.write_all(&(c.len() as u32).to_be_bytes()).unwrap();
        s.write_all(&c[..6]).unwrap();
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        assert_closed(&mut s);
        b.shutdown();
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
        let (db, rb) = collector();
        // Server 2 names servers 1 and 3 where nobody listens: its dials fail, making
        // no link and no event.
        let b = PeerNet::start(
            settings(2, &[(1, "127.0.0.1:9".into()), (3, "127.0.0.1:9".into())]),
            listener(),
            db,
        )
        .unwrap();
        let mut old_version = hello(1);
        old_version[4..8].copy_from_slice(&(PEER_PROTOCOL_VERSION + 1).to_be_bytes());
        for hello_bytes in [
            b"GET / HTTP/1.1\r\n".to_vec(),
            old_version.to_vec(),
            hello(3).to_vec(), // a named larger id: server 2 dials it, not the reverse
            hello(2).to_vec(), // its own id
        ] {
            let mut s = TcpStream::connect(b.local_addr()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(&hello_bytes).unwrap();
            assert_closed(&mut s);
        }
        assert!(rb.try_recv().is_err(), "no link, so no events");
        assert!(!b.is_connected(1) && !b.is_connected(3));
        assert_eq!(b.links_made(), 0);
        b.shutdown();
    }

    #[test]
    fn a_new_link_from_the_same_peer_replaces_the_old() {
        let (b, rb) = server2(1 << 20);
        let mut old = raw_peer(&b);
        // The hello is answered before the link is installed: only a delivered frame
        // shows that this one is the current link, which the next must replace.
        write_frame(&mut old, &PeerMsg::Commit { zxid: 1 });
        assert_eq!(recv(&rb), msg(1, PeerMsg::Commit { zxid: 1 }));
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

    #[test]
    fn an_unknown_peer_is_accepted_on_the_fly() {
        // Server 2 names only server 1; server 5 is unknown to it (a joining server).
        let (b, rb) = server2(1 << 20);
        let mut s = raw_peer_as(&b, 5);
        write_frame(&mut s, &PeerMsg::Commit { zxid: 5 });
        assert_eq!(recv(&rb), msg(5, PeerMsg::Commit { zxid: 5 }));
        assert!(b.is_connected(5));
        b.send(5, &PeerMsg::Ack { zxid: 6 });
        assert_eq!(read_frame(&mut s), PeerMsg::Ack { zxid: 6 });
        // Its link goes down like any other.
        drop(s);
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 5 });
        // And it may connect again: the slot made on the fly has no address, so server
        // 2 never dials it, and a larger id it has no address for is not refused.
        let mut s = raw_peer_as(&b, 5);
        write_frame(&mut s, &PeerMsg::Commit { zxid: 7 });
        assert_eq!(recv(&rb), msg(5, PeerMsg::Commit { zxid: 7 }));
        assert_eq!(b.dials(5), 0);
        b.shutdown();
    }

    #[test]
    fn unknown_peers_are_capped() {
        let (b, _rb) = server2(1 << 20);
        let held: Vec<TcpStream> = (0..MAX_UNNAMED_PEERS as Sid)
            .map(|i| raw_peer_as(&b, 100 + i))
            .collect();
        // One more unknown id gets no hello back: the connection is closed.
        let mut s = TcpStream::connect(b.local_addr()).unwrap();
        s.write_all(&hello(99)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut h = [0u8; HELLO_LEN];
        assert!(
            s.read_exact(&mut h).is_err(),
            "the 65th unknown server was accepted"
        );
        drop(held);
        b.shutdown();
    }

    #[test]
    fn a_server_its_peer_does_not_know_connects_by_reverse_dial() {
        // Server 4 joins: it names server 1, which does not know it.
        let (da, ra) = collector();
        let a = PeerNet::start(settings(1, &[]), listener(), da).unwrap();
        let (db, rb) = collector();
        let b_listener = listener();
        let b_addr = b_listener.local_addr().unwrap();
        let b = PeerNet::start(
            settings(4, &[(1, a.local_addr().to_string())]),
            b_listener,
            db,
        )
        .unwrap();
        // Kept while there is no link, written first once the reverse dial connects.
        b.send(1, &vote(1));
        assert_eq!(recv(&ra), msg(4, vote(1)));
        // Server 1 made a slot for server 4 on the fly: it can answer.
        a.send(4, &PeerMsg::Ack { zxid: 7 });
        assert_eq!(recv(&rb), msg(1, PeerMsg::Ack { zxid: 7 }));
        assert!(a.is_connected(4) && b.is_connected(1));

        // The reconfiguration that adds server 4 names it on server 1: the link the
        // reverse dial made stays (server 1 dials only once it is down).
        a.set_peers(vec![
            PeerAddr {
                id: 1,
                addr: a.local_addr().to_string(),
            },
            PeerAddr {
                id: 4,
                addr: b_addr.to_string(),
            },
        ]);
        a.send(4, &PeerMsg::Commit { zxid: 8 });
        assert_eq!(recv(&rb), msg(1, PeerMsg::Commit { zxid: 8 }));
        b.send(1, &PeerMsg::Ack { zxid: 8 });
        assert_eq!(recv(&ra), msg(4, PeerMsg::Ack { zxid: 8 }));
        assert_no_down(&ra);
        assert_no_down(&rb);
        assert_eq!((a.links_made(), b.links_made()), (1, 1));
        assert_eq!(a.dials(4), 0, "server 1 never dialed while the link was up");

        // Server 4 restarts: now that server 1 knows it, server 1 dials it (its reverse
        // dials are refused), and messages flow again.
        b.shutdown();
        assert_eq!(recv(&ra), PeerEvent::Down { peer: 4 });
        let (db2, rb2) = collector();
        let b2 = PeerNet::start(
            settings(4, &[(1, a.local_addr().to_string())]),
            listener_at(b_addr),
            db2,
        )
        .unwrap();
        a.send(4, &vote(2));
        assert_eq!(recv(&rb2), msg(1, vote(2)));
        b2.send(1, &PeerMsg::Ack { zxid: 9 });
        assert_eq!(recv(&ra), msg(4, PeerMsg::Ack { zxid: 9 }));
        assert!(a.dials(4) >= 1);
        drop(rb);
        a.shutdown();
        b2.shutdown();
    }

    #[test]
    fn set_peers_names_a_new_peer_which_is_then_dialed() {
        let (da, ra) = collector();
        let a = PeerNet::start(settings(1, &[]), listener(), da).unwrap();
        // Server 2 knows nobody: only server 1's dial can link them.
        let (db, rb) = collector();
        let b = PeerNet::start(settings(2, &[]), listener(), db).unwrap();
        a.send(2, &vote(1)); // not a peer: dropped
        assert!(!a.is_connected(2));
        a.set_peers(vec![
            PeerAddr {
                id: 1,
                addr: a.local_addr().to_string(),
            },
            PeerAddr {
                id: 2,
                addr: b.local_addr().to_string(),
            },
        ]);
        a.send(2, &vote(2));
        assert_eq!(recv(&rb), msg(1, vote(2)));
        b.send(1, &PeerMsg::Ack { zxid: 3 });
        assert_eq!(recv(&ra), msg(2, PeerMsg::Ack { zxid: 3 }));
        assert_eq!((a.links_made(), b.links_made()), (1, 1));
        a.shutdown();
        assert_eq!(recv(&rb), PeerEvent::Down { peer: 1 });
        b.shutdown();
    }

    #[test]
    fn set_peers_moves_a_peer_to_a_new_address() {
        // Server 1 first has server 2 at an address where nobody listens.
        let (da, ra) = collector();
        let a = PeerNet::start(settings(1, &[(2, "127.0.0.1:9".into())]), listener(), da).unwrap();
        let (db, rb) = collector();
        let b = PeerNet::start(settings(2, &[]), listener(), db).unwrap();
        a.send(2, &vote(1));
        a.set_peers(vec![PeerAddr {
            id: 2,
            addr: b.local_addr().to_string(),
        }]);
        assert_eq!(recv(&rb), msg(1, vote(1)));
        b.send(1, &PeerMsg::Ack { zxid: 1 });
        assert_eq!(recv(&ra), msg(2, PeerMsg::Ack { zxid: 1 }));
        a.shutdown();
        b.shutdown();
    }

    #[test]
    fn peers_that_know_each_other_make_one_link() {
        let (la, lb) = (listener(), listener());
        let (aa, ab) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
        let (da, ra) = collector();
        let (db, rb) = collector();
        let b = PeerNet::start(settings(2, &[(1, aa.to_string())]), lb, db).unwrap();
        let a = PeerNet::start(settings(1, &[(2, ab.to_string())]), la, da).unwrap();
        a.send(2, &vote(1));
        assert_eq!(recv(&rb), msg(1, vote(1)));
        b.send(1, &PeerMsg::Ack { zxid: 1 });
        assert_eq!(recv(&ra), msg(2, PeerMsg::Ack { zxid: 1 }));
        // Checking for an absence needs a window: several grace periods, in which a
        // reverse dial by server 2 would have made a second link (it must not: server
        // 2 does not dial while linked, and server 1 refuses it, as it dials server 2).
        std::thread::sleep(TEST_GRACE * 5);
        a.send(2, &PeerMsg::Commit { zxid: 2 });
        assert_eq!(recv(&rb), msg(1, PeerMsg::Commit { zxid: 2 }));
        b.send(1, &PeerMsg::Ack { zxid: 2 });
        assert_eq!(recv(&ra), msg(2, PeerMsg::Ack { zxid: 2 }));
        assert_no_down(&ra);
        assert_no_down(&rb);
        assert_eq!((a.links_made(), b.links_made()), (1, 1));
        assert!(a.is_connected(2) && b.is_connected(1));
        a.shutdown();
        b.shutdown();
    }

    #[test]
    fn a_refused_reverse_dial_backs_off() {
        let start = Instant::now();
        // Server 1 names server 2 where nobody listens (it cannot reach it); server 2
        // names server 1 and reverse-dials it, which server 1 refuses.
        let (da, ra) = collector();
        let a = PeerNet::start(settings(1, &[(2, "127.0.0.1:9".into())]), listener(), da).unwrap();
        let (db, rb) = collector();
        let b = PeerNet::start(
            settings(2, &[(1, a.local_addr().to_string())]),
            listener(),
            db,
        )
        .unwrap();
        // No event marks a refused dial: poll for the first.
        let deadline = Instant::now() + Duration::from_secs(10);
        while b.dials(1) == 0 {
            assert!(Instant::now() < deadline, "no reverse dial within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(1500));
        // Each refusal waits at least REFUSED_BACKOFF_MIN before the next dial, so
        // however slowly this test ran, the dials are bounded by the time elapsed.
        let elapsed = start.elapsed();
        let bound = 1 + (elapsed.as_secs_f64() / REFUSED_BACKOFF_MIN.as_secs_f64()) as u64;
        let dials = b.dials(1);
        assert!(
            dials <= bound,
            "{dials} reverse dials in {elapsed:?}: not backing off"
        );
        assert!(!a.is_connected(2) && !b.is_connected(1));
        assert_eq!((a.links_made(), b.links_made()), (0, 0));
        assert!(ra.try_recv().is_err() && rb.try_recv().is_err());
        a.shutdown();
        b.shutdown();
    }
}
