"""setWatches (101) and setWatches2 (105) are answered with the xid they carried.

ZooKeeper's FinalRequestProcessor replies with the request's own cxid. The C
client sends -8 and so gets -8 back; ZooKeeper's 3.8 Java client sends an
ordinary xid and drops the connection on any other ("Xid out of order"), so a
server that always answers -8 sends a reconnecting Java client with watches into
a loop of reconnects (tests/test_java.py shows that end to end).
"""
import pytest

from harness import rawzk


@pytest.mark.parametrize("xid", [rawzk.SET_WATCHES_XID, 7])
def test_set_watches_reply_carries_the_request_xid(server, path, xid):
    c = rawzk.connect(server.host, server.port)
    assert c.create(path, b"v").ok
    c.xid = 6
    rep = c.set_watches(c.last_zxid, data=[path], exist=[path + "/none"], child=[path], xid=xid)
    assert rep.ok and rep.xid == xid
    rep = c.set_watches2(c.last_zxid, data=[path], persistent=[path], recursive=[path], xid=xid + 1)
    assert rep.ok and rep.xid == xid + 1
    # The connection is still in step: the next request is answered as usual.
    assert c.get_data(path)["data"] == b"v"
    # And the watches were armed: a change is delivered.
    d = rawzk.connect(server.host, server.port)
    d.set_data(path, b"w")
    evs = c.wait_events(1, timeout=5)
    assert path in [e["path"] for e in evs]


def test_auth_reply_carries_the_request_xid(server):
    """addAuth is answered with the xid it carried too (clients send -4)."""
    c = rawzk.connect(server.host, server.port)
    body = rawzk.W().int(0).ustring("digest").buffer(b"bob:secret").bytes()
    rep = c.call(rawzk.OP["auth"], body, xid=9)
    assert rep.ok and rep.xid == 9
    assert c.ping().ok
