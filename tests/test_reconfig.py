"""Dynamic reconfiguration (`reconfig`, opcode 16) of a 3-participant ensemble.

Each test runs against ZooKeeper 3.8 (the oracle) and Keel alike.  Ensembles
come from harness/ensemble.py (tickTime=200 ms, initLimit=10, syncLimit=5) with
`reconfigEnabled=true` in zoo.cfg unless a test says otherwise; the superuser
is the harness's (`-Dzookeeper.DigestAuthenticationProvider.superDigest=
super:D/InIHSb7yEEbrWz8b9l71RjZJU=`, password `test`, srv.SUPER_PASSWORD).
ZooKeeper needs nothing else for reconfig in 3.8: no `standaloneEnabled=false`,
no dynamic config file of our own (it writes one itself, below), no 4lw.

What ZooKeeper 3.8.0 answered (facts Keel must match; kazoo exception, code):

/zookeeper/config
- Text: one `server.N=host:peer:election:ROLE;host:client` line per member,
  ROLE always written (`participant` / `observer`) even when the zoo.cfg line
  or the reconfig spec left it out; the client address as configured
  (`127.0.0.1:port`); then `version=HEX` as the LAST line, lowercase hex
  without `0x` or padding, and NO trailing newline, e.g.
      server.1=127.0.0.1:39287:43709:participant;127.0.0.1:33073
      server.2=127.0.0.1:51259:38951:participant;127.0.0.1:52749
      server.3=127.0.0.1:50861:57247:participant;127.0.0.1:39117
      version=100000000
  Line order is not fixed: a reconfig reply listed servers 1,2,3,10,11 and a
  later getData 1,2,10,3,11 (ZooKeeper iterates a hash map); tests compare sets.
- version = the zxid of the transaction that made the config; stat.mzxid of
  /zookeeper/config is the same zxid.  Without reconfigEnabled: `version=0`,
  mzxid 0.  With reconfigEnabled, a fresh ensemble's first leader stamps the
  static config with its epoch's zxid 0: `version=100000000`, mzxid 0x100000000.
- stat: czxid 0, ctime 0, version -1, aversion -1 (also after reconfigs);
  ACL world:anyone READ only.
- ZooKeeper rewrites each member's zoo.cfg (server lines and clientPort moved
  to `zoo.cfg.dynamic.<version>`, `dynamicConfigFile=` added, the original kept
  as zoo.cfg.bak) and writes a new zoo.cfg.dynamic.<version> at every reconfig.

Errors
- reconfigEnabled not set: ReconfigDisabledError (-123, RECONFIGDISABLED) for
  every form, superuser or not, also for malformed arguments.  kazoo 2.10 has
  no exception for -123 (its reader thread would die): registered below.
- No WRITE on /zookeeper/config (anonymous, or a non-super digest user):
  NoAuthError (-102).  The superuser, or any client with `-Dzookeeper.skipACL=yes`,
  may reconfig.
- fromConfig (curConfigId) other than the current version: BadVersionError
  (-103), config unchanged.  -1 means "any".
- joining `server.5=foo`, joining `garbage`, new_members `server.1=xx`:
  BadArgumentsError (-8).  Incremental (joining/leaving) and new_members
  together: BadArgumentsError.
- leaving `abc` (not a number): MarshallingError (-5) (an unexpected exception
  inside ZooKeeper's PrepRequestProcessor).  new_members with observers only:
  MarshallingError too ("Observers w/o participants is an invalid
  configuration").
- A new config with fewer than 2 voters (with the default
  standaloneEnabled=true): BadArgumentsError ("new configuration must include
  at least 2 followers"); this includes removing one of two voters.
  (With standaloneEnabled=false, 1 voter is accepted and 0 is BadArguments; not
  tested here.)
- A new config whose voters do not include a quorum that is connected to and
  synced with the leader: NewConfigNoQuorumError (-13), answered at once.
  Adding 3 servers that are not running to a 3-node ensemble (3 of 6) fails
  this way; adding 2 (3 of 5) succeeds.
- Failed reconfigs consume a zxid (seen in ZooKeeper's log), like other
  failed writes (ZOOKEEPER_BEHAVIOURS.md).

Successes that may surprise
- leaving an id that is not a member, and a reconfig with no joining, leaving
  or new_members at all: OK; a new config with the same members and a new
  version (= that reconfig's zxid).
- joining a `server.N` that is already a member replaces its addresses (not
  tested: it moves that member's ports).

Membership changes
- Removing a follower: the leader stays leader (no election, same epoch); the
  removed server keeps running, says `Mode: follower` in srvr (a non-voting
  follower) and still serves its clients, the new config included.  With 2
  voters left both are needed: the removed one can die, but when one of the
  two voters dies the other stops serving.
- Adding a server: a newcomer started with a zoo.cfg listing the ensemble plus
  itself connects to the leader before any reconfig and says `Mode: follower`
  (non-voting), with the leader's config (without itself) in /zookeeper/config;
  after `reconfig(joining=...)` no election happens and all 4 serve.
- Removing the leader: the reply usually arrives (through the leader and
  through a follower), but once a client on a follower got ConnectionLoss
  instead (the members drop their clients for the new leader); the config is
  committed either way, so the test accepts both.
  The remaining voters get a new leader with a new epoch; the old leader keeps
  running as a non-voting `Mode: follower` that still serves reads and writes.
"""
import pytest
from kazoo import exceptions as _kex
from kazoo.exceptions import (BadArgumentsError, BadVersionError, ConnectionLoss,
                              MarshallingError, NewConfigNoQuorumError, NoAuthError)

