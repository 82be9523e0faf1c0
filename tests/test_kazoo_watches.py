"""Watches through kazoo: one-shot data/child/exists watches, persistent and
persistent-recursive watches (addWatch via harness.kazoo_ext)."""
import queue
import threading

from kazoo.protocol.states import EventType

from harness import kazoo_ext

TIMEOUT = 10


class Recorder:
    """A watch callback that queues events; next() waits with a deadline."""

    def __init__(self):
        self.q = queue.Queue()

    def __call__(self, event):
        self.q.put(event)

    def next(self, timeout=TIMEOUT):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no watch event within %ss" % timeout)

    def assert_empty(self, client):
        # a round trip on the client ensures any queued event has been read
        client.sync("/")
        client.exists("/")
        assert self.q.empty(), "unexpected event %r" % (self.q.queue[0],)

    def take(self, n, timeout=TIMEOUT):
        return [self.next(timeout) for _ in range(n)]


def ev(e):
    return (e.type, e.path)


def test_data_watch_fires_once_on_set(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    a.create(path, b"0")
    rec = Recorder()
    b.get(path, watch=rec)
    a.set(path, b"1")
    assert ev(rec.next()) == (EventType.CHANGED, path)
    a.set(path, b"2")  # one-shot: no second event
    rec.assert_empty(b)


def test_data_watch_fires_on_delete(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    a.create(path)
    rec = Recorder()
    b.get(path, watch=rec)
    a.delete(path)
    assert ev(rec.next()) == (EventType.DELETED, path)


def test_exists_watch_on_missing_node_fires_on_create(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    rec = Recorder()
    assert b.exists(path, watch=rec) is None
    a.create(path)
    assert ev(rec.next()) == (EventType.CREATED, path)


def test_exists_watch_on_existing_node(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    a.create(path)
    rec = Recorder()
    assert b.exists(path, watch=rec) is not None
    a.set(path, b"x")
    assert ev(rec.next()) == (EventType.CHANGED, path)


def test_child_watch(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    a.create(path)
    rec = Recorder()
    b.get_children(path, watch=rec)
    a.set(path, b"data change does not fire a child watch")
    a.create(path + "/c")
    assert ev(rec.next()) == (EventType.CHILD, path)
    rec2 = Recorder()
    b.get_children(path, watch=rec2)
    a.delete(path + "/c")
    assert ev(rec2.next()) == (EventType.CHILD, path)
    rec.assert_empty(b)


def test_child_watch_fires_deleted_when_parent_deleted(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    a.create(path)
    rec = Recorder()
    b.get_children(path, watch=rec)
    a.delete(path)
    assert ev(rec.next()) == (EventType.DELETED, path)


def test_get_children_include_data_sets_child_watch(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    a.create(path)
    rec = Recorder()
    b.get_children(path, watch=rec, include_data=True)
    a.create(path + "/x")
    assert ev(rec.next()) == (EventType.CHILD, path)


def test_own_write_triggers_own_watch(zk, path):
    zk.create(path)
    rec = Recorder()
    zk.get(path, watch=rec)
    zk.set(path, b"x")
    assert ev(rec.next()) == (EventType.CHANGED, path)


def test_ephemeral_delete_on_close_fires_watches(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    a.create(path)
    a.create(path + "/e", ephemeral=True)
    data_rec, child_rec = Recorder(), Recorder()
    b.get(path + "/e", watch=data_rec)
    b.get_children(path, watch=child_rec)
    a.stop()
    assert ev(data_rec.next()) == (EventType.DELETED, path + "/e")
    assert ev(child_rec.next()) == (EventType.CHILD, path)


def test_persistent_watch(zk_factory, path):
    """addWatch(PERSISTENT): data + child events on the path itself, stays armed."""
    a, b = zk_factory(), zk_factory()
    pw = kazoo_ext.PersistentWatches(b)
    rec = Recorder()
    pw.add(path, rec, kazoo_ext.ADD_WATCH_PERSISTENT)
    a.create(path)
    a.set(path, b"1")
    a.set(path, b"2")
    a.create(path + "/c")
    a.create(path + "/c/grandchild")  # not reported by a non-recursive watch
    a.delete(path + "/c/grandchild")
    a.delete(path + "/c")
    a.delete(path)
    got = [ev(e) for e in rec.take(6)]
    assert got == [
        (EventType.CREATED, path),
        (EventType.CHANGED, path),
        (EventType.CHANGED, path),
        (EventType.CHILD, path),
        (EventType.CHILD, path),
        (EventType.DELETED, path),
    ]
    rec.assert_empty(b)


def test_persistent_recursive_watch(zk_factory, path):
    """addWatch(PERSISTENT_RECURSIVE): events carry the changed node's path,
    no NodeChildrenChanged events."""
    a, b = zk_factory(), zk_factory()
    pw = kazoo_ext.PersistentWatches(b)
    rec = Recorder()
    pw.add(path, rec, kazoo_ext.ADD_WATCH_PERSISTENT_RECURSIVE)
    a.create(path)
    a.create(path + "/x")
    a.create(path + "/x/y")
    a.set(path + "/x/y", b"1")
    a.delete(path + "/x/y")
    got = [ev(e) for e in rec.take(5)]
    assert got == [
        (EventType.CREATED, path),
        (EventType.CREATED, path + "/x"),
        (EventType.CREATED, path + "/x/y"),
        (EventType.CHANGED, path + "/x/y"),
        (EventType.DELETED, path + "/x/y"),
    ]
    # a sibling with a common name prefix is not under the watched path
    a.create(path + "-sibling")
    rec.assert_empty(b)


def test_remove_persistent_watch(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    pw = kazoo_ext.PersistentWatches(b)
    rec = Recorder()
    pw.add(path, rec, kazoo_ext.ADD_WATCH_PERSISTENT_RECURSIVE)
    a.create(path)
    assert ev(rec.next()) == (EventType.CREATED, path)
    kazoo_ext.remove_watches(b, path, 3)  # WatcherType.Any
    a.set(path, b"x")
    rec.assert_empty(b)


def test_many_watchers_same_node(zk_factory, path):
    a = zk_factory()
    a.create(path)
    clients = [zk_factory() for _ in range(4)]
    recs = []
    for c in clients:
        r = Recorder()
        c.get(path, watch=r)
        recs.append(r)
    a.set(path, b"x")
    for r in recs:
        assert ev(r.next()) == (EventType.CHANGED, path)


def test_watch_callbacks_run_in_order(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    a.create(path)
    order = []
    done = threading.Event()
    for i in range(5):
        a.create("%s/n%d" % (path, i))
    for i in range(5):
        b.get("%s/n%d" % (path, i), watch=lambda e, i=i: order.append(i) or (i == 4 and done.set()))
    for i in range(5):
        a.set("%s/n%d" % (path, i), b"x")
    assert done.wait(TIMEOUT)
    assert order == [0, 1, 2, 3, 4]
