"""Hostile clients, part 3: ACL leaks and reconfig authorization (issue 10), as
Apache ZooKeeper 3.9 enforces them.

The installed oracle is Debian's 3.8.0-11+deb12u2, which is 3.8.0 plus the
CVE-2024-23944 fix (ZOOKEEPER-4799, backported by Debian: every watch event is
checked against the READ permission of the znode it names, at delivery), so it
already behaves as 3.9 for watches.  Where it does not:

* `exists` needs READ on a node that exists (ZOOKEEPER-2590, in 3.8.4 and
  3.9.2: FinalRequestProcessor checks READ when the node exists, before setting
  any watch; a missing node still answers NoNode without a check).  The
  installed 3.8.0 answers OK with the Stat, so that test runs against Keel only.

What ZooKeeper (deb12u2, and 3.9.3 by its sources) does, asserted for both:

* Watch events (one-shot exists/data/child watches, persistent and persistent-
  recursive watches from addWatch (106), and watches re-registered by
  setWatches (101) / setWatches2 (105)) are delivered only if the watcher may
  READ the znode the event names: NodeCreated / NodeDataChanged / NodeDeleted
  need READ on that node (for NodeDeleted, its ACL before deletion),
  NodeChildrenChanged READ on the parent.  addWatch itself does not check.
  Not covered: the events setWatches triggers at once when a node changed
  since relativeZxid (ZooKeeper 3.9 sends those without a check: DataTree.
  setWatches calls watcher.process(event) with no ACL; the test uses the
  current zxid so none are due).
* getACL needs READ or ADMIN (else NoAuth); a client without ADMIN sees every
  `digest` id with its hash replaced: `user:x` (FinalRequestProcessor:
  id.replaceAll(":.*", ":x")); other schemes unchanged; ADMIN or the superuser
  see the hashes.

reconfig (opcode 16), 3-node ensembles with reconfigEnabled=true:
* A client that is neither the superuser nor allowed to WRITE /zookeeper/config
  gets NoAuth for a well-formed request (both servers).
* Issue 10 asks for NoAuth also when the server list is malformed.  ZooKeeper
  does NOT do that: PrepRequestProcessor parses and validates the request
  (BadVersion, BadArguments, MarshallingError, NewConfigNoQuorum) and checks
  WRITE on /zookeeper/config last (3.8.0, 3.9.3, 3.9.5 and master alike).
  Measured on 3.8.0, anonymous and non-super digest clients alike:
  joining "garbage" -> BADARGUMENTS; leaving "abc" -> MARSHALLINGERROR;
  new_members "server.1=xx" -> BADARGUMENTS; joining and new_members together
  -> BADARGUMENTS; leaving "1,2" -> BADARGUMENTS; curConfigId 12345 ->
  BADVERSION; only a well-formed request (or an empty one) -> NOAUTH.
  The check-first contract is Keel's own (it tells an unauthorized client
  nothing about the membership), so that test runs against Keel only.
"""
import pytest
from kazoo.security import make_digest_acl_credential

from harness import rawzk
from harness import servers as srv
from harness.ensemble import module_ensemble
from harness.hostile import Ledger, assert_served, ensure_running

READ, WRITE, CREATE, DELETE, ADMIN, ALL = (rawzk.READ, rawzk.WRITE, rawzk.CREATE, rawzk.DELETE,
                                           rawzk.ADMIN, rawzk.ALL)
OPEN = rawzk.OPEN_ACL_UNSAFE
ALICE_ONLY = [(ALL, "auth", "")]   # as created by alice: digest alice:<hash>


def digest_id(user, password):
    return make_digest_acl_credential(user, password)


@pytest.fixture
def target(server, request):
    ensure_running(server)
    Ledger.of(server).add(request.node.name, n=2)
    return server


def client(server, user=None, password=None, superuser=False):
    c = rawzk.connect(server.host, server.port)
    if superuser:
        assert c.auth("digest", "super:%s" % srv.SUPER_PASSWORD).ok
    elif user:
        assert c.auth("digest", "%s:%s" % (user, password)).ok
    return c


