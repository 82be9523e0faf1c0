"""Ensembles: 3 participants (+ an observer) of ZooKeeper or Keel on loopback.

Reads through one member see writes made through another after `sync`;
ephemerals and watches work across members; an observer serves reads and
writes; a session moves to another member when its server dies; killing the
leader under load loses no acknowledged write and no session; killing every
member at once loses no acknowledged write; read-only mode; local sessions.

Every ensemble runs with tickTime=200 ms, initLimit=10, syncLimit=5 and
maxSessionTimeout=20 s (harness/ensemble.py).
"""
import threading
import time

import pytest
from kazoo.client import KazooState
from kazoo.exceptions import ConnectionLoss, KazooException, NotReadOnlyCallError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import EventType, KeeperState

from harness import rawzk
from harness.clients import kazoo_clients
from harness.ensemble import module_ensemble
from harness.kazoo_ext import EphemeralOnLocalSessionError
from harness.wait import wait_event, wait_until

# Generous for 2 loaded cores running three or four JVMs.
ELECTION_TIMEOUT = 30


# ---------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def ens(server_kind, tmp_path_factory):
    """A 3-participant + 1-observer ensemble shared by the tests of this module
    that leave it as they found it (every member running)."""
    yield from module_ensemble(server_kind,
                               tmp_path_factory.mktemp("%s-ensemble" % server_kind),
                               participants=3, observers=1)


@pytest.fixture
def ensemble(ens):
    """The shared ensemble, every member running and serving (a member a
    failed test left down is started again)."""
    for m in ens.members:
        if not m.alive():
            m.spawn()
    ens.wait_serving(members=ens.members, timeout=ELECTION_TIMEOUT)
    return ens


@pytest.fixture
def kz():
    """make(hosts, start=True, **KazooClient kwargs) -> KazooClient; all are
    closed at teardown."""
    with kazoo_clients(fast=True) as make:
        yield make


def session_id(c):
    return c.client_id[0]


def synced_get(c, p):
    c.sync(p)
    return c.get(p)


def synced_exists(c, p):
    c.sync(p)
    return c.exists(p)


# ---------------------------------------------------------------------------
# a. reads, ephemerals and watches across members


def test_sync_then_read_through_another_member(ensemble, kz, path):
    members = ensemble.members
    writer = kz(members[0].hosts)
    readers = {m.sid: kz(m.hosts) for m in members[1:]}
    writer.create(path, b"v0")
    for i in range(1, 16):
        value = b"v%d" % i
        writer.set(path, value)
        for sid, r in readers.items():
            # read straight after the write: only `sync` makes it visible in time
            assert synced_get(r, path)[0] == value, "member %d" % sid
    # and the other way round: a write through the observer, read on member 1
    obs = readers[ensemble.observers[0].sid]
    obs.create(path + "/child", b"from-observer")
    assert synced_get(writer, path + "/child")[0] == b"from-observer"
    assert writer.get_children(path) == ["child"]


def test_ephemeral_owner_visible_on_every_member(ensemble, kz, path):
    members = ensemble.members
    owner = kz(members[1].hosts)
    others = [kz(m.hosts) for m in members]
    owner.create(path, b"", ephemeral=True)
    sid = session_id(owner)
    for c in others:
        st = synced_exists(c, path)
        assert st is not None and st.ephemeralOwner == sid
    owner.stop()  # closes the session: its ephemeral goes everywhere
    owner.close()
    # kazoo's stop() does not wait for the reply to closeSession
    for c in others:
        wait_until(lambda: synced_exists(c, path) is None, 10, what="ephemeral gone via %r" % c.hosts)


def test_watch_on_follower_fires_for_write_elsewhere(ensemble, kz, path):
    leader, _ = ensemble.wait_serving()
    follower = [m for m in ensemble.participants if m is not leader][0]
    other = [m for m in ensemble.members if m not in (leader, follower)][0]
    watcher = kz(follower.hosts)
    writer = kz(other.hosts)  # the other follower or the observer
    events = []
    fired = threading.Event()

    def cb(ev):
        events.append(ev)
        fired.set()

    # exists watch (node absent) fires on create
    assert watcher.exists(path, watch=cb) is None
    writer.create(path, b"a")
    wait_event(fired, 10, "exists watch on %r" % follower)
    assert (events[0].type, events[0].path) == (EventType.CREATED, path)
    # data watch fires on set through the leader
    fired.clear()
    assert watcher.get(path, watch=cb)[0] == b"a"
    kz(leader.hosts).set(path, b"b")
    wait_event(fired, 10, "data watch on %r" % follower)
    assert (events[1].type, events[1].path) == (EventType.CHANGED, path)
    # child watch fires on create through another member
    fired.clear()
    assert watcher.get_children(path, watch=cb) == []
    writer.create(path + "/c", b"")
    wait_event(fired, 10, "child watch on %r" % follower)
    assert (events[2].type, events[2].path) == (EventType.CHILD, path)


