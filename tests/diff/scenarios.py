"""Differential scenarios.

Each scenario is a function taking a transcript.Session; it drives raw
protocol clients (s.client(name)) whose every request, reply, notification
and connection close is recorded.  The harness runs a scenario on fresh
servers and compares normalised transcripts.  Scenarios must be
deterministic: events of another session are read with c.drain() (a
round-trip that returns only after everything queued before it).
"""
import base64
import hashlib
import struct

from harness import rawzk as z
from harness.servers import SUPER_PASSWORD

SCENARIOS = {}


def scenario(fn=None, cfg=None, sysprops=None):
    """Register a scenario; @scenario(cfg={...}, sysprops={...}) runs it on a
    server with extra zoo.cfg keys / -D properties."""
    def register(f):
        f.server_cfg = cfg or {}
        f.server_sysprops = sysprops or {}
        SCENARIOS[f.__name__] = f
        return f
    return register(fn) if fn is not None else register


def digest_id(user, password):
    d = hashlib.sha1(("%s:%s" % (user, password)).encode()).digest()
    return "%s:%s" % (user, base64.b64encode(d).decode())


OPEN = z.OPEN_ACL_UNSAFE


# ---------------------------------------------------------------------------
# Handshake


@scenario
def handshake_read_only_byte(s):
    """The connect response carries the readOnly byte only if the request did."""
    s.client("with_ro")                                 # 45-byte request
    s.client("without_ro", send_read_only=False)        # 44-byte request (old client)
    s.client("ro_true", read_only=True)
    c = s.client("c")
    c.ping()


@scenario
def handshake_session_timeout_clamping(s):
    for i, t in enumerate([0, -5, 1, 3999, 4000, 4001, 30000, 39999, 40000, 40001, 10 ** 6]):
        s.client("t%d" % i, timeout_ms=t)


@scenario
def handshake_odd_fields(s):
    s.client("proto5", protocol_version=5)
    s.client("short_passwd", passwd=b"ab")
    s.client("empty_passwd", passwd=b"")
    s.client("null_passwd_len16", passwd=b"\xff" * 16)


@scenario
def handshake_reconnect_paths(s):
    a = s.client("a")
    a.create("/eph", b"", flags=z.EPHEMERAL)
    sid, pw, lz = a.session_id, a.passwd, a.last_zxid
    a.close()  # drop TCP, keep session
    # same session, right password: accepted, ephemeral kept
    a2 = s.raw("a2")
    a2.connect(session_id=sid, passwd=pw, last_zxid=lz)
    a2.exists("/eph")
    # same session id, wrong password: refused (timeOut 0, sessionId 0), closed;
    # and the session's current connection (a2) is closed too
    bad = s.raw("badpw")
    bad.connect(session_id=sid, passwd=b"\x01" * 16)
    s.expect_closed(bad)
    s.expect_closed(a2)
    # session still alive: reconnect works
    a3 = s.raw("a3")
    a3.connect(session_id=sid, passwd=pw)
    a3.exists("/eph")
    # a new connection for the session closes the previous one
    a4 = s.raw("a4")
    a4.connect(session_id=sid, passwd=pw)
    s.expect_closed(a3)
    a4.exists("/eph")
    # an unknown session id
    u = s.raw("unknown")
    u.connect(session_id=0x7AB0000000001234, passwd=b"\x00" * 16)
    s.expect_closed(u)
    # lastZxidSeen ahead of the server: no response at all, connection closed
    f = s.raw("future")
    f.connect(last_zxid=a4.last_zxid + 1000)
    s.expect_closed(f)


# ---------------------------------------------------------------------------
# create / create2 / containers / TTL / sequential


@scenario
def create_errors(s):
    c = s.client("c")
    c.create("/a", b"x")
    c.create("/a", b"x")                        # NODEEXISTS
    c.create("/missing/child", b"")             # NONODE
    c.create("/e", b"", flags=z.EPHEMERAL)
    c.create("/e/child", b"")                   # NOCHILDRENFOREPHEMERALS
    c.create("/e/seq-", b"", flags=z.PERSISTENT_SEQUENTIAL)
    for bad in ["noslash", "", "/trail/", "/a/", "/a//b", "//", "/.", "/..", "/a/.", "/a/..",
                "/a/./b", "/a/../b", "/n\u0000ul", "/tab\tok", "/\u00fcnicode", "/a/\ufffe"]:
        c.create(bad, b"")
    c.create("/", b"")                          # NODEEXISTS
    c.create("/zookeeper", b"")
    c.create("/zookeeper/mine", b"")            # allowed
    c.create("/zookeeper/quota/mine", b"")
    for flags in (-1, 7, 8, 99):
        c.create("/flags%d" % (flags & 0xff), b"", flags=flags)
    c.create("/f5", b"", flags=z.PERSISTENT_WITH_TTL)       # TTL flag via plain create
    c.create("/f6", b"", flags=z.PERSISTENT_SEQUENTIAL_WITH_TTL)
    c.create2("/c2f5", b"", flags=z.PERSISTENT_WITH_TTL)
    # ACL problems
    c.create("/acl-empty", b"", acl=[])
    c.create("/acl-scheme", b"", acl=[(z.ALL, "nosuch", "x")])
    c.create("/acl-world", b"", acl=[(z.ALL, "world", "someone")])
    c.create("/acl-digest", b"", acl=[(z.ALL, "digest", "nocolon")])
    c.create("/acl-ip", b"", acl=[(z.ALL, "ip", "not-an-ip")])
    c.create("/acl-ip-cidr", b"", acl=[(z.ALL, "ip", "10.0.0.0/33")])
    c.create("/acl-auth", b"", acl=z.CREATOR_ALL_ACL)           # no auth yet
    c.create("/acl-perms0", b"", acl=[(0, "world", "anyone")])
    c.create("/acl-perms99", b"", acl=[(99, "world", "anyone")])
    c.get_acl("/acl-perms99")
    c.create("/acl-dup", b"", acl=[(z.ALL, "world", "anyone"), (z.ALL, "world", "anyone")])
    c.get_acl("/acl-dup")
    # errors are checked in an order: parent existence before path syntax
    c.create("/missing/..", b"")
    c.create("/a/..", b"")