def events(c):
    return [(e["type"], e["path"]) for e in c.drain()]


# ---------------------------------------------------------------------------
# exists needs READ (3.9; not in the installed 3.8.0)


def test_exists_needs_read(target, path):
    if target.kind == "zookeeper":
        pytest.skip("3.9 behaviour (ZOOKEEPER-2590, in 3.8.4/3.9.2): the installed 3.8.0-deb12u2 "
                    "answers exists on an unreadable node with OK and a Stat")
    alice = client(target, "alice", "pw")
    eve = client(target)
    sup = client(target, superuser=True)
    try:
        assert alice.create(path, b"", acl=OPEN).ok
        secret, public = path + "/secret", path + "/public"
        assert alice.create(secret, b"s", acl=ALICE_ONLY).ok
        assert alice.create(public, b"p", acl=OPEN).ok

        r = eve.exists(secret)
        assert r.err_name == "NOAUTH" and not r.body, r
        r = eve.exists(secret, watch=True)
        assert r.err_name == "NOAUTH", r
        # no watch was left behind by the refused exists
        assert eve.check_watches(secret, rawzk.WT_DATA).err_name == "NOWATCHER"
        # a missing node: NoNode, no ACL check (even under an unreadable parent)
        assert eve.exists(secret + "/nothing").err_name == "NONODE"
        assert eve.exists(path + "/nothing").err_name == "NONODE"
        assert eve.exists(public).ok
        assert alice.exists(secret).ok and alice.exists(secret)["stat"]["dataLength"] == 1
        assert sup.exists(secret).ok
        # WRITE without READ is not enough
        assert alice.create(path + "/wo", b"", acl=[(WRITE, "world", "anyone"),
                                                     (ALL, "auth", "")]).ok
        assert eve.exists(path + "/wo").err_name == "NOAUTH"
    finally:
        for c in (alice, eve, sup):
            c.close()
    assert_served(target, what="exists ACL checks")


# ---------------------------------------------------------------------------
# watch events filtered by READ (CVE-2024-23944)


def test_watch_events_need_read(target, path):
    alice = client(target, "alice", "pw")
    watchers = []
    try:
        W, sec, pub = path, path + "/sec", path + "/open"
        assert alice.create(W, b"", acl=OPEN).ok
        assert alice.create(sec, b"0", acl=ALICE_ONLY).ok
        assert alice.create(pub, b"0", acl=OPEN).ok
        zxid = alice.exists(W).zxid

        def watcher(name):
            c = client(target)
            c.name = name
            watchers.append(c)
            return c

        rec = watcher("recursive on W")
        assert rec.add_watch(W, rawzk.AW_PERSISTENT_RECURSIVE).ok
        per_sec = watcher("persistent on sec + open")
        assert per_sec.add_watch(sec, rawzk.AW_PERSISTENT).ok
        assert per_sec.add_watch(pub, rawzk.AW_PERSISTENT).ok
        per_parent = watcher("persistent on W")
        assert per_parent.add_watch(W, rawzk.AW_PERSISTENT).ok
        one_shot = watcher("one-shot exists")
        assert one_shot.exists(W + "/new-sec", watch=True).err_name == "NONODE"
        assert one_shot.exists(sec + "/kid", watch=True).err_name == "NONODE"
        assert one_shot.exists(pub, watch=True).ok
        sw = watcher("setWatches")
        assert sw.set_watches(zxid, data=[sec, pub], exist=[sec + "/kid"], child=[sec]).ok
        sw2 = watcher("setWatches2")
        assert sw2.set_watches2(zxid, data=[sec], exist=[sec + "/kid"], child=[sec],
                                persistent=[sec, pub], recursive=[sec]).ok
        for c in watchers:
            assert events(c) == [], "%s: events before any change" % c.name

        # changes to nodes the watchers may not read ...
        assert alice.set_data(sec, b"1").ok
        assert alice.create(sec + "/kid", b"", acl=ALICE_ONLY).ok
        assert alice.set_data(sec + "/kid", b"1").ok
        assert alice.delete(sec + "/kid").ok
        assert alice.create(W + "/new-sec", b"", acl=ALICE_ONLY).ok
        assert alice.set_data(W + "/new-sec", b"1").ok
        assert alice.delete(W + "/new-sec").ok
        assert alice.delete(sec).ok
        # ... then one they may read: the control
        assert alice.set_data(pub, b"1").ok

        hidden = {sec, sec + "/kid", W + "/new-sec"}
        expect_control = {
            "recursive on W": ("NodeDataChanged", pub),
            "persistent on sec + open": ("NodeDataChanged", pub),
            "one-shot exists": ("NodeDataChanged", pub),
            "setWatches": ("NodeDataChanged", pub),
            "setWatches2": ("NodeDataChanged", pub),
            # children of W changed (W is readable): delivered, naming W only
            "persistent on W": ("NodeChildrenChanged", W),
        }
        leaks = {}
        for c in watchers:
            got = events(c)
            bad = [e for e in got if e[1] in hidden]
            if bad:
                leaks[c.name] = bad
            assert expect_control[c.name] in got, "%s: control event missing from %r" % (c.name, got)
        assert not leaks, "events for znodes the watcher may not READ: %r" % leaks

        # the owner, who may read, gets them
        owner = client(target, "alice", "pw")
        watchers.append(owner)
        owner.name = "owner"
        assert owner.add_watch(W, rawzk.AW_PERSISTENT_RECURSIVE).ok
        assert alice.create(W + "/again", b"", acl=ALICE_ONLY).ok
        assert ("NodeCreated", W + "/again") in events(owner)
    finally:
        alice.close()
        for c in watchers:
            c.close()
    assert_served(target, what="watch ACL checks")


