"""ZooKeeper's own Java client (3.8) and Apache Curator (5.4), the way most ZooKeeper
users reach a server, against one standalone server per module.

Each Java program (tests/java/, compiled once per session by the `java_programs`
fixture) runs once per server in one JVM and reports many named checks; each check
is one pytest test here, so a failure names what broke (the report carries the
program's whole output and the tail of its stderr, where the client logs at WARN).

* RawApi.java — the raw 3.8 API: create/getData/setData/delete/exists/getChildren,
  one-shot data/child/exists watches, multi and transaction(), multiRead, sequential
  names, getEphemerals, whoAmI, ACLs, TTL and container nodes, persistent and
  persistent-recursive watches (addWatch), removeWatches, getAllChildrenNumber, sync,
  getConfig, session expiry (the session closed by a second connection while the
  client is cut off by a TCP proxy), close.
* CuratorRecipes.java — Curator: framework basics and transactions, InterProcessMutex,
  InterProcessSemaphoreV2, LeaderLatch, LeaderSelector, SimpleDistributedQueue,
  DistributedBarrier, DistributedDoubleBarrier, CuratorCache (persistent recursive
  watches), NodeCache, service discovery (curator-x-discovery), SharedCount,
  DistributedAtomicLong.
* ReconnectWatches.java — reconnects that settle: a client holding watches is cut off
  by a TCP proxy (harness/proxy.py), the watched nodes change meanwhile, and the
  client comes back through the proxy.  It sends SetWatches (opcode 101), or
  SetWatches2 (105) when it also holds persistent watches, with an ordinary xid and
  drops the connection if the reply carries another ("Xid out of order").  Required:
  exactly one reconnection (the proxy accepts 2 connections in all), the missed
  events delivered, the remaining watches still registered, no Disconnected for 3 s.
"""
import pytest

from harness.programs import run_proxied

RAW_API_CHECKS = [
    "crud", "create2_stat", "sequential", "data_watch_one_shot", "child_watch",
    "exists_watch", "delete_fires_data_and_child_watches", "multi", "multi_failure_is_atomic",
    "multi_read", "get_ephemerals", "who_am_i", "acl", "ttl_and_container", "persistent_watch",
    "persistent_recursive_watch", "remove_watches", "children_count_and_sync", "config_node",
    "session_expiry", "close_removes_ephemerals",
]

CURATOR_CHECKS = [
    "framework_basics", "inter_process_mutex", "semaphore", "leader_latch", "leader_selector",
    "distributed_queue", "barrier", "double_barrier", "curator_cache", "node_cache",
    "service_discovery", "shared_count", "atomic_long",
]

RECONNECT_CHECKS = [
    "watches_set", "disconnected", "changed_while_away", "reconnected_same_session",
    "missed_events_delivered", "watches_still_registered", "settled",
]


def check_reconnect(result, accepted):
    """ReconnectWatches passed every check and reconnected exactly once."""
    problems = ["%s: %s" % f for f in result.failures()]
    if result.order != RECONNECT_CHECKS:
        problems.append("checks reported %s, expected %s" % (result.order, RECONNECT_CHECKS))
    if accepted != 2:
        problems.append("the proxy accepted %d connections: the first and exactly one "
                        "reconnection expected" % accepted)
    if not result.done or result.returncode != 0:
        problems.append("exit status %s%s" % (result.returncode, "" if result.done else ", no 'done' line"))
    if problems:
        raise AssertionError("Java client reconnection:\n  %s\n%s" % (
            "\n  ".join(problems), result.report()))


# --- raw API -------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_api(server, java_programs):
    res, _ = run_proxied(java_programs, "RawApi", server.address,
                         lambda proxied: [server.hosts, proxied, "standalone"])
    return res


def test_raw_api_program_completed(raw_api):
    raw_api.assert_complete(RAW_API_CHECKS)


@pytest.mark.parametrize("check", RAW_API_CHECKS)
def test_raw_api(raw_api, check):
    raw_api.assert_check(check)


# --- Curator -------------------------------------------------------------------


@pytest.fixture(scope="module")
def curator(server, java_programs):
    return java_programs.run("CuratorRecipes", [server.hosts])


def test_curator_program_completed(curator):
    curator.assert_complete(CURATOR_CHECKS)


@pytest.mark.parametrize("check", CURATOR_CHECKS)
def test_curator(curator, check):
    curator.assert_check(check)


# --- reconnection ----------------------------------------------------------------


@pytest.mark.parametrize("variant", ["set-watches", "set-watches2"])
def test_reconnect_with_watches_settles(server, java_programs, variant):
    res, accepted = run_proxied(java_programs, "ReconnectWatches", server.address,
                                lambda proxied: [proxied, server.hosts, variant], timeout=100)
    check_reconnect(res, accepted)