from harness import servers as srv
from harness.clients import kazoo_clients
from harness.ensemble import free_ports, module_ensemble
from harness.wait import wait_until

# kazoo 2.10 has no exception for -123 (ReconfigDisabled): its reader thread
# would die on the unknown code and the call would never return.  Register one
# the way kazoo registers its own (as harness/kazoo_ext.py does for -120).
if -123 in _kex.EXCEPTIONS:  # a newer kazoo has one
    ReconfigDisabledError = _kex.EXCEPTIONS[-123]
else:
    @_kex._zookeeper_exception(-123)
    class ReconfigDisabledError(_kex.ZookeeperError):
        """reconfig without reconfigEnabled=true: ZooKeeper's ReconfigDisabledException."""

# Generous for 2 loaded cores running three or four JVMs.
ELECTION_TIMEOUT = 30
CONFIG = "/zookeeper/config"
RECONFIG_CFG = {"reconfigEnabled": "true"}
SUPER_AUTH = "super:%s" % srv.SUPER_PASSWORD


# ---------------------------------------------------------------------------
# helpers


def parse_config(data):
    """/zookeeper/config text -> ({sid: server line}, version hex string).
    Asserts the format: server lines, then `version=` last, no trailing newline."""
    text = data.decode("utf-8")
    assert not text.endswith("\n"), repr(text)
    lines = text.split("\n")
    assert lines[-1].startswith("version="), repr(text)
    version = lines[-1][len("version="):]
    assert version == "%x" % int(version, 16), "version not lowercase hex without padding: %r" % version
    servers = {}
    for line in lines[:-1]:
        assert line.startswith("server."), repr(text)
        sid = int(line[len("server."):line.index("=")])
        assert sid not in servers, repr(text)
        servers[sid] = line
    return servers, version


def expected_lines(members):
    """{sid: line} as ZooKeeper writes them in /zookeeper/config."""
    return {m.sid: m.server_line(explicit_role=True) for m in members}


def check_reply(reply, members):
    """reconfig's (data, stat): exactly `members`, version == stat.mzxid.
    Returns the version as an int."""
    data, stat = reply
    servers, version = parse_config(data)
    assert servers == expected_lines(members)
    assert int(version, 16) == stat.mzxid
    return int(version, 16)


def read_config(client):
    """sync, then /zookeeper/config -> ({sid: line}, version int, stat)."""
    client.sync("/")
    data, stat = client.get(CONFIG)
    servers, version = parse_config(data)
    assert int(version, 16) == stat.mzxid
    return servers, int(version, 16), stat