# ---------------------------------------------------------------------------
# f. observers


def test_observer_serves_reads_and_writes(ensemble, kz, path):
    obs = ensemble.observers[0]
    assert "Mode: observer" in obs.srvr()
    c = kz(obs.hosts)  # connected to the observer alone
    c.create(path, b"one")
    assert c.get(path)[0] == b"one"
    c.set(path, b"two")
    c.create(path + "/e", b"", ephemeral=True)
    assert c.get(path)[0] == b"two"
    assert c.exists(path + "/e").ephemeralOwner == session_id(c)
    leader, _ = ensemble.wait_serving()
    lc = kz(leader.hosts)
    assert synced_get(lc, path)[0] == b"two"
    assert lc.get_children(path) == ["e"]
    c.delete(path + "/e")
    assert c.exists(path + "/e") is None


# ---------------------------------------------------------------------------
# b. leader killed under load


class Writer(threading.Thread):
    """Creates <base>/<tag>-<n> one after another until stopped; records every
    acknowledged path.  Its session owns <base>/eph-<tag>."""

    def __init__(self, client, base, tag):
        super().__init__(daemon=True)
        self.c, self.base, self.tag = client, base, tag
        self.acked, self.errors, self.states = [], [], []
        self.stop_flag = threading.Event()
        client.add_listener(self.states.append)

    def run(self):
        i = 0
        while not self.stop_flag.is_set():
            p = "%s/%s-%06d" % (self.base, self.tag, i)
            i += 1
            try:
                self.c.create_async(p, p.encode()).get(timeout=15)
                self.acked.append(p)
            except (ConnectionLoss, KazooTimeoutError, KazooException) as e:
                self.errors.append(repr(e))
                # not acknowledged: wait to be connected again, then go on
                deadline = time.monotonic() + 20
                while (not self.c.connected and not self.stop_flag.is_set()
                       and time.monotonic() < deadline):
                    time.sleep(0.01)


def test_leader_killed_under_writes(ensemble, kz, path):
    old_leader, _ = ensemble.wait_serving()
    kz(ensemble.hosts()).create(path, b"")
    # all three participants in every connect string; writer 0 starts on the
    # leader (so it has to move), the others on the followers
    order = [old_leader] + [m for m in ensemble.participants if m is not old_leader]
    writers = []
    for t in range(3):
        c = kz(ensemble.hosts(order[t:] + order[:t]), randomize_hosts=False)
        assert c.hosts[0][1] == order[t].port
        c.create("%s/eph-w%d" % (path, t), b"", ephemeral=True)
        writers.append(Writer(c, path, "w%d" % t))
    sessions = [session_id(w.c) for w in writers]
    for w in writers:
        w.start()
    try:
        wait_until(lambda: all(len(w.acked) >= 20 for w in writers), 30, what="writes before the kill")
        before = [len(w.acked) for w in writers]
        t0 = time.monotonic()
        old_leader.kill9()
        new_leader, _ = ensemble.wait_serving(old_leader=old_leader, timeout=ELECTION_TIMEOUT)
        elected = time.monotonic() - t0
        # the clients carry on: each makes 20 more acknowledged writes
        wait_until(lambda: all(len(w.acked) >= n + 20 for w, n in zip(writers, before)), 30,
                   what="writes after the leader was killed (elected after %.1fs)" % elected)
    finally:
        for w in writers:
            w.stop_flag.set()
        for w in writers:
            w.join(20)
    assert KazooState.SUSPENDED in writers[0].states, "writer 0 was not on the killed leader"
    for w, sid in zip(writers, sessions):
        assert not w.is_alive()
        assert KazooState.LOST not in w.states, "%s lost its session: %s" % (w.tag, w.states)
        assert session_id(w.c) == sid, "%s: new session" % w.tag
    check = kz(new_leader.hosts)
    children = set(check.get_children(path))
    for w in writers:
        missing = [p for p in w.acked if p.rsplit("/", 1)[1] not in children]
        assert not missing, "%s: acknowledged but missing: %s" % (w.tag, missing[:5])
        st = check.exists("%s/eph-%s" % (path, w.tag))
        assert st is not None and st.ephemeralOwner == session_id(w.c)
    assert check.get(writers[0].acked[-1])[0] == writers[0].acked[-1].encode()
    # the old leader rejoins as a follower and catches up
    old_leader.spawn()
    ensemble.wait_serving(members=ensemble.members, timeout=ELECTION_TIMEOUT)
    back = kz(old_leader.hosts)
    back.sync(path)
    assert children <= set(back.get_children(path))


