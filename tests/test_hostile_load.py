"""Hostile clients, part 2: exhaustion (issue 10).  Each test gets a fresh server
(`maxClientCnxns=0`, as an attacker with many source addresses would have it:
both servers' default of 60 per address would otherwise stop these attacks at
the door) and checks afterwards, as in test_hostile.py, that the process is
alive, a kazoo client creates and reads within 2 s per operation, and every
znode acknowledged before the attack is intact.

What Apache ZooKeeper 3.8.0 does (asserted for both servers):

* Slowloris: 500 connections that each send part of a frame header (1-3
  bytes), a full header and part of a ConnectRequest, or a handshake and part
  of a request header, then stall.  Meanwhile a kazoo client connects and is
  served well within 2 s per operation.  (ZooKeeper closes connections that have
  not completed a handshake after 10 s; the test is over before that.)

* Thousands of sessions: 2,000 simultaneous sessions (10,000 with `slow`),
  each answering a ping; a kazoo client is served within 2 s per operation.

* A client that pipelines thousands of getData of a ~1 MB znode and never reads
  a reply.  ZooKeeper reads and processes every request (Outstanding drops to
  0: the globalOutstandingLimit of 1000 counts requests in the pipeline, not
  queued replies), and queues the replies in the connection's unbounded
  outgoingBuffers; but its getData replies are serialized once and shared
  (ServerCnxn's response cache, keyed by path and stat version), so 4,000 queued
  1 MB replies cost it about 100 MB of RSS, not 4 GB.  Other sessions kept
  sub-50 ms latency throughout (measured: max 0.04 s).  So the fair bound,
  met by ZooKeeper with room to spare, is: RSS growth under 512 MiB while the
  attack runs, and every probe operation of another session within 2 s.
  Keel before the fix: RSS grew by about 1.3 MB per queued reply (3.8 GiB for
  3,000), and another session's exists() took over 10 s (its single network
  core was busy copying reply bytes).  The test stops the attack as soon as the
  bound is exceeded.

* One small request, one enormous reply: a multiRead of 1,000 getData of a
  1 MB znode (28 KB) asks for a 1 GB reply.  ZooKeeper 3.8.0 does not survive
  it (OutOfMemoryError at 300 ops with -Xmx512m; the JVM exits), so that test
  runs against Keel only, with the same bounds.  No `slow` variant with more
  ops: against a Keel without a limit it would exhaust the machine's memory.
"""
import socket
import struct
import time

import pytest

from harness import rawzk
from harness.hostile import (Ledger, RssSampler, assert_served, connect_request,
                             kazoo_round_trip, raise_nofile, srvr_counters)

pytestmark = pytest.mark.server_cfg(maxClientCnxns=0)

OP_DEADLINE = 2.0


@pytest.fixture
def target(fresh_server, request):
    Ledger.of(fresh_server).add(request.node.name, n=5)
    return fresh_server


def _recv_exact(sock, n, deadline):
    buf = b""
    while len(buf) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        b = sock.recv(n - len(buf))
        if not b:
            raise rawzk.ConnectionClosed("closed after %d of %d bytes" % (len(buf), n))
        buf += b
    return buf


# ---------------------------------------------------------------------------
# 4. slowloris


def _open(sock):
    """True if the server has not closed `sock` (nothing to read, no EOF)."""
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def _stall_bytes(i):
    """What connection i sends before stalling."""
    k = i % 4
    if k == 0:
        return b"\x00"                      # 1 byte of a length
    if k == 1:
        return b"\x00\x00\x00"              # 3 bytes of a length
    if k == 2:
        return connect_request()[:20]       # a length and part of a ConnectRequest
    return None                             # a handshake, then part of a request header


def _slowloris(target, n):
    raise_nofile(n + 1000)
    socks = []
    handshaken = []
    try:
        for i in range(n):
            s = socket.create_connection(target.address, timeout=5)
            data = _stall_bytes(i)
            if data is None:
                s.sendall(connect_request())
                handshaken.append(s)
            else:
                s.sendall(data)
            socks.append(s)
        deadline = time.monotonic() + 20
        for s in handshaken:
            n_resp = struct.unpack(">i", _recv_exact(s, 4, deadline))[0]
            _recv_exact(s, n_resp, deadline)
            s.sendall(struct.pack(">i", 20) + b"\x00\x00")  # 2 bytes of a 20-byte request
        # (ZooKeeper's srvr counts these connections, Keel's only handshaken ones:
        # the attack is checked from this side instead)
        t0 = time.monotonic()
        worst = kazoo_round_trip(target, deadline=OP_DEADLINE, connect_deadline=5.0, tag="slowloris")
        elapsed = time.monotonic() - t0
        assert target.alive()
        still_open = sum(1 for s in socks if _open(s))
        print("slowloris %d: %d still open after the check; kazoo connect+3 ops %.3fs, "
              "slowest op %.3fs" % (n, still_open, elapsed, worst))
        # the attack held while the client was served (a server may shed some)
        assert still_open >= n // 2, "only %d of %d stalled connections still open" % (still_open, n)
        c = rawzk.connect(target.host, target.port, timeout=OP_DEADLINE)
        try:
            assert c.create("/slowloris-raw", b"r").ok
            assert c.get_data("/slowloris-raw")["data"] == b"r"
        finally:
            c.close()
    finally:
        for s in socks:
            s.close()
    assert_served(target, what="slowloris")