# ---------------------------------------------------------------------------
# getACL hides digests from clients without ADMIN


def test_get_acl_hides_digests_without_admin(target, path):
    alice_id = digest_id("alice", "pw")
    bob_id = digest_id("bob", "pw")
    carol_id = digest_id("carol", "pw")
    acl = [(READ, "world", "anyone"), (ALL, "digest", alice_id),
           (READ | WRITE, "digest", bob_id), (READ, "ip", "10.1.2.3")]
    admin_only = [(ADMIN, "digest", carol_id), (READ, "digest", alice_id)]
    alice = client(target, "alice", "pw")
    bob = client(target, "bob", "pw")
    carol = client(target, "carol", "pw")
    anon = client(target)
    sup = client(target, superuser=True)
    try:
        assert alice.create(path, b"", acl=OPEN).ok
        assert alice.create(path + "/a", b"", acl=acl).ok
        assert alice.create(path + "/b", b"", acl=admin_only).ok
        assert alice.create(path + "/c", b"", acl=ALICE_ONLY).ok

        full = [[p, s, i] for p, s, i in acl]
        redacted = [[READ, "world", "anyone"], [ALL, "digest", "alice:x"],
                    [READ | WRITE, "digest", "bob:x"], [READ, "ip", "10.1.2.3"]]
        for who, c, want in (("anonymous", anon, redacted), ("bob (READ|WRITE)", bob, redacted),
                             ("alice (ADMIN)", alice, full), ("superuser", sup, full)):
            r = c.get_acl(path + "/a")
            assert r.ok, (who, r)
            assert r["acl"] == want, "%s sees %r" % (who, r["acl"])

        # ADMIN without READ suffices, and shows the hashes
        r = carol.get_acl(path + "/b")
        assert r.ok and r["acl"] == [[p, s, i] for p, s, i in admin_only], r
        # neither READ nor ADMIN: NoAuth
        for c in (anon, bob):
            assert c.get_acl(path + "/b").err_name == "NOAUTH"
        # an `auth` ACL is stored as the creator's digest: redacted for others
        assert anon.get_acl(path + "/c").err_name == "NOAUTH"
        r = alice.get_acl(path + "/c")
        assert r.ok and r["acl"] == [[ALL, "digest", alice_id]], r
        r = sup.get_acl(path + "/c")
        assert r.ok and r["acl"] == [[ALL, "digest", alice_id]], r
        assert alice.set_acl(path + "/c", [(ALL, "digest", alice_id), (READ, "world", "anyone")]).ok
        r = anon.get_acl(path + "/c")
        assert r.ok and r["acl"] == [[ALL, "digest", "alice:x"], [READ, "world", "anyone"]], r
    finally:
        for c in (alice, bob, carol, anon, sup):
            c.close()
    assert_served(target, what="getACL checks")


