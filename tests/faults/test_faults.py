"""The fault suite under pytest, against the servers KEEL_TEST_SERVERS names.

    KEEL_TEST_SERVERS=keel,zookeeper python3 -m pytest tests/faults -q            # CI part
    KEEL_TEST_SERVERS=keel,zookeeper python3 -m pytest tests/faults -q -m slow    # the rest

Each `test_fault[...]` is one round of scenarios.py on a 3-member ensemble in
network namespaces (tickTime 200, syncLimit 5, shared by the module per
server): the workload runs, the scenario's faults come and go, and the round
fails on any anomaly: a history that is not linearizable, an acknowledged
write lost, a write answered BadVersion that took effect, members that
disagree after healing, a reconfiguration answered wrongly, or no leader and
no acknowledged write within 60 s of healing.  A failing round's history is
saved as JSON (path in the failure message) and the members' log tails are
attached by conftest.py.  Against ZooKeeper, a round whose anomalies are all
explained by a known ZooKeeper 3.8.0 defect (known.py: the anomaly and the
defect's signature in a member's log) is an xfail, not a failure; the next
round gets a fresh ensemble.

`test_reelection[...]` (slow) measures the time from a fault on the leader to
the first acknowledged write (issue 19's goals) and prints it; for Keel it
asserts bounds well inside the old behaviour (tickTime + 0.2 s).

Without root, iproute2, iptables or namespaces every test here skips, saying why.
"""
import json
import os

import pytest

from . import known, net
from .cluster import FaultCluster
from .scenarios import measure_reelection, run_round

# In CI, per server (2 busy cores): Keel about 35 s; ZooKeeper about 60 s, 45 s more when
# its deposed leader gets stuck in reconfig-via-deposed-leader (a known defect, xfail).
CI_SCENARIOS = [
    "isolate-leader",
    "cut-leader-follower",
    "pause-leader",
    "kill-leader",
    "kill-all",
    "reconfig-paused-quorum",
    "reconfig-remove-isolated",
    "reconfig-via-deposed-leader",
]
SLOW_SCENARIOS = [
    "isolate-follower",
    "pause-follower",
    "kill-follower",
    "reconfig-dead-quorum",
]
CI_HOLD = 2.5   # s a fault lasts in CI (2.5 x syncLimit x tickTime)
CI_LIVENESS = 30.0  # s after healing to serve and acknowledge writes again


def _skip_unless_namespaces():
    try:
        net.check_available()
    except net.Unavailable as e:
        pytest.skip(str(e))


class Clusters:
    """The module's ensemble for one server kind, started on first use and
    started afresh after a round that left anomalies (its state is suspect)."""

    def __init__(self, kind, tmp_path_factory):
        self.kind = kind
        self.tmp = tmp_path_factory
        self.cl = None

    def get(self):
        if self.cl is None:
            d = self.tmp.mktemp("%s-faults" % self.kind)
            cl = FaultCluster(self.kind, str(d), log=lambda m: None)
            cl.history_dir = str(d)
            try:
                cl.start()
            except BaseException:
                cl.close()
                raise
            self.cl = cl
        return self.cl

    def discard(self, keep_data=False):
        if self.cl is not None:
            self.cl.close()
            if not keep_data:
                self.cl.drop_data()
            self.cl = None


@pytest.fixture(scope="module")
def clusters(server_kind, tmp_path_factory):
    _skip_unless_namespaces()
    c = Clusters(server_kind, tmp_path_factory)
    try:
        yield c
    finally:
        c.discard()


def _check_round(clusters, cl, res):
    if res.ok:
        return
    clusters.discard(keep_data=True)
    path = os.path.join(cl.history_dir, "round-%s-%s.json" % (res["scenario"], res["seed"]))
    d = {k: v for k, v in res.items() if k != "history"}
    d["history"] = [op.to_json() for op in res["history"]]
    with open(path, "w") as f:
        json.dump(d, f, indent=1, default=str)
    events = "\n".join("  [%7.2fs] %s" % e for e in res["events"])
    text = "%s on %s: %s\nanomalies:\n%s\nevents:\n%s\nhistory: %s" % (
        res["scenario"], res["server"], res.summary(), "\n".join("  " + a for a in res["anomalies"]),
        events, path)
    if not res.unexplained:
        # ZooKeeper only (known.py): its own defects are reported, not failed
        print(text)
        pytest.xfail("known ZooKeeper defect: %s (history: %s)" % (known.reason(res["known"]), path))
    pytest.fail(text, pytrace=False)