@pytest.mark.parametrize("where", ["follower", "leader"])
def test_xids_may_restart_on_a_new_connection(ensemble, path, server_kind, request, where):
    """xids are per connection: a client that reconnects to its session may
    number its requests from 1 again (kazoo does) and must get answers."""
    leader, _ = ensemble.wait_serving()
    m = leader if where == "leader" else [x for x in ensemble.participants if x is not leader][0]
    a = rawzk.RawZK(*m.address)
    a.connect(timeout_ms=10000)
    assert a.call(rawzk.OP["create"], rawzk.create_body(path), xid=5).ok
    a.sock.close()  # the connection goes, the session stays
    b = rawzk.RawZK(*m.address)
    assert b.connect(session_id=a.session_id, passwd=a.passwd, timeout_ms=10000)["sessionId"] == a.session_id
    try:
        r = b.call(rawzk.OP["create"], rawzk.create_body(path + "/x"), xid=3, timeout=3)
        assert r.ok, r
        assert b.call(rawzk.OP["closeSession"], xid=4, timeout=5).ok
    finally:
        b.sock.close()


def test_session_moves_to_another_member(ensemble, kz, path, server_kind, request):
    leader, _ = ensemble.wait_serving()
    f1, f2 = [m for m in ensemble.participants if m is not leader]
    c = kz(ensemble.hosts([f1, f2, leader]), randomize_hosts=False)
    assert c.hosts[0][1] == f1.port
    states = []
    c.add_listener(states.append)
    c.create(path, b"")
    c.create(path + "/eph", b"", ephemeral=True)
    for i in range(5):
        c.set(path, b"%d" % i)
    sid = session_id(c)
    f1.kill9()
    wait_until(lambda: c.connected and KazooState.SUSPENDED in states, 30,
               what="reconnected elsewhere")
    assert session_id(c) == sid and KazooState.LOST not in states
    assert c.exists(path + "/eph").ephemeralOwner == sid
    # writes through the new connection (kazoo numbers its requests from 1 again)
    c.create_async(path + "/after", b"").get(timeout=10)
    c.set_async(path, b"after").get(timeout=10)
    assert synced_get(kz(leader.hosts), path)[0] == b"after"


# ---------------------------------------------------------------------------
# c. every member killed at once


def test_all_members_killed_at_once(ensemble, kz, path):
    c = kz(ensemble.hosts(ensemble.members))
    c.create(path, b"")
    c.create(path + "/set", b"0")
    acked, acked_sets = [], []
    stop = threading.Event()

    def pump():
        # keep 16 requests in flight, so that some are mid-commit at the kill
        i, inflight = 0, []
        while not stop.is_set():
            while len(inflight) < 16:
                p = "%s/n%06d" % (path, i)
                inflight.append((p, c.create_async(p, p.encode())))
                i += 1
            p, f = inflight.pop(0)
            while True:
                try:
                    f.get(timeout=0.2)
                    acked.append(p)
                    break
                except KazooTimeoutError:
                    # requests queued while disconnected wait for a reconnect
                    if stop.is_set():
                        return
                except Exception:
                    if stop.is_set() or not c.connected:
                        return
                    break

    th = threading.Thread(target=pump, daemon=True)
    th.start()
    for i in range(1, 21):
        c.set(path + "/set", b"%d" % i)
        acked_sets.append(i)
    wait_until(lambda: len(acked) >= 300, 30, what="writes before the kill")
    ensemble.kill_all()
    stop.set()
    th.join(20)
    assert not th.is_alive()
    n_acked = len(acked)
    for m in ensemble.members:
        m.spawn()
    ensemble.wait_serving(members=ensemble.members, timeout=ELECTION_TIMEOUT)
    for m in (ensemble.members[0], ensemble.observers[0]):
        r = kz(m.hosts)
        r.sync(path)
        children = set(r.get_children(path))
        missing = [p for p in acked[:n_acked] if p.rsplit("/", 1)[1] not in children]
        assert not missing, "%r: %d of %d acknowledged writes missing, e.g. %s" % (
            m, len(missing), n_acked, missing[:5])
        assert r.get(acked[n_acked - 1])[0] == acked[n_acked - 1].encode()
        assert r.get(path + "/set")[0] == b"20"
    # and it takes writes again
    kz(ensemble.hosts()).create(path + "/after", b"")