def test_slowloris_500(target):
    _slowloris(target, 500)


@pytest.mark.slow
def test_slowloris_5000(target):
    _slowloris(target, 5000)


# ---------------------------------------------------------------------------
# 5. many sessions


def _many_sessions(target, n, batch=40):
    # batches below ZooKeeper's listen backlog (50, the JVM default): a full
    # accept queue drops SYNs, and each retransmission costs the client 1 s
    raise_nofile(n + 1000)
    socks = []
    try:
        t0 = time.monotonic()
        for start in range(0, n, batch):
            part = []
            for _ in range(min(batch, n - start)):
                s = socket.create_connection(target.address, timeout=10)
                s.sendall(connect_request(timeout_ms=40000))
                part.append(s)
            deadline = time.monotonic() + 30
            for s in part:
                m = struct.unpack(">i", _recv_exact(s, 4, deadline))[0]
                body = _recv_exact(s, m, deadline)
                sid = struct.unpack(">q", body[8:16])[0]
                assert sid != 0, "session %d refused" % len(socks)
                socks.append(s)
            assert target.alive(), "server died after %d sessions" % len(socks)
        t_open = time.monotonic() - t0
        # every session is live: a ping on each, all answered
        ping = struct.pack(">iii", 8, rawzk.PING_XID, rawzk.OP["ping"])
        for s in socks:
            s.sendall(ping)
        deadline = time.monotonic() + 30
        for i, s in enumerate(socks):
            m = struct.unpack(">i", _recv_exact(s, 4, deadline))[0]
            xid = struct.unpack(">i", _recv_exact(s, m, deadline)[:4])[0]
            assert xid == rawzk.PING_XID, "session %d: reply xid %d to a ping" % (i, xid)
        t_ping = time.monotonic() - t0 - t_open
        worst = kazoo_round_trip(target, deadline=OP_DEADLINE, connect_deadline=5.0, tag="sessions")
        print("%d sessions opened in %.1fs, all pinged in %.1fs; kazoo slowest op %.3fs" % (
            n, t_open, t_ping, worst))
    finally:
        for s in socks:
            s.close()
    assert_served(target, what="%d sessions" % n)


def test_many_sessions_2000(target):
    _many_sessions(target, 2000)


@pytest.mark.slow
def test_many_sessions_10000(target):
    _many_sessions(target, 10000)


# ---------------------------------------------------------------------------
# 6. a client that never reads

BIG = 1000 * 1000          # under jute.maxbuffer (0xfffff) with the request header
RSS_BOUND = 512 << 20      # growth while the attack runs


def _never_reading(target, requests, bound=RSS_BOUND, window=10.0, settle=3.0):
    setup = rawzk.connect(target.host, target.port)
    try:
        assert setup.create("/never-read-big", b"b" * BIG).ok
    finally:
        setup.close()
    probe = rawzk.connect(target.host, target.port, timeout=OP_DEADLINE)

    a = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # keep the kernel's share small
    a.connect(target.address)
    a.settimeout(5)
    a.sendall(connect_request())
    n = struct.unpack(">i", _recv_exact(a, 4, time.monotonic() + 5))[0]
    _recv_exact(a, n, time.monotonic() + 5)
    a.setblocking(False)
    body = rawzk.path_watch("/never-read-big", False)
    frames = b"".join(struct.pack(">iii", 8 + len(body), i + 1, rawzk.OP["getData"]) + body
                      for i in range(requests))

    rss = RssSampler(target)
    latencies = []
    sent = 0
    t0 = time.monotonic()
    all_sent_at = None
    verdict = "window over"
    try:
        while True:
            if sent < len(frames):
                try:
                    sent += a.send(frames[sent:sent + 65536])
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    verdict = "server closed the attacker"
                    break
                if sent == len(frames):
                    all_sent_at = time.monotonic()
            # another session's latency
            t = time.monotonic()
            try:
                r = probe.call(rawzk.OP["exists"], rawzk.path_watch("/never-read-big", False),
                               timeout=OP_DEADLINE)
                assert r.ok, r
            except socket.timeout:
                latencies.append(float("inf"))
                verdict = "probe timed out"
                break
            latencies.append(time.monotonic() - t)
            if rss.over(bound):
                verdict = "RSS bound exceeded"
                break
            if not target.alive():
                verdict = "server died"
                break
            # measure for `settle` s after the last request went out (or until
            # `window` if the server stops reading them)
            if all_sent_at is not None and time.monotonic() - all_sent_at > settle:
                verdict = "all sent, %.0fs settled" % settle
                break
            if time.monotonic() - t0 > window:
                break
            time.sleep(0.005)  # pacing of the probe, not synchronisation
        rss.sample_now()
    finally:
        rss.stop()
        try:
            after = srvr_counters(target, timeout=OP_DEADLINE) if target.alive() else {}
        except OSError:  # an unresponsive server: the assertions below say why
            after = {}
        a.close()
        probe.close()
    worst = max(latencies) if latencies else 0.0
    print("never-reading client, %d getData of %d bytes: %s after %.1fs; %d bytes of requests "
          "sent; srvr Outstanding %s; RSS %d MiB -> peak %d MiB (growth %d MiB); "
          "%d probes, slowest %.3fs" % (
              requests, BIG, verdict, time.monotonic() - t0, sent, after.get("Outstanding"),
              rss.baseline >> 20, rss.peak >> 20, rss.growth >> 20, len(latencies), worst))
    assert target.alive(), "the never-reading client killed the server; log tail:\n%s" % target.log_tail(10)
    assert rss.growth <= bound, (
        "server RSS grew by %d MiB (bound %d MiB) serving a client that never reads (%s)" % (
            rss.growth >> 20, bound >> 20, verdict))
    assert worst <= OP_DEADLINE, "another session's exists() took %.2fs during the attack" % worst
    assert_served(target, what="a never-reading client")


