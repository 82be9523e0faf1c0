"""Containers emptied of their children and TTL nodes past their TTL are reaped by
the server (ZooKeeper's ContainerManager), firing watches like any delete. The
reaper interval is shortened with -Dznode.container.checkIntervalMs, which both
ZooKeeper and Keel read."""
import threading

import pytest

from harness import kazoo_ext
from harness.wait import wait_until

FAST_REAPER = {"znode.container.checkIntervalMs": 200}


@pytest.mark.server_sysprops(**FAST_REAPER)
def test_container_reaped_after_last_child_goes(fresh_server, zk_factory):
    zk = zk_factory(target=fresh_server)
    kazoo_ext.create_container(zk, "/box")
    zk.create("/box/item", b"")
    gone = threading.Event()

    def watch(event):
        if event.type == "DELETED":
            gone.set()

    zk.exists("/box", watch=watch)
    zk.delete("/box/item")
    assert gone.wait(15), "container not reaped"
    assert zk.exists("/box") is None


@pytest.mark.server_sysprops(**FAST_REAPER)
def test_container_never_used_is_kept(fresh_server, zk_factory):
    zk = zk_factory(target=fresh_server)
    kazoo_ext.create_container(zk, "/empty-box")
    # Wait until a later reaped container proves the reaper ran at least once.
    kazoo_ext.create_container(zk, "/probe")
    zk.create("/probe/x", b"")
    zk.delete("/probe/x")
    wait_until(lambda: zk.exists("/probe") is None, 15, what="the reaper to run")
    assert zk.exists("/empty-box") is not None


@pytest.mark.server_sysprops(**FAST_REAPER)
def test_ttl_node_reaped_after_ttl_unless_it_has_children(fresh_server, zk_factory):
    zk = zk_factory(target=fresh_server)
    kazoo_ext.create_ttl(zk, "/ttl-leaf", b"x", ttl=300)
    kazoo_ext.create_ttl(zk, "/ttl-parent", b"", ttl=300)
    zk.create("/ttl-parent/child", b"")
    wait_until(lambda: zk.exists("/ttl-leaf") is None, 15, what="the TTL node to be reaped")
    assert zk.exists("/ttl-parent") is not None, "a TTL node with children is kept"
    zk.delete("/ttl-parent/child")
    wait_until(lambda: zk.exists("/ttl-parent") is None, 15, what="the emptied TTL node to be reaped")