@pytest.fixture
def kz():
    """make(hosts, start=True, superuser=False, **KazooClient kwargs) ->
    KazooClient; all are closed at teardown."""
    with kazoo_clients(fast=True) as new_client:
        def make(hosts, start=True, superuser=False, **kw):
            c = new_client(hosts, start=start, **kw)
            if start and superuser:
                c.add_auth("digest", SUPER_AUTH)
            return c

        yield make


def start_reconfig_ensemble(ensemble_factory, **kw):
    cfg = dict(RECONFIG_CFG)
    cfg.update(kw.pop("cfg", {}) or {})
    return ensemble_factory(cfg=cfg, **kw)


def roles(ensemble):
    leader, _ = ensemble.wait_serving(members=ensemble.members, timeout=ELECTION_TIMEOUT)
    return leader, [m for m in ensemble.participants if m is not leader]


def wait_not_serving(member, timeout=ELECTION_TIMEOUT):
    wait_until(lambda: member.mode() is None, timeout,
               what="%r to stop serving (no quorum)" % member)


# ---------------------------------------------------------------------------
# a shared reconfig-enabled ensemble for the tests that leave its membership
# as they found it (only the config version moves)


@pytest.fixture(scope="module")
def ens(server_kind, tmp_path_factory):
    yield from module_ensemble(server_kind,
                               tmp_path_factory.mktemp("%s-reconfig" % server_kind),
                               participants=3, cfg=RECONFIG_CFG)


@pytest.fixture
def ensemble(ens, kz):
    """The shared ensemble: every member running and serving, the config
    listing exactly members 1..3 (restored by a bulk reconfig if a failed test
    left it otherwise)."""
    for m in ens.members:
        if not m.alive():
            m.spawn()
    ens.wait_serving(members=ens.members, timeout=ELECTION_TIMEOUT)
    c = kz(ens.hosts(), superuser=True)
    servers, _, _ = read_config(c)
    if servers != expected_lines(ens.members):
        c.reconfig(None, None, ",".join(m.server_line(explicit_role=True) for m in ens.members))
        ens.wait_serving(members=ens.members, timeout=ELECTION_TIMEOUT)
    c.stop()
    return ens


# ---------------------------------------------------------------------------
# 1-2. disabled, authorization


def test_reconfig_disabled(ensemble_factory, kz):
    e = ensemble_factory()  # no reconfigEnabled
    anon = kz(e.members[0].hosts)
    sup = kz(e.members[1].hosts, superuser=True)
    data, stat = anon.get(CONFIG)
    servers, version = parse_config(data)
    assert servers == expected_lines(e.members)
    assert version == "0" and stat.mzxid == 0
    # As ZooKeeper's initConfigInZKDatabase writes it in an ensemble (standalone: 0).
    assert stat.version == -1
    follower = [m for m in e.participants if m is not e.leader()][0]
    for c in (anon, sup):
        with pytest.raises(ReconfigDisabledError):
            c.reconfig(None, str(follower.sid), None)
        with pytest.raises(ReconfigDisabledError):
            c.reconfig(None, None, ",".join(m.server_line() for m in e.members[:2]))
        with pytest.raises(ReconfigDisabledError):
            c.reconfig(None, str(follower.sid), None, from_config=12345)
        with pytest.raises(ReconfigDisabledError):
            c.reconfig("garbage", None, None)
    assert read_config(anon)[0] == expected_lines(e.members)
    assert read_config(anon)[1] == 0
    anon.create("/after-disabled", b"x")  # the ensemble is unharmed
    sup.sync("/after-disabled")
    assert sup.get("/after-disabled")[0] == b"x"


def test_reconfig_needs_write_on_zookeeper_config(ensemble, kz):
    members = ensemble.members
    anon = kz(members[0].hosts)
    acls, _ = anon.get_acls(CONFIG)
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [(1, "world", "anyone")]
    _, v0, _ = read_config(anon)
    bob = kz(members[1].hosts)
    bob.add_auth("digest", "bob:secret")
    same = ",".join(m.server_line(explicit_role=True) for m in members)
    for c in (anon, bob):
        with pytest.raises(NoAuthError):
            c.reconfig(None, None, same)
        with pytest.raises(NoAuthError):
            c.reconfig(None, "2", None)
    assert read_config(anon)[:2] == (expected_lines(members), v0)

    sup = kz(members[2].hosts, superuser=True)
    v1 = check_reply(sup.reconfig(None, None, same), members)
    assert v1 > v0
    assert read_config(anon)[:2] == (expected_lines(members), v1)
    ensemble.wait_serving(members=members, timeout=ELECTION_TIMEOUT)