def test_never_reading_client(target):
    _never_reading(target, 4000)


@pytest.mark.slow
def test_never_reading_client_20000(target):
    _never_reading(target, 20000, window=30.0, settle=10.0)


# ---------------------------------------------------------------------------
# 6b. one small request, one enormous reply


def _multiread_amplification(target, ops, bound=RSS_BOUND):
    setup = rawzk.connect(target.host, target.port)
    try:
        r = setup.create("/amplified-big", b"a" * BIG)
        assert r.err_name in ("OK", "NODEEXISTS"), r
    finally:
        setup.close()
    body = b"".join(rawzk.W().int(rawzk.OP["getData"]).bool(False).int(-1)
                    .ustring("/amplified-big").bool(False).bytes() for _ in range(ops))
    body += rawzk.W().int(-1).bool(True).int(-1).bytes()
    probe = rawzk.connect(target.host, target.port, timeout=OP_DEADLINE)
    a = rawzk.connect(target.host, target.port)
    rss = RssSampler(target)
    outcome = "no answer"
    worst = 0.0
    try:
        a.submit(rawzk.OP["multiRead"], body)
        deadline = time.monotonic() + 20
        a.sock.settimeout(0.05)
        got = 0
        while time.monotonic() < deadline and not rss.over(bound) and target.alive():
            # the attacker reads (and discards) whatever comes back
            try:
                chunk = a.sock.recv(1 << 20)
                if not chunk:
                    outcome = "closed after %d bytes" % got
                    break
                got += len(chunk)
            except socket.timeout:
                pass
            except OSError:
                outcome = "reset after %d bytes" % got
                break
            t = time.monotonic()
            try:
                r = probe.call(rawzk.OP["exists"], rawzk.path_watch("/amplified-big", False),
                               timeout=OP_DEADLINE)
                assert r.ok, r
            except socket.timeout:
                worst = float("inf")
                break
            worst = max(worst, time.monotonic() - t)
            if got:
                outcome = "answered (%d bytes so far)" % got
                if got < 4096:
                    break  # a short (error) reply
        rss.sample_now()
    finally:
        rss.stop()
        a.close()
        probe.close()
    print("multiRead of %d getData of a %d-byte znode (%d-byte request): %s; RSS growth %d MiB; "
          "slowest probe %.3fs" % (ops, BIG, len(body) + 8, outcome, rss.growth >> 20, worst))
    assert target.alive(), "one multiRead killed the server; log tail:\n%s" % target.log_tail(10)
    assert rss.growth <= bound, (
        "server RSS grew by %d MiB (bound %d MiB) for one %d-byte multiRead (%s)" % (
            rss.growth >> 20, bound >> 20, len(body) + 8, outcome))
    assert worst <= OP_DEADLINE, "another session's exists() took %.2fs" % worst
    assert_served(target, what="a multiRead amplification")


def test_multiread_reply_amplification(target):
    """A 28 KB multiRead of 1,000 getData of a 1 MB znode asks for a 1 GB reply.
    Not in ZooKeeper's repertoire: 3.8.0 (run with the harness's -Xmx512m) dies of
    it at 300 ops (java.lang.OutOfMemoryError in SyncThread:0, "Severe
    unrecoverable error", then the JVM exits), so it is no oracle here.  Keel
    must stay up, within the RSS bound, and keep serving others; what the
    attacker gets (an error, a close) is not prescribed.  Keel before a fix:
    about 1.9 GB of RSS per 1,000 ops (4.2 GB for 2,200 ops, whose reply
    exceeds 2 GiB: the connection is then closed without a log line; 6,000
    ops passed 8 GB; a ~900 KB request of 50,000 ops would ask for 50 GB)."""
    if target.kind == "zookeeper":
        pytest.skip("ZooKeeper 3.8.0 does not survive this (OutOfMemoryError, exits); Keel must")
    _multiread_amplification(target, 1000)
