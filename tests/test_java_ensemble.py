"""ZooKeeper's Java client, Curator and zkCli.sh against a 3-node ensemble (one per
server kind, shared by the module).  See test_java.py for the programs.

RawApi and CuratorRecipes connect to one follower only: their checks read another
session's writes straight after them, which ZooKeeper guarantees only on one
server (without a sync).  Writes still go through the leader and back.  The
reconnecting client goes through a proxy to a follower while its changes are made
through the leader.

In an ensemble ZooKeeper writes /zookeeper/config (the member list and
`version=<zxid>`) without a stat version: `stat /zookeeper/config` shows
dataVersion = -1 (0 standalone, where the node is empty).
"""
import os
import re
import shutil
import subprocess

import pytest

from harness.ensemble import module_ensemble
from harness.programs import ZKCLI, SETUP_HINT, run_proxied
from test_java import CURATOR_CHECKS, RAW_API_CHECKS, check_reconnect


@pytest.fixture(scope="module")
def ensemble(server_kind, tmp_path_factory):
    yield from module_ensemble(server_kind, tmp_path_factory.mktemp("%s-java-ensemble" % server_kind))


@pytest.fixture(scope="module")
def follower(ensemble):
    return ensemble.followers()[0]


@pytest.fixture(scope="module")
def raw_api_ensemble(ensemble, follower, java_programs):
    res, _ = run_proxied(java_programs, "RawApi", follower.address,
                         lambda proxied: [follower.hosts, proxied, "ensemble"])
    return res


def test_raw_api_program_completed(raw_api_ensemble):
    raw_api_ensemble.assert_complete(RAW_API_CHECKS)


@pytest.mark.parametrize("check", RAW_API_CHECKS)
def test_raw_api(raw_api_ensemble, check):
    raw_api_ensemble.assert_check(check)


def test_curator(ensemble, follower, java_programs):
    java_programs.run("CuratorRecipes", [follower.hosts]).assert_all(CURATOR_CHECKS)


def test_reconnect_with_persistent_watches_settles(ensemble, follower, java_programs):
    leader = ensemble.leader()
    res, accepted = run_proxied(java_programs, "ReconnectWatches", follower.address,
                                lambda proxied: [proxied, leader.hosts, "set-watches2"], timeout=100)
    check_reconnect(res, accepted)


def test_zkcli_stat_zookeeper_config(ensemble, follower):
    """`stat /zookeeper/config` through zkCli.sh on every member: dataVersion = -1."""
    if not os.path.exists(ZKCLI) or not shutil.which("java"):
        pytest.skip("%s or java not found; %s" % (ZKCLI, SETUP_HINT))
    env = dict(os.environ, JVMFLAGS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xmx256m")
    stdin = "".join("connect %s\nstat /zookeeper/config\n" % m.hosts for m in ensemble.members) + "quit\n"
    p = subprocess.run([ZKCLI, "-waitforconnection", "-server", follower.hosts], input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                       timeout=90)
    versions = re.findall(r"^dataVersion = (-?\d+)$", p.stdout, re.M)
    assert versions == ["-1"] * len(ensemble.members), \
        "dataVersion of /zookeeper/config on members %s: %s\n%s" % (
            [m.sid for m in ensemble.members], versions, p.stdout)