# ---------------------------------------------------------------------------
# d. read-only mode


@pytest.mark.parametrize("local_sessions", [True, False], ids=["local-sessions", "global-sessions"])
def test_read_only_mode(ensemble_factory, kz, path, server_kind, local_sessions):
    if server_kind == "zookeeper" and not local_sessions:
        # Since 3.5 ZooKeeper's read-only server creates local sessions only: without
        # localSessionsEnabled it answers a read-only client's connect with a bare
        # NOTREADONLY reply header that kazoo cannot parse (apache/zookeeper#1922).
        pytest.skip("ZooKeeper's read-only mode needs localSessionsEnabled=true")
    e = ensemble_factory(cfg={"localSessionsEnabled": str(local_sessions).lower()},
                         sysprops={"readonlymode.enabled": "true"})
    leader, _ = e.wait_serving()
    setup = kz(e.hosts())
    setup.create(path, b"before")
    setup.create(path + "/kid", b"")
    for m in e.members:
        assert m.isro() == "rw", m
    survivor = [m for m in e.participants if m is not leader][0]
    # make sure the survivor has the data before its peers go
    assert synced_get(kz(survivor.hosts), path)[0] == b"before"
    others = [m for m in e.members if m is not survivor]
    for m in others:
        m.stop()
    wait_until(lambda: survivor.isro() == "ro", ELECTION_TIMEOUT,
               what="isro=ro on %r (last %r)" % (survivor, survivor.isro()))
    # the four-letter words say so, as ZooKeeper's ReadOnlyZooKeeperServer does
    srvr = survivor.srvr()
    assert "Mode: read-only" in srvr, srvr

    # a client that does not allow read-only servers is not let in
    plain = kz(survivor.hosts, start=False)
    with pytest.raises(KazooTimeoutError):
        plain.start(timeout=2)
    plain.stop()

    ro = kz(e.hosts(), read_only=True)  # all three; only the survivor answers
    assert ro.client_state == KeeperState.CONNECTED_RO
    assert ro.state == KazooState.CONNECTED
    assert ro.get(path)[0] == b"before"
    assert ro.get_children(path) == ["kid"]
    assert ro.exists(path + "/none") is None
    with pytest.raises(NotReadOnlyCallError):
        ro.create(path + "/new", b"")
    with pytest.raises(NotReadOnlyCallError):
        ro.set(path, b"after")
    with pytest.raises(NotReadOnlyCallError):
        ro.delete(path + "/kid")
    with pytest.raises(NotReadOnlyCallError):
        ro.sync(path)
    assert ro.get(path)[0] == b"before"  # the connection is still usable

    for m in others:
        m.spawn()
    e.wait_serving(members=e.members, timeout=ELECTION_TIMEOUT)
    wait_until(lambda: survivor.isro() == "rw", ELECTION_TIMEOUT, what="isro=rw on %r" % survivor)
    # the read-only client ends up read-write and can write
    wait_until(lambda: ro.client_state == KeeperState.CONNECTED, ELECTION_TIMEOUT,
               what="read-only client read-write again (state %s)" % ro.client_state)
    ro.create(path + "/new", b"")
    ro.set(path, b"after")
    # (setup's session may be gone: a local session dies with its server)
    assert synced_get(kz(e.hosts()), path)[0] == b"after"


# ---------------------------------------------------------------------------
# e. local sessions


