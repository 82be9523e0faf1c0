"""Helpers for the hostile-client suites (tests/test_hostile*.py).

  * `rss_bytes(server)` / `RssSampler`: a server process's resident memory, read
    from /proc/<pid>/status (VmRSS).  `Server.proc` is the process the harness
    spawned: the `keel` binary itself, or the `java` process for ZooKeeper (it
    is launched directly, not through a shell), so its pid is the server's.
  * `raise_nofile(n)`: lift this process's RLIMIT_NOFILE soft limit (up to the
    hard limit) so that a test can hold thousands of sockets; servers started
    afterwards inherit it.
  * `Ledger`: znodes whose create was acknowledged, remembered per server, so a
    test can check after an attack that none was lost (or changed).
  * `ensure_running(server)`: restart (same data dir and port) a shared server
    that an earlier attack killed, so one crash fails one test, not the module.
  * `assert_served(server, ...)`: the checks made after every attack: the
    process is alive, a well-behaved kazoo client connects and creates and reads
    within a deadline, `ruok` answers, and every acknowledged znode is intact.
"""
import itertools
import os
import re
import resource
import struct
import threading
import time

from . import rawzk

LEDGER_ROOT = "/hostile-acked"

# Per-operation deadline for the well-behaved client after (or during) an attack.
OP_DEADLINE = float(os.environ.get("KEEL_HOSTILE_OP_DEADLINE", "2.0"))
CONNECT_DEADLINE = float(os.environ.get("KEEL_HOSTILE_CONNECT_DEADLINE", "10.0"))


# ---------------------------------------------------------------------------
# process statistics


def rss_bytes(server_or_pid):
    """Resident set size in bytes of a server (a harness Server) or a pid."""
    pid = server_or_pid if isinstance(server_or_pid, int) else server_or_pid.proc.pid
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS for pid %d" % pid)


class RssSampler:
    """Samples a server's RSS in a background thread (every `interval` s) until
    stop(); `.baseline`, `.peak`, `.growth` (peak - baseline), `.samples`.
    `over(limit)` is True as soon as growth exceeds `limit` bytes, so an attack
    can stop early instead of driving a leaking server into swap or the OOM
    killer."""

    def __init__(self, server, interval=0.05):
        self.server = server
        self.interval = interval
        self.baseline = rss_bytes(server)
        self.peak = self.baseline
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t.start()

    def _run(self):
        t0 = time.monotonic()
        while not self._stop.is_set():
            try:
                v = rss_bytes(self.server)
            except (OSError, RuntimeError, ValueError):
                return  # the process is gone
            self.samples.append((time.monotonic() - t0, v))
            if v > self.peak:
                self.peak = v
            self._stop.wait(self.interval)

    def sample_now(self):
        try:
            v = rss_bytes(self.server)
        except (OSError, RuntimeError, ValueError):
            return self.peak
        if v > self.peak:
            self.peak = v
        return v

    @property
    def growth(self):
        return self.peak - self.baseline

    def over(self, limit):
        return self.growth > limit

    def stop(self):
        self._stop.set()
        self._t.join(5)
        return self


def raise_nofile(wanted):
    """Raise RLIMIT_NOFILE's soft limit to at least `wanted` if the hard limit
    allows; returns the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def srvr_counters(server, timeout=5.0):
    """{'Received': n, 'Sent': n, 'Outstanding': n, 'Connections': n} from `srvr`
    (both servers print these lines); missing keys are absent."""
    out = {}
    for line in server.four_letter("srvr", timeout=timeout).splitlines():
        k, _, v = line.partition(":")
        if k in ("Received", "Sent", "Outstanding", "Connections"):
            try:
                out[k] = int(v.strip())
            except ValueError:
                pass
    return out


# ---------------------------------------------------------------------------
# acknowledged znodes


_LEDGERS = {}
_tags = itertools.count()


class Ledger:
    """Znodes created (and acknowledged) on one server; `check()` reads them all
    back.  One ledger per Server object, shared by every test that uses it."""

    def __init__(self, server):
        self.server = server
        self.acked = {}  # path -> data

    @classmethod
    def of(cls, server):
        led = _LEDGERS.get(id(server))
        if led is None or led.server is not server:
            led = _LEDGERS[id(server)] = cls(server)
        return led

    def add(self, tag, n=5):
        """Create n znodes under LEDGER_ROOT/<tag>.<serial>-i; remember those acknowledged."""
        tag = "%s.%d" % (re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)[:60], next(_tags))
        c = rawzk.connect(self.server.host, self.server.port)
        try:
            r = c.create(LEDGER_ROOT, b"")
            assert r.err_name in ("OK", "NODEEXISTS"), r
            for i in range(n):
                p = "%s/%s-%d" % (LEDGER_ROOT, tag, i)
                data = ("%s #%d %f" % (tag, i, time.time())).encode()
                r = c.create(p, data)
                assert r.ok, "setting up %s: %r" % (p, r)
                self.acked[p] = data
        finally:
            c.close()
        return self

    def check(self):
        """Assert every acknowledged znode is present with its data."""
        if not self.acked:
            return
        c = rawzk.connect(self.server.host, self.server.port, timeout=CONNECT_DEADLINE)
        try:
            lost, changed = [], []
            for p, data in sorted(self.acked.items()):
                r = c.get_data(p)
                if r.err_name == "NONODE":
                    lost.append(p)
                elif not r.ok or r["data"] != data:
                    changed.append((p, r.err_name, r.get("data")))
            assert not lost and not changed, (
                "acknowledged znodes lost: %s; changed: %s (of %d)" % (lost, changed, len(self.acked)))
        finally:
            c.close()


# ---------------------------------------------------------------------------
# liveness


def ensure_running(server):
    """Restart a shared server that an earlier test killed (same data dir and
    port); returns True if it had to."""
    if server.alive():
        return False
    server.restart()
    return True


def kazoo_round_trip(server, deadline=OP_DEADLINE, connect_deadline=CONNECT_DEADLINE, tag="served"):
    """A fresh kazoo client connects within connect_deadline, then creates,
    reads and deletes a znode, each within `deadline` s.  Returns the slowest
    operation's latency."""
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=server.hosts, timeout=10.0)
    try:
        zk.start(timeout=connect_deadline)
        p = "/hostile-%s-%d" % (tag, int(time.monotonic() * 1e6))
        worst = 0.0
        for what, call in (("create", lambda: zk.create_async(p, b"v")),
                           ("get", lambda: zk.get_async(p)),
                           ("delete", lambda: zk.delete_async(p))):
            t = time.monotonic()
            res = call().get(timeout=deadline)
            dt = time.monotonic() - t
            worst = max(worst, dt)
            if what == "get":
                assert res[0] == b"v", res
        return worst
    finally:
        try:
            zk.stop()
            zk.close()
        except Exception:
            pass


def assert_served(server, ledger=None, deadline=OP_DEADLINE, what="the attack"):
    """After an attack: alive, a kazoo client served within deadlines, ruok,
    no acknowledged znode lost."""
    assert server.alive(), "%s killed the server (exit code %s); log tail:\n%s" % (
        what, server.proc.returncode, server.log_tail(15))
    kazoo_round_trip(server, deadline=deadline)
    assert server.four_letter("ruok") == "imok"
    (ledger or Ledger.of(server)).check()


# ---------------------------------------------------------------------------
# raw handshakes on many sockets


def connect_request(timeout_ms=30000, session_id=0, passwd=b"\x00" * 16):
    body = (rawzk.W().int(0).long(0).int(timeout_ms).long(session_id)
            .buffer(passwd).bool(False).bytes())
    return struct.pack(">i", len(body)) + body