@scenario
def create_modes_and_stats(s):
    c = s.client("c")
    c.create("/p", b"data")
    c.create2("/p2", b"data2")
    c.create2("/p2/eph", b"", flags=z.EPHEMERAL)
    c.create2("/p2/seq-", b"", flags=z.PERSISTENT_SEQUENTIAL)
    c.create2("/p2/eseq-", b"", flags=z.EPHEMERAL_SEQUENTIAL)
    c.create2("/p2/cont", b"", flags=z.CONTAINER)
    c.create("/nulldata", None)
    c.get_data("/nulldata")
    c.create2("/empty", b"")
    for p in ("/p", "/p2", "/p2/eph", "/p2/cont", "/"):
        c.exists(p)
    c.get_children2("/p2")
    c.get_data("/p2/eph")


@scenario
def containers_and_ttl(s):
    c = s.client("c")
    c.create_container("/c1")
    c.create_container("/c1")                        # NODEEXISTS
    c.create_container("/c0", flags=0)               # flags ignored?
    c.create_container("/c3", flags=z.EPHEMERAL)
    c.create_container("/nope/c", b"")
    c.create("/c1/child", b"")
    c.exists("/c1")
    c.get_data("/c0")
    c.create("/cflag", b"", flags=z.CONTAINER)       # container via plain create
    c.exists("/cflag")
    c.create_container("/c1/seqc-", flags=z.CONTAINER)
    # TTL
    c.create_ttl("/t1", b"ttl", ttl=60000)
    c.create_ttl("/t1", b"ttl", ttl=60000)           # NODEEXISTS
    c.create_ttl("/ts-", b"", flags=z.PERSISTENT_SEQUENTIAL_WITH_TTL, ttl=60000)
    c.exists("/t1")
    for flags in (z.PERSISTENT, z.EPHEMERAL, z.PERSISTENT_SEQUENTIAL, z.CONTAINER):
        c.create_ttl("/tf%d" % flags, b"", flags=flags, ttl=1000)
    for ttl in (0, -1, (1 << 40) - 1, 1 << 40, 1 << 62):
        c.create_ttl("/tt%d" % (ttl & 0xffff), b"", ttl=ttl)
    c.create_ttl("/e", b"", ttl=5000)
    c.create("/t1/child", b"")
    c.create_ttl("/t1/ttlchild", b"", ttl=5000)
    c.get_children2("/t1")


@scenario
def sequential_naming(s):
    """The %010d suffix counts child creations under the parent; the cversion
    clients see is creations + deletions."""
    c = s.client("c")
    c.create("/q", b"")
    c.create("/q/s-", b"", flags=z.PERSISTENT_SEQUENTIAL)
    c.create("/q/x", b"")
    c.exists("/q")
    c.delete("/q/x")
    c.exists("/q")
    c.create("/q/s-", b"", flags=z.PERSISTENT_SEQUENTIAL)
    c.delete("/q/s-0000000000")
    c.delete("/q/nope")                                # failed delete
    c.create("/q/s-", b"", flags=z.PERSISTENT_SEQUENTIAL)
    c.create("/q/s-0000000005", b"")                    # squat the next name
    c.create("/q/s-", b"", flags=z.PERSISTENT_SEQUENTIAL)   # NODEEXISTS
    c.create("/q/s-", b"", flags=z.PERSISTENT_SEQUENTIAL)   # NODEEXISTS again
    c.create("/q/", b"", flags=z.PERSISTENT_SEQUENTIAL)      # name is just digits
    c.create("/q/e-", b"", flags=z.EPHEMERAL_SEQUENTIAL)
    c.multi([("create", "/q/m-", b"", OPEN, z.PERSISTENT_SEQUENTIAL),
             ("create", "/q/m-", b"", OPEN, z.PERSISTENT_SEQUENTIAL),
             ("delete", "/q/x", -1)])                   # fails: seq names rolled back
    c.multi([("create", "/q/m-", b"", OPEN, z.PERSISTENT_SEQUENTIAL),
             ("create", "/q/m-", b"", OPEN, z.PERSISTENT_SEQUENTIAL)])
    c.create("/", b"", flags=z.PERSISTENT_SEQUENTIAL)   # "/0000000001"-style at root
    c.get_children2("/q")
    c.exists("/")
    # ephemeral children removed by session close still count
    d = s.client("d")
    d.create("/q/d-", b"", flags=z.EPHEMERAL_SEQUENTIAL)
    d.close_session()
    c.create("/q/after-", b"", flags=z.PERSISTENT_SEQUENTIAL)
    c.get_children2("/q")
    # a fresh parent with many children
    c.create("/r", b"")
    for _ in range(12):
        c.create("/r/n", b"", flags=z.PERSISTENT_SEQUENTIAL)
    c.get_children2("/r")