def _round(clusters, scenario, seed):
    cl = clusters.get()
    res = run_round(cl, scenario, seed=seed, hold=CI_HOLD, log=lambda m: None, liveness=CI_LIVENESS)
    print("%s: %s" % (cl.kind, res.summary()))
    _check_round(clusters, cl, res)
    return res


@pytest.mark.parametrize("scenario", CI_SCENARIOS)
def test_fault(clusters, scenario):
    _round(clusters, scenario, seed=CI_SCENARIOS.index(scenario))


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SLOW_SCENARIOS)
def test_fault_slow(clusters, scenario):
    _round(clusters, scenario, seed=100 + SLOW_SCENARIOS.index(scenario))


# ---------------------------------------------------------------------------
# re-election times (issue 19)

# (mode, lag s, busy follower, tickTime, syncLimit, samples, Keel's bound on the median, s)
REELECTION = {
    # issue 19's goal: <= 1.0 s (ZooKeeper ~1.4 s); before the fix 5.9 s (tickTime + 0.2 s)
    "kill-lagging-6000": ("kill", 0.3, False, 6000, 5, 5, 2.0),
    # issue 19's goal: <= 0.3 s
    "kill-6000": ("kill", 0.0, False, 6000, 5, 5, 1.0),
    # the follower-to-be kept busy: its FollowerInfo can beat the winner's own decision
    # (Keel drops it and re-sends it a tickTime later: see docs/faults.md)
    "kill-busy-follower-6000": ("kill", 0.0, True, 6000, 5, 12, 1.0),
    # a silent leader is noticed after syncLimit x tickTime (2.5 s) by both servers
    "pause-500": ("pause", 0.0, False, 500, 5, 5, 6.0),
    # Keel's opt-in failure detector: a silent leader given up after 800 ms where
    # syncLimit x tickTime is 30 s (ZooKeeper has no such setting: Keel only)
    "pause-6000-silence-800": ("pause", 0.0, False, 6000, 5, 5, 2.0,
                               {"keel.leaderSilenceMs": "800"}),
}

# The busy-follower case reproduced a Keel defect (up to 1 kill in 3 stalled for a
# whole tickTime): a FollowerInfo that reached the winner of an election before the
# winner had decided was dropped and re-sent only a tickTime later. FollowerInfo is now
# re-sent on the election's clock (200 ms), and every kill must stay under a tickTime.


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(REELECTION))
def test_reelection(server_kind, tmp_path_factory, case):
    _skip_unless_namespaces()
    mode, lag, busy, tick, sync, samples, bound, *rest = REELECTION[case]
    props = rest[0] if rest else None
    if props and server_kind != "keel":
        pytest.skip("a Keel setting")
    d = tmp_path_factory.mktemp("%s-reelection-%s" % (server_kind, case))
    with FaultCluster(server_kind, str(d), tick_time=tick, sync_limit=sync, sysprops=props,
                      log=lambda m: None) as cl:
        cl.start()
        r = measure_reelection(cl, mode=mode, lag=lag, busy=busy, samples=samples, log=lambda m: None)
    cl.drop_data()
    print("%s re-election %s: first write median %s s, max %s s, samples %s; survivors serving %s" % (
        server_kind, case, r["median_s"], r["max_s"], r["samples"], r["serving_samples"]))
    assert r["failed"] == 0, r
    if server_kind != "keel":
        return
    assert r["median_s"] <= bound, r
    if mode == "kill":
        assert r["tick_stalls"] == 0, "%d of %d kills took a tickTime or more: %s" % (
            r["tick_stalls"], samples, r["samples"])
