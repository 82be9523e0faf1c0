"""Sessions: expiry deletes ephemerals, reconnect keeps them, restarts."""
import threading
import time

import pytest
from kazoo.client import KazooState

from harness import rawzk
from harness.wait import wait_until, wait_event


class States:
    """Collects KazooState transitions; wait_for(state) with a deadline."""

    def __init__(self, client):
        self.seen = []
        self.cond = threading.Condition()
        client.add_listener(self)

    def __call__(self, state):
        with self.cond:
            self.seen.append(state)
            self.cond.notify_all()

    def wait_for(self, state, timeout=20.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: state in self.seen, timeout)
        assert ok, "state %s not reached within %ss (seen %s)" % (state, timeout, self.seen)


def expire_session(zk_factory, client):
    """Force expiry of client's session the kazoo-test way: a second client
    attaches to the same session id+password and closes it."""
    sid, pw = client.client_id
    twin = zk_factory(client_id=(sid, pw))
    twin.stop()


def test_forced_expiry_deletes_ephemerals_and_fires_watches(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    states = States(a)
    b.create(path)
    a.create(path + "/eph", ephemeral=True)
    a.create(path + "/eph-seq-", ephemeral=True, sequence=True)
    gone = threading.Event()
    b.get_children(path, watch=lambda e: gone.set())
    expire_session(zk_factory, a)
    wait_event(gone, 10, "child watch after expiry")
    assert b.get_children(path) == []
    states.wait_for(KazooState.LOST)


def test_expired_session_cannot_be_resumed(server, zk_factory):
    a = zk_factory()
    states = States(a)
    sid, pw = a.client_id
    expire_session(zk_factory, a)
    # kazoo's stop() may return before the server has processed the twin's close;
    # the original client learning its session is gone is the event to wait for.
    states.wait_for(KazooState.LOST)
    r = rawzk.RawZK(server.host, server.port)
    resp = r.connect(session_id=sid, passwd=pw)
    assert resp.get("closed") or (resp["sessionId"] == 0 and resp["timeOut"] == 0)
    assert r.wait_closed(10)


@pytest.mark.slow
def test_session_times_out_without_pings(server, zk_factory, path):
    """A raw client that never pings: its session (4 s, the minimum for
    tickTime 2000) expires and its ephemeral disappears."""
    b = zk_factory()
    raw = rawzk.connect(server.host, server.port, timeout_ms=4000)
    assert raw.timeout_ms == 4000
    assert raw.create(path, b"", flags=rawzk.EPHEMERAL).ok
    t0 = time.monotonic()
    gone = threading.Event()
    assert b.exists(path, watch=lambda e: gone.set()) is not None
    wait_event(gone, 20, "ephemeral of a silent session to disappear")
    elapsed = time.monotonic() - t0
    assert b.exists(path) is None
    # ZooKeeper expires between timeout and timeout + tickTime (4-6 s)
    assert elapsed >= 2.0, "expired after only %.1fs" % elapsed
    # the server also closes the silent connection
    assert raw.wait_closed(10)


def test_reconnect_with_session_id_keeps_ephemerals(server, zk_factory, path):
    raw = rawzk.connect(server.host, server.port, timeout_ms=20000)
    assert raw.create(path, b"mine", flags=rawzk.EPHEMERAL).ok
    sid, pw = raw.session_id, raw.passwd
    raw.close()  # TCP gone, session alive
    c = zk_factory(client_id=(sid, pw))
    assert c.client_id[0] == sid
    stat = c.exists(path)
    assert stat is not None and stat.ephemeralOwner == sid
    c.stop()  # closes the session
    other = zk_factory()
    assert other.exists(path) is None


def test_reconnect_with_wrong_password_is_refused(server, path):
    raw = rawzk.connect(server.host, server.port)
    sid = raw.session_id
    other = rawzk.RawZK(server.host, server.port)
    resp = other.connect(session_id=sid, passwd=b"\x01" * 16)
    assert resp.get("closed") or (resp["sessionId"] == 0 and resp["timeOut"] == 0)
    assert other.wait_closed(10)


def test_server_restart_keeps_data_and_sessions(fresh_server, zk_factory, path):
    c = zk_factory(fresh_server, timeout=20.0)
    states = States(c)
    c.create(path, b"persistent")
    c.create(path + "-eph", b"", ephemeral=True)
    sid = c.client_id[0]
    fresh_server.restart()
    states.wait_for(KazooState.SUSPENDED)
    wait_until(lambda: c.state == KazooState.CONNECTED, 20, what="kazoo reconnect")
    assert c.client_id[0] == sid
    assert c.get(path)[0] == b"persistent"
    assert c.exists(path + "-eph").ephemeralOwner == sid


def test_kill9_keeps_acknowledged_writes(fresh_server, zk_factory, path):
    c = zk_factory(fresh_server, timeout=20.0)
    c.create(path)
    for i in range(20):
        c.create("%s/n%02d" % (path, i), b"%d" % i)
    c.set(path, b"last")
    fresh_server.kill9()
    fresh_server.restart()
    d = zk_factory(fresh_server)
    assert d.get(path)[0] == b"last"
    assert len(d.get_children(path)) == 20