# ---------------------------------------------------------------------------
# delete / setData / reads


@scenario
def delete_errors(s):
    c = s.client("c")
    c.create("/d", b"")
    c.create("/d/child", b"")
    c.delete("/nope")
    c.delete("/d")                 # NOTEMPTY
    c.delete("/d/child", 5)        # BADVERSION
    c.delete("/d/child", 0)
    c.delete("/d/child", 0)        # NONODE
    c.delete("/d", -1)
    for p in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "", "noslash",
              "/trail/", "/a//b", "/."):
        c.delete(p)
    c.create("/v", b"")
    c.set_data("/v", b"1")
    c.delete("/v", 0)              # BADVERSION
    c.delete("/v", -2)             # BADVERSION? (only -1 means any)
    c.delete("/v", 1)
    # NOAUTH (parent lacks DELETE) wins over NONODE / BADVERSION
    c.create("/nodel", b"", acl=[(z.ALL & ~z.DELETE, "world", "anyone")])
    c.create("/nodel/x", b"")
    c.delete("/nodel/x")
    c.delete("/nodel/missing")
    c.delete("/nodel/x", 99)
    c.delete("/nodel")             # allowed: needs DELETE on "/" only


@scenario
def set_and_get_data(s):
    c = s.client("c")
    c.create("/s", b"v0")
    c.set_data("/s", b"v1", 0)
    c.set_data("/s", b"v2", 0)     # BADVERSION
    c.set_data("/s", b"v2", -1)
    c.set_data("/s", b"v3", -2)
    c.set_data("/s", b"", 2)
    c.set_data("/s", None, -1)
    c.get_data("/s")
    c.set_data("/nope", b"x")
    c.set_data("noslash", b"x")
    c.set_data("/s", b"x" * 100000)
    c.get_data("/s")
    c.set_data("/", b"root data")
    c.get_data("/")
    c.set_data("/zookeeper", b"zk")
    c.set_data("/zookeeper/quota", b"q")
    c.set_data("/zookeeper/config", b"cfg")    # NOAUTH
    c.get_data("/zookeeper")
    c.create("/ro", b"", acl=z.READ_ACL_UNSAFE)
    c.set_data("/ro", b"x", 99)    # NOAUTH before BADVERSION


@scenario
def reads_on_missing_and_invalid_paths(s):
    c = s.client("c")
    for p in ("/nope", "noslash", "/a/", "//", "", "/.", "/nope/deeper"):
        c.exists(p)
        c.get_data(p)
        c.get_children(p)
        c.get_children2(p)
        c.get_acl(p)
        c.get_all_children_number(p)
    c.sync("/nope")
    c.sync("noslash")
    c.sync("")


# ---------------------------------------------------------------------------
# ACLs and auth


@scenario
def acl_get_set(s):
    c = s.client("c")
    c.create("/a", b"", acl=OPEN)
    c.get_acl("/a")
    c.set_acl("/a", z.READ_ACL_UNSAFE + [(z.ADMIN, "world", "anyone")], 0)
    c.set_acl("/a", OPEN, 0)                   # BADVERSION
    c.get_acl("/a")
    c.set_acl("/a", [], -1)                    # INVALIDACL
    c.set_acl("/a", [(z.ALL, "bogus", "x")], -1)
    c.set_acl("/a", [(z.ALL, "world", "anyone"), (z.ALL, "world", "anyone")], -1)
    c.get_acl("/a")
    c.set_acl("/nope", OPEN, -1)
    c.set_acl("/a", z.READ_ACL_UNSAFE, -1)     # drops ADMIN
    c.set_acl("/a", OPEN, 99)                  # NOAUTH before BADVERSION
    c.get_acl("/a")
    c.set_acl("/zookeeper/config", OPEN, -1)
    c.get_acl("/zookeeper/config")
    c.get_acl("/zookeeper")
    c.get_acl("/zookeeper/quota")
    c.get_acl("/")