def test_reconfig_with_skip_acl(ensemble_factory, kz):
    e = start_reconfig_ensemble(ensemble_factory, sysprops={"zookeeper.skipACL": "yes"})
    anon = kz(e.members[0].hosts)
    v0 = read_config(anon)[1]
    same = ",".join(m.server_line() for m in e.members)
    assert check_reply(anon.reconfig(None, None, same), e.members) > v0


# ---------------------------------------------------------------------------
# 3. removing a follower


def test_remove_follower(ensemble_factory, kz, path):
    e = start_reconfig_ensemble(ensemble_factory)
    leader, (stay, gone) = roles(e)
    sup = kz(leader.hosts, superuser=True)
    sup.create(path, b"before")
    _, v0, _ = read_config(sup)

    reply = sup.reconfig(None, str(gone.sid), None)
    version = check_reply(reply, [leader, stay])
    assert version > v0
    stat = reply[1]
    assert (stat.czxid, stat.ctime, stat.version, stat.aversion) == (0, 0, -1, -1)

    # every member (the removed one too) has the new config after sync
    for m in (stay, gone, leader):
        c = kz(m.hosts)
        assert read_config(c)[:2] == (expected_lines([leader, stay]), version), "member %d" % m.sid

    # no election: same leader, same epoch; the removed server is a non-voting follower
    new_leader, modes = e.wait_serving(members=e.members, timeout=ELECTION_TIMEOUT)
    assert new_leader is leader
    assert modes[gone.sid] == "follower"
    reader = kz(stay.hosts)
    zs = sup.set(path, b"after")
    assert zs.mzxid >> 32 == version >> 32 and zs.mzxid > version
    assert reader.create(path + "/via-follower", b"f").startswith(path)
    reader.sync(path)
    assert reader.get(path)[0] == b"after"
    on_gone = kz(gone.hosts)
    on_gone.sync(path)
    assert on_gone.get(path)[0] == b"after"

    # down to one voter is refused (the default standaloneEnabled=true)
    with pytest.raises(BadArgumentsError):
        sup.reconfig(None, str(stay.sid), None)
    assert read_config(sup)[:2] == (expected_lines([leader, stay]), version)

    # the removed server does not count: the two voters serve without it ...
    gone.kill9()
    reader.set(path, b"without-removed")
    sup.sync(path)
    assert sup.get(path)[0] == b"without-removed"
    # ... and both are needed: with one of the two gone, no quorum
    stay.kill9()
    wait_not_serving(leader)


# ---------------------------------------------------------------------------
# 4. adding a server


def test_add_server(ensemble_factory, kz, path):
    e = start_reconfig_ensemble(ensemble_factory)
    leader, _ = roles(e)
    first = e.members[0]
    old = list(e.members)
    newcomer = e.add_member()  # its zoo.cfg: servers 1..4; 1..3 know only 1..3
    assert newcomer.sid == 4
    # before the reconfig it joins as a non-voting follower with the leader's config
    wait_until(lambda: newcomer.mode() == "follower", ELECTION_TIMEOUT,
               what="the newcomer to follow the leader")
    c4 = kz(newcomer.hosts)
    _, v0, _ = read_config(c4)
    assert read_config(c4)[0] == expected_lines(old)

    sup = kz(first.hosts, superuser=True)
    joining = newcomer.server_line(explicit_role=True)
    assert joining == "server.4=127.0.0.1:%d:%d:participant;127.0.0.1:%d" % (
        newcomer.peer_port, newcomer.election_port, newcomer.port)
    version = check_reply(sup.reconfig(joining, None, None), e.members)
    assert version > v0
    assert len(expected_lines(e.members)) == 4

    new_leader, modes = e.wait_serving(members=e.members, timeout=ELECTION_TIMEOUT)
    assert new_leader is leader and modes[4] == "follower"
    for m in e.members:
        assert read_config(kz(m.hosts))[:2] == (expected_lines(e.members), version), "member %d" % m.sid

    # data written through member 1 is read through member 4, and the reverse
    sup.create(path, b"from-1")
    c4.sync(path)
    assert c4.get(path)[0] == b"from-1"
    c4.create(path + "/from-4", b"4")
    sup.sync(path)
    assert sup.get_children(path) == ["from-4"]
    for i in range(5):
        c4.set(path, b"v%d" % i)
        sup.sync(path)
        assert sup.get(path)[0] == b"v%d" % i


