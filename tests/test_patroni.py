"""PostgreSQL high availability with Patroni on a 3-member ensemble (issue 19).

Patroni keeps its leader key in ZooKeeper (kazoo, a session of `ttl` seconds) and
refreshes it every `loop_wait`; a primary that cannot refresh it within `ttl` demotes
itself, and a replica that sees the key expire promotes itself. So the ensemble's
re-election time is what decides whether losing one ensemble member, or its leader,
costs the database its primary. At tickTime 6000 (a common production setting) a
coordination service that re-elects on tickTime's clock can take tens of seconds.

The test runs two Patroni nodes (Debian's patroni 3.0 and PostgreSQL 15, as the
`postgres` user) on the ensemble, kills -9 the ensemble's leader, restarts it, then
kills a follower, and samples both nodes' REST API every 0.5 s for `ttl` + 5 s after
each kill: the primary must stay primary on the same timeline, and the replica must
never be promoted. Last, two of the three members are killed, and the same watch must
see the primary demote itself (so a pass means something). Both server kinds run it
(Apache ZooKeeper as the reference).

Slow (about 2.5 minutes per server kind): `KEEL_TEST_LONG=1 scripts/test.sh`, or
`python3 -m pytest tests/test_patroni.py -m slow`. Needs root (PostgreSQL runs as
`postgres` through runuser); scripts/setup.sh installs patroni and PostgreSQL 15.
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from harness.ensemble import Ensemble, free_ports

pytestmark = pytest.mark.slow

PG_BIN = "/usr/lib/postgresql/15/bin"
TICK_TIME = 6000
TTL = 30          # Patroni's default: session timeout and leader key lifetime, s
LOOP_WAIT = 10    # Patroni's default: seconds between leader key refreshes
WATCH = TTL + 5   # how long each kill is watched, s


def _skip_unless_ready():
    if os.geteuid() != 0:
        pytest.skip("PostgreSQL runs as the postgres user through runuser: needs root")
    if shutil.which("patroni") is None or not os.path.exists(os.path.join(PG_BIN, "postgres")):
        pytest.skip("patroni or PostgreSQL 15 not installed (scripts/setup.sh installs them)")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user")


class PatroniNode:
    """One Patroni process managing one PostgreSQL data dir under `root`."""

    def __init__(self, name, root, zk_hosts, pg_port, api_port):
        self.name = name
        self.api = "http://127.0.0.1:%d" % api_port
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        pw = pwd.getpwnam("postgres")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        cfg = {
            "scope": "keel-patroni-test",
            "name": name,
            "restapi": {"listen": "127.0.0.1:%d" % api_port,
                        "connect_address": "127.0.0.1:%d" % api_port},
            "zookeeper": {"hosts": zk_hosts},
            "bootstrap": {
                "dcs": {"ttl": TTL, "loop_wait": LOOP_WAIT, "retry_timeout": 10,
                        "maximum_lag_on_failover": 1048576,
                        "postgresql": {"parameters": {"max_connections": 20,
                                                      "shared_buffers": "16MB"}}},
                "initdb": [{"encoding": "UTF8"}],
                "pg_hba": ["local all all trust",
                           "host all all 127.0.0.1/32 trust",
                           "host replication all 127.0.0.1/32 trust"],
            },
            "postgresql": {
                "listen": "127.0.0.1:%d" % pg_port,
                "connect_address": "127.0.0.1:%d" % pg_port,
                "data_dir": os.path.join(self.dir, "data"),
                "bin_dir": PG_BIN,
                "pgpass": os.path.join(self.dir, "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": "postgres"},
                    "replication": {"username": "replicator", "password": "replicator"},
                },
                "parameters": {"unix_socket_directories": self.dir},
            },
        }
        # JSON is YAML: Patroni reads it as its configuration file.
        self.cfg_path = os.path.join(self.dir, "patroni.yml")
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        self.log_path = os.path.join(self.dir, "patroni.log")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", "patroni", self.cfg_path],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def status(self):
        """Patroni's own view (`GET /patroni`), or None while it does not answer."""
        try:
            with urllib.request.urlopen(self.api + "/patroni", timeout=2) as r:
                return json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def log_tail(self, n=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # Patroni stops PostgreSQL itself
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        data = os.path.join(self.dir, "data")
        if os.path.exists(os.path.join(data, "postmaster.pid")):
            subprocess.run(["runuser", "-u", "postgres", "--", os.path.join(PG_BIN, "pg_ctl"),
                            "stop", "-m", "immediate", "-D", data],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)


def is_primary(st):
    return st is not None and st.get("role") in ("master", "primary") and st.get("state") == "running"


def wait_for(what, check, timeout, nodes):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError("%s not reached in %ds:\n%s" % (what, timeout, "\n".join(
        "---- %s: %r\n%s" % (n.name, n.status(), n.log_tail()) for n in nodes)))


def watch_primary(primary, replica, timeline, seconds):
    """Samples both nodes every 0.5 s; returns the problems seen (empty: none)."""
    problems = []
    unanswered = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        p, r = primary.status(), replica.status()
        if p is None:
            unanswered += 1
        elif not is_primary(p) or p.get("timeline") != timeline:
            problems.append("primary %s: %r" % (primary.name, p))
        if r is not None and r.get("role") in ("master", "primary"):
            problems.append("replica %s promoted: %r" % (replica.name, r))
        time.sleep(0.5)
    if unanswered > 4:
        problems.append("primary's REST API silent in %d samples" % unanswered)
    return problems


@pytest.fixture
def patroni_root():
    _skip_unless_ready()
    # Under /tmp with a+rx: the postgres user must reach its data dirs.
    root = tempfile.mkdtemp(prefix="keel-patroni-")
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_losing_an_ensemble_member_or_its_leader_never_demotes_the_primary(
        server_kind, tmp_path_factory, patroni_root):
    e = Ensemble(server_kind, tmp_path_factory.mktemp("%s-patroni" % server_kind), participants=3,
                 cfg={"maxSessionTimeout": str(4 * TTL * 1000)}, tick_time=TICK_TIME)
    nodes = []
    try:
        e.start()
        hosts = [m.hosts for m in e.participants]
        pg1, pg2, api1, api2 = free_ports(4)
        nodes = [PatroniNode("pg1", patroni_root, hosts, pg1, api1),
                 PatroniNode("pg2", patroni_root, hosts, pg2, api2)]
        nodes[0].start()
        wait_for("pg1 primary", lambda: is_primary(nodes[0].status()), 120, nodes)
        nodes[1].start()
        wait_for("pg2 streaming replica", lambda: (nodes[1].status() or {}).get("role") == "replica"
                 and (nodes[1].status() or {}).get("state") == "running", 120, nodes)
        primary, replica = nodes
        timeline = primary.status()["timeline"]

        for what in ("leader", "follower"):
            leader = e.leader()
            victim = leader if what == "leader" else [m for m in e.participants if m is not leader][0]
            t0 = time.monotonic()
            e.kill9(victim)
            problems = watch_primary(primary, replica, timeline, WATCH)
            print("%s: killed the ensemble's %s (%r), watched %.0f s: %s" % (
                server_kind, what, victim, time.monotonic() - t0, problems or "primary kept"))
            assert not problems, "after killing the ensemble's %s:\n%s\n---- %s log\n%s" % (
                what, "\n".join(problems[:10]), primary.name, primary.log_tail())
            e.restart(victim)
            e.wait_serving()

        # The watch can see a demotion: with two of three members gone, no quorum is
        # left, the primary cannot refresh its key and demotes itself within ttl.
        for m in e.followers():
            e.kill9(m)
        problems = watch_primary(primary, replica, timeline, WATCH)
        print("%s: killed two members, watched %d s: %s" % (server_kind, WATCH, problems[:1]))
        assert any(p.startswith("primary") for p in problems), \
            "the primary kept its role without a quorum: the watch cannot see a demotion"
    finally:
        for n in nodes:
            n.stop()
        e.kill_all()