@scenario
def acl_denials(s):
    owner = s.client("owner")
    other = s.client("other")
    owner.auth("digest", "alice:pw")
    owner.create("/d", b"secret", acl=[(z.ALL, "digest", digest_id("alice", "pw"))])
    owner.create("/d/child", b"")
    # (exists needs READ from ZooKeeper 3.9 on, unlike the 3.8.0 oracle: not compared
    # here; tests/test_kazoo_acl.py and tests/test_hostile.py cover it.)
    for fn, args in ((other.get_data, ("/d",)),
                     (other.get_children, ("/d",)), (other.get_children2, ("/d",)),
                     (other.get_acl, ("/d",)), (other.set_data, ("/d", b"x")),
                     (other.set_acl, ("/d", OPEN)), (other.create, ("/d/x", b"")),
                     (other.delete, ("/d/child",)), (other.get_all_children_number, ("/d",)),
                     (other.get_data, ("/d/child",)), (other.sync, ("/d",))):
        fn(*args)
    other.multi_read([("getData", "/d"), ("getChildren", "/d"), ("getData", "/d/child")])
    other.multi([("setData", "/d/child", b"ok", -1), ("create", "/d/y", b"", OPEN, 0)])
    # per-permission matrix with world ACLs
    for perm, name in ((z.READ, "r"), (z.WRITE, "w"), (z.CREATE, "c"), (z.DELETE, "d"),
                       (z.ADMIN, "a")):
        p = "/perm-" + name
        owner.create(p, b"", acl=[(perm, "world", "anyone")])
        other.get_data(p)
        other.set_data(p, b"x")
        other.create(p + "/k", b"")
        other.get_children(p)
        other.get_acl(p)
        other.set_acl(p, [(perm, "world", "anyone")], -1)
        other.delete(p + "/k")
    # ip scheme
    owner.create("/ip-ok", b"", acl=[(z.ALL, "ip", "127.0.0.1")])
    owner.create("/ip-net", b"", acl=[(z.ALL, "ip", "127.0.0.0/8")])
    owner.create("/ip-no", b"", acl=[(z.ALL, "ip", "10.1.2.3")])
    for p in ("/ip-ok", "/ip-net", "/ip-no"):
        other.get_data(p)
    # auth scheme: creator ids
    owner.create("/au", b"", acl=z.CREATOR_ALL_ACL)
    owner.get_acl("/au")
    other.get_data("/au")
    # super bypasses everything
    su = s.client("super")
    su.auth("digest", "super:" + SUPER_PASSWORD)
    su.get_data("/d")
    su.set_data("/perm-r", b"by super")
    su.get_acl("/perm-w")
    su.set_data("/zookeeper/config", b"")   # even the config node?


@scenario
def auth_schemes(s):
    a = s.client("a")
    a.auth("digest", "alice:pw")
    a.auth("digest", "alice:pw")        # twice
    a.auth("digest", "bob:wrong")
    a.auth("digest", "nocolon")
    a.auth("digest", "")
    a.auth("ip", "127.0.0.1")
    a.auth("ip", "10.0.0.1")
    a.who_am_i()
    a.create("/x", b"", acl=z.CREATOR_ALL_ACL)
    a.get_acl("/x")
    for scheme in ("world", "nosuchscheme", "super", "sasl", "x509", "key"):
        c = s.client("c-" + scheme)
        s.attempt(c.auth, scheme, "anyone")
        s.attempt(c.ping)
        s.expect_closed(c, timeout=3)


# ---------------------------------------------------------------------------
# multi / multiRead


@scenario
def multi_success(s):
    c = s.client("c")
    c.create("/m", b"0")
    c.multi([("create", "/m/a", b"a", OPEN, 0),
             ("create2", "/m/b", b"b", OPEN, 0),
             ("create2", "/m/e", b"", OPEN, z.EPHEMERAL),
             ("createContainer", "/m/c", b"", OPEN, z.CONTAINER),
             ("createTTL", "/m/t", b"", OPEN, z.PERSISTENT_WITH_TTL, 10000),
             ("create", "/m/s-", b"", OPEN, z.PERSISTENT_SEQUENTIAL),
             ("setData", "/m", b"1", 0),
             ("check", "/m", 1),
             ("check", "/m/a", -1),
             ("delete", "/m/a", 0),
             ("setData", "/m/b", b"bb", -1)])
    c.get_children2("/m")
    c.exists("/m/b")
    c.multi([])
    c.multi([("check", "/m", 1)])
    c.multi([("setData", "/m", b"x", -1), ("setData", "/m", b"y", -1)])
    c.get_data("/m")