# ---------------------------------------------------------------------------
# 5. fromConfig


def test_from_config(ensemble_factory, kz):
    e = start_reconfig_ensemble(ensemble_factory)
    leader, (f1, f2) = roles(e)
    sup = kz(leader.hosts, superuser=True)
    data, stat = sup.get(CONFIG)
    servers, version = parse_config(data)
    # ZooKeeper stamps a fresh ensemble's config with its first epoch's zxid 0
    # (version=100000000); Keel keeps zoo.cfg's version (0) until the first
    # reconfig (docs/compatibility.md).  Either way the version is the config's
    # mzxid and is what from_config must name.
    assert int(version, 16) == stat.mzxid
    assert version in ("100000000", "0")
    current = int(version, 16)

    # (-1 would mean "any version")
    for wrong in sorted({current + 1, current + (1 << 32), 12345, 0} - {current, -1}):
        with pytest.raises(BadVersionError):
            sup.reconfig(None, str(f2.sid), None, from_config=wrong)
    assert read_config(sup)[:2] == (expected_lines(e.members), current)

    new = check_reply(sup.reconfig(None, str(f2.sid), None, from_config=current), [leader, f1])
    assert new > current
    # the old version is stale now
    with pytest.raises(BadVersionError):
        sup.reconfig(None, None, ",".join(m.server_line() for m in e.members), from_config=current)
    assert read_config(sup)[:2] == (expected_lines([leader, f1]), new)
    # and the new one works (bulk this time: f2 back in)
    newer = check_reply(sup.reconfig(None, None, ",".join(m.server_line() for m in e.members),
                                     from_config=new), e.members)
    assert newer > new
    e.wait_serving(members=e.members, timeout=ELECTION_TIMEOUT)


# ---------------------------------------------------------------------------
# 6. bulk (non-incremental) form


def test_bulk_new_members(ensemble_factory, kz, path):
    e = start_reconfig_ensemble(ensemble_factory)
    leader, (keep, drop) = roles(e)
    sup = kz(leader.hosts, superuser=True)
    _, v0, _ = read_config(sup)
    # role left out: ZooKeeper writes `:participant` in the result
    spec = ",".join(m.server_line() for m in (leader, keep))
    assert ":participant" not in spec
    version = check_reply(sup.reconfig(None, None, spec), [leader, keep])
    assert version > v0
    c = kz(keep.hosts)
    assert read_config(c)[:2] == (expected_lines([leader, keep]), version)
    new_leader, _ = e.wait_serving(members=[leader, keep], timeout=ELECTION_TIMEOUT)
    assert new_leader is leader
    c.create(path, b"bulk")
    sup.sync(path)
    assert sup.get(path)[0] == b"bulk"
    # the same list again: accepted, same members, a new version
    again = check_reply(sup.reconfig(None, None, spec), [leader, keep])
    assert again > version


# ---------------------------------------------------------------------------
# 7. removing the leader


