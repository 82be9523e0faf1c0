"""Durability: every acknowledged write survives kill -9 at any moment, sessions
survive restarts, snapshots plus log replay rebuild the same tree, and a damaged
data dir is refused with the file and offset named (Keel only for the last)."""
import glob
import os
import random
import threading

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NodeExistsError, SessionExpiredError

from harness.wait import wait_until


def client(server, **kw):
    c = KazooClient(hosts=server.hosts, timeout=kw.pop("timeout", 10.0), **kw)
    c.start(timeout=15)
    return c


def all_children(zk, path):
    return set(zk.get_children(path))


def test_acknowledged_writes_survive_kill9(server_factory):
    s = server_factory()
    zk = client(s)
    zk.create("/d", b"")
    # Many in flight at once, so group commit batches them.
    futures = [zk.create_async("/d/n%04d" % i, b"v%d" % i) for i in range(500)]
    acked = {f.get(timeout=30).rsplit("/", 1)[1] for f in futures}
    zk.set("/d", b"last")
    zk.stop()
    zk.close()
    s.restart(kill=True)
    zk = client(s)
    try:
        assert acked <= all_children(zk, "/d")
        assert zk.get("/d")[0] == b"last"
        assert zk.get("/d/n0123")[0] == b"v123"
    finally:
        zk.stop()
        zk.close()


def test_kill9_under_load_loses_nothing_acknowledged(server_factory):
    s = server_factory()
    zk = client(s)
    zk.create("/load", b"")
    acked, stop = [], threading.Event()

    def writer(tag):
        c = client(s, connection_retry=None)
        i = 0
        try:
            while not stop.is_set():
                p = "/load/%s-%06d" % (tag, i)
                try:
                    c.create(p, b"x")
                except (ConnectionLoss, SessionExpiredError):
                    return
                except Exception:
                    return
                acked.append(p)
                i += 1
        finally:
            try:
                c.stop()
                c.close()
            except Exception:
                pass

    threads = [threading.Thread(target=writer, args=("w%d" % t,), daemon=True) for t in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 300 + random.randint(0, 200), timeout=60, what="writes under load")
    s.kill9()  # mid-flight: some requests are in the pipeline, unacknowledged
    stop.set()
    for t in threads:
        t.join(30)
    snapshot_of_acked = list(acked)
    zk.stop()
    zk.close()
    s.restart()
    zk = client(s)
    try:
        present = {"/load/" + c for c in all_children(zk, "/load")}
        missing = [p for p in snapshot_of_acked if p not in present]
        assert not missing, "%d acknowledged creates lost, e.g. %s" % (len(missing), missing[:5])
    finally:
        zk.stop()
        zk.close()


def test_session_and_ephemerals_survive_restart(server_factory):
    s = server_factory()
    zk = client(s, timeout=30.0)
    try:
        zk.create("/eph", b"mine", ephemeral=True)
        sid = zk.client_id[0]
        s.restart(kill=True)
        # kazoo reconnects on its own with the same session id and password.
        wait_until(lambda: zk.connected and zk.exists("/eph") is not None, timeout=30, what="reconnect")
        assert zk.client_id[0] == sid
        assert zk.exists("/eph").ephemeralOwner == sid
    finally:
        zk.stop()
        zk.close()


@pytest.mark.server_cfg(snapCount=50)
def test_snapshots_plus_log_rebuild_the_tree(server_kind, server_factory):
    s = server_factory(cfg={"snapCount": 50})
    zk = client(s)
    zk.create("/snap", b"")
    for i in range(230):
        zk.create("/snap/c%03d" % i, b"%d" % i)
        if i % 3 == 0:
            zk.set("/snap/c%03d" % i, b"changed")
    zk.delete("/snap/c007")
    before = {c: zk.get("/snap/" + c) for c in zk.get_children("/snap")}
    root_before = zk.exists("/snap")
    zk.stop()
    zk.close()
    if server_kind == "keel":
        wait_until(lambda: glob.glob(os.path.join(s.data_dir, "snap", "snapshot.*")), timeout=20,
                   what="a snapshot file")
    s.restart(kill=True)
    zk = client(s)
    try:
        after = {c: zk.get("/snap/" + c) for c in zk.get_children("/snap")}
        assert before.keys() == after.keys()
        for c in before:
            assert before[c][0] == after[c][0]
            assert before[c][1] == after[c][1], c
        assert zk.exists("/snap") == root_before
    finally:
        zk.stop()
        zk.close()


def test_damaged_log_is_refused_with_file_and_offset(server_kind, server_factory):
    if server_kind != "keel":
        pytest.skip("Keel's own log format")
    s = server_factory()
    zk = client(s)
    for i in range(50):
        zk.create("/dmg%02d" % i, b"x" * 100)
    zk.stop()
    zk.close()
    s.stop()
    segs = sorted(glob.glob(os.path.join(s.data_dir, "wal", "log.*")))
    seg = [p for p in segs if not p.endswith(".tmp")][0]
    with open(seg, "r+b") as f:
        f.seek(1000)  # inside an early frame, with whole frames after it
        b = f.read(1)
        f.seek(1000)
        f.write(bytes([b[0] ^ 0x40]))
    with pytest.raises(Exception) as err:
        s.start(timeout=15)
    text = str(err.value)
    assert os.path.basename(seg) in text, text
    assert "offset" in text, text


def test_old_log_segments_are_purged_after_snapshots(server_kind, server_factory, monkeypatch):
    if server_kind != "keel":
        pytest.skip("Keel's own data layout")
    # 1 MiB segments and a snapshot every 20 transactions: a few MiB of writes roll
    # several segments, and retention (3 snapshots) lets the old ones go.
    monkeypatch.setenv("KEEL_WAL_SEGMENT_BYTES", "1MiB")
    monkeypatch.setenv("KEEL_MAX_BATCH_BYTES", "256KiB")
    s = server_factory(cfg={"snapCount": 20})
    zk = client(s)
    blob = b"x" * 100_000
    for i in range(60):
        zk.create("/big%02d" % i, blob)
    zk.stop()
    zk.close()
    wal = os.path.join(s.data_dir, "wal")

    def first_segment():
        segs = sorted(p for p in os.listdir(wal) if p.startswith("log.") and not p.endswith(".tmp"))
        return segs[0] if segs else None

    wait_until(lambda: first_segment() not in (None, "log.0000000000000001"), timeout=20,
               what="the first log segment to be purged")
    s.restart(kill=True)
    zk = client(s)
    try:
        assert len([c for c in zk.get_children("/") if c.startswith("big")]) == 60
        assert zk.get("/big59")[0] == blob
    finally:
        zk.stop()
        zk.close()