@scenario
def multi_failures(s):
    c = s.client("c")
    c.create("/f", b"0")
    c.create("/f/exists", b"")
    c.create("/eph", b"", flags=z.EPHEMERAL)
    cases = [
        # failing op first / middle / last
        [("delete", "/f/nope", -1), ("create", "/f/a", b"", OPEN, 0), ("create", "/f/b", b"", OPEN, 0)],
        [("create", "/f/a", b"", OPEN, 0), ("create", "/f/exists", b"", OPEN, 0), ("create", "/f/b", b"", OPEN, 0)],
        [("create", "/f/a", b"", OPEN, 0), ("setData", "/f", b"x", 0), ("check", "/f", 5)],
        # two failing ops: only the first reports its own error
        [("create", "/f/a", b"", OPEN, 0), ("delete", "/f/nope", -1), ("create", "/f/exists", b"", OPEN, 0)],
        [("setData", "/f", b"x", 7)],
        [("delete", "/f", -1)],                                  # NOTEMPTY
        [("create", "/eph/c", b"", OPEN, 0)],                    # NOCHILDRENFOREPHEMERALS
        [("create", "/f/bad", b"", [], 0)],                      # INVALIDACL
        [("create", "noslash", b"", OPEN, 0)],                   # BADARGUMENTS
        [("create", "/f/fl", b"", OPEN, 42)],                    # bad flags
        [("createTTL", "/f/t", b"", OPEN, z.PERSISTENT_WITH_TTL, 0)],
        [("create", "/f/a", b"", OPEN, 0), ("create", "/f/a", b"", OPEN, 0)],
        [("create", "/f/a", b"", OPEN, 0), ("delete", "/f/a", -1), ("delete", "/f/a", -1)],
        [("create2", "/f/a2", b"", OPEN, 0), ("createContainer", "/f/c", b"", OPEN, 4),
         ("createTTL", "/f/t", b"", OPEN, 5, 100), ("check", "/nope", -1)],
        [("check", "/f", -1), ("check", "/f/exists", 1)],
    ]
    for ops in cases:
        c.multi(ops)
    c.get_children2("/f")
    c.get_data("/f")
    # read ops are not allowed in multi, write ops not in multiRead
    c.multi([("getData", "/f"), ("create", "/f/r", b"", OPEN, 0)])
    s.attempt(c.ping)


@scenario
def multi_read(s):
    c = s.client("c")
    c.create("/r", b"data")
    c.create("/r/a", b"")
    c.create("/secret", b"", acl=[(z.WRITE, "world", "anyone")])
    c.multi_read([("getData", "/r"), ("getChildren", "/r"), ("getData", "/nope"),
                  ("getChildren", "/nope"), ("getData", "/secret"), ("getChildren", "/secret"),
                  ("getData", "/r/a")])
    c.multi_read([])
    # watch flags inside multiRead
    c.multi_read([("getData", "/r", True), ("getChildren", "/r", True)])
    other = s.client("other")
    other.set_data("/r", b"changed")
    other.create("/r/b", b"")
    c.drain()
    c.multi_read([("create", "/r/w", b"", OPEN, 0)])
    s.attempt(c.ping)


# ---------------------------------------------------------------------------
# watches


@scenario
def watches_one_shot(s):
    a, b = s.client("a"), s.client("b")
    a.create("/w", b"0")
    a.create("/w/c1", b"")
    b.get_data("/w", True)
    b.get_children("/w", True)
    b.exists("/w/c1", True)
    b.exists("/w/missing", True)          # NONODE but watch armed
    b.get_data("/w/missing2", True)       # NONODE: no watch armed
    b.get_children("/w/missing3", True)   # NONODE: no watch armed
    a.delete("/w/c1")
    b.drain()
    a.create("/w/missing", b"")
    a.create("/w/missing2", b"")
    a.create("/w/missing3", b"")
    b.drain()
    a.set_data("/w", b"1")
    b.drain()
    a.set_data("/w", b"2")                # already fired: nothing
    b.drain()
    # the writer's own watch: the event precedes the reply
    a.get_data("/w", True)
    a.exists("/w", True)
    a.get_children("/w", True)
    a.set_data("/w", b"3")
    a.create("/w/k", b"")
    # delete with data + child + parent-child watches
    b.get_data("/w/k", True)
    b.get_children("/w/k", True)
    b.exists("/w/k", True)
    b.get_children("/w", True)
    a.delete("/w/k")
    b.drain()
    # multi: events for every op, in op order
    b.get_data("/w", True)
    b.get_children("/w", True)
    b.exists("/w/m1", True)
    a.multi([("create", "/w/m1", b"", OPEN, 0), ("setData", "/w", b"m", -1),
             ("delete", "/w/m1", -1)])
    b.drain()
    # a failed multi fires nothing
    b.get_data("/w", True)
    a.multi([("setData", "/w", b"no", -1), ("check", "/w", 99)])
    b.drain()
    # getChildren2 sets a child watch; setACL fires nothing
    b.get_children2("/w", True)
    a.set_acl("/w", OPEN, -1)
    a.create("/w/z", b"")
    b.drain()


