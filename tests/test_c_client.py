"""ZooKeeper's C client (libzookeeper_mt 3.8, Debian libzookeeper-mt-dev) through a
small C program, tests/c/zk_c_client.c, built with gcc once per session by the
`c_programs` fixture and run once per server; each of its checks is a pytest test.

Checks: connect (session id, negotiated timeout), create/get/set with versions,
null data, ephemeral sequential names and owner, one-shot data/exists/child
watches fired by another session, multi (success with every op kind, failure:
atomic, per-op errors), ACLs, delete's error order, close removing an ephemeral,
and a reconnection through a TCP proxy holding a data and an exists watch: the C
client re-registers them with SetWatches under the reserved xid -8 (the Java client
uses an ordinary xid), gets the missed events and stays connected.
"""
import pytest

from harness.programs import run_proxied

C_CHECKS = [
    "connect", "create_get_set", "watches", "multi", "acl", "delete",
    "reconnect_with_watches", "close_removes_ephemeral",
]


@pytest.fixture(scope="module")
def c_client(server, c_programs):
    res, accepted = run_proxied(c_programs, "zk_c_client", server.address,
                                lambda proxied: [server.hosts, proxied])
    res.proxy_accepted = accepted
    return res


def test_c_client_program_completed(c_client):
    c_client.assert_complete(C_CHECKS)


@pytest.mark.parametrize("check", C_CHECKS)
def test_c_client(c_client, check):
    c_client.assert_check(check)
    if check == "reconnect_with_watches":
        assert c_client.proxy_accepted == 2, \
            "the proxy accepted %d connections: the first and exactly one reconnection " \
            "expected\n%s" % (c_client.proxy_accepted, c_client.report())
