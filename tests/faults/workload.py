"""The client workload: compare-and-set and barrier reads through kazoo.

Each worker thread owns one kazoo client (its own session) and loops: pick a
key, then either

* cas: `get` the key locally (data d, version v; any member, maybe stale),
  then `set(key, d + "," + token, version=v)` with a token unique in the whole
  run.  The set is the operation recorded (call just before it is sent, return
  when its answer arrives): ok with the new version, fail (BadVersion: the
  version was not v when the leader ordered it) or unknown (connection loss,
  session expiry, no answer within the operation timeout: it may or may not
  take effect, at any later time).  Values only grow, so the final data of a
  key lists every write that took effect, in order.

* barrier read: `get` the key (data d, version v), then a multi holding one
  `check(key, version=v)`.  Only if the check succeeds is the read recorded,
  as returning (v, d), over the interval from before the get to after the
  multi's answer.  The multi is a write as far as the ensemble is concerned:
  a follower forwards it, the leader orders it and answers only once a quorum
  has logged it, so its success means the key's version was v at a point of
  the single committed order that lies inside the interval -- and a version
  names one data.  A deposed leader (partitioned away, still believing it
  leads) cannot get a quorum to log anything, so it cannot confirm a stale
  read; its clients see the multi time out or fail.  A failed or unanswered
  check leaves the read unconfirmed; it is counted and left out of the
  history (a read changes nothing).

  Why not `sync` then `get`?  ZooKeeper's sync is not a quorum operation: the
  leader answers it from its own position in the log without asking anyone,
  so a leader that has been replaced but does not know it yet answers sync
  and then serves stale data (ZOOKEEPER-1675 / the "sync + read is not
  linearizable" caveat of the programmer's guide).  The check in a multi goes
  through the same ZAB round as any write.

Clients are of two sorts: pinned (connect string = one member: a client that
stays with a member through faults, deposed leader included) and roaming
(every member, kazoo moves on when one fails).  Sockets are made inside the
hub namespace (net.py).  Workers pace themselves (a few ms between ops) so that
two cores can run three servers, the workload and the checker.
"""
import random
import threading
import time

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import BadVersionError, KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError, SequentialThreadingHandler
from kazoo.retry import KazooRetry

from harness.netns import in_netns

from .checker import Op

now = time.monotonic_ns


class NetnsHandler(SequentialThreadingHandler):
    """kazoo's threading handler whose TCP connections are made inside a
    network namespace."""

    def __init__(self, netns):
        super().__init__()
        self.netns = netns

    def create_connection(self, *args, **kwargs):
        return in_netns(self.netns, SequentialThreadingHandler.create_connection, self, *args, **kwargs)


def make_client(netns, hosts, timeout=6.0, retry_delay=0.05, max_delay=0.5, auth=None,
                start=True, start_timeout=30):
    """A kazoo client whose connections live in `netns`, reconnecting quickly."""
    c = KazooClient(hosts=hosts, timeout=timeout, handler=NetnsHandler(netns),
                    connection_retry=KazooRetry(max_tries=-1, delay=retry_delay, backoff=1.5,
                                                max_delay=max_delay),
                    auth_data=auth)
    if start:
        try:
            c.start(timeout=start_timeout)
        except BaseException:
            close_client(c)  # it would go on trying to connect in the background
            raise
    return c


def close_client(c):
    try:
        c.stop()
    except Exception:
        pass
    try:
        c.close()
    except Exception:
        pass