@scenario
def watches_on_session_close(s):
    a, b = s.client("a"), s.client("b")
    a.create("/sc", b"")
    a.create("/sc/e1", b"", flags=z.EPHEMERAL)
    a.create("/sc/e2", b"", flags=z.EPHEMERAL)
    a.create("/e3", b"", flags=z.EPHEMERAL)
    b.get_children("/sc", True)
    b.get_data("/sc/e1", True)
    b.exists("/sc/e2", True)
    b.exists("/e3", True)
    b.get_children("/", True)
    a.get_data("/sc", True)     # a's own watches die with it
    a.close_session()
    s.expect_closed(a)
    # ZooKeeper deletes a closing session's ephemerals in HashSet order
    s.drain_unordered(b)
    b.get_children2("/sc")
    b.get_ephemerals("/")


@scenario
def persistent_watches(s):
    a, b = s.client("a"), s.client("b")
    b.add_watch("/p", z.AW_PERSISTENT)                 # node need not exist
    b.add_watch("/r", z.AW_PERSISTENT_RECURSIVE)
    b.add_watch("/p", z.AW_PERSISTENT)                 # again
    a.create("/p", b"")
    a.set_data("/p", b"1")
    a.create("/p/c", b"")
    a.create("/p/c/g", b"")                            # grandchild: not seen
    a.set_data("/p/c", b"x")                           # child data: not seen
    a.delete("/p/c/g")
    a.delete("/p/c")
    b.drain()
    a.create("/r", b"")
    a.create("/r/x", b"")
    a.create("/r/x/y", b"")
    a.set_data("/r/x/y", b"1")
    a.set_data("/r", b"1")
    a.delete("/r/x/y")
    a.create("/rsibling", b"")                         # prefix, not a child
    b.drain()
    a.multi([("create", "/r/m", b"", OPEN, 0), ("delete", "/r/m", -1), ("delete", "/p", -1)])
    b.drain()
    a.create("/p", b"")                                # persistent watch survives delete
    b.drain()
    # one event even with a one-shot watch on the same path
    b.get_data("/p", True)
    b.exists("/r/x", True)
    a.set_data("/p", b"dup")
    a.set_data("/r/x", b"dup")
    b.drain()
    # the writer's own persistent watch
    a.add_watch("/", z.AW_PERSISTENT_RECURSIVE)
    a.create("/own", b"")
    a.set_data("/own", b"x")
    # root recursive watch sees everything, including /zookeeper changes
    a.set_data("/zookeeper", b"z")
    a.add_watch("/nope/deeper", z.AW_PERSISTENT)
    a.add_watch("noslash", z.AW_PERSISTENT)
    a.add_watch("/x", 2)
    a.add_watch("/x", -1)
    # ephemerals of a closing session fire persistent watches
    e = s.client("e")
    e.create("/r/eph", b"", flags=z.EPHEMERAL)
    b.drain()
    e.close_session()
    b.drain()


@scenario
def check_and_remove_watches(s):
    a, b = s.client("a"), s.client("b")
    a.create("/w", b"")
    b.check_watches("/w", z.WT_DATA)                   # NOWATCHER
    b.get_data("/w", True)
    b.get_children("/w", True)
    b.exists("/w/x", True)
    for wt in (z.WT_CHILDREN, z.WT_DATA, z.WT_ANY, z.WT_PERSISTENT, z.WT_PERSISTENT_RECURSIVE,
               0, 6, -1):
        b.check_watches("/w", wt)
    b.check_watches("/w/x", z.WT_DATA)                 # exists watch on missing node
    b.check_watches("/w/x", z.WT_CHILDREN)
    b.check_watches("/nope", z.WT_ANY)
    b.remove_watches("/w", z.WT_DATA)
    b.remove_watches("/w", z.WT_DATA)                  # NOWATCHER
    b.check_watches("/w", z.WT_CHILDREN)
    b.remove_watches("/w", z.WT_ANY)
    b.remove_watches("/w", z.WT_ANY)
    b.remove_watches("/w/x", z.WT_ANY)
    a.set_data("/w", b"1")
    a.create("/w/x", b"")
    b.drain()                                          # nothing: all removed
    # persistent watches and Any/Persistent removal
    b.add_watch("/w", z.AW_PERSISTENT)
    b.add_watch("/r", z.AW_PERSISTENT_RECURSIVE)
    b.check_watches("/w", z.WT_DATA)
    b.check_watches("/w", z.WT_CHILDREN)
    b.check_watches("/w", z.WT_ANY)
    b.check_watches("/r", z.WT_ANY)
    b.check_watches("/r", z.WT_DATA)
    b.remove_watches("/w", z.WT_PERSISTENT)
    b.remove_watches("/w", z.WT_DATA)
    a.set_data("/w", b"2")
    b.drain()
    b.remove_watches("/w", z.WT_ANY)
    b.remove_watches("/r", z.WT_ANY)
    a.set_data("/w", b"3")
    a.create("/r", b"")
    b.drain()
    # another session's watches are not ours to remove
    a.get_data("/w", True)
    b.check_watches("/w", z.WT_DATA)
    b.remove_watches("/w", z.WT_DATA)
    a.check_watches("/w", z.WT_DATA)


