"""ACLs and authentication through kazoo."""
import pytest
from kazoo.exceptions import AuthFailedError, InvalidACLError, NoAuthError, BadVersionError
from kazoo.security import (ACL, Id, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, CREATOR_ALL_ACL,
                            Permissions, make_acl, make_digest_acl, make_digest_acl_credential)

from harness.servers import SUPER_PASSWORD


def test_digest_acl_denies_other_clients(zk_factory, server_kind, path):
    owner = zk_factory(auth_data=[("digest", "alice:secret")])
    other = zk_factory()
    owner.create(path, b"s", acl=[make_digest_acl("alice", "secret", all=True)])
    assert owner.get(path)[0] == b"s"
    with pytest.raises(NoAuthError):
        other.get(path)
    with pytest.raises(NoAuthError):
        other.set(path, b"x")
    with pytest.raises(NoAuthError):
        other.get_children(path)
    with pytest.raises(NoAuthError):
        other.create(path + "/c")
    with pytest.raises(NoAuthError):
        other.get_acls(path)
    with pytest.raises(NoAuthError):
        other.set_acls(path, OPEN_ACL_UNSAFE)
    # exists needs READ on an existing node from ZooKeeper 3.9 on (the installed
    # 3.8.0 oracle did not check); a missing node is still just missing.
    if server_kind == "keel":
        with pytest.raises(NoAuthError):
            other.exists(path)
    else:
        assert other.exists(path) is not None
    assert other.exists(path + "/nothing") is None


def test_add_auth_grants_access(zk_factory, path):
    owner = zk_factory(auth_data=[("digest", "bob:pw")])
    owner.create(path, b"v", acl=[make_digest_acl("bob", "pw", all=True)])
    other = zk_factory()
    with pytest.raises(NoAuthError):
        other.get(path)
    other.add_auth("digest", "bob:pw")
    assert other.get(path)[0] == b"v"


def test_wrong_password_is_not_an_auth_failure(zk_factory, path):
    owner = zk_factory(auth_data=[("digest", "carol:pw")])
    owner.create(path, b"v", acl=[make_digest_acl("carol", "pw", read=True)])
    other = zk_factory()
    other.add_auth("digest", "carol:wrong")  # accepted, matches nothing
    with pytest.raises(NoAuthError):
        other.get(path)


def test_super_user_bypasses_acls(zk_factory, path):
    owner = zk_factory(auth_data=[("digest", "dave:pw")])
    owner.create(path, b"v", acl=[make_digest_acl("dave", "pw", all=True)])
    su = zk_factory(auth_data=[("digest", "super:%s" % SUPER_PASSWORD)])
    assert su.get(path)[0] == b"v"
    su.set(path, b"w")
    su.delete(path)


def test_read_only_world_acl(zk_factory, path):
    owner = zk_factory()
    owner.create(path, b"r", acl=READ_ACL_UNSAFE)
    assert owner.get(path)[0] == b"r"
    with pytest.raises(NoAuthError):
        owner.set(path, b"x")
    with pytest.raises(NoAuthError):
        owner.create(path + "/c")


def test_delete_needs_delete_on_parent(zk_factory, path):
    owner = zk_factory()
    owner.create(path, b"", acl=[make_acl("world", "anyone", read=True, create=True)])
    owner.create(path + "/c")
    with pytest.raises(NoAuthError):
        owner.delete(path + "/c")
    su = zk_factory(auth_data=[("digest", "super:%s" % SUPER_PASSWORD)])
    su.delete(path + "/c")
    # deleting the node itself needs DELETE on its parent ("/", world:anyone
    # ALL), not on the node: its own READ|CREATE ACL does not matter
    owner.delete(path)


def test_auth_scheme_acl(zk_factory, path):
    c = zk_factory(auth_data=[("digest", "erin:pw")])
    c.create(path, b"", acl=CREATOR_ALL_ACL)
    acls, _ = c.get_acls(path)
    assert acls == [ACL(Permissions.ALL, Id("digest", make_digest_acl_credential("erin", "pw")))]
    other = zk_factory()
    with pytest.raises(NoAuthError):
        other.get(path)


def test_auth_scheme_without_auth_is_invalid_acl(zk, path):
    with pytest.raises(InvalidACLError):
        zk.create(path, b"", acl=CREATOR_ALL_ACL)


def test_invalid_acls(zk, path):
    with pytest.raises(InvalidACLError):
        zk.create(path, b"", acl=[ACL(Permissions.ALL, Id("nosuchscheme", "x"))])
    with pytest.raises(InvalidACLError):
        zk.create(path, b"", acl=[ACL(Permissions.ALL, Id("world", "someone"))])
    with pytest.raises(InvalidACLError):
        zk.create(path, b"", acl=[ACL(Permissions.ALL, Id("ip", "not-an-ip"))])
    with pytest.raises(InvalidACLError):
        zk.create(path, b"", acl=[ACL(Permissions.ALL, Id("digest", "missing-colon"))])


def test_set_acls_versions(zk, path):
    zk.create(path)
    read_admin = [make_acl("world", "anyone", read=True, admin=True)]
    stat = zk.set_acls(path, read_admin, version=0)
    assert stat.aversion == 1
    with pytest.raises(BadVersionError):
        zk.set_acls(path, OPEN_ACL_UNSAFE, version=0)
    acls, stat = zk.get_acls(path)
    assert acls == read_admin and stat.aversion == 1
    # without ADMIN, setACL is refused before the version is looked at
    zk.set_acls(path, READ_ACL_UNSAFE, version=1)
    with pytest.raises(NoAuthError):
        zk.set_acls(path, OPEN_ACL_UNSAFE, version=99)


def test_world_acl(zk, path):
    zk.create(path, acl=OPEN_ACL_UNSAFE)
    acls, _ = zk.get_acls(path)
    assert acls == [ACL(Permissions.ALL, Id("world", "anyone"))]


def test_ip_acl(zk_factory, path):
    c = zk_factory()
    c.create(path, b"ip", acl=[make_acl("ip", "127.0.0.1", all=True)])
    assert c.get(path)[0] == b"ip"
    c.create(path + "2", b"", acl=[make_acl("ip", "10.0.0.0/8", all=True)])
    with pytest.raises(NoAuthError):
        c.get(path + "2")


def test_unknown_auth_scheme_fails_session(zk_factory):
    c = zk_factory(start=False)
    c.start()
    with pytest.raises(AuthFailedError):
        c.add_auth("nosuchscheme", "x")
