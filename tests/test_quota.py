"""Quota statistics: what zkCli's `setquota` writes under /zookeeper/quota, and
the `zookeeper_stats` node the server keeps up to date below a quota'd path.

ZooKeeper 3.8 (DataTree.updateQuotaStat / updateQuotaForPath):
- creating `/zookeeper/quota<p>/zookeeper_limits` puts a quota on <p>;
- creating `/zookeeper/quota<p>/zookeeper_stats` (zkCli writes
  "count=0,bytes=0") makes the server count <p>'s subtree afresh into it:
  count = nodes including <p>, bytes = their data bytes;
- every create, delete and setData below <p> then updates that text in place:
  the stats node's own stat (version, mzxid, mtime) does not change and no
  watch fires;
- deleting the limits node ends the accounting (the stats text stays).
Enforcement (hard limits) is not tested here.
"""
from kazoo.exceptions import NoNodeError

QUOTA = "/zookeeper/quota"


def set_quota(zk, p, limits=b"count=3,bytes=-1"):
    """What zkCli's `setquota -n 3 <p>` does, step by step."""
    q = QUOTA + p
    zk.ensure_path(q)
    zk.create(q + "/zookeeper_limits", limits)
    zk.create(q + "/zookeeper_stats", b"count=0,bytes=0")


def stats(zk, p):
    return zk.get(QUOTA + p + "/zookeeper_stats")[0].decode()


def test_quota_statistics_follow_the_subtree(zk, path):
    zk.create(path, b"")
    zk.create(path + "/pre", b"12")
    set_quota(zk, path)
    # Counted afresh when the stats node is created: the node and its child.
    assert stats(zk, path) == "count=2,bytes=2"
    _, st0 = zk.get(QUOTA + path + "/zookeeper_stats")
    for c in "abc":
        zk.create(path + "/" + c, b"x")
    assert stats(zk, path) == "count=5,bytes=5"
    zk.set(path + "/a", b"xyz")
    zk.create(path + "/a/deep", b"1234")
    assert stats(zk, path) == "count=6,bytes=11"
    zk.delete(path + "/pre")
    assert stats(zk, path) == "count=5,bytes=9"
    # In place: the stats node's stat did not move.
    _, st1 = zk.get(QUOTA + path + "/zookeeper_stats")
    assert (st1.version, st1.mzxid, st1.mtime) == (st0.version, st0.mzxid, st0.mtime)
    # A multi counts each of its operations; a failed one counts none.
    t = zk.transaction()
    t.create(path + "/m1", b"ab")
    t.create(path + "/m2", b"c")
    assert all(not isinstance(r, Exception) for r in t.commit())
    assert stats(zk, path) == "count=7,bytes=12"
    t = zk.transaction()
    t.create(path + "/m3", b"abcdef")
    t.delete(path + "/missing")
    assert any(isinstance(r, Exception) for r in t.commit())
    assert stats(zk, path) == "count=7,bytes=12"
    # Nodes outside the quota'd path are not counted.
    zk.create(path + "-outside", b"zzz")
    assert stats(zk, path) == "count=7,bytes=12"
    # Without the limits node, no more accounting.
    zk.delete(QUOTA + path + "/zookeeper_limits")
    zk.create(path + "/after", b"x")
    assert stats(zk, path) == "count=7,bytes=12"


def test_quota_statistics_survive_a_restart(fresh_server, zk_factory, path):
    zk = zk_factory(fresh_server)
    zk.create(path, b"v")
    set_quota(zk, path)
    zk.create(path + "/a", b"xy")
    assert stats(zk, path) == "count=2,bytes=3"
    zk.stop()
    fresh_server.restart()
    zk = zk_factory(fresh_server)
    assert stats(zk, path) == "count=2,bytes=3"
    zk.create(path + "/b", b"z")
    assert stats(zk, path) == "count=3,bytes=4"
    try:
        zk.delete(path + "/nothing-here")
    except NoNodeError:
        pass
    assert stats(zk, path) == "count=3,bytes=4"