@scenario
def set_watches_on_reconnect(s):
    a = s.client("a")
    a.create("/x", b"1")
    a.create("/z", b"")
    a.create("/gone", b"")
    a.create("/same", b"")
    a.create("/ph", b"")
    sid, pw, lz = a.session_id, a.passwd, a.last_zxid
    a.close()
    b = s.client("b")
    b.set_data("/x", b"2")
    b.create("/y", b"")
    b.create("/z/c", b"")
    b.delete("/gone")
    b.create("/ph/k", b"")
    a2 = s.raw("a2")
    a2.connect(session_id=sid, passwd=pw, last_zxid=lz)
    a2.set_watches(lz, data=["/x", "/same", "/gone", "/never"], exist=["/y", "/stillmissing", "/same"],
                   child=["/z", "/same", "/gone"])
    a2.drain()
    # watches that did not fire are armed now
    b.set_data("/same", b"s")
    b.create("/stillmissing", b"")
    b.create("/same/k", b"")
    a2.drain()
    # relativeZxid 0: everything "changed" since
    c = s.client("c")
    c.set_watches(0, data=["/x"], exist=["/y", "/nope"], child=["/z"])
    c.drain()
    # relativeZxid in the future
    d = s.client("d")
    d.set_watches(d.last_zxid + 100, data=["/x"], exist=["/nope2"], child=["/z"])
    d.drain()
    b.set_data("/x", b"3")
    d.drain()
    # setWatches2 with persistent watches
    e = s.client("e")
    e.set_watches2(0, persistent=["/ph"], recursive=["/z"])
    e.drain()
    b.create("/ph/k2", b"")
    b.create("/z/c/d", b"")
    b.set_data("/ph", b"1")
    e.drain()
    e.check_watches("/ph", z.WT_ANY)


# ---------------------------------------------------------------------------
# sessions and misc opcodes


@scenario
def close_session(s):
    a, b = s.client("a"), s.client("b")
    a.create("/e", b"", flags=z.EPHEMERAL)
    a.create("/p", b"")
    a.create("/p/e", b"", flags=z.EPHEMERAL_SEQUENTIAL)
    b.get_ephemerals("/")
    a.get_ephemerals("/")
    a.get_ephemerals("/p")
    a.get_ephemerals("/p/")
    a.get_ephemerals("/nope")
    a.get_ephemerals("")
    sid, pw = a.session_id, a.passwd
    a.close_session()
    s.expect_closed(a)
    b.exists("/e")
    b.get_children2("/p")
    r = s.raw("resume")
    r.connect(session_id=sid, passwd=pw)
    s.expect_closed(r)


@scenario
def ephemerals_and_children_count(s):
    a = s.client("a")
    a.create("/t", b"")
    for p in ("/t/a", "/t/a/b", "/t/a/b/c", "/t/d"):
        a.create(p, b"")
    a.create("/t/e1", b"", flags=z.EPHEMERAL)
    a.create("/t/a/e2", b"", flags=z.EPHEMERAL)
    a.create("/te", b"", flags=z.EPHEMERAL)
    for p in ("/", "/t", "/t/a", "/t/a/b/c", "/zookeeper", "/nope", "/t/"):
        a.get_all_children_number(p)
    for p in ("/", "/t", "/t/", "/t/a", "/te", "/x", "/zookeeper"):
        a.get_ephemerals(p)
    b = s.client("b")
    b.get_ephemerals("/")


@scenario
def system_nodes(s):
    c = s.client("c")
    for p in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
        c.get_data(p)
        c.get_children2(p)
        c.get_acl(p)
        c.get_all_children_number(p)
    c.create("/zookeeper/x", b"")
    c.get_children2("/zookeeper")
    c.delete("/zookeeper/x")
    c.get_children2("/zookeeper")
    c.create("/a", b"")
    c.get_children2("/")
    c.delete("/a")
    c.get_children2("/")


@scenario
def who_am_i(s):
    a = s.client("a")
    a.who_am_i()
    a.auth("digest", "u1:p")
    a.who_am_i()
    a.auth("digest", "super:" + SUPER_PASSWORD)
    a.who_am_i()
    a.raw_request(z.OP["whoAmI"], b"trailing-bytes")


@scenario
def reconfig_disabled(s):
    a = s.client("a")
    a.reconfig("server.2=127.0.0.1:2888:3888;2181", None, None, -1)
    a.reconfig(None, "1", None, -1)
    a.reconfig(None, None, "server.1=127.0.0.1:2888:3888", 7)
    su = s.client("super")
    su.auth("digest", "super:" + SUPER_PASSWORD)
    su.reconfig(None, "1", None, -1)
    su.get_data("/zookeeper/config")


@scenario
def sasl_without_sasl(s):
    a = s.client("a")
    a.sasl(b"")
    a.sasl(b"token")
    a.ping()


