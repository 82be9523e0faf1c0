"""Transactions (multi) through kazoo."""
import pytest
from kazoo.exceptions import (BadVersionError, NodeExistsError, NoNodeError,
                              RolledBackError, RuntimeInconsistency)


def test_transaction_success(zk, path):
    zk.create(path, b"0")
    t = zk.transaction()
    t.create(path + "/a", b"a")
    t.create(path + "/s-", b"", sequence=True)
    t.set_data(path, b"1", version=0)
    t.check(path + "/a", 0)
    t.delete(path + "/a")
    results = t.commit()
    assert results[0] == path + "/a"
    assert results[1] == path + "/s-0000000001"  # cversion was 1 after /a
    assert results[2].version == 1
    assert results[3] is True and results[4] is True
    assert zk.exists(path + "/a") is None
    assert zk.get(path)[0] == b"1"


def test_transaction_failure_is_atomic_with_per_op_results(zk, path):
    zk.create(path, b"0")
    zk.create(path + "/exists")
    t = zk.transaction()
    t.create(path + "/new1")
    t.set_data(path, b"x", version=0)
    t.create(path + "/exists")          # fails: NodeExists
    t.delete(path + "/missing")          # would fail too
    t.create(path + "/new2")
    results = t.commit()
    # ops before the failing one report OK (kazoo: RolledBackError),
    # the failing op its own error, ops after it RuntimeInconsistency
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], RolledBackError)
    assert isinstance(results[2], NodeExistsError)
    assert isinstance(results[3], RuntimeInconsistency)
    assert isinstance(results[4], RuntimeInconsistency)
    assert zk.exists(path + "/new1") is None
    assert zk.get(path) == (b"0", zk.exists(path))
    assert zk.exists(path).version == 0


def test_transaction_check_failure(zk, path):
    zk.create(path)
    t = zk.transaction()
    t.check(path, 5)
    t.create(path + "/x")
    results = t.commit()
    assert isinstance(results[0], BadVersionError)
    assert isinstance(results[1], RuntimeInconsistency)
    assert zk.exists(path + "/x") is None


def test_transaction_failure_on_first_op(zk, path):
    t = zk.transaction()
    t.delete(path + "/nope")
    t.create(path)
    results = t.commit()
    assert isinstance(results[0], NoNodeError)
    assert isinstance(results[1], RuntimeInconsistency)


def test_transaction_ops_see_earlier_ops(zk, path):
    t = zk.transaction()
    t.create(path, b"")
    t.create(path + "/child", b"")
    t.set_data(path + "/child", b"v", version=0)
    t.delete(path + "/child", version=1)
    results = t.commit()
    assert results[0] == path and results[1] == path + "/child"
    assert zk.get_children(path) == []
    assert zk.exists(path).cversion == 2


def test_transaction_context_manager(zk, path):
    with zk.transaction() as t:
        t.create(path, b"cm")
    assert zk.get(path)[0] == b"cm"


def test_transaction_ephemeral(zk, path):
    t = zk.transaction()
    t.create(path, b"", ephemeral=True)
    t.commit()
    assert zk.exists(path).ephemeralOwner == zk.client_id[0]


def test_empty_transaction(zk):
    assert zk.transaction().commit() == []


def test_transaction_create_conflict_inside(zk, path):
    t = zk.transaction()
    t.create(path)
    t.create(path)
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NodeExistsError)
    assert zk.exists(path) is None


@pytest.mark.parametrize("n", [50])
def test_large_transaction(zk, path, n):
    zk.create(path)
    t = zk.transaction()
    for i in range(n):
        t.create("%s/n%03d" % (path, i), b"x" * 100)
    results = t.commit()
    assert len(results) == n
    assert len(zk.get_children(path)) == n
