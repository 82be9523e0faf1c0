"""A crash loop under pipelined writes: kill -9 a random member of a 3-member
ensemble (and sometimes every member at once) while a few sessions keep many
writes in flight each, restart, and check after every cycle that no
acknowledged write was lost.

    python3 -m tests.faults.crashloop --cycles 100 --servers keel,zookeeper [--seed N]

The load is what issue 12 made fast and what a crash must not lose: W writer
threads (default 4), each with one raw ZooKeeper connection (harness.rawzk, no
client library in between) keeping K requests in flight (default 64). A writer
works on a key of its own per session, `/crashloop/w<writer>-<incarnation>`,
and sets it to 1, 2, 3, ... (version -1), pipelined. A session's writes apply
in the order sent, so the key's value only grows, and once the reply to the
set of n is OK the key must hold n or more for ever: that is the check. A
writer whose connection breaks (its member killed, or the member lost its
leader) counts what was in flight as unknown and starts a new session, on a
key of its own, on a member chosen at random; the old session's key is never
written again, so a late write from it cannot be mistaken for a loss.

One cycle: writers run for a random 0.5-2 s; a kill -9 of one member (the
leader with probability 1/3) or, one cycle in four, of all three; the killed
members start again; the ensemble serves (`srvr`: one leader, two followers);
the writers go on for a moment against the recovered ensemble and are stopped
(each waits for its last replies); then every key is read on every member
(after a `sync`) and compared with the highest acknowledged value. Any key
below its acknowledged value is a lost write: the run stops there, exit status 1,
with the member logs kept (--out). Members that still disagree 10 s after the
writers stopped are reported too.

Progress is one line per cycle. CI runs a few cycles (tests/faults/test_crashloop.py);
docs/faults.md has the long run and its numbers.
"""
import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import deque

from harness import rawzk
from harness.ensemble import Ensemble

ROOT = "/crashloop"
START_TIMEOUT = 60.0


class Writer(threading.Thread):
    """One writer: a session at a time, a key per session, K sets in flight."""

    def __init__(self, loop, idx, inflight, seed):
        super().__init__(name="crashloop-w%d" % idx, daemon=True)
        self.loop = loop
        self.idx = idx
        self.inflight = inflight
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.incarnation = 0
        self.acked = 0
        self.unknown = 0
        self.errors = []

    def run(self):
        while not self.stop.is_set():
            members = [m for m in self.loop.ens.members if m.alive()]
            if not members:
                self.stop.wait(0.05)
                continue
            m = self.rng.choice(members)
            try:
                c = rawzk.RawZK(*m.address, timeout=5.0)
            except OSError:
                self.stop.wait(0.05)
                continue
            try:
                self.session(c)
            except (OSError, rawzk.ConnectionClosed, rawzk.ProtocolError, TimeoutError):
                pass
            finally:
                try:
                    c.sock.close()
                except OSError:
                    pass

    def session(self, c):
        c.connect(timeout_ms=6000)
        self.incarnation += 1
        key = "%s/w%d-%d" % (ROOT, self.idx, self.incarnation)
        r = c.create(key, b"0")
        if not r.ok:
            raise rawzk.ProtocolError("create %s: %s" % (key, r.err_name))
        self.loop.acked[key] = 0
        outstanding = deque()
        n = 0
        try:
            while True:
                while len(outstanding) < self.inflight and not self.stop.is_set():
                    n += 1
                    body = rawzk.W().ustring(key).buffer(b"%d" % n).int(-1).bytes()
                    outstanding.append((c.submit(rawzk.OP["setData"], body), n))
                if not outstanding:
                    return
                xid, v = outstanding[0]
                r = c.read_reply(xid, rawzk.OP["setData"], timeout=10)
                outstanding.popleft()
                if r.ok:
                    self.loop.acked[key] = v
                    self.acked += 1
                else:
                    self.errors.append("%s = %d: %s" % (key, v, r.err_name))
        finally:
            self.unknown += len(outstanding)