def test_remove_leader(ensemble_factory, kz, path):
    e = start_reconfig_ensemble(ensemble_factory)
    old_leader, followers = roles(e)
    sup = kz(old_leader.hosts, superuser=True)
    sup.create(path, b"before")
    _, v0, _ = read_config(sup)
    try:
        reply = sup.reconfig(None, str(old_leader.sid), None)
    except ConnectionLoss:
        reply = None  # the members dropped their clients for the new leader
    if reply is not None:
        check_reply(reply, followers)

    new_leader, modes = e.wait_serving(members=e.members, old_leader=old_leader,
                                       timeout=ELECTION_TIMEOUT)
    assert new_leader in followers
    assert modes[old_leader.sid] == "follower"  # running on, not a voter

    c = kz(e.hosts(followers))
    servers, version, _ = c.retry(read_config, c)
    assert servers == expected_lines(followers)
    assert version > v0
    if reply is not None:
        assert version == reply[1].mzxid

    # the new leader serves writes, in a new epoch
    st = c.retry(c.set, path, b"after")
    assert st.mzxid >> 32 > version >> 32
    for m in followers:
        r = kz(m.hosts)
        r.sync(path)
        assert r.get(path)[0] == b"after", "member %d" % m.sid
    # the removed leader still serves its clients
    sup.retry(sup.sync, path)
    assert sup.retry(sup.get, path)[0] == b"after"


# ---------------------------------------------------------------------------
# 8. bad input, and reconfigs that change nothing


def test_bad_arguments(ensemble, kz):
    members = ensemble.members
    leader, followers = roles(ensemble)
    sup = kz(followers[0].hosts, superuser=True)
    servers0, v0, _ = read_config(sup)
    cases = [
        (BadArgumentsError, ("server.5=foo", None, None)),
        (BadArgumentsError, ("garbage", None, None)),
        (BadArgumentsError, (None, None, "server.1=xx")),
        (BadArgumentsError, (members[0].server_line(), "2", members[0].server_line())),
        (BadArgumentsError, (None, "%d,%d" % (followers[0].sid, followers[1].sid), None)),
        (BadArgumentsError, (None, None, leader.server_line())),
        (MarshallingError, (None, "abc", None)),
        (MarshallingError, (None, None, ",".join(
            m.server_line(explicit_role=True).replace(":participant;", ":observer;")
            for m in members))),
    ]
    for exc, args in cases:
        with pytest.raises(exc):
            sup.reconfig(*args)
        assert read_config(sup)[:2] == (servers0, v0), args
    ensemble.wait_serving(members=members, timeout=ELECTION_TIMEOUT)


def test_no_op_reconfigs_succeed(ensemble, kz):
    members = ensemble.members
    sup = kz(ensemble.hosts(), superuser=True)
    _, v0, _ = read_config(sup)
    # leaving an id that is not a member: OK, same members, a new version
    v1 = check_reply(sup.reconfig(None, "99", None), members)
    assert v1 > v0
    # nothing at all: OK too
    v2 = check_reply(sup.reconfig(None, None, None), members)
    assert v2 > v1
    assert read_config(kz(members[0].hosts))[:2] == (expected_lines(members), v2)
    ensemble.wait_serving(members=members, timeout=ELECTION_TIMEOUT)


# ---------------------------------------------------------------------------
# 9. NewConfigNoQuorum


def test_new_config_without_synced_quorum(ensemble, kz):
    members = ensemble.members
    sup = kz(ensemble.hosts(), superuser=True)
    servers0, v0, _ = read_config(sup)
    ports = free_ports(9)  # three servers that are not running
    absent = ["server.%d=127.0.0.1:%d:%d:participant;127.0.0.1:%d" % (
        10 + i, ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]) for i in range(3)]

    # 3 running of 6 voters: no quorum of the new config is synced
    with pytest.raises(NewConfigNoQuorumError):
        sup.reconfig(",".join(absent), None, None)
    assert read_config(sup)[:2] == (servers0, v0)
    with pytest.raises(NewConfigNoQuorumError):
        sup.reconfig(None, None, ",".join([m.server_line() for m in members] + absent))
    assert read_config(sup)[:2] == (servers0, v0)

    # 3 running of 5 voters is a quorum: accepted
    data, stat = sup.reconfig(",".join(absent[:2]), None, None)
    servers, version = parse_config(data)
    want = dict(expected_lines(members))
    want.update({10: absent[0], 11: absent[1]})
    assert servers == want and int(version, 16) == stat.mzxid > v0
    ensemble.wait_serving(members=members, timeout=ELECTION_TIMEOUT)
    # and back (several ids at once)
    back = check_reply(sup.reconfig(None, "10,11", None), members)
    assert back > stat.mzxid
    ensemble.wait_serving(members=members, timeout=ELECTION_TIMEOUT)