@scenario
def check_op_outside_multi(s):
    """opcode 13 outside multi: ZooKeeper 3.8 never answers (NPE server-side),
    but the request consumes a zxid and the connection stays usable."""
    a = s.client("a")
    a.create("/c", b"")
    s.attempt(a.call, z.OP["check"], z.path_version("/c", 0), None,
              {"path": "/c", "version": 0}, "check", 1.5)
    b = s.client("b")
    b.exists("/c")
    b.ping()


@scenario
def unknown_and_internal_opcodes(s):
    for op in (10, 23, 99, 108, 999, -12, 0x7fffffff):
        c = s.client("op%d" % op)
        s.attempt(c.raw_request, op, z.path_only("/"))
        s.expect_closed(c, timeout=3)
    c = s.client("deleteContainer")
    c.create("/cont", b"", flags=z.CONTAINER)
    c.raw_request(z.OP["deleteContainer"], z.path_only("/cont"))
    c.raw_request(z.OP["deleteContainer"], z.path_only("/nope"))
    c.exists("/cont")
    c.ping()


@scenario
def ping_sync_and_xids(s):
    a = s.client("a")
    a.ping()
    a.create("/s", b"")
    a.ping()
    a.sync("/")
    a.sync("/s")
    a.sync("/nope")
    # arbitrary (non-special) xids are echoed
    for xid in (0, 7, 1 << 30, 0x7fffffff, -3, -5, -100):
        a.call(z.OP["exists"], z.path_watch("/s", False), xid=xid, args={"xid": xid})
    # pipelining: replies come back in request order
    xids = [a.submit(z.OP["getData"], z.path_watch("/s", False), args={"path": "/s"})
            for _ in range(3)]
    xids.append(a.submit(z.OP["setData"], z.W().ustring("/s").buffer(b"p").int(-1).bytes(),
                         args={"path": "/s"}))
    xids.append(a.submit(z.OP["getData"], z.path_watch("/s", False), args={"path": "/s"}))
    for x, op in zip(xids, ["getData", "getData", "getData", "setData", "getData"]):
        a.read_reply(x, z.OP[op])


@scenario
def data_size_limits(s):
    a = s.client("a")
    a.create("/big", b"x" * (1024 * 1024 - 1024))       # fits in jute.maxbuffer
    a.get_data("/big")
    a.set_data("/big", b"")
    b = s.client("b")
    # a frame over jute.maxbuffer (1 MiB - 1): connection closed
    s.attempt(b.create, "/toobig", b"x" * (1024 * 1024))
    s.expect_closed(b)
    a.exists("/toobig")


@scenario
def malformed_request_bodies(s):
    """Truncated or inconsistent request records: MARSHALLINGERROR, the
    connection stays usable (each case on its own connection)."""
    cases = [
        ("getData", b""),
        ("getData", z.W().ustring("/").bytes()),                   # watch flag missing
        ("getData", b"\x00\x00\x00\x05/a"),                         # string too short
        ("exists", b"\xff\xff\xff\xf0"),                            # negative length
        ("create", z.W().ustring("/x").bytes()),
        ("create", z.W().ustring("/x").buffer(b"").int(5).bytes()), # acl count 5, none sent
        ("setData", z.W().ustring("/").bytes()),
        ("delete", z.W().ustring("/nope").bytes()),
        ("setACL", z.W().ustring("/").int(1).bytes()),
        ("multi", b"\x00\x00\x00\x01\x00"),
        ("multi", b""),
        ("getChildren2", b""),
        ("sync", b""),
        ("addWatch", z.W().ustring("/").bytes()),
        ("getEphemerals", b""),
    ]
    for i, (op, body) in enumerate(cases):
        c = s.client("m%d" % i)
        s.attempt(c.call, z.OP[op], body, None, {"body": body.hex()}, op, 3.0)
        s.attempt(c.ping)
    c = s.client("after")
    c.get_children2("/")
    # trailing bytes after a complete record are ignored
    c.call(z.OP["exists"], z.path_watch("/", False) + b"junk", args={"trailing": True},
           opname="exists")
    c.call(z.OP["create"], z.create_body("/trailing", b"", OPEN, 0) + b"\x00" * 7,
           args={"trailing": True}, opname="create")
    c.exists("/trailing")


@scenario(sysprops={"zookeeper.extendedTypesEnabled": "false"})
def ttl_without_extended_types(s):
    c = s.client("c")
    c.create_ttl("/t", b"", ttl=1000)
    c.create("/t2", b"", flags=z.PERSISTENT_WITH_TTL)
    c.multi([("createTTL", "/t3", b"", OPEN, z.PERSISTENT_WITH_TTL, 1000)])
    c.create_container("/c")
    c.exists("/t")
    c.ping()


@scenario(cfg={"minSessionTimeout": 1000, "maxSessionTimeout": 5000})
def session_timeout_bounds_from_config(s):
    for i, t in enumerate([500, 1000, 3000, 5000, 60000]):
        s.client("t%d" % i, timeout_ms=t)