class Worker(threading.Thread):
    def __init__(self, wl, name, hosts, seed):
        super().__init__(name="fault-worker-%s" % name, daemon=True)
        self.wl = wl
        self.cname = name
        self.hosts = hosts
        self.rng = random.Random(seed)
        self.n = 0
        self.connected = threading.Event()
        self.client = make_client(wl.netns, hosts, timeout=wl.session_timeout)
        self.connected.set()
        self.client.add_listener(self._state)

    def _state(self, state):
        if state == KazooState.CONNECTED:
            self.connected.set()
        else:
            self.connected.clear()

    def run(self):
        wl = self.wl
        while not wl.stopping.is_set():
            if not self.connected.wait(0.2):
                continue
            key = self.rng.choice(wl.keys)
            try:
                if self.rng.random() < wl.read_fraction:
                    self.read(key)
                else:
                    self.cas(key)
            except Exception as e:  # a bug of ours: keep it visible, go on
                wl.errors.append("%s: %r" % (self.cname, e))
            wl.stopping.wait(wl.pace * self.rng.uniform(0.5, 1.5))

    def _get(self, key):
        return self.client.get_async(key).get(timeout=self.wl.op_timeout)

    def read(self, key):
        wl = self.wl
        call = now()
        try:
            data, stat = self._get(key)
        except (KazooException, KazooTimeoutError):
            wl.count("read-get-failed")
            return
        if not wl.barrier:
            # plain local read (--no-barrier: shows what the barrier is for)
            wl.record(Op(self.cname, key, "read", call, ret=now(), status="ok",
                         value=(stat.version, data.decode())))
            return
        t = self.client.transaction()
        t.check(key, stat.version)
        try:
            res = t.commit_async().get(timeout=wl.op_timeout)
        except (KazooException, KazooTimeoutError):
            wl.count("read-check-unanswered")
            wl.record(Op(self.cname, key, "read", call, status="unknown",
                         value=(stat.version, data.decode())))
            return
        ret = now()
        if res == [True]:
            wl.record(Op(self.cname, key, "read", call, ret=ret, status="ok",
                         value=(stat.version, data.decode())))
        else:
            # the local copy was behind the committed order: a stale read the
            # barrier refused
            wl.count("read-stale-refused")
            wl.record(Op(self.cname, key, "read", call, ret=ret, status="fail",
                         value=(stat.version, data.decode())))

    def cas(self, key):
        wl = self.wl
        try:
            data, stat = self._get(key)
        except (KazooException, KazooTimeoutError):
            wl.count("cas-get-failed")
            return
        self.n += 1
        token = "%s.%d" % (self.cname, self.n)
        old = data.decode()
        new = old + "," + token if old else token
        op = Op(self.cname, key, "cas", now(), expect=(stat.version, old), new=new, token=token)
        try:
            st = self.client.set_async(key, new.encode(), version=stat.version).get(timeout=wl.op_timeout)
            op.ret, op.status, op.new_version = now(), "ok", st.version
        except (BadVersionError, NoNodeError) as e:
            op.ret, op.status, op.note = now(), "fail", type(e).__name__
        except (KazooException, KazooTimeoutError) as e:
            op.status, op.note = "unknown", type(e).__name__
        wl.record(op)


class Workload:
    """Workers doing cas / barrier reads on `keys` until stop().

    clients: list of (name, connect string)."""

    def __init__(self, netns, keys, clients, seed=0, read_fraction=0.5, pace=0.02,
                 op_timeout=4.0, session_timeout=6.0, barrier=True):
        self.netns = netns
        self.barrier = barrier
        self.keys = list(keys)
        self.read_fraction = read_fraction
        self.pace = pace
        self.op_timeout = op_timeout
        self.session_timeout = session_timeout
        self.stopping = threading.Event()
        self.history = []
        self.errors = []
        self.counters = {}
        self._cond = threading.Condition()
        self._ok_times = []       # completion times of ok ops (any kind)
        self._ok_write_times = []  # completion times of acknowledged cas
        self.workers = []
        try:
            for i, (name, hosts) in enumerate(clients):
                self.workers.append(Worker(self, name, hosts, seed * 1000 + i))
        except Exception:
            for w in self.workers:
                close_client(w.client)
            raise

    def count(self, what):
        with self._cond:
            self.counters[what] = self.counters.get(what, 0) + 1

    def record(self, op):
        with self._cond:
            op.id = len(self.history)
            self.history.append(op)
            if op.status == "ok":
                self._ok_times.append(op.ret)
                if op.kind == "cas":
                    self._ok_write_times.append(op.ret)
                self._cond.notify_all()

    def start(self):
        for w in self.workers:
            w.start()
        return self

    def wait_progress(self, n, after=None, timeout=30.0, writes=True):
        """Wait until `n` acknowledged writes (or ok ops of any kind with
        writes=False) completed after monotonic_ns time `after`.  Returns the
        completion time of the first one, or raises TimeoutError."""
        after = now() if after is None else after
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                times = self._ok_write_times if writes else self._ok_times
                later = [t for t in times[-(n + 1000):] if t > after]
                if len(later) >= n:
                    return min(later)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%d acknowledged %s after the mark in %.0fs (got %d)" % (
                        n, "writes" if writes else "ops", timeout, len(later)))
                self._cond.wait(min(left, 0.5))

    def first_write_after(self, t):
        with self._cond:
            later = [x for x in self._ok_write_times if x > t]
        return min(later) if later else None

    def stop(self):
        """Stop the workers and close their clients (a worker blocked on a
        call gives up after op_timeout)."""
        self.stopping.set()
        for w in self.workers:
            w.join(self.op_timeout + 5)
        for w in self.workers:
            close_client(w.client)
        stuck = [w.cname for w in self.workers if w.is_alive()]
        if stuck:
            self.errors.append("workers still running after stop: %s" % stuck)
