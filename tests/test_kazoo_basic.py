"""CRUD through kazoo: create modes, versions, errors, exists, children, sync."""
import pytest
from kazoo.exceptions import (BadArgumentsError, BadVersionError, NoChildrenForEphemeralsError,
                              NoNodeError, NodeExistsError, NotEmptyError)

from harness import kazoo_ext


def test_connect_and_close(zk_factory):
    zk = zk_factory()
    assert zk.connected
    sid, pw = zk.client_id
    assert sid != 0 and len(pw) == 16
    assert zk.exists("/") is not None
    assert zk.exists("/zookeeper") is not None
    zk.stop()
    zk.close()
    assert not zk.connected


def test_two_clients_get_distinct_sessions(zk_factory):
    a, b = zk_factory(), zk_factory()
    assert a.client_id[0] != b.client_id[0]


def test_create_persistent(zk, path):
    assert zk.create(path, b"v") == path
    data, stat = zk.get(path)
    assert data == b"v"
    assert stat.version == 0 and stat.cversion == 0 and stat.aversion == 0
    assert stat.ephemeralOwner == 0
    assert stat.dataLength == 1 and stat.numChildren == 0
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.ctime == stat.mtime


def test_create_include_data_returns_stat(zk, path):
    p, stat = zk.create(path, b"abc", include_data=True)
    assert p == path
    assert stat.dataLength == 3
    assert stat == zk.exists(path)


def test_create_ephemeral(zk, path):
    zk.create(path, b"", ephemeral=True)
    stat = zk.exists(path)
    assert stat.ephemeralOwner == zk.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(path + "/child")


def test_create_sequential(zk, path):
    zk.create(path)
    a = zk.create(path + "/s-", sequence=True)
    b = zk.create(path + "/s-", sequence=True)
    assert a == path + "/s-0000000000"
    assert b == path + "/s-0000000001"
    # The suffix counts child *creations* under the parent (ZooKeeper's
    # internal cversion); the cversion clients see is creations + deletions
    # (DataNode.copyStat: 2 * internal - numChildren).
    zk.create(path + "/plain")
    zk.delete(path + "/plain")
    assert zk.exists(path).cversion == 4
    c = zk.create(path + "/s-", sequence=True)
    assert c == path + "/s-0000000003"
    assert zk.exists(path).cversion == 5


def test_create_ephemeral_sequential(zk, path):
    zk.create(path)
    p = zk.create(path + "/e-", ephemeral=True, sequence=True)
    assert p == path + "/e-0000000000"
    assert zk.exists(p).ephemeralOwner == zk.client_id[0]


def test_create_container(zk, path):
    p, stat = kazoo_ext.create_container(zk, path)
    assert p == path
    # ZooKeeper hides the container marker: clients see ephemeralOwner 0
    assert stat.ephemeralOwner == 0
    zk.create(path + "/child")
    assert zk.get_children(path) == ["child"]


def test_create_ttl(zk, path):
    # kazoo has no TTL support: opcode 21 is sent through kazoo_ext
    p, stat = kazoo_ext.create_ttl(zk, path, b"x", ttl=60000)
    assert p == path
    assert stat.ephemeralOwner == 0  # TTL encoding is not shown to clients
    assert zk.get(path)[0] == b"x"
    p2, _ = kazoo_ext.create_ttl(zk, path + "-seq-", ttl=60000, sequence=True)
    assert p2.startswith(path + "-seq-")
    with pytest.raises(BadArgumentsError):
        kazoo_ext.create_ttl(zk, path + "-zero", ttl=0)


def test_create_errors(zk, path):
    zk.create(path)
    with pytest.raises(NodeExistsError):
        zk.create(path)
    with pytest.raises(NoNodeError):
        zk.create(path + "/missing/child")
    assert zk.create(path + "/a/b/c", makepath=True) == path + "/a/b/c"


def test_get_set_versions(zk, path):
    zk.create(path, b"0")
    stat = zk.set(path, b"1", version=0)
    assert stat.version == 1
    with pytest.raises(BadVersionError):
        zk.set(path, b"2", version=0)
    stat = zk.set(path, b"22")
    assert stat.version == 2 and stat.dataLength == 2
    data, stat2 = zk.get(path)
    assert data == b"22" and stat2 == stat
    assert stat.mzxid > stat.czxid
    with pytest.raises(NoNodeError):
        zk.set(path + "/nope", b"")
    with pytest.raises(NoNodeError):
        zk.get(path + "/nope")


def test_empty_and_large_values(zk, path):
    zk.create(path, b"")
    assert zk.get(path)[0] == b""
    big = bytes(range(256)) * 2048  # 512 KiB, below jute.maxbuffer
    zk.set(path, big)
    data, stat = zk.get(path)
    assert data == big and stat.dataLength == len(big)


def test_delete_with_version(zk, path):
    zk.create(path, b"")
    zk.set(path, b"x")
    with pytest.raises(BadVersionError):
        zk.delete(path, version=0)
    zk.delete(path, version=1)
    assert zk.exists(path) is None
    with pytest.raises(NoNodeError):
        zk.delete(path)


def test_delete_not_empty_and_recursive(zk, path):
    zk.create(path + "/a/b", makepath=True)
    with pytest.raises(NotEmptyError):
        zk.delete(path)
    zk.delete(path, recursive=True)
    assert zk.exists(path) is None


def test_exists(zk, path):
    assert zk.exists(path) is None
    zk.create(path, b"abc")
    st = zk.exists(path)
    assert st.dataLength == 3


def test_get_children_and_include_data(zk, path):
    zk.create(path)
    for n in ("a", "b", "c"):
        zk.create(path + "/" + n)
    assert sorted(zk.get_children(path)) == ["a", "b", "c"]
    children, stat = zk.get_children(path, include_data=True)  # getChildren2
    assert sorted(children) == ["a", "b", "c"]
    assert stat.numChildren == 3 and stat.cversion == 3
    assert stat.pzxid == zk.exists(path + "/c").czxid
    zk.delete(path + "/b")
    _, stat2 = zk.get_children(path, include_data=True)
    assert stat2.numChildren == 2 and stat2.cversion == 4 and stat2.pzxid > stat.pzxid
    with pytest.raises(NoNodeError):
        zk.get_children(path + "/nope")


def test_root_and_zookeeper_nodes(zk):
    assert "zookeeper" in zk.get_children("/")
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    _, stat = zk.get("/zookeeper")
    assert stat.czxid == 0 and stat.ctime == 0


def test_sync(zk, path):
    assert zk.sync("/") == "/"
    zk.create(path)
    assert zk.sync(path) == path
    # sync does not check existence
    assert zk.sync(path + "/nope") == path + "/nope"


def test_ensure_path(zk, path):
    zk.ensure_path(path + "/x/y")
    assert zk.exists(path + "/x/y")
    zk.ensure_path(path + "/x/y")  # idempotent


def test_server_version_via_envi(zk):
    # kazoo.server_version() issues the `envi` four-letter word
    v = zk.server_version()
    assert len(v) >= 2 and all(isinstance(x, int) for x in v)
