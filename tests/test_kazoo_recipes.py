"""kazoo recipes on top of the server: Lock, Election, Queue, LockingQueue,
Counter, ChildrenWatch, DataWatch, TreeCache, Barrier, Party."""
import queue
import threading

from kazoo.recipe.cache import TreeCache, TreeEvent
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from harness.wait import wait_until, wait_event

TIMEOUT = 15


def test_lock_mutual_exclusion(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    la, lb = a.Lock(path, "a"), b.Lock(path, "b")
    assert la.acquire(timeout=TIMEOUT)
    assert not lb.acquire(blocking=False)
    got = threading.Event()
    t = threading.Thread(target=lambda: lb.acquire(timeout=TIMEOUT) and got.set())
    t.start()
    wait_until(lambda: len(la.contenders()) == 2, TIMEOUT, what="second contender")
    assert la.contenders() == ["a", "b"]
    assert not got.is_set()
    la.release()
    wait_event(got, TIMEOUT, "lock handed over")
    t.join(TIMEOUT)
    lb.release()


def test_lock_released_when_holder_session_closes(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    la = a.Lock(path, "a")
    assert la.acquire(timeout=TIMEOUT)
    lb = b.Lock(path, "b")
    got = threading.Event()
    t = threading.Thread(target=lambda: lb.acquire(timeout=TIMEOUT) and got.set())
    t.start()
    wait_until(lambda: len(lb.contenders()) == 2, TIMEOUT, what="contender")
    a.stop()  # closes the session: its lock node (ephemeral) goes away
    wait_event(got, TIMEOUT, "lock after holder's session closed")
    t.join(TIMEOUT)
    lb.release()


def test_semaphore(zk_factory, path):
    clients = [zk_factory() for _ in range(3)]
    sems = [c.Semaphore(path, "c%d" % i, max_leases=2) for i, c in enumerate(clients)]
    assert sems[0].acquire(timeout=TIMEOUT)
    assert sems[1].acquire(timeout=TIMEOUT)
    assert not sems[2].acquire(blocking=False)
    sems[0].release()
    assert sems[2].acquire(timeout=TIMEOUT)
    sems[1].release()
    sems[2].release()


def test_election(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    ea, eb = a.Election(path, "a"), b.Election(path, "b")
    leader_a = threading.Event()
    stop_a = threading.Event()
    leader_b = threading.Event()

    def run_a():
        leader_a.set()
        stop_a.wait(TIMEOUT)

    ta = threading.Thread(target=ea.run, args=(run_a,))
    ta.start()
    wait_event(leader_a, TIMEOUT, "a elected")
    tb = threading.Thread(target=eb.run, args=(leader_b.set,))
    tb.start()
    wait_until(lambda: len(ea.contenders()) == 2, TIMEOUT, what="b contending")
    assert ea.contenders() == ["a", "b"]
    assert not leader_b.is_set()
    stop_a.set()
    ta.join(TIMEOUT)
    wait_event(leader_b, TIMEOUT, "b elected after a stepped down")
    tb.join(TIMEOUT)


def test_queue_fifo_and_priority(zk, path):
    q = zk.Queue(path)
    q.put(b"one")
    q.put(b"two")
    q.put(b"urgent", priority=1)
    assert len(q) == 3
    assert q.get() == b"urgent"
    assert q.get() == b"one"
    assert q.get() == b"two"
    assert q.get() is None


def test_locking_queue(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    qa, qb = a.LockingQueue(path), b.LockingQueue(path)
    qa.put(b"job1")
    qa.put(b"job2")
    assert qb.get(timeout=TIMEOUT) == b"job1"
    assert qb.holds_lock()
    assert qb.consume()
    got = []
    t = threading.Thread(target=lambda: got.append(qa.get(timeout=TIMEOUT)))
    t.start()
    t.join(TIMEOUT)
    assert got == [b"job2"]
    assert qa.consume()
    assert len(qa) == 0


def test_counter(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    ca, cb = a.Counter(path), b.Counter(path)
    ca += 5
    cb += 3
    ca -= 1
    assert ca.value == 7 and cb.value == 7
    fc = a.Counter(path + "-float", default=0.5)
    fc += 1.25
    assert fc.value == 1.75


def test_counter_concurrent_increments(zk_factory, path):
    clients = [zk_factory() for _ in range(4)]

    def bump(c):
        counter = c.Counter(path)
        for _ in range(10):
            counter += 1

    threads = [threading.Thread(target=bump, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert clients[0].Counter(path).value == 40


def test_children_watch(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    a.create(path)
    seen = queue.Queue()
    ChildrenWatch(b, path, func=lambda children: seen.put(sorted(children)))
    assert seen.get(timeout=TIMEOUT) == []
    a.create(path + "/x")
    assert seen.get(timeout=TIMEOUT) == ["x"]
    a.create(path + "/y")
    assert seen.get(timeout=TIMEOUT) == ["x", "y"]
    a.delete(path + "/x")
    assert seen.get(timeout=TIMEOUT) == ["y"]


def test_data_watch(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    seen = queue.Queue()
    DataWatch(b, path, func=lambda data, stat: seen.put((data, stat.version if stat else None)))
    assert seen.get(timeout=TIMEOUT) == (None, None)
    a.create(path, b"v0")
    assert seen.get(timeout=TIMEOUT) == (b"v0", 0)
    a.set(path, b"v1")
    assert seen.get(timeout=TIMEOUT) == (b"v1", 1)
    a.delete(path)
    assert seen.get(timeout=TIMEOUT) == (None, None)


def test_tree_cache(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    a.create(path + "/x/y", b"deep", makepath=True)
    cache = TreeCache(b, path)
    events = queue.Queue()
    initialized = threading.Event()

    def listener(event):
        events.put(event)
        if event.event_type == TreeEvent.INITIALIZED:
            initialized.set()

    cache.listen(listener)
    cache.start()
    try:
        wait_event(initialized, TIMEOUT, "TreeCache initialised")
        assert cache.get_data(path + "/x/y").data == b"deep"
        assert sorted(cache.get_children(path)) == ["x"]
        a.create(path + "/x/z", b"new")
        wait_until(lambda: cache.get_data(path + "/x/z") is not None, TIMEOUT,
                   what="cache sees new node")
        assert cache.get_data(path + "/x/z").data == b"new"
        a.set(path + "/x/y", b"changed")
        wait_until(lambda: cache.get_data(path + "/x/y").data == b"changed", TIMEOUT,
                   what="cache sees data change")
        a.delete(path + "/x/z")
        wait_until(lambda: cache.get_data(path + "/x/z") is None, TIMEOUT,
                   what="cache sees deletion")
    finally:
        cache.close()


def test_barrier(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    bar_a, bar_b = a.Barrier(path), b.Barrier(path)
    bar_a.create()
    passed = threading.Event()
    t = threading.Thread(target=lambda: bar_b.wait(TIMEOUT) and passed.set())
    t.start()
    assert not passed.is_set()
    bar_a.remove()
    wait_event(passed, TIMEOUT, "barrier released")
    t.join(TIMEOUT)


def test_party(zk_factory, path):
    a, b = zk_factory(), zk_factory()
    pa, pb = a.Party(path, "a"), b.Party(path, "b")
    pa.join()
    pb.join()
    assert sorted(pa) == ["a", "b"]
    pb.leave()
    assert list(pa) == ["a"]
    b.stop()
    assert len(pa) == 1