# ---------------------------------------------------------------------------
# reconfig: NoAuth for clients without WRITE on /zookeeper/config

CONFIG = "/zookeeper/config"


@pytest.fixture(scope="module")
def ens(server_kind, tmp_path_factory):
    yield from module_ensemble(server_kind, tmp_path_factory.mktemp("%s-hostile-reconfig" % server_kind),
                               participants=3, cfg={"reconfigEnabled": "true"})


def _config(ens):
    c = rawzk.connect(ens.members[0].host, ens.members[0].port)
    try:
        assert c.sync("/").ok
        r = c.get_data(CONFIG)
        assert r.ok, r
        return r["data"], r["stat"]["mzxid"]
    finally:
        c.close()


def _unauthorized(ens):
    m = ens.members[0]
    anon = rawzk.connect(m.host, m.port)
    bob = rawzk.connect(m.host, m.port)
    assert bob.auth("digest", "bob:pw").ok
    return [("anonymous", anon), ("digest bob", bob)]


def _well_formed(ens):
    same = ",".join(m.server_line(explicit_role=True) for m in ens.members)
    follower = [m for m in ens.participants if m is not ens.leader()][0]
    return [
        {"new_members": same},
        {"leaving": str(follower.sid)},
        {"joining": ens.members[0].server_line(explicit_role=True)},
        {"leaving": "99"},
    ]


MALFORMED = [
    {"joining": "garbage"},
    {"joining": "server.5=foo"},
    {"leaving": "abc"},
    {"new_members": "server.1=xx"},
    {"joining": "x", "new_members": "y"},
    {"leaving": "1,2"},
    {"new_members": "server.1=127.0.0.1:1:2:observer"},
    {"joining": "server.7=127.0.0.1:1:2:participant;127.0.0.1:3,server.8=" + "9" * 5000},
    {"leaving": "2", "cur_config_id": 12345},
    {"new_members": "\x00\xff" * 100},
]


def test_reconfig_unauthorized_well_formed_is_noauth(ens):
    ens.wait_serving(members=ens.members, timeout=30)
    before = _config(ens)
    clients = _unauthorized(ens)
    try:
        for who, c in clients:
            for args in _well_formed(ens):
                r = c.reconfig(**args)
                assert r.err_name == "NOAUTH", "%s reconfig(%r): %r" % (who, args, r)
    finally:
        for _, c in clients:
            c.close()
    assert _config(ens) == before
    ens.wait_serving(members=ens.members, timeout=30)
    for m in ens.members:
        assert m.alive()


def test_reconfig_unauthorized_malformed_is_noauth(ens):
    if ens.kind == "zookeeper":
        pytest.skip("issue 10's contract, not ZooKeeper's: ZooKeeper 3.8.0-3.9.x validate the "
                    "request before checking WRITE on /zookeeper/config (BadArguments, "
                    "MarshallingError, BadVersion; see the module docstring)")
    ens.wait_serving(members=ens.members, timeout=30)
    before = _config(ens)
    clients = _unauthorized(ens)
    answers = {}
    try:
        for who, c in clients:
            for args in MALFORMED:
                r = c.reconfig(**args)
                if r.err_name != "NOAUTH":
                    answers["%s %r" % (who, args)] = r.err_name
    finally:
        for _, c in clients:
            c.close()
    assert not answers, "not NoAuth for a client without WRITE on %s: %s" % (CONFIG, answers)
    assert _config(ens) == before
    # the superuser still gets the validation errors
    sup = rawzk.connect(ens.members[0].host, ens.members[0].port)
    try:
        assert sup.auth("digest", "super:%s" % srv.SUPER_PASSWORD).ok
        assert sup.reconfig(joining="garbage").err_name == "BADARGUMENTS"
    finally:
        sup.close()
    for m in ens.members:
        assert m.alive()