@pytest.mark.parametrize("upgrading", [False, True], ids=["no-upgrade", "upgrade"])
def test_local_sessions(ensemble_factory, kz, path, upgrading):
    e = ensemble_factory(cfg={"localSessionsEnabled": "true",
                              "localSessionsUpgradingEnabled": str(upgrading).lower()})
    leader, _ = e.wait_serving()
    follower, follower2 = [m for m in e.participants if m is not leader]
    # on the follower first; the other follower is where the session goes when
    # its server dies
    c = kz(e.hosts([follower, follower2]), randomize_hosts=False)
    assert c.hosts[0][1] == follower.port
    states = []
    c.add_listener(states.append)
    other = kz(leader.hosts)
    c.create(path, b"persistent")
    assert synced_get(other, path)[0] == b"persistent"
    assert c.get(path)[0] == b"persistent"
    sid = session_id(c)
    if not upgrading:
        with pytest.raises(EphemeralOnLocalSessionError):
            c.create(path + "/eph", b"", ephemeral=True)
        assert c.exists(path + "/eph") is None
        c.create(path + "/after", b"")  # the session is still usable
        assert synced_exists(other, path + "/eph") is None
    else:
        c.create(path + "/eph", b"", ephemeral=True)
        assert session_id(c) == sid  # upgraded in place
        assert c.exists(path + "/eph").ephemeralOwner == sid
        assert synced_exists(other, path + "/eph").ephemeralOwner == sid
        # closing an upgraded session is a global close: its ephemeral goes
        c2 = kz(follower.hosts)
        c2.create(path + "/eph2", b"", ephemeral=True)
        assert synced_exists(other, path + "/eph2").ephemeralOwner == session_id(c2)
        c2.stop()
        wait_until(lambda: synced_exists(other, path + "/eph2") is None, 10, what="eph2 gone")
    # A local session lives and dies with its server; a global one moves.
    follower.kill9()
    if not upgrading:
        wait_until(lambda: KazooState.LOST in states, 30, what="local session expired on moving")
        wait_until(lambda: c.connected, 30, what="reconnected with a new session")
        assert session_id(c) != sid
    else:
        wait_until(lambda: c.connected and KazooState.SUSPENDED in states, 30,
                   what="reconnected to %r" % follower2)
        assert KazooState.LOST not in states
        assert session_id(c) == sid
        assert c.exists(path + "/eph").ephemeralOwner == sid


# ---------------------------------------------------------------------------
# pipelined requests of one session


@pytest.mark.parametrize("where", ["follower", "leader"])
def test_one_session_pipelines_writes_and_reads_in_order(ensemble, path, where):
    """Thirty requests sent back to back on one connection, before any reply:
    writes that depend on the one before them (a child of a node just created,
    a version just bumped), reads between them, a conditional write that must
    fail, a malformed write. Every reply comes in request order with the code
    ZooKeeper gives, and each read sees exactly the writes sent before it."""
    leader, _ = ensemble.wait_serving()
    m = leader if where == "leader" else [x for x in ensemble.participants if x is not leader][0]
    c = rawzk.RawZK(*m.address)
    c.connect(timeout_ms=10000)
    W = rawzk.W
    OP = rawzk.OP
    plan = [  # (op, body, expected error name, expected data of a read)
        (OP["create"], rawzk.create_body(path, b"v0"), "OK", None),
        (OP["create"], rawzk.create_body(path + "/c", b"child"), "OK", None),
    ]
    for i in range(1, 9):
        plan.append((OP["setData"], W().ustring(path).buffer(b"v%d" % i).int(i - 1).bytes(), "OK", None))
        plan.append((OP["getData"], rawzk.path_watch(path, False), "OK", b"v%d" % i))
    plan += [
        # version 0 is long gone: refused, in its turn
        (OP["setData"], W().ustring(path).buffer(b"stale").int(0).bytes(), "BADVERSION", None),
        (OP["create"], b"\x00\x00\x00\x07", "MARSHALLINGERROR", None),
        (OP["getData"], rawzk.path_watch(path, False), "OK", b"v8"),
        (OP["delete"], rawzk.path_version(path + "/c", -1), "OK", None),
        (OP["exists"], rawzk.path_watch(path + "/c", False), "NONODE", None),
        (OP["setData"], W().ustring(path).buffer(b"last").int(-1).bytes(), "OK", None),
        (OP["getData"], rawzk.path_watch(path, False), "OK", b"last"),
    ]
    try:
        xids = [c.submit(op, body) for op, body, _, _ in plan]
        got = []
        for xid, (op, _, want, data) in zip(xids, plan):
            r = c.read_reply(xid, op, timeout=20)
            got.append(r.err_name)
            if data is not None and r.ok:
                assert r["data"] == data, "xid %d read %r" % (xid, r["data"])
        assert got == [want for _, _, want, _ in plan]
    finally:
        c.sock.close()