class CrashLoop:
    def __init__(self, kind, workdir, writers, inflight, seed, log=print):
        self.kind = kind
        self.ens = Ensemble(kind, workdir, participants=3)
        self.rng = random.Random(seed)
        self.writers_n = writers
        self.inflight = inflight
        self.seed = seed
        self.log = log
        self.acked = {}  # key -> highest acknowledged value
        self.writers = []
        self.total_acked = 0
        self.total_unknown = 0

    def start_writers(self):
        self.writers = [Writer(self, i, self.inflight, self.rng.random()) for i in range(self.writers_n)]
        for w in self.writers:
            w.start()

    def stop_writers(self):
        for w in self.writers:
            w.stop.set()
        for w in self.writers:
            w.join(timeout=30)
            if w.is_alive():
                raise RuntimeError("writer %d did not stop within 30 s" % w.idx)
        errors = [e for w in self.writers for e in w.errors]
        acked = sum(w.acked for w in self.writers)
        unknown = sum(w.unknown for w in self.writers)
        self.total_acked += acked
        self.total_unknown += unknown
        return acked, unknown, errors

    def read_all(self, member):
        """Every key's value on `member`, after a sync (None: the member did not answer)."""
        try:
            c = rawzk.RawZK(*member.address, timeout=10.0)
            c.connect(timeout_ms=10000)
        except (OSError, rawzk.ConnectionClosed, rawzk.ProtocolError):
            return None
        try:
            c.call(rawzk.OP["sync"], rawzk.path_only(ROOT), timeout=10)
            out = {}
            for key in list(self.acked):
                r = c.call(rawzk.OP["getData"], rawzk.path_watch(key, False), timeout=10)
                out[key] = int(r["data"]) if r.ok else None
            return out
        except (OSError, rawzk.ConnectionClosed, rawzk.ProtocolError):
            return None
        finally:
            c.sock.close()

    def verify(self, settle=10.0):
        """Lost writes (key, acked, seen, member) and whether the members agree,
        waiting up to `settle` seconds for stragglers to settle."""
        deadline = time.monotonic() + settle
        while True:
            views = {m.sid: self.read_all(m) for m in self.ens.members}
            lost = []
            for sid, view in views.items():
                if view is None:
                    continue
                for key, a in self.acked.items():
                    seen = view.get(key)
                    if seen is None or seen < a:
                        lost.append((key, a, seen, sid))
            answered = [v for v in views.values() if v is not None]
            agree = len(answered) == len(views) and all(v == answered[0] for v in answered)
            if (agree and not lost) or time.monotonic() >= deadline:
                return lost, agree
            time.sleep(0.2)

    def run(self, cycles):
        self.ens.start(timeout=START_TIMEOUT)
        c = rawzk.RawZK(*self.ens.members[0].address)
        c.connect(timeout_ms=10000)
        c.create(ROOT)
        c.sock.close()
        started = time.monotonic()
        for cycle in range(1, cycles + 1):
            self.start_writers()
            time.sleep(self.rng.uniform(0.5, 2.0))  # how long the load runs before the crash
            leader = self.ens.leader()
            if self.rng.random() < 0.25:
                victims = list(self.ens.members)
                self.ens.kill_all()
                what = "all members"
            else:
                victims = [self.rng.choice(self.ens.members)]
                victims[0].kill9()
                what = "member %d%s" % (victims[0].sid, " (leader)" if victims[0] is leader else "")
            t_kill = time.monotonic()
            for m in victims:
                m.spawn()
            self.ens.wait_serving(members=self.ens.members, timeout=START_TIMEOUT)
            recovered = time.monotonic() - t_kill
            time.sleep(0.3)  # writes against the recovered ensemble before the writers stop
            acked, unknown, errors = self.stop_writers()
            lost, agree = self.verify()
            self.log("%s cycle %d/%d: killed %s; serving again after %.2f s; %d writes acknowledged, %d unknown; %d keys checked on 3 members: %s" % (
                self.kind, cycle, cycles, what, recovered, acked, unknown, len(self.acked),
                "ok" if not lost and agree and not errors else "FAILED"))
            if errors:
                self.log("  unexpected error replies: %s" % errors[:5])
                return False
            if lost:
                for key, a, seen, sid in lost[:10]:
                    self.log("  LOST: %s acknowledged %d, member %d has %s" % (key, a, sid, seen))
                return False
            if not agree:
                self.log("  members disagree 10 s after the writers stopped")
                return False
        self.log("%s: %d cycles in %.0f s, %d writes acknowledged (%d × %d in flight), %d unknown, none lost" % (
            self.kind, cycles, time.monotonic() - started, self.total_acked, self.writers_n,
            self.inflight, self.total_unknown))
        return True

    def close(self):
        for w in self.writers:
            w.stop.set()
        self.ens.kill_all()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--servers", default="keel")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=None, help="keep the members' directories here")
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    print("crashloop: seed %d, %d cycles, %d writers x %d in flight" % (seed, a.cycles, a.writers, a.inflight), flush=True)
    ok = True
    for kind in a.servers.split(","):
        work = a.out or tempfile.mkdtemp(prefix="crashloop-")
        loop = CrashLoop(kind, os.path.join(work, kind), a.writers, a.inflight, seed,
                         log=lambda s: print(s, flush=True))
        try:
            passed = loop.run(a.cycles)
        finally:
            loop.close()
        ok = ok and passed
        if passed and not a.out:
            shutil.rmtree(work, ignore_errors=True)
        elif not passed:
            print("member logs kept under %s" % work, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
